"""nn.Module machinery: parameter discovery, state_dict, load errors, modes, dtype, repr, init."""
import math

import numpy as np
import pytest

import nnx
from nnx import nn

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = [nn.Linear(4, 4), nn.Linear(4, 4, bias=False)]
        self.bn = nn.BatchNorm1d(4)
        self.scale = nn.Parameter(np.ones(1, np.float32))

    def forward(self, x):
        for m in self.layers:
            x = m(x)
        return self.bn(x) * self.scale


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()
        self.head = nn.Sequential(nn.Dropout(0.0), nn.Linear(4, 2))
        self.note = "not a parameter"
        self.cache = np.zeros(3)  # an ndarray that is not a registered buffer stays out of the state_dict

    def forward(self, x):
        return self.head(self.block(x))


def test_named_parameters_walk_attributes():
    names = [n for n, _ in Net().named_parameters()]
    assert names == ["block.scale", "block.layers.0.weight", "block.layers.0.bias", "block.layers.1.weight",
                     "block.bn.weight", "block.bn.bias", "head.1.weight", "head.1.bias"]
    assert len(list(Net().parameters())) == 8


def test_state_dict_keys_include_buffers_in_pytorch_order():
    keys = list(Net().state_dict())
    assert keys == ["block.scale", "block.layers.0.weight", "block.layers.0.bias", "block.layers.1.weight",
                    "block.bn.weight", "block.bn.bias", "block.bn.running_mean", "block.bn.running_var",
                    "block.bn.num_batches_tracked", "head.1.weight", "head.1.bias"]


@pytest.mark.skipif(torch is None, reason="torch is not installed")
def test_state_dict_keys_and_repr_match_torch():
    ours = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.BatchNorm2d(6), nn.Flatten(),
                         nn.Linear(6 * 4 * 4, 10))
    theirs = torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.BatchNorm2d(6),
                                 torch.nn.Flatten(), torch.nn.Linear(6 * 4 * 4, 10))
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for k, v in theirs.state_dict().items():
        assert ours.state_dict()[k].shape == tuple(v.shape), k
    assert repr(nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.Flatten(), nn.Linear(400, 120))) == \
        repr(torch.nn.Sequential(torch.nn.Conv2d(1, 6, 5, padding=2), torch.nn.ReLU(), torch.nn.Flatten(),
                                 torch.nn.Linear(400, 120)))


def test_children_modules_and_shared_parameters():
    net = Net()
    assert [type(c).__name__ for c in net.children()] == ["Block", "Sequential"]
    assert len(list(net.modules())) == 8
    lin = nn.Linear(3, 3)
    shared = nn.Sequential(lin, nn.ReLU(), lin)
    assert len(list(shared.parameters())) == 2
    assert list(shared.state_dict()) == ["0.weight", "0.bias"]


def test_state_dict_is_a_copy_and_round_trips():
    nnx.manual_seed(1)
    a = Net()
    nnx.manual_seed(2)
    b = Net()
    x = np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32)
    a.train()(x)  # moves BatchNorm's running statistics
    sd = a.state_dict()
    sd["block.scale"][:] = 5
    assert a.block.scale.data[0] == 1
    sd = a.state_dict()
    res = b.load_state_dict(sd)
    assert res.missing_keys == [] and res.unexpected_keys == []
    a.eval(), b.eval()
    np.testing.assert_array_equal(a(x).numpy(), b(x).numpy())
    assert int(b.block.bn.num_batches_tracked) == 1
    for k, v in a.state_dict().items():
        np.testing.assert_array_equal(v, b.state_dict()[k])


def test_load_state_dict_errors_name_the_keys():
    net = Net()
    sd = net.state_dict()
    missing = dict(sd)
    del missing["head.1.bias"]
    with pytest.raises(nn.StateDictError, match=r"missing keys: 'head.1.bias'"):
        net.load_state_dict(missing)
    extra = dict(sd, **{"head.2.weight": np.ones(2)})
    with pytest.raises(nn.StateDictError, match=r"unexpected keys: 'head.2.weight'"):
        net.load_state_dict(extra)
    res = net.load_state_dict(extra, strict=False)
    assert res.unexpected_keys == ["head.2.weight"]
    res = net.load_state_dict(missing, strict=False)
    assert res.missing_keys == ["head.1.bias"]
    bad = dict(sd, **{"head.1.weight": np.ones((4, 2), np.float32)})
    with pytest.raises(nn.StateDictError, match=r"size mismatch for 'head.1.weight'.*\(4, 2\).*\(2, 4\)"):
        net.load_state_dict(bad, strict=False)
    bad = dict(sd, **{"head.1.bias": np.ones(2, np.float64)})
    with pytest.raises(nn.StateDictError, match=r"dtype mismatch for 'head.1.bias': checkpoint has float64, "
                                                r"the model has float32"):
        net.load_state_dict(bad)
    # A bad value is a ValueError as well (strict or not), a bad key a KeyError.
    with pytest.raises(ValueError, match=r"dtype mismatch for 'head.1.bias'"):
        net.load_state_dict(bad, strict=False)
    with pytest.raises(KeyError, match=r"missing keys: 'head.1.bias'"):
        net.load_state_dict(missing)
    # Nothing was half-loaded by the failing calls.
    np.testing.assert_array_equal(net.state_dict()["head.1.weight"], sd["head.1.weight"])


def test_train_eval_zero_grad_and_dtype():
    net = Net()
    assert net.training and net.block.bn.training
    net.eval()
    assert not net.training and not net.block.bn.training and not net.head[1].training
    net.train()
    assert net.block.bn.training
    x = np.ones((3, 4), np.float32)
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    net.zero_grad(set_to_none=False)
    assert all(np.all(p.grad == 0) for p in net.parameters())
    net.zero_grad()
    assert all(p.grad is None for p in net.parameters())
    net.double()
    assert all(p.dtype == np.float64 for p in net.parameters())
    assert net.block.bn.running_mean.dtype == np.float64
    assert net.block.bn.num_batches_tracked.dtype == np.int64
    assert net(x).dtype == np.float64  # float32 ndarray input follows the model
    net.float()
    assert net(np.ones((3, 4))).dtype == np.float32
    with pytest.raises(TypeError, match="float64 but w is float32"):
        net(nnx.Tensor(np.ones((3, 4))))  # Tensors are not converted


def test_sequential_container():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[1], nn.ReLU)
    assert [type(m).__name__ for m in seq] == ["Linear", "ReLU", "Linear"]
    sub = seq[:2]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2
    seq.append(nn.Sigmoid())
    assert len(seq) == 4
    with pytest.raises(TypeError, match="Module"):
        nn.Sequential(nn.Linear(2, 2), "relu")


def test_parameter_and_module_repr():
    assert repr(nn.Linear(3, 2)) == "Linear(in_features=3, out_features=2, bias=True)"
    assert "Parameter containing" in repr(nn.Parameter(np.ones(2)))
    text = repr(Net())
    assert "(block): Block(" in text and "(head): Sequential(" in text and "(1): Linear" in text


def test_default_init_matches_pytorch_bounds_and_seed():
    nnx.manual_seed(3)
    lin = nn.Linear(400, 300)
    bound = 1 / math.sqrt(400)
    w = lin.weight.data
    assert w.dtype == np.float32 and np.abs(w).max() <= bound
    assert abs(w.std() - bound / math.sqrt(3)) < 0.02 * bound
    assert np.abs(lin.bias.data).max() <= bound
    conv = nn.Conv2d(6, 16, 5)
    cb = 1 / math.sqrt(6 * 25)
    assert np.abs(conv.weight.data).max() <= cb and conv.weight.shape == (16, 6, 5, 5)
    nnx.manual_seed(3)
    np.testing.assert_array_equal(nn.Linear(400, 300).weight.data, w)
    assert nn.Linear(2, 2, dtype=np.float64).weight.dtype == np.float64
    with pytest.raises(ValueError, match="groups"):
        nn.Conv2d(3, 4, 3, groups=2)


def test_init_functions():
    nnx.manual_seed(0)
    w = nn.Parameter(np.empty((200, 300)))
    nn.init.xavier_uniform_(w)
    a = math.sqrt(6 / 500)
    assert np.abs(w.data).max() <= a and abs(w.data.std() - a / math.sqrt(3)) < 0.02 * a
    nn.init.xavier_normal_(w, gain=2.0)
    assert abs(w.data.std() - 2 * math.sqrt(2 / 500)) < 0.02 * 2 * math.sqrt(2 / 500)
    nn.init.kaiming_normal_(w, nonlinearity="relu")
    assert abs(w.data.std() - math.sqrt(2 / 300)) < 0.02 * math.sqrt(2 / 300)
    nn.init.kaiming_uniform_(w, mode="fan_out", nonlinearity="relu")
    assert np.abs(w.data).max() <= math.sqrt(6 / 200)
    nn.init.normal_(w, std=0.01)
    assert abs(w.data.std() - 0.01) < 0.0005
    nn.init.zeros_(w)
    assert not w.data.any()
    with pytest.raises(ValueError, match="fan"):
        nn.init.xavier_uniform_(nn.Parameter(np.ones(3)))
