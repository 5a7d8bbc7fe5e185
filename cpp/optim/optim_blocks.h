// Bodies of the optimizer updates over one block [b, e) of a tensor. This header is compiled twice:
// by optim_ukernels_portable.cpp for the baseline ISA (namespace optim_portable) and by optim_ukernels_avx2.cpp with -mavx2 -mfma
// (namespace optim_avx2), so the compiler vectorises the same loops 4- or 8-wide. A loop-invariant flag
// is a plain boolean that GCC unswitches out of its loop; where two were (RMSprop) it unswitched neither, so
// those are template parameters. Every loop must stay branch-free inside to vectorise: check the AVX2 build's
// disassembly for vsqrtps / ymm after changing one (a scalar Adam ran 11x slower).
// Including file defines NNX_OPTIM_NS before including.
#include <cmath>
#include <cstdint>
#include <limits>

#include "optim/optim.h"

namespace nnx {
namespace NNX_OPTIM_NS {

// A running state that its decay has brought under the smallest normal number is stored as zero. A unit
// whose gradient stays zero (a dead ReLU) otherwise decays its momentum into the subnormals, where
// momentum * b rounds back to the smallest subnormal forever, and every later step pays a microcode assist
// on each such element: LeNet-5's opt.step() went from 0.07-0.09 to 0.37 ms after 1000 steps of batch 1, 27K
// of its 61K buffers subnormal. nnx.reference.optim flushes the same values. NaN passes (its compare is false).
// One compare of |x| and a select: the two compares joined by && were a branch, which kept every loop that
// flushes from vectorising (Adam ran scalar, 7.5 ns a parameter: 3.2x PyTorch's time on 666K parameters).
template <class T>
inline T flush_subnormal(T x) {
  constexpr T tiny = std::numeric_limits<T>::min();
  return std::fabs(x) < tiny ? T(0) : x;
}

template <class T>
void sgd_block(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad, T* __restrict buf,
               const SgdHyper& h) {
  const T lr = static_cast<T>(h.lr), wd = static_cast<T>(h.weight_decay), mom = static_cast<T>(h.momentum);
  const T damp = static_cast<T>(1.0 - h.dampening);
  if (h.momentum == 0.0) {
    for (int64_t i = b; i < e; ++i) param[i] -= lr * (grad[i] + wd * param[i]);
    return;
  }
  const bool first = h.first_step, nesterov = h.nesterov;
  for (int64_t i = b; i < e; ++i) {
    const T g = grad[i] + wd * param[i];
    const T m = flush_subnormal(first ? g : mom * buf[i] + damp * g);
    buf[i] = m;
    param[i] -= lr * (nesterov ? g + mom * m : m);
  }
}

template <class T>
void adam_block(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad, T* __restrict m,
                T* __restrict v, T* __restrict vmax, const AdamHyper& h) {
  const T b1c = static_cast<T>(1.0 - h.beta1), b2 = static_cast<T>(h.beta2), b2c = static_cast<T>(1.0 - h.beta2);
  const T eps = static_cast<T>(h.eps), wd = static_cast<T>(h.weight_decay);
  const T decay = static_cast<T>(1.0 - h.lr * h.weight_decay);
  const T step_size = static_cast<T>(h.lr / h.bias_correction1);
  const T bc2_sqrt = static_cast<T>(h.bias_correction2_sqrt);
  const bool decoupled = h.decoupled_weight_decay, amsgrad = h.amsgrad;
  for (int64_t i = b; i < e; ++i) {
    T p = param[i];
    T g = grad[i];
    if (decoupled) p *= decay;
    else g += wd * p;
    const T mi = flush_subnormal(m[i] + b1c * (g - m[i]));
    const T vi = flush_subnormal(b2 * v[i] + b2c * g * g);
    m[i] = mi;
    v[i] = vi;
    T vv = vi;
    if (amsgrad) {
      const T vm = vmax[i];
      vv = vm < vi ? vi : vm;  // not std::max: no out-of-line template shared between ISA builds
      vmax[i] = vv;
    }
    param[i] = p - step_size * mi / (std::sqrt(vv) / bc2_sqrt + eps);
  }
}

// The four forms as separate loops: with both flags tested inside one loop GCC unswitched none of them and the
// loop ran scalar (1.3x PyTorch's time, centered with momentum 1.4x, on 666K float parameters).
template <class T, bool kCentered, bool kMomentum>
void rmsprop_loop(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad, T* __restrict s,
                  T* __restrict buf, T* __restrict a, const RmspropHyper& h) {
  const T lr = static_cast<T>(h.lr), alpha = static_cast<T>(h.alpha), ac = static_cast<T>(1.0 - h.alpha);
  const T eps = static_cast<T>(h.eps), wd = static_cast<T>(h.weight_decay), mom = static_cast<T>(h.momentum);
  for (int64_t i = b; i < e; ++i) {
    const T g = grad[i] + wd * param[i];
    const T si = flush_subnormal(alpha * s[i] + ac * g * g);
    s[i] = si;
    T avg;
    if constexpr (kCentered) {
      const T ai = flush_subnormal(alpha * a[i] + ac * g);
      a[i] = ai;
      avg = std::sqrt(si - ai * ai) + eps;
    } else {
      avg = std::sqrt(si) + eps;
    }
    if constexpr (kMomentum) {
      const T bi = flush_subnormal(mom * buf[i] + g / avg);
      buf[i] = bi;
      param[i] -= lr * bi;
    } else {
      param[i] -= lr * g / avg;
    }
  }
}

template <class T>
void rmsprop_block(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad, T* __restrict s,
                   T* __restrict buf, T* __restrict a, const RmspropHyper& h) {
  const bool use_mom = h.momentum > 0.0;
  if (h.centered)
    (use_mom ? rmsprop_loop<T, true, true> : rmsprop_loop<T, true, false>)(b, e, param, grad, s, buf, a, h);
  else
    (use_mom ? rmsprop_loop<T, false, true> : rmsprop_loop<T, false, false>)(b, e, param, grad, s, buf, a, h);
}

template <class T>
void adagrad_block(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad, T* __restrict s,
                   const AdagradHyper& h) {
  const T clr = static_cast<T>(h.clr), eps = static_cast<T>(h.eps), wd = static_cast<T>(h.weight_decay);
  for (int64_t i = b; i < e; ++i) {
    const T g = grad[i] + wd * param[i];
    const T si = s[i] + g * g;
    s[i] = si;
    param[i] -= clr * (g / (std::sqrt(si) + eps));
  }
}

template <class T>
void adadelta_block(int64_t b, int64_t e, T* __restrict param, const T* __restrict grad, T* __restrict s,
                    T* __restrict u, const AdadeltaHyper& h) {
  const T lr = static_cast<T>(h.lr), rho = static_cast<T>(h.rho), rc = static_cast<T>(1.0 - h.rho);
  const T eps = static_cast<T>(h.eps), wd = static_cast<T>(h.weight_decay);
  for (int64_t i = b; i < e; ++i) {
    const T g = grad[i] + wd * param[i];
    const T si = flush_subnormal(rho * s[i] + rc * g * g);
    s[i] = si;
    // PyTorch's order: (sqrt(u + eps) / sqrt(s + eps)) * g
    const T d = std::sqrt(u[i] + eps) / std::sqrt(si + eps) * g;
    u[i] = flush_subnormal(rho * u[i] + rc * d * d);
    param[i] -= lr * d;
  }
}

}  // namespace NNX_OPTIM_NS
}  // namespace nnx
