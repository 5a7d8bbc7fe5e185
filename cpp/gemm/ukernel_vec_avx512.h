// The vector traits of gemm/ukernel_simd.h on zmm registers: 16 x float, 8 x double. Shared by the GEMM's
// AVX-512 micro-kernels and the recurrent family's AVX-512 step product; include only from *_avx512.cpp
// files (the types live in an ISA-named namespace, so no portable code can link to them).
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace nnx {
namespace avx512 {

struct Avx512Float {
  using T = float;
  using vec = __m512;
  static constexpr int W = 16;
  static vec zero() { return _mm512_setzero_ps(); }
  static vec load(const T* p) { return _mm512_load_ps(p); }
  static vec loadu(const T* p) { return _mm512_loadu_ps(p); }
  static void storeu(T* p, vec v) { _mm512_storeu_ps(p, v); }
  static void stream(T* p, vec v) { _mm512_stream_ps(p, v); }
  // The first cnt lanes at p (0 < cnt < W), memory past them neither read nor written (loaded as 0): the last
  // columns of an edge tile (ukernel_simd.h).
  static vec load_first(const T* p, int64_t cnt) { return _mm512_maskz_loadu_ps(first(cnt), p); }
  static void store_first(T* p, vec v, int64_t cnt) { _mm512_mask_storeu_ps(p, first(cnt), v); }
  static __mmask16 first(int64_t cnt) { return static_cast<__mmask16>((1u << cnt) - 1); }
  static vec set1(T x) { return _mm512_set1_ps(x); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
  static vec mul(vec a, vec b) { return _mm512_mul_ps(a, b); }
  static vec add(vec a, vec b) { return _mm512_add_ps(a, b); }
  // Lane 0 of the halving sum: lane l plus lane l + 8, then + 4, + 2, + 1 (gemv_dot.h's pairwise order).
  static T sum_halves(vec v) {
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_shuffle_f32x4(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_ps(v, _mm512_permute_ps(v, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm512_cvtss_f32(v);
  }
};

struct Avx512Double {
  using T = double;
  using vec = __m512d;
  static constexpr int W = 8;
  static vec zero() { return _mm512_setzero_pd(); }
  static vec load(const T* p) { return _mm512_load_pd(p); }
  static vec loadu(const T* p) { return _mm512_loadu_pd(p); }
  static void storeu(T* p, vec v) { _mm512_storeu_pd(p, v); }
  static void stream(T* p, vec v) { _mm512_stream_pd(p, v); }
  static vec load_first(const T* p, int64_t cnt) { return _mm512_maskz_loadu_pd(first(cnt), p); }
  static void store_first(T* p, vec v, int64_t cnt) { _mm512_mask_storeu_pd(p, first(cnt), v); }
  static __mmask8 first(int64_t cnt) { return static_cast<__mmask8>((1u << cnt) - 1); }
  static vec set1(T x) { return _mm512_set1_pd(x); }
  static vec fma(vec a, vec b, vec c) { return _mm512_fmadd_pd(a, b, c); }
  static vec mul(vec a, vec b) { return _mm512_mul_pd(a, b); }
  static vec add(vec a, vec b) { return _mm512_add_pd(a, b); }
  static T sum_halves(vec v) {  // lane l plus lane l + 4, then + 2, + 1
    v = _mm512_add_pd(v, _mm512_shuffle_f64x2(v, v, _MM_SHUFFLE(1, 0, 3, 2)));
    v = _mm512_add_pd(v, _mm512_shuffle_f64x2(v, v, _MM_SHUFFLE(2, 3, 0, 1)));
    v = _mm512_add_pd(v, _mm512_permute_pd(v, 0x55));
    return _mm512_cvtsd_f64(v);
  }
};

}  // namespace avx512
}  // namespace nnx
