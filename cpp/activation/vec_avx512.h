// The vector interface of activation/activation_generic.h on AVX-512 registers: 16 x float (VecF32Avx512) and 8 x
// double (VecF64Avx512), with exp / expm1 / tanh by the same reduction and polynomials as vecmath_avx2.h (the float
// tanh: activation/tanh_rational.h, one template for both), operation for operation, and the same scaling by 2^n (one vscalefps where
// AVX2 builds the power in the exponent field: an exact power either way, rounded once into the result), so a
// value gets the same bits from either ISA's kernels.
// Ragged tails use mask registers. Include only from *_avx512.cpp files; the types live in the ISA-named namespace
// so no portable code can link to them.
#pragma once
#include <immintrin.h>

#include <cstdint>
#include <type_traits>

#include "activation/tanh_rational.h"


namespace nnx {
namespace avx512 {

// ---------------- float ----------------

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
  // n = round(x / ln2) to nearest even by adding and subtracting 1.5 * 2^23, which for |x / ln2| < 2^22 leaves
  // exactly the vroundscaleps (AVX2: vroundps) result, -inf and NaN included. Two operations on either vector
  // port where vroundscaleps is two on port 0 alone, the port sigmoid's division holds.
  const __m512 shifter = _mm512_set1_ps(12582912.f);
  *n = _mm512_sub_ps(_mm512_add_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), shifter), shifter);
  __m512 t = _mm512_fnmadd_ps(*n, _mm512_set1_ps(0.693359375f), x);
  *r = _mm512_fnmadd_ps(*n, _mm512_set1_ps(-2.12194440e-4f), t);
}

// Below this the float result is 0: e^-104.5 = 2^-150.8, under half the least subnormal (2^-149), whatever the
// polynomial's last bit.
constexpr float kExpZeroBelowF32 = -104.5f;

// e^x for x <= 89 (or NaN); exp_f32 below clamps larger x first. No lower clamp: the lanes it would have
// kept finite (x < -115, -inf) are zeroed by the mask below whatever n and r become.
inline __m512 exp_no_overflow_f32(__m512 x) {
  __m512 n, r;
  reduce_ln2_f32(x, &n, &r);
  // (1 + p) 2^n in one instruction. The AVX2 twin scales by two powers of two, 2^(n/2) inside its fused
  // multiply-add and the rest after, because one power cannot reach the whole range; both round (1 + p)
  // once and its product with 2^n once (the subnormal results), so the bits are the same.
  // Lanes whose result is 0 are zeroed by the mask instead of scaled: a vscalefps that underflows takes a
  // microcode assist on Intel's cores (about 60 ns a vector on the Xeon, 2^-140 or 2^-166 alike), and the
  // reductions pad ragged rows with -inf, so every row of 10 classes paid one (softmax, log-softmax and
  // cross-entropy of (65536, 10): 100 ns a row, 13 at 16 classes). NaN lanes (unordered: not less) stay.
  const __mmask16 live = _mm512_cmp_ps_mask(x, _mm512_set1_ps(kExpZeroBelowF32), _CMP_NLT_UQ);
  return _mm512_maskz_scalef_ps(live, _mm512_add_ps(expm1_poly_f32(r), _mm512_set1_ps(1.f)), n);
}

inline __m512 exp_f32(__m512 x) {
  // min with the bound first: a NaN x (unordered pair) comes out as the second operand, x.
  return exp_no_overflow_f32(_mm512_min_ps(_mm512_set1_ps(89.f), x));
}

inline __m512 expm1_nonpos_f32(__m512 x) {  // x <= 0 (or NaN)
  x = _mm512_max_ps(_mm512_set1_ps(-80.f), x);
  __m512 n, r;
  reduce_ln2_f32(x, &n, &r);
  __m512 p = expm1_poly_f32(r);
  __m512 s = _mm512_scalef_ps(_mm512_set1_ps(1.f), n);  // 2^n, exactly the AVX2 twin's exponent-field power
  return _mm512_fmadd_ps(s, p, _mm512_sub_ps(s, _mm512_set1_ps(1.f)));
}

// ---------------- double ----------------

inline __m512d expm1_poly_f64(__m512d r) {  // e^r - 1 for |r| <= ln2/2, Taylor to degree 12
  static constexpr double c[] = {1.0 / 479001600.0, 1.0 / 39916800.0, 1.0 / 3628800.0, 1.0 / 362880.0,
                                 1.0 / 40320.0,     1.0 / 5040.0,     1.0 / 720.0,     1.0 / 120.0,
                                 1.0 / 24.0,        1.0 / 6.0,        0.5};
  __m512d q = _mm512_set1_pd(c[0]);
  for (int i = 1; i < 11; ++i) q = _mm512_fmadd_pd(q, r, _mm512_set1_pd(c[i]));
  return _mm512_fmadd_pd(q, _mm512_mul_pd(r, r), r);
}

inline void reduce_ln2_f64(__m512d x, __m512d* n, __m512d* r) {
  *n = _mm512_roundscale_pd(_mm512_mul_pd(x, _mm512_set1_pd(1.4426950408889634074)),
                            _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512d t = _mm512_fnmadd_pd(*n, _mm512_set1_pd(6.93147180369123816490e-01), x);
  *r = _mm512_fnmadd_pd(*n, _mm512_set1_pd(1.90821492927058770002e-10), t);
}

// e^-745.5 = 2^-1075.5, under half the least subnormal double (2^-1074): the result is 0.
constexpr double kExpZeroBelowF64 = -745.5;

inline __m512d exp_no_overflow_f64(__m512d x) {  // x <= 710 (or NaN), as exp_no_overflow_f32
  __m512d n, r;
  reduce_ln2_f64(x, &n, &r);
  const __mmask8 live = _mm512_cmp_pd_mask(x, _mm512_set1_pd(kExpZeroBelowF64), _CMP_NLT_UQ);  // as exp_f32
  return _mm512_maskz_scalef_pd(live, _mm512_add_pd(expm1_poly_f64(r), _mm512_set1_pd(1.0)), n);
}

inline __m512d exp_f64(__m512d x) { return exp_no_overflow_f64(_mm512_min_pd(_mm512_set1_pd(710.0), x)); }

inline __m512d expm1_nonpos_f64(__m512d x) {
  x = _mm512_max_pd(_mm512_set1_pd(-700.0), x);
  __m512d n, r;
  reduce_ln2_f64(x, &n, &r);
  __m512d p = expm1_poly_f64(r);
  __m512d s = _mm512_scalef_pd(_mm512_set1_pd(1.0), n);
  return _mm512_fmadd_pd(s, p, _mm512_sub_pd(s, _mm512_set1_pd(1.0)));
}

inline __m512d tanh_f64(__m512d x) {
  const __m512d sign = _mm512_set1_pd(-0.0);
  __m512d a = _mm512_andnot_pd(sign, x);
  __m512d m = expm1_nonpos_f64(_mm512_mul_pd(a, _mm512_set1_pd(-2.0)));
  __m512d t = _mm512_div_pd(_mm512_xor_pd(m, sign), _mm512_add_pd(m, _mm512_set1_pd(2.0)));
  return _mm512_or_pd(t, _mm512_and_pd(sign, x));
}

// ---------------- the vector interface ----------------

struct VecF32Avx512 {
  using T = float;
  using R = __m512;
  using M = __mmask16;
  static constexpr int W = 16;
  static __mmask16 lanes_below(int64_t cnt) { return static_cast<__mmask16>((1u << cnt) - 1u); }  // cnt < 16
  static R load(const T* p) { return _mm512_loadu_ps(p); }
  static void store(T* p, R v) { _mm512_storeu_ps(p, v); }
  // Past the caches (non-temporal), p aligned to a whole vector; stream_fence() orders such stores before later ones.
  static void stream(T* p, R v) { _mm512_stream_ps(p, v); }
  static void stream_fence() { _mm_sfence(); }
  static constexpr bool kStreams = true;
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
  static R neg_abs(R a) { return _mm512_or_ps(_mm512_set1_ps(-0.f), a); }
  static M gt(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M ge(R a, R b) { return _mm512_cmp_ps_mask(a, b, _CMP_GE_OQ); }
  static R select(M m, R a, R b) { return _mm512_mask_blend_ps(m, b, a); }
  static R exp(R a) { return exp_f32(a); }
  static R exp_nonpos(R a) { return exp_no_overflow_f32(a); }
  static R expm1_nonpos(R a) { return expm1_nonpos_f32(a); }
  static R tanh(R a) { return tanh_rational<VecF32Avx512>(a); }
  static T hsum(R a) {  // the AVX2 order: halves added, then that 8-lane vector reduced as VecF32Avx2 does
    __m256 h = _mm256_add_ps(_mm512_castps512_ps256(a), _mm512_extractf32x8_ps(a, 1));
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
  }
  static T hmax(R a) { return _mm512_reduce_max_ps(a); }
};

struct VecF64Avx512 {
  using T = double;
  using R = __m512d;
  using M = __mmask8;
  static constexpr int W = 8;
  static __mmask8 lanes_below(int64_t cnt) { return static_cast<__mmask8>((1u << cnt) - 1u); }  // cnt < 8
  static R load(const T* p) { return _mm512_loadu_pd(p); }
  static void store(T* p, R v) { _mm512_storeu_pd(p, v); }
  static void stream(T* p, R v) { _mm512_stream_pd(p, v); }
  static void stream_fence() { _mm_sfence(); }
  static constexpr bool kStreams = true;
  static R load_partial(const T* p, int64_t cnt, T pad) {
    return _mm512_mask_loadu_pd(_mm512_set1_pd(pad), lanes_below(cnt), p);
  }
  static void store_partial(T* p, R v, int64_t cnt) { _mm512_mask_storeu_pd(p, lanes_below(cnt), v); }
  static R set1(T v) { return _mm512_set1_pd(v); }
  static R zero() { return _mm512_setzero_pd(); }
  static R add(R a, R b) { return _mm512_add_pd(a, b); }
  static R sub(R a, R b) { return _mm512_sub_pd(a, b); }
  static R mul(R a, R b) { return _mm512_mul_pd(a, b); }
  static R fmadd(R a, R b, R c) { return _mm512_fmadd_pd(a, b, c); }
  static R div(R a, R b) { return _mm512_div_pd(a, b); }
  static R max(R a, R b) { return _mm512_max_pd(a, b); }
  static R min(R a, R b) { return _mm512_min_pd(a, b); }
  static R abs(R a) { return _mm512_andnot_pd(_mm512_set1_pd(-0.0), a); }
  static R neg_abs(R a) { return _mm512_or_pd(_mm512_set1_pd(-0.0), a); }
  static M gt(R a, R b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
  static M ge(R a, R b) { return _mm512_cmp_pd_mask(a, b, _CMP_GE_OQ); }
  static R select(M m, R a, R b) { return _mm512_mask_blend_pd(m, b, a); }
  static R exp(R a) { return exp_f64(a); }
  static R exp_nonpos(R a) { return exp_no_overflow_f64(a); }
  static R expm1_nonpos(R a) { return expm1_nonpos_f64(a); }
  static R tanh(R a) { return tanh_f64(a); }
  static T hsum(R a) {
    __m256d h = _mm256_add_pd(_mm512_castpd512_pd256(a), _mm512_extractf64x4_pd(a, 1));
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(h), _mm256_extractf128_pd(h, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
  }
  static T hmax(R a) { return _mm512_reduce_max_pd(a); }
};

// The vector type of scalar T (float or double): the type each family's fill instantiates its generic kernels on.
template <class T>
using VecOf = typename std::conditional<std::is_same<T, float>::value, VecF32Avx512, VecF64Avx512>::type;

}  // namespace avx512
}  // namespace nnx
