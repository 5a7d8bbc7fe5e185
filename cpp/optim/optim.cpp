// Portable update loops (no intrinsics): element-wise with loop-invariant branches hoisted, so the
// compiler vectorises them at -O3. Memory-bound: each element of each array is read and written once.
#include "optim/optim.h"

#include <algorithm>
#include <cmath>

#include "common/threads.h"

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
  for (int t = 0; t < nt; ++t) {
    const int64_t b = n * t / nt, e = n * (t + 1) / nt;
    body(b, e);
  }
#else
  body(int64_t{0}, n);
#endif
}

}  // namespace

template <class T>
void sgd_step(int64_t n, T* __restrict param, const T* __restrict grad, T* __restrict buf, const SgdHyper& h,
              int nthreads) {
  const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay), mom = static_cast<T>(h.momentum);
  const T damp = static_cast<T>(1.0 - h.dampening);
  const bool use_mom = h.momentum != 0.0, first = h.first_step, nesterov = h.nesterov;
  parallel_blocks(n, nthreads, [=](int64_t b, int64_t e) {
    if (!use_mom) {
      for (int64_t i = b; i < e; ++i) param[i] -= lr * (grad[i] + wd * param[i]);
      return;
    }
    for (int64_t i = b; i < e; ++i) {
      const T g = grad[i] + wd * param[i];
      const T m = first ? g : mom * buf[i] + damp * g;
      buf[i] = m;
      param[i] -= lr * (nesterov ? g + mom * m : m);
    }
  });
}

template <class T>
void adam_step(int64_t n, T* __restrict param, const T* __restrict grad, T* __restrict m, T* __restrict v,
               T* __restrict vmax, const AdamHyper& h, int nthreads) {
  const T b1c = static_cast<T>(1.0 - h.beta1), b2 = static_cast<T>(h.beta2), b2c = static_cast<T>(1.0 - h.beta2);
  const T eps = static_cast<T>(h.eps), wd = static_cast<T>(h.weight_decay);
  const T decay = static_cast<T>(1.0 - h.lr * h.weight_decay);
  const T step_size = static_cast<T>(h.lr / h.bias_correction1);
  const T bc2_sqrt = static_cast<T>(h.bias_correction2_sqrt);
  const bool decoupled = h.decoupled_weight_decay, amsgrad = h.amsgrad;
  parallel_blocks(n, nthreads, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      T p = param[i];
      T g = grad[i];
      if (decoupled) p *= decay;
      else g += wd * p;
      const T mi = m[i] + b1c * (g - m[i]);
      const T vi = b2 * v[i] + b2c * g * g;
      m[i] = mi;
      v[i] = vi;
      T vv = vi;
      if (amsgrad) {
        vv = std::max(vmax[i], vi);
        vmax[i] = vv;
      }
      param[i] = p - step_size * mi / (std::sqrt(vv) / bc2_sqrt + eps);
    }
  });
}

template <class T>
void rmsprop_step(int64_t n, T* __restrict param, const T* __restrict grad, T* __restrict s, T* __restrict buf,
                  T* __restrict a, const RmspropHyper& h, int nthreads) {
  const T lr = static_cast<T>(h.lr), alpha = static_cast<T>(h.alpha), ac = static_cast<T>(1.0 - h.alpha);
  const T eps = static_cast<T>(h.eps), wd = static_cast<T>(h.weight_decay), mom = static_cast<T>(h.momentum);
  const bool centered = h.centered, use_mom = h.momentum > 0.0;
  parallel_blocks(n, nthreads, [=](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T g = grad[i] + wd * param[i];
      const T si = alpha * s[i] + ac * g * g;
      s[i] = si;
      T avg;
      if (centered) {
        const T ai = alpha * a[i] + ac * g;
        a[i] = ai;
        avg = std::sqrt(si - ai * ai) + eps;
      } else {
        avg = std::sqrt(si) + eps;
      }
      if (use_mom) {
        const T bi = mom * buf[i] + g / avg;
        buf[i] = bi;
        param[i] -= lr * bi;
      } else {
        param[i] -= lr * g / avg;
      }
    }
  });
}

#define NNX_INSTANTIATE_OPTIM(T)                                                                         \
  template void sgd_step<T>(int64_t, T*, const T*, T*, const SgdHyper&, int);                            \
  template void adam_step<T>(int64_t, T*, const T*, T*, T*, T*, const AdamHyper&, int);                  \
  template void rmsprop_step<T>(int64_t, T*, const T*, T*, T*, T*, const RmspropHyper&, int);
NNX_INSTANTIATE_OPTIM(float)
NNX_INSTANTIATE_OPTIM(double)
#undef NNX_INSTANTIATE_OPTIM

}  // namespace nnx
