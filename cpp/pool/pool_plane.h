// The plane forms of the 2x2 stride-2 row kernels (pool_ukernels.h's max_2x2s2_indices,
// max_2x2s2_backward_indices, avg_2x2s2 and its backward): one table call per plane or range of rows, the rows
// looped here with the ISA's row kernel inlined, so its constants are set up once per call. LeNet's second
// pooling has 5-output rows, where a call per row cost as much as the work. And the window kernels' dispatch by
// stride, alike for every ISA.
//
// Internal linkage (an anonymous namespace) in every translation unit that includes it: each ISA's copy
// is compiled with that ISA's instructions and must never serve another ISA's caller.
#pragma once
#include <cstdint>

#include "pool/pool_ukernels.h"

namespace nnx {
namespace {

template <class T, void (*Row)(const T*, T*, int32_t*, int64_t, int32_t, int64_t)>
void max_2x2s2_indices_plane(const T* x, T* y, int32_t* idx, int64_t OH, int64_t OW, int64_t W) {
  for (int64_t oh = 0; oh < OH; ++oh)
    Row(x + 2 * oh * W, y + oh * OW, idx + oh * OW, OW, static_cast<int32_t>(2 * oh * W), W);
}

template <class T, bool (*Row)(const int32_t*, const T*, T*, T*, int64_t, int32_t, int64_t)>
bool max_2x2s2_backward_indices_plane(const int32_t* idx, const T* dy, T* dx, int64_t OH, int64_t OW, int64_t W) {
  for (int64_t oh = 0; oh < OH; ++oh)
    if (!Row(idx + oh * OW, dy + oh * OW, dx + 2 * oh * W, dx + (2 * oh + 1) * W, OW, static_cast<int32_t>(2 * oh * W),
             W))
      return false;
  return true;
}

// pool_ukernels.h's avg_2x2s2 and its backward from an ISA's row kernel, inlined into the loop over rows.
template <class T, void (*Row)(const T*, const T*, T*, int64_t)>
void avg_2x2s2_rows(const T* x, T* y, int64_t rows, int64_t n, int64_t W) {
  for (int64_t i = 0; i < rows; ++i) Row(x + 2 * i * W, x + (2 * i + 1) * W, y + i * n, n);
}

template <class T, void (*Row)(const T*, T*, T*, int64_t)>
void avg_2x2s2_backward_rows(const T* dy, T* dx, int64_t rows, int64_t n, int64_t W) {
  for (int64_t i = 0; i < rows; ++i) Row(dy + i * n, dx + 2 * i * W, dx + (2 * i + 1) * W, n);
}

// The window kernels of pool_ukernels.h by stride: 1 and 2 to an ISA's kernels (templates on the stride),
// others to the portable twin.
template <void (*S1)(float*, const float*, int64_t, const int64_t*, int64_t),
          void (*S2)(float*, const float*, int64_t, const int64_t*, int64_t)>
void max_window_by_stride(float* y, const float* x, int64_t n, int64_t stride, const int64_t* taps, int64_t ntaps) {
  if (stride == 1) return S1(y, x, n, taps, ntaps);
  if (stride == 2) return S2(y, x, n, taps, ntaps);
  pool_ukernels_portable<float>().max_window(y, x, n, stride, taps, ntaps);
}

template <void (*S1)(int32_t*, const float*, int64_t, const int64_t*, int64_t),
          void (*S2)(int32_t*, const float*, int64_t, const int64_t*, int64_t)>
void max_window_idx_by_stride(int32_t* idx, const float* x, int64_t n, int64_t stride, const int64_t* taps,
                              int64_t ntaps) {
  if (stride == 1) return S1(idx, x, n, taps, ntaps);
  if (stride == 2) return S2(idx, x, n, taps, ntaps);
  pool_ukernels_portable<float>().max_window_idx(idx, x, n, stride, taps, ntaps);
}

template <void (*S1)(float*, int32_t*, const float*, int64_t, const int64_t*, const int64_t*, int64_t),
          void (*S2)(float*, int32_t*, const float*, int64_t, const int64_t*, const int64_t*, int64_t)>
void max_window_argmax_by_stride(float* y, int32_t* idx, const float* x, int64_t n, int64_t stride,
                                 const int64_t* taps, const int64_t* idx_taps, int64_t ntaps) {
  if (stride == 1) return S1(y, idx, x, n, taps, idx_taps, ntaps);
  if (stride == 2) return S2(y, idx, x, n, taps, idx_taps, ntaps);
  pool_ukernels_portable<float>().max_window_argmax(y, idx, x, n, stride, taps, idx_taps, ntaps);
}

}  // namespace
}  // namespace nnx
