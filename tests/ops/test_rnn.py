import numpy as np
import pytest

import nnx
from nnx import ops, reference as ref
from optest import assert_close

GATES = {"rnn": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def _op(cell):
    """(name of the op, extra keyword arguments) of a cell."""
    return ("rnn", {"nonlinearity": "relu"}) if cell == "rnn_relu" else (cell, {})


def _case(rng, cell, T, N, I, H, dtype, bias=True, scale=0.5):
    G = GATES[cell]
    r = lambda *s: (rng.uniform(-1, 1, s) * scale).astype(dtype)  # noqa: E731
    x, h0, c0 = r(T, N, I) / scale, r(N, H) / scale, r(N, H) / scale
    w_ih, w_hh = r(G * H, I), r(G * H, H)
    b_ih, b_hh = (r(G * H), r(G * H)) if bias else (None, None)
    args = (x, h0, c0, w_ih, w_hh, b_ih, b_hh) if cell == "lstm" else (x, h0, w_ih, w_hh, b_ih, b_hh)
    return args


def _grads_out(rng, cell, T, N, H, dtype):
    n_states = 2 if cell == "lstm" else 1
    return (rng.standard_normal((T, N, H)).astype(dtype),) + tuple(
        rng.standard_normal((N, H)).astype(dtype) for _ in range(n_states))


def _forward_backward_at(name, args, dys, kw, thread_counts):
    """The op's outputs and gradients (those not None) at each thread count."""
    before = nnx.get_num_threads()
    runs = []
    try:
        for t in thread_counts:
            nnx.set_num_threads(t)
            out = getattr(ops, name)(*args, return_workspace=True, **kw)
            grads = getattr(ops, name + "_backward")(*dys, *args, workspace=out[-1], **kw)
            runs.append([a for a in out[:-1] + grads if a is not None])
    finally:
        nnx.set_num_threads(before)
    return runs


CELLS = ["rnn", "rnn_relu", "lstm", "gru"]
# (T, N, I, H): a ragged H (vector tails), a single step, a single row, H a multiple of 8.
SHAPES = [(5, 3, 4, 13), (1, 2, 3, 5), (7, 1, 9, 8), (4, 6, 16, 16)]


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", SHAPES, ids=[f"T{s[0]}N{s[1]}I{s[2]}H{s[3]}" for s in SHAPES])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
def test_forward_backward_match_reference(isa, dtype, rng, cell, shape, masked):
    T, N, I, H = shape
    name, kw = _op(cell)
    args = _case(rng, cell, T, N, I, H, dtype, bias=not (masked and cell == "gru" and H == 8))
    if masked:
        kw = dict(kw, lengths=rng.integers(1, T + 1, size=N))
    got = getattr(ops, name)(*args, return_workspace=True, **kw)
    want = getattr(ref, name)(*args, **kw)
    k = (I + H) * T
    for i, (g, w) in enumerate(zip(got[:-1], want)):
        assert_close(g, w, dtype, k=k, name=f"{name} output {i}")
    dys = _grads_out(rng, cell, T, N, H, dtype)
    got_b = getattr(ops, name + "_backward")(*dys, *args, workspace=got[-1], **kw)
    want_b = getattr(ref, name + "_backward")(*dys, *args, **kw)
    assert len(got_b) == len(want_b)
    for i, (g, w) in enumerate(zip(got_b, want_b)):
        if w is None:
            assert g is None, f"{name}_backward output {i} should be None"
        else:
            assert_close(g, w, dtype, k=k * N, name=f"{name}_backward output {i}")
    # Without the workspace the backward recomputes the forward: same gradients.
    again = getattr(ops, name + "_backward")(*dys, *args, **kw)
    for g, a in zip(got_b, again):
        assert (g is None and a is None) or np.array_equal(g, a)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
def test_batch_first_matches_reference_and_time_major(isa, dtype, rng, cell, masked):
    """batch_first=True: x, y, dy, dx are (N, T, ...) and read in place; the results are the reference's and
    the time-major call's on the transposed arrays."""
    T, N, I, H = 5, 6, 4, 13
    name, kw = _op(cell)
    args = _case(rng, cell, T, N, I, H, dtype)
    if masked:
        kw = dict(kw, lengths=rng.integers(1, T + 1, size=N))
    xb = np.ascontiguousarray(args[0].swapaxes(0, 1))
    bargs = (xb,) + args[1:]
    got = getattr(ops, name)(*bargs, return_workspace=True, batch_first=True, **kw)
    want = getattr(ref, name)(*bargs, batch_first=True, **kw)
    tm = getattr(ops, name)(*args, **kw)
    assert got[0].shape == (N, T, H)
    k = (I + H) * T
    for i, (g, w, t) in enumerate(zip(got[:-1], want, tm)):
        assert_close(g, w, dtype, k=k, name=f"{name} output {i}")
        assert_close(g, t.swapaxes(0, 1) if i == 0 else t, dtype, k=k, name=f"{name} output {i} (time-major)")
    dys = _grads_out(rng, cell, T, N, H, dtype)
    dyb = (np.ascontiguousarray(dys[0].swapaxes(0, 1)),) + dys[1:]
    got_b = getattr(ops, name + "_backward")(*dyb, *bargs, workspace=got[-1], batch_first=True, **kw)
    want_b = getattr(ref, name + "_backward")(*dyb, *bargs, batch_first=True, **kw)
    tm_b = getattr(ops, name + "_backward")(*dys, *args, **kw)
    assert got_b[0].shape == xb.shape
    for i, (g, w, t) in enumerate(zip(got_b, want_b, tm_b)):
        assert_close(g, w, dtype, k=k * N, name=f"{name}_backward output {i}")
        assert_close(g, t.swapaxes(0, 1) if i == 0 else t, dtype, k=k * N, name=f"{name}_backward output {i} (tm)")
    with pytest.raises(ValueError, match="dy"):
        getattr(ops, name + "_backward")(*dys, *bargs, batch_first=True, **kw)  # a time-major dy


@pytest.mark.parametrize("cell", CELLS)
def test_needs_dx_false_skips_dx_only(rng, cell):
    """needs_dx=False (an input that needs no gradient): dx is None in ops and reference, every other
    gradient is the same array as with dx."""
    name, kw = _op(cell)
    T, N, I, H = 4, 5, 6, 7
    args = _case(rng, cell, T, N, I, H, np.float64)
    dys = _grads_out(rng, cell, T, N, H, np.float64)
    full = getattr(ops, name + "_backward")(*dys, *args, **kw)
    for mod in (ops, ref):
        part = getattr(mod, name + "_backward")(*dys, *args, needs_dx=False, **kw)
        assert part[0] is None and len(part) == len(full)
        for g, f in zip(part[1:], full[1:]):
            assert (g is None and f is None) or np.allclose(g, f, rtol=1e-12, atol=1e-12)
    nx = ops.__dict__[name + "_backward"](*dys, *args, needs_dx=False, **kw)
    for g, f in zip(nx[1:], full[1:]):
        assert (g is None and f is None) or g.tobytes() == f.tobytes()


@pytest.mark.parametrize("cell", CELLS)
def test_no_bias_no_initial_state(rng, cell):
    name, kw = _op(cell)
    args = list(_case(rng, cell, 4, 3, 5, 6, np.float64, bias=False))
    args[1] = None  # h0
    if cell == "lstm":
        args[2] = None  # c0
    got = getattr(ops, name)(*args, **kw)
    want = getattr(ref, name)(*args, **kw)
    for g, w in zip(got, want):
        assert_close(g, w, np.float64, k=40)
    dys = _grads_out(rng, cell, 4, 3, 6, np.float64)
    grads = getattr(ops, name + "_backward")(*dys, *args, **kw)
    wants = getattr(ref, name + "_backward")(*dys, *args, **kw)
    for g, w in zip(grads, wants):
        assert (g is None) == (w is None)
        if w is not None:
            assert_close(g, w, np.float64, k=100)
    assert grads[1] is None and grads[-1] is None and grads[-2] is None


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("backend", ["ops", "reference"])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
def test_gradcheck_through_time(rng, cell, backend, masked):
    """Finite differences of every input, h0 and c0 included, through 4 steps."""
    mod = ops if backend == "ops" else ref
    name, kw = _op(cell)
    T, N, I, H = 4, 3, 2, 3
    args = _case(rng, cell, T, N, I, H, np.float64, scale=0.8)
    if masked:
        kw = dict(kw, lengths=np.array([4, 1, 2]))
    if cell == "rnn_relu":  # keep pre-activations away from relu's kink
        args = (args[0], args[1], args[2], args[3], np.abs(args[4]) + 0.3, args[5])
    f = lambda *a: getattr(mod, name)(*a, **kw)  # noqa: E731

    def backward(dys, *a):
        return getattr(mod, name + "_backward")(*dys, *a, **kw)

    assert nnx.gradcheck(f, args, backward, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("batch_first", [False, True], ids=["time_major", "batch_first"])
def test_bitwise_identical_for_any_thread_count(rng, cell, batch_first):
    name, kw = _op(cell)
    T, N, I, H = 6, 96, 20, 64  # enough rows and columns for both the GEMMs and the step passes to split
    args = _case(rng, cell, T, N, I, H, np.float32)
    kw = dict(kw, lengths=rng.integers(1, T + 1, size=N), batch_first=batch_first)
    dys = _grads_out(rng, cell, T, N, H, np.float32)
    if batch_first:
        args = (np.ascontiguousarray(args[0].swapaxes(0, 1)),) + args[1:]
        dys = (np.ascontiguousarray(dys[0].swapaxes(0, 1)),) + dys[1:]
    runs = _forward_backward_at(name, args, dys, kw, (1, 2, 3))
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert np.isfinite(a).all() and a.tobytes() == b.tobytes()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("N", [1, 3])
@pytest.mark.parametrize("H", [200, 256])
def test_few_sequences_split_each_step_between_threads(rng, cell, N, H):
    """With fewer sequences than a thread's share, each step's product splits its columns between the threads
    instead, one team for all the steps (rnn.cpp's forward_rows_team): H = 200 (25 slivers of 32 gate columns)
    splits the slivers and then the units, H = 256 (gate blocks of whole slivers) gives each thread its own
    units' columns; the same bits at 1, 2, 3 and 16 threads. The weights shrink with sqrt(H) so that the gates'
    pre-activations keep H = 200's spread (wider ones saturate tanh, and its small outputs cancel)."""
    name, kw = _op(cell)
    T, I = 4, 12
    args = _case(rng, cell, T, N, I, H, np.float32, scale=0.5 * (200 / H) ** 0.5)
    dys = _grads_out(rng, cell, T, N, H, np.float32)
    runs = _forward_backward_at(name, args, dys, kw, (1, 2, 3, 16))
    assert_close(runs[0][0], getattr(ref, name)(*args, **kw)[0], np.float32, k=H)
    for other in runs[1:]:
        for a, b in zip(runs[0], other):
            assert a.tobytes() == b.tobytes()


@pytest.mark.parametrize("cell", CELLS)
def test_a_sequence_alone_gives_its_bits_in_a_batch(isa, dtype, rng, cell):
    """The per-step product runs blocks of 8 rows as one tile and short blocks row by row (1 sequence, or the last
    3 of 11): each row is the same multiply-add chain either way, so a sequence's outputs and data gradients are
    bitwise those it gets inside a batch."""
    name, kw = _op(cell)
    T, N, I, H = 5, 11, 7, 40
    args = _case(rng, cell, T, N, I, H, dtype)
    dys = _grads_out(rng, cell, T, N, H, dtype)
    out = getattr(ops, name)(*args, return_workspace=True, **kw)
    grads = getattr(ops, name + "_backward")(*dys, *args, workspace=out[-1], **kw)
    n_states = len(dys) - 1
    for n in (0, 9):
        one = (args[0][:, n:n + 1],) + tuple(a[n:n + 1] for a in args[1:1 + n_states]) + args[1 + n_states:]
        dy1 = (dys[0][:, n:n + 1],) + tuple(d[n:n + 1] for d in dys[1:])
        o1 = getattr(ops, name)(*one, return_workspace=True, **kw)
        g1 = getattr(ops, name + "_backward")(*dy1, *one, workspace=o1[-1], **kw)
        np.testing.assert_array_equal(o1[0][:, 0], out[0][:, n])  # y
        for s in range(n_states):  # h_n (and c_n)
            np.testing.assert_array_equal(o1[1 + s][0], out[1 + s][n])
        np.testing.assert_array_equal(g1[0][:, 0], grads[0][:, n])  # dx
        for s in range(n_states):  # dh0 (and dc0)
            np.testing.assert_array_equal(g1[1 + s][0], grads[1 + s][n])


def test_lengths_match_running_each_sequence_alone(rng):
    """A padded row of the batch gives what its unpadded sequence gives on its own."""
    args = _case(rng, "lstm", 6, 3, 4, 5, np.float64)
    lengths = np.array([6, 2, 4])
    y, h, c = ops.lstm(*args, lengths=lengths)
    x, h0, c0 = args[:3]
    for n, L in enumerate(lengths):
        yn, hn, cn = ops.lstm(x[:L, n:n + 1], h0[n:n + 1], c0[n:n + 1], *args[3:])
        assert_close(y[:L, n], yn[:, 0], np.float64, k=60)
        assert np.all(y[L:, n] == 0)
        assert_close(h[n], hn[0], np.float64, k=60)
        assert_close(c[n], cn[0], np.float64, k=60)


# ---------------------------------------------------------------------------- PyTorch
@pytest.mark.parametrize("cell", ["rnn", "rnn_relu", "lstm", "gru"])
def test_matches_pytorch(rng, cell):
    torch = pytest.importorskip("torch")
    T, N, I, H = 5, 4, 3, 7
    name, kw = _op(cell)
    mod = {"rnn": lambda: torch.nn.RNN(I, H), "rnn_relu": lambda: torch.nn.RNN(I, H, nonlinearity="relu"),
           "lstm": lambda: torch.nn.LSTM(I, H), "gru": lambda: torch.nn.GRU(I, H)}[cell]().double()
    p = {k: v.detach().numpy() for k, v in mod.named_parameters()}
    x = rng.standard_normal((T, N, I))
    h0, c0 = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    xt = torch.tensor(x, requires_grad=True)
    ht, ct = torch.tensor(h0[None], requires_grad=True), torch.tensor(c0[None], requires_grad=True)
    w = (p["weight_ih_l0"], p["weight_hh_l0"], p["bias_ih_l0"], p["bias_hh_l0"])
    if cell == "lstm":
        yt, (hnt, cnt) = mod(xt, (ht, ct))
        outs = ops.lstm(x, h0, c0, *w)
        touts = (yt, hnt[0], cnt[0])
    else:
        yt, hnt = mod(xt, ht)
        outs = getattr(ops, name)(x, h0, *w, **kw)
        touts = (yt, hnt[0])
    for o, t in zip(outs, touts):
        assert_close(o, t.detach().numpy(), np.float64, k=100)
    dys = _grads_out(rng, cell, T, N, H, np.float64)
    torch.autograd.backward(touts, [torch.tensor(d) for d in dys])
    grads = getattr(ops, name + "_backward")(*dys, *(x, h0, c0) if cell == "lstm" else (x, h0), *w, **kw)
    named = dict(zip(["dx", "dh0", "dc0", "dw_ih", "dw_hh", "db_ih", "db_hh"] if cell == "lstm" else
                     ["dx", "dh0", "dw_ih", "dw_hh", "db_ih", "db_hh"], grads))
    assert_close(named["dx"], xt.grad.numpy(), np.float64, k=200)
    assert_close(named["dh0"], ht.grad.numpy()[0], np.float64, k=200)
    if cell == "lstm":
        assert_close(named["dc0"], ct.grad.numpy()[0], np.float64, k=200)
    for ours, theirs in (("dw_ih", "weight_ih_l0"), ("dw_hh", "weight_hh_l0"), ("db_ih", "bias_ih_l0"),
                         ("db_hh", "bias_hh_l0")):
        assert_close(named[ours], dict(mod.named_parameters())[theirs].grad.numpy(), np.float64, k=200, name=ours)


# ---------------------------------------------------------------------------- bad input
def test_bad_arguments_name_the_argument(rng):
    x, h0, c0, w_ih, w_hh, b_ih, b_hh = _case(rng, "lstm", 3, 2, 4, 5, np.float64)
    with pytest.raises(ValueError, match="w_ih"):
        ops.lstm(x[:, :, :3], h0, c0, w_ih, w_hh)
    with pytest.raises(ValueError, match="h0"):
        ops.lstm(x, h0[:1], c0, w_ih, w_hh)
    with pytest.raises(ValueError, match="c0"):
        ops.lstm(x, h0, c0.T, w_ih, w_hh)
    with pytest.raises(ValueError, match="x: .*T = 0"):
        ops.lstm(x[:0], h0, c0, w_ih, w_hh)
    with pytest.raises(ValueError, match="x: .*batch"):
        ops.lstm(x[:, :0], h0[:0], c0[:0], w_ih, w_hh)
    with pytest.raises(ValueError, match="x: expected a 3-D"):
        ops.lstm(x[0], h0, c0, w_ih, w_hh)
    with pytest.raises(ValueError, match="w_hh"):
        ops.gru(x, h0, w_ih[:15], w_hh)
    with pytest.raises(ValueError, match="b_hh"):
        ops.lstm(x, h0, c0, w_ih, w_hh, b_ih, b_hh[:3])
    with pytest.raises(TypeError, match="w_hh"):
        ops.lstm(x, h0, c0, w_ih, w_hh.astype(np.float32))
    with pytest.raises(ValueError, match="lengths"):
        ops.lstm(x, h0, c0, w_ih, w_hh, lengths=[3, 0])
    with pytest.raises(ValueError, match="lengths"):
        ops.lstm(x, h0, c0, w_ih, w_hh, lengths=[3, 4])
    with pytest.raises(TypeError, match="lengths"):
        ops.lstm(x, h0, c0, w_ih, w_hh, lengths=[3.0, 1.0])
    with pytest.raises(ValueError, match="nonlinearity"):
        ops.rnn(x, h0, w_ih[:5], w_hh[:5], nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="workspace"):
        ops.lstm_backward(np.zeros((3, 2, 5)), None, None, x, h0, c0, w_ih, w_hh, workspace=np.zeros(10))
    with pytest.raises(ValueError, match="dy"):
        ops.lstm_backward(np.zeros((3, 2, 4)), None, None, x, h0, c0, w_ih, w_hh)


# ---------------------------------------------------------------------------- embedding
def test_embedding_matches_reference_and_gradcheck(rng, dtype):
    w = rng.standard_normal((11, 5)).astype(dtype)
    ids = rng.integers(0, 11, size=(4, 6))
    ids[0, :3] = 7  # repeated ids collect every gradient
    assert np.array_equal(ops.embedding(ids, w), ref.embedding(ids, w))
    dy = rng.standard_normal((4, 6, 5)).astype(dtype)
    for pad in (None, 7, -4):
        assert_close(ops.embedding_backward(dy, ids, w, padding_idx=pad),
                     ref.embedding_backward(dy, ids, w, padding_idx=pad), dtype, k=24)
    w64 = w.astype(np.float64)
    assert nnx.gradcheck(lambda a: ops.embedding(ids, a), [w64], lambda g, a: ops.embedding_backward(g, ids, a))


def test_embedding_bad_ids(rng):
    w = rng.standard_normal((5, 3))
    with pytest.raises(TypeError, match="ids"):
        ops.embedding(np.array([1.0, 2.0]), w)
    with pytest.raises(ValueError, match="ids: .*found 5"):
        ops.embedding(np.array([1, 5]), w)
    with pytest.raises(ValueError, match="ids: .*found -1"):
        ops.embedding(np.array([-1, 2]), w)
    with pytest.raises(ValueError, match="padding_idx"):
        ops.embedding(np.array([1]), w, padding_idx=9)
