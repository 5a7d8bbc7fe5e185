// AVX-512 loss micro-kernels: the binary cross-entropy with logits sum, 16 floats / 8 doubles a step, with the
// AVX2 kernel's bits (loss_ukernels_avx2.cpp): the same formula lane by lane (the exponential of vec_avx512.h,
// whose bits are the AVX2 one's, and the same log1p), and the same sums in the same order. The AVX2 float sum
// keeps two accumulators of 4 doubles, the terms 8s .. 8s + 3 of step s in the first and 8s + 4 .. 8s + 7 in
// the second; here the two are the halves of one zmm, and a 16-float step adds its two 8-term halves one after
// the other, as two AVX2 steps would. The double sum's one accumulator of 4 takes a step's two halves likewise.
// Where the AVX2 kernel was bound by its arithmetic (1.1 ns an element in cache, 30% of copy bandwidth from
// memory), twice the lanes per instruction. The mean-squared-error sum stays AVX2's (bound by memory).
#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "activation/vec_avx512.h"
#include "common/stream_store.h"
#include "loss/loss_ukernels.h"

namespace nnx {
namespace {

// log1p(u) for u = exp(-|z|) in [0, 1], as loss_ukernels_avx2.cpp's log1p_unit_f32 / _f64 (its comment has the
// method): atanh's series to s^8 for float, s^20 for double, over the vector traits V of vec_avx512.h.
template <class V>
inline typename V::R log1p_unit(typename V::R u) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int kTop = sizeof(T) == 4 ? 9 : 21;  // the series' last odd power + 1
  const auto big = V::gt(u, V::set1(T(0.41421356237309505)));
  const R num = V::select(big, V::sub(u, V::set1(T(1))), u);
  const R den = V::add(u, V::select(big, V::set1(T(3)), V::set1(T(2))));
  const R s = V::div(num, den);
  const R z = V::mul(s, s);
  R q = V::set1(T(1) / T(kTop));
  for (int k = kTop - 2; k >= 3; k -= 2) q = V::fmadd(q, z, V::set1(T(1) / T(k)));
  const R two_s = V::add(s, s);
  const R r = V::fmadd(V::mul(two_s, z), q, two_s);
  return V::add(r, V::select(big, V::set1(T(0.69314718055994530942)), V::zero()));
}

// max(z, 0) - z t + log1p(exp(-|z|)), lane by lane; max(z, 0) - z t rounded once, as AVX2's fnmadd rounds it.
template <class V>
inline typename V::R bce_terms(typename V::R zv, typename V::R tv) {
  const typename V::R u = V::exp(V::neg_abs(zv));
  return V::add(V::fmadd(V::sub(V::zero(), zv), tv, V::max(zv, V::zero())), log1p_unit<V>(u));
}

// The AVX2 kernels' final reduction: the 4 lanes' sum as (l0 + l2) + (l1 + l3).
inline double hsum4(__m256d v) {
  const __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}

constexpr int64_t kPrefetchFloats = kPrefetchAheadBytes / static_cast<int64_t>(sizeof(float));
constexpr int64_t kPrefetchDoubles = kPrefetchAheadBytes / static_cast<int64_t>(sizeof(double));

double bce_sum_avx512_f32(const float* z, const float* t, int64_t n) {
  __m512d acc = _mm512_setzero_pd();  // [AVX2's a0 | a1]
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    // A line of z and of t a step: 16 floats are one line.
    __builtin_prefetch(z + i + kPrefetchFloats, 0, 2);
    __builtin_prefetch(t + i + kPrefetchFloats, 0, 2);
    const __m512 term = bce_terms<avx512::VecF32Avx512>(_mm512_loadu_ps(z + i), _mm512_loadu_ps(t + i));
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(term)));
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(term), 1))));
  }
  if (i + 8 <= n) {  // AVX2's last whole step of 8
    const __mmask16 k = 0xFF;
    const __m512 term = bce_terms<avx512::VecF32Avx512>(_mm512_maskz_loadu_ps(k, z + i), _mm512_maskz_loadu_ps(k, t + i));
    acc = _mm512_add_pd(acc, _mm512_cvtps_pd(_mm512_castps512_ps256(term)));
    i += 8;
  }
  double s = hsum4(_mm256_add_pd(_mm512_castpd512_pd256(acc), _mm512_extractf64x4_pd(acc, 1)));
  for (; i < n; ++i) s += bce_term_scalar(z[i], t[i]);
  return s;
}

double bce_sum_avx512_f64(const double* z, const double* t, int64_t n) {
  __m256d acc = _mm256_setzero_pd();  // AVX2's a0
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __builtin_prefetch(z + i + kPrefetchDoubles, 0, 2);
    __builtin_prefetch(t + i + kPrefetchDoubles, 0, 2);
    const __m512d term = bce_terms<avx512::VecF64Avx512>(_mm512_loadu_pd(z + i), _mm512_loadu_pd(t + i));
    acc = _mm256_add_pd(acc, _mm512_castpd512_pd256(term));
    acc = _mm256_add_pd(acc, _mm512_extractf64x4_pd(term, 1));
  }
  if (i + 4 <= n) {
    const __mmask8 k = 0x0F;
    const __m512d term = bce_terms<avx512::VecF64Avx512>(_mm512_maskz_loadu_pd(k, z + i), _mm512_maskz_loadu_pd(k, t + i));
    acc = _mm256_add_pd(acc, _mm512_castpd512_pd256(term));
    i += 4;
  }
  double s = hsum4(acc);
  for (; i < n; ++i) s += bce_term_scalar(z[i], t[i]);
  return s;
}

// The plain sum: as loss_ukernels_avx2.cpp's, floats first added in float, then in double, but four lines to a
// float partial (the AVX2 kernel adds pairs): half the conversions to double, which bound the loop where x sits in
// the L2 (1 MiB: 12.3 -> 10.6 us on the Xeon of sessions 29-33; PyTorch's float sum 12.0). A partial of four floats
// rounds at most three times; the sum stays far inside float32's 1e-4 of the double reference (but four values
// past a quarter of FLT_MAX overflow in it, where pairs overflowed past a half). Not the AVX2 kernel's bits (its
// lanes take other elements); like every loss sum, they depend on the ISA and n only.
double sum_avx512_f32(const float* x, int64_t n) {
  __m512d a0 = _mm512_setzero_pd(), a1 = _mm512_setzero_pd(), a2 = _mm512_setzero_pd(), a3 = _mm512_setzero_pd();
  auto lo = [](__m512 v) { return _mm512_cvtps_pd(_mm512_castps512_ps256(v)); };
  auto hi = [](__m512 v) { return _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1))); };
  int64_t i = 0;
  auto quad = [x](int64_t j) {  // four lines summed in float: (x0 + x1) + (x2 + x3)
    return _mm512_add_ps(_mm512_add_ps(_mm512_loadu_ps(x + j), _mm512_loadu_ps(x + j + 16)),
                         _mm512_add_ps(_mm512_loadu_ps(x + j + 32), _mm512_loadu_ps(x + j + 48)));
  };
  for (; i + 128 <= n; i += 128) {
    const __m512 p0 = quad(i), p1 = quad(i + 64);
    a0 = _mm512_add_pd(a0, lo(p0));
    a1 = _mm512_add_pd(a1, hi(p0));
    a2 = _mm512_add_pd(a2, lo(p1));
    a3 = _mm512_add_pd(a3, hi(p1));
  }
  for (; i + 8 <= n; i += 8) a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm256_loadu_ps(x + i)));
  double s = _mm512_reduce_add_pd(_mm512_add_pd(_mm512_add_pd(a0, a1), _mm512_add_pd(a2, a3)));
  for (; i < n; ++i) s += double(x[i]);
  return s;
}

}  // namespace

// The AVX-512 table: the AVX2 table (filled below it) with the BCE sum and the plain sum replaced.
template <>
void loss_ukernels_fill_avx512<float>(LossUkernels<float>& table) {
  table.name = "loss_avx512_f32";
  table.bce_with_logits_sum = &bce_sum_avx512_f32;
  table.sum = &sum_avx512_f32;
}
template <>
void loss_ukernels_fill_avx512<double>(LossUkernels<double>& table) {
  table.name = "loss_avx512_f64";
  table.bce_with_logits_sum = &bce_sum_avx512_f64;
  table.sum = &sum_doubles<avx512::VecF64Avx512>;
}

}  // namespace nnx
