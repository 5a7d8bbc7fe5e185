"""Fuzz builders of the layer families (maxout, normalization, dropout, recurrent, embedding) for
test_fuzz_ops.py: each returns a builder giving one valid call and the invalid mutations of it."""
from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

from nnx import reference as ref
from fuzz_support import Case, _arr, _dims


def _maxout(backward):
    def build(draw, rng, dtype):
        nd = draw(st.integers(1, 4))
        shape = list(_dims(draw, nd, 0, 4))
        axis = draw(st.integers(-nd, nd - 1))
        k = draw(st.integers(1, 4))
        shape[axis] *= k
        kw = {"x": _arr(rng, tuple(shape), dtype, -3, 3), "pieces": k, "axis": axis}
        bad = [("pieces", 0, ValueError), ("pieces", 2.5, TypeError), ("pieces", True, TypeError),
               ("axis", nd, ValueError), ("axis", -nd - 1, ValueError), ("axis", 1.0, TypeError),
               ("x", np.zeros((), dtype), ValueError)]
        if shape[axis]:
            bad.append(("pieces", shape[axis] + 1, ValueError))  # does not divide the axis
        if not backward:
            return Case(kw, floats=("x",), bad=bad)
        y, idx = ref.maxout(kw["x"], k, axis, return_indices=True)
        kw["dy"] = _arr(rng, y.shape, dtype)
        ints, det = (), {"dy": "all"}
        if draw(st.booleans()):
            kw["indices"] = idx.astype(draw(st.sampled_from([np.int32, np.int64])))
            ints, det["indices"] = ("indices",), "all"
            if idx.size:
                wrong = idx.copy()
                wrong.reshape(-1)[0] = k
                bad.append(("indices", wrong, ValueError))
        return Case(kw, floats=("dy", "x"), ints=ints, determined=det, bad=bad)
    return build


def _spread(x: np.ndarray, groups_axis_first) -> np.ndarray:
    """x with -2 and 2 planted in the first two values of every normalisation group, so no group's variance
    is near 0 (1/sqrt(var + eps) would then amplify rounding noise past any tolerance)."""
    g = groups_axis_first(x.copy())
    if g.shape[1] >= 2:
        g[:, 0], g[:, 1] = -2, 2
    return g


def _norm_bad():
    return [("eps", -1.0, ValueError), ("eps", "1e-5", TypeError)]


def _batch_norm(backward):
    def build(draw, rng, dtype):
        training = draw(st.booleans())
        spatial = _dims(draw, draw(st.integers(0, 2)), 1, 4)
        n, c = draw(st.integers(2 if training else 0, 5)), draw(st.integers(1, 4))
        shape = (n, c) + spatial
        x = _arr(rng, shape, dtype, -3, 3)
        if training:  # the batch statistics need spread; evaluation uses the running ones
            grouped = _spread(x, lambda a: np.moveaxis(a, 1, 0).reshape(c, -1))
            x = np.ascontiguousarray(np.moveaxis(grouped.reshape((c, n) + spatial), 0, 1))
        kw = {"x": x, "training": training, "momentum": draw(st.floats(0, 1)),
              "eps": draw(st.sampled_from([1e-5, 1e-3])), "activation": draw(st.sampled_from([None, "relu"]))}
        floats = ("x",) if not training else ()
        if draw(st.booleans()):
            kw["weight"], kw["bias"] = _arr(rng, (c,), dtype, 0.5, 1.5), _arr(rng, (c,), dtype)
            floats += ("weight", "bias")
        kw["running_mean"], kw["running_var"] = _arr(rng, (c,), dtype), _arr(rng, (c,), dtype, 0.5, 2)
        if not training:  # only read: any layout; in training they are updated in place (writeable arrays)
            floats += ("running_mean", "running_var")
        bad = _norm_bad() + [("momentum", "0.1", TypeError), ("training", "yes", TypeError),
                             ("activation", "gelu", ValueError)]
        k = max(1, int(np.prod(shape)) // c)
        vecs = ("weight", "bias", "running_mean", "running_var")
        det = {key: "all" for key in vecs if key in kw}
        if backward:
            kw["dy"] = _arr(rng, shape, dtype)
            if kw["activation"] == "relu":
                fwd = {key: kw[key] for key in ("weight", "bias", "training", "eps") if key in kw}
                kw["y"] = ref.batch_norm(x, running_mean=kw["running_mean"].copy(),
                                         running_var=kw["running_var"].copy(), activation="relu", **fwd)
                floats += ("y",)
                det["y"] = "all"
            det["dy"] = "all"
            return Case(kw, k=k, floats=("dy",) + floats, ranked=vecs, determined=det, bad=bad, floor="dy")
        return Case(kw, k=k, floats=floats, ranked=vecs, determined=det, bad=bad)
    return build


def _layer_norm(backward):
    def build(draw, rng, dtype):
        lead = _dims(draw, draw(st.integers(0, 2)), 0, 4)
        norm = _dims(draw, draw(st.integers(1, 2)), 1, 5)
        shape = lead + norm
        d = int(np.prod(norm))
        x = _spread(_arr(rng, shape, dtype, -3, 3), lambda a: a.reshape(-1, d)).reshape(shape)
        ns = norm[0] if len(norm) == 1 and draw(st.booleans()) else norm
        kw = {"x": x, "normalized_shape": ns, "eps": draw(st.sampled_from([1e-5, 1e-3]))}
        floats = ()
        if draw(st.booleans()):
            kw["weight"], kw["bias"] = _arr(rng, norm, dtype, 0.5, 1.5), _arr(rng, norm, dtype)
            floats = ("weight", "bias")
        bad = _norm_bad() + [("normalized_shape", norm[:-1] + (norm[-1] + 1,), ValueError),
                             ("normalized_shape", 2.5, TypeError)]
        det = {key: "all" for key in floats}
        rows = max(1, int(np.prod(lead)))
        if backward:
            kw["dy"] = _arr(rng, shape, dtype)
            det["dy"] = "all"
            return Case(kw, k=max(d, rows), floats=("dy",) + floats, ranked=floats, determined=det, bad=bad,
                        floor="dy")
        return Case(kw, k=d, floats=floats, ranked=floats, determined=det, bad=bad)
    return build


def _dropout(backward):
    def build(draw, rng, dtype):
        shape = _dims(draw, draw(st.integers(0, 4)), 0, 5)
        kw = {"x": _arr(rng, shape, dtype, -4, 4), "p": draw(st.floats(0, 1)), "training": draw(st.booleans()),
              "seed": draw(st.integers(0, 2**64 - 1))}
        bad = [("p", 1.5, ValueError), ("p", "0.5", TypeError), ("seed", -1, ValueError), ("seed", 1.5, TypeError),
               ("training", 1, TypeError)]
        if backward:
            kw["dy"] = _arr(rng, shape, dtype)
            return Case(kw, floats=("dy", "x"), determined={"dy": "all"}, bad=bad)
        return Case(kw, floats=("x",), bad=bad)
    return build


_RNN_GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def _recurrent(cell, backward):
    G = _RNN_GATES[cell]

    def build(draw, rng, dtype):
        T, N, I, H = (draw(st.integers(1, 4)), draw(st.integers(1, 4)), draw(st.integers(1, 5)),
                      draw(st.integers(1, 9)))
        kw = {"x": _arr(rng, (T, N, I), dtype, -2, 2), "h0": _arr(rng, (N, H), dtype),
              "w_ih": _arr(rng, (G * H, I), dtype), "w_hh": _arr(rng, (G * H, H), dtype)}
        floats = ["x", "h0", "w_ih", "w_hh"]
        if cell == "lstm":
            kw["c0"] = _arr(rng, (N, H), dtype)
            floats.append("c0")
        if draw(st.booleans()):
            kw["b_ih"], kw["b_hh"] = _arr(rng, G * H, dtype), _arr(rng, G * H, dtype)
            floats += ["b_ih", "b_hh"]
        ints = ()
        if draw(st.booleans()):
            kw["lengths"] = rng.integers(1, T + 1, size=N)
            ints = ("lengths",)
        bad = [("lengths", np.zeros(N, np.int64), ValueError), ("lengths", np.ones(N), TypeError)]
        if cell == "rnn":
            # relu only forward: a float32 pre-activation within rounding of 0 may take either side of the kink
            kw["nonlinearity"] = draw(st.sampled_from(["tanh"] if backward else ["tanh", "relu"]))
            bad.append(("nonlinearity", "sigmoid", ValueError))
        determined = {key: "all" for key in floats if key != "x"}
        if backward:
            kw["dy"] = _arr(rng, (T, N, H), dtype)
            kw["dh_n"] = _arr(rng, (N, H), dtype)
            extra = ["dy", "dh_n"]
            if cell == "lstm":
                kw["dc_n"] = _arr(rng, (N, H), dtype)
                extra.append("dc_n")
            floats += extra
            determined.update({key: "all" for key in extra})
        # The backward's weight gradients are sums over steps and batch of dy-sized terms that may cancel
        # (a float32 w_ih gradient of 0.0014 from terms near 0.1 came out 2.4e-4 off, relative): like the
        # normalization backwards, differences within rtol times k * max|dy| pass.
        return Case(kw, k=T * N * (I + H + 1) * G, floats=tuple(floats), ints=ints,
                    ranked=("x", "h0", "w_ih", "w_hh"), determined=determined, bad=bad,
                    floor="dy" if backward else None)
    return build


def _embedding(backward):
    def build(draw, rng, dtype):
        V, D = draw(st.integers(1, 6)), draw(st.integers(1, 4))
        ids = rng.integers(0, V, size=_dims(draw, draw(st.integers(0, 3)), 0, 4))
        kw = {"ids": ids, "weight": _arr(rng, (V, D), dtype)}
        if draw(st.booleans()):
            kw["padding_idx"] = int(draw(st.integers(-V, V - 1)))
        bad = [("ids", ids.astype(np.float64), TypeError), ("ids", np.array([V]), ValueError),
               ("padding_idx", V + 3, ValueError)]
        if backward:
            kw["dy"] = _arr(rng, ids.shape + (D,), dtype)
            return Case(kw, k=max(1, ids.size), floats=("dy", "weight"), ints=("ids",), ranked=("weight",),
                        determined={"dy": "all"}, bad=bad)
        return Case(kw, floats=("weight",), ints=("ids",), ranked=("weight",), bad=bad)
    return build
