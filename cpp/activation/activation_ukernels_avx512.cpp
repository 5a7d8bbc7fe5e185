// AVX-512 activation micro-kernels, float only: the kernels of activation_generic.h on 16-lane zmm registers
// (vec_avx512.h), half the instructions per element of the AVX2 ones, which on Zen 4 (512-bit operations issued
// as two 256-bit halves) is what sigmoid and tanh were short of. Every element sees the arithmetic of an AVX2
// lane, and the softmax rows' sums keep AVX2's order (PairedHalves below), so the bits are AVX2's. float64 keeps
// the AVX2 entries (the table below them).
#include <immintrin.h>

#include <limits>
#include <type_traits>

#include "activation/activation_generic.h"
#include "activation/vec_avx512.h"

namespace nnx {
namespace {

using V = avx512::VecF32Avx512;

// The eight lanes of AVX2's hmax / hsum (vec_avx2.h), in its order.
inline float hmax8(__m256 a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}

inline __m256 lo8(__m512 v) { return _mm512_castps512_ps256(v); }
inline __m256 hi8(__m512 v) { return _mm512_extractf32x8_ps(v, 1); }

// activation_generic.h's row reductions (TwoAccumulators) with AVX2's two 8-lane accumulators held as the
// halves of one zmm register: each block of 16 elements goes to both at once, lanes 0-7 to the first and
// 8-15 to the second, as AVX2's loop of two vectors per step does; the ragged tail (< 16) goes to the first
// in blocks of 8, the second of them only when there is one; the halves are combined (first, second) and
// reduced in AVX2's order. So every partial sum is AVX2's, and so are the bits.
struct PairedHalves {
  using T = float;
  static constexpr int W = 16;

  // The tail's r (0 < r < 16) elements at x in one vector, the other lanes pad.
  static __m512 tail(const float* x, int64_t r, float pad) { return V::load_partial(x, r, pad); }

  static float max(const float* x, int64_t n) {
    const float ninf = -std::numeric_limits<float>::infinity();
    // Four chains of maxima, not one: a vmaxps waits on the one before it (4 cycles on the Xeon), and a row's
    // max pass ran a vector per 4 cycles beside its exponentials' 12. A max of exact values in any grouping is
    // the same value, so the bits stay AVX2's (a NaN anywhere makes the row's sum, and so every output, NaN).
    __m512 m = V::set1(ninf), m1 = m, m2 = m, m3 = m;
    int64_t i = 0;
    for (; i + 4 * W <= n; i += 4 * W) {
      m = V::max(m, V::load(x + i));
      m1 = V::max(m1, V::load(x + i + W));
      m2 = V::max(m2, V::load(x + i + 2 * W));
      m3 = V::max(m3, V::load(x + i + 3 * W));
    }
    m = V::max(V::max(m, m1), V::max(m2, m3));
    for (; i + W <= n; i += W) m = V::max(m, V::load(x + i));
    __m256 m0 = lo8(m);
    if (i < n) {
      const __m512 t = tail(x + i, n - i, ninf);
      m0 = _mm256_max_ps(m0, lo8(t));
      if (n - i > 8) m0 = _mm256_max_ps(m0, hi8(t));
    }
    return hmax8(_mm256_max_ps(m0, hi8(m)));
  }

  // The halves added into the first (lanes 0-7 of the result), then AVX2's hsum.
  static float finish_sum(__m512 s, __m256 s0) {
    return V::hsum(_mm512_insertf32x8(s, s0, 0));
  }

  template <bool kStore>
  static float exp_shift_sum(const float* x, float shift, float* y, int64_t n, const float* next = nullptr) {
    const float ninf = -std::numeric_limits<float>::infinity();
    const __m512 sh = V::set1(shift);
    __m512 s = V::zero();
    int64_t i = 0;
    for (; i + W <= n; i += W) {
      act_generic::prefetch_row_step<float, W>(next, i);
      const __m512 e = V::exp_nonpos(V::sub(V::load(x + i), sh));
      if (kStore) V::store(y + i, e);
      s = V::add(s, e);
    }
    __m256 s0 = lo8(s);
    if (i < n) {
      const __m512 e = V::exp_nonpos(V::sub(tail(x + i, n - i, ninf), sh));  // exp(-inf) = 0 in the padding
      if (kStore) V::store_partial(y + i, e, n - i);
      s0 = _mm256_add_ps(s0, lo8(e));
      if (n - i > 8) s0 = _mm256_add_ps(s0, hi8(e));
    }
    return finish_sum(s, s0);
  }

  static float sum(const float* x, int64_t n) {
    __m512 s = V::zero();
    int64_t i = 0;
    for (; i + W <= n; i += W) s = V::add(s, V::load(x + i));
    __m256 s0 = lo8(s);
    if (i < n) {
      const __m512 t = tail(x + i, n - i, 0.f);
      s0 = _mm256_add_ps(s0, lo8(t));
      if (n - i > 8) s0 = _mm256_add_ps(s0, hi8(t));
    }
    return finish_sum(s, s0);
  }

  static float dot(const float* a, const float* b, int64_t n) {
    __m512 s = V::zero();
    int64_t i = 0;
    for (; i + W <= n; i += W) s = V::fmadd(V::load(a + i), V::load(b + i), s);
    __m256 s0 = lo8(s);
    if (i < n) {
      const __m512 ta = tail(a + i, n - i, 0.f), tb = tail(b + i, n - i, 0.f);
      s0 = _mm256_fmadd_ps(lo8(ta), lo8(tb), s0);
      if (n - i > 8) s0 = _mm256_fmadd_ps(hi8(ta), hi8(tb), s0);
    }
    return finish_sum(s, s0);
  }
};

}  // namespace

template <class T>
void activation_ukernels_fill_avx512(ActivationUkernels<T>& table) {
  if constexpr (std::is_same<T, float>::value) {
    table.name = "act_avx512_f32";
    table.forward = &act_generic::forward<V>;
    table.backward = &act_generic::backward<V>;
    table.backward_from_output = &act_generic::backward_from_output<V>;
    table.softmax_rows = &act_generic::softmax_rows<V, PairedHalves>;
    table.softmax_rows_backward = &act_generic::softmax_rows_backward<V, PairedHalves>;
    table.softmax_rows_backward_from_output = &act_generic::softmax_rows_backward_from_output<V, PairedHalves>;
    table.log_sum_exp_rows = &act_generic::log_sum_exp_rows<V, PairedHalves>;
    // Columns reduce lane by lane (each lane its own column), so the wide vectors change no sum.
    table.softmax_cols = &act_generic::softmax_cols<V>;
    table.softmax_cols_backward = &act_generic::softmax_cols_backward<V>;
    table.softmax_cols_backward_from_output = &act_generic::softmax_cols_backward_from_output<V>;
  }
}

template void activation_ukernels_fill_avx512<float>(ActivationUkernels<float>&);
template void activation_ukernels_fill_avx512<double>(ActivationUkernels<double>&);

}  // namespace nnx
