"""Peak resident memory of LeNet-5 training (batch 64, SGD momentum) for nnx and PyTorch.

Each framework trains in its own fresh process for a fixed number of steps on random data, and the
process's peak RSS (ru_maxrss) is read at the end, with the baseline after imports reported beside it.

    python bench/peak_memory.py --steps 200 --threads 2
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import resource, sys, json
import numpy as np
fw, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
X = rng.standard_normal((64, 1, 28, 28)).astype(np.float32)
y = rng.integers(0, 10, 64)
if fw == "nnx":
    import nnx
    from nnx import nn, optim
    nnx.set_num_threads(threads)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    model = nnx.models.lenet5()
    opt = optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        opt.zero_grad(); loss = loss_fn(model(X), y); loss.backward(); opt.step()
else:
    import torch
    torch.set_num_threads(threads)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    tn = torch.nn
    model = tn.Sequential(tn.Conv2d(1, 6, 5, padding=2), tn.ReLU(), tn.MaxPool2d(2), tn.Conv2d(6, 16, 5),
                          tn.ReLU(), tn.MaxPool2d(2), tn.Flatten(), tn.Linear(400, 120), tn.ReLU(),
                          tn.Linear(120, 84), tn.ReLU(), tn.Linear(84, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9)
    loss_fn = tn.CrossEntropyLoss()
    xt, yt = torch.from_numpy(X), torch.from_numpy(y)
    for _ in range(steps):
        opt.zero_grad(); loss = loss_fn(model(xt), yt); loss.backward(); opt.step()
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"framework": fw, "baseline_mib": base / 1024, "peak_mib": peak / 1024,
                  "training_mib": (peak - base) / 1024}))
"""


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    for fw in ("nnx", "torch"):
        out = subprocess.run([sys.executable, "-c", CHILD, fw, str(args.steps), str(args.threads)],
                             capture_output=True, text=True)
        if out.returncode != 0:
            print(f"{fw}: failed: {out.stderr.strip().splitlines()[-1] if out.stderr else out.returncode}")
            continue
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{fw:6s} peak RSS {r['peak_mib']:7.1f} MiB (after imports {r['baseline_mib']:6.1f} MiB, "
              f"training adds {r['training_mib']:6.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
