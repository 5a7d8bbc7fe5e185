"""BatchNorm1d/2d, LayerNorm and the BN+ReLU fusion at the module level: the C++ ops against the NumPy
reference end to end, PyTorch's state_dict keys and numbers, and the convnet_bn model."""
import numpy as np
import pytest

import nnx
from nnx import functional as F, models, nn
from optest import assert_close


def _run(model, x, y, backend):
    with F.use_backend(backend):
        for p in model.parameters():
            p.grad = None
        out = model(x)
        loss = nn.CrossEntropyLoss()(out, y)
        loss.backward()
    return out.numpy(), [p.grad.copy() for p in model.parameters()]


def _small_bn_net(dtype=np.float64):
    # No bias before a BatchNorm: its gradient is exactly 0 (the mean removes it), i.e. pure rounding noise.
    return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1, bias=False, dtype=dtype), nn.BatchNorm2d(4, dtype=dtype),
                         nn.ReLU(), nn.Flatten(), nn.Linear(4 * 5 * 5, 6, bias=False, dtype=dtype), nn.BatchNorm1d(6, dtype=dtype),
                         nn.ReLU(), nn.Linear(6, 3, dtype=dtype))


def test_bn_network_ops_match_reference_train_and_eval():
    nnx.manual_seed(0)
    model = _small_bn_net()
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((8, 2, 5, 5)), rng.integers(0, 3, 8)
    twin = _small_bn_net()
    twin.load_state_dict(model.state_dict())
    out, grads = _run(model, x, y, nnx.ops)
    out_r, grads_r = _run(twin, x, y, nnx.reference)
    assert_close(out, out_r, np.float64, 50, "logits")
    for g, r in zip(grads, grads_r):
        assert_close(g, r, np.float64, 50, "grad")
    for k, v in model.state_dict().items():
        assert_close(np.asarray(v, np.float64), np.asarray(twin.state_dict()[k], np.float64), np.float64, 50, k)
    model.eval()
    twin.eval()
    with nnx.no_grad():
        assert_close(model(x).numpy(), twin(x).numpy(), np.float64, 50, "eval logits")


def test_fused_bn_relu_is_bitwise_the_unfused_pair():
    nnx.manual_seed(1)
    fused = _small_bn_net(np.float32)
    plain = _small_bn_net(np.float32)
    plain.load_state_dict(fused.state_dict())
    plain.fuse = False
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((8, 2, 5, 5)).astype(np.float32), rng.integers(0, 3, 8)
    out_f, g_f = _run(fused, x, y, nnx.ops)
    out_p, g_p = _run(plain, x, y, nnx.ops)
    np.testing.assert_array_equal(out_f, out_p)
    for a, b in zip(g_f, g_p):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_bn_relu_pool_is_bitwise_the_unfused_layers(threads):
    # BatchNorm2d, ReLU, MaxPool2d: the normalization, then the pooling with the ReLU on its output (the
    # convnet_bn pattern), against the three modules one by one, in training and in evaluation.
    nnx.manual_seed(2)
    fused = models.convnet_bn()
    plain = models.convnet_bn()
    plain.load_state_dict(fused.state_dict())
    plain.fuse = False
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal((6, 1, 28, 28)).astype(np.float32), rng.integers(0, 10, 6)
    before = nnx.get_num_threads()
    nnx.set_num_threads(threads)
    try:
        assert models.convnet_bn()[:4](nnx.Tensor(x, requires_grad=True))._op == "max_pool2d+relu"
        out_f, g_f = _run(fused, x, y, nnx.ops)
        out_p, g_p = _run(plain, x, y, nnx.ops)
        np.testing.assert_array_equal(out_f, out_p)
        for a, b in zip(g_f, g_p):
            np.testing.assert_array_equal(a, b)
        for k, v in fused.state_dict().items():
            np.testing.assert_array_equal(np.asarray(v), np.asarray(plain.state_dict()[k]))
        fused.eval()
        plain.eval()
        with nnx.no_grad():
            np.testing.assert_array_equal(fused(x).numpy(), plain(x).numpy())
    finally:
        nnx.set_num_threads(before)


def test_state_dict_keys_as_pytorch():
    keys = set(nn.Sequential(nn.BatchNorm2d(3)).state_dict())
    assert keys == {"0.weight", "0.bias", "0.running_mean", "0.running_var", "0.num_batches_tracked"}
    bn = nn.BatchNorm1d(4)
    bn(np.random.default_rng(0).standard_normal((5, 4)).astype(np.float32))
    assert int(bn.num_batches_tracked) == 1
    assert set(nn.LayerNorm(5).state_dict()) == {"weight", "bias"}


def test_batchnorm2d_and_layernorm_as_pytorch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 4, 4)).astype(np.float32)
    bn, tbn = nn.BatchNorm2d(3, momentum=0.2), torch.nn.BatchNorm2d(3, momentum=0.2)
    for _ in range(2):
        assert_close(bn(x).numpy(), tbn(torch.from_numpy(x)).detach().numpy(), np.float32, 96, "train y")
    for name in ("running_mean", "running_var"):
        assert_close(getattr(bn, name), getattr(tbn, name).numpy(), np.float32, 96, name)
    bn.eval()
    tbn.eval()
    assert_close(bn(x).numpy(), tbn(torch.from_numpy(x)).detach().numpy(), np.float32, 1, "eval y")
    xs = rng.standard_normal((4, 7, 10))
    ln = nn.LayerNorm((7, 10), dtype=np.float64)
    tln = torch.nn.LayerNorm((7, 10), dtype=torch.float64)
    t = nnx.Tensor(xs, requires_grad=True)
    tt = torch.tensor(xs, requires_grad=True)
    dy = rng.standard_normal(xs.shape)
    ln(t).backward(dy)
    tln(tt).backward(torch.from_numpy(dy))
    assert_close(t.grad, tt.grad.numpy(), np.float64, 70, "dx")
    assert_close(ln.weight.grad, tln.weight.grad.numpy(), np.float64, 4, "dweight")


def test_convnet_bn_ops_match_reference():
    # float64: batch statistics over a batch of 4 amplify float32 rounding past any fixed tolerance in a few
    # of the 800k gradient elements (seen with the sanitizer build's different code generation).
    nnx.manual_seed(3)
    model = models.build("convnet_bn").to(np.float64)
    twin = models.build("convnet_bn").to(np.float64)
    twin.load_state_dict(model.state_dict())
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((4, 1, 28, 28)), rng.integers(0, 10, 4)
    out, grads = _run(model, x, y, nnx.ops)
    out_r, grads_r = _run(twin, x, y, nnx.reference)
    assert_close(out, out_r, np.float64, 3136, "logits")
    for g, r in zip(grads, grads_r):
        assert_close(g, r, np.float64, 3136, "grad")
