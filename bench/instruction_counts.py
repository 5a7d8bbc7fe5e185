"""Instructions executed inside nnx's C++ code (valgrind's callgrind) for a few fixed cases, one thread:
a count that, unlike a time, does not move with the load on a shared machine. Compare two builds of nnx
(e.g. before and after a refactor) by pointing PYTHONPATH at each:

    PYTHONPATH=python python bench/instruction_counts.py --isa avx2 > after.json
    PYTHONPATH=../old/python python bench/instruction_counts.py --isa avx2 > before.json
    python bench/instruction_counts.py --compare before.json after.json

A case's count is that of a process running its call twice minus that of the same process running it
once (setup, imports and the warm-up call cancel; PYTHONHASHSEED is fixed), so it is the cost of one call
from Python: the kernels, the bindings and nnx's Python around them. Each case takes two valgrind runs of
10-60 s.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

# name -> Python statements run once as warm-up and once measured (setup builds the arrays untimed).
CASES = {
    "lenet5_step_b64": (
        "from nnx import nn, optim\n"
        "nnx.manual_seed(0)\n"
        "model = nnx.models.lenet5()\n"
        "opt = optim.SGD(model.parameters(), lr=0.01, momentum=0.9)\n"
        "loss_fn = nn.CrossEntropyLoss()\n"
        "x = np.random.default_rng(0).random((64, 1, 28, 28), dtype=np.float32)\n"
        "y = np.arange(64) % 10\n",
        "opt.zero_grad(); loss = loss_fn(model(x), y); loss.backward(); opt.step()\n"),
    "conv3x3_64_fwd_bwd": (
        "r = np.random.default_rng(0)\n"
        "x = r.random((16, 64, 16, 16), dtype=np.float32); w = r.random((64, 64, 3, 3), dtype=np.float32)\n"
        "b = r.random(64, dtype=np.float32)\n",
        "y = nnx.ops.conv2d(x, w, b, padding=1); nnx.ops.conv2d_backward(y, x, w, b, padding=1)\n"),
    "sgemm_256": (
        "r = np.random.default_rng(0)\n"
        "a = r.random((256, 256), dtype=np.float32); bb = r.random((256, 256), dtype=np.float32)\n",
        "nnx.ops.gemm(a, bb)\n"),
    "maxpool2x2_fwd_bwd": (
        "x = np.random.default_rng(0).random((64, 16, 24, 24), dtype=np.float32)\n",
        "y = nnx.ops.max_pool2d(x, 2); nnx.ops.max_pool2d_backward(y, x, 2)\n"),
    "cross_entropy_fwd_bwd": (
        "r = np.random.default_rng(0)\n"
        "z = r.random((512, 100), dtype=np.float32); t = np.arange(512) % 100\n",
        "nnx.ops.cross_entropy(z, t); nnx.ops.cross_entropy_backward(np.float32(1.0), z, t)\n"),
    "sigmoid_1M": (
        "x = np.random.default_rng(0).random(1 << 20, dtype=np.float32)\n",
        "nnx.ops.sigmoid(x)\n"),
}

DRIVER = """
import numpy as np, nnx, nnx.models
nnx.set_num_threads(1)
{setup}
{body}
def _measured():
{indented}
_measured()
"""


def count(case: str, isa: str) -> int:
    setup, body = CASES[case]
    code = DRIVER.format(setup=setup, body=body, indented="    " + body.strip().replace("\n", "\n    "))
    with tempfile.TemporaryDirectory() as tmp:
        script = os.path.join(tmp, "case.py")
        with open(script, "w") as f:
            f.write(code)
        out = os.path.join(tmp, "cg.out")
        env = dict(os.environ, NNX_ISA=isa, OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
        # The count of the measured call is that of a run with it minus that of the same run without it
        # (setup and the warm-up call are in both).
        totals = []
        for with_measured in (True, False):
            src = code if with_measured else code.replace("_measured()\n", "")
            with open(script, "w") as f:
                f.write(src)
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, script]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f"{case}: {proc.stderr[-2000:]}")
            totals.append(_total(out))
        return totals[0] - totals[1]


def _total(path: str) -> int:
    for p in glob.glob(path + "*"):
        with open(p) as f:
            for line in f:
                if line.startswith("totals:") or line.startswith("summary:"):
                    return int(line.split()[1])
    raise RuntimeError(f"no totals in {path}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--isa", default="avx2", help="NNX_ISA for the run (default avx2)")
    ap.add_argument("-k", default=None, help="only cases whose name contains this")
    ap.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"), help="print a table of two runs")
    args = ap.parse_args()
    if args.compare:
        before, after = (json.load(open(p)) for p in args.compare)
        print(f"| case | before | after | after/before |\n|---|---|---|---|")
        for case in before:
            if case in after:
                print(f"| {case} | {before[case]:,} | {after[case]:,} | {after[case] / before[case]:.3f} |")
        return 0
    result = {}
    for case in CASES:
        if args.k and args.k not in case:
            continue
        result[case] = count(case, args.isa)
        print(f"{case}: {result[case]:,} instructions", file=sys.stderr)
    print(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
