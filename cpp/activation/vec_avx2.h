// The vector interface of act/activation_generic.h on AVX2 + FMA registers: 8 x float (VecF32Avx2) and 4 x double
// (VecF64Avx2), with the polynomial exp / expm1 (and double tanh) of vecmath_avx2.h and the float tanh of
// tanh_rational.h. Shared by the families whose element-wise kernels are written against that interface
// (activations, normalization, recurrent gates). Include only from *_avx2.cpp files; the types live in the
// ISA-named namespace so no portable code can link to them.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "activation/tanh_rational.h"
#include "activation/vecmath_avx2.h"

namespace nnx {
namespace avx2 {

struct VecF32Avx2 {
  using T = float;
  using R = __m256;
  using M = __m256;
  static constexpr int W = 8;
  static R load(const T* p) { return _mm256_loadu_ps(p); }
  static void store(T* p, R v) { _mm256_storeu_ps(p, v); }
  // Past the caches (non-temporal), p aligned to a whole vector; stream_fence() orders such stores before later ones.
  static void stream(T* p, R v) { _mm256_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }
  static constexpr bool kStreams = true;
  static __m256i lanes_below(int64_t cnt) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cnt)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static R load_partial(const T* p, int64_t cnt, T pad) {
    const __m256i m = lanes_below(cnt);
    return _mm256_blendv_ps(_mm256_set1_ps(pad), _mm256_maskload_ps(p, m), _mm256_castsi256_ps(m));
  }
  static void store_partial(T* p, R v, int64_t cnt) { _mm256_maskstore_ps(p, lanes_below(cnt), v); }
  static R set1(T v) { return _mm256_set1_ps(v); }
  static R zero() { return _mm256_setzero_ps(); }
  static R add(R a, R b) { return _mm256_add_ps(a, b); }
  static R sub(R a, R b) { return _mm256_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm256_mul_ps(a, b); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_ps(a, b, c); }
  static R div(R a, R b) { return _mm256_div_ps(a, b); }
  static R max(R a, R b) { return _mm256_max_ps(a, b); }
  static R min(R a, R b) { return _mm256_min_ps(a, b); }
  static R abs(R a) { return _mm256_andnot_ps(_mm256_set1_ps(-0.f), a); }
  static R neg_abs(R a) { return _mm256_or_ps(_mm256_set1_ps(-0.f), a); }
  static M gt(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
  static M ge(R a, R b) { return _mm256_cmp_ps(a, b, _CMP_GE_OQ); }
  static R select(M m, R a, R b) { return _mm256_blendv_ps(b, a, m); }
  static R exp(R a) { return exp_f32(a); }
  static R exp_nonpos(R a) { return exp_no_overflow_f32(a); }
  static R expm1_nonpos(R a) { return expm1_nonpos_f32(a); }
  static R tanh(R a) { return tanh_rational<VecF32Avx2>(a); }
  static T hsum(R a) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static T hmax(R a) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
};

struct VecF64Avx2 {
  using T = double;
  using R = __m256d;
  using M = __m256d;
  static constexpr int W = 4;
  static R load(const T* p) { return _mm256_loadu_pd(p); }
  static void store(T* p, R v) { _mm256_storeu_pd(p, v); }
  static void stream(T* p, R v) { _mm256_stream_pd(p, v); }
  static void stream_fence() { _mm_sfence(); }
  static constexpr bool kStreams = true;
  static __m256i lanes_below(int64_t cnt) {
    return _mm256_cmpgt_epi64(_mm256_set1_epi64x(cnt), _mm256_setr_epi64x(0, 1, 2, 3));
  }
  static R load_partial(const T* p, int64_t cnt, T pad) {
    const __m256i m = lanes_below(cnt);
    return _mm256_blendv_pd(_mm256_set1_pd(pad), _mm256_maskload_pd(p, m), _mm256_castsi256_pd(m));
  }
  static void store_partial(T* p, R v, int64_t cnt) { _mm256_maskstore_pd(p, lanes_below(cnt), v); }
  static R set1(T v) { return _mm256_set1_pd(v); }
  static R zero() { return _mm256_setzero_pd(); }
  static R add(R a, R b) { return _mm256_add_pd(a, b); }
  static R sub(R a, R b) { return _mm256_sub_pd(a, b); }
  static R mul(R a, R b) { return _mm256_mul_pd(a, b); }
  static R fmadd(R a, R b, R c) { return _mm256_fmadd_pd(a, b, c); }
  static R div(R a, R b) { return _mm256_div_pd(a, b); }
  static R max(R a, R b) { return _mm256_max_pd(a, b); }
  static R min(R a, R b) { return _mm256_min_pd(a, b); }
  static R abs(R a) { return _mm256_andnot_pd(_mm256_set1_pd(-0.0), a); }
  static R neg_abs(R a) { return _mm256_or_pd(_mm256_set1_pd(-0.0), a); }
  static M gt(R a, R b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
  static M ge(R a, R b) { return _mm256_cmp_pd(a, b, _CMP_GE_OQ); }
  static R select(M m, R a, R b) { return _mm256_blendv_pd(b, a, m); }
  static R exp(R a) { return exp_f64(a); }
  static R exp_nonpos(R a) { return exp_no_overflow_f64(a); }
  static R expm1_nonpos(R a) { return expm1_nonpos_f64(a); }
  static R tanh(R a) { return tanh_f64(a); }
  static T hsum(R a) {
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  static T hmax(R a) {
    __m128d s = _mm_max_pd(_mm256_castpd256_pd128(a), _mm256_extractf128_pd(a, 1));
    return _mm_cvtsd_f64(_mm_max_sd(s, _mm_unpackhi_pd(s, s)));
  }
};

// The vector type of scalar T (float or double): the type each family's fill instantiates its generic kernels on.
template <class T>
using VecOf = typename std::conditional<std::is_same<T, float>::value, VecF32Avx2, VecF64Avx2>::type;

}  // namespace avx2
}  // namespace nnx
