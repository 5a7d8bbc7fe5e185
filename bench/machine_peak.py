"""Measures this machine's peak fused multiply-add rate per core (float32 and float64) and its memory copy
bandwidth, and writes bench/machine.json, the reference that bench/report.py divides by.

    python bench/machine_peak.py            # needs g++ with -mavx2 -mfma (x86-64)

FMA peak: a tiny C++ program runs `CHAINS` independent accumulator chains of 256-bit FMAs (enough to
cover FMA latency x FMA pipes: Zen3 has 4-cycle latency and 2 pipes, so >= 8 chains; 12 are used, as in
a GEMM micro-kernel) on registers only, timed with a steady clock, once per thread on 1 and on all
cores; the rate per core is taken from each thread's CPU time (so other processes on a shared machine
do not lower it) and the wall-clock total is kept beside it. On a CPU with AVX-512 the same program is also
built with 512-bit vectors, and the peak is the faster of the two: Zen 4 issues a 512-bit FMA as two
256-bit halves (the same peak), Intel's server cores have two full-width pipes (twice the 256-bit rate,
less a lower clock). The assembly is checked for the expected number of vfmadd instructions in the loop so the chains
were not folded by the compiler. Copy bandwidth: np.copyto between two 400 MB arrays (read + write bytes
counted), median of several runs timed by CPU time, plus a STREAM-style triad a = b + s * c.
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
#include <ctime>
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
    // wall: all threads together over elapsed time; cpu: each thread's own rate over its CPU time
    // (not inflated when other processes share the cores), averaged over the threads.
    double best_wall = 0, best_cpu = 0;
    const double lanes = dt == 0 ? 8 : 4;
    const double flops = 2.0 * lanes * CHAINS * iters;
    for (int rep = 0; rep < 7; ++rep) {
      std::vector<std::thread> pool;
      std::vector<double> sink(threads), cpu(threads);
      auto t0 = std::chrono::steady_clock::now();
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          timespec c0, c1;
          clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
          sink[t] = dt == 0 ? run_f32(iters, 1.0f + t) : run_f64(iters, 1.0 + t);
          clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
          cpu[t] = (c1.tv_sec - c0.tv_sec) + 1e-9 * (c1.tv_nsec - c0.tv_nsec);
        });
      for (auto& th : pool) th.join();
      double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      double wall = flops * threads / sec / 1e9, per_cpu = 0;
      for (int t = 0; t < threads; ++t) per_cpu += flops / cpu[t] / 1e9 / threads;
      if (wall > best_wall) best_wall = wall;
      if (per_cpu > best_cpu) best_cpu = per_cpu;
      if (sink[0] == 12345.0) std::printf("#");
    }
    std::printf("%s %d %.3f %.3f\n", dt == 0 ? "f32" : "f64", threads, best_wall, best_cpu);
  }
  return 0;
}
"""


def _zmm_source() -> str:
    """SOURCE with 512-bit vectors (16 floats, 8 doubles) in place of 256-bit ones."""
    s = SOURCE
    for a, b in [("__m256d", "__m512d"), ("__m256 ", "__m512 "), ("_mm256_", "_mm512_"),
                 ("float out[8]", "float out[16]"), ("out[0] + out[7]", "out[0] + out[15]"),
                 ("double out[4]", "double out[8]"), ("out[0] + out[3]", "out[0] + out[7]"),
                 ("dt == 0 ? 8 : 4", "dt == 0 ? 16 : 8")]:
        assert a in s, a
        s = s.replace(a, b)
    return s


def _has_avx512f() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            return any(line.startswith("flags") and " avx512f" in line for line in f)
    except OSError:
        return False


def fma_peak(threads_list, zmm=False):
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "peak.cpp")
        exe = os.path.join(tmp, "peak")
        with open(src, "w") as f:
            f.write(_zmm_source() if zmm else SOURCE)
        isa = ["-mavx512f"] if zmm else []
        cmd = ["g++", "-O2", "-mavx2", "-mfma", *isa, f"-DCHAINS={CHAINS}", "-pthread", src, "-o", exe]
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
            for row in out.strip().splitlines():
                dt, th, wall, cpu = row.split()
                results[f"{dt}_threads{th}_wall"] = float(wall)
                results[f"{dt}_threads{th}_per_core_cpu_time"] = float(cpu)
        return results, counts, " ".join(cmd[:-3])


def copy_bandwidth(mb=400, reps=7):
    # Timed with this thread's CPU time as well as wall time: on a shared machine the wall time also
    # counts the time other processes held the core.
    n = mb * 1_000_000 // 8
    src = np.ones(n)
    dst = np.empty(n)
    np.copyto(dst, src)
    times, cpu_times = [], []
    for _ in range(reps):
        t0, c0 = time.perf_counter(), time.thread_time()
        np.copyto(dst, src)
        times.append(time.perf_counter() - t0)
        cpu_times.append(time.thread_time() - c0)
    copy = 2 * src.nbytes / np.median(cpu_times) / 1e9
    c = np.full(n, 2.0)
    tri = []
    for _ in range(reps):
        t0 = time.thread_time()
        np.multiply(c, 3.0, out=dst)
        np.add(dst, src, out=dst)
        tri.append(time.thread_time() - t0)
    # NumPy's triad is two passes: reads c + writes dst, then reads dst + src + writes dst.
    triad = 5 * src.nbytes / np.median(tri) / 1e9
    return copy, triad, times, cpu_times


def main() -> int:
    ncores = os.cpu_count() or 1
    threads = sorted({1, ncores})
    fma, counts, cmd = fma_peak(threads)
    widths = {"256": fma}
    if _has_avx512f():
        widths["512"] = fma_peak(threads, zmm=True)[0]
    width = max(widths, key=lambda w: widths[w]["f32_threads1_per_core_cpu_time"])
    best = widths[width]
    copy, triad, times, cpu_times = copy_bandwidth()
    data = {
        "fma_gflops_per_core": best["f32_threads1_per_core_cpu_time"],
        "fma_gflops_per_core_f64": best["f64_threads1_per_core_cpu_time"],
        "fma_vector_bits": int(width),
        "copy_gbps": round(copy, 2),
        "raw": {
            "fma_gflops": best,
            "fma_gflops_by_vector_bits": widths,
            "fma_gflops_per_core_all_threads_wall": {
                "f32": best[f"f32_threads{ncores}_wall"] / ncores,
                "f64": best[f"f64_threads{ncores}_wall"] / ncores,
            },
            "load_average": os.getloadavg(),
            "fma_chains": CHAINS,
            "vfmadd_in_loop": counts,
            "compile": cmd,
            "copy_gbps_runs_cpu_time": [round(2 * 400e6 / t / 1e9, 2) for t in cpu_times],
            "copy_gbps_runs_wall": [round(2 * 400e6 / t / 1e9, 2) for t in times],
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
