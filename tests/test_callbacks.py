"""EarlyStopping, ModelCheckpoint and CSVLogger on nnx.fit's callback mechanism."""
import csv

import numpy as np
import pytest

import nnx
from nnx import nn, optim
from nnx.train import History


def _history(values, key="val_loss"):
    h = History()
    for i, v in enumerate(values):
        h.append(i + 1, **{key: v, "loss": 1.0})
    return h


class _Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(np.zeros(1))


def drive(cb, values, key="val_loss", model=None):
    """Feeds `values` epoch by epoch as fit does; returns the epoch that stopped training (or None)."""
    h = History()
    for i, v in enumerate(values):
        if model is not None:
            model.w.data[:] = i + 1  # the weights "of epoch i + 1"
        h.append(i + 1, **{key: v, "loss": 1.0})
        try:
            cb(i + 1, h)
        except nnx.callbacks.StopTraining:
            return i + 1
    if hasattr(cb, "on_train_end"):
        cb.on_train_end(h)
    return None


def test_early_stopping_patience_and_restore():
    m = _Model()
    es = nnx.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    es.set_model(m)
    assert drive(es, [1.0, 0.8, 0.9, 0.85, 0.7], model=m) == 4  # 2 epochs without beating 0.8
    assert es.best_epoch == 2 and es.stopped_epoch == 4 and m.w.data[0] == 2  # weights of epoch 2 back
    es = nnx.EarlyStopping(monitor="val_accuracy", patience=1)
    assert drive(es, [0.5, 0.6, 0.6], key="val_accuracy") == 3  # mode auto: accuracy is maximised
    es = nnx.EarlyStopping(monitor="val_loss", patience=0)
    assert drive(es, [1.0, 1.0]) == 2
    es = nnx.EarlyStopping(patience=1, min_delta=0.1)
    assert drive(es, [1.0, 0.95]) == 2  # an improvement smaller than min_delta does not count
    m = _Model()
    es = nnx.EarlyStopping(patience=5, restore_best_weights=True)
    es.set_model(m)
    assert drive(es, [1.0, 0.5, 0.7], model=m) is None and m.w.data[0] == 2  # restored at the end too


def test_early_stopping_errors():
    with pytest.raises(ValueError, match="monitor"):
        nnx.EarlyStopping(monitor="val_los")
    with pytest.raises(ValueError, match="mode"):
        nnx.EarlyStopping(mode="up")
    with pytest.raises(ValueError, match="val_loss"):
        drive(nnx.EarlyStopping(), [1.0], key="loss")  # val_loss never measured
    with pytest.raises(RuntimeError, match="model"):
        drive(nnx.EarlyStopping(restore_best_weights=True), [1.0])


def test_model_checkpoint_best_only(tmp_path):
    m = _Model()
    ck = nnx.ModelCheckpoint(tmp_path / "m-{epoch}.npz", save_best_only=True, model=m)
    drive(ck, [1.0, 1.2, 0.7, 0.9], model=m)
    assert [e for e, _ in ck.saved] == [1, 3]
    assert nnx.load(tmp_path / "m-3.npz")["w"][0] == 3 and not (tmp_path / "m-2.npz").exists()
    ck = nnx.ModelCheckpoint(tmp_path / "all.npz", model=m)
    drive(ck, [1.0, 1.2])
    assert len(ck.saved) == 2


def test_csv_logger(tmp_path):
    path = tmp_path / "log.csv"
    drive(nnx.CSVLogger(path), [1.0, 0.5])
    rows = list(csv.DictReader(open(path)))
    assert [r["epoch"] for r in rows] == ["1", "2"] and float(rows[1]["val_loss"]) == 0.5
    assert rows[0]["accuracy"] == ""  # not measured
    drive(nnx.CSVLogger(path, append=True), [0.25])
    rows = list(csv.DictReader(open(path)))
    assert len(rows) == 3 and float(rows[2]["val_loss"]) == 0.25


def test_callbacks_in_fit(tmp_path):
    nnx.manual_seed(0)
    r = np.random.default_rng(0)
    X = r.standard_normal((96, 6)).astype(np.float32)
    y = (X[:, 0] + X[:, 1] > 0).astype(np.int64)
    Xv = r.standard_normal((64, 6)).astype(np.float32)
    yv = r.integers(0, 2, 64)  # unrelated labels: the validation loss soon stops improving
    model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 2))
    opt = optim.Adam(model.parameters(), lr=0.05)
    es = nnx.EarlyStopping(patience=2, restore_best_weights=True)
    ck = nnx.ModelCheckpoint(tmp_path / "best.npz", save_best_only=True)
    log = nnx.CSVLogger(tmp_path / "log.csv")
    h = nnx.fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=40, batch_size=16, val=(Xv, yv),
                callbacks=[es, ck, log], progress=False)
    assert len(h) < 40 and es.stopped_epoch == len(h)
    best = int(np.argmin(h.val_loss)) + 1
    assert es.best_epoch == best and ck.saved[-1][0] == best
    # the model holds the best epoch's weights, the same ones the checkpoint saved
    saved = nnx.load(tmp_path / "best.npz")
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, saved[k])
    assert nnx.evaluate(model, Xv, yv)[0] == pytest.approx(min(h.val_loss), rel=1e-5)
    assert len(open(tmp_path / "log.csv").read().splitlines()) == len(h) + 1
