// Pooling drivers: planes split across threads, output rows in chunks, the window walked tap by tap in
// row-major order with the row micro-kernels of pool_ukernels.h. The 2x2 stride-2 case (LeNet, VGG,
// ResNet's downsampling) has its own kernels that read each input once. Max pooling whose windows reach
// past the plane (padding) runs on a copy of the plane with -inf around it (see PaddedGeometry).
#include "pool/pool.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "activation/activation.h"
#include "common/isa_table.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "pool/pool_ukernels.h"

namespace nnx {
namespace {

// ---------------------------------------------------------------------------------------------------
// Driver helpers.

// Outputs per chunk of a row: the running maxima/sums of a chunk stay in L1 while the taps stream by.
constexpr int64_t kChunk = 512;

// Outputs o whose tap at column offset c = j*dw - pw lands inside the row: 0 <= o*sw + c < W.
inline void valid_outputs(int64_t c, int64_t sw, int64_t W, int64_t OW, int64_t* lo, int64_t* hi) {
  *lo = c >= 0 ? 0 : (-c + sw - 1) / sw;
  int64_t last = W - 1 - c;  // o*sw <= last
  *hi = last < 0 ? 0 : std::min(OW, last / sw + 1);
  if (*lo > *hi) *lo = *hi;
}

// Planes per thread worth waking a thread for, given the elements one plane reads and writes.
inline Grain plane_grain(int64_t work_per_plane) {
  return Grain{std::max<int64_t>(1, kElementwiseGrain.units / std::max<int64_t>(work_per_plane, 1))};
}

// Valid output ranges of the kernel columns j, computed once per call (divisions are slow enough to
// dominate a row of a few dozen outputs).
struct TapColumns {
  static constexpr int64_t kCached = 64;
  int64_t lo[kCached], hi[kCached];
  explicit TapColumns(const Pool2dShape& s) {
    for (int64_t j = 0; j < std::min(s.kw, kCached); ++j) valid_outputs(j * s.dw - s.pw, s.sw, s.W, s.OW, &lo[j], &hi[j]);
  }
  void get(const Pool2dShape& s, int64_t j, int64_t* l, int64_t* h) const {
    if (j < kCached) *l = lo[j], *h = hi[j];
    else valid_outputs(j * s.dw - s.pw, s.sw, s.W, s.OW, l, h);
  }
};

// Walks the taps of output row oh over outputs [o0, o1) in row-major window order, calling
// tap(x_row_offset_of_first_output, first_output_index_in_chunk, count) for each in-range tap.
template <class F>
inline void for_taps(const Pool2dShape& s, const TapColumns& cols, int64_t oh, int64_t o0, int64_t o1, F tap) {
  for (int64_t i = 0; i < s.kh; ++i) {
    int64_t ih = oh * s.sh - s.ph + i * s.dh;
    if (ih < 0 || ih >= s.H) continue;
    for (int64_t j = 0; j < s.kw; ++j) {
      int64_t lo, hi;
      cols.get(s, j, &lo, &hi);
      lo = std::max(lo, o0);
      hi = std::min(hi, o1);
      if (lo >= hi) continue;
      tap(ih * s.W + lo * s.sw + j * s.dw - s.pw, lo - o0, hi - lo);
    }
  }
}

// The taps of output row oh as plane offsets relative to output 0 (ih*W + j*dw - pw, valid rows only, in
// row-major window order) and the interior [olo, ohi) of outputs whose every column is inside the row.
// Returns false when the window has more taps than the caller's array holds (kMaxTaps).
constexpr int64_t kMaxTaps = 256;
inline bool row_window(const Pool2dShape& s, const TapColumns& cols, int64_t oh, int64_t* taps,
                       int64_t* ntaps, int64_t* olo, int64_t* ohi) {
  if (s.kh * s.kw > kMaxTaps) return false;
  int64_t n = 0;
  for (int64_t i = 0; i < s.kh; ++i) {
    int64_t ih = oh * s.sh - s.ph + i * s.dh;
    if (ih < 0 || ih >= s.H) continue;
    for (int64_t j = 0; j < s.kw; ++j) taps[n++] = ih * s.W + j * s.dw - s.pw;
  }
  *ntaps = n;
  if (n == 0) return false;  // no input row under this output row (dilated windows): the generic path
  int64_t lo0, hi0, lo1, hi1;
  cols.get(s, 0, &lo0, &hi0);
  cols.get(s, s.kw - 1, &lo1, &hi1);
  *olo = lo0;
  *ohi = std::max(hi1, lo0);
  return true;
}

inline bool is_2x2s2(const Pool2dShape& s) {
  return s.kh == 2 && s.kw == 2 && s.sh == 2 && s.sw == 2 && s.ph == 0 && s.pw == 0 && s.dh == 1 &&
         s.dw == 1;
}

// Whether max_3x3s2_indices (pool_ukernels.h) runs these planes: 3x3 windows, stride 2, no dilation, padding
// 0 or 1 on both axes (ResNet's and AlexNet's pooling), on an ISA that has it, rows within its stack row.
template <class T>
bool runs_3x3s2_plane(const Pool2dShape& s, const PoolUkernels<T>& K) {
  return s.kh == 3 && s.kw == 3 && s.sh == 2 && s.sw == 2 && s.dh == 1 && s.dw == 1 && s.ph == s.pw &&
         (s.ph == 0 || s.ph == 1) && K.max_3x3s2_indices && s.OW <= kPool3x3s2MaxRow;
}

// Zeroes what the 2x2 stride-2 kernels do not write: the last column/row when W/H is odd.
template <class T>
void zero_2x2s2_leftovers(const Pool2dShape& s, T* dxp) {
  if (s.W > 2 * s.OW)
    for (int64_t r = 0; r < 2 * s.OH; ++r)
      for (int64_t c = 2 * s.OW; c < s.W; ++c) dxp[r * s.W + c] = T(0);
  if (s.H > 2 * s.OH) std::memset(dxp + 2 * s.OH * s.W, 0, sizeof(T) * (s.H - 2 * s.OH) * s.W);
}

// ---------------------------------------------------------------------------------------------------
// Padded planes. Where windows reach past the plane (padding), each clipped output at a row's
// ends took a scalar scan with bounds checks, which on 28-output rows cost as much as the vector kernel's
// whole row. Instead the plane is copied into per-thread scratch with -inf around it, where every window
// is whole and the window kernels cover every output. -inf padding never changes a maximum; it changes
// the pick only where a window's real elements are all -inf and a padded tap comes first in the scan
// (PyTorch picks the first real element). Such outputs, whose maximum is -inf, are redone by
// argmax_clipped.

constexpr int64_t kPaddedPlaneMax = int64_t{1} << 16;  // elements: the padded x and dx planes stay in L2

struct PaddedGeometry {
  int64_t Hp = 0, Wp = 0;  // the plane at (ph, pw), -inf around it out to the farthest window's reach
  int64_t ntaps = 0;
  int64_t taps[kMaxTaps];  // tap i*kw + j at i*dh*Wp + j*dw from its output's window origin
  int64_t olo = 0, ohi = 0;  // outputs whose window columns are all inside the plane's
  bool use = false;          // windows reach past the plane, and the padded plane is small enough
  explicit PaddedGeometry(const Pool2dShape& s) {
    if (s.OH <= 0 || s.OW <= 0 || s.kh * s.kw > kMaxTaps) return;
    Hp = std::max(s.H + s.ph, (s.OH - 1) * s.sh + (s.kh - 1) * s.dh + 1);
    Wp = std::max(s.W + s.pw, (s.OW - 1) * s.sw + (s.kw - 1) * s.dw + 1);
    use = (Hp > s.H || Wp > s.W) && Hp * Wp <= kPaddedPlaneMax;
    int64_t lo, hi;
    valid_outputs(-s.pw, s.sw, s.W, s.OW, &olo, &hi);
    valid_outputs((s.kw - 1) * s.dw - s.pw, s.sw, s.W, s.OW, &lo, &ohi);
    ohi = std::max(olo, std::min(ohi, hi));
    ntaps = s.kh * s.kw;
    for (int64_t i = 0; i < s.kh; ++i)
      for (int64_t j = 0; j < s.kw; ++j) taps[i * s.kw + j] = i * s.dh * Wp + j * s.dw;
  }
  // Whether output row oh's window rows are all inside the plane's.
  bool row_inside(const Pool2dShape& s, int64_t oh) const {
    return oh * s.sh - s.ph >= 0 && oh * s.sh - s.ph + (s.kh - 1) * s.dh < s.H;
  }
  int64_t origin(const Pool2dShape& s, int64_t oh, int64_t o) const { return oh * s.sh * Wp + o * s.sw; }
  int64_t padded(const Pool2dShape& s, int64_t k) const { return (k / s.W + s.ph) * Wp + k % s.W + s.pw; }
  int64_t size() const { return Hp * Wp; }
};

// The scan of output (oh, o) over its real elements only (a window clipped by the padding): the plane offset
// of the pick, -1 when the window holds no real element. Branch-free update: the outcome of each comparison
// is data, and mispredicted branches cost more than the work; the bounds skip the same taps on every row.
template <class T>
int64_t argmax_clipped(const Pool2dShape& s, const T* xp, int64_t oh, int64_t o) {
  T m = -std::numeric_limits<T>::infinity();
  int64_t k = -1;
  for (int64_t i = 0; i < s.kh; ++i) {
    const int64_t ih = oh * s.sh - s.ph + i * s.dh;
    if (ih < 0 || ih >= s.H) continue;
    for (int64_t j = 0; j < s.kw; ++j) {
      const int64_t iw = o * s.sw - s.pw + j * s.dw;
      if (iw < 0 || iw >= s.W) continue;
      const int64_t off = ih * s.W + iw;
      const T v = xp[off];
      const bool take = (k < 0) | pool_max_takes(v, m);
      m = take ? v : m;
      k = take ? off : k;
    }
  }
  return k;
}

// Output (oh, o) from the scan of its real elements, into y and the indices (-inf and -1 for a window with none).
template <class T>
void pick_clipped(const Pool2dShape& s, const T* xp, int64_t oh, int64_t o, T* y, int32_t* idx) {
  const int64_t k = argmax_clipped(s, xp, oh, o);
  *idx = static_cast<int32_t>(k);
  *y = k >= 0 ? xp[k] : -std::numeric_limits<T>::infinity();
}

// Share `part` of `parts` of the next plane's x (read) and dx (written; may be null) lines, so that memory
// streams them in while this plane is worked on in L1: the copies in and out are otherwise phases of memory
// traffic alone. 64 x 32 x 56 x 56, 3 x 3 stride 2 padding 1, 1 thread: forward 1.15x, backward without
// indices 1.14x, forward with indices 1.05x. Planes under kPrefetchPlaneBytes (LeNet-sized, whose batches
// fit in L2) are left to the hardware: with the prefetch they measured 0.89-0.96x, within this VM's noise
// for calls of 0.1-0.3 ms.
constexpr int64_t kPrefetchPlaneBytes = 4096;
template <class T>
inline void prefetch_share(const T* x, T* dx, int64_t n, int64_t part, int64_t parts) {
  constexpr int64_t kLine = 64 / sizeof(T);
  const int64_t lines = (n + kLine - 1) / kLine, l0 = lines * part / parts, l1 = lines * (part + 1) / parts;
  for (int64_t l = l0; l < l1; ++l) {
    __builtin_prefetch(x + l * kLine, 0, 3);
    if (dx) __builtin_prefetch(dx + l * kLine, 1, 3);
  }
}

// One thread's padded planes: x's border is filled once, its interior rewritten per plane.
template <class T>
struct PaddedScratch {
  std::vector<T> x, dx;
  alignas(64) int32_t idx[kChunk + kPoolRowPad];
  PaddedScratch(const PaddedGeometry& g, bool with_dx)
      : x(g.size(), -std::numeric_limits<T>::infinity()), dx(with_dx ? g.size() : 0) {}
  void load(const Pool2dShape& s, const PaddedGeometry& g, const T* xp) {
    for (int64_t r = 0; r < s.H; ++r) std::memcpy(&x[(r + s.ph) * g.Wp + s.pw], xp + r * s.W, sizeof(T) * s.W);
  }
  // idx[0 .. n) = padded-plane offsets of the picks of outputs [o0, o0 + n) of row oh; -1: none.
  void row_argmax(const Pool2dShape& s, const PaddedGeometry& g, const PoolUkernels<T>& K, const T* xp, int64_t oh,
                  int64_t o0, int64_t n) {
    const int64_t origin = g.origin(s, oh, o0);
    int64_t taps[kMaxTaps];  // from the plane's start, so that the kernel's offsets are the plane's
    for (int64_t t = 0; t < g.ntaps; ++t) taps[t] = g.taps[t] + origin;
    K.max_window_idx(idx, x.data(), n, s.sw, taps, g.ntaps);
    // Only windows that hold padding can pick it: on rows whose window rows are all inside, those at the
    // row's ends.
    int64_t lo = n, hi = n;
    if (g.row_inside(s, oh)) lo = std::clamp(g.olo - o0, int64_t{0}, n), hi = std::clamp(g.ohi - o0, lo, n);
    auto redo = [&](int64_t o) {
      if (x[idx[o]] != -std::numeric_limits<T>::infinity()) return;
      const int64_t k = argmax_clipped(s, xp, oh, o0 + o);
      idx[o] = static_cast<int32_t>(k < 0 ? -1 : g.padded(s, k));
    };
    for (int64_t o = 0; o < lo; ++o) redo(o);
    for (int64_t o = hi; o < n; ++o) redo(o);
  }
};

}  // namespace

template <class T>
const PoolUkernels<T>& pool_ukernels_table(Isa isa) {
  static const IsaTable<PoolUkernels<T>> table(
      IsaFills<PoolUkernels<T>>{pool_ukernels_fill_portable<T>,
                                pool_float_fill<T>(NNX_X86_FILL(pool_ukernels_fill_avx2_f32)),
                                pool_float_fill<T>(NNX_X86_FILL(pool_ukernels_fill_avx512_f32))});
  return table.for_isa(isa);
}

template <class T>
const PoolUkernels<T>& pool_ukernels() {
  return pool_ukernels_table<T>(active_isa());
}

template <class T>
const char* pool_kernels_name() {
  return pool_ukernels<T>().name;
}

// ---------------------------------------------------------------------------------------------------
// Max pooling.

template <class T>
void max_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int nthreads) {
  const TapColumns cols(s);
  const PoolUkernels<T>& K = pool_ukernels<T>();
  const int64_t in_plane = s.H * s.W, out_plane = s.OH * s.OW;
  const bool fast = is_2x2s2(s);
  const PaddedGeometry g(s);
  const bool prefetch = in_plane * static_cast<int64_t>(sizeof(T)) >= kPrefetchPlaneBytes;
  if (runs_3x3s2_plane(s, K)) {
    // The forward with indices' plane kernel, its picks into a scratch plane: its y is the scan's value
    // whatever it picked (a window over padding whose real elements are all -inf gives -inf either way).
    parallel_for(s.planes, plane_grain(in_plane + out_plane), nthreads, [&](int64_t p0, int64_t p1) {
      std::vector<int32_t> picks(out_plane);
      for (int64_t p = p0; p < p1; ++p) {
        const T* xp = x + p * in_plane;
        K.max_3x3s2_indices(xp, y + p * out_plane, picks.data(), s.H, s.W, s.OH, s.OW, s.ph,
                            p + 1 < p1 && prefetch ? xp + in_plane : nullptr);
      }
    });
    return;
  }
  if (!fast && g.use) {
    parallel_for(s.planes, plane_grain(in_plane + out_plane), nthreads, [&](int64_t p0, int64_t p1) {
      PaddedScratch<T> w(g, false);
      for (int64_t p = p0; p < p1; ++p) {
        w.load(s, g, x + p * in_plane);
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          if (p + 1 < p1 && prefetch) prefetch_share<T>(x + (p + 1) * in_plane, nullptr, in_plane, oh, s.OH);
          K.max_window(y + p * out_plane + oh * s.OW, w.x.data() + g.origin(s, oh, 0), s.OW, s.sw, g.taps, g.ntaps);
        }
      }
    });
    return;
  }
  parallel_for_each(s.planes, plane_grain(in_plane + out_plane), nthreads, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    alignas(64) T acc[kChunk + kPoolRowPad];
    int64_t taps[kMaxTaps];
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      T* yr = yp + oh * s.OW;
      if (fast) {
        K.max_2x2s2(xp + 2 * oh * s.W, xp + (2 * oh + 1) * s.W, yr, s.OW);
        continue;
      }
      int64_t ntaps, olo, ohi;
      if (row_window(s, cols, oh, taps, &ntaps, &olo, &ohi)) {
        // Interior outputs keep their running maximum in a register across the whole window.
        if (ohi > olo) K.max_window(yr + olo, xp + olo * s.sw, ohi - olo, s.sw, taps, ntaps);
        auto edge = [&](int64_t o) {
          const int64_t k = argmax_clipped(s, xp, oh, o);
          yr[o] = k < 0 ? -std::numeric_limits<T>::infinity() : xp[k];
        };
        for (int64_t o = 0; o < olo; ++o) edge(o);
        for (int64_t o = ohi; o < s.OW; ++o) edge(o);
        continue;
      }
      for (int64_t o0 = 0; o0 < s.OW; o0 += kChunk) {
        int64_t o1 = std::min(s.OW, o0 + kChunk);
        std::fill(acc, acc + (o1 - o0) + kPoolRowPad, -std::numeric_limits<T>::infinity());
        for_taps(s, cols, oh, o0, o1, [&](int64_t xoff, int64_t a, int64_t n) {
          K.max_tap(acc + a, xp + xoff, n, s.sw);
        });
        std::copy(acc, acc + (o1 - o0), yr + o0);
      }
    }
  });
}

namespace {

// Scratch of one thread for the argmax of a chunk of an output row.
template <class T>
struct ArgmaxScratch {
  alignas(64) T best[kChunk + kPoolRowPad];
  alignas(64) int32_t idx[kChunk + kPoolRowPad];
  int64_t taps[kMaxTaps];
};

// idx[0 .. o1-o0) = plane offsets of the elements the scan picks for outputs [o0, o1) of row oh.
template <class T>
void row_argmax(const Pool2dShape& s, const TapColumns& cols, const PoolUkernels<T>& K, const T* xp,
                int64_t oh, int64_t o0, int64_t o1, ArgmaxScratch<T>& w) {
  int32_t* idx = w.idx;
  int64_t ntaps, olo, ohi;
  if (o0 == 0 && o1 == s.OW && row_window(s, cols, oh, w.taps, &ntaps, &olo, &ohi)) {
    // The interior first (its full-vector stores into the padded scratch may run past ohi, where the
    // edges then overwrite them), with the taps shifted so that idx comes out as plane offsets.
    if (ohi > olo) {
      for (int64_t t = 0; t < ntaps; ++t) w.taps[t] += olo * s.sw;
      K.max_window_idx(idx + olo, xp, ohi - olo, s.sw, w.taps, ntaps);
      for (int64_t t = 0; t < ntaps; ++t) w.taps[t] -= olo * s.sw;
    }
    for (int64_t o = 0; o < olo; ++o) idx[o] = static_cast<int32_t>(argmax_clipped(s, xp, oh, o));
    for (int64_t o = ohi; o < s.OW; ++o) idx[o] = static_cast<int32_t>(argmax_clipped(s, xp, oh, o));
    return;
  }
  std::fill(w.best, w.best + (o1 - o0) + kPoolRowPad, -std::numeric_limits<T>::infinity());
  std::fill(idx, idx + (o1 - o0) + kPoolRowPad, -1);
  for_taps(s, cols, oh, o0, o1, [&](int64_t xoff, int64_t a, int64_t n) {
    K.max_tap_idx(w.best + a, idx + a, xp + xoff, n, s.sw, static_cast<int32_t>(xoff));
  });
  // A dilated window can fall entirely on padding (e.g. kernel 2, dilation 3, padding 1 on a width of
  // 2): its idx stays -1, its output is -inf and it passes no gradient on (PyTorch returns an index
  // outside the plane there).
}

}  // namespace

template <class T>
void max_pool2d_backward(const Pool2dShape& s, const T* dy, const T* x, T* dx, int nthreads) {
  const TapColumns cols(s);
  const PoolUkernels<T>& K = pool_ukernels<T>();
  const int64_t in_plane = s.H * s.W, out_plane = s.OH * s.OW;
  const bool fast = is_2x2s2(s);
  const PaddedGeometry g(s);
  const bool prefetch = in_plane * static_cast<int64_t>(sizeof(T)) >= kPrefetchPlaneBytes;
  if (!fast && g.use) {
    // The gradient gathers in a padded plane too (the picks are its offsets), copied out at the end.
    parallel_for(s.planes, plane_grain(2 * in_plane + out_plane), nthreads, [&](int64_t p0, int64_t p1) {
      PaddedScratch<T> w(g, true);
      for (int64_t p = p0; p < p1; ++p) {
        const T* xp = x + p * in_plane;
        w.load(s, g, xp);
        std::fill(w.dx.begin(), w.dx.end(), T(0));
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          if (p + 1 < p1 && prefetch)
            prefetch_share(x + (p + 1) * in_plane, dx + (p + 1) * in_plane, in_plane, oh, s.OH);
          const T* dyr = dy + p * out_plane + oh * s.OW;
          for (int64_t o0 = 0; o0 < s.OW; o0 += kChunk) {
            const int64_t n = std::min(s.OW - o0, kChunk);
            w.row_argmax(s, g, K, xp, oh, o0, n);
            // In output order, so overlapping windows add up in the same order on any thread count.
            for (int64_t o = 0; o < n; ++o)
              if (w.idx[o] >= 0) w.dx[w.idx[o]] += dyr[o0 + o];
          }
        }
        T* dxp = dx + p * in_plane;
        for (int64_t r = 0; r < s.H; ++r)
          std::memcpy(dxp + r * s.W, &w.dx[(r + s.ph) * g.Wp + s.pw], sizeof(T) * s.W);
      }
    });
    return;
  }
  parallel_for_each(s.planes, plane_grain(2 * in_plane + out_plane), nthreads, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    const T* dyp = dy + p * out_plane;
    T* dxp = dx + p * in_plane;
    if (fast) {
      for (int64_t oh = 0; oh < s.OH; ++oh)
        K.max_2x2s2_backward(xp + 2 * oh * s.W, xp + (2 * oh + 1) * s.W, dyp + oh * s.OW,
                             dxp + 2 * oh * s.W, dxp + (2 * oh + 1) * s.W, s.OW);
      zero_2x2s2_leftovers(s, dxp);
      return;
    }
    std::memset(dxp, 0, sizeof(T) * in_plane);
    ArgmaxScratch<T> w;
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      const T* dyr = dyp + oh * s.OW;
      for (int64_t o0 = 0; o0 < s.OW; o0 += kChunk) {
        int64_t o1 = std::min(s.OW, o0 + kChunk);
        row_argmax(s, cols, K, xp, oh, o0, o1, w);
        // In output order, so overlapping windows add up in the same order on any thread count.
        for (int64_t o = 0; o < o1 - o0; ++o)
          if (w.idx[o] >= 0) dxp[w.idx[o]] += dyr[o0 + o];
      }
    }
  });
}

template <class T>
void max_pool2d_forward_indices(const Pool2dShape& s, const T* x, T* y, int32_t* indices, int nthreads) {
  const TapColumns cols(s);
  const PoolUkernels<T>& K = pool_ukernels<T>();
  const int64_t in_plane = s.H * s.W, out_plane = s.OH * s.OW;
  const bool fast = is_2x2s2(s);
  const PaddedGeometry g(s);
  const bool prefetch = in_plane * static_cast<int64_t>(sizeof(T)) >= kPrefetchPlaneBytes;
  if (runs_3x3s2_plane(s, K)) {
    parallel_for(s.planes, plane_grain(in_plane + 2 * out_plane), nthreads, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        const T* xp = x + p * in_plane;
        T* yp = y + p * out_plane;
        int32_t* ip = indices + p * out_plane;
        const T* next = p + 1 < p1 && prefetch ? xp + in_plane : nullptr;
        if (!K.max_3x3s2_indices(xp, yp, ip, s.H, s.W, s.OH, s.OW, s.ph, next)) continue;
        // Some window picked -inf: the padding's, unless its real elements are all -inf. The clipped scan
        // picks among the real ones (for a window inside the plane, the same pick).
        for (int64_t o = 0; o < out_plane; ++o)
          if (yp[o] == -std::numeric_limits<T>::infinity()) pick_clipped(s, xp, o / s.OW, o % s.OW, yp + o, ip + o);
      }
    });
    return;
  }
  if (!fast && g.use) {
    // The taps in the unpadded plane: tap i*kw + j lies i*dh rows and j*dw columns from its output's window
    // origin there as in the padded copy, so the kernel writes plane offsets and values straight into the
    // outputs: a scalar pass converting padded picks and loading their values cost more than the windows
    // (64x32x56x56, 3x3 stride 2 padding 1, 1 thread: 1.5-1.6x with it gone; 2 threads 1.4x).
    int64_t plane_taps[kMaxTaps];
    for (int64_t i = 0; i < s.kh; ++i)
      for (int64_t j = 0; j < s.kw; ++j) plane_taps[i * s.kw + j] = i * s.dh * s.W + j * s.dw;
    parallel_for(s.planes, plane_grain(in_plane + 2 * out_plane), nthreads, [&](int64_t p0, int64_t p1) {
      PaddedScratch<T> w(g, false);
      int64_t taps[kMaxTaps], idx_taps[kMaxTaps];
      for (int64_t p = p0; p < p1; ++p) {
        const T* xp = x + p * in_plane;
        w.load(s, g, xp);
        for (int64_t oh = 0; oh < s.OH; ++oh) {
          if (p + 1 < p1 && prefetch) prefetch_share<T>(x + (p + 1) * in_plane, nullptr, in_plane, oh, s.OH);
          const int64_t origin = g.origin(s, oh, 0), plane_origin = (oh * s.sh - s.ph) * s.W - s.pw;
          for (int64_t t = 0; t < g.ntaps; ++t) {
            taps[t] = g.taps[t] + origin;
            idx_taps[t] = plane_taps[t] + plane_origin;
          }
          T* yr = y + p * out_plane + oh * s.OW;
          int32_t* ir = indices + p * out_plane + oh * s.OW;
          K.max_window_argmax(yr, ir, w.x.data(), s.OW, s.sw, taps, idx_taps, g.ntaps);
          // A window that holds padding picks it when its real elements are all -inf (or it has none):
          // those take the scan of their real elements. Only windows at a row's ends hold padding, unless
          // the window's rows reach past the plane's.
          int64_t lo = s.OW, hi = s.OW;
          if (g.row_inside(s, oh)) lo = std::clamp(g.olo, int64_t{0}, s.OW), hi = std::clamp(g.ohi, lo, s.OW);
          auto redo = [&](int64_t o) {
            if (yr[o] == -std::numeric_limits<T>::infinity()) pick_clipped(s, xp, oh, o, yr + o, ir + o);
          };
          for (int64_t o = 0; o < lo; ++o) redo(o);
          for (int64_t o = hi; o < s.OW; ++o) redo(o);
        }
      }
    });
    return;
  }
  parallel_for_each(s.planes, plane_grain(in_plane + 2 * out_plane), nthreads, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    if (fast) {
      K.max_2x2s2_indices(xp, y + p * out_plane, indices + p * out_plane, s.OH, s.OW, s.W);
      return;
    }
    ArgmaxScratch<T> w;
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      T* yr = y + p * out_plane + oh * s.OW;
      int32_t* ir = indices + p * out_plane + oh * s.OW;
      int64_t ntaps, olo, ohi;
      if (row_window(s, cols, oh, w.taps, &ntaps, &olo, &ohi)) {
        // The interior straight into the outputs (its taps are plane offsets: they index too), the
        // windows at the row's ends by the clipped scan.
        if (ohi > olo) {
          for (int64_t t = 0; t < ntaps; ++t) w.taps[t] += olo * s.sw;
          K.max_window_argmax(yr + olo, ir + olo, xp, ohi - olo, s.sw, w.taps, w.taps, ntaps);
        }
        for (int64_t o = 0; o < olo; ++o) pick_clipped(s, xp, oh, o, yr + o, ir + o);
        for (int64_t o = ohi; o < s.OW; ++o) pick_clipped(s, xp, oh, o, yr + o, ir + o);
        continue;
      }
      for (int64_t o0 = 0; o0 < s.OW; o0 += kChunk) {
        int64_t o1 = std::min(s.OW, o0 + kChunk);
        row_argmax(s, cols, K, xp, oh, o0, o1, w);
        for (int64_t o = 0; o < o1 - o0; ++o) {
          ir[o0 + o] = w.idx[o];
          yr[o0 + o] = w.idx[o] >= 0 ? xp[w.idx[o]] : -std::numeric_limits<T>::infinity();
        }
      }
    }
  });
}

// Rows of fewer than this many outputs (under one vector of the AVX2 row kernel) take the scatter instead
// of max_2x2s2_backward_indices: its memset and scalar adds cost less there than the row kernel's per-row
// masks (1 thread, fastest of 3 x 300 alternated calls): 64x16x10x10 (5 outputs a row) 29.4 -> 21.1 us;
// 6 a row even; 8 a row the row kernel 1.12x faster, 14 (64x6x28x28) 1.26x.
constexpr int64_t kPoolRowKernelMinOutputs = 8;

template <class T>
bool max_pool2d_backward_indices(const Pool2dShape& s, const T* dy, const int32_t* indices, T* dx,
                                 int nthreads) {
  const int64_t in_plane = s.H * s.W, out_plane = s.OH * s.OW;
  const PoolUkernels<T>& K = pool_ukernels<T>();
  // Small planes of more than one vector of outputs: LeNet-5's 64x16x10x10 (25 outputs a plane) 29.5 -> 20.6 us
  // against the scatter (1 thread, fastest of 5 x 5 x 300 alternated calls); 8x8 planes (16 outputs) even, 6x6
  // (9) 0.88x, the scatter's memset and few adds costing less than the kernel's loads and setup.
  const bool small = is_2x2s2(s) && K.max_2x2s2_backward_indices_small && out_plane <= kPoolSmallPlaneOutputs &&
                     out_plane > kPoolSmallPlaneOutputs / 2 && 2 * s.OW <= kPoolSmallPlaneRow;
  const bool fast = is_2x2s2(s) && s.OW >= kPoolRowKernelMinOutputs;
  int bad = 0;
  parallel_for_each(s.planes, plane_grain(2 * in_plane + out_plane), nthreads, [&](int64_t p) {
    const T* dyp = dy + p * out_plane;
    const int32_t* ip = indices + p * out_plane;
    T* dxp = dx + p * in_plane;
    // 2x2 stride 2 whose indices each name an element of their own window (as max_pool2d's do): every dx
    // element written once, no zeroing pass; otherwise the scatter below, which also validates.
    if (small || fast) {
      if ((small ? K.max_2x2s2_backward_indices_small : K.max_2x2s2_backward_indices)(ip, dyp, dxp, s.OH, s.OW, s.W)) {
        zero_2x2s2_leftovers(s, dxp);
        return;
      }
    }
    std::memset(dxp, 0, sizeof(T) * in_plane);
    bool ok = true;
    // One unsigned compare admits exactly [0, in_plane) (int32 indices reach at most 2^31 - 1). The bound is a
    // local: the captured in_plane was re-read after every store through dxp, and with the two compares this
    // loop ran 1.2x slower (64x6x28x28, 3x3 stride 2: 80 -> 66 us at 1 thread).
    const uint32_t n_in = static_cast<uint32_t>(std::min<int64_t>(in_plane, int64_t(1) << 31));
    for (int64_t o = 0; o < out_plane; ++o) {
      const int32_t k = ip[o];
      if (static_cast<uint32_t>(k) < n_in) dxp[k] += dyp[o];
      else if (k != -1) ok = false;
    }
    if (!ok) {
#if defined(NNX_OPENMP)
#pragma omp atomic write
#endif
      bad = 1;
    }
  });
  return bad == 0;
}

// ---------------------------------------------------------------------------------------------------
// Average pooling (count_include_pad: every window is divided by kh*kw).

template <class T>
void avg_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int nthreads) {
  const PoolUkernels<T>& K = pool_ukernels<T>();
  const int64_t in_plane = s.H * s.W, out_plane = s.OH * s.OW;
  const T count = static_cast<T>(s.kh * s.kw);
  if (is_2x2s2(s)) {
    if (s.H == 2 * s.OH) {  // all planes' output rows as one run: a thread's range in one call
      parallel_for(s.planes * s.OH, plane_grain(2 * s.W + s.OW), nthreads, [&](int64_t r0, int64_t r1) {
        K.avg_2x2s2(x + 2 * r0 * s.W, y + r0 * s.OW, r1 - r0, s.OW, s.W);
      });
    } else {
      parallel_for_each(s.planes, plane_grain(in_plane + out_plane), nthreads, [&](int64_t p) {
        K.avg_2x2s2(x + p * in_plane, y + p * out_plane, s.OH, s.OW, s.W);
      });
    }
    return;
  }
  const TapColumns cols(s);
  parallel_for_each(s.planes, plane_grain(in_plane + out_plane), nthreads, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    T* yp = y + p * out_plane;
    alignas(64) T acc[kChunk + kPoolRowPad];
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      T* yr = yp + oh * s.OW;
      for (int64_t o0 = 0; o0 < s.OW; o0 += kChunk) {
        int64_t o1 = std::min(s.OW, o0 + kChunk);
        std::fill(acc, acc + (o1 - o0) + kPoolRowPad, T(0));
        for_taps(s, cols, oh, o0, o1, [&](int64_t xoff, int64_t a, int64_t n) {
          K.sum_tap(acc + a, xp + xoff, n, s.sw);
        });
        for (int64_t o = 0; o < o1 - o0; ++o) yr[o0 + o] = acc[o] / count;
      }
    }
  });
}

template <class T>
void avg_pool2d_backward(const Pool2dShape& s, const T* dy, T* dx, int nthreads) {
  const PoolUkernels<T>& K = pool_ukernels<T>();
  const int64_t in_plane = s.H * s.W, out_plane = s.OH * s.OW;
  const T count = static_cast<T>(s.kh * s.kw);
  if (is_2x2s2(s)) {
    if (s.H == 2 * s.OH && s.W == 2 * s.OW) {  // windows tile every plane: all rows as one run, nothing left over
      parallel_for(s.planes * s.OH, plane_grain(4 * s.W + s.OW), nthreads, [&](int64_t r0, int64_t r1) {
        K.avg_2x2s2_backward(dy + r0 * s.OW, dx + 2 * r0 * s.W, r1 - r0, s.OW, s.W);
      });
    } else {
      parallel_for_each(s.planes, plane_grain(2 * in_plane + out_plane), nthreads, [&](int64_t p) {
        K.avg_2x2s2_backward(dy + p * out_plane, dx + p * in_plane, s.OH, s.OW, s.W);
        zero_2x2s2_leftovers(s, dx + p * in_plane);
      });
    }
    return;
  }
  const TapColumns cols(s);
  parallel_for_each(s.planes, plane_grain(2 * in_plane + out_plane), nthreads, [&](int64_t p) {
    const T* dyp = dy + p * out_plane;
    T* dxp = dx + p * in_plane;
    std::memset(dxp, 0, sizeof(T) * in_plane);
    alignas(64) T g[kChunk + kPoolRowPad];
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      const T* dyr = dyp + oh * s.OW;
      for (int64_t o0 = 0; o0 < s.OW; o0 += kChunk) {
        int64_t o1 = std::min(s.OW, o0 + kChunk);
        for (int64_t o = o0; o < o1; ++o) g[o - o0] = dyr[o] / count;
        for_taps(s, cols, oh, o0, o1, [&](int64_t xoff, int64_t a, int64_t n) {
          if (xoff + pool_scatter_reach(n, s.sw) <= in_plane) K.scatter_add_tap(dxp + xoff, g + a, n, s.sw);
          else pool_ukernels_portable<T>().scatter_add_tap(dxp + xoff, g + a, n, s.sw);
        });
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Power-average (Lp) pooling. Not a hot path in the usual networks: scalar loops, with p = 1 and p = 2
// spelled out so they avoid std::pow.

namespace {

template <class T>
inline T lp_pow(T v, T p) {
  if (p == T(1)) return v;
  if (p == T(2)) return v * v;
  return std::pow(v, p);
}

template <class T>
inline T lp_root(T sum, T p) {
  if (p == T(1)) return sum;
  if (p == T(2)) return std::sqrt(sum);
  return std::pow(sum, T(1) / p);
}

// Window sums of x^p for outputs [o0, o1) of row oh into acc (zeroed first).
template <class T>
void lp_row_sums(const Pool2dShape& s, const TapColumns& cols, T p, const T* xp, int64_t oh, int64_t o0, int64_t o1, T* acc) {
  std::fill(acc, acc + (o1 - o0), T(0));
  for_taps(s, cols, oh, o0, o1, [&](int64_t xoff, int64_t a, int64_t n) {
    const T* xr = xp + xoff;
    for (int64_t o = 0; o < n; ++o) acc[a + o] += lp_pow(xr[o * s.sw], p);
  });
}

}  // namespace

template <class T>
void lp_pool2d_forward(const Pool2dShape& s, T p, const T* x, T* y, int nthreads) {
  const TapColumns cols(s);
  const int64_t in_plane = s.H * s.W, out_plane = s.OH * s.OW;
  parallel_for_each(s.planes, plane_grain(4 * (in_plane + out_plane)), nthreads, [&](int64_t p_) {
    const T* xp = x + p_ * in_plane;
    T* yp = y + p_ * out_plane;
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      for (int64_t o0 = 0; o0 < s.OW; o0 += kChunk) {
        int64_t o1 = std::min(s.OW, o0 + kChunk);
        T* yr = yp + oh * s.OW + o0;
        lp_row_sums(s, cols, p, xp, oh, o0, o1, yr);
        for (int64_t o = 0; o < o1 - o0; ++o) yr[o] = lp_root(yr[o], p);
      }
    }
  });
}

template <class T>
void lp_pool2d_backward(const Pool2dShape& s, T p, const T* dy, const T* x, T* dx, int nthreads) {
  const TapColumns cols(s);
  const int64_t in_plane = s.H * s.W, out_plane = s.OH * s.OW;
  parallel_for_each(s.planes, plane_grain(4 * (2 * in_plane + out_plane)), nthreads, [&](int64_t p_) {
    const T* xp = x + p_ * in_plane;
    const T* dyp = dy + p_ * out_plane;
    T* dxp = dx + p_ * in_plane;
    std::memset(dxp, 0, sizeof(T) * in_plane);
    alignas(64) T g[kChunk];
    for (int64_t oh = 0; oh < s.OH; ++oh) {
      for (int64_t o0 = 0; o0 < s.OW; o0 += kChunk) {
        int64_t o1 = std::min(s.OW, o0 + kChunk);
        lp_row_sums(s, cols, p, xp, oh, o0, o1, g);
        // g = dy * y^(1-p), 0 where the window's sum is 0 (PyTorch's choice instead of 0 * inf).
        for (int64_t o = 0; o < o1 - o0; ++o) {
          T sum = g[o], d = dyp[oh * s.OW + o0 + o];
          if (sum == T(0)) g[o] = T(0);
          else if (p == T(1)) g[o] = d;
          else if (p == T(2)) g[o] = d / std::sqrt(sum);
          else g[o] = d * std::pow(lp_root(sum, p), T(1) - p);
        }
        for_taps(s, cols, oh, o0, o1, [&](int64_t xoff, int64_t a, int64_t n) {
          const T* xr = xp + xoff;
          T* dr = dxp + xoff;
          if (p == T(1)) {
            for (int64_t o = 0; o < n; ++o) dr[o * s.sw] += g[a + o];
          } else if (p == T(2)) {
            for (int64_t o = 0; o < n; ++o) dr[o * s.sw] += xr[o * s.sw] * g[a + o];
          } else {
            for (int64_t o = 0; o < n; ++o) dr[o * s.sw] += std::pow(xr[o * s.sw], p - T(1)) * g[a + o];
          }
        });
      }
    }
  });
}

// ---------------------------------------------------------------------------------------------------
// Global average pooling: one sum per plane, in 8 interleaved partial sums combined in a fixed order
// (the compiler vectorises the 8 independent chains; the order does not depend on threads).

template <class T>
void global_avg_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int nthreads) {
  const int64_t in_plane = s.H * s.W;
  parallel_for_each(s.planes, plane_grain(in_plane), nthreads, [&](int64_t p) {
    const T* xp = x + p * in_plane;
    T part[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    int64_t i = 0;
    for (; i + 8 <= in_plane; i += 8)
      for (int k = 0; k < 8; ++k) part[k] += xp[i + k];
    for (int k = 0; i < in_plane; ++i, ++k) part[k] += xp[i];
    T sum = ((part[0] + part[4]) + (part[1] + part[5])) + ((part[2] + part[6]) + (part[3] + part[7]));
    y[p] = sum / static_cast<T>(in_plane);
  });
}

template <class T>
void global_avg_pool2d_backward(const Pool2dShape& s, const T* dy, T* dx, int nthreads) {
  const int64_t in_plane = s.H * s.W;
  parallel_for_each(s.planes, plane_grain(in_plane), nthreads, [&](int64_t p) {
    T g = dy[p] / static_cast<T>(in_plane);
    std::fill(dx + p * in_plane, dx + (p + 1) * in_plane, g);
  });
}

// The ReLU runs on each block of planes right after its pooling (forward) or before its scatter (backward),
// while the block's outputs are in L1: a pass of its own over the pooled array, and a masked copy of dy
// through memory, cost LeNet-5 more than the mask saved in the convolution's backward. The act family's
// kernels: the same relu and mask as a conv's fused ReLU, so the bits of Conv2d+ReLU, then the pooling.
constexpr int64_t kReluBlockOutputs = 2048;

// Calls body(sub, p) for blocks of planes p .. p + sub.planes - 1 (sub: s over that many planes), each
// about kReluBlockOutputs outputs, the blocks split across threads.
template <class F>
void for_plane_blocks(const Pool2dShape& s, int nthreads, F body) {
  const int64_t out_plane = s.OH * s.OW;
  const int64_t per = std::max<int64_t>(1, kReluBlockOutputs / std::max<int64_t>(out_plane, 1));
  const int64_t blocks = (s.planes + per - 1) / per;
  parallel_for_each(blocks, plane_grain((s.H * s.W + out_plane) * per), nthreads, [&](int64_t b) {
    Pool2dShape sub = s;
    sub.planes = std::min(per, s.planes - b * per);
    body(sub, b * per);
  });
}

template <class T>
void max_pool2d_relu_forward_indices(const Pool2dShape& s, const T* x, T* y, int32_t* indices, int nthreads) {
  const int64_t in_plane = s.H * s.W, out_plane = s.OH * s.OW;
  for_plane_blocks(s, nthreads, [&](const Pool2dShape& sub, int64_t p) {
    T* yb = y + p * out_plane;
    max_pool2d_forward_indices(sub, x + p * in_plane, yb, indices + p * out_plane, 1);
    act_forward_inplace<T>(Act::relu, yb, sub.planes * out_plane, T(0));
  });
}

template <class T>
bool max_pool2d_relu_backward_indices(const Pool2dShape& s, const T* dy, const T* y, const int32_t* indices, T* dx,
                                      int nthreads) {
  const int64_t in_plane = s.H * s.W, out_plane = s.OH * s.OW;
  std::atomic<bool> ok{true};
  for_plane_blocks(s, nthreads, [&](const Pool2dShape& sub, int64_t p) {
    const int64_t n = sub.planes * out_plane;
    T* masked = workspace_as<T>(kWsPool, static_cast<size_t>(n));  // the running thread's
    act_backward_from_output<T>(Act::relu, dy + p * out_plane, y + p * out_plane, masked, n, T(0), 1);
    if (!max_pool2d_backward_indices(sub, masked, indices + p * out_plane, dx + p * in_plane, 1))
      ok.store(false, std::memory_order_relaxed);
  });
  return ok.load();
}

#define NNX_POOL_INSTANTIATE(T)                                                                  \
  template const char* pool_kernels_name<T>();                                                   \
  template void max_pool2d_forward<T>(const Pool2dShape&, const T*, T*, int);                    \
  template void max_pool2d_backward<T>(const Pool2dShape&, const T*, const T*, T*, int);         \
  template void max_pool2d_forward_indices<T>(const Pool2dShape&, const T*, T*, int32_t*, int);  \
  template bool max_pool2d_backward_indices<T>(const Pool2dShape&, const T*, const int32_t*, T*, int); \
  template void max_pool2d_relu_forward_indices<T>(const Pool2dShape&, const T*, T*, int32_t*, int); \
  template bool max_pool2d_relu_backward_indices<T>(const Pool2dShape&, const T*, const T*, const int32_t*, T*, \
                                                    int);                                           \
  template void avg_pool2d_forward<T>(const Pool2dShape&, const T*, T*, int);                    \
  template void avg_pool2d_backward<T>(const Pool2dShape&, const T*, T*, int);                   \
  template void lp_pool2d_forward<T>(const Pool2dShape&, T, const T*, T*, int);                  \
  template void lp_pool2d_backward<T>(const Pool2dShape&, T, const T*, const T*, T*, int);       \
  template void global_avg_pool2d_forward<T>(const Pool2dShape&, const T*, T*, int);             \
  template void global_avg_pool2d_backward<T>(const Pool2dShape&, const T*, T*, int);

NNX_POOL_INSTANTIATE(float)
NNX_POOL_INSTANTIATE(double)


}  // namespace nnx
