"""Smoke runs of the lecture-topic examples on small data (the pattern of test_examples.py)."""
import numpy as np

from test_examples import is_png, load, require


def test_maxout_fashion():
    require("linear", "cross_entropy", "maxout")
    r = load("maxout_fashion").main(["--epochs", "1", "--limit", "2000", "--width", "64", "--quiet"])
    assert r["maxout"] > 0.5 and r["relu"] > 0.4  # chance is 0.1


def test_l1_sparsity(tmp_path):
    require("linear", "cross_entropy", matplotlib=True)
    out = tmp_path / "l1.png"
    r = load("l1_sparsity").main(["--epochs", "2", "--limit", "2000", "--out", str(out), "--quiet"])
    assert is_png(out)
    assert r["L1"]["zero_fraction"] > 3 * r["none"]["zero_fraction"] and r["L1"]["accuracy"] > 0.5


def test_sparse_autoencoder(tmp_path):
    require("linear", "sigmoid", "binary_cross_entropy_with_logits", matplotlib=True)
    out = tmp_path / "sae.png"
    r = load("sparse_autoencoder").main(["--epochs", "2", "--limit", "1000", "--hidden", "25", "--out", str(out),
                                         "--quiet"])
    assert is_png(out)
    # the sparsity term pulls the mean hidden activation well below the unconstrained one
    assert r["sparse"]["mean_activation"] < 0.6 * r["plain"]["mean_activation"]
    assert np.isfinite(r["sparse"]["reconstruction"])


def test_dbn_pretrain(tmp_path):
    require("linear", "sigmoid", "cross_entropy", "gemm", matplotlib=True)
    out, feats = tmp_path / "dbn.png", tmp_path / "feat.png"
    r = load("dbn_pretrain").main(["--hidden", "64,32", "--rbm-epochs", "2", "--epochs", "2", "--lr", "0.3",
                                   "--limit", "1000",
                                   "--out", str(out), "--features", str(feats), "--quiet"])
    assert is_png(out) and is_png(feats)
    first = r["rbm"][0]
    assert first[-1]["recon_error"] < first[0]["recon_error"]  # the first RBM learns
    assert r["DBN-pretrained"]["accuracy"] > 0.3 and np.isfinite(r["random init"]["accuracy"])
