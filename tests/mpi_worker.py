"""The program that tests/test_distributed.py starts under `mpiexec -n P`: one scenario per run.

    python tests/mpi_worker.py SCENARIO OUTDIR

It imports whichever nnx its PYTHONPATH finds: the test passes the directory of the nnx it runs against
(the installed package in CI, python/ with scripts/dev_build.sh), so both use one build.

Scenarios: `train` (several SGD steps of DistributedDataParallel on sharded data; records every step's
parameter digest on every rank, the final parameters, and which samples each rank saw), `batchnorm`
(running statistics averaged at the end of an epoch), `mismatch` (rank 1 builds another model), `kill`
(rank 1 kills itself with SIGKILL mid-training), `cli_fail` (the command line, with rank 1 raising
inside epoch 2). The model, data and settings live here so that the single-process reference run in
the test builds exactly the same ones.
"""
from __future__ import annotations

import json
import os
import signal
import sys

import numpy as np

import nnx  # noqa: E402
from nnx import nn, optim  # noqa: E402

SEED, DATA_SEED = 5, 11
PER_RANK_BATCH, STEPS, LR, MOMENTUM = 32, 5, 0.05, 0.9
BUCKET_CAP_MB = 0.01  # ~10 KB: the small model below still spreads over several buckets


def tiny_model(batchnorm: bool = False):
    """Conv 3x3 (4 filters) + ReLU + max pool on 12x12 crops, then two Linear layers: about 3.5k
    parameters in 6 arrays (3 buckets at BUCKET_CAP_MB)."""
    layers = [nn.Conv2d(1, 4, 3, padding=1)]
    if batchnorm:
        layers.append(nn.BatchNorm2d(4))
    layers += [nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(4 * 6 * 6, 20), nn.ReLU(), nn.Linear(20, 10)]
    return nn.Sequential(*layers)


def tiny_data(n: int):
    """n Fashion-MNIST sample images cropped to their central 12x12, as float32, with their labels. Pixel
    (0, 0) of each crop is replaced by the sample's index / 1e4, so a rank can tell which samples it got."""
    X, y = nnx.data.fashion_mnist_sample("train")
    X = nnx.data.to_float_images(X[:n, 8:20, 8:20])
    X[:, 0, 0, 0] = np.arange(n, dtype=np.float32) / 1e4
    return X, y[:n]


def sample_ids(xb) -> list:
    return [int(round(v * 1e4)) for v in np.asarray(xb)[:, 0, 0, 0]]


def run_steps(model, loader, steps: int, after_step=None):
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    for step, (xb, yb) in enumerate(loader):
        if step == steps:
            break
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()
        opt.step()
        if after_step is not None:
            after_step(step, xb)
    return opt


def train_scenario(out: str, batchnorm: bool = False) -> None:
    dist = nnx.distributed
    dist.init()
    rank, world = dist.rank(), dist.world_size()
    nnx.manual_seed(SEED + rank)  # different initial weights on purpose: the wrapper must broadcast rank 0's
    model = dist.DistributedDataParallel(tiny_model(batchnorm), bucket_cap_mb=BUCKET_CAP_MB)
    # 2 extra samples: with 3 ranks the shards cannot be equal without leaving some out.
    n = world * PER_RANK_BATCH * (STEPS + 1) + 2
    X, y = tiny_data(n)
    loader = nnx.data.DataLoader(X, y, batch_size=PER_RANK_BATCH, shuffle=True, seed=DATA_SEED, rank=rank,
                                 world_size=world)
    digests, seen = [], []

    def after_step(step, xb):
        digests.append(dist.check_in_sync(model, buffers=False))  # raises if any rank differs
        seen.extend(sample_ids(xb))

    run_steps(model, loader, STEPS if not batchnorm else len(loader), after_step)
    report = {"rank": rank, "world": world, "batches": len(loader), "digests": digests, "seen": seen,
              "buckets": model.bucket_parameters, "reductions": model.reductions}
    if batchnorm:
        bn = model.module[1]
        report["local_running_mean"] = bn.running_mean.tolist()
        model.end_epoch()
        report["averaged_running_mean"] = bn.running_mean.tolist()
        report["full_digest"] = dist.check_in_sync(model)
    everyone = model.comm.gather(report, root=0)
    if rank == 0:
        nnx.save(model.state_dict(), os.path.join(out, "params.npz"))
        with open(os.path.join(out, "report.json"), "w") as f:
            json.dump(everyone, f)


def sync_bn_model():
    """float64: conv + BatchNorm2d + ReLU + pool, Linear + BatchNorm1d + ReLU, Linear (no bias before a
    BatchNorm: its gradient would be zero)."""
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(4 * 6 * 6, 20, bias=False), nn.BatchNorm1d(20), nn.ReLU(),
                         nn.Linear(20, 10)).double()


def sync_bn_batches(world: int, steps: int):
    """Per step the global batch of world * PER_RANK_BATCH samples (float64), rank r's share being rows
    r * PER_RANK_BATCH onwards."""
    X, y = tiny_data(world * PER_RANK_BATCH * steps)
    X = X.astype(np.float64)
    g = world * PER_RANK_BATCH
    return [(X[i * g:(i + 1) * g], y[i * g:(i + 1) * g]) for i in range(steps)]


def run_sync_bn_steps(model, batches, rank: int = 0, per_rank: int | None = None, after_step=None):
    """SGD steps on the given batches (rank `rank`'s rows of each when per_rank is given); returns the
    first step's outputs."""
    opt = optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    loss_fn = nn.CrossEntropyLoss()
    first = None
    for step, (xb, yb) in enumerate(batches):
        if per_rank is not None:
            xb, yb = xb[rank * per_rank:(rank + 1) * per_rank], yb[rank * per_rank:(rank + 1) * per_rank]
        opt.zero_grad()
        out = model(xb)
        first = out.data.copy() if first is None else first
        loss_fn(out, yb).backward()
        opt.step()
        if after_step is not None:
            after_step()
    return first


def sync_bn_scenario(out: str) -> None:
    """SyncBatchNorm (convert_sync_batchnorm) under DistributedDataParallel, float64, STEPS steps."""
    dist = nnx.distributed
    dist.init()
    rank, world = dist.rank(), dist.world_size()
    nnx.manual_seed(SEED)
    model = dist.convert_sync_batchnorm(sync_bn_model())
    assert isinstance(model[1], dist.SyncBatchNorm) and isinstance(model[6], dist.SyncBatchNorm)
    ddp = dist.DistributedDataParallel(model, bucket_cap_mb=BUCKET_CAP_MB)
    digests = []
    first = run_sync_bn_steps(ddp, sync_bn_batches(world, STEPS), rank, PER_RANK_BATCH,
                              lambda: digests.append(dist.check_in_sync(ddp)))  # running statistics too
    np.save(os.path.join(out, f"first_output_rank{rank}.npy"), first)
    everyone = ddp.comm.gather({"rank": rank, "digests": digests}, root=0)
    if rank == 0:
        nnx.save(model.state_dict(), os.path.join(out, "params.npz"))
        with open(os.path.join(out, "report.json"), "w") as f:
            json.dump(everyone, f)


def mismatch_scenario(out: str) -> None:
    dist = nnx.distributed
    dist.init(abort_on_exception=False)  # the error is the result: let every rank print and exit
    model = tiny_model() if dist.rank() == 0 else nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU())
    try:
        dist.broadcast_parameters(model)
    except ValueError as exc:
        # One write per line: two ranks share the pipe, and print's separate newline write could interleave.
        sys.stdout.write(f"rank {dist.rank()}: {exc}\n")
        sys.stdout.flush()
        sys.exit(3)


def kill_scenario(out: str) -> None:
    dist = nnx.distributed
    dist.init()
    rank = dist.rank()
    model = dist.DistributedDataParallel(tiny_model())
    X, y = tiny_data(dist.world_size() * PER_RANK_BATCH * 4)

    def after_step(step, xb):
        if step == 2 and rank == 1:
            os.kill(os.getpid(), signal.SIGKILL)

    for epoch in range(100000):  # rank 0 would train forever if nothing stopped it
        loader = nnx.data.DataLoader(X, y, batch_size=PER_RANK_BATCH, shuffle=True, seed=epoch, rank=rank,
                                     world_size=dist.world_size())
        run_steps(model, loader, len(loader), after_step)


def cli_fail_scenario(out: str) -> None:
    """The command line; on rank 1 the 15th optimizer step (inside epoch 2) raises."""
    from nnx.__main__ import main
    rank = int(os.environ.get("PMI_RANK", "0"))
    if rank == 1:
        real_step, calls = optim.SGD.step, [0]

        def failing_step(self, *args, **kwargs):
            calls[0] += 1
            if calls[0] == 15:
                raise RuntimeError("injected failure on rank 1")
            return real_step(self, *args, **kwargs)

        optim.SGD.step = failing_step
    sys.exit(main(["train", "--model", "mlp", "--dataset", "sample", "--limit", "768", "--batch-size", "32",
                   "--schedule", "constant", "--epochs", "3", "--out", out]))


def single_scenario(out: str) -> None:
    """One process, MPI with a world of 1: the bucket machinery runs and must leave gradients bitwise
    unchanged; unused parameters, synchronize() and no_sync() behave as documented."""
    dist = nnx.distributed
    assert dist.init() == 1 and dist.rank() == 0
    X, y = tiny_data(64)
    loss_fn = nn.CrossEntropyLoss()
    nnx.manual_seed(SEED)
    plain = tiny_model()
    nnx.manual_seed(SEED)
    ddp = dist.DistributedDataParallel(tiny_model(), bucket_cap_mb=BUCKET_CAP_MB)
    assert ddp.bucket_parameters == [["6.bias", "6.weight", "4.bias"], ["4.weight"], ["0.bias", "0.weight"]], \
        ddp.bucket_parameters
    for m in (plain, ddp):
        loss_fn(m(X), y).backward()
    for (name, a), b in zip(plain.named_parameters(), ddp.parameters()):
        assert a.grad.tobytes() == b.grad.tobytes(), name
    assert ddp.reductions == 1
    # Accumulation under no_sync, then one averaging of the sum.
    with ddp.no_sync():
        loss_fn(ddp(X), y).backward()
    assert ddp.reductions == 1
    loss_fn(plain(X), y).backward()
    loss_fn(ddp(X), y).backward()
    loss_fn(plain(X), y).backward()
    assert ddp.reductions == 2
    for a, b in zip(plain.parameters(), ddp.parameters()):
        np.testing.assert_array_equal(a.grad, b.grad)
    # A parameter without a gradient: the next forward says which, and synchronize() completes the step.
    ddp.zero_grad()
    head = ddp.module[6]
    ddp(X)
    head.weight.sum().backward()  # a graph that reaches one parameter only
    try:
        ddp(X)
    except RuntimeError as exc:
        assert "6.bias" in str(exc) and "synchronize" in str(exc), exc
    else:
        raise AssertionError("a forward after an incomplete averaging did not raise")
    ddp.synchronize()
    assert ddp.reductions == 3 and all(p.grad is not None for p in ddp.parameters())
    ddp(X)  # no error now
    print("single scenario ok")


if __name__ == "__main__":
    scenario, outdir = sys.argv[1], sys.argv[2]
    nnx.set_num_threads(1)
    {"train": train_scenario, "batchnorm": lambda o: train_scenario(o, batchnorm=True),
     "syncbn": sync_bn_scenario, "mismatch": mismatch_scenario, "kill": kill_scenario,
     "cli_fail": cli_fail_scenario, "single": single_scenario}[scenario](outdir)
