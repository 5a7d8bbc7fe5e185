"""Recurrent models from the command line and the examples: `train --model lstm|gru|rnn`, `charlm`,
`generate`, examples/vanishing_gradients.py; each on small data."""
import json
import math
import os

import numpy as np
import pytest

import nnx
from nnx import charlm
from nnx.__main__ import main

from test_examples import is_png, load


@pytest.mark.parametrize("model", ["lstm", "gru", "rnn"])
def test_train_row_by_row_on_the_sample(tmp_path, capsys, model):
    argv = ["train", "--model", model, "--dataset", "sample", "--limit", "640", "--batch-size", "32", "--lr", "0.05",
            "--epochs", "1", "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert f"training {model}" in out
    with open(tmp_path / "result.json") as f:
        result = json.load(f)
    assert result["model"] == model and 0.0 <= result["test_accuracy"] <= 1.0
    assert os.path.exists(tmp_path / "checkpoint.npz")
    # 20 steps of SGD: the classifier has left chance level (0.1).
    assert result["test_accuracy"] > 0.15


@pytest.fixture
def text_file(tmp_path):
    rng = np.random.default_rng(0)
    words = ["the ", "cat ", "sat ", "on ", "a ", "mat. ", "dog ", "ran\n"]
    path = tmp_path / "corpus.txt"
    path.write_text("".join(rng.choice(words, 1500)))
    return str(path)


def _charlm_argv(text, out, epochs, *extra):
    return ["charlm", "--text", text, "--epochs", str(epochs), "--steps-per-epoch", "15", "--hidden-size", "24",
            "--embed-size", "8", "--seq-len", "16", "--batch-size", "8", "--out", str(out), *extra]


def test_charlm_trains_resumes_exactly_and_generates(tmp_path, text_file, capsys):
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(_charlm_argv(text_file, a, 3)) == 0
    out = capsys.readouterr().out
    vals = [float(line.split("validation loss ")[1].split()[0]) for line in out.splitlines()
            if line.startswith("epoch ")]
    bpcs = [float(line.split("= ")[1].split()[0]) for line in out.splitlines() if line.startswith("epoch ")]
    assert len(vals) == 3 and vals[-1] < vals[0]
    assert all(abs(v / math.log(2) - b_) < 1e-3 for v, b_ in zip(vals, bpcs))
    assert vals[-1] < math.log(len(set(open(text_file).read())))  # better than uniform over the vocabulary
    # Two epochs, then --resume to three: the same weights as three epochs in one go.
    assert main(_charlm_argv(text_file, b, 2)) == 0
    assert main(_charlm_argv(text_file, b, 3, "--resume")) == 0
    assert "resuming from" in capsys.readouterr().out
    wa, wb = nnx.load(str(a / "checkpoint.npz"))["model"], nnx.load(str(b / "checkpoint.npz"))["model"]
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa)
    # Resuming with another architecture is refused.
    assert main(_charlm_argv(text_file, b, 4, "--resume", "--hidden-size", "16")) == 1
    assert "different settings" in capsys.readouterr().err

    assert main(["generate", "--out", str(a), "--length", "50", "--temperature", "0.5", "--prime", "the "]) == 0
    text = capsys.readouterr().out
    assert text.startswith("the ") and len(text.rstrip("\n")) >= 50
    assert set(text) <= set(open(text_file).read()) | {"\n"}


def test_charlm_errors_are_clear(tmp_path, text_file, monkeypatch, capsys):
    assert main(["charlm", "--text", str(tmp_path / "missing.txt"), "--out", str(tmp_path)]) == 1
    assert "no such file" in capsys.readouterr().err
    monkeypatch.setattr(charlm, "FORTUNES_DIR", str(tmp_path / "no-fortunes"))
    assert main(["charlm", "--out", str(tmp_path)]) == 1
    assert "apt-get install fortunes" in capsys.readouterr().err
    assert main(["generate", "--out", str(tmp_path / "nothing")]) == 1
    assert "no checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["generate", "--temperature", "0"])


def test_default_corpus_is_the_fortunes():
    if not os.path.isdir(charlm.FORTUNES_DIR):
        pytest.skip(f"no fortunes at {charlm.FORTUNES_DIR} (apt-get install fortunes)")
    text = charlm.load_text(None)
    assert len(text) > 100_000 and "%\n" in text  # fortune files separate entries with a line holding %


def test_vanishing_gradients_example(tmp_path):
    png = tmp_path / "vg.png"
    r = load("vanishing_gradients").main(["--T", "20", "--png", str(png)])
    rnn, lstm = r["rnn"]["grad_norm"], r["lstm"]["grad_norm"]
    assert rnn.shape == lstm.shape == (20,) and np.isfinite(rnn).all() and np.isfinite(lstm).all()
    # The tanh RNN loses far more of the gradient on the way back to step 0 than the LSTM.
    assert r["lstm"]["first_over_last"] > 100 * r["rnn"]["first_over_last"]
    if "png" in r:
        assert is_png(png)
