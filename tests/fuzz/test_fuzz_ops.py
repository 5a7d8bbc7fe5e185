"""Property tests over every public op of nnx.ops with random valid and invalid arguments.

Valid arguments (random shapes including empty batches, both dtypes, random parameters, random layouts:
strided slices, negative strides, Fortran order, zero-stride broadcast views, read-only and unaligned
arrays; random ISA and thread count) must agree with nnx.reference within tests/optest.py's tolerances.
Invalid arguments (a wrong dtype, mixed float32/float64, a wrong rank, a mismatched shape, an out-of-range
parameter or target) must raise exactly the ValueError or TypeError the mutation calls for, with a message
naming the argument: never a crash, a hang or a silently wrong result.

Runs:
    PYTHONPATH=python python -m pytest -q tests/fuzz                     # default budget (CI)
    NNX_FUZZ=long PYTHONPATH=python python -m pytest -q tests/fuzz       # 10x the examples
    NNX_FUZZ_EXAMPLES=1000 PYTHONPATH=python python -m pytest -q tests/fuzz
Add --hypothesis-show-statistics for per-test figures; the "nnx fuzz" section of the summary counts the
cases that ran.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import nnx
from nnx import ops, reference as ref
from fuzz_support import CASES, FUZZ_SETTINGS, RAISED, Case, _arr, _dims, _param
from fuzz_layer_builders import (_RNN_GATES, _batch_norm, _dropout, _embedding, _layer_norm, _maxout,
                                 _recurrent)
from optest import assert_close, rtol_for

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")

DTYPES = (np.float32, np.float64)
ACTIVATIONS = (None, "none", "relu", "leaky_relu", "sigmoid", "tanh")
REDUCTIONS = ("mean", "sum")
LAYOUTS = ("c", "strided", "negative", "fortran", "broadcast", "readonly", "unaligned")


def _isas():
    detected = nnx.cpu_info()["detected_isa"]
    order = ["avx512", "avx2", "portable"]
    return order[order.index(detected):] if detected in order else [detected, "portable"]


ISAS = _isas()


# ----------------------------------------------------------------------------------------------------
# Layouts: the same logical array in a different memory arrangement. "broadcast" changes the values
# (one slice repeated through a zero stride), which is fine: the op and the reference see the same array.

def relayout(draw, a: np.ndarray, allow_broadcast=True) -> np.ndarray:
    layout = draw(st.sampled_from(LAYOUTS if allow_broadcast else LAYOUTS[:4] + LAYOUTS[5:]))
    if a.ndim == 0 or layout == "c":
        return a
    ax = draw(st.integers(0, a.ndim - 1))
    if layout == "strided":
        shape = list(a.shape)
        shape[ax] *= 2
        big = np.zeros(shape, a.dtype)
        sl = [slice(None)] * a.ndim
        sl[ax] = slice(None, None, 2)
        big[tuple(sl)] = a
        return big[tuple(sl)]
    if layout == "negative":
        return np.flip(np.ascontiguousarray(np.flip(a, ax)), ax)
    if layout == "fortran":
        return np.asfortranarray(a)
    if layout == "broadcast":
        if a.shape[ax] == 0:
            return a
        sl = [slice(None)] * a.ndim
        sl[ax] = slice(0, 1)
        return np.broadcast_to(a[tuple(sl)], a.shape)
    if layout == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    buf = np.zeros(a.nbytes + a.itemsize + 1, np.uint8)[1:1 + a.nbytes]  # odd byte offset
    b = buf.view(a.dtype).reshape(a.shape)
    b[...] = a
    return b


# ----------------------------------------------------------------------------------------------------
# Valid cases, one builder per op. Each gets `draw` and a seeded generator.

ELEMENTWISE = {"relu": {}, "sigmoid": {}, "tanh": {},
               "leaky_relu": {"negative_slope": st.floats(-2, 2)}, "elu": {"alpha": st.floats(0, 2)}}


def _elementwise(name, backward):
    params = ELEMENTWISE[name]

    def build(draw, rng, dtype):
        shape = _dims(draw, draw(st.integers(0, 4)), 0, 5)
        kw = {"x": _arr(rng, shape, dtype, -4, 4)}
        for p, strat in params.items():
            kw[p] = draw(strat)
        bad = [(p, "0.5", TypeError) for p in params] + [(p, True, TypeError) for p in params]
        if backward:
            kw["dy"] = _arr(rng, shape, dtype)
            return Case(kw, floats=("dy", "x"), determined={"dy": "all"}, bad=bad)
        return Case(kw, floats=("x",), bad=bad)
    return build


def _softmax(backward):
    def build(draw, rng, dtype):
        shape = _dims(draw, draw(st.integers(1, 4)), 0, 5)
        axis = draw(st.integers(-len(shape), len(shape) - 1))
        kw = {"x": _arr(rng, shape, dtype, -5, 5), "axis": axis}
        bad = [("axis", len(shape), ValueError), ("axis", -len(shape) - 1, ValueError), ("axis", 1.0, TypeError),
               ("x", np.zeros((), dtype), ValueError)]
        if backward:
            kw["dy"] = _arr(rng, shape, dtype)
            # s * (dy - sum(dy * s)) cancels to 0 where dy is constant along the axis (a broadcast dy).
            return Case(kw, k=shape[axis], floats=("dy", "x"), determined={"dy": "all"}, bad=bad, floor="dy")
        return Case(kw, k=shape[axis], floats=("x",), bad=bad)
    return build


def _gemm_shapes(draw, rng, dtype):
    m, n, k = _dims(draw, 3, 0, 9)
    ta, tb = draw(st.booleans()), draw(st.booleans())
    a = _arr(rng, (k, m) if ta else (m, k), dtype)
    b = _arr(rng, (n, k) if tb else (k, n), dtype)
    c_shape = draw(st.sampled_from([None, (m, n), (n,), (1, n), (m, 1), ()]))
    kw = {"a": a, "b": b, "trans_a": ta, "trans_b": tb, "alpha": draw(st.floats(-2, 2)),
          "beta": draw(st.sampled_from([0.0, 1.0, -0.5]))}
    if c_shape is not None:
        kw["c"] = _arr(rng, c_shape, dtype)
    floats = ("a", "b") + (("c",) if c_shape is not None else ())
    return kw, (m, n, k), floats


def build_gemm(draw, rng, dtype):
    kw, (m, n, k), floats = _gemm_shapes(draw, rng, dtype)
    det = {"b": [1 if kw["trans_b"] else 0]}
    bad = [("c", np.zeros((m + 1, n + 2), dtype), ValueError)]
    return Case(kw, k=k, floats=floats, ranked=("a", "b"), determined=det, bad=bad)


def build_gemm_backward(draw, rng, dtype):
    kw, (m, n, k), floats = _gemm_shapes(draw, rng, dtype)
    kw["dy"] = _arr(rng, (m, n), dtype)
    det = {"dy": "all", "b": [1 if kw["trans_b"] else 0]}
    bad = [("c", np.zeros((m + 1, n + 2), dtype), ValueError)]
    return Case(kw, k=max(m, n, k), floats=("dy",) + floats, ranked=("dy", "a", "b"), determined=det, bad=bad)


def _matmul_kw(draw, rng, dtype):
    """Operands of 1 to 4 axes with NumPy's matmul rules: leading axes broadcast (some of each operand's set to
    1), a 1-D a a row, a 1-D b a column."""
    m, n, k = _dims(draw, 3, 0, 7)
    nda, ndb = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    batch = _dims(draw, max(nda, ndb, 2) - 2, 1, 3)

    def lead(nd):
        dims = batch[len(batch) - (nd - 2):] if nd > 2 else ()
        return tuple(1 if draw(st.booleans()) else d for d in dims)

    a_shape = (k,) if nda == 1 else lead(nda) + (m, k)
    b_shape = (k,) if ndb == 1 else lead(ndb) + (k, n)
    kw = {"a": _arr(rng, a_shape, dtype), "b": _arr(rng, b_shape, dtype)}
    out_shape = np.matmul(np.empty(a_shape), np.empty(b_shape)).shape
    det = {"b": [max(ndb - 2, 0)]}
    bad = [("a", np.zeros((), dtype), ValueError), ("b", np.zeros((), dtype), ValueError)]
    return kw, (m, n, k, max(1, math.prod(batch))), out_shape, det, bad


def build_matmul(draw, rng, dtype):
    kw, (m, n, k, nb), _, det, bad = _matmul_kw(draw, rng, dtype)
    return Case(kw, k=k, floats=("a", "b"), determined=det, bad=bad)


def build_matmul_backward(draw, rng, dtype):
    kw, (m, n, k, nb), out_shape, det, bad = _matmul_kw(draw, rng, dtype)
    kw["dy"] = _arr(rng, out_shape, dtype)
    kw["needs"] = tuple(draw(st.lists(st.booleans(), min_size=2, max_size=2)))
    det["dy"] = "all"
    # db sums over every product's rows, the batch included.
    return Case(kw, k=max(m, n, k) * nb, floats=("dy", "a", "b"), determined=det, bad=bad)


def _linear_kw(draw, rng, dtype):
    n, i, o = draw(st.integers(0, 6)), draw(st.integers(0, 9)), draw(st.integers(0, 9))
    kw = {"x": _arr(rng, (n, i), dtype), "w": _arr(rng, (o, i), dtype),
          "activation": draw(st.sampled_from(ACTIVATIONS)), "negative_slope": draw(st.floats(0, 0.5))}
    if draw(st.booleans()):
        kw["b"] = _arr(rng, (o,), dtype)
    floats = ("x", "w") + (("b",) if "b" in kw else ())
    bad = [("activation", "gelu", ValueError), ("activation", 3, ValueError)]
    return kw, (n, i, o), floats, bad


def build_linear(draw, rng, dtype):
    kw, (n, i, o), floats, bad = _linear_kw(draw, rng, dtype)
    return Case(kw, k=i, floats=floats, ranked=("x", "w", "b"), determined={"w": [1], "b": "all"}, bad=bad)


def build_linear_backward(draw, rng, dtype):
    kw, (n, i, o), floats, bad = _linear_kw(draw, rng, dtype)
    kw["dy"] = _arr(rng, (n, o), dtype)
    kw["needs"] = tuple(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    det = {"w": [1], "b": "all", "dy": "all"}
    if kw["activation"] not in (None, "none"):
        kw["y"] = ref.linear(kw["x"], kw["w"], kw.get("b"), activation=kw["activation"],
                             negative_slope=kw["negative_slope"])
        floats += ("y",)
        det["y"] = "all"
    return Case(kw, k=max(n, i, o), floats=("dy",) + floats, ranked=("x", "w", "b", "dy"), determined=det, bad=bad)


def _conv_geometry(draw):
    groups = draw(st.integers(1, 3))
    cg, kg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    r, s = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    st_, pad, dil = _dims(draw, 2, 1, 3), _dims(draw, 2, 0, 2), _dims(draw, 2, 1, 2)
    eh, ew = dil[0] * (r - 1) + 1, dil[1] * (s - 1) + 1
    h = draw(st.integers(max(1, eh - 2 * pad[0]), max(1, eh - 2 * pad[0]) + 5))
    w = draw(st.integers(max(1, ew - 2 * pad[1]), max(1, ew - 2 * pad[1]) + 5))
    n = draw(st.integers(0, 2))
    return n, groups, cg, kg, r, s, h, w, st_, pad, dil


def _conv_kw(draw, rng, dtype):
    n, groups, cg, kg, r, s, h, wd, st_, pad, dil = _conv_geometry(draw)
    c, k = cg * groups, kg * groups
    plain1x1 = r == s == 1 and st_ == (1, 1) and pad == (0, 0)
    winograd = r == s and r in (3, 5) and st_ == (1, 1) and dil == (1, 1) and groups == 1
    algos = ["auto", "im2col", "direct", "implicit"] + (["gemm1x1"] if plain1x1 else []) + \
        (["depthwise"] if cg == 1 else []) + (["winograd"] if winograd else [])
    kw = {"x": _arr(rng, (n, c, h, wd), dtype), "w": _arr(rng, (k, cg, r, s), dtype),
          "stride": _param(draw, st_), "padding": _param(draw, pad), "dilation": _param(draw, dil),
          "groups": groups, "activation": draw(st.sampled_from(ACTIVATIONS)),
          "negative_slope": draw(st.floats(0, 0.5)), "algorithm": draw(st.sampled_from(algos))}
    if draw(st.booleans()):
        kw["b"] = _arr(rng, (k,), dtype)
    floats = ("x", "w") + (("b",) if "b" in kw else ())
    eh = dil[0] * (r - 1) + 1
    too_big = np.zeros((k, cg, (h + 2 * pad[0]) // dil[0] + 2, s), dtype)  # spans more than the padded input
    bad = [("stride", 0, ValueError), ("stride", (1, -1), ValueError), ("stride", 1.0, TypeError),
           ("stride", (1, 2, 3), ValueError), ("padding", -1, ValueError), ("padding", (0, True), TypeError),
           ("dilation", 0, ValueError), ("groups", 0, ValueError), ("groups", c + 1, ValueError),
           ("groups", 1.5, TypeError), ("activation", "softplus", ValueError), ("algorithm", "fft", ValueError),
           ("w", too_big, ValueError), ("stride", 1 << 62, ValueError), ("padding", (0, 1 << 40), ValueError),
           ("dilation", 1 << 63, ValueError)]
    if not plain1x1:
        bad.append(("algorithm", "gemm1x1", ValueError))
    if cg != 1:
        bad.append(("algorithm", "depthwise", ValueError))
    assert eh <= h + 2 * pad[0]
    return kw, (n, c, h, wd, k, cg, r, s), floats, bad


def _winograd_floor(kw):
    """Winograd's rounding follows its transforms' intermediate values, which grow with the sum of |terms|
    (at most k * max|x|, or k * max|dy| for dx, for weights in [-1, 1]), not with the result, which may
    cancel to far less."""
    return "x" if kw["algorithm"] == "winograd" else None


def build_conv2d(draw, rng, dtype):
    kw, (n, c, h, wd, k, cg, r, s), floats, bad = _conv_kw(draw, rng, dtype)
    return Case(kw, k=cg * r * s, floats=floats, ranked=("x", "w", "b"), determined={"w": [1], "b": "all"},
                bad=bad, floor=_winograd_floor(kw))


def build_conv2d_backward(draw, rng, dtype):
    kw, (n, c, h, wd, k, cg, r, s), floats, bad = _conv_kw(draw, rng, dtype)
    fwd = {key: kw[key] for key in ("stride", "padding", "dilation", "groups", "activation", "negative_slope")}
    y = ref.conv2d(kw["x"], kw["w"], kw.get("b"), **fwd)
    kw["dy"] = _arr(rng, y.shape, dtype)
    kw["needs"] = tuple(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    det = {"w": [1], "b": "all", "dy": "all"}
    if kw["activation"] not in (None, "none"):
        kw["y"] = y
        floats += ("y",)
        det["y"] = "all"
    p, q = y.shape[2:]
    return Case(kw, k=max(cg * r * s, n * p * q, (k // kw["groups"]) * r * s, 1), floats=("dy",) + floats,
                ranked=("x", "w", "b", "dy"), determined=det, bad=bad,
                floor="dy" if _winograd_floor(kw) else None)


def build_conv2d_algorithm(draw, rng, dtype):
    kw, _, _, bad = _conv_kw(draw, rng, dtype)
    call = {"x_shape": kw["x"].shape, "w_shape": kw["w"].shape}
    call.update({key: kw[key] for key in ("stride", "padding", "dilation", "groups")})
    # The shapes' errors name x and w, the arrays the shapes describe.
    bad = [b for b in bad if b[0] in call] + [("x_shape", (1, 2, 3), ValueError, "x"),
                                              ("w_shape", (1, 1, 0, 1), ValueError, "w")]
    return Case(call, bad=bad)


def _pool_geometry(draw, dilation=True, padding=True):
    kh, kw_ = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    dil = _dims(draw, 2, 1, 2) if dilation else (1, 1)
    pad = (draw(st.integers(0, kh // 2)), draw(st.integers(0, kw_ // 2))) if padding else (0, 0)
    spans = (dil[0] * (kh - 1) + 1, dil[1] * (kw_ - 1) + 1)
    h = draw(st.integers(max(1, spans[0] - 2 * pad[0]), max(1, spans[0] - 2 * pad[0]) + 6))
    w = draw(st.integers(max(1, spans[1] - 2 * pad[1]), max(1, spans[1] - 2 * pad[1]) + 6))
    stride = draw(st.one_of(st.none(), st.tuples(st.integers(1, 3), st.integers(1, 3))))
    n, c = draw(st.integers(0, 2)), draw(st.integers(0, 3))
    return (n, c, h, w), (kh, kw_), stride, pad, dil


def _pool_bad(shape, k, pad, dilation=True, padding=True):
    h, w = shape[2:]
    bad = [("kernel_size", 0, ValueError), ("kernel_size", (2, -1), ValueError), ("kernel_size", 2.0, TypeError),
           ("kernel_size", (h + 2 * pad[0] + 1, k[1]), ValueError), ("stride", 0, ValueError),
           ("stride", "2", TypeError), ("stride", 1 << 63, ValueError), ("kernel_size", (1, 1 << 40), ValueError)]
    if padding:
        bad += [("padding", -1, ValueError), ("padding", (k[0] // 2 + 1, 0), ValueError),
                ("padding", 0.0, TypeError)]
    if dilation:
        bad += [("dilation", 0, ValueError), ("dilation", (1, -2), ValueError)]
    return bad


def _pool_kw(draw, rng, dtype, dilation, padding, low=-1.0):
    shape, k, stride, pad, dil = _pool_geometry(draw, dilation, padding)
    kw = {"x": _arr(rng, shape, dtype, low, 1.0), "kernel_size": _param(draw, k)}
    if stride is not None or draw(st.booleans()):
        kw["stride"] = None if stride is None else _param(draw, stride)
    if padding:
        kw["padding"] = _param(draw, pad)
    if dilation:
        kw["dilation"] = _param(draw, dil)
    return kw, shape, k, pad


def _pool_out(kw):
    return ref.max_pool2d(**kw).shape


def build_max_pool2d(draw, rng, dtype):
    kw, shape, k, pad = _pool_kw(draw, rng, dtype, True, True)
    kw["return_indices"] = draw(st.booleans())
    if draw(st.booleans()):
        kw["activation"] = draw(st.sampled_from([None, "relu"]))
    bad = _pool_bad(shape, k, pad) + [("activation", "tanh", ValueError)]
    return Case(kw, floats=("x",), ranked=("x",), bad=bad)


def build_max_pool2d_backward(draw, rng, dtype):
    kw, shape, k, pad = _pool_kw(draw, rng, dtype, True, True)
    out_shape = _pool_out(kw)
    kw["dy"] = _arr(rng, out_shape, dtype)
    ints = ()
    bad = _pool_bad(shape, k, pad)
    if draw(st.booleans()):
        fwd = {key: v for key, v in kw.items() if key != "dy"}
        idx = ops.max_pool2d(**fwd, return_indices=True)[1]
        kw["indices"] = idx.astype(draw(st.sampled_from([np.int32, np.int64])))
        ints = ("indices",)
        plane = shape[2] * shape[3]
        if idx.size:
            for wrong in (plane, -2):
                for itype in (np.int32, np.int64):
                    b = idx.astype(itype)
                    b.reshape(-1)[draw(st.integers(0, idx.size - 1))] = wrong
                    bad.append(("indices", b, ValueError))
        bad.append(("indices", idx.astype(np.float64), TypeError))
    det = {"dy": "all"}
    if ints:
        det["indices"] = "all"
    floats = ("dy", "x")
    if draw(st.booleans()):  # the backward of max_pool2d(..., activation="relu"), from its output y
        fwd = {key: v for key, v in kw.items() if key not in ("dy", "indices")}
        kw["activation"], kw["y"] = "relu", ref.max_pool2d(**fwd, activation="relu")
        floats += ("y",)
        det["y"] = "all"
        bad.append(("activation", "tanh", ValueError))
    return Case(kw, k=max(1, k[0] * k[1]), floats=floats, ints=ints, ranked=("dy", "x"), determined=det, bad=bad)


def _conv_pool_kw(draw, rng, dtype):
    """conv2d_max_pool2d's arguments: a conv case whose inputs are multiples of 1/4 (the convolution's
    outputs then exact in both precisions, so the maxima and their indices, ties included, are the
    reference's exactly; Winograd's transforms would round, so it is not drawn), and a pooling of its output."""
    kw, (n, c, h, wd, k, cg, r, s), floats, bad = _conv_kw(draw, rng, dtype)
    for key in floats:
        kw[key] = (np.round(kw[key] * 4) / 4).astype(dtype)
    del kw["activation"], kw["negative_slope"]
    conv = {key: v for key, v in kw.items() if key != "algorithm"}
    if kw["algorithm"] == "winograd" or (kw["algorithm"] == "auto" and ops.conv2d_algorithm(
            kw["x"].shape, kw["w"].shape, kw["stride"], kw["padding"], kw["dilation"], kw["groups"]) == "winograd"):
        kw["algorithm"] = "im2col"
    p, q = ref.conv2d(**conv).shape[2:]
    kh, kw_ = draw(st.integers(1, min(3, p))), draw(st.integers(1, min(3, q)))
    kw["kernel_size"] = _param(draw, (kh, kw_))
    if draw(st.booleans()):
        kw["pool_stride"] = _param(draw, (draw(st.integers(1, 3)), draw(st.integers(1, 3))))
    kw["activation"] = draw(st.sampled_from([None, "relu"]))
    bad = [b for b in bad if b[0] != "activation"] + [
        ("kernel_size", 0, ValueError), ("kernel_size", (p + 1, 1), ValueError), ("pool_stride", 0, ValueError),
        ("activation", "tanh", ValueError)]
    return kw, cg * r * s, floats, bad


def build_conv2d_max_pool2d(draw, rng, dtype):
    kw, k, floats, bad = _conv_pool_kw(draw, rng, dtype)
    return Case(kw, k=k, floats=floats, ranked=("x", "w", "b"), determined={"w": [1], "b": "all"}, bad=bad)


def build_conv2d_max_pool2d_backward(draw, rng, dtype):
    kw, k, floats, bad = _conv_pool_kw(draw, rng, dtype)
    y, idx = ops.conv2d_max_pool2d(**kw)
    kw["dy"], kw["indices"] = _arr(rng, y.shape, dtype), idx
    if kw["activation"] is not None:
        kw["y"] = y
    kw["needs"] = tuple(draw(st.lists(st.booleans(), min_size=3, max_size=3)))
    det = {"w": [1], "b": "all", "dy": "all", "indices": "all"}
    n, _, h, w = kw["x"].shape
    return Case(kw, k=max(k, n * h * w, 1), floats=("dy",) + floats, ints=("indices",), ranked=("x", "w", "b", "dy"),
                determined=det, bad=bad)


def build_avg_pool2d(draw, rng, dtype):
    kw, shape, k, pad = _pool_kw(draw, rng, dtype, False, True)
    return Case(kw, k=k[0] * k[1], floats=("x",), ranked=("x",), bad=_pool_bad(shape, k, pad, dilation=False))


def build_avg_pool2d_backward(draw, rng, dtype):
    kw, shape, k, pad = _pool_kw(draw, rng, dtype, False, True)
    kw["dy"] = _arr(rng, ref.avg_pool2d(**kw).shape, dtype)
    return Case(kw, k=k[0] * k[1], floats=("dy", "x"), ranked=("dy", "x"), determined={"dy": "all"},
                bad=_pool_bad(shape, k, pad, dilation=False))


NORM_TYPES = (1, 2, 3, 1.5, 2.0, math.inf)


def _lp_bad(shape, k):
    return (_pool_bad(shape, k, (0, 0), dilation=False, padding=False)
            + [("norm_type", 0, ValueError), ("norm_type", -2.0, ValueError), ("norm_type", math.nan, ValueError),
               ("norm_type", "2", TypeError), ("norm_type", True, TypeError)])


def build_lp_pool2d(draw, rng, dtype):
    # Positive inputs: fractional powers of negative numbers are NaN on both sides and prove nothing.
    kw, shape, k, _ = _pool_kw(draw, rng, dtype, False, False, low=0.1)
    kw["norm_type"] = draw(st.sampled_from(NORM_TYPES))
    return Case(kw, k=4 * k[0] * k[1], floats=("x",), ranked=("x",), bad=_lp_bad(shape, k))


def build_lp_pool2d_backward(draw, rng, dtype):
    kw, shape, k, _ = _pool_kw(draw, rng, dtype, False, False, low=0.1)
    kw["norm_type"] = draw(st.sampled_from(NORM_TYPES))
    kw["dy"] = _arr(rng, ref.lp_pool2d(**kw).shape, dtype)
    return Case(kw, k=4 * k[0] * k[1], floats=("dy", "x"), ranked=("dy", "x"), determined={"dy": "all"},
                bad=_lp_bad(shape, k))


def build_global_avg_pool2d(draw, rng, dtype):
    shape = (draw(st.integers(0, 2)), draw(st.integers(0, 3)), draw(st.integers(1, 9)), draw(st.integers(1, 9)))
    return Case({"x": _arr(rng, shape, dtype)}, k=shape[2] * shape[3], floats=("x",), ranked=("x",),
                bad=[("x", np.zeros(shape[:2] + (0, 3), dtype), ValueError)])


def build_global_avg_pool2d_backward(draw, rng, dtype):
    case = build_global_avg_pool2d(draw, rng, dtype)
    n, c = case.kw["x"].shape[:2]
    case.kw["dy"] = _arr(rng, (n, c, 1, 1), dtype)
    case.floats, case.ranked, case.determined = ("dy", "x"), ("dy", "x"), {"dy": "all"}
    return case


def _dy_scalar(draw, rng, dtype):
    return draw(st.sampled_from([float(rng.uniform(-2, 2)), np.asarray(rng.uniform(-2, 2), dtype), 1]))


def _class_loss(name, backward):
    hinge = name.startswith("multiclass_hinge")
    key = "scores" if hinge else "logits"

    def build(draw, rng, dtype):
        n, c = draw(st.integers(0, 6)), draw(st.integers(1, 7))
        kw = {key: _arr(rng, (n, c), dtype, -3, 3),
              "target": rng.integers(0, c, size=n).astype(draw(st.sampled_from([np.int64, np.int32, np.uint8]))),
              "reduction": draw(st.sampled_from(REDUCTIONS))}
        bad = [("reduction", "avg", ValueError), ("reduction", None, ValueError),
               ("target", kw["target"].astype(np.float64), TypeError),
               ("target", kw["target"].astype(bool), TypeError),
               ("target", np.zeros(n + 1, np.int64), ValueError)]
        if n:
            for wrong in (c, -1, 2**40):
                t = kw["target"].astype(np.int64)
                t[draw(st.integers(0, n - 1))] = wrong
                bad.append(("target", t, ValueError))
        if hinge:
            kw["margin"] = draw(st.floats(0, 2))
            bad += [("margin", "1", TypeError), ("margin", None, TypeError)]
        if backward:
            kw["dy"] = _dy_scalar(draw, rng, dtype)
            bad += [("dy", np.ones(2), ValueError), ("dy", "1", TypeError), ("dy", 1j, TypeError)]
        return Case(kw, k=n * c, floats=(key,), ints=("target",), ranked=(key, "target"),
                    determined={"target": "all"}, bad=bad)
    return build


def _pair_loss(name, backward):
    key = "pred" if name.startswith("mse") else "z"

    def build(draw, rng, dtype):
        shape = _dims(draw, draw(st.integers(0, 3)), 0, 5)
        kw = {key: _arr(rng, shape, dtype, -3, 3),
              "target": _arr(rng, shape, dtype, 0 if key == "z" else -3, 1 if key == "z" else 3),
              "reduction": draw(st.sampled_from(REDUCTIONS))}
        bad = [("reduction", "none", ValueError)]
        if backward:
            kw["dy"] = _dy_scalar(draw, rng, dtype)
            bad += [("dy", np.ones((2, 1)), ValueError), ("dy", "1", TypeError)]
        return Case(kw, k=max(1, int(np.prod(shape))), floats=(key, "target"), determined={"target": "all"},
                    bad=bad)
    return build


def _whole_sum(backward):
    """sum / mean of all of x's elements (any shape, 0-d and empty included); the backward takes a scalar dy."""
    def build(draw, rng, dtype):
        shape = _dims(draw, draw(st.integers(0, 4)), 0, 5)
        kw = {"x": _arr(rng, shape, dtype, -3, 3)}
        # Terms of both signs cancel: differences below rtol times the terms' size (3 per element) pass.
        k = max(1, int(np.prod(shape)))
        if backward:
            kw["dy"] = _dy_scalar(draw, rng, dtype)
            return Case(kw, k=k, floats=("x",), bad=[("dy", np.ones((2, 1)), ValueError), ("dy", "1", TypeError)])
        return Case(kw, k=k, floats=("x",), floor="x")
    return build


BUILDERS = {
    "maxout": _maxout(False), "maxout_backward": _maxout(True),
    "gemm": build_gemm, "gemm_backward": build_gemm_backward, "linear": build_linear,
    "linear_backward": build_linear_backward, "matmul": build_matmul, "matmul_backward": build_matmul_backward,
    "conv2d": build_conv2d, "conv2d_backward": build_conv2d_backward,
    "conv2d_algorithm": build_conv2d_algorithm, "conv2d_dx_path": build_conv2d_algorithm,
    "max_pool2d": build_max_pool2d, "max_pool2d_backward": build_max_pool2d_backward,
    "conv2d_max_pool2d": build_conv2d_max_pool2d, "conv2d_max_pool2d_backward": build_conv2d_max_pool2d_backward,
    "avg_pool2d": build_avg_pool2d, "avg_pool2d_backward": build_avg_pool2d_backward,
    "lp_pool2d": build_lp_pool2d, "lp_pool2d_backward": build_lp_pool2d_backward,
    "global_avg_pool2d": build_global_avg_pool2d, "global_avg_pool2d_backward": build_global_avg_pool2d_backward,
    "softmax": _softmax(False), "softmax_backward": _softmax(True),
    "log_softmax": _softmax(False), "log_softmax_backward": _softmax(True),
    "batch_norm": _batch_norm(False), "batch_norm_backward": _batch_norm(True),
    "layer_norm": _layer_norm(False), "layer_norm_backward": _layer_norm(True),
    "dropout": _dropout(False), "dropout_backward": _dropout(True),
}
for _name in ELEMENTWISE:
    BUILDERS[_name] = _elementwise(_name, False)
    BUILDERS[_name + "_backward"] = _elementwise(_name, True)
for _name in ("cross_entropy", "multiclass_hinge_loss"):
    BUILDERS[_name] = _class_loss(_name, False)
    BUILDERS[_name + "_backward"] = _class_loss(_name, True)
for _name in ("mse_loss", "binary_cross_entropy_with_logits"):
    BUILDERS[_name] = _pair_loss(_name, False)
    BUILDERS[_name + "_backward"] = _pair_loss(_name, True)
for _name in _RNN_GATES:
    BUILDERS[_name] = _recurrent(_name, False)
    BUILDERS[_name + "_backward"] = _recurrent(_name, True)
BUILDERS["embedding"], BUILDERS["embedding_backward"] = _embedding(False), _embedding(True)
for _name in ("sum", "mean"):
    BUILDERS[_name], BUILDERS[_name + "_backward"] = _whole_sum(False), _whole_sum(True)

OPS = sorted(ops.__all__)


def test_every_public_op_is_fuzzed():
    assert sorted(BUILDERS) == OPS


# ----------------------------------------------------------------------------------------------------
# Running a case

class _Backend:
    """Random ISA and thread count for one example, restored afterwards."""

    def __init__(self, draw):
        self.isa = draw(st.sampled_from(ISAS))
        self.threads = draw(st.sampled_from([1, 2, 3]))

    def __enter__(self):
        info = nnx.cpu_info()
        self.before = (info["active_isa"], info["num_threads"])
        nnx.set_isa(self.isa)
        nnx.set_num_threads(self.threads)

    def __exit__(self, *exc):
        nnx.set_isa(self.before[0])
        nnx.set_num_threads(self.before[1])


def _draw_case(data, name):
    dtype = np.dtype(data.draw(st.sampled_from(DTYPES), label="dtype"))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    case = BUILDERS[name](data.draw, rng, dtype)
    return case, dtype


def _close(got, want, dtype, k, label, floor):
    """assert_close, where differences below rtol * floor (the size of terms that cancelled) also pass."""
    if floor and got.shape == want.shape and got.size:
        tol = rtol_for(dtype, k) * floor
        got = np.where(np.abs(got.astype(np.float64) - want) <= tol, want, got).astype(got.dtype)
    assert_close(got, want, dtype, k, label)


def _compare(name, got, want, dtype, k, floor=0.0):
    if isinstance(want, tuple):
        assert isinstance(got, tuple) and len(got) == len(want), f"{name}: expected {len(want)} outputs"
        for i, (g, w) in enumerate(zip(got, want)):
            if w is None:
                assert g is None, f"{name} output {i} should be None"
            elif w.dtype.kind in "iu":  # max_pool2d's indices: exactly the reference's choice
                assert g.dtype == np.int32 and g.shape == w.shape and np.array_equal(g, w), f"{name} indices"
            else:
                _close(g, w, dtype, k, f"{name} output {i}", floor)
                assert g.flags.c_contiguous
    else:
        _close(got, want, dtype, k, name, floor)
        assert np.asarray(got).flags.c_contiguous


@pytest.mark.parametrize("name", OPS)
@FUZZ_SETTINGS
@given(data=st.data())
def test_valid_arguments_match_reference(name, data):
    case, dtype = _draw_case(data, name)
    kw = dict(case.kw)
    for key in case.floats + case.ints:
        if key in kw:
            kw[key] = relayout(data.draw, kw[key], allow_broadcast=key in case.floats)
    backend = _Backend(data.draw)
    CASES[(name, "valid")] += 1  # counted once every draw is made: an example hypothesis discards is not a case
    with backend:
        got = getattr(ops, name)(**kw)
    if name == "conv2d_dx_path":
        st = tuple(np.broadcast_to(np.asarray(kw.get("stride", 1)), (2,)))
        assert got in ("col2im", "direct", "implicit", "kvec", "depthwise", "winograd")
        if got in ("direct", "implicit", "kvec", "winograd"):  # the stride-1 forms of dx
            assert st == (1, 1)
        if got == "winograd":
            assert kw["w_shape"][2:] in ((3, 3), (5, 5))
        assert got in ("depthwise", "winograd") or got in ("col2im", "direct", "implicit", "kvec") and \
            (got == "col2im") == (ops.conv2d_algorithm(**kw) in ("im2col", "gemm1x1") or st != (1, 1))
        return
    if name == "conv2d_algorithm":
        from nnx.ops.conv import ALGORITHMS
        assert got in ALGORITHMS and got != "auto"
        k, cg, r, s = kw["w_shape"]
        if got == "depthwise":
            assert cg == 1 and kw["groups"] > 1
        if got == "gemm1x1":
            assert r == s == 1
        if got == "winograd":
            assert (r, s) in ((3, 3), (5, 5)) and kw.get("groups", 1) == 1
        if got == "implicit":  # auto picks the implicit GEMM for stride 1 only (strided dx has no direct form)
            st = kw.get("stride", 1)
            assert tuple(np.broadcast_to(np.asarray(st), (2,))) == (1, 1)
        return
    reference = getattr(ref, name)
    accepted = inspect.signature(reference).parameters
    want = reference(**{key: v for key, v in kw.items() if key in accepted})  # the reference has no algorithm=
    floor = case.k * float(np.max(np.abs(kw[case.floor]), initial=0.0)) if case.floor else 0.0
    _compare(name, got, want, dtype, case.k, floor)


# ----------------------------------------------------------------------------------------------------
# Invalid arguments: one mutation of a valid case.

BAD_DTYPES = (np.int32, np.int64, np.uint8, bool, np.complex128, np.float16, object)


def _mutations(case: Case, dtype):
    """(label, key, function of (kw, draw) -> new value, exception type) for every applicable mutation."""
    other = np.float64 if dtype == np.float32 else np.float32
    muts = []
    arrays = [k for k in case.floats if k in case.kw]
    for key in arrays:
        muts.append(("dtype", key, lambda a, draw: a.astype(draw(st.sampled_from(BAD_DTYPES))), TypeError))
        muts.append(("list-of-str", key, lambda a, draw: [["x"]], TypeError))
        if len(arrays) > 1:
            muts.append(("mixed", key, lambda a, draw: a.astype(other), TypeError))
    for key in case.ranked:
        if key in case.kw and case.kw[key] is not None:
            muts.append(("rank+1", key, lambda a, draw: a[np.newaxis], ValueError))
            if np.ndim(case.kw[key]) > 0:
                muts.append(("rank-1", key, lambda a, draw: a[..., 0] if a.shape[-1] else a.sum(-1), ValueError))
    for key, axes in case.determined.items():
        if key not in case.kw:
            continue
        shape = np.shape(case.kw[key])
        choices = list(range(len(shape))) if axes == "all" else list(axes)
        if not choices:
            continue

        def grow(a, draw, choices=choices):
            ax = draw(st.sampled_from(choices))
            pad = [(0, 0)] * a.ndim
            pad[ax] = (0, 1)
            return np.pad(a, pad)
        muts.append(("shape", key, grow, ValueError))
    for key, value, exc, *named in case.bad:
        muts.append(("param", key, lambda a, draw, value=value: value, exc, *named))
    return muts


@pytest.mark.parametrize("name", OPS)
@FUZZ_SETTINGS
@given(data=st.data())
def test_invalid_arguments_raise(name, data):
    case, dtype = _draw_case(data, name)
    muts = _mutations(case, dtype)
    label, key, make, exc, *named = data.draw(st.sampled_from(muts), label="mutation")
    named = named[0] if named else key
    kw = dict(case.kw)
    kw[key] = make(kw.get(key), data.draw)
    backend = _Backend(data.draw)
    CASES[(name, "invalid")] += 1
    with backend:
        with pytest.raises((ValueError, TypeError, MemoryError)) as info:
            getattr(ops, name)(**kw)
    RAISED[info.type.__name__] += 1
    assert info.type is exc, f"{name} with {label} {key}: raised {info.type.__name__} ({info.value}), expected {exc.__name__}"
    assert named in str(info.value), f"{name} with {label} {key}: the message does not name {named!r}: {info.value}"
