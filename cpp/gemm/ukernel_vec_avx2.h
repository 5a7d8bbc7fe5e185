// The vector traits of gemm/ukernel_simd.h on ymm registers: 8 x float, 4 x double. Shared by the GEMM's AVX2
// micro-kernels and the recurrent family's AVX2 step product; include only from *_avx2.cpp files (the types
// live in an ISA-named namespace, so no portable code can link to them).
#pragma once
#include <immintrin.h>

#include <cstdint>

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
  // The first cnt lanes at p (0 < cnt < W), memory past them neither read nor written (loaded as 0): the last
  // columns of an edge tile (ukernel_simd.h).
  static vec load_first(const T* p, int64_t cnt) { return _mm256_maskload_ps(p, first(cnt)); }
  static void store_first(T* p, vec v, int64_t cnt) { _mm256_maskstore_ps(p, first(cnt), v); }
  static __m256i first(int64_t cnt) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cnt)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static vec set1(T x) { return _mm256_set1_ps(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
  static vec add(vec a, vec b) { return _mm256_add_ps(a, b); }
  // Lane 0 of the halving sum: lane l plus lane l + 4, then + 2, then + 1 (gemv_dot.h's pairwise order).
  static T sum_halves(vec v) {
    v = _mm256_add_ps(v, _mm256_permute2f128_ps(v, v, 1));
    v = _mm256_add_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm256_add_ps(v, _mm256_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm256_cvtss_f32(v);
  }
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
  static vec load_first(const T* p, int64_t cnt) { return _mm256_maskload_pd(p, first(cnt)); }
  static void store_first(T* p, vec v, int64_t cnt) { _mm256_maskstore_pd(p, first(cnt), v); }
  static __m256i first(int64_t cnt) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(cnt), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static vec set1(T x) { return _mm256_set1_pd(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_pd(a, b, c); }
  static vec mul(vec a, vec b) { return _mm256_mul_pd(a, b); }
  static vec add(vec a, vec b) { return _mm256_add_pd(a, b); }
  static T sum_halves(vec v) {  // lane l plus lane l + 2, then + 1
    v = _mm256_add_pd(v, _mm256_permute2f128_pd(v, v, 1));
    v = _mm256_add_pd(v, _mm256_permute_pd(v, 0x5));
    return _mm256_cvtsd_f64(v);
  }
};

}  // namespace avx2
}  // namespace nnx
