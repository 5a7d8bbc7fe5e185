"""nnx.compile on the layers whose steps need replay hooks or layout kernels: batch norm (running statistics,
num_batches_tracked, momentum=None), dropout (a seed drawn from nnx's generator per call), layer norm and the
recurrent layers with embeddings. The compiled run must leave the same bits as the eager run: losses,
outputs, parameters, gradients, optimizer state, running statistics and the generator's state."""
import numpy as np
import pytest

import nnx
from nnx import nn, optim

from test_compile import assert_same_state, same_bits


class RowGRU(nn.Module):
    """Sequence classifier reading rows (batch_first), classifying from the last step's output."""

    def __init__(self, mode="gru"):
        super().__init__()
        self.rnn = {"gru": nn.GRU, "lstm": nn.LSTM, "rnn": nn.RNN}[mode](6, 8, batch_first=True)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        y, _ = self.rnn(x)
        return self.fc(y[:, -1])


class TinyLM(nn.Module):
    """Embedding -> 2-layer LSTM with dropout between layers -> Linear on every step."""

    def __init__(self, vocab=11):
        super().__init__()
        self.embed = nn.Embedding(vocab, 6, padding_idx=0)
        self.rnn = nn.LSTM(6, 8, num_layers=2, batch_first=True, dropout=0.25)
        self.fc = nn.Linear(8, vocab)

    def forward(self, ids):
        y, _ = self.rnn(self.embed(ids))
        return self.fc(y).reshape(-1, self.fc.out_features)


def make(name):
    if name == "bn1d":
        return nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 10)), (8, 20), 10
    if name == "bn_cumulative":  # momentum=None: the factor is 1 / num_batches_tracked, refreshed per replay
        return nn.Sequential(nn.Linear(20, 16), nn.BatchNorm1d(16, momentum=None), nn.ReLU(),
                             nn.Linear(16, 10)), (8, 20), 10
    if name == "conv_bn":
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 4 * 4, 10)), (6, 1, 8, 8), 10
    if name == "dropout":
        return nnx.models.mlp(hidden=(32, 16), in_features=20, dropout=0.3), (8, 20), 10
    if name == "layer_norm":
        return nn.Sequential(nn.Linear(20, 16), nn.LayerNorm(16), nn.Tanh(), nn.Dropout(0.2),
                             nn.Linear(16, 10)), (8, 20), 10
    if name in ("gru", "lstm", "rnn"):
        return RowGRU(name), (4, 7, 6), 5
    if name == "bilstm":  # both directions, concatenated
        m = RowGRU("lstm")
        m.rnn, m.fc = nn.LSTM(6, 4, batch_first=True, bidirectional=True), nn.Linear(8, 5)
        return m, (4, 7, 6), 5
    if name == "lm":
        return TinyLM(), (3, 5), 11
    raise ValueError(name)


def data(name, n, seed=1):
    _, shape, classes = make(name)
    r = np.random.default_rng(seed)
    if name == "lm":
        return [(r.integers(0, classes, shape), r.integers(0, classes, shape[0] * shape[1])) for _ in range(n)]
    return [(r.standard_normal(shape).astype(np.float32), r.integers(0, classes, shape[0])) for _ in range(n)]


def run(name, batches, compiled, opt_cls=optim.SGD, **opt_kw):
    """One run from the same initial state and generator seed; returns (model, opt, losses, outputs, rng)."""
    nnx.manual_seed(0)
    model = make(name)[0]
    opt = opt_cls(model.parameters(), **(opt_kw or {"lr": 0.05, "momentum": 0.9}))
    loss_fn = nn.CrossEntropyLoss()

    def step(x, y):
        opt.zero_grad()
        out = model(x)
        loss = loss_fn(out, y)
        loss.backward()
        opt.step()
        return loss, out
    fn = nnx.compile(step, strict=True) if compiled else step
    nnx.manual_seed(7)
    losses, outs = [], []
    for x, y in batches:
        loss, out = fn(x, y)
        losses.append(loss.numpy().copy())
        outs.append(out.numpy().copy())
    return model, opt, losses, outs, nnx.random.get_rng().bit_generator.state, fn


NAMES = ["bn1d", "bn_cumulative", "conv_bn", "dropout", "layer_norm", "gru", "lstm", "rnn", "bilstm", "lm"]


@pytest.mark.parametrize("name", NAMES)
def test_compiled_steps_match_eager_bit_for_bit(name):
    batches = data(name, 6)
    m1, o1, l1, y1, g1, _ = run(name, batches, compiled=False)
    m2, o2, l2, y2, g2, c = run(name, batches, compiled=True)
    (st,) = c.stats()
    assert st["state"] == "plan" and st["calls"] == 6, st
    for i, (a, b) in enumerate(zip(l1, l2)):
        assert same_bits(a, b), i
    for i, (a, b) in enumerate(zip(y1, y2)):
        assert same_bits(a, b), i
    assert_same_state(m1, o1, m2, o2)
    assert g1 == g2  # the generator advanced by the same draws (dropout seeds)
    counts = [int(m.num_batches_tracked) for m in m2.modules() if hasattr(m, "num_batches_tracked")]
    assert counts == ([6] if "bn" in name else [])


def test_compiled_dropout_draws_new_masks_each_call():
    # The replay reads the seed the hook draws before it, so two replays of one batch differ, as in eager.
    batches = data("dropout", 1) * 5
    _, _, losses, _, _, c = run("dropout", batches, compiled=True, lr=0.0)
    assert c.stats()[0]["state"] == "plan"
    assert len({l.tobytes() for l in losses}) == 5


@pytest.mark.parametrize("opt_cls, kw", [(optim.Adam, {"lr": 1e-2}), (optim.RMSprop, {"lr": 1e-2})])
def test_batch_norm_with_other_optimizers(opt_cls, kw):
    batches = data("conv_bn", 5)
    m1, o1, l1, _, _, _ = run("conv_bn", batches, False, opt_cls, **kw)
    m2, o2, l2, _, _, c = run("conv_bn", batches, True, opt_cls, **kw)
    assert [a.tobytes() for a in l1] == [b.tobytes() for b in l2]
    assert_same_state(m1, o1, m2, o2)


def test_batch_norm_momentum_change_is_seen_by_the_replay():
    batches = data("bn1d", 8)
    results = []
    for compiled in (False, True):
        nnx.manual_seed(0)
        model = make("bn1d")[0]
        opt = optim.SGD(model.parameters(), lr=0.05)

        def step(x, y):
            opt.zero_grad()
            loss = nn.CrossEntropyLoss()(model(x), y)
            loss.backward()
            opt.step()
            return loss
        fn = nnx.compile(step, strict=True) if compiled else step
        for i, (x, y) in enumerate(batches):
            if i == 4:
                model[1].momentum = 0.5
            fn(x, y)
        results.append(model)
    for (k, a), (_, b) in zip(results[0].state_dict().items(), results[1].state_dict().items()):
        assert same_bits(a, b), k


def test_eval_mode_inference_of_batch_norm_and_recurrent_models():
    for name in ("conv_bn", "lstm", "lm"):
        nnx.manual_seed(0)
        model, shape, classes = make(name)
        model.eval()
        predict = nnx.compile(model, strict=True)
        for x, _ in data(name, 4, seed=3):
            with nnx.no_grad():
                want = model(x).numpy()
            assert same_bits(want, predict(x).numpy())
        assert predict.stats()[0]["state"] == "plan"


def test_variable_length_sequences_as_a_step_argument():
    # lengths= read from the step's input buffer: each replay uses the new lengths, checked by the kernel.
    batches = []
    r = np.random.default_rng(5)
    for _ in range(5):
        batches.append((r.standard_normal((7, 4, 6)).astype(np.float32), r.integers(1, 8, 4), r.integers(0, 5, 4)))
    results = []
    for compiled in (False, True):
        nnx.manual_seed(0)
        rnn, fc = nn.LSTM(6, 8), nn.Linear(8, 5)
        opt = optim.Adam(list(rnn.parameters()) + list(fc.parameters()), lr=1e-2)

        def step(x, lengths, y):
            opt.zero_grad()
            _, (h, _) = rnn(x, lengths=lengths)
            loss = nn.CrossEntropyLoss()(fc(h[0]), y)
            loss.backward()
            opt.step()
            return loss
        fn = nnx.compile(step, strict=True) if compiled else step
        results.append([fn(*b).numpy().tobytes() for b in batches])
        results.append([p.data.tobytes() for p in list(rnn.parameters()) + list(fc.parameters())])
        if compiled:
            assert fn.stats()[0]["state"] == "plan"
            with pytest.raises(ValueError, match="lengths"):
                fn(batches[0][0], np.array([1, 2, 9, 3]), batches[0][2])
    assert results[0] == results[2] and results[1] == results[3]


def test_replayed_recurrent_step_checks_its_ids():
    nnx.manual_seed(0)
    model = make("lm")[0]
    opt = optim.SGD(model.parameters(), lr=0.1)

    def step(ids, y):
        opt.zero_grad()
        loss = nn.CrossEntropyLoss()(model(ids), y)
        loss.backward()
        opt.step()
        return loss
    c = nnx.compile(step, strict=True)
    batches = data("lm", 3)
    for ids, y in batches:
        c(ids, y)
    assert c.stats()[0]["state"] == "plan"
    bad = batches[0][0].copy()
    bad[1, 2] = 11
    with pytest.raises(ValueError, match=r"ids"):
        c(bad, batches[0][1])
