"""How well the convolution's modelled choices pick: for a grid of layers, every candidate is timed (forced) and
the automatic pick is compared with the fastest. Reports, per layer, the pick, the fastest and the pick's time over
the fastest's, then the geometric mean of that ratio and the count of layers where it passes 1.05.

    python bench/conv_path_sweep.py dx          # stride-1 dx paths (direct, implicit, kvec) of the implicit plan
    python bench/conv_path_sweep.py dx-heldout  # the same over layers the dx rates were not fitted on
    python bench/conv_path_sweep.py stem        # few-channel layers: direct against implicit, forward + dw

`dx` and `stem` are the grids cpp/conv/conv_ukernels_zmm_avx512.cpp's dx rates and conv.cpp's direct_row_rate
were fitted on (the thirty-fourth session, docs/history.md); `dx-heldout` is a grid of other channel counts and map
sizes.
One thread unless OMP_NUM_THREADS says otherwise; medians of 7 calls per candidate, float32, random data.
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np


def _median_ms(fn, reps: int = 7) -> float:
    fn()
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts)) * 1e3


def _grid(name):
    if name == "dx":
        return [(c, k, hw, r) for c in (3, 6, 8, 16, 32, 64) for k in (16, 32, 64) for hw in (8, 14, 16, 28, 32)
                for r in (3, 5)]
    if name == "dx-heldout":
        return [(c, k, hw, r) for c in (4, 12, 24, 48) for k in (24, 48, 96) for hw in (7, 12, 20, 24)
                for r in (3, 5)]
    return [(c, k, hw, r) for c in (1, 3, 4, 8) for k in (16, 32, 64) for hw in (16, 28, 32, 64) for r in (3, 5)]


def sweep(name: str) -> list:
    import nnx
    from nnx import ops

    rng = np.random.default_rng(0)
    out = []
    for c, k, hw, r in _grid(name):
        p = r // 2
        n = int(min(64, max(2, 3e7 / (c * k * hw * hw * r * r * 2)))) if name != "stem" else (64 if hw <= 32 else 16)
        x = rng.standard_normal((n, c, hw, hw)).astype(np.float32)
        w = (rng.standard_normal((k, c, r, r)) * 0.05).astype(np.float32)
        dy = rng.standard_normal((n, k, hw, hw)).astype(np.float32)
        times = {}
        if name == "stem":
            pick = ops.conv2d_algorithm(x.shape, w.shape, 1, p)
            if pick not in ("direct", "implicit"):
                continue
            for algo in ("direct", "implicit"):
                times[algo] = (_median_ms(lambda: ops.conv2d(x, w, None, 1, p, algorithm=algo))
                               + _median_ms(lambda: ops.conv2d_backward(dy, x, w, None, 1, p, needs=(False, True, False),
                                                                        algorithm=algo)))
        else:
            pick = ops.conv2d_dx_path(x.shape, w.shape, 1, p, algorithm="implicit")
            try:
                for path in ("direct", "implicit", "kvec"):
                    nnx._C.set_conv_dx_path(path)
                    if ops.conv2d_dx_path(x.shape, w.shape, 1, p, algorithm="implicit") == path:
                        times[path] = _median_ms(lambda: ops.conv2d_backward(dy, x, w, None, 1, p,
                                                                              needs=(True, False, False),
                                                                              algorithm="implicit"))
            finally:
                nnx._C.set_conv_dx_path("auto")
        best = min(times, key=times.get)
        ratio = times[pick] / times[best]
        out.append(ratio)
        print(f"{c:3d} -> {k:3d} {hw:2d}x{hw:<2d} {r}x{r}  pick {pick:8s} fastest {best:8s} {ratio:.2f}  "
              + "  ".join(f"{a} {t:.3f} ms" for a, t in times.items()), flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("grid", choices=["dx", "dx-heldout", "stem"])
    args = ap.parse_args(argv)
    ratios = sweep(args.grid)
    geo = math.exp(sum(math.log(r) for r in ratios) / len(ratios))
    print(f"{len(ratios)} layers: the pick's time over the fastest's, geometric mean {geo:.4f}, "
          f"{sum(r > 1.05 for r in ratios)} past 1.05, at most {max(ratios):.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
