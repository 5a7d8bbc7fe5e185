"""Recurrent layers (RNN, LSTM, GRU) to ONNX: gate reordering, directions, layers, batch_first, initial
states, and load_weights back from ONNX's layout.

The exporter is checked twice: against layers whose forward is PyTorch's own (stand-ins holding PyTorch's
attributes and parameters, registered with the same exporter), and, when nnx.nn has them, against nnx's
RNN/LSTM/GRU (with PyTorch's weights loaded through load_state_dict).
"""
from __future__ import annotations

import numpy as np
import pytest

from onnx_support import check_export, dims, nnx_outputs, rel_err, run_onnx  # skips without onnx/onnxruntime

import nnx
from nnx import nn
from nnx.onnx import _recurrent

KINDS = ("RNN", "LSTM", "GRU")
I, H, T = 3, 4, 5

# (num_layers, bidirectional, batch_first, bias, with initial state)
CONFIGS = [(1, False, False, True, False), (2, True, True, True, False), (2, False, True, False, True),
           (1, True, False, True, True), (3, True, True, True, True)]


def _ids(c):
    L, bi, bf, bias, hx = c
    return f"L{L}{'-bi' if bi else ''}{'-bf' if bf else ''}{'' if bias else '-nobias'}{'-hx' if hx else ''}"


def _inputs(kind, L, bi, batch_first, with_hx, seed=0):
    """make_input(batch) -> the forward's arguments; and the batch axis of each input array."""
    dirs = 2 if bi else 1

    def make(b):
        rng = np.random.default_rng(seed + b)
        x = rng.standard_normal((b, T, I) if batch_first else (T, b, I)).astype(np.float32)
        if not with_hx:
            return (x,)
        h = [rng.standard_normal((L * dirs, b, H)).astype(np.float32) * 0.5 for _ in range(2)]
        return (x, (h[0], h[1]) if kind == "LSTM" else h[0])

    axes = [0 if batch_first else 1] + ([1] * (2 if kind == "LSTM" else 1) if with_hx else [])
    return make, axes


# --------------------------------------------------------------------------------------------- PyTorch stand-ins
def _stand_in_class(kind, cell=False):
    import torch as th

    class TorchBacked(nn.Module):
        onnx_kind = kind

        def __init__(self, **kw):
            super().__init__()
            self._torch = getattr(th.nn, kind + ("Cell" if cell else ""))(I, H, **kw)
            for a in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "bidirectional"):
                if hasattr(self._torch, a):
                    setattr(self, a, getattr(self._torch, a))
            self.nonlinearity = getattr(self._torch, "nonlinearity", "tanh")
            for k, v in self._torch.state_dict().items():
                setattr(self, k, nn.Parameter(v.numpy().copy()))

        def forward(self, x, hx=None):
            def to_torch(v):
                return tuple(map(to_torch, v)) if isinstance(v, tuple) else th.from_numpy(np.asarray(v))

            def to_nnx(v):
                return tuple(map(to_nnx, v)) if isinstance(v, tuple) else nnx.Tensor(v.numpy())

            with th.no_grad():
                for k, p in self._torch.named_parameters():
                    p.copy_(th.from_numpy(getattr(self, k).data))
                out = self._torch(to_torch(x), None if hx is None else to_torch(hx))
            return to_nnx(out)

    TorchBacked.__name__ = f"Torch{kind}{'Cell' if cell else ''}"
    return TorchBacked


@pytest.fixture(scope="module")
def stand_ins():
    pytest.importorskip("torch", reason="the recurrent stand-ins run PyTorch (the bench extra)")
    from nnx.onnx._graph import _REGISTRY
    classes = {k + c: _stand_in_class(k, bool(c)) for k in KINDS for c in ("", "Cell")}
    for name, cls in classes.items():
        _recurrent.register_recurrent(cls, cell=name.endswith("Cell"))
    yield classes
    for cls in classes.values():
        del _REGISTRY[cls]


def _cell_inputs(kind, with_hx, seed=0):
    def make(b):
        rng = np.random.default_rng(seed + b)
        x = rng.standard_normal((b, I)).astype(np.float32)
        if not with_hx:
            return (x,)
        h = [rng.standard_normal((b, H)).astype(np.float32) for _ in range(2)]
        return (x, (h[0], h[1]) if kind == "LSTM" else h[0])
    return make


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_cell_exporter_matches_pytorch(kind, with_hx, bias, stand_ins, tmp_path):
    import torch as th
    th.manual_seed(0)
    check_export(stand_ins[kind + "Cell"](bias=bias), _cell_inputs(kind, with_hx), tmp_path,
                 dynamic_batch=[0] * (1 + (0 if not with_hx else 2 if kind == "LSTM" else 1)))


@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
@pytest.mark.parametrize("kind", KINDS)
def test_exporter_matches_pytorch(kind, config, stand_ins, tmp_path):
    """onnxruntime runs the exported layer as PyTorch does: output, h_n (and c_n), batch 1 and 7."""
    import torch as th
    L, bi, bf, bias, hx = config
    th.manual_seed(0)
    model = stand_ins[kind](num_layers=L, bidirectional=bi, batch_first=bf, bias=bias)
    make, axes = _inputs(kind, L, bi, bf, hx)
    check_export(model, make, tmp_path, dynamic_batch=axes)


@pytest.mark.parametrize("opset", [nnx.onnx.MIN_OPSET, nnx.onnx.MAX_OPSET])
@pytest.mark.parametrize("kind", KINDS)
def test_other_opsets(kind, opset, stand_ins, tmp_path):
    import torch as th
    th.manual_seed(0)
    make, axes = _inputs(kind, 2, True, True, True)
    check_export(stand_ins[kind](num_layers=2, bidirectional=True, batch_first=True), make, tmp_path,
                 dynamic_batch=axes, opset=opset)
    check_export(stand_ins[kind + "Cell"](), _cell_inputs(kind, True), tmp_path,
                 dynamic_batch=[0, 0] + ([0] if kind == "LSTM" else []), opset=opset)


@pytest.mark.parametrize("real", [False, True], ids=["stand-in", "nnx"])
def test_free_time_axis(real, request, tmp_path):
    """dynamic_axes frees the sequence length: one file runs any batch size and any length."""
    if real and not hasattr(nn, "LSTM"):
        pytest.skip("nnx.nn has no LSTM yet")
    nnx.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, batch_first=True)
    model = nn.LSTM(I, H, **kw) if real else request.getfixturevalue("stand_ins")["LSTM"](**kw)
    path = tmp_path / "lstm.onnx"
    x = np.random.default_rng(0).standard_normal((1, T, I)).astype(np.float32)
    proto = nnx.onnx.export(model, x, path, dynamic_axes={"input": {1: "time"}})
    assert dims(proto.graph.input[0]) == ["batch", "time", I]
    assert [dims(o) for o in proto.graph.output] == [["batch", "time", 2 * H], [4, "batch", H], [4, "batch", H]]
    for b, t in ((1, 3), (7, 8)):
        xs = np.random.default_rng(b).standard_normal((b, t, I)).astype(np.float32)
        for got, want in zip(run_onnx(path, xs), nnx_outputs(model, xs)):
            assert rel_err(got, want) <= 1e-5


def test_rnn_relu_matches_pytorch(stand_ins, tmp_path):
    import torch as th
    th.manual_seed(0)
    model = stand_ins["RNN"](num_layers=2, nonlinearity="relu", bidirectional=True)
    make, axes = _inputs("RNN", 2, True, False, False)
    check_export(model, make, tmp_path, dynamic_batch=axes)


@pytest.mark.parametrize("kind", KINDS + tuple(k + "Cell" for k in KINDS))
def test_load_weights_inverts_the_gate_reordering(kind, stand_ins, tmp_path):
    import torch as th
    cell = kind.endswith("Cell")
    kw = {} if cell else dict(num_layers=2, bidirectional=True)
    th.manual_seed(0)
    a = stand_ins[kind](**kw)
    path = tmp_path / "a.onnx"
    example = _cell_inputs(kind[:-4], False)(2) if cell else _inputs(kind, 2, True, False, False)[0](2)
    nnx.onnx.export(a, example, path, dynamic_batch=[0 if cell else 1])
    th.manual_seed(1)
    b = stand_ins[kind](**kw)
    sa = a.state_dict()
    assert not any(np.array_equal(v, sa[k]) for k, v in b.state_dict().items())
    nnx.onnx.load_weights(b, path)
    sb = b.state_dict()
    assert list(sa) == list(sb) and len(sa) == (4 if cell else 16)
    for k in sa:
        np.testing.assert_array_equal(sb[k], sa[k], err_msg=k)


# --------------------------------------------------------------------------------------------- nnx's own layers
@pytest.mark.parametrize("with_hx", [False, True])
@pytest.mark.parametrize("kind", KINDS)
def test_nnx_cells_export(kind, with_hx, tmp_path):
    if not hasattr(nn, kind + "Cell"):
        pytest.skip(f"nnx.nn has no {kind}Cell yet")
    nnx.manual_seed(0)
    check_export(getattr(nn, kind + "Cell")(I, H), _cell_inputs(kind, with_hx), tmp_path,
                 dynamic_batch=[0] * (1 + (0 if not with_hx else 2 if kind == "LSTM" else 1)))


def test_nnx_embedding_export(tmp_path):
    if not hasattr(nn, "Embedding"):
        pytest.skip("nnx.nn has no Embedding yet")
    nnx.manual_seed(0)

    def ids(b):
        return np.random.default_rng(b).integers(0, 10, (b, T))

    check_export(nn.Embedding(10, I, padding_idx=0), ids, tmp_path)
    check_export(nn.Sequential(nn.Embedding(10, I), nn.GRU(I, H, batch_first=True)), ids, tmp_path)



@pytest.mark.parametrize("config", CONFIGS, ids=_ids)
@pytest.mark.parametrize("kind", KINDS)
def test_nnx_recurrent_layers_export(kind, config, tmp_path):
    if not hasattr(nn, kind):
        pytest.skip(f"nnx.nn has no {kind} yet")
    L, bi, bf, bias, hx = config
    nnx.manual_seed(0)
    model = getattr(nn, kind)(I, H, num_layers=L, bias=bias, batch_first=bf, bidirectional=bi)
    make, axes = _inputs(kind, L, bi, bf, hx)
    check_export(model, make, tmp_path, dynamic_batch=axes)


@pytest.mark.parametrize("config", [(2, True, False, True, False), (1, False, True, True, True),
                                    (2, True, True, False, True)], ids=_ids)
@pytest.mark.parametrize("kind", KINDS)
def test_nnx_recurrent_layers_export_lengths(kind, config, tmp_path):
    """forward(x, hx, lengths) as ONNX's sequence_lens: zeros after each end, h_n from the last step."""
    if not hasattr(nn, kind):
        pytest.skip(f"nnx.nn has no {kind} yet")
    L, bi, bf, bias, hx = config
    nnx.manual_seed(0)
    model = getattr(nn, kind)(I, H, num_layers=L, bias=bias, batch_first=bf, bidirectional=bi)
    make, axes = _inputs(kind, L, bi, bf, hx)

    def with_lengths(b):
        args = make(b)
        lengths = np.random.default_rng(b).integers(1, T + 1, b)
        lengths[0] = T
        return (args[0], args[1] if hx else None, lengths)

    check_export(model, with_lengths, tmp_path, dynamic_batch=axes + [0])


@pytest.mark.parametrize("kind", KINDS)
def test_nnx_recurrent_layers_take_pytorch_weights(kind):
    if not hasattr(nn, kind):
        pytest.skip(f"nnx.nn has no {kind} yet")
    th = pytest.importorskip("torch", reason="needs PyTorch (the bench extra)")
    th.manual_seed(0)
    tm = getattr(th.nn, kind)(I, H, num_layers=2, bidirectional=True, batch_first=True)
    model = getattr(nn, kind)(I, H, num_layers=2, bidirectional=True, batch_first=True)
    sd = {k: v.numpy() for k, v in tm.state_dict().items()}
    assert list(model.state_dict()) == list(sd)
    model.load_state_dict(sd)
    x = np.random.default_rng(0).standard_normal((3, T, I)).astype(np.float32)
    with th.no_grad():
        want = tm(th.from_numpy(x))
    with nnx.no_grad():
        got = model(x)
    from onnx_support import flat_outputs, rel_err
    for g, w in zip(flat_outputs(got), [t.numpy() for t in (want[0],) + (want[1] if kind == "LSTM" else (want[1],))]):
        assert rel_err(g, w) <= 1e-5
