// The layout kernels (layout.h): rows of the innermost axis, split across threads.
#include "layout/layout.h"

#include <cstring>

#include "common/threads.h"

namespace nnx {
namespace {

// Calls row(src_offset, dst_offset, inner, src_step, dst_step) for every row of the innermost axis.
template <class Row>
void for_rows(const StridedPair& g, int nthreads, Row row) {
  if (g.ndim == 0) {
    row(int64_t{0}, int64_t{0}, int64_t{1}, int64_t{0}, int64_t{0});
    return;
  }
  const int last = g.ndim - 1;
  const int64_t inner = g.shape[last];
  int64_t rows = 1;
  for (int d = 0; d < last; ++d) rows *= g.shape[d];
  if (rows == 0 || inner == 0) return;
  const Grain grain{std::max<int64_t>(1, kElementwiseGrain.units / inner)};
  parallel_for(rows, grain, nthreads, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) {
      int64_t rest = r, so = 0, dof = 0;
      for (int d = last - 1; d >= 0; --d) {
        const int64_t i = rest % g.shape[d];
        rest /= g.shape[d];
        so += i * g.src[d];
        dof += i * g.dst[d];
      }
      row(so, dof, inner, g.src[last], g.dst[last]);
    }
  });
}

}  // namespace

template <class T>
void layout_copy(const T* src, T* dst, const StridedPair& g, int nthreads) {
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
template void layout_zero<uint8_t>(uint8_t*, int64_t, int);
template void layout_zero<float>(float*, int64_t, int);
template void layout_zero<double>(double*, int64_t, int);

}  // namespace nnx
