// The vector traits of gemm/ukernel_simd.h on ymm registers: 8 x float, 4 x double. Shared by the GEMM's AVX2
// micro-kernels and the recurrent family's AVX2 step product; include only from *_avx2.cpp files (the types
// live in an ISA-named namespace, so no portable code can link to them).
#pragma once
#include <immintrin.h>

namespace nnx {
namespace avx2 {

struct Avx2Float {
  using T = float;
  using vec = __m256;
  static constexpr int W = 8;
  static vec zero() { return _mm256_setzero_ps(); }
  static vec load(const T* p) { return _mm256_load_ps(p); }
  static vec loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, vec v) { _mm256_storeu_ps(p, v); }
  static void stream(T* p, vec v) { _mm256_stream_ps(p, v); }
  static vec set1(T x) { return _mm256_set1_ps(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
};

struct Avx2Double {
  using T = double;
  using vec = __m256d;
  static constexpr int W = 4;
  static vec zero() { return _mm256_setzero_pd(); }
  static vec load(const T* p) { return _mm256_load_pd(p); }
  static vec loadu(const T* p) { return _mm256_loadu_pd(p); }
  static void storeu(T* p, vec v) { _mm256_storeu_pd(p, v); }
  static void stream(T* p, vec v) { _mm256_stream_pd(p, v); }
  static vec set1(T x) { return _mm256_set1_pd(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_pd(a, b, c); }
  static vec mul(vec a, vec b) { return _mm256_mul_pd(a, b); }
};

}  // namespace avx2
}  // namespace nnx
