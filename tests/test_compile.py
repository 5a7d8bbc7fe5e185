"""nnx.compile: a captured step replayed from C++ gives the eager step's bits, and what it cannot replay is
refused (or captured again) rather than replayed wrong."""
import threading

import numpy as np
import pytest

import nnx
from nnx import nn, optim
from nnx.compile import CompileError, CompileWarning

rng = np.random.default_rng(0)


def batches(shape, n, classes=10, seed=1):
    r = np.random.default_rng(seed)
    return [(r.standard_normal(shape).astype(np.float32), r.integers(0, classes, shape[0])) for _ in range(n)]


class _Residual(nn.Module):
    # relu(x + relu(bn(conv(x)))): the residual sum and the sum of x's two gradients are kernel calls when large
    # enough (nnx.ops._checks), so such a step can be captured. The inner relu fuses into the BatchNorm
    # (functional.relu on a temporary), in the eager run and while a capture records too (the recording describes
    # the results it made in the plan's blocks instead of holding them, so relu sees that nothing else does).
    def __init__(self, c):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(c, c, 3, padding=1), nn.BatchNorm2d(c)

    def forward(self, x):
        h = nnx.functional.relu(self.bn(self.conv(x)))
        self.fused = h._op == "batch_norm+relu"
        return nnx.functional.relu(x + h)


def build(name, opt_cls=optim.SGD, seed=0, **opt_kw):
    nnx.manual_seed(seed)
    if name == "lenet":
        model = nnx.models.lenet5()
    elif name == "mlp":
        model = nnx.models.mlp(hidden=(32, 16), in_features=20)
    elif name == "bn":
        model = nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10))
    elif name == "dropout":
        model = nnx.models.mlp(hidden=(32, 16), in_features=20, dropout=0.3)
    elif name == "residual":
        model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), _Residual(8), _Residual(8), nn.GlobalAvgPool2d(),
                              nn.Flatten(), nn.Linear(8, 10))
    opt = opt_cls(model.parameters(), **(opt_kw or {"lr": 0.05, "momentum": 0.9}))
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        out = model(x)
        loss = loss_fn(out, y)
        loss.backward()
        opt.step()
        return loss, out
    return model, opt, step


def same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def assert_same_state(m1, o1, m2, o2):
    for (k, a), (_, b) in zip(m1.state_dict().items(), m2.state_dict().items()):
        assert same_bits(a, b), k
    s1, s2 = o1.state_dict()["state"], o2.state_dict()["state"]
    assert s1.keys() == s2.keys()
    for i in s1:
        for name, v in s1[i].items():
            assert same_bits(v, s2[i][name]), (i, name)
    for p1, p2 in zip(m1.parameters(), m2.parameters()):
        assert (p1.grad is None) == (p2.grad is None)
        if p1.grad is not None:
            assert same_bits(p1.grad, p2.grad)


def run_both(name, data, opt_cls=optim.SGD, each=None, **opt_kw):
    """Eager and compiled (strict) runs of the same step on the same data; returns both models/optimizers."""
    m1, o1, s1 = build(name, opt_cls, **opt_kw)
    m2, o2, s2 = build(name, opt_cls, **opt_kw)
    c2 = nnx.compile(s2, strict=True)
    for i, (x, y) in enumerate(data):
        if each is not None:
            each(i, m1, o1)
            each(i, m2, o2)
        l1, out1 = s1(x, y)
        l2, out2 = c2(x, y)
        assert same_bits(l1.numpy(), l2.numpy()), i
        assert same_bits(out1.numpy(), out2.numpy()), i
    assert_same_state(m1, o1, m2, o2)
    if name == "residual":
        blocks = [b for b in m1 if isinstance(b, _Residual)]
        assert len(blocks) == 2 and all(b.fused for b in blocks), "eager: the relu fuses into the BatchNorm"
    return c2


@pytest.mark.parametrize("name, shape", [("mlp", (4, 20)), ("lenet", (3, 1, 28, 28)),
                                         ("residual", (4, 1, 32, 32))])
def test_training_step_is_bit_identical_to_eager(name, shape):
    c = run_both(name, batches(shape, 6))
    (st,) = c.stats()
    assert st["state"] == "plan" and st["calls"] == 6 and st["kernel_calls"] > 10
    assert st["plan_bytes"] > 0 and st["capture_seconds"] > 0


@pytest.mark.parametrize("threads", [2, 3])
def test_threads_chosen_per_call_keep_the_bits(threads):
    # The first replays with more than one thread time each call at 1 and at `threads` threads, alternating,
    # then whole replays of three candidate choices, and later ones run the fastest; every replay must still
    # give the eager bits (computed here at one thread) and the choice covers every call.
    data = batches((3, 1, 28, 28), 28)
    m1, o1, s1 = build("lenet")
    eager = [s1(x, y) for x, y in data]
    m2, o2, s2 = build("lenet")
    c2 = nnx.compile(s2, strict=True)
    tuned = nnx.compile(build("lenet")[2], strict=True, tune_threads=False)
    before = nnx.get_num_threads()
    nnx.set_num_threads(threads)
    try:
        for i, (x, y) in enumerate(data):
            l2, out2 = c2(x, y)
            assert same_bits(eager[i][0].numpy(), l2.numpy()), i
            assert same_bits(eager[i][1].numpy(), out2.numpy()), i
            tuned(x, y)
    finally:
        nnx.set_num_threads(before)
    assert_same_state(m1, o1, m2, o2)
    (st,) = c2.stats()
    assert len(st["threads"]) == st["kernel_calls"] and set(st["threads"]) <= {1, threads}
    assert len(st["thread_candidates_s"]) == 3 and min(st["thread_candidates_s"]) > 0
    assert tuned.stats()[0]["threads"] == [] and tuned.stats()[0]["thread_candidates_s"] == []


@pytest.mark.parametrize("opt_cls, kw", [(optim.Adam, {"lr": 1e-2}), (optim.AdamW, {"lr": 1e-2, "amsgrad": True}),
                                         (optim.RMSprop, {"lr": 1e-2, "momentum": 0.5, "centered": True}),
                                         (optim.SGD, {"lr": 0.1, "momentum": 0.9, "nesterov": True,
                                                      "weight_decay": 1e-3}),
                                         (optim.Adagrad, {"lr": 0.1, "lr_decay": 0.1, "weight_decay": 1e-3,
                                                          "initial_accumulator_value": 0.1}),
                                         (optim.Adadelta, {"lr": 1.0, "rho": 0.8, "weight_decay": 1e-3})])
def test_optimizers_replay_with_their_step_counts(opt_cls, kw):
    c = run_both("mlp", batches((4, 20), 6), opt_cls, **kw)
    assert c.stats()[0]["state"] == "plan"


def test_learning_rate_schedule_is_seen_by_the_replay():
    # StepLR changes lr every other call and MultiplicativeLR-style edits change it by hand: the replay reads
    # the optimizer's hyperparameters every call, so it matches eager.
    def each(i, model, opt):
        if i == 3:
            opt.param_groups[0]["lr"] = 0.01
        if i == 5:
            opt.param_groups[0]["momentum"] = 0.5

    sched_data = batches((4, 20), 8)
    c = run_both("mlp", sched_data, each=each)
    assert c.stats()[0]["state"] == "plan"
    m1, o1, s1 = build("mlp")
    m2, o2, s2 = build("mlp")
    sch1 = optim.lr_scheduler.StepLR(o1, step_size=2, gamma=0.5)
    sch2 = optim.lr_scheduler.StepLR(o2, step_size=2, gamma=0.5)
    c2 = nnx.compile(s2, strict=True)
    for x, y in sched_data:
        s1(x, y)
        c2(x, y)
        sch1.step()
        sch2.step()
    assert_same_state(m1, o1, m2, o2)


def test_new_shapes_capture_new_plans_and_old_ones_stay():
    m1, o1, s1 = build("mlp")
    m2, o2, s2 = build("mlp")
    c2 = nnx.compile(s2, strict=True, cache_size=2)
    data = batches((4, 20), 3) + batches((3, 20), 3, seed=2) + batches((4, 20), 2, seed=3) + batches((5, 20), 3)
    for x, y in data:
        l1, _ = s1(x, y)
        l2, _ = c2(x, y)
        assert same_bits(l1.numpy(), l2.numpy())
    assert_same_state(m1, o1, m2, o2)
    assert [s["key"][0][0] for s in c2.stats()] == [(4, 20), (5, 20)]  # (3, 20) was least recently used


def test_inference_of_a_model_in_eval_mode():
    nnx.manual_seed(0)
    model = nnx.models.lenet5().eval()
    predict = nnx.compile(model, strict=True)
    for n in (1, 1, 1, 2, 2, 2, 1):
        x = rng.standard_normal((n, 1, 28, 28)).astype(np.float32)
        with nnx.no_grad():
            want = model(x).numpy()
        got = predict(x)
        assert isinstance(got, nnx.Tensor) and not got.requires_grad
        assert same_bits(want, got.numpy())
    assert {s["state"] for s in predict.stats()} == {"plan"}


def test_inference_plan_reuses_the_memory_of_dropped_results():
    """Op results made during a capture take their memory from the plan's blocks (Plan.empty), and a result dropped
    during the capture gives its block back for a later one, as malloc does for the eager step: a stack of 12
    layers whose activations (128 KiB each) die one after another holds a few of them, not 12, and replays the
    eager bits for new inputs."""
    nnx.manual_seed(0)
    layers = []
    for _ in range(6):
        layers += [nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()]
    model = nn.Sequential(*layers).eval()
    predict = nnx.compile(model, strict=True)
    act_bytes = 16 * 8 * 16 * 16 * 4
    for seed in range(4):
        x = np.random.default_rng(seed).standard_normal((16, 8, 16, 16)).astype(np.float32)
        with nnx.no_grad():
            want = model(x).numpy()
        assert same_bits(want, predict(x).numpy())
    (st,) = predict.stats()
    assert st["state"] == "plan"
    assert st["plan_bytes"] <= 5 * act_bytes  # the input, the output and the blocks the layers pass along
    assert predict._cache[st["key"]].analysis.plan.arena_bytes <= 4 * act_bytes


def test_results_made_during_a_capture_own_their_memory():
    """nnx._args.owns_memory counts a capture's results as owners (autograd then keeps a fresh gradient rather than
    copying it, and the kernels may work in place on it), as it does np.empty's and the block cache's."""
    from nnx import _args, _capture

    plan = nnx._C.Plan()

    class _Rec:
        pass

    rec = _Rec()
    rec.plan = plan
    _capture.set_current(rec)
    try:
        a = _args.empty((3, 4), np.float32, "y")
    finally:
        _capture.set_current(None)
    assert type(a.base) is nnx._C.CaptureBlock and _args.owns_memory(a) and not _args.owns_memory(a[1:])
    assert plan.arena_bytes >= a.nbytes
    a[...] = 1.5
    assert a.sum() == 18.0


def test_outputs_are_fresh_arrays():
    m, o, s = build("mlp")
    c = nnx.compile(s, strict=True)
    data = batches((4, 20), 5)
    losses = [c(x, y)[0] for x, y in data]
    assert len({id(l.data) for l in losses}) == 5
    m1, o1, s1 = build("mlp")
    for l, (x, y) in zip(losses, data):
        assert same_bits(l.numpy(), s1(x, y)[0].numpy())


def test_changes_between_calls_are_seen_or_captured_again():
    data = batches((4, 20), 12)
    other = build("mlp", seed=5)[0].state_dict()

    def each(i, model, opt):
        lin = model[1]
        if i == 4:  # in place: the plan reads the parameter arrays themselves
            model.load_state_dict(other)
        if i == 6:  # a new parameter array: detected, captured again
            lin.weight.data = lin.weight.data * 0.5
        if i == 8:  # new optimizer state arrays: detected, captured again
            opt.load_state_dict(opt.state_dict())
        if i == 10:  # train/eval mode: detected
            model.eval()
    run_both("mlp", data, each=each)


def test_numpy_arithmetic_in_the_step_is_refused_and_runs_eagerly():
    # Tensor arithmetic runs in NumPy (no kernel records it): a replay would freeze its result, so the step is
    # refused and keeps running eagerly, with the eager results.
    data = batches((8, 20), 4)
    m1, o1, _ = build("mlp")
    m2, o2, _ = build("mlp")

    def scaled(model, opt):
        def step(x, y):
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(model(x) * 0.5, y)
            loss.backward()
            opt.step()
            return loss
        return step
    s1, s2 = scaled(m1, o1), scaled(m2, o2)
    c = nnx.compile(s2)
    with pytest.warns(CompileWarning, match="computed by NumPy or Python between kernels"):
        for x, y in data:
            c(x, y)
    for x, y in data:
        s1(x, y)
    assert_same_state(m1, o1, m2, o2)
    assert c.stats()[0]["state"] == "eager"
    m3, o3, _ = build("mlp")
    with pytest.raises(CompileError, match="runs eagerly"):
        nnx.compile(scaled(m3, o3), strict=True)(*data[0])


def test_dropout_network_in_eval_mode_compiles_for_inference():
    model = build("dropout")[0].eval()
    x = rng.standard_normal((2, 20)).astype(np.float32)
    predict = nnx.compile(model, strict=True)
    for _ in range(3):
        got = predict(x)
    with nnx.no_grad():
        assert same_bits(model(x).numpy(), got.numpy())


def test_numpy_change_of_state_inside_the_step_is_refused():
    model, opt, step = build("mlp")

    def decayed(x, y):
        model[1].weight.data *= 0.99  # in place, in NumPy: the kernels never see it happen
        return step(x, y)
    with pytest.raises(CompileError, match="does not reproduce the eager step"):
        c = nnx.compile(decayed, strict=True)
        for x, y in batches((4, 20), 3):
            c(x, y)


def test_data_dependent_control_flow_is_refused():
    model, opt, step = build("mlp")

    def branchy(x, y):
        opt.zero_grad()
        h = model[1](model[0](x))
        h = nnx.functional.relu(h) if float(x.sum()) > 0 else nnx.functional.tanh(h)
        loss = nn.CrossEntropyLoss()(model[5](model[4](model[3](h))), y)
        loss.backward()
        opt.step()
        return loss
    x = np.abs(rng.standard_normal((4, 20))).astype(np.float32)
    y = np.arange(4)
    c = nnx.compile(branchy, strict=True)
    with pytest.raises(CompileError, match="different kernels"):
        for i in range(8):
            c(x if i % 2 else -x, y)
    # A branch that flips only after capture is caught by a checking call.
    c = nnx.compile(branchy, strict=True, check_every=3)
    with pytest.raises(CompileError, match="checking call"):
        for i in range(10):
            c(x if i < 4 else -x, y)


def test_other_refusals():
    model, opt, step = build("mlp")
    x, y = batches((4, 20), 1)[0]
    with pytest.raises(CompileError, match="returns a float"):
        nnx.compile(lambda a, b: step(a, b)[0].item(), strict=True)(x, y)

    def accumulate(a, b):  # no zero_grad: gradients add up in NumPy
        loss = nn.CrossEntropyLoss()(model(a), b)
        loss.backward()
        opt.step()
        return loss
    c = nnx.compile(accumulate, strict=True)
    with pytest.raises(CompileError, match="NumPy or Python"):
        for _ in range(3):
            c(x, y)
    with pytest.raises(CompileError, match="float64|dtype conversion|NumPy"):
        c = nnx.compile(step, strict=True)
        for _ in range(3):
            c(x.astype(np.float64), y)


def test_per_parameter_updates_are_refused_and_run_eagerly():
    # An optimizer without a multi-tensor update calls a kernel per parameter from Python (the per-parameter
    # bindings tell the capture so): it is refused and keeps stepping eagerly, with the eager results.
    class PerParameterSGD(optim.Optimizer):
        def __init__(self, params, lr):
            super().__init__(params, dict(lr=lr))

        def _update(self, p, grad, group, state):
            nnx._C.adagrad_step(p.data, grad, state.setdefault("sum", np.zeros_like(p.data)), group["lr"], 1e-10,
                                0.0, group["lr"])
    ms, os_, cs = [], [], []
    for compiled in (False, True):
        m, _, _ = build("mlp")
        o = PerParameterSGD(m.parameters(), lr=0.1)

        def step(x, y, m=m, o=o):
            o.zero_grad()
            loss = nn.CrossEntropyLoss()(m(x), y)
            loss.backward()
            o.step()
            return loss
        ms.append(m)
        os_.append(o)
        cs.append(nnx.compile(step) if compiled else step)
    data = batches((4, 20), 3)
    with pytest.warns(CompileWarning, match="updates each parameter by its own call"):
        for x, y in data:
            cs[1](x, y)
    for x, y in data:
        cs[0](x, y)
    assert_same_state(ms[0], os_[0], ms[1], os_[1])


def test_bad_targets_raise_on_replay():
    model, opt, step = build("mlp")
    c = nnx.compile(step, strict=True)
    x, y = batches((4, 20), 1)[0]
    for _ in range(3):
        c(x, y)
    assert c.stats()[0]["state"] == "plan"
    with pytest.raises(ValueError, match=r"class indices must lie in \[0, 10\)"):
        c(x, np.array([0, 1, 2, 10]))


def test_calls_from_two_threads_at_once_are_refused():
    model, opt, step = build("mlp")
    inside, release = threading.Event(), threading.Event()

    def slow(x, y):
        inside.set()
        release.wait(10)
        return step(x, y)
    c = nnx.compile(slow, strict=True)
    x, y = batches((4, 20), 1)[0]
    t = threading.Thread(target=c, args=(x, y))
    t.start()
    try:
        assert inside.wait(10)
        with pytest.raises(RuntimeError, match="another thread"):
            c(x, y)
    finally:
        release.set()
        t.join()


def test_two_threads_capture_their_own_steps():
    # A capture sees only its own thread's modules and optimizers.
    ma, oa, sa = build("mlp")
    inside, release = threading.Event(), threading.Event()

    def slow(x, y):
        inside.set()
        release.wait(10)
        return sa(x, y)
    ca = nnx.compile(slow, strict=True)
    data = batches((4, 20), 4)
    t = threading.Thread(target=lambda: [ca(x, y) for x, y in data])
    t.start()
    try:
        assert inside.wait(10)
        run_both("mlp", data)  # captures and replays on this thread meanwhile
    finally:
        release.set()
        t.join()
    m1, o1, s1 = build("mlp")
    for x, y in data:
        s1(x, y)
    assert_same_state(m1, o1, ma, oa)


def test_bad_arguments():
    with pytest.raises(TypeError, match="fn"):
        nnx.compile(3)
    with pytest.raises(ValueError, match="check_every"):
        nnx.compile(lambda: None, check_every=-1)
    with pytest.raises(ValueError, match="cache_size"):
        nnx.compile(lambda: None, cache_size=0)


@pytest.mark.parametrize("name", ["mlp", "bn", "dropout"])
def test_fit_compiled_matches_eager_and_resumes_bitwise(tmp_path, monkeypatch, name):
    import nnx.train
    from nnx.train import Checkpoint, fit, load_checkpoint
    steps = []
    make_step = nnx.train._train_step

    def recording_step(*a, **k):
        steps.append(make_step(*a, **k))
        return steps[-1]
    monkeypatch.setattr(nnx.train, "_train_step", recording_step)
    r = np.random.default_rng(4)
    X = r.standard_normal((100, 20)).astype(np.float32)
    y = r.integers(0, 10, 100)

    def train(compile, epochs, path=None, resume=False):
        model, opt, _ = build(name)
        sched = optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
        nnx.manual_seed(11)
        start, hist = 0, None
        if resume:
            start, hist, _ = load_checkpoint(path, model, opt, sched)
        cbs = [Checkpoint(path, model, opt, sched)] if path else []
        fit(model, nn.CrossEntropyLoss(), opt, (X, y), epochs=epochs, batch_size=32, progress=False,
            scheduler=sched, compile=compile, start_epoch=start, history=hist, callbacks=cbs)
        return model, opt

    m1, o1 = train(False, 3)
    g1 = nnx.random.get_rng().bit_generator.state
    m2, o2 = train(True, 3)
    assert nnx.random.get_rng().bit_generator.state == g1
    assert_same_state(m1, o1, m2, o2)
    assert {s["state"] for s in steps[-1].stats()} == {"plan"}  # every batch size was replayed
    path = tmp_path / "c.npz"
    train(True, 1, path)
    m3, o3 = train(True, 3, path, resume=True)
    for (k, a), (_, b) in zip(m1.state_dict().items(), m3.state_dict().items()):
        assert same_bits(a, b), k
