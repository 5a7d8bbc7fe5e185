// Optimizer drivers: pick the block loops for the active ISA, split the tensor over threads.
#include "optim/optim.h"

#include "common/cpu.h"
#include "common/threads.h"
#define NNX_OPTIM_NS optim_portable
#include "optim/optim_blocks.h"
#include "optim/optim_isa.h"

namespace nnx {
namespace {

// Elements per thread below which threading costs more than it saves.
constexpr int64_t kGrain = 1 << 15;

// Calls body(begin, end) on contiguous blocks covering [0, n). Blocks never share an element, and each
// element's update depends only on that element, so results do not depend on the thread count.
template <class F>
void parallel_blocks(int64_t n, int nthreads, F body) {
  const int nt = threads_for(n, kGrain, nthreads);
  if (nt <= 1) {
    body(int64_t{0}, n);
    return;
  }
#if defined(NNX_OPENMP)
#pragma omp parallel for num_threads(nt) schedule(static)
  for (int t = 0; t < nt; ++t) body(n * t / nt, n * (t + 1) / nt);
#else
  body(int64_t{0}, n);
#endif
}

template <class T>
OptimBlocks<T> blocks_for_active_isa() {
  OptimBlocks<T> k{&optim_portable::sgd_block<T>, &optim_portable::adam_block<T>,
                   &optim_portable::rmsprop_block<T>, &optim_portable::adagrad_block<T>,
                   &optim_portable::adadelta_block<T>};
#if defined(NNX_X86)
  const Isa isa = active_isa();
  if (isa == Isa::avx2 || isa == Isa::avx512) k = optim_blocks_avx2<T>();
#endif
  return k;
}

}  // namespace

template <class T>
void sgd_step(int64_t n, T* param, const T* grad, T* buf, const SgdHyper& h, int nthreads) {
  const auto k = blocks_for_active_isa<T>();
  parallel_blocks(n, nthreads, [&](int64_t b, int64_t e) { k.sgd(b, e, param, grad, buf, h); });
}

template <class T>
void adam_step(int64_t n, T* param, const T* grad, T* m, T* v, T* vmax, const AdamHyper& h, int nthreads) {
  const auto k = blocks_for_active_isa<T>();
  parallel_blocks(n, nthreads, [&](int64_t b, int64_t e) { k.adam(b, e, param, grad, m, v, vmax, h); });
}

template <class T>
void rmsprop_step(int64_t n, T* param, const T* grad, T* s, T* buf, T* a, const RmspropHyper& h, int nthreads) {
  const auto k = blocks_for_active_isa<T>();
  parallel_blocks(n, nthreads, [&](int64_t b, int64_t e) { k.rmsprop(b, e, param, grad, s, buf, a, h); });
}

template <class T>
void adagrad_step(int64_t n, T* param, const T* grad, T* s, const AdagradHyper& h, int nthreads) {
  const auto k = blocks_for_active_isa<T>();
  parallel_blocks(n, nthreads, [&](int64_t b, int64_t e) { k.adagrad(b, e, param, grad, s, h); });
}

template <class T>
void adadelta_step(int64_t n, T* param, const T* grad, T* s, T* u, const AdadeltaHyper& h, int nthreads) {
  const auto k = blocks_for_active_isa<T>();
  parallel_blocks(n, nthreads, [&](int64_t b, int64_t e) { k.adadelta(b, e, param, grad, s, u, h); });
}

#define NNX_INSTANTIATE_OPTIM(T)                                                                         \
  template void sgd_step<T>(int64_t, T*, const T*, T*, const SgdHyper&, int);                            \
  template void adam_step<T>(int64_t, T*, const T*, T*, T*, T*, const AdamHyper&, int);                  \
  template void rmsprop_step<T>(int64_t, T*, const T*, T*, T*, T*, const RmspropHyper&, int);            \
  template void adagrad_step<T>(int64_t, T*, const T*, T*, const AdagradHyper&, int);                    \
  template void adadelta_step<T>(int64_t, T*, const T*, T*, T*, const AdadeltaHyper&, int);
NNX_INSTANTIATE_OPTIM(float)
NNX_INSTANTIATE_OPTIM(double)
#undef NNX_INSTANTIATE_OPTIM

}  // namespace nnx
