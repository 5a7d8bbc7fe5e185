import numpy as np
import pytest

import nnx
from nnx import nn
from optest import assert_close

MODES = ["RNN", "LSTM", "GRU"]


def _torch():
    return pytest.importorskip("torch")


def _pair(torch, mode, dtype, **kw):
    """The same layer in PyTorch and nnx, nnx loaded from PyTorch's state_dict."""
    torch.manual_seed(0)
    tm = getattr(torch.nn, mode)(**kw).to(torch.float64 if dtype == np.float64 else torch.float32)
    m = getattr(nn, mode)(dtype=dtype, **kw)
    m.load_state_dict({k: v.detach().numpy() for k, v in tm.state_dict().items()})
    return tm, m


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cfg", [dict(num_layers=1), dict(num_layers=2, bidirectional=True, batch_first=True),
                                 dict(num_layers=3, bias=False), dict(num_layers=2, batch_first=True)],
                         ids=["1layer", "2layer-bidir-bf", "3layer-nobias", "2layer-bf"])
def test_torch_state_dict_gives_same_outputs_and_grads(rng, dtype, mode, cfg):
    torch = _torch()
    I, H, T, N = 5, 6, 7, 3
    tm, m = _pair(torch, mode, dtype, input_size=I, hidden_size=H, **cfg)
    assert list(m.state_dict()) == list(tm.state_dict())
    D = 2 if cfg.get("bidirectional") else 1
    L = cfg["num_layers"]
    shape = (N, T, I) if cfg.get("batch_first") else (T, N, I)
    x = rng.standard_normal(shape).astype(dtype)
    h0 = rng.standard_normal((L * D, N, H)).astype(dtype)
    c0 = rng.standard_normal((L * D, N, H)).astype(dtype)
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    xn = nnx.Tensor(x, requires_grad=True)
    h0n, c0n = nnx.Tensor(h0, requires_grad=True), nnx.Tensor(c0, requires_grad=True)
    if mode == "LSTM":
        yt, (hnt, cnt) = tm(xt, (h0t, c0t))
        y, (hn, cn) = m(xn, (h0n, c0n))
        pairs = [(y, yt), (hn, hnt), (cn, cnt)]
    else:
        yt, hnt = tm(xt, h0t)
        y, hn = m(xn, h0n)
        pairs = [(y, yt), (hn, hnt)]
    k = (I + H) * T * L
    for ours, theirs in pairs:
        assert_close(ours.numpy(), theirs.detach().numpy(), dtype, k=k)
    gs = [rng.standard_normal(o.shape).astype(dtype) for o, _ in pairs]
    torch.autograd.backward([t for _, t in pairs], [torch.tensor(g) for g in gs])
    total = None
    for (o, _), g in zip(pairs, gs):
        term = (o * nnx.Tensor(g)).sum()
        total = term if total is None else total + term
    total.backward()
    assert_close(xn.grad, xt.grad.numpy(), dtype, k=k * N, name="dx")
    assert_close(h0n.grad, h0t.grad.numpy(), dtype, k=k * N, name="dh0")
    if mode == "LSTM":
        assert_close(c0n.grad, c0t.grad.numpy(), dtype, k=k * N, name="dc0")
    tp = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        assert_close(p.grad, tp[name].grad.numpy(), dtype, k=k * N, name=name)


@pytest.mark.parametrize("mode", MODES)
def test_lengths_match_pytorch_packed_sequences(rng, mode):
    torch = _torch()
    I, H, T, N = 3, 4, 6, 4
    tm, m = _pair(torch, mode, np.float64, input_size=I, hidden_size=H, num_layers=2, bidirectional=True)
    x = rng.standard_normal((T, N, I))
    lengths = np.array([6, 2, 5, 1])
    xt = torch.tensor(x, requires_grad=True)
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
    out, hs = tm(packed)
    yt, _ = torch.nn.utils.rnn.pad_packed_sequence(out, total_length=T)
    hnt = hs[0] if mode == "LSTM" else hs
    xn = nnx.Tensor(x, requires_grad=True)
    y, hs_n = m(xn, lengths=lengths)
    hn = hs_n[0] if mode == "LSTM" else hs_n
    assert_close(y.numpy(), yt.detach().numpy(), np.float64, k=100)
    assert_close(hn.numpy(), hnt.detach().numpy(), np.float64, k=100)
    g = rng.standard_normal(y.shape)
    gh = rng.standard_normal(hn.shape)
    torch.autograd.backward([yt, hnt], [torch.tensor(g), torch.tensor(gh)])
    ((y * nnx.Tensor(g)).sum() + (hn * nnx.Tensor(gh)).sum()).backward()
    assert_close(xn.grad, xt.grad.numpy(), np.float64, k=400)
    tp = dict(tm.named_parameters())
    for name, p in m.named_parameters():
        assert_close(p.grad, tp[name].grad.numpy(), np.float64, k=400, name=name)


@pytest.mark.parametrize("mode", MODES)
def test_gradcheck_bidirectional_stack(rng, mode):
    m = getattr(nn, mode)(2, 3, num_layers=2, bidirectional=True, dtype=np.float64)
    x = rng.standard_normal((3, 2, 2))
    h0 = rng.standard_normal((4, 2, 3))
    c0 = rng.standard_normal((4, 2, 3))
    lengths = np.array([3, 2])

    def f(x, h0, c0, w_ih, w_hh):
        m.weight_ih_l1_reverse, m.weight_hh_l0 = w_ih, w_hh  # two parameters checked with the input states
        y, hs = m(x, (h0, c0) if mode == "LSTM" else h0, lengths=lengths)
        return (y,) + (tuple(hs) if mode == "LSTM" else (hs,))

    w1, w2 = m.weight_ih_l1_reverse.data.copy(), m.weight_hh_l0.data.copy()
    assert nnx.gradcheck(f, [x, h0, c0, w1, w2], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("mode", MODES)
def test_whole_stack_on_the_reference_backend(rng, mode):
    m = getattr(nn, mode)(4, 5, num_layers=2, bidirectional=True, dtype=np.float64)
    x = rng.standard_normal((6, 3, 4))
    lengths = np.array([6, 3, 4])
    xn = nnx.Tensor(x, requires_grad=True)
    y, _ = m(xn, lengths=lengths)
    y.sum().backward()
    grads = {k: p.grad.copy() for k, p in m.named_parameters()}
    m.zero_grad()
    xr = nnx.Tensor(x, requires_grad=True)
    with nnx.functional.use_backend(nnx.reference):
        yr, _ = m(xr, lengths=lengths)
        yr.sum().backward()
    assert_close(y.numpy(), yr.numpy(), np.float64, k=200)
    assert_close(xn.grad, xr.grad, np.float64, k=800)
    for k, p in m.named_parameters():
        assert_close(grads[k], p.grad, np.float64, k=800, name=k)


@pytest.mark.parametrize("mode", MODES)
def test_cells_match_pytorch(rng, mode):
    torch = _torch()
    torch.manual_seed(0)
    tc = getattr(torch.nn, mode + "Cell")(3, 4).double()
    c = getattr(nn, mode + "Cell")(3, 4, dtype=np.float64)
    c.load_state_dict({k: v.detach().numpy() for k, v in tc.state_dict().items()})
    x, h, cc = rng.standard_normal((2, 3)), rng.standard_normal((2, 4)), rng.standard_normal((2, 4))
    if mode == "LSTM":
        ht, ct = tc(torch.tensor(x), (torch.tensor(h), torch.tensor(cc)))
        hn, cn = c(x, (h, cc))
        assert_close(cn.numpy(), ct.detach().numpy(), np.float64, k=10)
    else:
        ht = tc(torch.tensor(x), torch.tensor(h))
        hn = c(x, h)
    assert_close(hn.numpy(), ht.detach().numpy(), np.float64, k=10)
    unbatched = c(x[0], (h[0], cc[0]) if mode == "LSTM" else h[0])
    first = unbatched[0] if mode == "LSTM" else unbatched
    assert_close(first.numpy(), hn.numpy()[0], np.float64, k=10)


def test_unbatched_input_and_default_states(rng):
    m = nn.GRU(3, 4, num_layers=2, dtype=np.float64)
    x = rng.standard_normal((5, 3))
    y, h = m(x)
    yb, hb = m(x[:, None])
    assert y.shape == (5, 4) and h.shape == (2, 4)
    assert np.array_equal(y.numpy(), yb.numpy()[:, 0]) and np.array_equal(h.numpy(), hb.numpy()[:, 0])


def test_init_is_uniform_in_one_over_sqrt_hidden():
    m = nn.LSTM(10, 64, num_layers=2, bidirectional=True)
    bound = 1 / np.sqrt(64)
    for name, p in m.named_parameters():
        assert p.dtype == np.float32
        assert np.abs(p.data).max() <= bound and np.abs(p.data).max() > 0.9 * bound, name
    shapes = {k: v.shape for k, v in m.state_dict().items()}
    assert shapes["weight_ih_l0"] == (256, 10) and shapes["weight_ih_l1_reverse"] == (256, 128)
    assert shapes["weight_hh_l1"] == (256, 64) and shapes["bias_hh_l0_reverse"] == (256,)


def test_dropout_between_layers_only_in_training(rng):
    m = nn.LSTM(3, 4, num_layers=2, dropout=0.5, dtype=np.float64)
    x = rng.standard_normal((4, 2, 3))
    nnx.manual_seed(0)
    y1, _ = m(x)
    nnx.manual_seed(1)
    y2, _ = m(x)
    assert not np.allclose(y1.numpy(), y2.numpy())
    m.eval()
    m2 = nn.LSTM(3, 4, num_layers=2, dtype=np.float64)
    m2.load_state_dict(m.state_dict())
    assert np.array_equal(m(x)[0].numpy(), m2(x)[0].numpy())


def test_bad_inputs_name_the_argument(rng):
    m = nn.LSTM(3, 4, num_layers=2)
    x = rng.standard_normal((5, 2, 3)).astype(np.float32)
    h0 = np.zeros((2, 2, 4), np.float32)
    with pytest.raises(ValueError, match="input: expected input_size 3"):
        m(x[:, :, :2])
    with pytest.raises(ValueError, match="h0: expected shape \\(2, 2, 4\\)"):
        m(x, (h0[:1], h0))
    with pytest.raises(ValueError, match="c0"):
        m(x, (h0, h0[:, :1]))
    with pytest.raises(TypeError, match="hx"):
        m(x, h0)
    with pytest.raises(ValueError, match="T = 0"):
        m(x[:0])
    with pytest.raises(ValueError, match="input: expected a batch"):
        m(x[:, :0])
    with pytest.raises(ValueError, match="input: expected a 3-D"):
        m(x[0, 0])
    with pytest.raises(ValueError, match="lengths"):
        m(x, lengths=[5, 6])
    with pytest.raises(TypeError, match="lengths"):
        m(x, lengths=[5.0, 1.0])
    with pytest.raises(ValueError, match="nonlinearity"):
        nn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(ValueError, match="hidden_size"):
        nn.GRU(3, 0)
    with pytest.raises(ValueError, match="input"):
        nn.GRUCell(3, 4)(np.zeros((2, 5), np.float32))
    with pytest.raises(ValueError, match="hx"):
        nn.GRUCell(3, 4)(np.zeros((2, 3), np.float32), np.zeros((3, 4), np.float32))


# ---------------------------------------------------------------------------- Embedding, clip_grad_norm_
def test_embedding_layer_matches_pytorch(rng):
    torch = _torch()
    te = torch.nn.Embedding(10, 4, padding_idx=2).double()
    e = nn.Embedding(10, 4, padding_idx=2, dtype=np.float64)
    assert np.all(e.weight.data[2] == 0)
    e.load_state_dict({k: v.detach().numpy() for k, v in te.state_dict().items()})
    ids = rng.integers(0, 10, size=(3, 5))
    ids[0, 0] = 2
    g = rng.standard_normal((3, 5, 4))
    yt = te(torch.tensor(ids))
    yt.backward(torch.tensor(g))
    y = e(ids)
    y.backward(g)
    assert np.array_equal(y.numpy(), yt.detach().numpy())
    assert_close(e.weight.grad, te.weight.grad.numpy(), np.float64, k=15)


def test_embedding_bad_ids():
    e = nn.Embedding(5, 2)
    with pytest.raises(ValueError, match="ids: .*found 5"):
        e(np.array([0, 5]))
    with pytest.raises(TypeError, match="ids"):
        e(np.array([0.5]))
    with pytest.raises(ValueError, match="padding_idx"):
        nn.Embedding(5, 2, padding_idx=5)


def test_clip_grad_norm_matches_pytorch(rng):
    torch = _torch()
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    for max_norm, p in ((1.0, 2.0), (100.0, 2.0), (0.5, float("inf")), (0.3, 1.0)):
        ps = [nnx.Tensor(np.zeros_like(g), requires_grad=True) for g in grads]
        tps = [torch.zeros(g.shape, dtype=torch.float64, requires_grad=True) for g in grads]
        for a, b, g in zip(ps, tps, grads):
            a.grad = g.copy()
            b.grad = torch.tensor(g)
        total = nn.utils.clip_grad_norm_(ps, max_norm, norm_type=p)
        ttotal = torch.nn.utils.clip_grad_norm_(tps, max_norm, norm_type=p)
        assert total == pytest.approx(float(ttotal), rel=1e-12)
        for a, b in zip(ps, tps):
            assert_close(a.grad, b.grad.numpy(), np.float64, k=20)


def test_clip_grad_norm_without_torch():
    p = nnx.Tensor(np.zeros(2), requires_grad=True)
    p.grad = np.array([3.0, 4.0])
    assert nn.utils.clip_grad_norm_([p], 1.0) == pytest.approx(5.0)
    assert np.linalg.norm(p.grad) == pytest.approx(1.0, rel=1e-5)
    with pytest.raises(RuntimeError, match="total norm"):
        p.grad = np.array([np.inf, 0.0])
        nn.utils.clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
