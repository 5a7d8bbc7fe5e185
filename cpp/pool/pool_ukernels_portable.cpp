// Portable row kernels of the pooling family: the twins every SIMD kernel (pool_ukernels_avx2.cpp) is
// checked against, and the table every ISA starts from (common/isa_table.h).
#include <cstdint>

#include "pool/pool_plane.h"
#include "pool/pool_ukernels.h"

namespace nnx {
namespace {


template <class T>
void max_tap_portable(T* acc, const T* x, int64_t n, int64_t stride) {
  for (int64_t o = 0; o < n; ++o) {
    T v = x[o * stride];
    if (pool_max_takes(v, acc[o])) acc[o] = v;
  }
}

template <class T>
void max_tap_idx_portable(T* acc, int32_t* idx, const T* x, int64_t n, int64_t stride, int32_t off) {
  for (int64_t o = 0; o < n; ++o) {
    T v = x[o * stride];
    if (idx[o] < 0 || pool_max_takes(v, acc[o])) {
      acc[o] = v;
      idx[o] = off + static_cast<int32_t>(o * stride);
    }
  }
}

template <class T>
void sum_tap_portable(T* acc, const T* x, int64_t n, int64_t stride) {
  for (int64_t o = 0; o < n; ++o) acc[o] += x[o * stride];
}

template <class T>
void scatter_add_tap_portable(T* dx, const T* g, int64_t n, int64_t stride) {
  for (int64_t o = 0; o < n; ++o) dx[o * stride] += g[o];
}

template <class T>
void max_window_portable(T* y, const T* x, int64_t n, int64_t stride, const int64_t* taps, int64_t ntaps) {
  for (int64_t o = 0; o < n; ++o) {
    const T* xo = x + o * stride;
    T m = xo[taps[0]];
    for (int64_t t = 1; t < ntaps; ++t)
      if (pool_max_takes(xo[taps[t]], m)) m = xo[taps[t]];
    y[o] = m;
  }
}

template <class T>
void max_window_idx_portable(int32_t* idx, const T* x, int64_t n, int64_t stride, const int64_t* taps,
                             int64_t ntaps) {
  for (int64_t o = 0; o < n; ++o) {
    const T* xo = x + o * stride;
    T m = xo[taps[0]];
    int64_t k = taps[0];
    for (int64_t t = 1; t < ntaps; ++t)
      if (pool_max_takes(xo[taps[t]], m)) m = xo[taps[t]], k = taps[t];
    idx[o] = static_cast<int32_t>(k + o * stride);
  }
}

template <class T>
void max_window_argmax_portable(T* y, int32_t* idx, const T* x, int64_t n, int64_t stride, const int64_t* taps,
                                const int64_t* idx_taps, int64_t ntaps) {
  for (int64_t o = 0; o < n; ++o) {
    const T* xo = x + o * stride;
    T m = xo[taps[0]];
    int64_t pick = 0;
    for (int64_t t = 1; t < ntaps; ++t)
      if (pool_max_takes(xo[taps[t]], m)) m = xo[taps[t]], pick = t;
    y[o] = m;
    idx[o] = static_cast<int32_t>(idx_taps[pick] + o * stride);
  }
}

template <class T>
void max_2x2s2_portable(const T* r0, const T* r1, T* y, int64_t n) {
  for (int64_t o = 0; o < n; ++o) {
    T m = r0[2 * o];
    if (pool_max_takes(r0[2 * o + 1], m)) m = r0[2 * o + 1];
    if (pool_max_takes(r1[2 * o], m)) m = r1[2 * o];
    if (pool_max_takes(r1[2 * o + 1], m)) m = r1[2 * o + 1];
    y[o] = m;
  }
}

template <class T>
void max_2x2s2_backward_portable(const T* r0, const T* r1, const T* dy, T* d0, T* d1, int64_t n) {
  for (int64_t o = 0; o < n; ++o) {
    T m = r0[2 * o];
    int k = 0;
    if (pool_max_takes(r0[2 * o + 1], m)) m = r0[2 * o + 1], k = 1;
    if (pool_max_takes(r1[2 * o], m)) m = r1[2 * o], k = 2;
    if (pool_max_takes(r1[2 * o + 1], m)) m = r1[2 * o + 1], k = 3;
    T g = dy[o];
    d0[2 * o] = k == 0 ? g : T(0);
    d0[2 * o + 1] = k == 1 ? g : T(0);
    d1[2 * o] = k == 2 ? g : T(0);
    d1[2 * o + 1] = k == 3 ? g : T(0);
  }
}

template <class T>
bool max_2x2s2_backward_indices_portable(const int32_t* idx, const T* dy, T* d0, T* d1, int64_t n, int32_t off,
                                         int64_t W) {
  for (int64_t o = 0; o < n; ++o) {
    const int64_t k = int64_t{idx[o]} - off - 2 * o;
    if (k != 0 && k != 1 && k != W && k != W + 1) return false;
    const T g = T(0) + dy[o];
    d0[2 * o] = k == 0 ? g : T(0);
    d0[2 * o + 1] = k == 1 ? g : T(0);
    d1[2 * o] = k == W ? g : T(0);
    d1[2 * o + 1] = k == W + 1 ? g : T(0);
  }
  return true;
}

template <class T>
void max_2x2s2_indices_portable(const T* r0, T* y, int32_t* idx, int64_t n, int32_t off, int64_t W) {
  const T* r1 = r0 + W;
  for (int64_t o = 0; o < n; ++o) {
    T m = r0[2 * o];
    int64_t k = 2 * o;
    if (pool_max_takes(r0[2 * o + 1], m)) m = r0[2 * o + 1], k = 2 * o + 1;
    if (pool_max_takes(r1[2 * o], m)) m = r1[2 * o], k = W + 2 * o;
    if (pool_max_takes(r1[2 * o + 1], m)) m = r1[2 * o + 1], k = W + 2 * o + 1;
    y[o] = m;
    idx[o] = off + static_cast<int32_t>(k);
  }
}

template <class T>
void avg_2x2s2_portable(const T* r0, const T* r1, T* y, int64_t n) {
  for (int64_t o = 0; o < n; ++o) y[o] = (((r0[2 * o] + r0[2 * o + 1]) + r1[2 * o]) + r1[2 * o + 1]) / T(4);
}

template <class T>
void avg_2x2s2_backward_portable(const T* dy, T* d0, T* d1, int64_t n) {
  for (int64_t o = 0; o < n; ++o) {
    T g = dy[o] / T(4);
    d0[2 * o] = d0[2 * o + 1] = d1[2 * o] = d1[2 * o + 1] = g;
  }
}

}  // namespace

template <class T>
void pool_ukernels_fill_portable(PoolUkernels<T>& table) {
  table = PoolUkernels<T>{"portable",
                          max_tap_portable<T>,
                          max_tap_idx_portable<T>,
                          sum_tap_portable<T>,
                          scatter_add_tap_portable<T>,
                          max_window_portable<T>,
                          max_window_idx_portable<T>,
                          max_window_argmax_portable<T>,
                          max_2x2s2_portable<T>,
                          max_2x2s2_backward_portable<T>,
                          max_2x2s2_indices_plane<T, max_2x2s2_indices_portable<T>>,
                          max_2x2s2_backward_indices_plane<T, max_2x2s2_backward_indices_portable<T>>,
                          nullptr,
                          nullptr,
                          avg_2x2s2_rows<T, avg_2x2s2_portable<T>>,
                          avg_2x2s2_backward_rows<T, avg_2x2s2_backward_portable<T>>};
}
template void pool_ukernels_fill_portable<float>(PoolUkernels<float>&);
template void pool_ukernels_fill_portable<double>(PoolUkernels<double>&);

template <class T>
const PoolUkernels<T>& pool_ukernels_portable() {
  static const PoolUkernels<T> table = [] {
    PoolUkernels<T> t;
    pool_ukernels_fill_portable(t);
    return t;
  }();
  return table;
}
template const PoolUkernels<float>& pool_ukernels_portable<float>();
template const PoolUkernels<double>& pool_ukernels_portable<double>();

}  // namespace nnx
