"""The onnx package is optional: `import nnx` never needs it, and export says how to get it."""
from __future__ import annotations

import os
import subprocess
import sys

import nnx

# The directory holding the nnx that the tests imported (the source tree, or site-packages in CI).
NNX_PARENT = os.path.dirname(nnx.__path__[0])

SCRIPT = """
import sys
sys.modules["onnx"] = None          # makes `import onnx` fail, as when the package is not installed
sys.modules["onnxruntime"] = None
import numpy as np
import nnx
model = nnx.models.lenet5()
for call in (lambda: nnx.onnx.export(model, np.zeros((1, 1, 28, 28), np.float32), "m.onnx"),
             lambda: nnx.onnx.load_weights(model, "m.onnx")):
    try:
        call()
    except ImportError as exc:
        assert "pip install 'nnx[onnx]'" in str(exc), exc
    else:
        raise AssertionError("no ImportError")
print("ok")
"""


def test_import_nnx_without_onnx(tmp_path):
    env = dict(os.environ, PYTHONPATH=NNX_PARENT)
    res = subprocess.run([sys.executable, "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "ok"
    assert not (tmp_path / "m.onnx").exists()
    # Installed or not, importing nnx does not load it.
    res = subprocess.run([sys.executable, "-c", "import sys, nnx; print(sorted(m for m in sys.modules "
                          "if m.split('.')[0] in ('onnx', 'onnxruntime')))"], env=env, capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "[]"
