// AVX2 pooling row kernels for float, 8 outputs per vector (contracts in pool_ukernels.h). Stride 1 and
// stride 2 are vectorised (stride 2 loads 16 consecutive inputs and keeps the even ones); other strides
// use the portable kernels. Row tails use masked loads/stores so that no element outside the contract is
// touched (the next element may be another thread's plane).
#include <immintrin.h>

#include <cstdint>

#include "pool/pool_plane.h"
#include "pool/pool_ukernels.h"

namespace nnx {
namespace {

alignas(32) const int32_t kMaskTable[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

// Mask with the first `lanes` lanes set (0 <= lanes <= 8).
inline __m256i first_lanes(int64_t lanes) {
  return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(kMaskTable + 8 - lanes));
}

inline int64_t clamp8(int64_t v) { return v < 0 ? 0 : (v > 8 ? 8 : v); }

// [a0 a2 a4 a6 b0 b2 b4 b6] and [a1 a3 a5 a7 b1 b3 b5 b7] from a = x[0..7], b = x[8..15].
inline __m256 evens(__m256 a, __m256 b) {
  __m256 e = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));  // a0 a2 b0 b2 | a4 a6 b4 b6
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(e), _MM_SHUFFLE(3, 1, 2, 0)));
}
inline __m256 odds(__m256 a, __m256 b) {
  __m256 o = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(3, 1, 3, 1));
  return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(o), _MM_SHUFFLE(3, 1, 2, 0)));
}
// Inverse of evens/odds: lo = [e0 o0 e1 o1 e2 o2 e3 o3], hi = [e4 o4 ... e7 o7].
inline void interleave(__m256 e, __m256 o, __m256* lo, __m256* hi) {
  __m256 l = _mm256_unpacklo_ps(e, o);  // e0 o0 e1 o1 | e4 o4 e5 o5
  __m256 h = _mm256_unpackhi_ps(e, o);  // e2 o2 e3 o3 | e6 o6 e7 o7
  *lo = _mm256_permute2f128_ps(l, h, 0x20);
  *hi = _mm256_permute2f128_ps(l, h, 0x31);
}

// pool_max_takes(v, m) for 8 lanes: v > m or v is NaN.
inline __m256 takes(__m256 v, __m256 m) {
  return _mm256_or_ps(_mm256_cmp_ps(v, m, _CMP_GT_OQ), _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}
// One scan step, m -> (takes(v, m) ? v : m), written so that only max + blend depend on m (2 cycles of
// latency per step instead of compare + or + blend): vmaxps(v, m) returns m when either is NaN and
// when v == m, v when v > m; the blend then lets a NaN v through.
inline __m256 scan(__m256 m, __m256 v) {
  return _mm256_blendv_ps(_mm256_max_ps(v, m), v, _mm256_cmp_ps(v, v, _CMP_UNORD_Q));
}

// x[0], x[2], ..., x[2(r-1)] for r <= 8 outputs, reading only x[0 .. 2r-2].
inline __m256 load_even_tail(const float* x, int64_t r) {
  int64_t lanes = 2 * r - 1;
  __m256 a = _mm256_maskload_ps(x, first_lanes(clamp8(lanes)));
  __m256 b = _mm256_maskload_ps(x + 8, first_lanes(clamp8(lanes - 8)));
  return evens(a, b);
}

// Loads / stores of the 8 lanes at o (full) or the first r lanes (tail).
inline __m256 load_r(const float* p, int64_t r) {
  return r == 8 ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, first_lanes(r));
}
inline void store_r(float* p, __m256 v, int64_t r) {
  if (r == 8) _mm256_storeu_ps(p, v);
  else _mm256_maskstore_ps(p, first_lanes(r), v);
}

// The tap kernels below load and store the scratch rows acc/idx as full vectors (they are padded);
// only x is read with masks at the row tail. Lanes past n may alias real outputs of the chunk (another
// tap's range), so they must leave acc and idx exactly as they are: the tail lanes of a tap hold a
// neutral value (-inf for max, -0.0 for sums) and the index update is masked to the real lanes.

// x[o*stride] for the 8 outputs at o (x is read only within the row); lanes past n hold `neutral`.
inline __m256 load_tap(const float* x, int64_t o, int64_t n, int64_t stride, __m256 neutral) {
  int64_t r = n - o < 8 ? n - o : 8;
  __m256 v;
  if (stride == 1) {
    v = load_r(x + o, r);
  } else if (o + 8 < n) {
    return evens(_mm256_loadu_ps(x + 2 * o), _mm256_loadu_ps(x + 2 * o + 8));  // x[2o+15] is in the row
  } else {
    v = load_even_tail(x + 2 * o, r);
  }
  return r == 8 ? v : _mm256_blendv_ps(neutral, v, _mm256_castsi256_ps(first_lanes(r)));
}

inline __m256 neg_inf() { return _mm256_set1_ps(-__builtin_inff()); }

void max_tap_avx2(float* acc, const float* x, int64_t n, int64_t stride) {
  if (stride != 1 && stride != 2) return pool_ukernels_portable<float>().max_tap(acc, x, n, stride);
  for (int64_t o = 0; o < n; o += 8)
    _mm256_storeu_ps(acc + o, scan(_mm256_loadu_ps(acc + o), load_tap(x, o, n, stride, neg_inf())));
}

void max_tap_idx_avx2(float* acc, int32_t* idx, const float* x, int64_t n, int64_t stride, int32_t off) {
  if (stride != 1 && stride != 2) return pool_ukernels_portable<float>().max_tap_idx(acc, idx, x, n, stride, off);
  const __m256i step = _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
                                          _mm256_set1_epi32(static_cast<int32_t>(stride)));
  const __m256i zero = _mm256_setzero_si256();
  for (int64_t o = 0; o < n; o += 8) {
    __m256 v = load_tap(x, o, n, stride, neg_inf());
    __m256 m = _mm256_loadu_ps(acc + o);
    __m256i id = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + o));
    __m256 t = _mm256_or_ps(takes(v, m), _mm256_castsi256_ps(_mm256_cmpgt_epi32(zero, id)));
    if (n - o < 8) t = _mm256_and_ps(t, _mm256_castsi256_ps(first_lanes(n - o)));
    __m256i here = _mm256_add_epi32(_mm256_set1_epi32(off + static_cast<int32_t>(o * stride)), step);
    _mm256_storeu_ps(acc + o, _mm256_blendv_ps(m, v, t));
    id = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(id), _mm256_castsi256_ps(here), t));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + o), id);
  }
}

void sum_tap_avx2(float* acc, const float* x, int64_t n, int64_t stride) {
  if (stride != 1 && stride != 2) return pool_ukernels_portable<float>().sum_tap(acc, x, n, stride);
  for (int64_t o = 0; o < n; o += 8)
    _mm256_storeu_ps(acc + o, _mm256_add_ps(_mm256_loadu_ps(acc + o), load_tap(x, o, n, stride, _mm256_set1_ps(-0.0f))));
}

void scatter_add_tap_avx2(float* dx, const float* g, int64_t n, int64_t stride) {
  if (stride != 1 && stride != 2) return pool_ukernels_portable<float>().scatter_add_tap(dx, g, n, stride);
  // Lanes past n add -0.0, which leaves every value (even -0.0) bit for bit as it was.
  const __m256 nzero = _mm256_set1_ps(-0.0f);
  for (int64_t o = 0; o < n; o += 8) {
    int64_t r = n - o < 8 ? n - o : 8;
    __m256 gv = r == 8 ? _mm256_loadu_ps(g + o)
                       : _mm256_blendv_ps(nzero, _mm256_maskload_ps(g + o, first_lanes(r)),
                                          _mm256_castsi256_ps(first_lanes(r)));
    if (stride == 1) {
      _mm256_storeu_ps(dx + o, _mm256_add_ps(_mm256_loadu_ps(dx + o), gv));
    } else {  // dx[2o] += g[o]: add [g0 -0 g1 -0 ...] to 16 consecutive elements
      __m256 lo, hi;
      interleave(gv, nzero, &lo, &hi);
      float* d = dx + 2 * o;
      _mm256_storeu_ps(d, _mm256_add_ps(_mm256_loadu_ps(d), lo));
      _mm256_storeu_ps(d + 8, _mm256_add_ps(_mm256_loadu_ps(d + 8), hi));
    }
  }
}

// Window kernels. Stride 2 keeps the lanes in the order the even-element shuffle leaves them (outputs
// 0 1 4 5 2 3 6 7) through all the taps and restores the output order once per block at the store, so
// each tap costs two loads and one shuffle. Lanes past n hold -inf (they never take the maximum).
template <int S>
struct WindowTap;

template <>
struct WindowTap<1> {
  static __m256 load(const float* x, int64_t o, int64_t n) {
    int64_t r = n - o < 8 ? n - o : 8;
    if (r == 8) return _mm256_loadu_ps(x + o);
    return _mm256_blendv_ps(neg_inf(), _mm256_maskload_ps(x + o, first_lanes(r)),
                            _mm256_castsi256_ps(first_lanes(r)));
  }
  static __m256 to_outputs(__m256 v) { return v; }
  static __m256i lane_outputs() { return _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7); }
};

template <>
struct WindowTap<2> {
  static __m256i lane_outputs() { return _mm256_setr_epi32(0, 1, 4, 5, 2, 3, 6, 7); }
  static __m256 load(const float* x, int64_t o, int64_t n) {
    const float* p = x + 2 * o;
    if (o + 8 < n) return _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _MM_SHUFFLE(2, 0, 2, 0));
    int64_t r = n - o, lanes = 2 * r - 1;  // reads x[2o .. 2o + 2r - 2] only
    __m256 v = _mm256_shuffle_ps(_mm256_maskload_ps(p, first_lanes(clamp8(lanes))),
                                 _mm256_maskload_ps(p + 8, first_lanes(clamp8(lanes - 8))), _MM_SHUFFLE(2, 0, 2, 0));
    __m256 real = _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int32_t>(r)), lane_outputs()));
    return _mm256_blendv_ps(neg_inf(), v, real);
  }
  static __m256 to_outputs(__m256 v) {
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(v), _MM_SHUFFLE(3, 1, 2, 0)));
  }
};

// Two blocks of 8 outputs per pass: each block is one dependency chain through the taps, and two
// chains keep the pipelines busy.
template <int S>
void max_window_s(float* y, const float* x, int64_t n, const int64_t* taps, int64_t ntaps) {
  using Tap = WindowTap<S>;
  int64_t o = 0;
  for (; o + 8 < n; o += 16) {
    const int64_t o2 = o + 8;
    __m256 m1 = Tap::load(x + taps[0], o, n), m2 = Tap::load(x + taps[0], o2, n);
    for (int64_t t = 1; t < ntaps; ++t) {
      m1 = scan(m1, Tap::load(x + taps[t], o, n));
      m2 = scan(m2, Tap::load(x + taps[t], o2, n));
    }
    _mm256_storeu_ps(y + o, Tap::to_outputs(m1));
    store_r(y + o2, Tap::to_outputs(m2), n - o2 < 8 ? n - o2 : 8);
  }
  if (o < n) {
    __m256 m = Tap::load(x + taps[0], o, n);
    for (int64_t t = 1; t < ntaps; ++t) m = scan(m, Tap::load(x + taps[t], o, n));
    store_r(y + o, Tap::to_outputs(m), n - o);
  }
}


// One block's argmax state: m runs the scan (a 2-cycle chain); the index follows through a mask that
// is computed off the chain.
template <int S>
struct ArgmaxLanes {
  __m256 m;
  __m256i id;
  __m256i base;  // plane offset of each lane's output, before the tap's offset
  // itap: the tap's offset in the indices' coordinates (tap itself for max_window_idx).
  void start(const float* x, int64_t tap, int64_t itap, int64_t o, int64_t n) {
    base = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int32_t>(o * S)),
                            _mm256_mullo_epi32(WindowTap<S>::lane_outputs(), _mm256_set1_epi32(S)));
    m = WindowTap<S>::load(x + tap, o, n);
    id = _mm256_add_epi32(base, _mm256_set1_epi32(static_cast<int32_t>(itap)));
  }
  void step(const float* x, int64_t tap, int64_t itap, int64_t o, int64_t n) {
    __m256 v = WindowTap<S>::load(x + tap, o, n);
    __m256 take = takes(v, m);
    m = scan(m, v);
    __m256i here = _mm256_add_epi32(base, _mm256_set1_epi32(static_cast<int32_t>(itap)));
    id = _mm256_castps_si256(_mm256_blendv_ps(_mm256_castsi256_ps(id), _mm256_castsi256_ps(here), take));
  }
  void store(int32_t* idx) const {  // idx is a padded scratch row: full stores are fine
    __m256 out = WindowTap<S>::to_outputs(_mm256_castsi256_ps(id));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx), _mm256_castps_si256(out));
  }
  void store_outputs(float* y, int32_t* idx, int64_t r) const {  // the first r (1..8) lanes only
    store_r(y, WindowTap<S>::to_outputs(m), r);
    const __m256i out = _mm256_castps_si256(WindowTap<S>::to_outputs(_mm256_castsi256_ps(id)));
    if (r == 8) _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx), out);
    else _mm256_maskstore_epi32(idx, first_lanes(r), out);
  }
};

// The blocks of a row of n outputs, two chains a pass; done(lanes, o, r) stores block o's first r lanes.
template <int S, class Done>
void argmax_blocks(const float* x, int64_t n, const int64_t* taps, const int64_t* idx_taps, int64_t ntaps, Done done) {
  int64_t o = 0;
  for (; o + 8 < n; o += 16) {
    ArgmaxLanes<S> a, b;
    a.start(x, taps[0], idx_taps[0], o, n);
    b.start(x, taps[0], idx_taps[0], o + 8, n);
    for (int64_t t = 1; t < ntaps; ++t) {
      a.step(x, taps[t], idx_taps[t], o, n);
      b.step(x, taps[t], idx_taps[t], o + 8, n);
    }
    done(a, o, 8);
    done(b, o + 8, n - o - 8 < 8 ? n - o - 8 : 8);
  }
  if (o < n) {
    ArgmaxLanes<S> a;
    a.start(x, taps[0], idx_taps[0], o, n);
    for (int64_t t = 1; t < ntaps; ++t) a.step(x, taps[t], idx_taps[t], o, n);
    done(a, o, n - o);
  }
}

template <int S>
void max_window_idx_s(int32_t* idx, const float* x, int64_t n, const int64_t* taps, int64_t ntaps) {
  argmax_blocks<S>(x, n, taps, taps, ntaps, [&](const ArgmaxLanes<S>& a, int64_t o, int64_t) { a.store(idx + o); });
}

template <int S>
void max_window_argmax_s(float* y, int32_t* idx, const float* x, int64_t n, const int64_t* taps,
                         const int64_t* idx_taps, int64_t ntaps) {
  argmax_blocks<S>(x, n, taps, idx_taps, ntaps,
                   [&](const ArgmaxLanes<S>& a, int64_t o, int64_t r) { a.store_outputs(y + o, idx + o, r); });
}


// The first `lanes` (0..8) lanes of p: a plain load when all 8 are wanted, masked otherwise (zeros).
inline __m256 load_lanes(const float* p, int64_t lanes) {
  if (lanes >= 8) return _mm256_loadu_ps(p);
  if (lanes <= 0) return _mm256_setzero_ps();
  return _mm256_maskload_ps(p, first_lanes(lanes));
}
inline void store_lanes(float* p, __m256 v, int64_t lanes) {
  if (lanes >= 8) _mm256_storeu_ps(p, v);
  else if (lanes > 0) _mm256_maskstore_ps(p, first_lanes(lanes), v);
}

// The four window elements of outputs o..o+r-1 as lanes: a = r0[2o], b = r0[2o+1], c = r1[2o], d = r1[2o+1].
inline void load_2x2(const float* r0, const float* r1, int64_t r, __m256* a, __m256* b, __m256* c, __m256* d) {
  __m256 x0 = load_lanes(r0, 2 * r), x1 = load_lanes(r0 + 8, 2 * r - 8);
  __m256 y0 = load_lanes(r1, 2 * r), y1 = load_lanes(r1 + 8, 2 * r - 8);
  *a = evens(x0, x1), *b = odds(x0, x1), *c = evens(y0, y1), *d = odds(y0, y1);
}

inline void store_pairs(float* dst, __m256 e, __m256 o, int64_t r) {
  __m256 lo, hi;
  interleave(e, o, &lo, &hi);
  store_lanes(dst, lo, 2 * r);
  store_lanes(dst + 8, hi, 2 * r - 8);
}

void max_2x2s2_avx2(const float* r0, const float* r1, float* y, int64_t n) {
  for (int64_t o = 0; o < n; o += 8) {
    int64_t r = n - o < 8 ? n - o : 8;
    __m256 a, b, c, d;
    load_2x2(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
    store_r(y + o, scan(scan(scan(a, b), c), d), r);
  }
}

void max_2x2s2_backward_avx2(const float* r0, const float* r1, const float* dy, float* d0, float* d1,
                             int64_t n) {
  for (int64_t o = 0; o < n; o += 8) {
    int64_t r = n - o < 8 ? n - o : 8;
    __m256 a, b, c, d;
    load_2x2(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
    // Scan a, b, c, d; the pick is the last element that "took" the maximum.
    __m256 tb = takes(b, a);
    __m256 m = _mm256_blendv_ps(a, b, tb);
    __m256 tc = takes(c, m);
    m = _mm256_blendv_ps(m, c, tc);
    __m256 td = takes(d, m);
    // one-hot: d if td; else c if tc; else b if tb; else a.
    __m256 pc = _mm256_andnot_ps(td, tc);
    __m256 pb = _mm256_andnot_ps(_mm256_or_ps(td, tc), tb);
    __m256 pa = _mm256_andnot_ps(_mm256_or_ps(_mm256_or_ps(td, tc), tb), _mm256_castsi256_ps(_mm256_set1_epi32(-1)));
    __m256 g = load_r(dy + o, r);
    store_pairs(d0 + 2 * o, _mm256_and_ps(pa, g), _mm256_and_ps(pb, g), r);
    store_pairs(d1 + 2 * o, _mm256_and_ps(pc, g), _mm256_and_ps(td, g), r);
  }
}

void max_2x2s2_indices_avx2(const float* r0, float* y, int32_t* idx, int64_t n, int32_t off, int64_t W) {
  const float* r1 = r0 + W;
  const __m256i two = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14);
  const __m256i one = _mm256_set1_epi32(1), row = _mm256_set1_epi32(static_cast<int32_t>(W));
  for (int64_t o = 0; o < n; o += 8) {
    int64_t r = n - o < 8 ? n - o : 8;
    __m256 a, b, c, d;
    load_2x2(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
    __m256i ia = _mm256_add_epi32(_mm256_set1_epi32(off + static_cast<int32_t>(2 * o)), two);
    __m256i ic = _mm256_add_epi32(ia, row);
    // The pick is the last element that takes the maximum in scan order a, b, c, d.
    __m256 tb = takes(b, a);
    __m256 m = scan(a, b);
    __m256 tc = takes(c, m);
    m = scan(m, c);
    __m256 td = takes(d, m);
    m = scan(m, d);
    __m256 id = _mm256_castsi256_ps(ia);
    id = _mm256_blendv_ps(id, _mm256_castsi256_ps(_mm256_add_epi32(ia, one)), tb);
    id = _mm256_blendv_ps(id, _mm256_castsi256_ps(ic), tc);
    id = _mm256_blendv_ps(id, _mm256_castsi256_ps(_mm256_add_epi32(ic, one)), td);
    store_r(y + o, m, r);
    if (r == 8) _mm256_storeu_si256(reinterpret_cast<__m256i*>(idx + o), _mm256_castps_si256(id));
    else _mm256_maskstore_epi32(idx + o, first_lanes(r), _mm256_castps_si256(id));
  }
}

// / 4 as * 0.25: a power of two and its reciprocal round alike (the portable twin divides); a division took as
// long as the rest of a block.
void avg_2x2s2_avx2(const float* r0, const float* r1, float* y, int64_t n) {
  const __m256 quarter = _mm256_set1_ps(0.25f);
  for (int64_t o = 0; o < n; o += 8) {
    int64_t r = n - o < 8 ? n - o : 8;
    __m256 a, b, c, d;
    load_2x2(r0 + 2 * o, r1 + 2 * o, r, &a, &b, &c, &d);
    __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a, b), c), d);
    store_r(y + o, _mm256_mul_ps(s, quarter), r);
  }
}

// The backward of max_2x2s2_indices from its indices, 8 outputs at a time: lane o's index compared with the four
// offsets of its window; false (that block unwritten) when it is none of them. This table had used the portable
// row kernel, which does not vectorise (a return inside its loop): LeNet-5's first pooling backward (64 x 6 x 28
// x 28, 14 outputs a row, 1 thread, Zen 3, fastest of 100 calls) took 0.79 ms with it, 0.16 ms with this.
bool max_2x2s2_backward_indices_avx2(const int32_t* idx, const float* dy, float* d0, float* d1, int64_t n,
                                     int32_t off, int64_t W) {
  const __m256i iota2 = _mm256_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14), one = _mm256_set1_epi32(1);
  const __m256 zero = _mm256_setzero_ps();
  for (int64_t o = 0; o < n; o += 8) {
    const int64_t r = n - o < 8 ? n - o : 8;
    const __m256i live = first_lanes(r);
    const __m256i id = r == 8 ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(idx + o))
                              : _mm256_maskload_epi32(idx + o, live);
    const __m256i ia = _mm256_add_epi32(_mm256_set1_epi32(off + static_cast<int32_t>(2 * o)), iota2);
    const __m256i ic = _mm256_add_epi32(ia, _mm256_set1_epi32(static_cast<int32_t>(W)));
    const __m256i pa = _mm256_cmpeq_epi32(id, ia), pb = _mm256_cmpeq_epi32(id, _mm256_add_epi32(ia, one));
    const __m256i pc = _mm256_cmpeq_epi32(id, ic), pd = _mm256_cmpeq_epi32(id, _mm256_add_epi32(ic, one));
    const __m256i any = _mm256_or_si256(_mm256_or_si256(pa, pb), _mm256_or_si256(pc, pd));
    if (_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_andnot_si256(any, live))) != 0) return false;
    const __m256 g = _mm256_add_ps(zero, load_r(dy + o, r));  // 0 + dy, as the scatter into zeros gives
    store_pairs(d0 + 2 * o, _mm256_and_ps(g, _mm256_castsi256_ps(pa)), _mm256_and_ps(g, _mm256_castsi256_ps(pb)), r);
    store_pairs(d1 + 2 * o, _mm256_and_ps(g, _mm256_castsi256_ps(pc)), _mm256_and_ps(g, _mm256_castsi256_ps(pd)), r);
  }
  return true;
}

void avg_2x2s2_backward_avx2(const float* dy, float* d0, float* d1, int64_t n) {
  const __m256 quarter = _mm256_set1_ps(0.25f);
  for (int64_t o = 0; o < n; o += 8) {
    int64_t r = n - o < 8 ? n - o : 8;
    __m256 g = _mm256_mul_ps(load_r(dy + o, r), quarter);
    store_pairs(d0 + 2 * o, g, g, r);
    store_pairs(d1 + 2 * o, g, g, r);
  }
}

}  // namespace

void pool_ukernels_fill_avx2_f32(PoolUkernels<float>& table) {
  table = PoolUkernels<float>{"avx2",
                              max_tap_avx2,
                              max_tap_idx_avx2,
                              sum_tap_avx2,
                              scatter_add_tap_avx2,
                              max_window_by_stride<max_window_s<1>, max_window_s<2>>,
                              max_window_idx_by_stride<max_window_idx_s<1>, max_window_idx_s<2>>,
                              max_window_argmax_by_stride<max_window_argmax_s<1>, max_window_argmax_s<2>>,
                              max_2x2s2_avx2,
                              max_2x2s2_backward_avx2,
                              max_2x2s2_indices_plane<float, max_2x2s2_indices_avx2>,
                              max_2x2s2_backward_indices_plane<float, max_2x2s2_backward_indices_avx2>,
                              nullptr,
                              nullptr,
                              avg_2x2s2_rows<float, avg_2x2s2_avx2>,
                              avg_2x2s2_backward_rows<float, avg_2x2s2_backward_avx2>};
}

}  // namespace nnx
