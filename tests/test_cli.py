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


# A constant learning rate, so that a 1-epoch run resumed to 2 epochs is the same schedule as a 2-epoch run.
TINY = ["train", "--model", "mlp", "--dataset", "sample", "--limit", "384", "--batch-size", "32", "--seed", "3",
        "--no-progress", "--schedule", "constant"]


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
    # --no-compile: a captured step replays without calling SGD.step, where this test interrupts.
    assert main(TINY + ["--epochs", "3", "--out", str(out), "--no-compile"]) == 130
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


def test_cosine_resume_refuses_a_different_schedule_length(tmp_path, capsys):
    cosine = [a for a in TINY if a not in ("--schedule", "constant")]
    out = tmp_path / "cos"
    assert main(cosine + ["--epochs", "1", "--out", str(out)]) == 0
    capsys.readouterr()
    # The cosine schedule depends on the total epoch count, so resuming with another total is refused.
    assert main(cosine + ["--epochs", "2", "--out", str(out), "--resume"]) == 1
    assert "epochs: checkpoint 1 vs now 2" in capsys.readouterr().err


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
def test_sigkill_then_resume_matches_an_uninterrupted_run_bitwise(tmp_path, capsys):
    """A hard kill (no handler runs, no cleanup) after the first checkpoint: the checkpoint loads, and
    resuming from it ends with the same bits as a run that was never interrupted."""
    require_nn()
    require_ops("relu", "cross_entropy")
    out, ref = tmp_path / "killed", tmp_path / "ref"
    argv = [sys.executable, "-m", "nnx"] + TINY + ["--epochs", "100000", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=_env())
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint.npz").exists() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
        assert (out / "checkpoint.npz").exists(), proc.communicate(timeout=5)
        time.sleep(0.15)  # into a later epoch, possibly in the middle of writing the next checkpoint
        proc.kill()
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    # A kill during a save can leave its temporary file behind, never a damaged checkpoint.
    names = set(os.listdir(out))
    assert "checkpoint.npz" in names
    assert all(re.fullmatch(r"checkpoint\.npz|history\.json|\.checkpoint\.npz\..+\.tmp|history\.json\.tmp\d+", n)
               for n in names), names
    done = nnx.load(out / "checkpoint.npz")["epoch"]
    assert done >= 1
    target = str(done + 1)
    assert main(TINY + ["--epochs", target, "--out", str(out), "--resume"]) == 0
    assert f"resuming from {out / 'checkpoint.npz'} after epoch {done}" in capsys.readouterr().out
    assert main(TINY + ["--epochs", target, "--out", str(ref)]) == 0
    resumed, full = nnx.load(out / "checkpoint.npz"), nnx.load(ref / "checkpoint.npz")
    assert resumed["epoch"] == full["epoch"] == done + 1
    for k in full["model"]:
        assert resumed["model"][k].tobytes() == full["model"][k].tobytes(), k
    for idx, state in full["optimizer"]["state"].items():
        for name, value in state.items():
            assert np.asarray(resumed["optimizer"]["state"][idx][name]).tobytes() == np.asarray(value).tobytes()
    for field in ("loss", "accuracy", "val_loss", "val_accuracy"):
        assert resumed["history"][field] == full["history"][field], field
    assert resumed["rng"] == full["rng"]  # the data order and dropout would continue identically too

def test_resume_from_a_corrupt_checkpoint_is_a_clear_error(tmp_path, capsys):
    require_nn()
    require_ops("relu", "cross_entropy")
    out = tmp_path / "o"
    assert main(TINY + ["--epochs", "1", "--out", str(out)]) == 0
    ckpt = out / "checkpoint.npz"
    ckpt.write_bytes(ckpt.read_bytes()[:-40])
    capsys.readouterr()
    assert main(TINY + ["--epochs", "2", "--out", str(out), "--resume"]) == 1
    assert re.search(r"error: --resume: .*checkpoint.npz: (truncated or corrupt|not a valid)", capsys.readouterr().err)


@pytest.mark.parametrize("model", ["convnet_bn", "lstm"])
def test_captured_training_of_batch_norm_and_recurrent_models_equals_eager_and_resumes_bitwise(tmp_path, capsys,
                                                                                               monkeypatch, model):
    require_nn()
    sample = nnx.data.fashion_mnist_sample

    def small_test_set(split, *a, **k):  # the per-epoch validation of 1000 images would dominate the test
        X, y = sample(split, *a, **k)
        return (X[:64], y[:64]) if split == "test" else (X, y)
    monkeypatch.setattr(nnx.data, "fashion_mnist_sample", small_test_set)
    small = ["train", "--model", model, "--dataset", "sample", "--limit", "80", "--batch-size", "32", "--seed", "3",
             "--schedule", "constant"]
    runs = {name: tmp_path / name for name in ("compiled", "eager", "resumed")}
    assert main(small + ["--epochs", "2", "--out", str(runs["compiled"])]) == 0
    assert "runs eagerly" not in capsys.readouterr().err  # the step was captured and replayed
    assert main(small + ["--epochs", "2", "--out", str(runs["eager"]), "--no-compile", "--no-progress"]) == 0
    assert main(small + ["--epochs", "1", "--out", str(runs["resumed"]), "--no-progress"]) == 0
    assert main(small + ["--epochs", "2", "--out", str(runs["resumed"]), "--resume", "--no-progress"]) == 0
    cks = {k: nnx.load(p / "checkpoint.npz") for k, p in runs.items()}
    for other in ("eager", "resumed"):
        for k in cks["compiled"]["model"]:
            assert cks["compiled"]["model"][k].tobytes() == cks[other]["model"][k].tobytes(), (other, k)
        assert cks["compiled"]["history"]["loss"] == cks[other]["history"]["loss"], other
        assert cks["compiled"]["rng"] == cks[other]["rng"], other
