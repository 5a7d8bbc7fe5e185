"""`python -m nnx export CHECKPOINT OUT`: the model rebuilt from the checkpoint's recorded architecture."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np

from onnx_support import onnx, rel_err, run_onnx  # skips the module without onnx/onnxruntime

import nnx
from nnx.__main__ import main
from nnx.train import Checkpoint, History

# The directory holding the nnx that the tests imported (the source tree, or site-packages in CI).
NNX_PARENT = os.path.dirname(nnx.__path__[0])


def _checkpoint(path, name):
    nnx.manual_seed(3)
    model = nnx.models.build(name)
    opt = nnx.optim.SGD(model.parameters(), lr=0.1)
    Checkpoint(path, model, opt, extra={"model": name, "lr": 0.1})(1, History())
    return model.eval()


def test_export_command_rebuilds_the_recorded_model(tmp_path):
    ckpt = tmp_path / "checkpoint.npz"
    model = _checkpoint(ckpt, "lenet5")
    out = tmp_path / "lenet5.onnx"
    env = dict(os.environ, PYTHONPATH=NNX_PARENT)
    res = subprocess.run([sys.executable, "-m", "nnx", "export", str(ckpt), str(out)], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert "wrote" in res.stdout and "lenet5" in res.stdout
    onnx.checker.check_model(onnx.load(str(out)), full_check=True)
    for b in (1, 7):
        x = np.random.default_rng(b).standard_normal((b, 1, 28, 28)).astype(np.float32)
        with nnx.no_grad():
            want = model(x).numpy()
        assert rel_err(run_onnx(out, x)[0], want) <= 1e-5


def test_export_command_options_and_errors(tmp_path, capsys):
    ckpt = tmp_path / "checkpoint.npz"
    model = _checkpoint(ckpt, "mlp")
    out = tmp_path / "mlp.onnx"
    assert main(["export", str(ckpt), str(out), "--static-batch", "--opset", "13"]) == 0
    proto = onnx.load(str(out))
    assert proto.opset_import[0].version == 13
    assert [d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim] == [1, 1, 28, 28]
    x = np.ones((1, 1, 28, 28), np.float32)
    with nnx.no_grad():
        assert rel_err(run_onnx(out, x)[0], model(x).numpy()) <= 1e-5

    bare = tmp_path / "weights.npz"  # a bare state dict records no architecture
    nnx.save(model.state_dict(), bare)
    capsys.readouterr()
    assert main(["export", str(bare), str(out)]) == 1
    assert "does not record a known architecture" in capsys.readouterr().err
    assert main(["export", str(bare), str(out), "--model", "mlp"]) == 0
    assert main(["export", str(bare), str(out), "--model", "lenet5"]) == 1
    assert "missing keys" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "absent.npz"), str(out)]) == 1
    assert main(["export", str(ckpt), str(out), "--opset", "9"]) == 1
    assert "opset: expected an integer from 13" in capsys.readouterr().err
