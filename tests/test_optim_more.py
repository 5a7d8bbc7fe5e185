"""Adagrad and Adadelta against torch.optim over several steps, on every kernel path; the extra
learning-rate schedulers against torch's lr sequences; their use from nnx.fit."""
import numpy as np
import pytest

import nnx
from nnx import nn, optim
from nnx.nn import Parameter
from nnx.optim import lr_scheduler as S

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")

CASES = [
    ("Adagrad", optim.Adagrad, dict()),
    ("Adagrad", optim.Adagrad, dict(lr=0.1, lr_decay=0.05, weight_decay=0.1, initial_accumulator_value=0.2,
                                    eps=1e-6)),
    ("Adadelta", optim.Adadelta, dict()),
    ("Adadelta", optim.Adadelta, dict(lr=0.5, rho=0.8, eps=1e-4, weight_decay=0.05)),
]
IDS = [f"{c[0]}-{i}" for i, c in enumerate(CASES)]


from test_optim import _grads, run_nnx as _run  # noqa: E402  (the same step loop as the other optimizers)


@needs_torch
@pytest.mark.parametrize("name, cls, kw", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_against_torch(name, cls, kw, dtype, isa):
    shape = (7, 13)  # not a multiple of any SIMD width
    p0 = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    grads = _grads(shape, 8, dtype=dtype)
    ours, opt = _run(cls, kw, p0, grads)
    tp = torch.nn.Parameter(torch.from_numpy(p0.copy()))
    topt = getattr(torch.optim, name)([tp], **kw)
    for g in grads:
        tp.grad = torch.from_numpy(g.copy())
        topt.step()
    tol = 1e-12 if dtype == np.float64 else 2e-5
    np.testing.assert_allclose(ours, tp.detach().numpy(), rtol=tol, atol=tol)
    tstate = topt.state[tp]
    for key in ("sum", "square_avg", "acc_delta"):
        if key in tstate:
            np.testing.assert_allclose(opt.state[opt.param_groups[0]["params"][0]][key], tstate[key].numpy(),
                                       rtol=tol, atol=tol)


def test_adagrad_by_hand():
    p0, g = np.array([1.0, -2.0]), np.array([0.5, -0.25])
    p, _ = _run(optim.Adagrad, dict(lr=0.1, lr_decay=0.5), p0, [g, g])
    p1 = p0 - 0.1 * g / (np.abs(g) + 1e-10)
    expect = p1 - 0.1 / 1.5 * g / (np.sqrt(2 * g * g) + 1e-10)
    np.testing.assert_allclose(p, expect, rtol=1e-14)


def test_adadelta_by_hand_first_step():
    p0, g = np.array([1.0, 3.0]), np.array([0.2, -0.4])
    p, _ = _run(optim.Adadelta, dict(lr=1.0, rho=0.9, eps=1e-6), p0, [g])
    s = 0.1 * g * g
    d = np.sqrt(1e-6) / np.sqrt(s + 1e-6) * g
    np.testing.assert_allclose(p, p0 - d, rtol=1e-14)


@pytest.mark.parametrize("name, cls, kw", CASES, ids=IDS)
def test_state_dict_round_trip_and_threads(name, cls, kw):
    p0 = np.random.default_rng(2).standard_normal((300, 301)).astype(np.float32)  # big enough to thread
    grads = _grads(p0.shape, 4, seed=3, dtype=np.float32)
    before = nnx.get_num_threads()
    try:
        nnx.set_num_threads(1)
        one, _ = _run(cls, kw, p0, grads)
        nnx.set_num_threads(max(2, before))
        many, _ = _run(cls, kw, p0, grads)
    finally:
        nnx.set_num_threads(before)
    np.testing.assert_array_equal(one, many)
    p_mid, opt = _run(cls, kw, p0, grads[:2])
    sd = nnx.io.load(_save(opt.state_dict())) if hasattr(nnx, "io") else opt.state_dict()
    p = Parameter(p_mid.copy())
    opt2 = cls([p], **kw)
    opt2.load_state_dict(sd)
    for g in grads[2:]:
        p.grad = g.copy()
        opt2.step()
    np.testing.assert_array_equal(p.data, one)


def _save(sd, _n=[0]):
    import os
    import tempfile
    _n[0] += 1
    path = os.path.join(tempfile.mkdtemp(), f"opt{_n[0]}.npz")
    nnx.save(sd, path)
    return path


def test_bad_arguments():
    p = Parameter(np.ones(3))
    with pytest.raises(ValueError, match="lr_decay"):
        optim.Adagrad([p], lr_decay=-1)
    with pytest.raises(ValueError, match="rho"):
        optim.Adadelta([p], rho=2)
    with pytest.raises(ValueError, match="lr"):
        optim.Adadelta([p], lr=-1)
    opt = optim.Adagrad([p])
    p.grad = np.ones(4)
    with pytest.raises(ValueError, match="grad"):
        opt.step()


# ------------------------------------------------------------------------------------------ schedulers
def _opt(lr=0.1, **kw):
    return optim.SGD([Parameter(np.ones(2))], lr=lr, momentum=0.9, **kw)


def _topt(lr=0.1):
    return torch.optim.SGD([torch.nn.Parameter(torch.ones(2))], lr=lr, momentum=0.9)


def _lrs(sched, opt, n, metrics=None):
    out = [opt.param_groups[0]["lr"]]
    for i in range(n):
        opt.step()  # no gradients: nothing moves, but torch wants a step before the scheduler's
        sched.step() if metrics is None else sched.step(metrics[i])
        out.append(opt.param_groups[0]["lr"])
    return out


SCHEDULES = [
    ("ExponentialLR", dict(gamma=0.9)),
    ("MultiStepLR", dict(milestones=[3, 7, 8], gamma=0.5)),
    ("LambdaLR", dict(lr_lambda=lambda e: 1.0 / (1 + e) ** 0.5)),
    ("OneCycleLR", dict(max_lr=1.0, total_steps=20)),
    ("OneCycleLR", dict(max_lr=0.5, total_steps=17, pct_start=0.4, anneal_strategy="linear", div_factor=10,
                        final_div_factor=100)),
    ("OneCycleLR", dict(max_lr=0.5, epochs=4, steps_per_epoch=5, three_phase=True)),
]


@needs_torch
@pytest.mark.parametrize("name, kw", SCHEDULES, ids=[f"{s[0]}-{i}" for i, s in enumerate(SCHEDULES)])
def test_schedulers_against_torch(name, kw):
    n = kw.get("total_steps", 20) - 1 if name == "OneCycleLR" else 12
    opt, topt = _opt(), _topt()
    ours = _lrs(getattr(S, name)(opt, **kw), opt, n)
    theirs = _lrs(getattr(torch.optim.lr_scheduler, name)(topt, **kw), topt, n)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    if name == "OneCycleLR":  # the momentum moves against the lr
        assert opt.param_groups[0]["momentum"] == pytest.approx(topt.param_groups[0]["momentum"], rel=1e-12)


@needs_torch
@pytest.mark.parametrize("kw", [dict(), dict(mode="max", factor=0.5, patience=1, cooldown=2, min_lr=0.02),
                                dict(patience=0, threshold=0.1, threshold_mode="abs")])
def test_reduce_on_plateau_against_torch(kw):
    metrics = [1.0, 0.9, 0.95, 0.97, 0.96, 0.89, 0.9, 0.91, 0.92, 0.93, 0.94, 0.88, 0.95, 0.96, 0.97,
               0.98, 0.99, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 0.5, 0.5, 0.5]
    opt, topt = _opt(), _topt()
    ours = _lrs(S.ReduceLROnPlateau(opt, **kw), opt, len(metrics), metrics)
    theirs = _lrs(torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw), topt, len(metrics), metrics)
    np.testing.assert_allclose(ours, theirs, rtol=1e-12)
    assert len(set(ours)) > 1  # the sequence actually reduces


def test_onecycle_momentum_and_adam_betas_and_errors():
    p = Parameter(np.ones(2))
    adam = optim.Adam([p], lr=1e-3)
    sched = S.OneCycleLR(adam, max_lr=0.01, total_steps=10)
    assert adam.param_groups[0]["betas"][0] == pytest.approx(0.95)
    for _ in range(3):
        sched.step()
    assert adam.param_groups[0]["betas"][0] < 0.95
    with pytest.raises(ValueError, match="total_steps"):
        S.OneCycleLR(_opt(), max_lr=1.0)
    sched = S.OneCycleLR(_opt(), max_lr=1.0, total_steps=2)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match="total_steps"):
        sched.step()
    with pytest.raises(ValueError, match="mode"):
        S.ReduceLROnPlateau(_opt(), mode="up")
    with pytest.raises(ValueError, match="lr_lambda"):
        S.LambdaLR(_opt(), lr_lambda=[lambda e: 1, lambda e: 2])


def test_fit_steps_onecycle_per_batch_and_plateau_per_epoch():
    nnx.manual_seed(0)
    X = np.random.default_rng(0).standard_normal((64, 5)).astype(np.float32)
    y = (X[:, 0] > 0).astype(np.int64)
    model = nn.Linear(5, 2)
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    sched = S.OneCycleLR(opt, max_lr=0.2, epochs=3, steps_per_epoch=4)
    nnx.fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=3, batch_size=16, scheduler=sched, progress=False)
    assert sched.last_epoch == 12
    opt = optim.SGD(model.parameters(), lr=0.1)
    # Only the first epoch can count as an improvement (threshold 10 absolute): the second halves the lr.
    plateau = S.ReduceLROnPlateau(opt, patience=0, factor=0.5, threshold=10.0, threshold_mode="abs")
    h = nnx.fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=3, batch_size=16, scheduler=plateau,
                val=(X, y), progress=False)
    assert h.lr == [0.1, 0.1, 0.05]
    assert plateau.best == h.val_loss[0]


@pytest.mark.parametrize("make", [lambda o: S.OneCycleLR(o, max_lr=1.0, total_steps=12),
                                  lambda o: S.MultiStepLR(o, [2, 5]), lambda o: S.ExponentialLR(o, 0.8),
                                  lambda o: S.LambdaLR(o, lambda e: 1 / (e + 1))],
                         ids=["onecycle", "multistep", "exponential", "lambda"])
def test_scheduler_state_dict_resumes_through_npz(make, tmp_path):
    opt = _opt()
    sched = make(opt)
    full = _lrs(sched, opt, 10)
    opt = _opt()
    sched = make(opt)
    first = _lrs(sched, opt, 4)
    nnx.save({"sched": sched.state_dict(), "opt": opt.state_dict()}, tmp_path / "s.npz")
    ck = nnx.load(tmp_path / "s.npz")
    opt2 = _opt(lr=5.0)
    opt2.load_state_dict(ck["opt"])
    sched2 = make(opt2)
    sched2.load_state_dict(ck["sched"])
    opt2.load_state_dict(ck["opt"])
    rest = _lrs(sched2, opt2, 6)
    np.testing.assert_allclose(first + rest[1:], full, rtol=1e-15)


def test_plateau_state_dict_round_trip(tmp_path):
    metrics = [1.0, 1.0, 1.0, 0.5, 0.6, 0.7, 0.8]
    opt = _opt()
    full = _lrs(S.ReduceLROnPlateau(opt, patience=1), opt, len(metrics), metrics)
    opt = _opt()
    s = S.ReduceLROnPlateau(opt, patience=1)
    first = _lrs(s, opt, 3, metrics)
    nnx.save({"s": s.state_dict()}, tmp_path / "p.npz")
    s2 = S.ReduceLROnPlateau(opt, patience=1)
    s2.load_state_dict(nnx.load(tmp_path / "p.npz")["s"])
    rest = _lrs(s2, opt, 4, metrics[3:])
    assert first + rest[1:] == full
