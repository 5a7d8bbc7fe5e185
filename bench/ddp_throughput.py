"""Data-parallel throughput: 2 MPI ranks x 1 thread against 1 process x 2 threads, interleaved.

    python bench/ddp_throughput.py --models lenet5 convnet --blocks 5 --steps 20 [--json out.json]

Both sides train the same model on the same global batch (default 64: 2 ranks x 32, or 1 process x 64)
with SGD + momentum, on Fashion-MNIST sample images. Block i runs the single process (`single`), then
the 2-rank job (`ddp`), each a fresh process that times `steps` steps after 3 warm-up steps, so both see
the same machine load; the report gives medians over the blocks.

Inside each 2-rank job, after the timed DDP steps, the same ranks also time (medians over the steps):
- compute: the same steps without any communication (forward, backward, SGD), both ranks at once, so
  they contend for the machine as in the DDP steps; the slower rank's figure is reported;
- allreduce: one blocking MPI_Allreduce of all the gradients (the buckets' total size), after a barrier;
- no_overlap: DDP steps with overlap=False (communication progressed only when backward waits at its end);
- exposed: the time backward spent waiting for the allreduces per step (DistributedDataParallel's
  comm_wait_seconds).
Overlap is working when step - compute < allreduce.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def _setup(model_name: str, batch: int):
    import nnx
    from nnx import nn, optim
    nnx.manual_seed(0)
    model = nnx.models.build(model_name)
    X, y = nnx.data.fashion_mnist_sample("train")
    x = nnx.data.to_float_images(X[:batch])
    return nnx, model, optim, nn.CrossEntropyLoss(), x, y[:batch].astype(np.int64)


def _time_steps(model, opt, loss_fn, x, y, steps: int, warmup: int = 3, sync=None) -> list:
    times = []
    for i in range(warmup + steps):
        if sync is not None:
            sync()
        t = time.perf_counter()
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return times


def run_single(args) -> dict:
    nnx, model, optim, loss_fn, x, y = _setup(args.model, args.batch)
    nnx.set_num_threads(args.threads)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    t = statistics.median(_time_steps(model, opt, loss_fn, x, y, args.steps))
    return {"step_s": t, "images_per_s": args.batch / t, "threads": args.threads}


def run_ddp(args) -> dict:
    nnx, model, optim, loss_fn, _, _ = _setup(args.model, args.batch)
    dist = nnx.distributed
    dist.init()
    rank, world = dist.rank(), dist.world_size()
    nnx.set_num_threads(args.threads)
    per_rank = args.batch // world
    _, _, _, _, x, y = _setup(args.model, args.batch)
    x, y = x[rank * per_rank:(rank + 1) * per_rank], y[rank * per_rank:(rank + 1) * per_rank]
    comm = dist.mpi().COMM_WORLD
    result = {}
    for overlap in (True, False):
        ddp = dist.DistributedDataParallel(model, overlap=overlap)
        opt = optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
        times = _time_steps(ddp, opt, loss_fn, x, y, args.steps)
        waited = ddp.comm_wait_seconds
        ddp.remove_hooks()
        # Steps overlap between ranks (no barrier), so the mean is the steady rate; rank 0's view.
        key = "step" if overlap else "no_overlap"
        result[key + "_s"] = statistics.median(times)
        if overlap:
            result["exposed_s"] = waited / (args.steps + 3)
            result["bucket_mib"] = [round(b * 4 / 2 ** 20, 3) for b in ddp.bucket_sizes]
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    compute = statistics.median(_time_steps(model, opt, loss_fn, x, y, args.steps))
    grads = np.zeros(sum(p.data.size for p in model.parameters()), np.float32)
    ar = []
    for _ in range(args.steps):
        comm.Barrier()
        t = time.perf_counter()
        comm.Allreduce(dist.mpi().IN_PLACE, grads)
        ar.append(time.perf_counter() - t)
    result["compute_s"] = max(comm.allgather(compute))  # the slower rank
    result["allreduce_s"] = statistics.median(ar)
    result["allreduce_mib"] = grads.nbytes / 2 ** 20
    result["images_per_s"] = args.batch / result["step_s"]
    result["threads"] = args.threads
    return result if rank == 0 else None


def _child(kind: str, model: str, args) -> dict:
    common = [os.path.abspath(__file__), "--child", kind, "--model", model, "--steps", str(args.steps),
              "--batch", str(args.batch)]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    if kind == "single":
        argv = [sys.executable] + common + ["--threads", "2"]
    else:
        argv = ["mpiexec", "-n", "2", sys.executable] + common + ["--threads", "1"]
    r = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=1200)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed:\n{r.stderr}")
    return json.loads([line for line in r.stdout.splitlines() if line.startswith("{")][-1])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", default=["lenet5", "convnet"])
    p.add_argument("--model", default="lenet5")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64, help="global batch (per rank: batch / 2)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", choices=["single", "ddp"])
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.child:
        out = run_single(args) if args.child == "single" else run_ddp(args)
        if out is not None:
            print(json.dumps(out), flush=True)
        return 0
    summary = {}
    for model in args.models:
        blocks = []
        for i in range(args.blocks):
            blocks.append({"single": _child("single", model, args), "ddp": _child("ddp", model, args)})
            s, d = blocks[-1]["single"], blocks[-1]["ddp"]
            print(f"{model} block {i + 1}: 1x2 threads {s['images_per_s']:.0f} img/s, 2 ranks x 1 thread "
                  f"{d['images_per_s']:.0f} img/s ({d['images_per_s'] / s['images_per_s']:.2f}); step "
                  f"{d['step_s'] * 1e3:.1f} ms, compute {d['compute_s'] * 1e3:.1f}, allreduce "
                  f"{d['allreduce_s'] * 1e3:.2f}, exposed {d['exposed_s'] * 1e3:.2f}, no-overlap step "
                  f"{d['no_overlap_s'] * 1e3:.1f}", flush=True)
        med = lambda side, key: statistics.median(b[side][key] for b in blocks)  # noqa: E731
        ratios = [b["ddp"]["images_per_s"] / b["single"]["images_per_s"] for b in blocks]
        summary[model] = {
            "single_images_per_s": med("single", "images_per_s"), "ddp_images_per_s": med("ddp", "images_per_s"),
            "ratio_of_medians": med("ddp", "images_per_s") / med("single", "images_per_s"),
            "median_paired_ratio": statistics.median(ratios), "paired_ratios": ratios,
            **{f"ddp_{k}": med("ddp", k) for k in ("step_s", "compute_s", "allreduce_s", "exposed_s",
                                                   "no_overlap_s")},
            "allreduce_mib": blocks[0]["ddp"]["allreduce_mib"], "bucket_mib": blocks[0]["ddp"]["bucket_mib"],
            "blocks": blocks}
        m = summary[model]
        print(f"{model}: median 1x2 {m['single_images_per_s']:.0f} img/s, 2x1 {m['ddp_images_per_s']:.0f} img/s, "
              f"ratio of medians {m['ratio_of_medians']:.3f}, median paired ratio {m['median_paired_ratio']:.3f}; "
              f"step {m['ddp_step_s'] * 1e3:.1f} ms vs compute {m['ddp_compute_s'] * 1e3:.1f} ms + allreduce "
              f"{m['ddp_allreduce_s'] * 1e3:.2f} ms ({m['allreduce_mib']:.2f} MiB); exposed wait "
              f"{m['ddp_exposed_s'] * 1e3:.2f} ms; without overlap {m['ddp_no_overlap_s'] * 1e3:.1f} ms", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
