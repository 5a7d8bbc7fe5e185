// The vector interface of activation/activation_generic.h on AVX-512 registers, float only: 16 lanes, mask
// registers for the comparisons and the ragged tails, and the polynomial exp / expm1 / tanh of
// vecmath_avx2.h widened to zmm (same constants and steps, so each lane computes what an AVX2 lane
// does). Include only from *_avx512.cpp files; the types live in the ISA-named namespace so no portable
// code can link to them.
#pragma once
#include <immintrin.h>

#include <cstdint>

namespace nnx {
namespace avx512 {

inline __m512 pow2i_f32(__m512 n) {  // 2^n for integral n in [-126, 127]
  return _mm512_castsi512_ps(
      _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23));
}

inline __m512 expm1_poly_f32(__m512 r) {  // e^r - 1 for |r| <= ln2/2
  __m512 q = _mm512_set1_ps(1.f / 5040.f);
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.f / 720.f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.f / 120.f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.f / 24.f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(1.f / 6.f));
  q = _mm512_fmadd_ps(q, r, _mm512_set1_ps(0.5f));
  return _mm512_fmadd_ps(q, _mm512_mul_ps(r, r), r);
}

inline void reduce_ln2_f32(__m512 x, __m512* n, __m512* r) {
  *n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 t = _mm512_fnmadd_ps(*n, _mm512_set1_ps(0.693359375f), x);
  *r = _mm512_fnmadd_ps(*n, _mm512_set1_ps(-2.12194440e-4f), t);
}

inline __m512 exp_f32(__m512 x) {
  // Below -115 the result is 0 and above 89 it is inf after rounding; clamping keeps n in range.
  x = _mm512_max_ps(_mm512_set1_ps(-115.f), _mm512_min_ps(_mm512_set1_ps(89.f), x));
  __m512 n, r;
  reduce_ln2_f32(x, &n, &r);
  __m512 p = expm1_poly_f32(r);
  __m512 n1 = _mm512_roundscale_ps(_mm512_mul_ps(n, _mm512_set1_ps(0.5f)), _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 s1 = pow2i_f32(n1), s2 = pow2i_f32(_mm512_sub_ps(n, n1));
  return _mm512_mul_ps(_mm512_fmadd_ps(p, s1, s1), s2);
}

inline __m512 expm1_nonpos_f32(__m512 x) {  // x <= 0 (or NaN)
  x = _mm512_max_ps(_mm512_set1_ps(-80.f), x);  // expm1(-80) == -1 in float; keeps 2^n normal
  __m512 n, r;
  reduce_ln2_f32(x, &n, &r);
  __m512 p = expm1_poly_f32(r);
  __m512 s = pow2i_f32(n);
  return _mm512_fmadd_ps(s, p, _mm512_sub_ps(s, _mm512_set1_ps(1.f)));
}

inline __m512 tanh_f32(__m512 x) {
  // tanh|x| = -m / (m + 2) with m = expm1(-2|x|) in [-1, 0]: bounded, and accurate near 0.
  const __m512 sign = _mm512_set1_ps(-0.f);
  __m512 a = _mm512_andnot_ps(sign, x);
  __m512 m = expm1_nonpos_f32(_mm512_mul_ps(a, _mm512_set1_ps(-2.f)));
  __m512 t = _mm512_div_ps(_mm512_xor_ps(m, sign), _mm512_add_ps(m, _mm512_set1_ps(2.f)));
  return _mm512_or_ps(t, _mm512_and_ps(sign, x));
}

struct VecF32Avx512 {
  using T = float;
  using R = __m512;
  using M = __mmask16;
  static constexpr int W = 16;
  static R load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, R v) { _mm512_storeu_ps(p, v); }
  static M lanes_below(int64_t cnt) { return static_cast<M>((1u << cnt) - 1u); }  // cnt < 16
  static R load_partial(const T* p, int64_t cnt, T pad) {
    return _mm512_mask_loadu_ps(_mm512_set1_ps(pad), lanes_below(cnt), p);
  }
  static void store_partial(T* p, R v, int64_t cnt) { _mm512_mask_storeu_ps(p, lanes_below(cnt), v); }
  static R set1(T v) { return _mm512_set1_ps(v); }
  static R zero() { return _mm512_setzero_ps(); }
  static R add(R a, R b) { return _mm512_add_ps(a, b); }
  static R sub(R a, R b) { return _mm512_sub_ps(a, b); }
  static R mul(R a, R b) { return _mm512_mul_ps(a, b); }
  static R fmadd(R a, R b, R c) { return _mm512_fmadd_ps(a, b, c); }
  static R div(R a, R b) { return _mm512_div_ps(a, b); }
  static R max(R a, R b) { return _mm512_max_ps(a, b); }
  static R min(R a, R b) { return _mm512_min_ps(a, b); }
  static R abs(R a) { return _mm512_andnot_ps(_mm512_set1_ps(-0.f), a); }
  static M gt(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static R select(M m, R a, R b) { return _mm512_mask_blend_ps(m, b, a); }
  static R exp(R a) { return exp_f32(a); }
  static R expm1_nonpos(R a) { return expm1_nonpos_f32(a); }
  static R tanh(R a) { return tanh_f32(a); }
};

}  // namespace avx512
}  // namespace nnx
