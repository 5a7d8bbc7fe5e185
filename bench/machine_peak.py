"""Measures this machine's peak fused multiply-add rate per core (float32 and float64) and its memory copy
bandwidth, and writes bench/machine.json, the reference that bench/report.py divides by.

    python bench/machine_peak.py            # needs g++ with -mavx2 -mfma (x86-64)

FMA peak: a tiny C++ program runs `CHAINS` independent accumulator chains of 256-bit FMAs (enough to
cover FMA latency x FMA pipes: Zen3 has 4-cycle latency and 2 pipes, so >= 8 chains; 12 are used, as in
a GEMM micro-kernel) on registers only, timed with a steady clock, once per thread on 1 and on all
cores. The assembly is checked for the expected number of vfmadd instructions in the loop so the chains
were not folded by the compiler. Copy bandwidth: np.copyto between two 400 MB arrays (read + write bytes
counted), median of several runs, plus a STREAM-style triad a = b + s * c.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
CHAINS = 12
ITERS = 200_000_000 // CHAINS

SOURCE = r"""
#include <immintrin.h>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

// Both loops: CHAINS independent accumulators, one FMA each per iteration, multiplier and addend kept in
// registers; the results are summed at the end and printed so nothing is dead code.
__attribute__((noinline)) float run_f32(long iters, float x) {
  __m256 m = _mm256_set1_ps(1.0f - 1e-7f), s = _mm256_set1_ps(x * 1e-7f);
  __m256 acc[CHAINS];
  for (int i = 0; i < CHAINS; ++i) acc[i] = _mm256_set1_ps(x + i);
  for (long it = 0; it < iters; ++it) {
    #pragma GCC unroll 64
    for (int i = 0; i < CHAINS; ++i) acc[i] = _mm256_fmadd_ps(acc[i], m, s);
    __asm__ volatile("" : "+x"(m));  // keep m opaque so the chains are not folded across iterations
  }
  __m256 t = acc[0];
  for (int i = 1; i < CHAINS; ++i) t = _mm256_add_ps(t, acc[i]);
  float out[8]; _mm256_storeu_ps(out, t);
  return out[0] + out[7];
}

__attribute__((noinline)) double run_f64(long iters, double x) {
  __m256d m = _mm256_set1_pd(1.0 - 1e-15), s = _mm256_set1_pd(x * 1e-15);
  __m256d acc[CHAINS];
  for (int i = 0; i < CHAINS; ++i) acc[i] = _mm256_set1_pd(x + i);
  for (long it = 0; it < iters; ++it) {
    #pragma GCC unroll 64
    for (int i = 0; i < CHAINS; ++i) acc[i] = _mm256_fmadd_pd(acc[i], m, s);
    __asm__ volatile("" : "+x"(m));
  }
  __m256d t = acc[0];
  for (int i = 1; i < CHAINS; ++i) t = _mm256_add_pd(t, acc[i]);
  double out[4]; _mm256_storeu_pd(out, t);
  return out[0] + out[3];
}

int main(int argc, char** argv) {
  int threads = std::atoi(argv[1]);
  long iters = std::atol(argv[2]);
  for (int dt = 0; dt < 2; ++dt) {
    double best = 0;
    for (int rep = 0; rep < 5; ++rep) {
      std::vector<std::thread> pool;
      std::vector<double> sink(threads);
      auto t0 = std::chrono::steady_clock::now();
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] { sink[t] = dt == 0 ? run_f32(iters, 1.0f + t) : run_f64(iters, 1.0 + t); });
      for (auto& th : pool) th.join();
      double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      double lanes = dt == 0 ? 8 : 4;
      double gflops = 2.0 * lanes * CHAINS * iters * threads / sec / 1e9;
      if (gflops > best) best = gflops;
      if (sink[0] == 12345.0) std::printf("#");
    }
    std::printf("%s %d %.3f\n", dt == 0 ? "f32" : "f64", threads, best);
  }
  return 0;
}
"""


def fma_peak(threads_list):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "peak.cpp")
        exe = os.path.join(tmp, "peak")
        with open(src, "w") as f:
            f.write(SOURCE)
        cmd = ["g++", "-O2", "-mavx2", "-mfma", f"-DCHAINS={CHAINS}", "-pthread", src, "-o", exe]
        subprocess.run(cmd, check=True)
        asm = subprocess.run(["objdump", "-d", "--no-show-raw-insn", exe], capture_output=True, text=True).stdout
        counts = {}
        for name, pat in [("f32", "vfmadd...ps"), ("f64", "vfmadd...pd")]:
            body = re.search(r"<_Z\d+run_" + name + r"[^>]*>:\n(.*?)\n\n", asm, re.S)
            n = len(re.findall(pat, body.group(1))) if body else 0
            counts[name] = n
            if n < CHAINS:
                raise RuntimeError(f"{name}: expected >= {CHAINS} vfmadd in the loop, found {n} (chains folded?)")
        results = {}
        for t in threads_list:
            out = subprocess.run([exe, str(t), str(ITERS)], capture_output=True, text=True, check=True).stdout
            for line in out.split():
                pass
            for row in out.strip().splitlines():
                dt, th, gf = row.split()
                results[f"{dt}_threads{th}"] = float(gf)
        return results, counts, " ".join(cmd[:-3])


def copy_bandwidth(mb=400, reps=7):
    n = mb * 1_000_000 // 8
    src = np.ones(n)
    dst = np.empty(n)
    np.copyto(dst, src)
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
    copy = 2 * src.nbytes / np.median(times) / 1e9
    c = np.full(n, 2.0)
    tri = []
    for _ in range(reps):
        t0 = time.perf_counter()
        np.multiply(c, 3.0, out=dst)
        np.add(dst, src, out=dst)
        tri.append(time.perf_counter() - t0)
    # NumPy's triad is two passes: reads c + writes dst, then reads dst + src + writes dst.
    triad = 5 * src.nbytes / np.median(tri) / 1e9
    return copy, triad, times


def main() -> int:
    ncores = os.cpu_count() or 1
    threads = sorted({1, ncores})
    fma, counts, cmd = fma_peak(threads)
    copy, triad, times = copy_bandwidth()
    data = {
        "fma_gflops_per_core": fma["f32_threads1"],
        "fma_gflops_per_core_f64": fma["f64_threads1"],
        "copy_gbps": round(copy, 2),
        "raw": {
            "fma_gflops": fma,
            "fma_gflops_per_core_all_threads": {
                "f32": fma[f"f32_threads{ncores}"] / ncores,
                "f64": fma[f"f64_threads{ncores}"] / ncores,
            },
            "fma_chains": CHAINS,
            "vfmadd_in_loop": counts,
            "compile": cmd,
            "copy_gbps_runs": [round(2 * 400e6 / t / 1e9, 2) for t in times],
            "triad_gbps_numpy_two_pass": round(triad, 2),
            "cpus": ncores,
            "cpu_model": _cpu_model(),
        },
    }
    path = os.path.join(HERE, "machine.json")
    with open(path, "w") as f:
        json.dump(data, f, indent=2)
    print(json.dumps(data, indent=2))
    return 0


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    sys.exit(main())
