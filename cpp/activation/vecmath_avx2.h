// AVX2 + FMA vector math for the activation and loss kernels: exp and expm1 on (-inf, 0] for 8 floats or
// 4 doubles, tanh for 4 doubles (the float tanh is activation/tanh_rational.h's, over vec_avx2.h's interface).
// Include only from *_avx2.cpp files (compiled with -mavx2 -mfma).
//
// exp(x) = 2^n e^r with n = round(x / ln2) and r = x - n ln2 (Cody-Waite: ln2 split in a high part that
// makes n * ln2_hi exact and a low correction), |r| <= ln2 / 2. e^r - 1 is its Taylor polynomial
// (degree 7 for float: truncation < 6e-9 relative; degree 12 for double: < 2e-16), so exp = 2^n (1 + p)
// and expm1 = 2^n p + (2^n - 1), the latter keeping full relative accuracy near 0 where 1 + p would
// cancel. 2^n is built in the exponent bits; exp splits it in two factors so that n from the
// underflow side (results rounding to denormals and 0) to the overflow side (results rounding to inf)
// stay representable without special cases.
//
// NaN handling: the clamps are written min(bound, x) / max(bound, x), and AVX's min/max return their
// second operand when the pair is unordered, so a NaN x passes through the clamp and the arithmetic.
#pragma once
#include <immintrin.h>


namespace nnx {
namespace avx2 {

// ---------------- float ----------------

inline __m256 pow2i_f32(__m256 n) {  // 2^n for integral n in [-126, 127]
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23));
}

inline __m256 expm1_poly_f32(__m256 r) {  // e^r - 1 for |r| <= ln2/2
  __m256 q = _mm256_set1_ps(1.f / 5040.f);
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.f / 720.f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.f / 120.f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.f / 24.f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(1.f / 6.f));
  q = _mm256_fmadd_ps(q, r, _mm256_set1_ps(0.5f));
  return _mm256_fmadd_ps(q, _mm256_mul_ps(r, r), r);
}

inline void reduce_ln2_f32(__m256 x, __m256* n, __m256* r) {
  *n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 t = _mm256_fnmadd_ps(*n, _mm256_set1_ps(0.693359375f), x);
  *r = _mm256_fnmadd_ps(*n, _mm256_set1_ps(-2.12194440e-4f), t);
}

// e^x for x <= 89 (or NaN), as exp_f32 below: an argument known not to overflow (sigmoid's -|x|) skips its
// upper clamp.
inline __m256 exp_no_overflow_f32(__m256 x) {
  x = _mm256_max_ps(_mm256_set1_ps(-115.f), x);
  __m256 n, r;
  reduce_ln2_f32(x, &n, &r);
  __m256 p = expm1_poly_f32(r);
  __m256 n1 = _mm256_floor_ps(_mm256_mul_ps(n, _mm256_set1_ps(0.5f)));
  __m256 s1 = pow2i_f32(n1), s2 = pow2i_f32(_mm256_sub_ps(n, n1));
  return _mm256_mul_ps(_mm256_fmadd_ps(p, s1, s1), s2);
}

inline __m256 exp_f32(__m256 x) {
  // Below -115 the result is 0 and above 89 it is inf after rounding; clamping keeps n in range.
  return exp_no_overflow_f32(_mm256_min_ps(_mm256_set1_ps(89.f), x));
}

inline __m256 expm1_nonpos_f32(__m256 x) {  // x <= 0 (or NaN)
  x = _mm256_max_ps(_mm256_set1_ps(-80.f), x);  // expm1(-80) == -1 in float; keeps 2^n normal
  __m256 n, r;
  reduce_ln2_f32(x, &n, &r);
  __m256 p = expm1_poly_f32(r);
  __m256 s = pow2i_f32(n);
  return _mm256_fmadd_ps(s, p, _mm256_sub_ps(s, _mm256_set1_ps(1.f)));
}

// ---------------- double ----------------

inline __m256d pow2i_f64(__m256d n) {  // 2^n for integral n in [-1022, 1023]
  // n + 1.5 * 2^52 holds n in its low mantissa bits; only the low 11 bits of n + 1023 survive the shift.
  __m256i bits = _mm256_castpd_si256(_mm256_add_pd(n, _mm256_set1_pd(6755399441055744.0)));
  return _mm256_castsi256_pd(_mm256_slli_epi64(_mm256_add_epi64(bits, _mm256_set1_epi64x(1023)), 52));
}

inline __m256d expm1_poly_f64(__m256d r) {  // e^r - 1 for |r| <= ln2/2, Taylor to degree 12
  static constexpr double c[] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                                 1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,     1.0 / 120.0,
                                 1.0 / 24.0,        1.0 / 6.0,        0.5};
  __m256d q = _mm256_set1_pd(c[0]);
  for (int i = 1; i < 11; ++i) q = _mm256_fmadd_pd(q, r, _mm256_set1_pd(c[i]));
  return _mm256_fmadd_pd(q, _mm256_mul_pd(r, r), r);
}

inline void reduce_ln2_f64(__m256d x, __m256d* n, __m256d* r) {
  *n = _mm256_round_pd(_mm256_mul_pd(x, _mm256_set1_pd(1.4426950408889634074)),
                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256d t = _mm256_fnmadd_pd(*n, _mm256_set1_pd(6.93147180369123816490e-01), x);
  *r = _mm256_fnmadd_pd(*n, _mm256_set1_pd(1.90821492927058770002e-10), t);
}

inline __m256d exp_no_overflow_f64(__m256d x) {  // x <= 710 (or NaN)
  x = _mm256_max_pd(_mm256_set1_pd(-760.0), x);
  __m256d n, r;
  reduce_ln2_f64(x, &n, &r);
  __m256d p = expm1_poly_f64(r);
  __m256d n1 = _mm256_floor_pd(_mm256_mul_pd(n, _mm256_set1_pd(0.5)));
  __m256d s1 = pow2i_f64(n1), s2 = pow2i_f64(_mm256_sub_pd(n, n1));
  return _mm256_mul_pd(_mm256_fmadd_pd(p, s1, s1), s2);
}

inline __m256d exp_f64(__m256d x) { return exp_no_overflow_f64(_mm256_min_pd(_mm256_set1_pd(710.0), x)); }

inline __m256d expm1_nonpos_f64(__m256d x) {
  x = _mm256_max_pd(_mm256_set1_pd(-700.0), x);
  __m256d n, r;
  reduce_ln2_f64(x, &n, &r);
  __m256d p = expm1_poly_f64(r);
  __m256d s = pow2i_f64(n);
  return _mm256_fmadd_pd(s, p, _mm256_sub_pd(s, _mm256_set1_pd(1.0)));
}

inline __m256d tanh_f64(__m256d x) {
  const __m256d sign = _mm256_set1_pd(-0.0);
  __m256d a = _mm256_andnot_pd(sign, x);
  __m256d m = expm1_nonpos_f64(_mm256_mul_pd(a, _mm256_set1_pd(-2.0)));
  __m256d t = _mm256_div_pd(_mm256_xor_pd(m, sign), _mm256_add_pd(m, _mm256_set1_pd(2.0)));
  return _mm256_or_pd(t, _mm256_and_pd(sign, x));
}

}  // namespace avx2
}  // namespace nnx
