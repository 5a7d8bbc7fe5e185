"""nnx.fit / evaluate / History / checkpoints, on small synthetic problems (fast)."""
import json
import math
import sys

import numpy as np
import pytest

import nnx
from nnx.train import Checkpoint, History, StopTraining, evaluate, fit, load_checkpoint

nn = pytest.importorskip("nnx.nn", reason="nnx.nn not merged yet")
optim = pytest.importorskip("nnx.optim", reason="nnx.optim not merged yet")


def require_ops(*names):
    missing = [n for n in names if not hasattr(nnx.ops, n)]
    if missing:
        pytest.skip(f"nnx.ops lacks {', '.join(missing)} (kernel family not merged yet)")


def blobs(n=300, d=5, classes=3, seed=0):
    """Well separated Gaussian clusters: a linear model reaches ~100% accuracy."""
    centres = np.random.default_rng(99).standard_normal((classes, d)) * 4  # same clusters for every seed
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    X = (centres[y] + rng.standard_normal((n, d))).astype(np.float32)
    return X, y.astype(np.int64)


def small_mlp(d=5, classes=3, dropout=0.0):
    layers = [nn.Linear(d, 16), nn.ReLU()]
    if dropout:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers, nn.Linear(16, classes))


def weights(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


# --- History ------------------------------------------------------------------------------------------

def test_history_records_and_json_round_trip(tmp_path):
    h = History()
    h.append(1, loss=1.5, accuracy=0.5, seconds=2.0, images_per_s=100.0, lr=0.1)
    h.append(2, loss=1.0, accuracy=0.7, val_loss=1.1, val_accuracy=0.65, seconds=2.0, images_per_s=110.0, lr=0.1)
    assert len(h) == 2 and h.loss == [1.5, 1.0] and math.isnan(h.val_loss[0])
    assert h.last()["val_accuracy"] == 0.65 and h.last()["epoch"] == 2
    h.save_json(tmp_path / "h.json")
    raw = json.loads((tmp_path / "h.json").read_text())
    assert raw["val_loss"] == [None, 1.1]  # strict JSON: NaN written as null
    back = History.load_json(tmp_path / "h.json")
    assert back.epoch == [1, 2] and back.loss == h.loss and math.isnan(back.val_loss[0])
    assert History.from_dict(h.to_dict()).to_dict().keys() == h.to_dict().keys()
    with pytest.raises(ValueError, match="unknown History fields"):
        h.append(3, los=1.0)


def test_history_plot(tmp_path):
    pytest.importorskip("matplotlib")
    h = History()
    for e in range(1, 4):
        h.append(e, loss=1 / e, accuracy=1 - 1 / (e + 1), val_loss=1.2 / e, val_accuracy=0.9 - 1 / (e + 2))
    h.plot(tmp_path / "curve.png", title="t")
    assert (tmp_path / "curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_plot_without_matplotlib(tmp_path, monkeypatch):
    for mod in ("matplotlib", "matplotlib.figure", "matplotlib.backends", "matplotlib.backends.backend_agg",
                "matplotlib.ticker"):
        monkeypatch.setitem(sys.modules, mod, None)
    h = History()
    h.append(1, loss=1.0)
    with pytest.raises(ImportError, match=r'pip install "nnx\[plot\]"'):
        h.plot(tmp_path / "x.png")


# --- fit / evaluate -----------------------------------------------------------------------------------

def test_fit_learns_and_reports(capsys):
    require_ops("relu", "cross_entropy")
    X, y = blobs()
    Xv, yv = blobs(100, seed=1)
    nnx.manual_seed(0)
    model = small_mlp()
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    seen = []
    h = fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=3, batch_size=32, val=(Xv, yv),
            callbacks=[lambda e, hist: seen.append((e, len(hist)))])
    assert seen == [(1, 1), (2, 2), (3, 3)]
    assert h.epoch == [1, 2, 3] and h.loss[-1] < h.loss[0]
    assert h.accuracy[-1] > 0.95 and h.val_accuracy[-1] > 0.95
    assert all(s > 0 for s in h.seconds) and all(r > 0 for r in h.images_per_s) and h.lr == [0.05] * 3
    out = capsys.readouterr().out
    assert "epoch 3/3: loss" in out and "val_accuracy" in out and "img/s" in out
    loss, acc = evaluate(model, Xv, yv)
    assert acc == pytest.approx(h.val_accuracy[-1]) and loss == pytest.approx(h.val_loss[-1], rel=1e-5)


def test_fit_is_reproducible_and_quiet(capsys):
    require_ops("relu", "cross_entropy")
    X, y = blobs()
    runs = []
    for _ in range(2):
        nnx.manual_seed(5)
        model = small_mlp(dropout=0.3)
        opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=2, batch_size=50, progress=False)
        runs.append(weights(model))
    assert capsys.readouterr().out == ""
    for k in runs[0]:
        np.testing.assert_array_equal(runs[0][k], runs[1][k])


def test_fit_accepts_loaders_scheduler_and_stop_training():
    require_ops("relu", "cross_entropy")
    X, y = blobs()
    nnx.manual_seed(0)
    model = small_mlp()
    opt = optim.SGD(model.parameters(), lr=0.1)
    sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)

    def stop_after_two(epoch, history):
        if epoch == 2:
            raise StopTraining

    loader = nnx.data.DataLoader(X, y, batch_size=64, shuffle=True, drop_last=True)
    h = fit(model, nn.CrossEntropyLoss(), opt, loader, epochs=5, val=nnx.data.DataLoader(X, y, batch_size=100),
            scheduler=sched, callbacks=stop_after_two, progress=False)
    assert h.epoch == [1, 2] and h.lr == [0.1, 0.05]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    with pytest.raises(TypeError, match="train: expected an"):
        fit(model, nn.CrossEntropyLoss(), opt, X, progress=False)
    with pytest.raises(ValueError, match="train: expected a DataLoader with targets"):
        fit(model, nn.CrossEntropyLoss(), opt, nnx.data.DataLoader(X), progress=False)
    with pytest.raises(ValueError, match="start_epoch: expected 0 to epochs=2, got 3"):
        fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=2, start_epoch=3, progress=False)


def test_fit_regression_has_no_accuracy():
    require_ops("mse_loss")
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 3)).astype(np.float32)
    Y = X @ np.array([[1.0], [-2.0], [0.5]], np.float32)
    nnx.manual_seed(0)
    model = nn.Linear(3, 1)
    h = fit(model, nn.MSELoss(), optim.SGD(model.parameters(), lr=0.1), (X, Y), epochs=5, progress=False)
    assert math.isnan(h.accuracy[0]) and h.loss[-1] < 0.01 * h.loss[0]


def test_fit_stops_on_nan_loss():
    require_ops("relu", "cross_entropy")
    X, y = blobs(64)
    X[3, 0] = np.nan
    model = nn.Linear(5, 3)
    with pytest.raises(FloatingPointError, match="loss became nan at epoch 1, batch 1"):
        fit(model, nn.CrossEntropyLoss(), optim.SGD(model.parameters(), lr=0.1), (X, y), progress=False)


def test_evaluate_uses_eval_mode_and_restores_it():
    require_ops("relu", "cross_entropy")
    X, y = blobs(200)
    nnx.manual_seed(0)
    model = small_mlp(dropout=0.5)
    model.train()
    a = evaluate(model, X, y, batch_size=7)
    b = evaluate(model, X, y, batch_size=200)
    assert a[1] == b[1] and a[0] == pytest.approx(b[0], rel=1e-5)  # dropout off: deterministic
    assert model.training
    model.eval()
    evaluate(model, X, y)
    assert not model.training
    with pytest.raises(ValueError, match="y: evaluate needs targets"):
        evaluate(model, X)


# --- checkpoints --------------------------------------------------------------------------------------

def _run(tmp_path, epochs, start=None):
    """Builds model/optimizer from seed 0, optionally resumes from the checkpoint, trains to `epochs`."""
    X, y = blobs()
    nnx.manual_seed(0)
    model = small_mlp(dropout=0.2)  # dropout and shuffling both draw from nnx.random
    opt = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    path = tmp_path / "ckpt.npz"
    start_epoch, history = 0, None
    if start is not None:
        start_epoch, history, extra = load_checkpoint(path, model, opt)
        assert start_epoch == start and extra == {"tag": "t"}
    fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=epochs, batch_size=32, start_epoch=start_epoch,
        history=history, callbacks=[Checkpoint(path, model, opt, extra={"tag": "t"})], progress=False)
    return weights(model), history


def test_checkpoint_resume_is_bitwise_identical(tmp_path):
    require_ops("relu", "cross_entropy")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    full, _ = _run(tmp_path / "a", 3)
    _run(tmp_path / "b", 1)
    resumed, history = _run(tmp_path / "b", 3, start=1)
    for k in full:
        np.testing.assert_array_equal(full[k], resumed[k])
    assert history.epoch == [1, 2, 3]
    ckpt = nnx.load(tmp_path / "b" / "ckpt.npz")
    assert ckpt["epoch"] == 3 and set(ckpt) >= {"model", "optimizer", "rng", "history"}
    with pytest.raises(ValueError, match="not a training checkpoint"):
        nnx.save({"model": {}}, tmp_path / "other.npz")
        load_checkpoint(tmp_path / "other.npz", small_mlp())


@pytest.mark.parametrize("name, params", [("mlp", 784 * 256 + 256 + 256 * 128 + 128 + 128 * 10 + 10),
                                          ("lenet5", 61706),
                                          ("convnet", 832 + 51264 + 3136 * 1024 + 1024 + 10250),
                                          ("convnet_bn", 800 + 64 + 51200 + 128 + 3136 * 256 + 512 + 2570)])
def test_models_shapes_and_sizes(name, params):
    require_ops("relu", "conv2d", "max_pool2d")
    nnx.manual_seed(0)
    model = nnx.models.build(name)
    assert sum(p.data.size for p in model.parameters()) == params
    model.eval()
    with nnx.no_grad():
        out = model(np.zeros((3, 1, 28, 28), np.float32))
    assert out.shape == (3, 10)
    with pytest.raises(ValueError, match="name: expected one of"):
        nnx.models.build("resnet")
