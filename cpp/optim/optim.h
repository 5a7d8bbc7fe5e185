// Optimizer update kernels: one fused pass over a parameter tensor and its state, in place.
//
// Contract (all kernels): `param`, `grad` and every state array hold `n` elements, contiguous, of the same
// scalar type T (float or double), and do not overlap. Each element is updated independently of all
// others, so splitting [0, n) over any number of threads gives bitwise identical results. Hyperparameters
// arrive as double and are rounded to T once, so float32 updates run in float32 arithmetic as PyTorch's.
// The equations are PyTorch's (torch.optim, single-tensor path); they are repeated at each kernel. One
// difference: a decaying running state (momentum, Adam's moments, RMSprop's and Adadelta's averages) that
// falls under T's smallest normal number is stored as 0 (optim_blocks.h, flush_subnormal, says why).
#pragma once
#include <cstdint>

namespace nnx {

struct SgdHyper {
  double lr, momentum, dampening, weight_decay;
  bool nesterov;
  bool first_step;  // momentum buffer not yet initialised: buf = g instead of the running update
};

// g = grad + wd * p
// momentum != 0:  buf = g (first step) | buf = momentum * buf + (1 - dampening) * g
//                 g = nesterov ? g + momentum * buf : buf
// p -= lr * g
// `momentum_buf` may be null when momentum == 0.
template <class T>
void sgd_step(int64_t n, T* param, const T* grad, T* momentum_buf, const SgdHyper& h, int nthreads);

struct AdamHyper {
  double lr, beta1, beta2, eps, weight_decay;
  bool decoupled_weight_decay;  // AdamW: p *= 1 - lr * wd, instead of g += wd * p
  bool amsgrad;
  double bias_correction1;       // 1 - beta1^step
  double bias_correction2_sqrt;  // sqrt(1 - beta2^step)
};

// Adam:  g = grad + wd * p            AdamW: p = p * (1 - lr * wd), g = grad
// m = m + (1 - beta1) (g - m);  v = beta2 v + (1 - beta2) g^2
// amsgrad: vmax = max(vmax, v), v' = vmax, else v' = v
// p -= (lr / bias_correction1) * m / (sqrt(v') / bias_correction2_sqrt + eps)
// `max_exp_avg_sq` may be null unless amsgrad.
template <class T>
void adam_step(int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, T* max_exp_avg_sq,
               const AdamHyper& h, int nthreads);

struct RmspropHyper {
  double lr, alpha, eps, weight_decay, momentum;
  bool centered;
};

// g = grad + wd * p;  s = alpha s + (1 - alpha) g^2
// centered: a = alpha a + (1 - alpha) g,  avg = sqrt(s - a^2) + eps;  else avg = sqrt(s) + eps
// momentum > 0: buf = momentum buf + g / avg, p -= lr buf;  else p -= lr g / avg
// `momentum_buf` may be null unless momentum > 0, `grad_avg` unless centered.
template <class T>
void rmsprop_step(int64_t n, T* param, const T* grad, T* square_avg, T* momentum_buf, T* grad_avg,
                  const RmspropHyper& h, int nthreads);

struct AdagradHyper {
  double lr, eps, weight_decay;
  double clr;  // lr / (1 + (step - 1) * lr_decay), the step's decayed learning rate
};

// g = grad + wd * p;  s = s + g^2;  p -= clr * g / (sqrt(s) + eps)
template <class T>
void adagrad_step(int64_t n, T* param, const T* grad, T* state_sum, const AdagradHyper& h, int nthreads);

struct AdadeltaHyper {
  double lr, rho, eps, weight_decay;
};

// g = grad + wd * p;  s = rho s + (1 - rho) g^2
// d = sqrt(u + eps) / sqrt(s + eps) * g;  u = rho u + (1 - rho) d^2;  p -= lr d
template <class T>
void adadelta_step(int64_t n, T* param, const T* grad, T* square_avg, T* acc_delta, const AdadeltaHyper& h,
                   int nthreads);

}  // namespace nnx
