// Drivers of the activation family: pick the micro-kernel table of the active ISA and split the work
// across OpenMP threads in pieces whose results do not depend on the thread count.
#include "activation/activation.h"

#include <algorithm>

#include "activation/activation_ukernels.h"
#include "common/isa_table.h"
#include "common/stream_store.h"
#include "common/threads.h"

namespace nnx {

namespace {

// Element-wise ranges are cut at multiples of this so every range starts on a cache line.
constexpr int64_t kAlign = 64;
// softmax rows are ~4 passes over memory each (max, exp-sum, scale; backward likewise).
constexpr int64_t kSoftmaxElemsPerThread = kElementwiseGrain.units / 4;
// When the softmax axis is not the last one, threads split (outer index, column tile) units; each runs its
// range as one kernel call per outer index, so the kernel can fetch ahead across its tiles.
template <class F>
void for_column_runs(int64_t outer, int64_t n, int64_t inner, int nthreads, F run) {
  const int64_t tiles = (inner + kSoftmaxColTile - 1) / kSoftmaxColTile;
  const Grain per_thread{std::max<int64_t>(1, kSoftmaxElemsPerThread / (n * std::min(kSoftmaxColTile, inner)))};
  parallel_for(outer * tiles, per_thread, nthreads, [&](int64_t b, int64_t e) {
    while (b < e) {
      const int64_t o = b / tiles, t0 = b % tiles, t1 = std::min(tiles, t0 + (e - b));
      const int64_t c0 = t0 * kSoftmaxColTile;
      run(o * n * inner + c0, std::min(inner, t1 * kSoftmaxColTile) - c0);
      b += t1 - t0;
    }
  });
}

}  // namespace

template <class T>
const ActivationUkernels<T>& activation_ukernels() {
  static const IsaTable<ActivationUkernels<T>> table(
      IsaFills<ActivationUkernels<T>>{activation_ukernels_fill_portable<T>, NNX_X86_FILL(activation_ukernels_fill_avx2<T>),
                                      NNX_X86_FILL(activation_ukernels_fill_avx512<T>)});
  return table.active();
}
template const ActivationUkernels<float>& activation_ukernels<float>();
template const ActivationUkernels<double>& activation_ukernels<double>();

template <class T>
void act_forward(Act fn, const T* x, T* y, int64_t n, T param, int nthreads) {
  const auto& k = activation_ukernels<T>();
  const bool past = stores_past_caches(n * static_cast<int64_t>(sizeof(T)), x == y);
  parallel_for(n, kElementwiseGrain, nthreads,
               [&](int64_t b, int64_t e) { k.forward(fn, x + b, y + b, e - b, param, past); }, kAlign);
}

template <class T>
void act_backward(Act fn, const T* dy, const T* x, T* dx, int64_t n, T param, int nthreads) {
  const auto& k = activation_ukernels<T>();
  const bool past = stores_past_caches(n * static_cast<int64_t>(sizeof(T)), dx == dy || dx == x);
  parallel_for(n, kElementwiseGrain, nthreads,
               [&](int64_t b, int64_t e) { k.backward(fn, dy + b, x + b, dx + b, e - b, param, past); }, kAlign);
}

template <class T>
void act_backward_one_dy(Act fn, const T* dy, const T* x, T* dx, int64_t n, T param, int nthreads) {
  constexpr int64_t kPiece = 1024;  // elements of the buffer: 4 or 8 KiB, in L1 beside x's and dx's lines
  const auto& k = activation_ukernels<T>();
  const T g = *dy;
  const bool past = stores_past_caches(n * static_cast<int64_t>(sizeof(T)), dx == x);
  parallel_for(n, kElementwiseGrain, nthreads, [&](int64_t b, int64_t e) {
    alignas(64) T buf[kPiece];
    std::fill(buf, buf + std::min(kPiece, e - b), g);
    for (int64_t i = b; i < e; i += kPiece) k.backward(fn, buf, x + i, dx + i, std::min(kPiece, e - i), param, past);
  }, kAlign);
}

template <class T>
void act_backward_from_output(Act act, const T* dy, const T* y, T* dz, int64_t n, T slope, int nthreads) {
  const auto& k = activation_ukernels<T>();
  const bool past = stores_past_caches(n * static_cast<int64_t>(sizeof(T)), dz == dy || dz == y);
  parallel_for(n, kElementwiseGrain, nthreads,
               [&](int64_t b, int64_t e) { k.backward_from_output(act, dy + b, y + b, dz + b, e - b, slope, past); },
               kAlign);
}

template <class T>
void act_forward_inplace(Act act, T* x, int64_t n, T slope) {
  if (act == Act::none) return;
  activation_ukernels<T>().forward(act, x, x, n, slope, false);
}

template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log, int nthreads) {
  if (outer == 0 || n == 0 || inner == 0) return;
  const auto& k = activation_ukernels<T>();
  if (inner == 1) {
    const Grain rows{std::max<int64_t>(1, kSoftmaxElemsPerThread / n)};
    const bool past = stores_past_caches(outer * n * static_cast<int64_t>(sizeof(T)), x == y);
    parallel_for(outer, rows, nthreads, [&](int64_t b, int64_t e) {
      k.softmax_rows(x + b * n, y + b * n, e - b, n, log, past);
    });
    return;
  }
  for_column_runs(outer, n, inner, nthreads,
                  [&](int64_t off, int64_t width) { k.softmax_cols(x + off, y + off, n, inner, width, log); });
}

// Both backwards' split: rows (inner == 1) in contiguous ranges, columns in runs of tiles. src is x or y;
// rows_kernel(dy, src, dx, rows, n) runs a range of rows.
template <class T, class RowsKernel>
void softmax_backward_split(const T* dy, const T* src, T* dx, int64_t outer, int64_t n, int64_t inner, bool log,
                            int nthreads, RowsKernel rows_kernel,
                            decltype(ActivationUkernels<T>::softmax_cols_backward) cols_kernel) {
  if (outer == 0 || n == 0 || inner == 0) return;
  if (inner == 1) {
    const Grain rows{std::max<int64_t>(1, kSoftmaxElemsPerThread / n)};
    parallel_for(outer, rows, nthreads, [&](int64_t b, int64_t e) {
      rows_kernel(dy + b * n, src + b * n, dx + b * n, e - b, n);
    });
    return;
  }
  for_column_runs(outer, n, inner, nthreads, [&](int64_t off, int64_t width) {
    cols_kernel(dy + off, src + off, dx + off, n, inner, width, log);
  });
}

template <class T>
void softmax_backward(const T* dy, const T* x, T* dx, int64_t outer, int64_t n, int64_t inner, bool log,
                      int nthreads) {
  const auto& k = activation_ukernels<T>();
  auto rows = [&](const T* g, const T* src, T* d, int64_t r, int64_t len) {
    k.softmax_rows_backward(g, src, d, r, len, log);
  };
  softmax_backward_split(dy, x, dx, outer, n, inner, log, nthreads, rows, k.softmax_cols_backward);
}

template <class T>
void softmax_backward_from_output(const T* dy, const T* y, T* dx, int64_t outer, int64_t n, int64_t inner, bool log,
                                  int nthreads) {
  const auto& k = activation_ukernels<T>();
  const bool past = stores_past_caches(outer * n * inner * static_cast<int64_t>(sizeof(T)), dx == dy || dx == y);
  auto rows = [&](const T* g, const T* src, T* d, int64_t r, int64_t len) {
    k.softmax_rows_backward_from_output(g, src, d, r, len, log, past);
  };
  softmax_backward_split(dy, y, dx, outer, n, inner, log, nthreads, rows, k.softmax_cols_backward_from_output);
}

template <class T>
void log_sum_exp_rows(const T* x, int64_t rows, int64_t n, T* lse, T* max_out) {
  activation_ukernels<T>().log_sum_exp_rows(x, rows, n, lse, max_out);
}

template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n) {
  activation_ukernels<T>().softmax_rows(x, y, rows, n, false, false);
}

template <class T>
const char* act_ukernel_name() {
  return activation_ukernels<T>().name;
}

#define NNX_ACT_INSTANTIATE(T)                                                                              \
  template void act_forward<T>(Act, const T*, T*, int64_t, T, int);                                       \
  template void act_backward<T>(Act, const T*, const T*, T*, int64_t, T, int);                            \
  template void act_backward_one_dy<T>(Act, const T*, const T*, T*, int64_t, T, int);                     \
  template void act_backward_from_output<T>(Act, const T*, const T*, T*, int64_t, T, int);                  \
  template void act_forward_inplace<T>(Act, T*, int64_t, T);                                                \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t, bool, int);                     \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool, int);          \
  template void softmax_backward_from_output<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool, int); \
  template void log_sum_exp_rows<T>(const T*, int64_t, int64_t, T*, T*);                                    \
  template void softmax_rows<T>(const T*, T*, int64_t, int64_t);                                            \
  template const char* act_ukernel_name<T>();
NNX_ACT_INSTANTIATE(float)
NNX_ACT_INSTANTIATE(double)
#undef NNX_ACT_INSTANTIATE

}  // namespace nnx
