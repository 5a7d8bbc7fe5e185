// The layout kernels (layout.h): rows of the innermost axis, split across threads.
#include "layout/layout.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "common/threads.h"
#include "gemm/gemm.h"

namespace nnx {
namespace {

// g with its axes of length 1 dropped and each axis merged into the one inside it wherever both arrays step over
// the pair as over one axis (the usual case: both C-contiguous, one axis of all the elements). Without it a
// conv weight's gradient (K, C, 3, 3) added into its .grad went as rows of 3 elements, each with its own index
// arithmetic: 0.73 ms for (256, 128, 3, 3), NumPy's in-place add 0.05 ms (Xeon, 1 thread).
StridedPair merged_axes(const StridedPair& g) {
  StridedPair m;
  for (int d = 0; d < g.ndim; ++d) {
    if (g.shape[d] == 0) return g;  // nothing to visit: for_rows returns at once
    if (g.shape[d] == 1) continue;
    const int last = m.ndim - 1;
    if (m.ndim > 0 && m.src[last] == g.src[d] * g.shape[d] && m.dst[last] == g.dst[d] * g.shape[d]) {
      m.shape[last] *= g.shape[d];
      m.src[last] = g.src[d];
      m.dst[last] = g.dst[d];
      continue;
    }
    m.shape[m.ndim] = g.shape[d];
    m.src[m.ndim] = g.src[d];
    m.dst[m.ndim] = g.dst[d];
    ++m.ndim;
  }
  return m;  // ndim 0 where every axis had length 1: one element
}

// Calls row(src_offset, dst_offset, len, src_step, dst_step) for every row of the innermost axis (of the merged
// axes: merged_axes), a row longer than kElementwiseGrain in pieces of that length, so that the threads share
// one long row (all of a contiguous array) as they share many short ones.
template <class Row>
void for_rows(const StridedPair& given, int nthreads, Row row) {
  const StridedPair g = merged_axes(given);
  if (g.ndim == 0) {
    row(int64_t{0}, int64_t{0}, int64_t{1}, int64_t{0}, int64_t{0});
    return;
  }
  const int last = g.ndim - 1;
  const int64_t inner = g.shape[last];
  int64_t rows = 1;
  for (int d = 0; d < last; ++d) rows *= g.shape[d];
  if (rows == 0 || inner == 0) return;
  const int64_t piece = std::min(inner, kElementwiseGrain.units), pieces = (inner + piece - 1) / piece;
  const Grain grain{std::max<int64_t>(1, kElementwiseGrain.units / piece)};
  parallel_for(rows * pieces, grain, nthreads, [&](int64_t b, int64_t e) {
    for (int64_t u = b; u < e; ++u) {
      const int64_t r = u / pieces, q0 = (u % pieces) * piece;
      int64_t rest = r, so = 0, dof = 0;
      for (int d = last - 1; d >= 0; --d) {
        const int64_t i = rest % g.shape[d];
        rest /= g.shape[d];
        so += i * g.src[d];
        dof += i * g.dst[d];
      }
      row(so + q0 * g.src[last], dof + q0 * g.dst[last], std::min(piece, inner - q0), g.src[last], g.dst[last]);
    }
  });
}

// The float type of T's size, whose blocked transpose (gemm.h's transpose_matrix) copies T's bits.
template <class T>
struct BitsAs {
  using type = void;
};
template <>
struct BitsAs<uint32_t> {
  using type = float;
};
template <>
struct BitsAs<uint64_t> {
  using type = double;
};

// Rows of a transposed block per unit of work: whole cache lines of the destination's rows.
constexpr int64_t kTransposeRows = 64;

// A copy whose two innermost axes are swapped between src and dst (a transposed view made contiguous: attention's
// k^T, a gradient handed back through a transpose) by blocked transposes, or false where the layout is another.
// Element by element, each step of the inner loop read a line of its own: 1 MiB of a (32, 64, 128) float view
// took 85 us in NumPy, 53 us so. Every element is copied once, so the result does not depend on the thread count.
template <class T>
bool copy_transposed(const T* src, T* dst, const StridedPair& g, int nthreads) {
  using F = typename BitsAs<T>::type;
  if constexpr (std::is_void_v<F>) {
    return false;
  } else {
    if (g.ndim < 2) return false;
    const int r = g.ndim - 2, c = g.ndim - 1;  // dst is (rows r, columns c), src contiguous along r
    const int64_t rows = g.shape[r], cols = g.shape[c];
    if (g.src[r] != 1 || g.dst[c] != 1 || g.src[c] < rows || g.dst[r] < cols || rows < 8 || cols < 8) return false;
    int64_t outer = 1;
    for (int d = 0; d < r; ++d) outer *= g.shape[d];
    const int64_t chunks = (rows + kTransposeRows - 1) / kTransposeRows;
    const Grain grain{std::max<int64_t>(1, kElementwiseGrain.units / (kTransposeRows * cols))};
    parallel_for(outer * chunks, grain, nthreads, [&](int64_t u0, int64_t u1) {
      for (int64_t u = u0; u < u1; ++u) {
        int64_t rest = u / chunks, so = 0, dof = 0;
        for (int d = r - 1; d >= 0; --d) {
          const int64_t i = rest % g.shape[d];
          rest /= g.shape[d];
          so += i * g.src[d];
          dof += i * g.dst[d];
        }
        const int64_t r0 = (u % chunks) * kTransposeRows, n = std::min(kTransposeRows, rows - r0);
        // dst(r0 + j, i) = src(r0 + j, i) = src[(r0 + j) + i * src[c]]: the transpose of the cols x n matrix at src + r0.
        transpose_matrix<F>(cols, n, reinterpret_cast<const F*>(src + so + r0), g.src[c],
                            reinterpret_cast<F*>(dst + dof + r0 * g.dst[r]), g.dst[r]);
      }
    });
    return true;
  }
}

}  // namespace

template <class T>
void layout_copy(const T* src, T* dst, const StridedPair& g, int nthreads) {
  if (copy_transposed(src, dst, g, nthreads)) return;
  for_rows(g, nthreads, [=](int64_t so, int64_t dof, int64_t n, int64_t ss, int64_t ds) {
    const T* s = src + so;
    T* d = dst + dof;
    if (ss == 1 && ds == 1) {
      std::memcpy(d, s, static_cast<size_t>(n) * sizeof(T));
      return;
    }
    for (int64_t i = 0; i < n; ++i) d[i * ds] = s[i * ss];
  });
}

template <class T>
void layout_add(const T* src, T* dst, const StridedPair& g, int nthreads) {
  for_rows(g, nthreads, [=](int64_t so, int64_t dof, int64_t n, int64_t ss, int64_t ds) {
    const T* s = src + so;
    T* d = dst + dof;
    if (ss == 1 && ds == 1) {  // the usual case (a gradient accumulated in place): a loop that vectorises
      for (int64_t i = 0; i < n; ++i) d[i] += s[i];
      return;
    }
    for (int64_t i = 0; i < n; ++i) d[i * ds] += s[i * ss];
  });
}

template <class T>
void layout_sum(const T* a, const T* b, T* out, int64_t n, int nthreads) {
  parallel_for(n, kElementwiseGrain, nthreads, [=](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = a[i] + b[i];
  });
}

template <class T>
void layout_scale(const T* a, T s, T* out, int64_t n, int nthreads) {
  parallel_for(n, kElementwiseGrain, nthreads, [=](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) out[i] = a[i] * s;
  });
}

template <class T>
void layout_zero(T* dst, int64_t n, int nthreads) {
  parallel_for(n, kElementwiseGrain, nthreads, [=](int64_t b, int64_t e) {
    std::memset(static_cast<void*>(dst + b), 0, static_cast<size_t>(e - b) * sizeof(T));
  });
}

template void layout_copy<uint8_t>(const uint8_t*, uint8_t*, const StridedPair&, int);
template void layout_copy<uint16_t>(const uint16_t*, uint16_t*, const StridedPair&, int);
template void layout_copy<uint32_t>(const uint32_t*, uint32_t*, const StridedPair&, int);
template void layout_copy<uint64_t>(const uint64_t*, uint64_t*, const StridedPair&, int);
template void layout_add<float>(const float*, float*, const StridedPair&, int);
template void layout_add<double>(const double*, double*, const StridedPair&, int);
template void layout_sum<float>(const float*, const float*, float*, int64_t, int);
template void layout_sum<double>(const double*, const double*, double*, int64_t, int);
template void layout_scale<float>(const float*, float, float*, int64_t, int);
template void layout_scale<double>(const double*, double, double*, int64_t, int);
template void layout_zero<uint8_t>(uint8_t*, int64_t, int);
template void layout_zero<float>(float*, int64_t, int);
template void layout_zero<double>(double*, int64_t, int);

}  // namespace nnx
