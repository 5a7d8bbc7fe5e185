"""Networks and uses no issue names, nnx against PyTorch interleaved in blocks (as bench/network_ab.py), so a
slow path that the named benchmarks miss shows up: other architectures and optimizers in training, batch-1
inference, and recurrent inference on one sequence.

    python bench/more_networks_ab.py --threads 1 2 [--groups train infer rnn tensor] [--blocks 6] [--steps 2]

train  one step (forward, cross-entropy, backward, update), float32, random data:
         vgg        CIFAR VGG-style: 2 x (conv3x3 64 + BN + ReLU), pool, the same at 128 and 256, fc 4096-10; batch 64
         resnet18   the CIFAR ResNet-18 (64 to 512 channels, stride-2 stages down to 4x4 maps); batch 16
         mobile     a MobileNet-style stack of depthwise-separable blocks (32 to 256 channels, BN, ReLU); batch 64
         mlp        784-512-512-10 with ReLU and dropout 0.2; batch 128
         mlp_tanh   784-256-256-10 with tanh and sigmoid (the lectures' MLP); batch 256
         lenet_tanh LeNet-5 as LeCun et al. 1998 drew it: tanh and average pooling; batch 64
         ln_adam    784-512-512-10 with LayerNorm and ReLU, trained by Adam; batch 128
infer  model.eval() under no_grad, one image and 64 (and 8 for mlp): ResNet-20, the BatchNorm net and LeNet-5 of
       bench/network_ab.py, and vgg, mobile, mlp above
rnn    eval-mode LSTM / GRU / tanh RNN over one sequence (batch-first): 28 -> 128 over 28 steps, 64 -> 256 over 64
tensor one training step written with tensors and `@` instead of modules (the same code for both frameworks):
         mlp_by_hand  relu(x @ W1 + b1) @ W2 + b2, 784-256-10; batch 128, SGD with momentum
         attention    one head of self-attention, softmax(q k^T / sqrt(d)) v, a residual LayerNorm, mean over the
                      sequence and a linear head; 32 sequences of 64 positions, width 128; SGD with momentum

Block i runs `steps` calls of nnx, then `steps` of PyTorch; reported are each one's median time and torch
time / nnx time (above 1: nnx is faster).
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from network_ab import build, cifar_resnet  # noqa: E402
from train_step_ab import settle, training_step  # noqa: E402


# ------------------------------------------------------------------------------------------------ models
# Each takes the framework's nn namespace, so one definition serves both.

def vgg(nn):
    def block(cin, cout):
        return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    return nn.Sequential(*block(3, 64), *block(64, 64), nn.MaxPool2d(2), *block(64, 128), *block(128, 128),
                         nn.MaxPool2d(2), *block(128, 256), *block(256, 256), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(256 * 16, 10))


def mobile(nn):
    def separable(cin, cout, stride):
        return [nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU()]
    pool = nn.GlobalAvgPool2d() if hasattr(nn, "GlobalAvgPool2d") else nn.AdaptiveAvgPool2d(1)
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
                         *separable(32, 64, 1), *separable(64, 128, 2), *separable(128, 128, 1),
                         *separable(128, 256, 2), *separable(256, 256, 1), pool, nn.Flatten(), nn.Linear(256, 10))


def resnet18(nn):
    """The CIFAR ResNet-18 that many training scripts use: conv3x3-64, four stages of two basic blocks (64, 128,
    256, 512 channels; stride 2 and a 1x1 projection at the start of the last three), global pooling, fc 512-10."""
    import nnx
    relu = nnx.functional.relu if nn is nnx.nn else __import__("torch").relu
    return cifar_resnet(nn, relu, 64, ((64, 1), (128, 2), (256, 2), (512, 2)), 2)


def mlp(nn):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 512),
                         nn.ReLU(), nn.Dropout(0.2), nn.Linear(512, 10))


def mlp_tanh(nn):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.Tanh(), nn.Linear(256, 256), nn.Sigmoid(),
                         nn.Linear(256, 10))


def lenet_tanh(nn):
    return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                         nn.AvgPool2d(2), nn.Flatten(), nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84),
                         nn.Tanh(), nn.Linear(84, 10))


def ln_mlp(nn):
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.LayerNorm(512), nn.ReLU(), nn.Linear(512, 512),
                         nn.LayerNorm(512), nn.ReLU(), nn.Linear(512, 10))


MNIST, CIFAR = (1, 28, 28), (3, 32, 32)
# name: (builder, input shape, batch, optimizer)
TRAIN = {"vgg": (vgg, CIFAR, 64, "sgd"), "resnet18": (resnet18, CIFAR, 16, "sgd"), "mobile": (mobile, CIFAR, 64, "sgd"), "mlp": (mlp, MNIST, 128, "sgd"),
         "mlp_tanh": (mlp_tanh, MNIST, 256, "sgd"), "lenet_tanh": (lenet_tanh, MNIST, 64, "sgd"),
         "ln_adam": (ln_mlp, MNIST, 128, "adam")}
INFER = {"resnet20": CIFAR, "bn": MNIST, "lenet5": MNIST, "vgg": CIFAR, "mobile": CIFAR, "mlp": MNIST}
RNN = [("LSTM", 28, 28, 128), ("LSTM", 64, 64, 256), ("GRU", 28, 28, 128), ("GRU", 64, 64, 256),
       ("RNN", 28, 28, 128), ("RNN", 64, 64, 256)]


def _model(name, framework):
    if name in ("resnet20", "bn", "lenet5"):
        return build(name, framework)
    import nnx
    import torch
    return {"vgg": vgg, "mobile": mobile, "mlp": mlp}[name](nnx.nn if framework == "nnx" else torch.nn)


# ------------------------------------------------------------------------------------------------ cases

def train_case(name):
    import nnx
    import torch
    f, shape, batch, opt = TRAIN[name]
    rng = np.random.default_rng(3)
    x = rng.standard_normal((batch,) + shape).astype(np.float32)
    y = rng.integers(0, 10, batch).astype(np.int64)
    nnx.manual_seed(0)
    m = f(nnx.nn)
    torch.manual_seed(0)
    mt = f(torch.nn)
    if opt == "adam":
        oa, ob = nnx.optim.Adam(m.parameters(), lr=1e-3), torch.optim.Adam(mt.parameters(), lr=1e-3)
    else:
        oa = nnx.optim.SGD(m.parameters(), lr=0.01, momentum=0.9)
        ob = torch.optim.SGD(mt.parameters(), lr=0.01, momentum=0.9)
    a = training_step(m, oa, nnx.nn.CrossEntropyLoss(), x, y)
    b = training_step(mt, ob, torch.nn.CrossEntropyLoss(), torch.from_numpy(x), torch.from_numpy(y))
    return f"train {name} (batch {batch}, {opt})", a, b


def _no_grad_calls(m, mt, x):
    """Two callables running nnx's model m and PyTorch's mt on the array x in evaluation mode, without autograd."""
    import nnx
    import torch
    m.eval()
    mt.eval()
    tx = torch.from_numpy(x)

    def a():
        with nnx.no_grad():
            m(nnx.Tensor(x))

    def b():
        with torch.no_grad():
            mt(tx)
    return a, b


def infer_case(name, batch):
    import nnx
    import torch
    nnx.manual_seed(0)
    m = _model(name, "nnx")
    torch.manual_seed(0)
    mt = _model(name, "torch")
    x = np.random.default_rng(0).standard_normal((batch,) + INFER[name]).astype(np.float32)
    return (f"infer {name} (batch {batch})",) + _no_grad_calls(m, mt, x)


def rnn_case(cell, steps, inputs, hidden):
    import nnx
    import torch
    nnx.manual_seed(0)
    m = getattr(nnx.nn, cell)(inputs, hidden, batch_first=True)
    torch.manual_seed(0)
    mt = getattr(torch.nn, cell)(inputs, hidden, batch_first=True)
    x = np.random.default_rng(0).standard_normal((1, steps, inputs)).astype(np.float32)
    return (f"rnn {cell} {inputs}->{hidden}, {steps} steps (one sequence)",) + _no_grad_calls(m, mt, x)


def _tensor_step(name, fw):
    """A training step of the `tensor` group written once over framework fw (nnx or torch)."""
    import nnx
    import torch
    F = nnx.functional if fw is nnx else torch.nn.functional
    rng = np.random.default_rng(5)

    def param(*shape):
        a = (rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)
        return nnx.nn.Parameter(a) if fw is nnx else torch.nn.Parameter(torch.from_numpy(a))

    def data(a):
        return nnx.tensor(a) if fw is nnx else torch.from_numpy(a)

    if name == "mlp_by_hand":
        ps = [param(784, 256), param(256), param(256, 10), param(10)]
        x, y = rng.standard_normal((128, 784)).astype(np.float32), rng.integers(0, 10, 128)

        def forward(x):
            w1, b1, w2, b2 = ps
            return (x @ w1 + b1).relu() @ w2 + b2
    else:
        d = 128
        ps = [param(d, d), param(d, d), param(d, d), param(d, d), param(d), param(d), param(d, 10)]
        x, y = rng.standard_normal((32, 64, d)).astype(np.float32), rng.integers(0, 10, 32)

        def forward(x):
            wq, wk, wv, wo, g, b, head = ps
            q, k, v = x @ wq, x @ wk, x @ wv
            attn = F.softmax((q @ k.transpose(1, 2)) * (1.0 / np.sqrt(d)), dim=-1)
            h = F.layer_norm(x + (attn @ v) @ wo, (d,), g, b)
            return h.mean(1) @ head
    opt = (nnx.optim.SGD if fw is nnx else torch.optim.SGD)(ps, lr=0.01, momentum=0.9)
    x, y = data(x), (y if fw is nnx else torch.from_numpy(y))

    def step():
        opt.zero_grad()
        F.cross_entropy(forward(x), y).backward()
        opt.step()
    return step


def tensor_case(name):
    import nnx
    import torch
    return f"tensor {name}", _tensor_step(name, nnx), _tensor_step(name, torch)


def measure(a, b, blocks: int, steps: int) -> tuple:
    for _ in range(3):  # warm-up: workspaces, plan caches, oneDNN primitives
        a()
        b()
    ta, tb = [], []
    for _ in range(blocks):
        for f, out in ((a, ta), (b, tb)):
            settle(f)
            for _ in range(steps):
                t = time.perf_counter()
                f()
                out.append(time.perf_counter() - t)
    return float(np.median(ta)) * 1e3, float(np.median(tb)) * 1e3


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--groups", nargs="+", default=["train", "infer", "rnn", "tensor"],
                    choices=["train", "infer", "rnn", "tensor"])
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--steps", type=int, default=2)
    args = ap.parse_args()
    import nnx
    import torch
    cases = []
    if "train" in args.groups:
        cases += [lambda n=n: train_case(n) for n in TRAIN]
    if "infer" in args.groups:
        cases += [lambda n=n, b=b: infer_case(n, b) for n in INFER for b in ((1, 8, 64) if n == "mlp" else (1, 64))]
    if "rnn" in args.groups:
        cases += [lambda c=c: rnn_case(*c) for c in RNN]
    if "tensor" in args.groups:
        cases += [lambda n=n: tensor_case(n) for n in ("mlp_by_hand", "attention")]
    print(f"nnx against PyTorch {torch.__version__}, {args.blocks} interleaved blocks of {args.steps} calls, "
          f"medians (ISA {nnx.cpu_info()['active_isa']})")
    print("| case | threads | nnx ms | torch ms | torch/nnx |")
    print("|---|---|---|---|---|")
    for threads in args.threads:
        nnx.set_num_threads(threads)
        torch.set_num_threads(threads)
        for make in cases:
            label, a, b = make()
            ma, mb = measure(a, b, args.blocks, args.steps if "infer" not in label and "rnn" not in label
                             else 5 * args.steps)
            print(f"| {label} | {threads} | {ma:.3f} | {mb:.3f} | {mb / ma:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
