"""Shared helpers of the ONNX tests: run an exported file in onnxruntime and compare with nnx."""
from __future__ import annotations

import numpy as np
import pytest

import nnx

onnx = pytest.importorskip("onnx", reason="the ONNX tests need the optional extra nnx[onnx] (pip install onnx)")
ort = pytest.importorskip("onnxruntime", reason="the ONNX tests run exported files in onnxruntime "
                                                "(pip install onnxruntime)")

# Relative to the largest magnitude of the expected output: a float32 sum rounded in another order
# differs by a few ulps of its terms, which an element near zero would make look large.
RTOL = 1e-5


def rel_err(got, want) -> float:
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, f"shape {got.shape} vs {want.shape}"
    nan = np.isnan(want)
    assert np.array_equal(nan, np.isnan(got)), "NaN in different places"
    if nan.all():
        return 0.0
    scale = max(np.abs(want[~nan]).max(), 1e-30)
    return float(np.abs(got[~nan] - want[~nan]).max() / scale)


def dims(value_info) -> list:
    """The declared shape of a graph input/output: sizes, dimension names, 0 where neither."""
    return [d.dim_param or d.dim_value for d in value_info.type.tensor_type.shape.dim]


def session(path):
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(path, *inputs):
    """Runs the file on `inputs` (nested tuples, as the model takes them, are flattened in order)."""
    inputs = flat_outputs(inputs)
    sess = session(path)
    names = [i.name for i in sess.get_inputs()]
    return sess.run(None, {n: np.ascontiguousarray(x, np.float32 if x.dtype.kind == "f" else np.int64)
                           for n, x in zip(names, inputs)})


def flat_outputs(out):
    if isinstance(out, (tuple, list)):
        return [y for o in out if o is not None for y in flat_outputs(o)]
    return [out.numpy() if isinstance(out, nnx.Tensor) else np.asarray(out)]



def nnx_outputs(model, *inputs):
    with nnx.no_grad():
        return flat_outputs(model(*inputs))


def check_export(model, make_input, tmp_path, batches=(1, 7), **kw):
    """Exports `model` once (example at the first batch size) and checks onnx.checker and that
    onnxruntime matches nnx at every batch size from the same file. make_input(batch) -> tuple of arrays."""
    model.eval()
    path = tmp_path / "model.onnx"
    nnx.onnx.export(model, make_input(batches[0]), path, **kw)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    for b in batches:
        xs = make_input(b)
        xs = xs if isinstance(xs, tuple) else (xs,)
        want = nnx_outputs(model, *xs)
        got = run_onnx(path, *xs)
        assert len(got) == len(want)
        for i, (g, w) in enumerate(zip(got, want)):
            err = rel_err(g, w)
            assert err <= RTOL, f"batch {b}, output {i}: relative error {err:.2e} > {RTOL}"
    return path
