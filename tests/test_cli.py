"""`python -m nnx demo` and `python -m nnx train`: output, files, resume, fallback, Ctrl-C."""
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import nnx
from nnx.__main__ import main


def require_ops(*names):
    missing = [n for n in names if not hasattr(nnx.ops, n) or not hasattr(nnx.reference, n)]
    if missing:
        pytest.skip(f"nnx.ops/nnx.reference lack {', '.join(missing)} (kernel family not merged yet)")


def require_nn():
    pytest.importorskip("nnx.nn", reason="nnx.nn not merged yet")
    pytest.importorskip("nnx.optim", reason="nnx.optim not merged yet")


TINY = ["train", "--model", "mlp", "--dataset", "sample", "--limit", "384", "--batch-size", "32", "--seed", "3",
        "--no-progress"]


def _env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in [os.path.dirname(nnx.__path__[0]),
                                                                  os.environ.get("PYTHONPATH", "")] if p))


def test_module_entry_point_runs():
    r = subprocess.run([sys.executable, "-m", "nnx", "--help"], capture_output=True, text=True, env=_env(), timeout=120)
    assert r.returncode == 0 and "demo" in r.stdout and "train" in r.stdout


@pytest.mark.parametrize("argv", [["train", "--epochs", "0"], ["train", "--model", "resnet"], ["demo", "--steps", "0"],
                                  ["train", "--limit", "-1"], []])
def test_bad_arguments_exit_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert "usage: nnx" in capsys.readouterr().err


def test_demo_curves_agree(capsys):
    require_ops("linear", "linear_backward", "mse_loss", "mse_loss_backward")
    assert main(["demo", "--steps", "40", "--every", "10"]) == 0
    out = capsys.readouterr().out
    assert "curves agree" in out and "speed-up" in out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [0, 10, 20, 30, 39]
    losses = [float(r[1]) for r in rows]
    assert losses[-1] < losses[0]  # it learns


def test_demo_reports_missing_op(monkeypatch, capsys):
    monkeypatch.delattr(nnx.ops, "mse_loss_backward", raising=False)
    assert main(["demo"]) == 1
    assert re.search(r"nnx.ops lacks .*mse_loss_backward", capsys.readouterr().err)


def test_train_writes_outputs_and_resume_is_bitwise(tmp_path, capsys):
    require_nn()
    require_ops("relu", "cross_entropy")
    a, b = tmp_path / "a", tmp_path / "b"
    assert main(TINY + ["--epochs", "2", "--out", str(a)]) == 0
    out = capsys.readouterr().out
    assert "test accuracy" in out
    assert (a / "checkpoint.npz").is_file() and (a / "history.json").is_file()
    try:
        import matplotlib  # noqa: F401
        assert (a / "learning_curve.png").is_file()
    except ImportError:
        assert "no learning curve picture" in out
    assert main(TINY + ["--epochs", "1", "--out", str(b)]) == 0
    assert main(TINY + ["--epochs", "2", "--out", str(b), "--resume"]) == 0
    assert "resuming from" in capsys.readouterr().out
    ca, cb = nnx.load(a / "checkpoint.npz"), nnx.load(b / "checkpoint.npz")
    assert ca["epoch"] == cb["epoch"] == 2
    for k in ca["model"]:
        np.testing.assert_array_equal(ca["model"][k], cb["model"][k])
    for idx, state in ca["optimizer"]["state"].items():
        for name, value in state.items():
            np.testing.assert_array_equal(value, cb["optimizer"]["state"][idx][name])
    assert ca["history"]["loss"] == cb["history"]["loss"]
    # Different settings are refused on resume.
    assert main(TINY + ["--epochs", "3", "--out", str(b), "--resume", "--lr", "0.5"]) == 1
    assert "different settings" in capsys.readouterr().err
    assert main(TINY + ["--epochs", "1", "--out", str(tmp_path / "none"), "--resume"]) == 1


def test_train_falls_back_to_sample(tmp_path, monkeypatch, capsys):
    require_nn()
    require_ops("relu", "cross_entropy")
    from nnx.data import datasets
    monkeypatch.setattr(datasets, "_SYSTEM_DIR", tmp_path / "nothing")
    monkeypatch.setenv("NNX_DATA", str(tmp_path / "nothing"))
    argv = [a if a != "sample" else "mnist" for a in TINY]
    assert main(argv + ["--epochs", "1", "--out", str(tmp_path / "o")]) == 0
    err = capsys.readouterr().err
    assert "falling back to the Fashion-MNIST sample" in err and "yann.lecun.com" in err


def test_ctrl_c_keeps_last_checkpoint(tmp_path, monkeypatch, capsys):
    require_nn()
    require_ops("relu", "cross_entropy")
    from nnx import optim
    calls = {"n": 0}
    real_step = optim.SGD.step

    def step_then_interrupt(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 15:  # 384 / 32 = 12 steps per epoch: inside epoch 2
            raise KeyboardInterrupt
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(optim.SGD, "step", step_then_interrupt)
    out = tmp_path / "o"
    assert main(TINY + ["--epochs", "3", "--out", str(out)]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert nnx.load(out / "checkpoint.npz")["epoch"] == 1
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "history.json"]
    monkeypatch.undo()
    assert main(TINY + ["--epochs", "2", "--out", str(out), "--resume"]) == 0


def test_train_lenet5_one_epoch(tmp_path, capsys):
    require_nn()
    require_ops("relu", "cross_entropy", "conv2d", "max_pool2d")
    argv = ["train", "--model", "lenet5", "--dataset", "sample", "--limit", "1920", "--lr", "0.05", "--epochs", "1",
            "--out", str(tmp_path), "--no-progress"]
    assert main(argv) == 0
    line = [l for l in capsys.readouterr().out.splitlines() if l.startswith("test accuracy")][0]
    assert float(line.split()[2]) > 0.2  # 30 steps: off the initial plateau (chance is 0.1; PyTorch gets ~0.34)


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_real_sigint_keeps_last_checkpoint(tmp_path):
    require_nn()
    require_ops("relu", "cross_entropy")
    out = tmp_path / "o"
    argv = [sys.executable, "-m", "nnx"] + TINY + ["--epochs", "100000", "--threads", "1", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert (out / "checkpoint.npz").exists(), proc.communicate(timeout=5)
        time.sleep(0.3)  # somewhere inside a later epoch, possibly mid-save
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and "continue with --resume" in err
    assert nnx.load(out / "checkpoint.npz")["epoch"] >= 1
    assert sorted(os.listdir(out)) == ["checkpoint.npz", "history.json"]
