"""Exported inference latency: onnxruntime (CPU provider) beside nnx itself, interleaved.

    python bench/onnx_latency.py [--model lenet5] [--fold-bn] [--compile] [--threads 1 2] [--batches 1 1000]
                                 [--blocks 30] [--reps 20] [--json out.json]

The model (nnx.models.lenet5() by default; or resnet20, bn, vgg, mobile, mlp: the networks of
bench/network_ab.py and bench/more_networks_ab.py) is put in eval mode and exported once with a free batch axis
by nnx.onnx.export; onnxruntime applies its own graph optimisations (a BatchNorm folded into the convolution
before it, activations fused), which nnx's eval mode does not; --fold-bn times nnx's model after
nnx.nn.utils.fuse_conv_bn with an example input, so the pairs that custom forwards call are folded too (the
file is exported from the model as trained either way), and --compile runs it
as nnx.compile(model), whose replays of the recorded kernel calls skip the Python between the layers;
both run the same float32 inputs. For each thread count and batch size, block i times `reps` forward
passes of nnx (model(x) under no_grad), then `reps` onnxruntime session.run calls, so both see the same
machine load; the script reports the median time per forward pass of each and the median of the
per-block ratios (onnxruntime / nnx) with its interquartile range. onnxruntime gets the same number of
intra-op threads as nnx (inter-op 1, sequential execution). The outputs are compared before timing.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np


def _times(fn, n: int) -> list:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


MODELS = ("lenet5", "resnet20", "bn", "vgg", "mobile", "mlp")
_PLAN_TUNING_REPLAYS = 6 + 18 + 2  # Plan::kTuneReplays + kWholeReplays, and two more


def build(name: str):
    """(model in eval mode, input shape of one example) for a name of MODELS."""
    import nnx
    nnx.manual_seed(0)
    if name == "lenet5":
        return nnx.models.lenet5().eval(), (1, 28, 28)
    here = os.path.dirname(os.path.abspath(__file__))
    if here not in sys.path:
        sys.path.insert(0, here)
    from more_networks_ab import INFER, mlp, mobile, vgg
    from network_ab import build as build_network
    model = build_network(name, "nnx") if name in ("resnet20", "bn") else {"vgg": vgg, "mobile": mobile,
                                                                            "mlp": mlp}[name](nnx.nn)
    return model.eval(), INFER[name]


def measure(path: str, model, threads: int, batch: int, blocks: int, reps: int, shape=(1, 28, 28)) -> dict:
    import onnxruntime as ort

    import nnx
    nnx.set_num_threads(threads)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # onnxruntime's pool threads otherwise spin for a while after each run, on the core nnx's next call wants.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(batch).standard_normal((batch,) + tuple(shape)).astype(np.float32)

    def run_nnx():
        with nnx.no_grad():
            return model(x).numpy()

    def run_ort():
        return sess.run(None, {"input": x})[0]

    want, got = run_nnx(), run_ort()  # also the untimed warm-up of each
    from nnx.compile import CompiledStep
    if isinstance(model, CompiledStep):
        # A plan's first replays time its calls to choose their thread counts (cpp/compile/plan.h: 6 replays of
        # per-call timing and 18 of whole candidates when threads > 1); what is timed is the choice that follows.
        for _ in range(_PLAN_TUNING_REPLAYS):
            run_nnx()
    err = float(np.abs(got - want).max() / np.abs(want).max())
    a, b, ratios = [], [], []
    for _ in range(blocks):
        ta, tb = _times(run_nnx, reps), _times(run_ort, reps)
        a += ta
        b += tb
        ratios.append(float(np.median(tb) / np.median(ta)))
    q1, q3 = np.percentile(ratios, [25, 75])
    return {"threads": threads, "batch": batch, "nnx_ms": 1e3 * float(np.median(a)),
            "onnxruntime_ms": 1e3 * float(np.median(b)), "ratio_ort_over_nnx": float(np.median(ratios)),
            "ratio_iqr": [float(q1), float(q3)], "max_rel_diff": err, "blocks": blocks, "reps": reps}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="lenet5", choices=MODELS)
    p.add_argument("--fold-bn", action="store_true", help="time nnx.nn.utils.fuse_conv_bn(model) on nnx's side")
    p.add_argument("--compile", action="store_true", help="time nnx.compile(model) on nnx's side")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 1000])
    p.add_argument("--blocks", type=int, default=30)
    p.add_argument("--reps", type=int, default=20, help="forward passes per block (batch 1); larger batches "
                                                        "use max(2, reps * 8 // batch)")
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    import onnxruntime as ort

    import nnx
    model, shape = build(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{args.model}.onnx")
        nnx.onnx.export(model, np.zeros((1,) + tuple(shape), np.float32), path)
        if args.fold_bn:  # the pairs in custom forwards (ResNet-20's blocks) found by a run on an example
            example = np.random.default_rng(0).standard_normal((1,) + tuple(shape)).astype(np.float32)
            model = nnx.nn.utils.fuse_conv_bn(model, example_input=example)
        if args.compile:
            model = nnx.compile(model)
        label = args.model + "".join(f" (nnx: {what})" for what, on in (
            ("BatchNorm folded by nnx.nn.utils.fuse_conv_bn", args.fold_bn), ("nnx.compile", args.compile)) if on)
        print(f"{label} inference, nnx {nnx.__version__} ({nnx.cpu_info()['active_isa']}) vs onnxruntime "
              f"{ort.__version__} CPU; {os.cpu_count()} logical CPUs; medians of interleaved blocks")
        print(f"{'threads':>7} {'batch':>6} {'nnx ms':>10} {'ort ms':>10} {'ort/nnx':>8} {'IQR':>13} "
              f"{'max rel diff':>13}")
        rows = []
        for threads in args.threads:
            for batch in args.batches:
                reps = args.reps if batch == 1 else max(2, args.reps * 8 // batch)
                r = measure(path, model, threads, batch, args.blocks, reps, shape)
                rows.append(r)
                print(f"{threads:>7} {batch:>6} {r['nnx_ms']:>10.3f} {r['onnxruntime_ms']:>10.3f} "
                      f"{r['ratio_ort_over_nnx']:>8.2f} {r['ratio_iqr'][0]:>6.2f}-{r['ratio_iqr'][1]:<6.2f} "
                      f"{r['max_rel_diff']:>13.1e}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
