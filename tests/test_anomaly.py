"""nnx.detect_anomaly: the first forward or backward op that produces NaN/Inf raises, naming op and module."""
import threading

import numpy as np
import pytest

import nnx
from nnx import anomaly, nn

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")  # NumPy's invalid/overflow warnings


def t(values, requires_grad=True):
    return nnx.tensor(np.asarray(values, np.float32), requires_grad=requires_grad)


class Net(nn.Module):
    """features.2.0 is a Linear inside a Sequential inside a Sequential."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Sequential(nn.Linear(4, 4), nn.Identity()))
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        return self.head(self.features(x))


@pytest.fixture(autouse=True)
def anomaly_mode_is_off_after_each_test():
    yield
    assert not nnx.is_anomaly_enabled() and anomaly.active == 0


@pytest.mark.parametrize("make, op, kind", [
    (lambda: t([1.0, -2.0, 3.0]).log(), "log", "1 NaN"),
    (lambda: (t([4.0, 1.0]) - 5.0).sqrt(), "sqrt", "2 NaN"),
    (lambda: t([1.0, 2.0]) / t([0.0, 1.0]), "div", "1 +Inf"),
    (lambda: t([0.0, -1.0]) / 0.0, "div", "1 NaN, 1 -Inf"),
    (lambda: (t([1.0, 100.0]) * 1.0).exp(), "exp", "1 +Inf"),  # e^100 overflows float32
    (lambda: t([[1e30, 1e30]]) @ t([[1e30], [1e30]]), "matmul", "1 +Inf"),
])
def test_forward_op_that_produces_nonfinite_raises(make, op, kind):
    with nnx.detect_anomaly():
        with pytest.raises(nnx.AnomalyError) as info:
            make()
    e = info.value
    assert isinstance(e, RuntimeError)
    assert (e.op, e.phase, e.forward_op, e.module) == (op, "forward", op, None)
    msg = str(e)
    assert f"forward op {op!r} produced non-finite values from finite inputs" in msg
    assert kind in msg and "called outside any nnx.nn.Module" in msg
    # Outside the context the same expression only gives IEEE results.
    out = make()
    assert not np.isfinite(out.numpy()).all()


def test_backward_only_anomaly_names_backward_and_forward_op():
    x = t([0.0, 4.0])
    with nnx.detect_anomaly():
        y = x.sqrt()  # finite forward: sqrt(0) = 0
        np.testing.assert_array_equal(y.numpy(), [0.0, 2.0])
        with pytest.raises(nnx.AnomalyError) as info:
            y.sum().backward()  # d sqrt(x)/dx = 1 / (2 sqrt(x)) is +Inf at 0
    e = info.value
    assert (e.op, e.phase, e.forward_op, e.module) == ("sqrt_backward", "backward", "sqrt", None)
    assert ("backward op 'sqrt_backward' (the gradient of forward op 'sqrt') produced non-finite values in the "
            "gradient of its input 0") in str(e)
    assert "1 +Inf of 2 values" in str(e)
    assert x.grad is None  # the error stopped backward before any leaf was written
    # Without anomaly mode the gradient is the IEEE value.
    x2 = t([0.0, 4.0])
    x2.sqrt().sum().backward()
    np.testing.assert_array_equal(x2.grad, [np.inf, 0.25])


def test_conv2d_backward_overflow_names_the_module():
    nnx.manual_seed(0)

    class ConvNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Identity(), nn.Conv2d(1, 2, 3), nn.Flatten())

        def forward(self, x):
            return self.features(x)

    net = ConvNet()
    net.features[1].weight.data[:] = 1e30
    x = np.full((1, 1, 4, 4), 1e-30, np.float32)  # forward: 9 * 1e30 * 1e-30 = 9, finite
    with nnx.detect_anomaly():
        xt = nnx.tensor(x, requires_grad=True)
        out = net(xt)
        assert np.isfinite(out.numpy()).all()
        with pytest.raises(nnx.AnomalyError) as info:
            out.backward(np.full(out.shape, 1e20, np.float32))  # dx = sum(dy * w) = 1e50 -> +Inf
    e = info.value
    assert (e.op, e.forward_op, e.module) == ("conv2d_backward", "conv2d", "features.1 (Conv2d)")
    assert "the forward was called from module features.1 (Conv2d)" in str(e)


def test_nested_sequential_module_name_is_exact():
    nnx.manual_seed(0)
    net = Net()
    net.features[0].weight.data[:] = 1.0  # tanh(3 + bias) > 0.99 on every unit
    net.features[2][0].weight.data[:] = 3e38  # 4 * 0.99 * 3e38 overflows float32
    with nnx.detect_anomaly():
        with pytest.raises(nnx.AnomalyError) as info:
            net(np.ones((2, 3), np.float32))
    e = info.value
    assert e.module == "features.2.0 (Linear)" and e.op == "linear"
    assert str(e).endswith("called from module features.2.0 (Linear)")
    # The module call stack unwound with the error: the next op reports no module.
    with nnx.detect_anomaly():
        with pytest.raises(nnx.AnomalyError, match="called outside any nnx.nn.Module"):
            t([-1.0]).log()
    # The top-level module itself is named as such.
    lin = nn.Linear(2, 1)
    lin.weight.data[:] = 3e38
    with nnx.detect_anomaly():
        with pytest.raises(nnx.AnomalyError) as info:
            lin(np.ones((1, 2), np.float32))
    assert info.value.module == "Linear (the top-level module)"


def test_values_that_entered_nonfinite_are_not_blamed_on_later_ops():
    x = t([np.nan, 4.0, -1.0])
    with nnx.detect_anomaly():
        y = x * 2.0  # carries the NaN: not reported
        assert np.isnan(y.numpy()[0])
        with pytest.raises(nnx.AnomalyError) as info:
            y.log()  # a new NaN at index 2, next to the carried one at index 0
    assert info.value.op == "log" and "1 NaN of 3 values" in str(info.value)
    # A model fed NaN data: every op only carries it, forward and backward, so nothing is reported.
    nnx.manual_seed(0)
    net = Net()
    data = np.ones((2, 3), np.float32)
    data[0, 1] = np.nan
    with nnx.detect_anomaly():
        loss = nn.CrossEntropyLoss()(net(data), np.array([0, 1]))
        loss.backward()
    assert np.isnan(loss.item())


def test_off_means_no_checks_and_identical_results():
    def train_step(model, x, y):
        opt = nnx.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        for _ in range(3):
            opt.zero_grad()
            nn.CrossEntropyLoss()(model(x), y).backward()
            opt.step()
        return model.state_dict()

    x = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float32)
    y = np.arange(8) % 2
    nnx.manual_seed(1)
    plain = train_step(Net(), x, y)
    nnx.manual_seed(1)
    with nnx.detect_anomaly():
        checked = train_step(Net(), x, y)
    for k in plain:
        np.testing.assert_array_equal(plain[k], checked[k])
    assert not nnx.is_anomaly_enabled()
    np.testing.assert_array_equal(t([-1.0, 1.0]).log().numpy(), [np.nan, 0.0])  # no error outside


def test_nested_and_reentrant_contexts():
    assert not nnx.is_anomaly_enabled()
    cm = nnx.detect_anomaly()
    with cm:
        with cm:  # the same object entered again
            assert nnx.is_anomaly_enabled()
        assert nnx.is_anomaly_enabled()  # the inner exit restored the outer mode
        with nnx.detect_anomaly(False):
            assert not nnx.is_anomaly_enabled()
            np.testing.assert_array_equal(t([-1.0]).log().numpy(), [np.nan])
        with pytest.raises(nnx.AnomalyError):
            t([-1.0]).log()
        assert nnx.is_anomaly_enabled()  # an error inside does not switch the mode off
    assert not nnx.is_anomaly_enabled()

    nnx.set_detect_anomaly(True)
    try:
        assert nnx.is_anomaly_enabled() and anomaly.active == 1
        nnx.set_detect_anomaly(True)  # idempotent: still counted once
        assert anomaly.active == 1
    finally:
        nnx.set_detect_anomaly(False)

    @nnx.detect_anomaly()
    def checked_log(x):
        return x.log()

    with pytest.raises(nnx.AnomalyError):
        checked_log(t([-1.0]))
    assert not nnx.is_anomaly_enabled()


def test_backward_of_a_forward_recorded_outside_the_context():
    x = t([0.0])
    y = x.sqrt()
    with nnx.detect_anomaly():
        with pytest.raises(nnx.AnomalyError, match="forward ran outside detect_anomaly, so the calling module is "
                                                   "unknown"):
            y.backward(np.ones(1, np.float32))


def test_mode_is_per_thread():
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def checked():
        with nnx.detect_anomaly():
            entered.set()
            release.wait(10)
            try:
                t([-1.0]).log()
            except nnx.AnomalyError as e:
                seen["error"] = e.op

    th = threading.Thread(target=checked)
    th.start()
    try:
        assert entered.wait(10)
        # This thread is not in anomaly mode although another one is.
        assert not nnx.is_anomaly_enabled() and anomaly.active == 1
        np.testing.assert_array_equal(t([-1.0]).log().numpy(), [np.nan])
    finally:
        release.set()
        th.join(10)
    assert seen == {"error": "log"}
