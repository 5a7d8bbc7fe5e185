// Drivers of the activation family: pick the micro-kernel table of the active ISA and split the work
// across OpenMP threads in pieces whose results do not depend on the thread count.
#include "act/act.h"

#include <algorithm>

#include "act/act_ukernels.h"
#include "common/cpu.h"
#include "common/threads.h"

namespace nnx {

namespace {

// Below this many elements per thread, waking threads costs more than the pass over memory.
constexpr int64_t kElementwiseGrain = 1 << 15;
// Element-wise ranges are cut at multiples of this so every range starts on a cache line.
constexpr int64_t kAlign = 64;
// Columns handed to one task when the softmax axis is not the last one.
constexpr int64_t kColumnBlock = 256;

template <class T>
struct ActTables {
  ActUkernels<T> by_isa[4];
  ActTables() {
    // Portable kernels everywhere first, then each ISA overrides what it has (BLIS-style context init).
    for (auto& t : by_isa) t = act_ukernels_portable<T>();
#if defined(NNX_X86)
    by_isa[static_cast<int>(Isa::avx2)] = act_ukernels_avx2<T>();
    // No AVX-512 kernels yet: AVX-512 CPUs run the AVX2 ones.
    by_isa[static_cast<int>(Isa::avx512)] = act_ukernels_avx2<T>();
#endif
  }
};

// Calls body(begin, end) on contiguous ranges covering [0, n), in parallel when n is large.
template <class F>
void parallel_ranges(int64_t n, int64_t grain, int nthreads, F body) {
  const int nt = threads_for(n, grain, nthreads);
  if (nt <= 1) {
    body(int64_t(0), n);
    return;
  }
  int64_t per = (n + nt - 1) / nt;
  per = (per + kAlign - 1) / kAlign * kAlign;
#if defined(NNX_OPENMP)
#pragma omp parallel for num_threads(nt) schedule(static)
#endif
  for (int t = 0; t < nt; ++t) {
    int64_t b = std::min(n, t * per), e = std::min(n, b + per);
    if (b < e) body(b, e);
  }
}

}  // namespace

template <class T>
const ActUkernels<T>& act_ukernels() {
  static const ActTables<T> tables;
  return tables.by_isa[static_cast<int>(active_isa())];
}
template const ActUkernels<float>& act_ukernels<float>();
template const ActUkernels<double>& act_ukernels<double>();

template <class T>
void act_forward(ActFn fn, const T* x, T* y, int64_t n, T param, int nthreads) {
  const auto& k = act_ukernels<T>();
  parallel_ranges(n, kElementwiseGrain, nthreads, [&](int64_t b, int64_t e) { k.forward(fn, x + b, y + b, e - b, param); });
}

template <class T>
void act_backward(ActFn fn, const T* dy, const T* x, T* dx, int64_t n, T param, int nthreads) {
  const auto& k = act_ukernels<T>();
  parallel_ranges(n, kElementwiseGrain, nthreads,
                  [&](int64_t b, int64_t e) { k.backward(fn, dy + b, x + b, dx + b, e - b, param); });
}

template <class T>
void act_backward_from_output(Act act, const T* dy, const T* y, T* dz, int64_t n, T slope, int nthreads) {
  const auto& k = act_ukernels<T>();
  parallel_ranges(n, kElementwiseGrain, nthreads,
                  [&](int64_t b, int64_t e) { k.backward_from_output(act, dy + b, y + b, dz + b, e - b, slope); });
}

template <class T>
void act_forward_inplace(Act act, T* x, int64_t n, T slope) {
  if (act == Act::none) return;
  act_ukernels<T>().forward(static_cast<ActFn>(static_cast<int>(act)), x, x, n, slope);
}

template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log, int nthreads) {
  if (outer == 0 || n == 0 || inner == 0) return;
  const auto& k = act_ukernels<T>();
  if (inner == 1) {
    const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / 4 / n);  // rows per thread, at least
    parallel_ranges(outer, grain, nthreads, [&](int64_t b, int64_t e) {
      k.softmax_rows(x + b * n, y + b * n, e - b, n, log);
    });
    return;
  }
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
  const int64_t tasks = outer * blocks;
  const int nt = threads_for(outer * n * inner, kElementwiseGrain / 4, nthreads);
  auto task = [&](int64_t t) {
    const int64_t o = t / blocks, c0 = (t % blocks) * kColumnBlock;
    const int64_t off = o * n * inner + c0;
    k.softmax_cols(x + off, y + off, n, inner, std::min(kColumnBlock, inner - c0), log);
  };
#if defined(NNX_OPENMP)
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
  for (int64_t t = 0; t < tasks; ++t) task(t);
}

template <class T>
void softmax_backward(const T* dy, const T* x, T* dx, int64_t outer, int64_t n, int64_t inner, bool log,
                      int nthreads) {
  if (outer == 0 || n == 0 || inner == 0) return;
  const auto& k = act_ukernels<T>();
  if (inner == 1) {
    const int64_t grain = std::max<int64_t>(1, kElementwiseGrain / 4 / n);
    parallel_ranges(outer, grain, nthreads, [&](int64_t b, int64_t e) {
      k.softmax_rows_backward(dy + b * n, x + b * n, dx + b * n, e - b, n, log);
    });
    return;
  }
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock;
  const int64_t tasks = outer * blocks;
  const int nt = threads_for(outer * n * inner, kElementwiseGrain / 4, nthreads);
  auto task = [&](int64_t t) {
    const int64_t o = t / blocks, c0 = (t % blocks) * kColumnBlock;
    const int64_t off = o * n * inner + c0;
    k.softmax_cols_backward(dy + off, x + off, dx + off, n, inner, std::min(kColumnBlock, inner - c0), log);
  };
#if defined(NNX_OPENMP)
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
#endif
  for (int64_t t = 0; t < tasks; ++t) task(t);
}

template <class T>
T log_sum_exp_shifted(const T* x, int64_t n, T* max_out) {
  return act_ukernels<T>().log_sum_exp_shifted(x, n, max_out);
}

template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n) {
  act_ukernels<T>().softmax_rows(x, y, rows, n, false);
}

template <class T>
const char* act_ukernel_name() {
  return act_ukernels<T>().name;
}

#define NNX_ACT_INSTANTIATE(T)                                                                              \
  template void act_forward<T>(ActFn, const T*, T*, int64_t, T, int);                                       \
  template void act_backward<T>(ActFn, const T*, const T*, T*, int64_t, T, int);                            \
  template void act_backward_from_output<T>(Act, const T*, const T*, T*, int64_t, T, int);                  \
  template void act_forward_inplace<T>(Act, T*, int64_t, T);                                                \
  template void softmax_forward<T>(const T*, T*, int64_t, int64_t, int64_t, bool, int);                     \
  template void softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool, int);          \
  template T log_sum_exp_shifted<T>(const T*, int64_t, T*);                                                           \
  template void softmax_rows<T>(const T*, T*, int64_t, int64_t);                                            \
  template const char* act_ukernel_name<T>();
NNX_ACT_INSTANTIATE(float)
NNX_ACT_INSTANTIATE(double)
#undef NNX_ACT_INSTANTIATE

}  // namespace nnx
