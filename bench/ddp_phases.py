"""Where a data-parallel step's time goes: per phase, per rank, wall clock and CPU time.

    mpiexec -n 2 python bench/ddp_phases.py --model convnet --steps 40      # 2 ranks x batch 32
    python bench/ddp_phases.py --model convnet --steps 40 --threads 2 --batch 64   # one process

Each step is split into zero_grad, forward (model + loss), backward, optimizer step and the rest of the
loop. Under DistributedDataParallel, backward is further split into the gradient-ready hooks (bucket
copy, starting Iallreduce, a progress poke), the final wait for the allreduces and the unpacking of the
averages into .grad; "backward compute" is what is left (the kernels and the autograd engine).
Per phase: median wall time over the steps, median CPU time of the main thread (time.thread_time) and,
on Linux, the main thread's run-queue wait from /proc/thread-self/schedstat (runnable but preempted by
other work: the machine's load). wall - CPU - run-queue is time the thread chose to wait: sleeping for
the other rank, for the GIL, or in MPI's naps. The process CPU time (time.process_time) minus the main
thread's is the progress thread's (and MPI's helper threads') CPU. Printed per rank, as JSON with --json.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
if not os.environ.get("PYTHONPATH"):
    sys.path.insert(0, os.path.join(os.path.dirname(HERE), "python"))

PHASES = ("zero_grad", "forward", "backward", "step", "other", "hooks", "wait", "unpack", "bw_compute", "total")


def _runq() -> float:
    """Seconds the calling thread has spent runnable but not running (0 where schedstat is missing)."""
    try:
        with open("/proc/thread-self/schedstat") as f:
            return int(f.read().split()[1]) * 1e-9
    except (OSError, IndexError, ValueError):
        return 0.0


def _now():
    return time.perf_counter(), time.thread_time(), _runq()


class _Clock:
    """Accumulates (wall, main-thread CPU, run-queue wait) per phase within one step."""

    def __init__(self):
        self.t = {}

    def add(self, name, start, end):
        old = self.t.get(name, (0.0, 0.0, 0.0))
        self.t[name] = tuple(o + e - s for o, s, e in zip(old, start, end))

    def get(self, name):
        return self.t.get(name, (0.0, 0.0, 0.0))


def _timed(clock_ref, name, fn):
    def wrapper(*a, **k):
        start = _now()
        try:
            return fn(*a, **k)
        finally:
            clock_ref[0].add(name, start, _now())
    return wrapper


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="convnet")
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--batch", type=int, default=None, help="per process (default 32)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--no-overlap", action="store_true")
    p.add_argument("--interval", type=float, default=None, help="progress thread's poll interval (s)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import nnx
    from nnx import nn, optim
    dist = nnx.distributed
    dist.init()
    rank, world = dist.rank(), dist.world_size()
    nnx.set_num_threads(args.threads)
    batch = args.batch or 32
    nnx.manual_seed(0)
    model = nnx.models.build(args.model)
    X, y = nnx.data.fashion_mnist_sample("train")
    x = nnx.data.to_float_images(X[rank * batch:(rank + 1) * batch])
    y = y[rank * batch:(rank + 1) * batch].astype(np.int64)
    loss_fn = nn.CrossEntropyLoss()
    clock = [_Clock()]
    ddp = None
    if world > 1:
        kw = {} if args.interval is None else {"progress_interval": args.interval}
        ddp = dist.DistributedDataParallel(model, **kw)
        ddp.overlap = not args.no_overlap
        polls = [0]
        test = ddp._progress._test

        def counted_test():
            polls[0] += 1
            test()
        ddp._progress._test = counted_test
        ddp._on_grad_ready = _timed(clock, "hooks", ddp._on_grad_ready)  # includes _finish: subtracted below
        ddp._progress.wait_all = _timed(clock, "wait", ddp._progress.wait_all)
        for h in ddp._hooks:
            h.remove()
        ddp._hooks = [q.register_grad_ready_hook(ddp._on_grad_ready) for q in ddp._params]
        finish = ddp._finish
        ddp._finish = _timed(clock, "finish", finish)
        net = ddp
    else:
        net = model
    opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    env = {k: os.environ.get(k) for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_PROC_BIND",
                                          "MPIR_CVAR_ASYNC_PROGRESS", "MPIR_CVAR_CH4_PROGRESS_THROTTLE")}
    info = {"rank": rank, "world": world, "nnx_threads": nnx.get_num_threads(), "batch": batch,
            "affinity": sorted(os.sched_getaffinity(0)), "env": env,
            "mpi_thread_level": (dist.mpi().Query_thread() if world > 1 else None)}
    records = []
    if world > 1:
        dist.barrier()
    t_loop = time.perf_counter()
    p_loop = time.process_time()
    progress_cpu = lambda: 0.0  # noqa: E731
    for i in range(args.warmup + args.steps):
        if ddp is not None and i == args.warmup and ddp._progress._thread is not None:
            clock_id = time.pthread_getcpuclockid(ddp._progress._thread.ident)
            progress_cpu = lambda: time.clock_gettime(clock_id)  # noqa: E731
        if i == args.warmup and ddp is not None:
            polls[0] = 0
            pcpu0 = progress_cpu()
        clock[0] = c = _Clock()
        pc0 = time.process_time()
        t0 = _now()
        opt.zero_grad()
        t1 = _now()
        loss = loss_fn(net(x), y)
        t2 = _now()
        loss.backward()
        t3 = _now()
        opt.step()
        t4 = _now()
        float(loss.item())
        t5, pc5 = _now(), time.process_time()
        if i < args.warmup:
            if i == args.warmup - 1:
                t_loop, p_loop = time.perf_counter(), time.process_time()
            continue
        d = lambda a, b: tuple(y - x for x, y in zip(a, b))  # noqa: E731
        rec = {"zero_grad": d(t0, t1), "forward": d(t1, t2), "backward": d(t2, t3), "step": d(t3, t4),
               "other": d(t4, t5), "total": d(t0, t5), "process_cpu": pc5 - pc0}
        if ddp is not None:
            wait, fin = c.get("wait"), c.get("finish")
            hooks = d(fin, c.get("hooks"))
            unpack = d(wait, fin)
            rec.update(hooks=hooks, wait=wait, unpack=unpack,
                       bw_compute=tuple(rec["backward"][k] - hooks[k] - wait[k] - unpack[k] for k in range(3)))
        records.append(rec)
    loop_wall, loop_cpu = time.perf_counter() - t_loop, time.process_time() - t_loop * 0 - p_loop
    out = dict(info)
    for name in PHASES:
        if name in records[0]:
            out[name] = {"wall_ms": round(1e3 * statistics.median(r[name][0] for r in records), 3),
                         "cpu_ms": round(1e3 * statistics.median(r[name][1] for r in records), 3),
                         "runq_ms": round(1e3 * statistics.median(r[name][2] for r in records), 3),
                         "waited_ms": round(1e3 * statistics.median(r[name][0] - r[name][1] - r[name][2]
                                                                    for r in records), 3)}
    out["process_cpu_ms"] = round(1e3 * statistics.median(r["process_cpu"] for r in records), 3)
    out["mean_step_ms"] = round(1e3 * loop_wall / args.steps, 3)
    out["mean_process_cpu_ms"] = round(1e3 * loop_cpu / args.steps, 3)
    out["images_per_s"] = round(batch * world * args.steps / loop_wall, 1)
    out["loadavg"] = os.getloadavg()[0]
    if ddp is not None:
        out["progress_thread_cpu_ms_per_step"] = round(1e3 * (progress_cpu() - pcpu0) / args.steps, 3)
        out["progress_polls_per_step"] = polls[0] / args.steps
    everyone = dist.mpi().COMM_WORLD.gather(out, root=0) if world > 1 else [out]
    if rank == 0:
        for o in everyone:
            print(json.dumps(o), flush=True)
        if args.json:
            with open(args.json, "w") as f:
                json.dump(everyone, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
