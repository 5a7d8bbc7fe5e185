// Optimizer drivers: pick the block loops for the active ISA, split the tensor over threads.
#include "optim/optim.h"

#include "common/isa_table.h"
#include "common/threads.h"
#include "optim/optim_ukernels.h"

namespace nnx {
namespace {

// Elements per thread below which threading costs more than it saves. Blocks never share an element, and
// each element's update depends only on that element, so results do not depend on the thread count.
constexpr Grain kOptimGrain = kElementwiseGrain;

}  // namespace

template <class T>
const OptimUkernels<T>& optim_ukernels() {
  static const IsaTable<OptimUkernels<T>> table(
      IsaFills<OptimUkernels<T>>{optim_ukernels_fill_portable<T>, NNX_X86_FILL(optim_ukernels_fill_avx2<T>)});
  return table.active();
}

template <class T>
void sgd_step(int64_t n, T* param, const T* grad, T* buf, const SgdHyper& h, int nthreads) {
  const auto& k = optim_ukernels<T>();
  parallel_for(n, kOptimGrain, nthreads, [&](int64_t b, int64_t e) { k.sgd(b, e, param, grad, buf, h); });
}

template <class T>
void adam_step(int64_t n, T* param, const T* grad, T* m, T* v, T* vmax, const AdamHyper& h, int nthreads) {
  const auto& k = optim_ukernels<T>();
  parallel_for(n, kOptimGrain, nthreads, [&](int64_t b, int64_t e) { k.adam(b, e, param, grad, m, v, vmax, h); });
}

template <class T>
void rmsprop_step(int64_t n, T* param, const T* grad, T* s, T* buf, T* a, const RmspropHyper& h, int nthreads) {
  const auto& k = optim_ukernels<T>();
  parallel_for(n, kOptimGrain, nthreads, [&](int64_t b, int64_t e) { k.rmsprop(b, e, param, grad, s, buf, a, h); });
}

template <class T>
void adagrad_step(int64_t n, T* param, const T* grad, T* s, const AdagradHyper& h, int nthreads) {
  const auto& k = optim_ukernels<T>();
  parallel_for(n, kOptimGrain, nthreads, [&](int64_t b, int64_t e) { k.adagrad(b, e, param, grad, s, h); });
}

template <class T>
void adadelta_step(int64_t n, T* param, const T* grad, T* s, T* u, const AdadeltaHyper& h, int nthreads) {
  const auto& k = optim_ukernels<T>();
  parallel_for(n, kOptimGrain, nthreads, [&](int64_t b, int64_t e) { k.adadelta(b, e, param, grad, s, u, h); });
}

#define NNX_INSTANTIATE_OPTIM(T)                                                                         \
  template const OptimUkernels<T>& optim_ukernels<T>();                                                  \
  template void sgd_step<T>(int64_t, T*, const T*, T*, const SgdHyper&, int);                            \
  template void adam_step<T>(int64_t, T*, const T*, T*, T*, T*, const AdamHyper&, int);                  \
  template void rmsprop_step<T>(int64_t, T*, const T*, T*, T*, T*, const RmspropHyper&, int);            \
  template void adagrad_step<T>(int64_t, T*, const T*, T*, const AdagradHyper&, int);                    \
  template void adadelta_step<T>(int64_t, T*, const T*, T*, T*, const AdadeltaHyper&, int);
NNX_INSTANTIATE_OPTIM(float)
NNX_INSTANTIATE_OPTIM(double)
#undef NNX_INSTANTIATE_OPTIM

}  // namespace nnx
