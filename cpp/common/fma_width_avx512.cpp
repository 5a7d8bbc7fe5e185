// The AVX-512 half of wide_vector_fma (cpu.h): how many times the 256-bit rate 512-bit multiply-adds run
// at on this core. Compiled for AVX-512; called only when the CPU has it (cpu.cpp).
#include <immintrin.h>

#include <algorithm>
#include <chrono>

namespace nnx {

namespace {

// 12 independent chains (more than latency x pipes on any current core), the multiplier kept opaque so
// the compiler cannot fold iterations; the chains' sum is returned so nothing is dead.
constexpr int kChains = 12;

template <class V, V (*Fma)(V, V, V), V (*Set1)(float), V (*Add)(V, V)>
__attribute__((noinline)) V fma_chains(long iters) {
  V m = Set1(0.999999f), s = Set1(1e-7f), acc[kChains];
  for (int i = 0; i < kChains; ++i) acc[i] = Set1(1.0f + i);
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < kChains; ++i) acc[i] = Fma(acc[i], m, s);
    __asm__ volatile("" : "+v"(m));
  }
  V t = acc[0];
  for (int i = 1; i < kChains; ++i) t = Add(t, acc[i]);
  return t;
}

__m256 fma256(__m256 a, __m256 b, __m256 c) { return _mm256_fmadd_ps(a, b, c); }
__m256 set256(float x) { return _mm256_set1_ps(x); }
__m256 add256(__m256 a, __m256 b) { return _mm256_add_ps(a, b); }
__m512 fma512(__m512 a, __m512 b, __m512 c) { return _mm512_fmadd_ps(a, b, c); }
__m512 set512(float x) { return _mm512_set1_ps(x); }
__m512 add512(__m512 a, __m512 b) { return _mm512_add_ps(a, b); }

template <class F>
double seconds(F f) {
  const auto t0 = std::chrono::steady_clock::now();
  f();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

// Flops per second of 512-bit over 256-bit multiply-adds: about 2 with two full-width FMA pipes, about 1
// where a 512-bit operation issues as two 256-bit halves (Zen 4). Each kind timed as the fastest of 7 runs
// of 20k iterations (about 0.1 ms each), alternating, so a preemption or a frequency step spoils one run.
double fma512_rate_ratio_avx512() {
  volatile float sink = 0;
  constexpr long kIters = 20000;
  double t256 = 1e30, t512 = 1e30;
  for (int round = 0; round < 7; ++round) {
    t256 = std::min(t256, seconds([&] { sink = sink + fma_chains<__m256, fma256, set256, add256>(kIters)[0]; }));
    t512 = std::min(t512, seconds([&] { sink = sink + fma_chains<__m512, fma512, set512, add512>(kIters)[0]; }));
  }
  return 2.0 * t256 / t512;
}

}  // namespace nnx
