"""nnx.optim: updates against hand-computed values and torch.optim, state_dict round trips, schedulers."""
import math

import numpy as np
import pytest

import nnx
from nnx import optim
from nnx.nn import Parameter

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def _grads(shape, steps, seed=0, dtype=np.float64):
    r = np.random.default_rng(seed)
    return [r.standard_normal(shape).astype(dtype) for _ in range(steps)]


def run_nnx(cls, kw, p0, grads):
    p = Parameter(p0.copy())
    opt = cls([p], **kw)
    for g in grads:
        p.grad = g.copy()
        opt.step()
    return p.data, opt


def run_torch(name, kw, p0, grads):
    p = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    opt = getattr(torch.optim, name)([p], **kw)
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    return p.detach().numpy()


def test_sgd_by_hand(isa):
    p = Parameter(np.array([1.0, -2.0]))
    opt = optim.SGD([p], lr=0.1, momentum=0.9, weight_decay=0.5)
    g1, g2 = np.array([0.5, 1.0]), np.array([-1.0, 2.0])
    p.grad = g1
    opt.step()
    d1 = g1 + 0.5 * np.array([1.0, -2.0])           # b1 = d1
    p1 = np.array([1.0, -2.0]) - 0.1 * d1
    np.testing.assert_allclose(p.data, p1, rtol=1e-15)
    p.grad = g2
    opt.step()
    b2 = 0.9 * d1 + (g2 + 0.5 * p1)
    np.testing.assert_allclose(p.data, p1 - 0.1 * b2, rtol=1e-15)
    np.testing.assert_allclose(opt.state[p]["momentum_buffer"], b2, rtol=1e-15)


def test_adam_by_hand_first_steps(isa):
    p0 = np.array([0.5, -1.5, 2.0])
    g = np.array([0.1, -0.2, 0.3])
    p, _ = run_nnx(optim.Adam, dict(lr=0.01), p0, [g, g])
    # With a constant gradient m_hat = g and v_hat = g^2 at every step: each step moves by lr * sign(g).
    expect = p0 - 2 * 0.01 * g / (np.abs(g) + 1e-8)
    np.testing.assert_allclose(p, expect, rtol=1e-12)


def test_rmsprop_by_hand_first_step(isa):
    p0, g = np.array([1.0, 2.0]), np.array([0.3, -0.4])
    p, _ = run_nnx(optim.RMSprop, dict(lr=0.01, alpha=0.9), p0, [g])
    s = 0.1 * g * g
    np.testing.assert_allclose(p, p0 - 0.01 * g / (np.sqrt(s) + 1e-8), rtol=1e-13)


CASES = [
    ("SGD", optim.SGD, dict(lr=0.1)),
    ("SGD", optim.SGD, dict(lr=0.05, momentum=0.9)),
    ("SGD", optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3, weight_decay=0.01)),
    ("SGD", optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    ("Adam", optim.Adam, dict()),
    ("Adam", optim.Adam, dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", optim.Adam, dict(lr=0.01, amsgrad=True)),
    ("AdamW", optim.AdamW, dict(lr=0.01)),
    ("AdamW", optim.AdamW, dict(lr=0.02, weight_decay=0.3, amsgrad=True)),
    ("RMSprop", optim.RMSprop, dict()),
    ("RMSprop", optim.RMSprop, dict(lr=0.01, alpha=0.9, weight_decay=0.1, momentum=0.5)),
    ("RMSprop", optim.RMSprop, dict(lr=0.01, centered=True, momentum=0.9)),
]


@needs_torch
@pytest.mark.parametrize("name, cls, kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_against_torch(name, cls, kw, dtype, isa):
    shape = (7, 13)  # not a multiple of any SIMD width
    p0 = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    grads = _grads(shape, 6, dtype=dtype)
    ours, _ = run_nnx(cls, kw, p0, grads)
    theirs = run_torch(name, kw, p0, grads)
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(ours, theirs, rtol=tol, atol=tol)


@pytest.mark.parametrize("name, cls, kw", CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_state_dict_round_trip(name, cls, kw):
    shape = (4, 5)
    p0 = np.random.default_rng(2).standard_normal(shape)
    grads = _grads(shape, 6, seed=3)
    # Uninterrupted run vs three steps, a checkpoint into a fresh optimizer, three more.
    full, _ = run_nnx(cls, kw, p0, grads)
    p_mid, opt = run_nnx(cls, kw, p0, grads[:3])
    sd = opt.state_dict()
    for st in sd["state"].values():
        assert all(isinstance(v, (np.ndarray, int, float)) for v in st.values())
    p = Parameter(p_mid.copy())
    opt2 = cls([p], **{**kw, "lr": 123.0})  # lr comes back from the checkpoint
    opt2.load_state_dict(sd)
    assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    for g in grads[3:]:
        p.grad = g.copy()
        opt2.step()
    np.testing.assert_array_equal(p.data, full)


def test_state_dict_is_a_copy_and_survives_npz():
    p = Parameter(np.ones(3))
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones(3)
    opt.step()
    sd = opt.state_dict()
    sd["state"][0]["exp_avg"][:] = 99
    assert opt.state[p]["exp_avg"][0] != 99
    # Scalars read back from an .npz come as 0-d arrays; load must accept them.
    sd["state"][0]["step"] = np.array(1)
    opt.load_state_dict(sd)
    assert opt.state[p]["step"] == 1


def test_load_state_dict_errors():
    a, b = Parameter(np.ones(3)), Parameter(np.ones(2))
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad, b.grad = np.ones(3), np.ones(2)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="has 2 parameters"):
        optim.SGD([a], lr=0.1).load_state_dict(sd)
    other = optim.SGD([Parameter(np.ones(4)), Parameter(np.ones(2))], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(sd)
    # A float64 momentum buffer is not silently cast into a float32 parameter's state.
    a32, b32 = Parameter(np.ones(3, np.float32)), Parameter(np.ones(2, np.float32))
    opt32 = optim.SGD([a32, b32], lr=0.1, momentum=0.9)
    with pytest.raises(ValueError, match=r"state 'momentum_buffer' of parameter 0 is float64, the parameter is "
                                         r"float32"):
        opt32.load_state_dict(sd)
    assert opt32.state == {}  # nothing was half-loaded
    for key in ("state", "param_groups"):
        with pytest.raises(ValueError, match=f"state_dict: no '{key}' entry"):
            opt.load_state_dict({k: v for k, v in sd.items() if k != key})


def test_param_groups_have_their_own_hyperparameters():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 1.0}], lr=0.1)
    a.grad = b.grad = np.ones(2)
    opt.step()
    np.testing.assert_allclose(a.data, 0.9)
    np.testing.assert_allclose(b.data, 0.0)


def test_parameters_without_grad_are_skipped_and_zero_grad():
    a, b = Parameter(np.ones(2)), Parameter(np.ones(2))
    opt = optim.Adam([a, b])
    a.grad = np.ones(2)
    opt.step()
    np.testing.assert_array_equal(b.data, 1.0)
    assert b not in opt.state
    opt.zero_grad(set_to_none=False)
    np.testing.assert_array_equal(a.grad, 0.0)
    opt.zero_grad()
    assert a.grad is None


def test_bad_arrays_are_rejected():
    p = Parameter(np.ones((4, 4)))
    opt = optim.SGD([p], lr=0.1)
    p.grad = np.ones((4, 4), np.float32)
    with pytest.raises(TypeError, match="float32"):
        opt.step()
    p.grad = np.ones((4, 4)).T  # non-contiguous gradients are fine (copied)
    opt.step()
    p.data = np.ones((4, 8))[:, ::2]
    p.grad = np.ones((4, 4))
    with pytest.raises(ValueError, match="C-contiguous"):
        opt.step()
    with pytest.raises(ValueError, match="empty"):
        optim.SGD([], lr=0.1)
    with pytest.raises(ValueError, match="lr"):
        optim.SGD([p], lr=-1)
    with pytest.raises(ValueError, match="nesterov"):
        optim.SGD([p], lr=0.1, nesterov=True)


def test_kernels_reject_bad_arrays_directly():
    from nnx._backend import _C
    p = np.ones(8, np.float32)
    with pytest.raises(ValueError, match="read-only"):
        ro = p.copy()
        ro.flags.writeable = False
        _C.sgd_step(ro, p, None, 0.1, 0.0, 0.0, 0.0, False, True)
    with pytest.raises(ValueError, match="elements"):
        _C.sgd_step(p, np.ones(7, np.float32), None, 0.1, 0.0, 0.0, 0.0, False, True)
    with pytest.raises(ValueError, match="needs the state"):
        _C.sgd_step(p, p.copy(), None, 0.1, 0.9, 0.0, 0.0, False, True)
    with pytest.raises(TypeError):
        _C.adam_step(p, np.ones(8), p.copy(), p.copy(), None, 0.1, 0.9, 0.99, 1e-8, 0.0, False, False, 1, 1)




def test_model_training_reduces_loss():
    nnx.manual_seed(0)
    w_true = np.random.default_rng(0).standard_normal((3, 1))
    x = np.random.default_rng(1).standard_normal((64, 3))
    y = x @ w_true
    w = Parameter(np.zeros((3, 1)))
    opt = optim.SGD([w], lr=0.1, momentum=0.5)
    losses = []
    for _ in range(50):
        opt.zero_grad()
        loss = ((nnx.Tensor(x) @ w - y) ** 2).mean()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 1e-4 * losses[0]


# ------------------------------------------------------------------ schedulers
def _sched_lrs(make_sched, opt, n):
    s = make_sched(opt)
    lrs = []
    for _ in range(n):
        lrs.append(s.get_last_lr()[0])
        opt.step()
        s.step()
    return lrs


def test_step_lr_by_hand():
    opt = optim.SGD([Parameter(np.ones(1))], lr=1.0)
    lrs = _sched_lrs(lambda o: optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5), opt, 6)
    assert lrs == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_cosine_by_hand():
    opt = optim.SGD([Parameter(np.ones(1))], lr=1.0)
    lrs = _sched_lrs(lambda o: optim.lr_scheduler.CosineAnnealingLR(o, T_max=4, eta_min=0.1), opt, 5)
    expect = [0.1 + 0.9 * (1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)]
    np.testing.assert_allclose(lrs, expect, rtol=1e-12)
    assert abs(lrs[-1] - 0.1) < 1e-12


@needs_torch
@pytest.mark.parametrize("kind", ["step", "cosine"])
def test_schedulers_against_torch(kind):
    ours = optim.SGD([Parameter(np.ones(1))], lr=0.3)
    tp = torch.nn.Parameter(torch.ones(1))
    theirs = torch.optim.SGD([tp], lr=0.3)
    if kind == "step":
        a = _sched_lrs(lambda o: optim.lr_scheduler.StepLR(o, 3, gamma=0.7), ours, 10)
        b = _sched_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, 3, gamma=0.7), theirs, 10)
    else:
        a = _sched_lrs(lambda o: optim.lr_scheduler.CosineAnnealingLR(o, 7, eta_min=0.01), ours, 8)
        b = _sched_lrs(lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, 7, eta_min=0.01), theirs, 8)
    np.testing.assert_allclose(a, b, rtol=1e-10)


def test_scheduler_state_dict_resumes():
    opt = optim.SGD([Parameter(np.ones(1))], lr=1.0)
    s = optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.1)
    for _ in range(3):
        s.step()
    sd = s.state_dict()
    assert "optimizer" not in sd
    opt2 = optim.SGD([Parameter(np.ones(1))], lr=1.0)
    s2 = optim.lr_scheduler.StepLR(opt2, step_size=5, gamma=0.5)
    s2.load_state_dict(sd)
    s.step()
    s2.step()
    assert s.get_last_lr() == s2.get_last_lr() == pytest.approx([0.01], rel=1e-12)


# nnx.optim's fused C++ loops against nnx.reference.optim (the NumPy twins), step by step.
REFERENCE_CASES = [
    ("SGD", dict(lr=0.1), "sgd"),
    ("SGD", dict(lr=0.05, momentum=0.9, weight_decay=0.01), "sgd"),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True), "sgd"),
    ("SGD", dict(lr=0.05, momentum=0.8, dampening=0.3), "sgd"),
    ("Adam", dict(lr=0.01, weight_decay=0.1), "adam"),
    ("Adam", dict(lr=0.01, amsgrad=True), "adam"),
    ("AdamW", dict(lr=0.01, weight_decay=0.1), "adamw"),
    ("RMSprop", dict(lr=0.01), "rmsprop"),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01), "rmsprop"),
    ("Adagrad", dict(lr=0.05), "adagrad"),
    ("Adagrad", dict(lr=0.05, lr_decay=0.1, weight_decay=0.01), "adagrad"),
    ("Adadelta", dict(lr=1.0), "adadelta"),
    ("Adadelta", dict(lr=0.5, rho=0.8, weight_decay=0.01), "adadelta"),
]


def _reference_run(kind, kw, p, grads):
    from nnx.reference import optim as ref

    state = {}
    for t, g in enumerate(grads, start=1):
        if kind == "sgd":
            p, state["b"] = ref.sgd_step(p, g, state.get("b"), **kw)
        elif kind in ("adam", "adamw"):
            m = state.get("m", np.zeros_like(p))
            v = state.get("v", np.zeros_like(p))
            akw = {k: v_ for k, v_ in kw.items()}
            p, state["m"], state["v"], state["vmax"] = ref.adam_step(
                p, g, m, v, t, max_exp_avg_sq=state.get("vmax"), decoupled=kind == "adamw",
                **({"weight_decay": 1e-2} | akw if kind == "adamw" else akw))
        elif kind == "adagrad":
            p, state["s"] = ref.adagrad_step(p, g, state.get("s", np.zeros_like(p)), t, **kw)
        elif kind == "adadelta":
            p, state["s"], state["u"] = ref.adadelta_step(p, g, state.get("s", np.zeros_like(p)),
                                                          state.get("u", np.zeros_like(p)), **kw)
        else:
            s = state.get("s", np.zeros_like(p))
            p, state["s"], state["b"], state["a"] = ref.rmsprop_step(
                p, g, s, momentum_buffer=state.get("b"), grad_avg=state.get("a"), **kw)
    return p


@pytest.mark.parametrize("name,kw,kind", REFERENCE_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(REFERENCE_CASES)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_against_reference_twin(name, kw, kind, dtype, isa):
    r = np.random.default_rng(3)
    p0 = r.standard_normal(1000).astype(dtype)  # long enough for the SIMD body and a tail
    grads = _grads(1000, 6, seed=4, dtype=dtype)
    got, _ = run_nnx(getattr(optim, name), kw, p0, grads)
    want = _reference_run(kind, kw, p0.copy(), grads)
    assert got.dtype == want.dtype == dtype
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == np.float32 else 1e-12,
                               atol=1e-6 if dtype == np.float32 else 1e-14)


# Running states that decay under the smallest normal number are stored as 0, by the C++ loops and their
# NumPy twins alike (cpp/optim/optim_blocks.h, flush_subnormal): gradients of a few times that number, then
# zeros, as a dead unit sees them.
FLUSH_CASES = [("SGD", dict(lr=0.1, momentum=0.9), "sgd"), ("Adam", dict(lr=0.01), "adam"),
               ("AdamW", dict(lr=0.01), "adamw"), ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True), "rmsprop"),
               ("Adadelta", dict(lr=1.0), "adadelta")]


@pytest.mark.parametrize("name,kw,kind", FLUSH_CASES, ids=[c[0] for c in FLUSH_CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_decayed_states_flush_to_zero(name, kw, kind, dtype, isa):
    tiny = np.finfo(dtype).tiny
    r = np.random.default_rng(5)
    p0 = np.ones(37, dtype)
    first = (r.choice([-1.0, 1.0], 37) * r.uniform(20, 60, 37) * tiny).astype(dtype)
    grads = [first] + [np.zeros(37, dtype)] * 400
    got, opt = run_nnx(getattr(optim, name), kw, p0, grads)
    states = [v for v in opt.state[opt.param_groups[0]["params"][0]].values() if isinstance(v, np.ndarray)]
    assert states
    for s in states:
        subnormal = (s != 0) & (np.abs(s) < tiny)
        assert not subnormal.any(), f"{name}: {subnormal.sum()} subnormal state values"
    want = _reference_run(kind, kw, p0.copy(), grads)
    np.testing.assert_array_equal(got, want)
