// AVX-512 pooling row kernels for float (contracts in pool_ukernels.h): the window kernels (max_window,
// max_window_idx, max_window_argmax) with 16 outputs a vector, the 3x3 stride-2 plane kernel, and the 2x2
// stride-2 kernels of pool_ukernels_avx2.cpp (max, its backward from indices, average and its backward), with
// mask registers at the row tails (rows of more than 8 outputs 16 a vector, Zmm16 below). AVX2's vmaskmov loads
// and stores are slow on AMD Zen, and LeNet-sized rows are mostly tail (14 and 5 outputs per row: one full
// vector and a tail, or a tail alone); a k-masked load or store costs what a plain one does, and masked-off
// lanes never fault. Same lanes, same comparisons in the same order and the same indices as the AVX2 kernels, so the
// results are identical. The other entries stay AVX2's (IsaTable derives this table from the AVX2 one).
#include <immintrin.h>

#include <cstdint>

#include "pool/pool_plane.h"
#include "pool/pool_ukernels.h"

namespace nnx {
namespace {

// The 2x2 stride-2 kernels below are written once over the lane width: Ymm8 (8 outputs a vector, the AVX2
// kernels' lanes) and Zmm16 (16, for rows of more than 8 outputs: one pass does the work of two, and on CPUs
// that split 512-bit operations in halves as much as those two; LeNet-5's first pooling, 14 outputs a row,
// forward 1.2-1.3x and backward from indices 1.2-1.4x, 1 thread). Each lane computes what the AVX2 lane does.
struct Ymm8 {
  static constexpr int kLanes = 8;
  using F = __m256;
  using I = __m256i;
  using M = __mmask8;
  static M first(int64_t lanes) {  // the first `lanes` lanes (any int64; <= 0: none, >= 8: all)
    if (lanes >= 8) return 0xFF;
    return lanes <= 0 ? 0 : static_cast<M>((1u << lanes) - 1);
  }
  static F load(M k, const float* p) { return _mm256_maskz_loadu_ps(k, p); }
  static I load_idx(M k, const int32_t* p) { return _mm256_maskz_loadu_epi32(k, p); }
  static void store(float* p, M k, F v) { _mm256_mask_storeu_ps(p, k, v); }
  static void store_idx(int32_t* p, M k, I v) { _mm256_mask_storeu_epi32(p, k, v); }
  // The even and odd elements of x[0 .. 16): [x0 x2 .. x14] and [x1 x3 .. x15] from a = x[0..7], b = x[8..15].
  static F evens(F a, F b) {
    const F e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  static F odds(F a, F b) {
    const F o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  // [e0 o0 e1 o1 ...]: the first and second halves of the interleaving.
  static F pairs_lo(F e, F o) { return _mm256_permute2f128_ps(_mm256_unpacklo_ps(e, o), _mm256_unpackhi_ps(e, o), 0x20); }
  static F pairs_hi(F e, F o) { return _mm256_permute2f128_ps(_mm256_unpacklo_ps(e, o), _mm256_unpackhi_ps(e, o), 0x31); }
  static M gt(F a, F b) { return _mm256_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M unordered(F a) { return _mm256_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static F max(F a, F b) { return _mm256_max_ps(a, b); }
  static F blend(M k, F a, F b) { return _mm256_mask_blend_ps(k, a, b); }
  static F zero_unless(M k, F a) { return _mm256_maskz_mov_ps(k, a); }
  static F plus_zero(F a) { return _mm256_add_ps(_mm256_setzero_ps(), a); }
  static F addf(F a, F b) { return _mm256_add_ps(a, b); }
  static F mulf(F a, F b) { return _mm256_mul_ps(a, b); }
  static F splat(float v) { return _mm256_set1_ps(v); }
  static I iota2() { return _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14); }
  static I set1(int32_t v) { return _mm256_set1_epi32(v); }
  static I add(I a, I b) { return _mm256_add_epi32(a, b); }
  static I blend_idx(M k, I a, I b) { return _mm256_mask_blend_epi32(k, a, b); }
  static M eq(I a, I b) { return _mm256_cmpeq_epi32_mask(a, b); }
};

struct Zmm16 {
  static constexpr int kLanes = 16;
  using F = __m512;
  using I = __m512i;
  using M = __mmask16;
  static M first(int64_t lanes) {
    if (lanes >= 16) return 0xFFFF;
    return lanes <= 0 ? 0 : static_cast<M>((1u << lanes) - 1);
  }
  static F load(M k, const float* p) { return _mm512_maskz_loadu_ps(k, p); }
  static I load_idx(M k, const int32_t* p) { return _mm512_maskz_loadu_epi32(k, p); }
  static void store(float* p, M k, F v) { _mm512_mask_storeu_ps(p, k, v); }
  static void store_idx(int32_t* p, M k, I v) { _mm512_mask_storeu_epi32(p, k, v); }
  static F evens(F a, F b) { return _mm512_permutex2var_ps(a, iota2(), b); }
  static F odds(F a, F b) { return _mm512_permutex2var_ps(a, add(iota2(), set1(1)), b); }
  static F pairs_lo(F e, F o) {
    return _mm512_permutex2var_ps(e, _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23), o);
  }
  static F pairs_hi(F e, F o) {
    return _mm512_permutex2var_ps(e, _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31),
                                  o);
  }
  static M gt(F a, F b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
  static M unordered(F a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
  static F max(F a, F b) { return _mm512_max_ps(a, b); }
  static F blend(M k, F a, F b) { return _mm512_mask_blend_ps(k, a, b); }
  static F zero_unless(M k, F a) { return _mm512_maskz_mov_ps(k, a); }
  static F plus_zero(F a) { return _mm512_add_ps(_mm512_setzero_ps(), a); }
  static F addf(F a, F b) { return _mm512_add_ps(a, b); }
  static F mulf(F a, F b) { return _mm512_mul_ps(a, b); }
  static F splat(float v) { return _mm512_set1_ps(v); }
  static I iota2() { return _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30); }
  static I set1(int32_t v) { return _mm512_set1_epi32(v); }
  static I add(I a, I b) { return _mm512_add_epi32(a, b); }
  static I blend_idx(M k, I a, I b) { return _mm512_mask_blend_epi32(k, a, b); }
  static M eq(I a, I b) { return _mm512_cmpeq_epi32_mask(a, b); }
};

// pool_max_takes(v, m): v > m or v is NaN.
template <class V>
inline typename V::M takes(typename V::F v, typename V::F m) {
  return V::gt(v, m) | V::unordered(v);
}
// m -> (takes(v, m) ? v : m): vmaxps(v, m) is m when either is NaN or v == m, v when v > m; a NaN v is
// then let through.
template <class V>
inline typename V::F scan(typename V::F m, typename V::F v) {
  return V::blend(V::unordered(v), V::max(v, m), v);
}

// The four window elements of r outputs as lanes (a = r0[2o], b = r0[2o+1], c = r1[2o], d = r1[2o+1]),
// reading only the 2r elements of each row.
template <class V>
inline void load_2x2(const float* r0, const float* r1, int64_t r, typename V::F* a, typename V::F* b,
                     typename V::F* c, typename V::F* d) {
  constexpr int L = V::kLanes;
  const typename V::M k0 = V::first(2 * r), k1 = V::first(2 * r - L);
  const typename V::F x0 = V::load(k0, r0), x1 = V::load(k1, r0 + L);
  const typename V::F y0 = V::load(k0, r1), y1 = V::load(k1, r1 + L);
  *a = V::evens(x0, x1), *b = V::odds(x0, x1), *c = V::evens(y0, y1), *d = V::odds(y0, y1);
}

// Outputs o .. o + r - 1 (r <= V::kLanes) of max_2x2s2_avx512.
template <class V>
__attribute__((always_inline)) inline void max_2x2s2_block(const float* r0, const float* r1, float* y, int64_t o,
                                                           int64_t r) {
  typename V::F a, b, c, d;
  load_2x2<V>(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
  V::store(y + o, V::first(r), scan<V>(scan<V>(scan<V>(a, b), c), d));
}

// Outputs o .. o + r - 1 of max_2x2s2_indices_avx512.
template <class V>
__attribute__((always_inline)) inline void max_2x2s2_indices_block(const float* r0, const float* r1, float* y,
                                                                   int32_t* idx, int64_t o, int64_t r, int32_t off,
                                                                   int64_t W) {
  typename V::F a, b, c, d;
  load_2x2<V>(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
  const typename V::I one = V::set1(1);
  const typename V::I ia = V::add(V::set1(off + static_cast<int32_t>(2 * o)), V::iota2());
  const typename V::I ic = V::add(ia, V::set1(static_cast<int32_t>(W)));
  // The pick is the last element that takes the maximum in scan order a, b, c, d.
  const typename V::M tb = takes<V>(b, a);
  typename V::F m = scan<V>(a, b);
  const typename V::M tc = takes<V>(c, m);
  m = scan<V>(m, c);
  const typename V::M td = takes<V>(d, m);
  m = scan<V>(m, d);
  typename V::I id = V::blend_idx(tb, ia, V::add(ia, one));
  id = V::blend_idx(tc, id, ic);
  id = V::blend_idx(td, id, V::add(ic, one));
  const typename V::M k = V::first(r);
  V::store(y + o, k, m);
  V::store_idx(idx + o, k, id);
}

// [e0 o0 e1 o1 ...] of the first r outputs' pairs, into dst[0 .. 2r).
template <class V>
__attribute__((always_inline)) inline void store_pairs(float* dst, typename V::F e, typename V::F o, int64_t r) {
  V::store(dst, V::first(2 * r), V::pairs_lo(e, o));
  V::store(dst + V::kLanes, V::first(2 * r - V::kLanes), V::pairs_hi(e, o));
}

// Outputs o .. o + r - 1 of max_2x2s2_backward_indices_avx512; false (nothing written) when an index is not
// one of its window's four offsets.
template <class V>
__attribute__((always_inline)) inline bool max_2x2s2_backward_indices_block(const int32_t* idx, const float* dy,
                                                                            float* d0, float* d1, int64_t o,
                                                                            int64_t r, int32_t off, int64_t W) {
  const typename V::M k = V::first(r);
  const typename V::I one = V::set1(1);
  const typename V::I id = V::load_idx(k, idx + o);
  const typename V::I ia = V::add(V::set1(off + static_cast<int32_t>(2 * o)), V::iota2());
  const typename V::I ic = V::add(ia, V::set1(static_cast<int32_t>(W)));
  const typename V::M pa = V::eq(id, ia), pb = V::eq(id, V::add(ia, one));
  const typename V::M pc = V::eq(id, ic), pd = V::eq(id, V::add(ic, one));
  if (static_cast<typename V::M>((pa | pb | pc | pd) & k) != k) return false;
  const typename V::F g = V::plus_zero(V::load(k, dy + o));
  store_pairs<V>(d0 + 2 * o, V::zero_unless(pa, g), V::zero_unless(pb, g), r);
  store_pairs<V>(d1 + 2 * o, V::zero_unless(pc, g), V::zero_unless(pd, g), r);
  return true;
}

// Outputs o .. o + r - 1 of avg_2x2s2_avx512: the AVX2 kernel's sums in its order, times a quarter.
template <class V>
__attribute__((always_inline)) inline void avg_2x2s2_block(const float* r0, const float* r1, float* y, int64_t o,
                                                           int64_t r) {
  typename V::F a, b, c, d;
  load_2x2<V>(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
  V::store(y + o, V::first(r), V::mulf(V::addf(V::addf(V::addf(a, b), c), d), V::splat(0.25f)));
}

// Outputs o .. o + r - 1 of avg_2x2s2_backward_avx512.
template <class V>
__attribute__((always_inline)) inline void avg_2x2s2_backward_block(const float* dy, float* d0, float* d1, int64_t o,
                                                                    int64_t r) {
  const typename V::F g = V::mulf(V::load(V::first(r), dy + o), V::splat(0.25f));
  store_pairs<V>(d0 + 2 * o, g, g, r);
  store_pairs<V>(d1 + 2 * o, g, g, r);
}

// The row kernels: Zmm16 blocks for rows of more than 8 outputs, Ymm8 ones otherwise.
void max_2x2s2_avx512(const float* r0, const float* r1, float* y, int64_t n) {
  if (n > 8) {
    for (int64_t o = 0; o < n; o += 16) max_2x2s2_block<Zmm16>(r0, r1, y, o, n - o < 16 ? n - o : 16);
    return;
  }
  for (int64_t o = 0; o < n; o += 8) max_2x2s2_block<Ymm8>(r0, r1, y, o, n - o < 8 ? n - o : 8);
}

void max_2x2s2_indices_avx512(const float* r0, float* y, int32_t* idx, int64_t n, int32_t off, int64_t W) {
  const float* r1 = r0 + W;
  if (n > 8) {
    for (int64_t o = 0; o < n; o += 16)
      max_2x2s2_indices_block<Zmm16>(r0, r1, y, idx, o, n - o < 16 ? n - o : 16, off, W);
    return;
  }
  for (int64_t o = 0; o < n; o += 8) max_2x2s2_indices_block<Ymm8>(r0, r1, y, idx, o, n - o < 8 ? n - o : 8, off, W);
}

bool max_2x2s2_backward_indices_avx512(const int32_t* idx, const float* dy, float* d0, float* d1, int64_t n,
                                       int32_t off, int64_t W) {
  if (n > 8) {
    for (int64_t o = 0; o < n; o += 16)
      if (!max_2x2s2_backward_indices_block<Zmm16>(idx, dy, d0, d1, o, n - o < 16 ? n - o : 16, off, W)) return false;
    return true;
  }
  for (int64_t o = 0; o < n; o += 8)
    if (!max_2x2s2_backward_indices_block<Ymm8>(idx, dy, d0, d1, o, n - o < 8 ? n - o : 8, off, W)) return false;
  return true;
}

void avg_2x2s2_avx512(const float* r0, const float* r1, float* y, int64_t n) {
  if (n > 8) {
    for (int64_t o = 0; o < n; o += 16) avg_2x2s2_block<Zmm16>(r0, r1, y, o, n - o < 16 ? n - o : 16);
    return;
  }
  for (int64_t o = 0; o < n; o += 8) avg_2x2s2_block<Ymm8>(r0, r1, y, o, n - o < 8 ? n - o : 8);
}

void avg_2x2s2_backward_avx512(const float* dy, float* d0, float* d1, int64_t n) {
  if (n > 8) {
    for (int64_t o = 0; o < n; o += 16) avg_2x2s2_backward_block<Zmm16>(dy, d0, d1, o, n - o < 16 ? n - o : 16);
    return;
  }
  for (int64_t o = 0; o < n; o += 8) avg_2x2s2_backward_block<Ymm8>(dy, d0, d1, o, n - o < 8 ? n - o : 8);
}

// max_2x2s2_backward_indices_small: the plane's indices and gradients in two registers each; each pair of
// dx rows is the window's index and gradient of every column (a permute by 0 0 1 1 2 2 ...) where the index
// names that column, 0 + gradient, and 0 elsewhere. An index outside its own window matches no column, so
// the plane is valid when the matches number the outputs. LeNet-5's second pooling (10 x 10 planes, 5
// outputs a row): a row kernel call per output row had cost more than the scatter.
bool max_2x2s2_backward_indices_small_avx512(const int32_t* idx, const float* dy, float* dx, int64_t OH,
                                             int64_t OW, int64_t W) {
  const int64_t n = OH * OW;
  const __mmask16 lo = n >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << n) - 1);
  const __mmask16 hi = n <= 16 ? 0 : static_cast<__mmask16>((1u << (n - 16)) - 1);
  const __m512i i0 = _mm512_maskz_loadu_epi32(lo, idx), i1 = _mm512_maskz_loadu_epi32(hi, idx + 16);
  const __m512 g0 = _mm512_maskz_loadu_ps(lo, dy), g1 = _mm512_maskz_loadu_ps(hi, dy + 16);
  const __m512i col = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i half = _mm512_srli_epi32(col, 1);  // the window of each column: 0 0 1 1 2 2 ...
  const __mmask16 cols = static_cast<__mmask16>((1u << (2 * OW)) - 1);
  const __m512 zero = _mm512_setzero_ps();
  int64_t matches = 0;
  for (int64_t oh = 0; oh < OH; ++oh) {
    const __m512i win = _mm512_add_epi32(half, _mm512_set1_epi32(static_cast<int32_t>(oh * OW)));
    const __m512i id = _mm512_permutex2var_epi32(i0, win, i1);
    const __m512 g = _mm512_add_ps(zero, _mm512_permutex2var_ps(g0, win, g1));
    for (int64_t r = 0; r < 2; ++r) {
      const int64_t row = 2 * oh + r;
      const __m512i k = _mm512_add_epi32(col, _mm512_set1_epi32(static_cast<int32_t>(row * W)));
      const __mmask16 hit = _mm512_mask_cmpeq_epi32_mask(cols, id, k);
      matches += __builtin_popcount(hit);
      _mm512_mask_storeu_ps(dx + row * W, cols, _mm512_maskz_mov_ps(hit, g));
    }
  }
  return matches == n;
}

// Window kernels (max_window, max_window_idx) on zmm: 16 outputs a vector, two vectors a pass (two
// dependency chains through the taps), the row's tail under masks. Stride 2 takes the even elements of 32
// consecutive inputs with one two-source permute, so the lanes stay in output order. Lanes past n are
// never stored (they may hold anything).
template <int S>
struct ZmmTap {
  __mmask16 out, lo, hi;  // lanes of the block's outputs; of x[0..15] and x[16..31] that stride 2 reads
  explicit ZmmTap(int64_t r) {  // r = outputs in the block (1..16)
    out = static_cast<__mmask16>(r >= 16 ? 0xFFFF : (1u << r) - 1);
    const int64_t span = S * (r - 1) + 1;  // x[0 .. span) holds the block's elements
    lo = static_cast<__mmask16>(span >= 16 ? 0xFFFF : (1u << span) - 1);
    hi = static_cast<__mmask16>(span <= 16 ? 0 : (span >= 32 ? 0xFFFF : (1u << (span - 16)) - 1));
  }
  __m512 load(const float* p) const {
    if constexpr (S == 1) {
      return _mm512_maskz_loadu_ps(out, p);
    } else {
      const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
      return _mm512_permutex2var_ps(_mm512_maskz_loadu_ps(lo, p), even, _mm512_maskz_loadu_ps(hi, p + 16));
    }
  }
};

template <int S>
void max_window_s(float* y, const float* x, int64_t n, const int64_t* taps, int64_t ntaps) {
  int64_t o = 0;
  for (; o + 16 < n; o += 32) {
    const ZmmTap<S> a(16), b(n - o - 16 < 16 ? n - o - 16 : 16);
    const float* pa = x + o * S;
    const float* pb = pa + 16 * S;
    __m512 ma = a.load(pa + taps[0]), mb = b.load(pb + taps[0]);
    for (int64_t t = 1; t < ntaps; ++t) {
      ma = scan<Zmm16>(ma, a.load(pa + taps[t]));
      mb = scan<Zmm16>(mb, b.load(pb + taps[t]));
    }
    _mm512_storeu_ps(y + o, ma);
    _mm512_mask_storeu_ps(y + o + 16, b.out, mb);
  }
  if (o < n) {
    const ZmmTap<S> a(n - o);
    const float* pa = x + o * S;
    __m512 m = a.load(pa + taps[0]);
    for (int64_t t = 1; t < ntaps; ++t) m = scan<Zmm16>(m, a.load(pa + taps[t]));
    _mm512_mask_storeu_ps(y + o, a.out, m);
  }
}


// One block's argmax: the index follows the scan through the take mask.
template <int S>
struct ArgmaxZmm {
  ZmmTap<S> lanes;
  const float* p;  // x at the block's first output
  __m512i base;    // offset of each lane's output (o * S), before the tap's offset
  __m512 m;
  __m512i id;
  // itap: the tap's offset in the indices' coordinates (tap itself for max_window_idx).
  ArgmaxZmm(const float* x, int64_t o, int64_t r, int64_t tap0, int64_t itap0) : lanes(r), p(x + o * S) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    base = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(o * S)),
                            _mm512_mullo_epi32(iota, _mm512_set1_epi32(S)));
    m = lanes.load(p + tap0);
    id = _mm512_add_epi32(base, _mm512_set1_epi32(static_cast<int32_t>(itap0)));
  }
  void step(int64_t tap, int64_t itap) {
    const __m512 v = lanes.load(p + tap);
    const __mmask16 take = takes<Zmm16>(v, m);
    m = _mm512_mask_mov_ps(m, take, v);
    id = _mm512_mask_blend_epi32(take, id, _mm512_add_epi32(base, _mm512_set1_epi32(static_cast<int32_t>(itap))));
  }
  // A full store (idx is a padded scratch row): the driver's scalar loads of idx that follow are then
  // forwarded from it, where after a masked store they would wait for it to retire.
  void store(int32_t* idx) const { _mm512_storeu_si512(idx, id); }
  // Into the outputs: the block's lanes only.
  void store_outputs(float* y, int32_t* idx) const {
    _mm512_mask_storeu_ps(y, lanes.out, m);
    _mm512_mask_storeu_epi32(idx, lanes.out, id);
  }
};

template <int S>
void max_window_idx_s(int32_t* idx, const float* x, int64_t n, const int64_t* taps, int64_t ntaps) {
  int64_t o = 0;
  for (; o + 16 < n; o += 32) {
    ArgmaxZmm<S> a(x, o, 16, taps[0], taps[0]), b(x, o + 16, n - o - 16 < 16 ? n - o - 16 : 16, taps[0], taps[0]);
    for (int64_t t = 1; t < ntaps; ++t) {
      a.step(taps[t], taps[t]);
      b.step(taps[t], taps[t]);
    }
    a.store(idx + o);
    b.store(idx + o + 16);
  }
  if (o < n) {
    ArgmaxZmm<S> a(x, o, n - o, taps[0], taps[0]);
    for (int64_t t = 1; t < ntaps; ++t) a.step(taps[t], taps[t]);
    a.store(idx + o);
  }
}

template <int S>
void max_window_argmax_s(float* y, int32_t* idx, const float* x, int64_t n, const int64_t* taps,
                         const int64_t* idx_taps, int64_t ntaps) {
  int64_t o = 0;
  for (; o + 16 < n; o += 32) {
    ArgmaxZmm<S> a(x, o, 16, taps[0], idx_taps[0]),
        b(x, o + 16, n - o - 16 < 16 ? n - o - 16 : 16, taps[0], idx_taps[0]);
    for (int64_t t = 1; t < ntaps; ++t) {
      a.step(taps[t], idx_taps[t]);
      b.step(taps[t], idx_taps[t]);
    }
    a.store_outputs(y + o, idx + o);
    b.store_outputs(y + o + 16, idx + o + 16);
  }
  if (o < n) {
    ArgmaxZmm<S> a(x, o, n - o, taps[0], idx_taps[0]);
    for (int64_t t = 1; t < ntaps; ++t) a.step(taps[t], idx_taps[t]);
    a.store_outputs(y + o, idx + o);
  }
}

// max_3x3s2_indices, separably. A window's scan in row-major order (pool_max_takes) picks its last NaN if
// it has one, else the first of its maxima; so does a scan of each row's three taps followed by a scan of
// the rows' picks in row order. An input row below an output row's window is the top row of the next
// one's: its picks are made once and carried on the stack. Per 16 outputs of a row: two new input rows of 4
// loads, 3 permutes and 2 scan steps each, then 2 steps across the three rows, where the 9-tap window kernel
// took 9 permutes and 8 steps (64x32x56x56 padding 1, 1 thread: 1.29x, and 1.07-1.11x more with the
// column masks set once a plane and the next plane's prefetch).
struct Pick {
  __m512 m;      // the scan's value
  __m512i at;    // plane offset of the element picked
};

inline void take(Pick& p, const Pick& q) {  // one scan step: q replaces p where pool_max_takes(q.m, p.m)
  const __mmask16 k = takes<Zmm16>(q.m, p.m);
  p.m = _mm512_mask_mov_ps(p.m, k, q.m);
  p.at = _mm512_mask_mov_epi32(p.at, k, q.at);
}

// The lanes of columns c .. c + 15 inside a row W wide; the others are padding (-inf), never read.
inline __mmask16 cols_inside(int64_t c, int64_t W) {
  return static_cast<__mmask16>(Zmm16::first(W - c) & ~Zmm16::first(-c));
}

// A block's four loads of a row, columns c0, c0 + 16, c0 + 2 and c0 + 18 on: the same lanes on every row.
struct BlockCols {
  __mmask16 k[4];
  void set(int64_t c0, int64_t W) {
    for (int i = 0; i < 4; ++i) k[i] = cols_inside(c0 + (i & 1) * 16 + (i >> 1) * 2, W);
  }
};

// The picks of input row r over columns c0 + 2l + {0, 1, 2}, lanes l = 0..15 (c0 is -1 at a padded row's
// start: the masked-off lanes are never read).
inline Pick row_pick(const float* x, int64_t r, int64_t W, int64_t c0, const BlockCols& cols) {
  const float* row = x + r * W + c0;
  const __m512 pad = _mm512_set1_ps(-__builtin_inff());
  const __m512 a = _mm512_mask_loadu_ps(pad, cols.k[0], row), b = _mm512_mask_loadu_ps(pad, cols.k[1], row + 16);
  const __m512 a2 = _mm512_mask_loadu_ps(pad, cols.k[2], row + 2);
  const __m512 b2 = _mm512_mask_loadu_ps(pad, cols.k[3], row + 18);
  const __m512i at = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(r * W + c0)), Zmm16::iota2());
  Pick p{Zmm16::evens(a, b), at};
  take(p, Pick{Zmm16::odds(a, b), _mm512_add_epi32(at, _mm512_set1_epi32(1))});
  take(p, Pick{Zmm16::evens(a2, b2), _mm512_add_epi32(at, _mm512_set1_epi32(2))});
  return p;
}

// Planes of at most 7 outputs a row (maps up to 14 columns wide with padding 1, 16 without: LeNet-sized), where
// the kernel below spends a vector and its carried row on 5 outputs: two output rows a vector instead, row oh in
// lanes 0-7 and oh + 1 in lanes 8-15. Each input row is one masked load (its window columns lie within 16 of the
// first), and a pair of rows gives each tap's values of both halves in one permute. The same scan as
// row_pick and the rows in order, so the same picks. A row past the plane's edge is -inf, as the columns past it
// are: only a window whose real elements are all -inf can keep such a pick, and that output is reported as the
// contract says.
bool max_3x3s2_small_plane(const float* x, float* y, int32_t* idx, int64_t H, int64_t W, int64_t OH, int64_t OW,
                           int64_t pad) {
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  const __mmask16 cols = cols_inside(-pad, W);
  const __m512i tap0 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i one = _mm512_set1_epi32(1), two = _mm512_set1_epi32(2);
  const __m512i tap1 = _mm512_add_epi32(tap0, one), tap2 = _mm512_add_epi32(tap0, two);
  // Plane column of each lane's first tap: 2l - pad in both halves.
  const __m512i col = _mm512_sub_epi32(_mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 0, 2, 4, 6, 8, 10, 12, 14),
                                       _mm512_set1_epi32(static_cast<int32_t>(pad)));
  const __mmask16 out_lo = Zmm16::first(OW);
  const __mmask8 out8 = static_cast<__mmask8>(out_lo);
  const __mmask16 out_both = static_cast<__mmask16>(out_lo | (out_lo << 8));
  __mmask16 any_neg_inf = 0;
  auto row = [&](int64_t r) {
    return r >= 0 && r < H ? _mm512_mask_loadu_ps(neg_inf, cols, x + r * W - pad) : neg_inf;
  };
  // Taps of rows ra (lanes 0-7) and rb (lanes 8-15), scanned in window order.
  auto pick2 = [&](__m512 a, __m512 b, int64_t ra, int64_t rb) {
    const __m512i base = _mm512_mask_blend_epi32(0xFF00, _mm512_set1_epi32(static_cast<int32_t>(ra * W)),
                                                 _mm512_set1_epi32(static_cast<int32_t>(rb * W)));
    const __m512i at = _mm512_add_epi32(base, col);
    Pick p{_mm512_permutex2var_ps(a, tap0, b), at};
    take(p, Pick{_mm512_permutex2var_ps(a, tap1, b), _mm512_add_epi32(at, one)});
    take(p, Pick{_mm512_permutex2var_ps(a, tap2, b), _mm512_add_epi32(at, two)});
    return p;
  };
  for (int64_t oh = 0; oh < OH; oh += 2) {
    const int64_t r0 = 2 * oh - pad;
    const __m512 x0 = row(r0), x1 = row(r0 + 1), x2 = row(r0 + 2), x3 = row(r0 + 3), x4 = row(r0 + 4);
    Pick p = pick2(x0, x2, r0, r0 + 2);
    take(p, pick2(x1, x3, r0 + 1, r0 + 3));
    take(p, pick2(x2, x4, r0 + 2, r0 + 4));
    _mm512_mask_storeu_ps(y + oh * OW, out_lo, p.m);
    _mm512_mask_storeu_epi32(idx + oh * OW, out_lo, p.at);
    const bool pair = oh + 1 < OH;
    if (pair) {
      _mm256_mask_storeu_ps(y + (oh + 1) * OW, out8, _mm512_extractf32x8_ps(p.m, 1));
      _mm256_mask_storeu_epi32(idx + (oh + 1) * OW, out8, _mm512_extracti32x8_epi32(p.at, 1));
    }
    any_neg_inf |= _mm512_mask_cmp_ps_mask(pair ? out_both : out_lo, p.m, neg_inf, _CMP_EQ_OQ);
  }
  return any_neg_inf != 0;
}

bool max_3x3s2_indices_avx512(const float* x, float* y, int32_t* idx, int64_t H, int64_t W, int64_t OH,
                              int64_t OW, int64_t pad, const float* next) {
  if (OW <= 7) return max_3x3s2_small_plane(x, y, idx, H, W, OH, OW, pad);
  const int64_t next_lines = next ? (H * W + 15) / 16 : 0;
  alignas(64) float carry_m[kPool3x3s2MaxRow + 16];
  alignas(64) int32_t carry_at[kPool3x3s2MaxRow + 16];
  BlockCols cols[kPool3x3s2MaxRow / 16];
  for (int64_t o0 = 0; o0 < OW; o0 += 16) cols[o0 / 16].set(2 * o0 - pad, W);
  const __m512 neg_inf = _mm512_set1_ps(-__builtin_inff());
  __mmask16 any_neg_inf = 0;
  for (int64_t oh = 0; oh < OH; ++oh) {
    const int64_t r0 = 2 * oh - pad;
    const bool has0 = r0 >= 0 && r0 < H, has1 = r0 + 1 >= 0 && r0 + 1 < H, has2 = r0 + 2 >= 0 && r0 + 2 < H;
    float* yr = y + oh * OW;
    int32_t* ir = idx + oh * OW;
    for (int64_t l = next_lines * oh / OH, l1 = next_lines * (oh + 1) / OH; l < l1; ++l)
      _mm_prefetch(reinterpret_cast<const char*>(next + 16 * l), _MM_HINT_T0);
    for (int64_t o0 = 0; o0 < OW; o0 += 16) {
      const __mmask16 out = Zmm16::first(OW - o0);
      const int64_t c0 = 2 * o0 - pad;
      Pick p{neg_inf, _mm512_set1_epi32(-1)};
      bool have = false;
      if (has0) {  // the previous output row's bottom row when there was one
        p = oh > 0 ? Pick{_mm512_load_ps(carry_m + o0), _mm512_load_si512(carry_at + o0)}
                   : row_pick(x, r0, W, c0, cols[o0 / 16]);
        have = true;
      }
      if (has1) {
        const Pick q = row_pick(x, r0 + 1, W, c0, cols[o0 / 16]);
        if (have) take(p, q);
        else p = q;
        have = true;
      }
      if (has2) {
        const Pick q = row_pick(x, r0 + 2, W, c0, cols[o0 / 16]);
        _mm512_store_ps(carry_m + o0, q.m);
        _mm512_store_si512(carry_at + o0, q.at);
        if (have) take(p, q);
        else p = q;
      }
      _mm512_mask_storeu_ps(yr + o0, out, p.m);
      _mm512_mask_storeu_epi32(ir + o0, out, p.at);
      any_neg_inf |= _mm512_mask_cmp_ps_mask(out, p.m, neg_inf, _CMP_EQ_OQ);
    }
  }
  return any_neg_inf != 0;
}

}  // namespace

void pool_ukernels_fill_avx512_f32(PoolUkernels<float>& table) {
  table.name = "avx512";
  table.max_window = max_window_by_stride<max_window_s<1>, max_window_s<2>>;
  table.max_window_idx = max_window_idx_by_stride<max_window_idx_s<1>, max_window_idx_s<2>>;
  table.max_window_argmax = max_window_argmax_by_stride<max_window_argmax_s<1>, max_window_argmax_s<2>>;
  table.max_2x2s2 = max_2x2s2_avx512;
  table.max_2x2s2_indices = max_2x2s2_indices_plane<float, max_2x2s2_indices_avx512>;
  table.max_2x2s2_backward_indices = max_2x2s2_backward_indices_plane<float, max_2x2s2_backward_indices_avx512>;
  table.max_2x2s2_backward_indices_small = max_2x2s2_backward_indices_small_avx512;
  table.max_3x3s2_indices = max_3x3s2_indices_avx512;
  table.avg_2x2s2 = avg_2x2s2_rows<float, avg_2x2s2_avx512>;
  table.avg_2x2s2_backward = avg_2x2s2_backward_rows<float, avg_2x2s2_backward_avx512>;
}

}  // namespace nnx
