"""Data-parallel throughput: 2 MPI ranks x 1 thread against 1 process x 2 threads, interleaved.

    python bench/ddp_throughput.py --models lenet5 convnet --blocks 5 --steps 20 [--json out.json]

Both sides train the same model on the same global batch (default 64: 2 ranks x 32, or 1 process x 64)
with SGD + momentum, on Fashion-MNIST sample images. Block i runs the single process with 2 threads
(`single`), one process with 1 thread on one rank's batch (`single1`, the baseline of scaling
efficiency: 2 ranks ideally give twice its images/s), then the 2-rank job (`ddp`), each a fresh process
that times `steps` steps after 3 warm-up steps, so all see the same machine load; the report gives
medians over the blocks.

Inside each 2-rank job, after the timed DDP steps, the same ranks also time (medians over the steps):
- compute: the same steps without any communication (under no_sync), both ranks starting each step
  together after a barrier, so they contend for the machine as in the DDP steps; per step the slower
  rank's time counts (a synchronous step waits for it), and the median over the steps is reported;
- allreduce: one blocking MPI_Allreduce of all the gradients (the buckets' total size), after a barrier;
- no_overlap: DDP steps with overlap=False (communication progressed only when backward waits at its end);
- exposed: the time backward spent waiting for the allreduces per step (DistributedDataParallel's
  comm_wait_seconds).
Overlap is working when step - compute < allreduce.

Every side also reports its CPU time per image (all threads, all ranks), the figure to compare when the
machine is shared: wall-clock ratios then say more about the load than about nnx.
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


def _time_steps(model, opt, loss_fn, x, y, steps: int, warmup: int = 3, sync=None, after=None, cpu=None) -> list:
    """Wall seconds of each timed step; with a list `cpu`, also appends each step's CPU seconds of this
    process (all its threads: time.process_time), which a loaded machine inflates much less."""
    times = []
    for i in range(warmup + steps):
        if sync is not None:
            sync()
        t, c = time.perf_counter(), time.process_time()
        opt.zero_grad()
        loss = loss_fn(model(x), y)
        t_backward = time.perf_counter()
        loss.backward()
        opt.step()
        if i >= warmup:
            times.append(time.perf_counter() - t)
            if cpu is not None:
                cpu.append(time.process_time() - c)
            if after is not None:
                after(t_backward)
    return times


def _timeline_summary(timelines) -> dict:
    """Median over steps of each event's time after backward began (ms): the buckets' starts in order,
    the first time everything launched was complete, the wait at the end of backward, and its end."""
    out = {}
    for key in ("start", "done", "wait", "end"):
        per_step = [[t for what, t in tl if what == key] for tl in timelines]
        n = min(len(p) for p in per_step)
        for j in range(n if key == "start" else min(n, 1)):
            out[f"{key}{j}" if key == "start" else key] = round(statistics.median(p[j] for p in per_step) * 1e3, 2)
    return out


def run_single(args) -> dict:
    nnx, model, optim, loss_fn, x, y = _setup(args.model, args.batch)
    nnx.set_num_threads(args.threads)
    opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    cpu = []
    t = statistics.median(_time_steps(model, opt, loss_fn, x, y, args.steps, cpu=cpu))
    return {"step_s": t, "images_per_s": args.batch / t, "threads": args.threads,
            "cpu_s_per_image": statistics.median(cpu) / args.batch, "loadavg": os.getloadavg()[0]}


def run_ddp(args) -> dict:
    """Rounds of: DDP steps with overlap, DDP steps without, the same steps without communication (under
    no_sync), and blocking allreduces of the whole gradient, so that all four see the same load."""
    import contextlib
    nnx, model, optim, loss_fn, x, y = _setup(args.model, args.batch)
    dist = nnx.distributed
    dist.init()
    rank, world = dist.rank(), dist.world_size()
    nnx.set_num_threads(args.threads)
    per_rank = args.batch // world
    x, y = x[rank * per_rank:(rank + 1) * per_rank], y[rank * per_rank:(rank + 1) * per_rank]
    MPI = dist.mpi()
    comm = MPI.COMM_WORLD
    ddp = dist.DistributedDataParallel(model)
    opt = optim.SGD(ddp.parameters(), lr=0.01, momentum=0.9)
    grads = np.zeros(sum(p.data.size for p in model.parameters()), np.float32)
    _time_steps(ddp, opt, loss_fn, x, y, 0, warmup=3)
    rounds = {"step_s": [], "no_overlap_s": [], "compute_s": [], "allreduce_s": [], "exposed_s": []}
    per_round = max(1, args.steps // args.rounds)
    timelines = []

    def keep_timeline(t_backward):  # events relative to the start of backward
        first = ddp.timeline
        offset = ddp._progress.events[0][1] - t_backward
        timelines.append([(what, t + offset) for what, t in first])

    cpu = []  # this rank's CPU seconds per overlapped step
    for _ in range(args.rounds):
        for key, overlap in (("step_s", True), ("no_overlap_s", False)):
            ddp.overlap = overlap
            waited = ddp.comm_wait_seconds
            rounds[key].append(statistics.median(_time_steps(ddp, opt, loss_fn, x, y, per_round, warmup=1,
                                                             after=keep_timeline if overlap else None,
                                                             cpu=cpu if overlap else None)))
            if overlap:
                rounds["exposed_s"].append((ddp.comm_wait_seconds - waited) / (per_round + 1))
        with ddp.no_sync():  # both ranks start each step together; per step, the slower rank's time
            compute = _time_steps(ddp, opt, loss_fn, x, y, per_round, warmup=1, sync=comm.Barrier)
        rounds["compute_s"].append(statistics.median(np.max(comm.allgather(compute), axis=0)))
        ar = []
        for _ in range(per_round):
            comm.Barrier()
            t = time.perf_counter()
            comm.Allreduce(MPI.IN_PLACE, grads)
            ar.append(time.perf_counter() - t)
        rounds["allreduce_s"].append(statistics.median(ar))
    result = {k: statistics.median(v) for k, v in rounds.items()}
    # CPU of the whole job per image: per step, the ranks' CPU seconds summed, over the global batch.
    result["cpu_s_per_image"] = statistics.median(np.sum(comm.allgather(cpu), axis=0)) / args.batch
    result["loadavg"] = os.getloadavg()[0]
    # Paired per round: how far the overlapped step exceeds the slower rank's compute, against the allreduce.
    result["excess_s"] = statistics.median(s - c for s, c in zip(rounds["step_s"], rounds["compute_s"]))
    result["rounds"] = rounds
    result["timeline_ms"] = _timeline_summary(timelines)
    result["bucket_mib"] = [round(b * 4 / 2 ** 20, 3) for b in ddp.bucket_sizes]
    result["allreduce_mib"] = grads.nbytes / 2 ** 20
    result["images_per_s"] = args.batch / result["step_s"]
    result["threads"] = args.threads
    return result if rank == 0 else None


def _child(kind: str, model: str, args) -> dict:
    common = [os.path.abspath(__file__), "--child", kind, "--model", model, "--steps", str(args.steps),
              "--rounds", str(args.rounds), "--batch", str(args.batch)]
    env = dict(os.environ, PYTHONPATH=os.path.join(ROOT, "python"))
    if kind == "single":
        argv = [sys.executable] + common + ["--threads", "2"]
    elif kind == "single1":
        argv = [sys.executable] + common[:-1] + [str(args.batch // 2), "--threads", "1"]
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
    p.add_argument("--rounds", type=int, default=4, help="rounds inside each 2-rank job (steps split among them)")
    p.add_argument("--batch", type=int, default=64, help="global batch (per rank: batch / 2)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--child", choices=["single", "single1", "ddp"])
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    if args.child:
        out = run_ddp(args) if args.child == "ddp" else run_single(args)
        if out is not None:
            print(json.dumps(out), flush=True)
        return 0
    summary = {}
    for model in args.models:
        blocks = []
        for i in range(args.blocks):
            blocks.append({kind: _child(kind, model, args) for kind in ("single", "single1", "ddp")})
            s, s1, d = blocks[-1]["single"], blocks[-1]["single1"], blocks[-1]["ddp"]
            print(f"{model} block {i + 1}: 1x2 threads {s['images_per_s']:.0f} img/s, 1x1 {s1['images_per_s']:.0f}, "
                  f"2 ranks x 1 thread {d['images_per_s']:.0f} img/s ({d['images_per_s'] / s['images_per_s']:.2f} "
                  f"of 1x2, {d['images_per_s'] / (2 * s1['images_per_s']):.2f} of 2x 1x1); step "
                  f"{d['step_s'] * 1e3:.1f} ms, compute {d['compute_s'] * 1e3:.1f}, allreduce "
                  f"{d['allreduce_s'] * 1e3:.2f}, excess {d['excess_s'] * 1e3:.2f}, exposed {d['exposed_s'] * 1e3:.2f}, no-overlap step "
                  f"{d['no_overlap_s'] * 1e3:.1f}; CPU ms/image 1x2 {s['cpu_s_per_image'] * 1e3:.3f}, 1x1 "
                  f"{s1['cpu_s_per_image'] * 1e3:.3f}, 2 ranks {d['cpu_s_per_image'] * 1e3:.3f}; load "
                  f"{d['loadavg']:.1f}", flush=True)
        med = lambda side, key: statistics.median(b[side][key] for b in blocks)  # noqa: E731
        ratios = [b["ddp"]["images_per_s"] / b["single"]["images_per_s"] for b in blocks]
        efficiency = [b["ddp"]["images_per_s"] / (2 * b["single1"]["images_per_s"]) for b in blocks]
        summary[model] = {
            "single_images_per_s": med("single", "images_per_s"), "ddp_images_per_s": med("ddp", "images_per_s"),
            "single1_images_per_s": med("single1", "images_per_s"),
            "median_paired_efficiency": statistics.median(efficiency), "paired_efficiencies": efficiency,
            "ratio_of_medians": med("ddp", "images_per_s") / med("single", "images_per_s"),
            "median_paired_ratio": statistics.median(ratios), "paired_ratios": ratios,
            # images per CPU-second of 2 ranks against 1 x 2 threads, paired per block
            "median_paired_cpu_ratio": statistics.median(b["single"]["cpu_s_per_image"] / b["ddp"]["cpu_s_per_image"]
                                                         for b in blocks),
            # images per CPU-second of 2 ranks against twice one 1-thread process (no OpenMP spinning on
            # that side, which inflates the 2-thread process's CPU time on a loaded machine)
            "median_paired_cpu_efficiency": statistics.median(b["single1"]["cpu_s_per_image"] /
                                                              b["ddp"]["cpu_s_per_image"] for b in blocks),
            "loadavg": [b["ddp"]["loadavg"] for b in blocks],
            **{f"ddp_{k}": med("ddp", k) for k in ("step_s", "compute_s", "allreduce_s", "exposed_s",
                                                   "no_overlap_s", "excess_s")},
            "allreduce_mib": blocks[0]["ddp"]["allreduce_mib"], "bucket_mib": blocks[0]["ddp"]["bucket_mib"],
            "blocks": blocks}
        m = summary[model]
        m["timeline_ms"] = blocks[len(blocks) // 2]["ddp"]["timeline_ms"]
        print(f"{model}: median 1x2 {m['single_images_per_s']:.0f} img/s, 2x1 {m['ddp_images_per_s']:.0f} img/s, "
              f"ratio of medians {m['ratio_of_medians']:.3f}, median paired ratio {m['median_paired_ratio']:.3f}; "
              f"1x1 {m['single1_images_per_s']:.0f} img/s, 2-rank efficiency {m['median_paired_efficiency']:.3f}; "
              f"step {m['ddp_step_s'] * 1e3:.1f} ms vs compute {m['ddp_compute_s'] * 1e3:.1f} ms + allreduce "
              f"{m['ddp_allreduce_s'] * 1e3:.2f} ms ({m['allreduce_mib']:.2f} MiB); paired excess of step over compute "
              f"{m['ddp_excess_s'] * 1e3:.2f} ms; exposed wait "
              f"{m['ddp_exposed_s'] * 1e3:.2f} ms; without overlap {m['ddp_no_overlap_s'] * 1e3:.1f} ms; "
              f"timeline of block {len(blocks) // 2 + 1} (ms after backward began): {m['timeline_ms']}; "
              f"images per CPU-second, 2 ranks / 1x2, median paired {m['median_paired_cpu_ratio']:.3f}, 2 ranks / "
              f"1x1, median paired {m['median_paired_cpu_efficiency']:.3f}; "
              f"load {m['loadavg']}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summary, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
