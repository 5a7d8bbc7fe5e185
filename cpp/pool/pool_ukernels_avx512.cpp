// AVX-512 pooling row kernels for float (contracts in pool_ukernels.h): the window kernels (max_window,
// max_window_idx) with 16 outputs a vector, and the 2x2 stride-2 max windows of pool_ukernels_avx2.cpp and
// their backward from indices, with mask registers at the row tails (rows of more than 8 outputs 16 a
// vector: LeNet-5's first pooling, 14 a row, forward 1.2-1.3x and backward from indices 1.2-1.4x against two
// 8-lane passes, 1 thread). AVX2's vmaskmov loads and stores are
// slow on AMD Zen, and LeNet-sized rows are mostly tail (14 and 5 outputs per row: one full vector and a
// tail, or a tail alone); a k-masked load or store costs what a plain one does, and masked-off lanes never
// fault. Same lanes, same comparisons in the same order and the same indices as the AVX2 kernels, so the
// results are identical. The other entries stay AVX2's (IsaTable derives this table from the AVX2 one).
#include <immintrin.h>

#include <cstdint>

#include "pool/pool_plane.h"
#include "pool/pool_ukernels.h"

namespace nnx {
namespace {

// The first `lanes` lanes (any int64; <= 0: none, >= 8: all).
inline __mmask8 first_lanes(int64_t lanes) {
  if (lanes >= 8) return 0xFF;
  return lanes <= 0 ? 0 : static_cast<__mmask8>((1u << lanes) - 1);
}

// [a0 a2 a4 a6 b0 b2 b4 b6] and [a1 a3 a5 a7 b1 b3 b5 b7] from a = x[0..7], b = x[8..15].
inline __m256 evens(__m256 a, __m256 b) {
  __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}
inline __m256 odds(__m256 a, __m256 b) {
  __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}

// pool_max_takes(v, m): v > m or v is NaN.
inline __mmask8 takes(__m256 v, __m256 m) {
  return _mm256_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm256_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}
// m -> (takes(v, m) ? v : m): vmaxps(v, m) is m when either is NaN or v == m, v when v > m; a NaN v is
// then let through.
inline __m256 scan(__m256 m, __m256 v) {
  return _mm256_mask_blend_ps(_mm256_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm256_max_ps(v, m), v);
}

// The four window elements of outputs o..o+r-1 as lanes (a = r0[2o], b = r0[2o+1], c = r1[2o],
// d = r1[2o+1]), reading only the 2r elements of each row.
inline void load_2x2(const float* r0, const float* r1, int64_t r, __m256* a, __m256* b, __m256* c, __m256* d) {
  const __mmask8 k0 = first_lanes(2 * r), k1 = first_lanes(2 * r - 8);
  __m256 x0 = _mm256_maskz_loadu_ps(k0, r0), x1 = _mm256_maskz_loadu_ps(k1, r0 + 8);
  __m256 y0 = _mm256_maskz_loadu_ps(k0, r1), y1 = _mm256_maskz_loadu_ps(k1, r1 + 8);
  *a = evens(x0, x1), *b = odds(x0, x1), *c = evens(y0, y1), *d = odds(y0, y1);
}

// The 16-output forms (zmm) of load_2x2, takes and scan, for rows of more than 8 outputs: one pass of 16 lanes
// does the work of two of 8 (on CPUs that split 512-bit operations in halves, as much as those two).
inline __mmask16 first_lanes16(int64_t lanes) {
  if (lanes >= 16) return 0xFFFF;
  return lanes <= 0 ? 0 : static_cast<__mmask16>((1u << lanes) - 1);
}

inline void load_2x2_16(const float* r0, const float* r1, int64_t r, __m512* a, __m512* b, __m512* c, __m512* d) {
  const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
  const __mmask16 k0 = first_lanes16(2 * r), k1 = first_lanes16(2 * r - 16);
  const __m512 x0 = _mm512_maskz_loadu_ps(k0, r0), x1 = _mm512_maskz_loadu_ps(k1, r0 + 16);
  const __m512 y0 = _mm512_maskz_loadu_ps(k0, r1), y1 = _mm512_maskz_loadu_ps(k1, r1 + 16);
  *a = _mm512_permutex2var_ps(x0, even, x1), *b = _mm512_permutex2var_ps(x0, odd, x1);
  *c = _mm512_permutex2var_ps(y0, even, y1), *d = _mm512_permutex2var_ps(y0, odd, y1);
}

// pool_max_takes(v, m) and the scan step on 16 lanes (as the 8-lane ones above).
inline __mmask16 takes16(__m512 v, __m512 m) {
  return _mm512_cmp_ps_mask(v, m, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
}
inline __m512 scan16(__m512 m, __m512 v) {
  return _mm512_mask_blend_ps(_mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), _mm512_max_ps(v, m), v);
}

void max_2x2s2_avx512(const float* r0, const float* r1, float* y, int64_t n) {
  if (n > 8) {  // 16 lanes at once (load_2x2_16)
    for (int64_t o = 0; o < n; o += 16) {
      const int64_t r = n - o < 16 ? n - o : 16;
      __m512 a, b, c, d;
      load_2x2_16(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
      _mm512_mask_storeu_ps(y + o, first_lanes16(r), scan16(scan16(scan16(a, b), c), d));
    }
    return;
  }
  for (int64_t o = 0; o < n; o += 8) {
    const int64_t r = n - o < 8 ? n - o : 8;
    __m256 a, b, c, d;
    load_2x2(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
    _mm256_mask_storeu_ps(y + o, first_lanes(r), scan(scan(scan(a, b), c), d));
  }
}

// Outputs o .. o + r - 1 (r <= 16) of max_2x2s2_indices_avx512.
inline void max_2x2s2_indices_16(const float* r0, const float* r1, float* y, int32_t* idx, int64_t o, int64_t r,
                                 int32_t off, int64_t W) {
  const __m512i two = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i one = _mm512_set1_epi32(1), row = _mm512_set1_epi32(static_cast<int32_t>(W));
  __m512 a, b, c, d;
  load_2x2_16(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
  const __m512i ia = _mm512_add_epi32(_mm512_set1_epi32(off + static_cast<int32_t>(2 * o)), two);
  const __m512i ic = _mm512_add_epi32(ia, row);
  const __mmask16 tb = takes16(b, a);
  __m512 m = scan16(a, b);
  const __mmask16 tc = takes16(c, m);
  m = scan16(m, c);
  const __mmask16 td = takes16(d, m);
  m = scan16(m, d);
  __m512i id = _mm512_mask_blend_epi32(tb, ia, _mm512_add_epi32(ia, one));
  id = _mm512_mask_blend_epi32(tc, id, ic);
  id = _mm512_mask_blend_epi32(td, id, _mm512_add_epi32(ic, one));
  const __mmask16 k = first_lanes16(r);
  _mm512_mask_storeu_ps(y + o, k, m);
  _mm512_mask_storeu_epi32(idx + o, k, id);
}

void max_2x2s2_indices_avx512(const float* r0, float* y, int32_t* idx, int64_t n, int32_t off, int64_t W) {
  const float* r1 = r0 + W;
  const __m256i two = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i one = _mm256_set1_epi32(1), row = _mm256_set1_epi32(static_cast<int32_t>(W));
  if (n > 8) {  // LeNet-5's first pooling (14 outputs a row): 16 lanes at once
    for (int64_t o = 0; o < n; o += 16) max_2x2s2_indices_16(r0, r1, y, idx, o, n - o < 16 ? n - o : 16, off, W);
    return;
  }
  for (int64_t o = 0; o < n; o += 8) {
    const int64_t r = n - o < 8 ? n - o : 8;
    __m256 a, b, c, d;
    load_2x2(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
    const __m256i ia = _mm256_add_epi32(_mm256_set1_epi32(off + static_cast<int32_t>(2 * o)), two);
    const __m256i ic = _mm256_add_epi32(ia, row);
    // The pick is the last element that takes the maximum in scan order a, b, c, d.
    const __mmask8 tb = takes(b, a);
    __m256 m = scan(a, b);
    const __mmask8 tc = takes(c, m);
    m = scan(m, c);
    const __mmask8 td = takes(d, m);
    m = scan(m, d);
    __m256i id = _mm256_mask_blend_epi32(tb, ia, _mm256_add_epi32(ia, one));
    id = _mm256_mask_blend_epi32(tc, id, ic);
    id = _mm256_mask_blend_epi32(td, id, _mm256_add_epi32(ic, one));
    const __mmask8 k = first_lanes(r);
    _mm256_mask_storeu_ps(y + o, k, m);
    _mm256_mask_storeu_epi32(idx + o, k, id);
  }
}

// [e0 o0 e1 o1 ...] of the first r outputs' pairs, into dst[0 .. 2r).
inline void store_pairs(float* dst, __m256 e, __m256 o, int64_t r) {
  const __m256 l = _mm256_unpacklo_ps(e, o), h = _mm256_unpackhi_ps(e, o);
  _mm256_mask_storeu_ps(dst, first_lanes(2 * r), _mm256_permute2f128_ps(l, h, 0x20));
  _mm256_mask_storeu_ps(dst + 8, first_lanes(2 * r - 8), _mm256_permute2f128_ps(l, h, 0x31));
}

// [e0 o0 e1 o1 ...] of the first r (<= 16) outputs' pairs, into dst[0 .. 2r).
inline void store_pairs16(float* dst, __m512 e, __m512 o, int64_t r) {
  const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
  _mm512_mask_storeu_ps(dst, first_lanes16(2 * r), _mm512_permutex2var_ps(e, lo, o));
  _mm512_mask_storeu_ps(dst + 16, first_lanes16(2 * r - 16), _mm512_permutex2var_ps(e, hi, o));
}

// Outputs o .. o + r - 1 (r <= 16) of max_2x2s2_backward_indices_avx512; false when an index is outside its
// window (nothing written then).
inline bool max_2x2s2_backward_indices_16(const int32_t* idx, const float* dy, float* d0, float* d1, int64_t o,
                                          int64_t r, int32_t off, int64_t W) {
  const __m512i two = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i one = _mm512_set1_epi32(1), row = _mm512_set1_epi32(static_cast<int32_t>(W));
  const __mmask16 k = first_lanes16(r);
  const __m512i id = _mm512_maskz_loadu_epi32(k, idx + o);
  const __m512i ia = _mm512_add_epi32(_mm512_set1_epi32(off + static_cast<int32_t>(2 * o)), two);
  const __m512i ic = _mm512_add_epi32(ia, row);
  const __mmask16 pa = _mm512_cmpeq_epi32_mask(id, ia), pb = _mm512_cmpeq_epi32_mask(id, _mm512_add_epi32(ia, one));
  const __mmask16 pc = _mm512_cmpeq_epi32_mask(id, ic), pd = _mm512_cmpeq_epi32_mask(id, _mm512_add_epi32(ic, one));
  if (static_cast<__mmask16>((pa | pb | pc | pd) & k) != k) return false;
  const __m512 g = _mm512_add_ps(_mm512_setzero_ps(), _mm512_maskz_loadu_ps(k, dy + o));
  store_pairs16(d0 + 2 * o, _mm512_maskz_mov_ps(pa, g), _mm512_maskz_mov_ps(pb, g), r);
  store_pairs16(d1 + 2 * o, _mm512_maskz_mov_ps(pc, g), _mm512_maskz_mov_ps(pd, g), r);
  return true;
}

bool max_2x2s2_backward_indices_avx512(const int32_t* idx, const float* dy, float* d0, float* d1, int64_t n,
                                       int32_t off, int64_t W) {
  const __m256i two = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i one = _mm256_set1_epi32(1), row = _mm256_set1_epi32(static_cast<int32_t>(W));
  if (n > 8) {  // 16 lanes at once, as max_2x2s2_indices_avx512
    for (int64_t o = 0; o < n; o += 16)
      if (!max_2x2s2_backward_indices_16(idx, dy, d0, d1, o, n - o < 16 ? n - o : 16, off, W)) return false;
    return true;
  }
  for (int64_t o = 0; o < n; o += 8) {
    const int64_t r = n - o < 8 ? n - o : 8;
    const __mmask8 k = first_lanes(r);
    const __m256i id = _mm256_maskz_loadu_epi32(k, idx + o);
    const __m256i ia = _mm256_add_epi32(_mm256_set1_epi32(off + static_cast<int32_t>(2 * o)), two);
    const __m256i ic = _mm256_add_epi32(ia, row);
    const __mmask8 pa = _mm256_cmpeq_epi32_mask(id, ia), pb = _mm256_cmpeq_epi32_mask(id, _mm256_add_epi32(ia, one));
    const __mmask8 pc = _mm256_cmpeq_epi32_mask(id, ic), pd = _mm256_cmpeq_epi32_mask(id, _mm256_add_epi32(ic, one));
    if (static_cast<__mmask8>((pa | pb | pc | pd) & k) != k) return false;
    const __m256 g = _mm256_add_ps(_mm256_setzero_ps(), _mm256_maskz_loadu_ps(k, dy + o));
    store_pairs(d0 + 2 * o, _mm256_maskz_mov_ps(pa, g), _mm256_maskz_mov_ps(pb, g), r);
    store_pairs(d1 + 2 * o, _mm256_maskz_mov_ps(pc, g), _mm256_maskz_mov_ps(pd, g), r);
  }
  return true;
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
      ma = scan16(ma, a.load(pa + taps[t]));
      mb = scan16(mb, b.load(pb + taps[t]));
    }
    _mm512_storeu_ps(y + o, ma);
    _mm512_mask_storeu_ps(y + o + 16, b.out, mb);
  }
  if (o < n) {
    const ZmmTap<S> a(n - o);
    const float* pa = x + o * S;
    __m512 m = a.load(pa + taps[0]);
    for (int64_t t = 1; t < ntaps; ++t) m = scan16(m, a.load(pa + taps[t]));
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
  ArgmaxZmm(const float* x, int64_t o, int64_t r, int64_t tap0) : lanes(r), p(x + o * S) {
    const __m512i iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    base = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int32_t>(o * S)),
                            _mm512_mullo_epi32(iota, _mm512_set1_epi32(S)));
    m = lanes.load(p + tap0);
    id = _mm512_add_epi32(base, _mm512_set1_epi32(static_cast<int32_t>(tap0)));
  }
  void step(int64_t tap) {
    const __m512 v = lanes.load(p + tap);
    const __mmask16 take = takes16(v, m);
    m = _mm512_mask_mov_ps(m, take, v);
    id = _mm512_mask_blend_epi32(take, id, _mm512_add_epi32(base, _mm512_set1_epi32(static_cast<int32_t>(tap))));
  }
  // A full store (idx is a padded scratch row): the driver's scalar loads of idx that follow are then
  // forwarded from it, where after a masked store they would wait for it to retire.
  void store(int32_t* idx) const { _mm512_storeu_si512(idx, id); }
};

template <int S>
void max_window_idx_s(int32_t* idx, const float* x, int64_t n, const int64_t* taps, int64_t ntaps) {
  int64_t o = 0;
  for (; o + 16 < n; o += 32) {
    ArgmaxZmm<S> a(x, o, 16, taps[0]), b(x, o + 16, n - o - 16 < 16 ? n - o - 16 : 16, taps[0]);
    for (int64_t t = 1; t < ntaps; ++t) {
      a.step(taps[t]);
      b.step(taps[t]);
    }
    a.store(idx + o);
    b.store(idx + o + 16);
  }
  if (o < n) {
    ArgmaxZmm<S> a(x, o, n - o, taps[0]);
    for (int64_t t = 1; t < ntaps; ++t) a.step(taps[t]);
    a.store(idx + o);
  }
}


}  // namespace

void pool_ukernels_fill_avx512_f32(PoolUkernels<float>& table) {
  table.name = "avx512";
  table.max_window = max_window_by_stride<max_window_s<1>, max_window_s<2>>;
  table.max_window_idx = max_window_idx_by_stride<max_window_idx_s<1>, max_window_idx_s<2>>;
  table.max_2x2s2 = max_2x2s2_avx512;
  table.max_2x2s2_indices = max_2x2s2_indices_plane<float, max_2x2s2_indices_avx512>;
  table.max_2x2s2_backward_indices = max_2x2s2_backward_indices_plane<float, max_2x2s2_backward_indices_avx512>;
  table.max_2x2s2_backward_indices_small = max_2x2s2_backward_indices_small_avx512;
}

}  // namespace nnx
