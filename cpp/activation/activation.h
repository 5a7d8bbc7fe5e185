// Activations and softmax: forward and backward kernels on contiguous arrays, OpenMP over independent
// chunks, SIMD micro-kernels chosen per call from the active ISA (activation_ukernels.h).
//
// Contracts common to every kernel here:
// - Arrays are C-contiguous; an output may alias its own input element for element (y == x), never
//   partially overlap one.
// - Math follows nnx.reference.activation exactly: NaN in gives NaN out (relu(NaN) = NaN, relu's
//   gradient at NaN is 0), sigmoid/tanh never overflow for any finite or infinite input.
// - Work is split into ranges whose results do not depend on which thread computes them, so results
//   are bitwise identical for any `nthreads` (an upper bound; small arrays stay on the calling thread).
#pragma once
#include <cstdint>

#include "common/epilogue.h"

namespace nnx {

// y = f(x) for n elements (fn is any activation code but Act::none, common/epilogue.h). `param` is leaky_relu's negative slope or elu's alpha (ignored otherwise).
template <class T>
void act_forward(Act fn, const T* x, T* y, int64_t n, T param, int nthreads);

// dx = dy * f'(x), f' taken at the forward input x.
template <class T>
void act_backward(Act fn, const T* dy, const T* x, T* dx, int64_t n, T param, int nthreads);

// dx = dy[0] * f'(x): one upstream value for every element (the gradient of a sum or a mean), never spread into
// an array of n: pieces of x run against an L1 buffer of it, through act_backward's micro-kernel, so the bits
// are those of act_backward with that value in every element of dy.
template <class T>
void act_backward_one_dy(Act fn, const T* dy, const T* x, T* dx, int64_t n, T param, int nthreads);

// The fused-epilogue backward: dz = dy * act'(z) written through the forward output y = act(z)
// (relu: [y > 0], leaky_relu: 1 or slope, sigmoid: y (1 - y), tanh: 1 - y^2, none: 1).
template <class T>
void act_backward_from_output(Act act, const T* dy, const T* y, T* dz, int64_t n, T slope, int nthreads);

// x = act(x) in place, single-threaded, SIMD-dispatched: for GEMM/conv epilogues that already run
// inside a parallel region on one tile.
template <class T>
void act_forward_inplace(Act act, T* x, int64_t n, T slope);

// Softmax (log = false) or log-softmax (log = true) over the middle axis of x viewed as
// (outer, n, inner), C-contiguous. Rows (inner == 1) are vectorised along n, otherwise along inner.
template <class T>
void softmax_forward(const T* x, T* y, int64_t outer, int64_t n, int64_t inner, bool log, int nthreads);

// dx from dy and the forward INPUT x (the softmax is recomputed, nothing is stored):
// softmax: dx = s (dy - sum(dy s)); log_softmax: dx = dy - s sum(dy), sums along the softmax axis.
template <class T>
void softmax_backward(const T* dy, const T* x, T* dx, int64_t outer, int64_t n, int64_t inner, bool log,
                      int nthreads);

// The same gradient from the forward OUTPUT y (softmax(x), or log_softmax(x) when log), which training keeps
// anyway: softmax: dx = y (dy - sum(dy y)); log_softmax: dx = dy - exp(y) sum(dy). Nothing is recomputed.
template <class T>
void softmax_backward_from_output(const T* dy, const T* y, T* dx, int64_t outer, int64_t n, int64_t inner, bool log,
                                  int nthreads);

// For `rows` contiguous rows of n: m = max_j x_j (into max_out[r]) and log(sum_j exp(x_j - m)) (into lse[r]),
// kept apart so that a caller can form (x_k - m) - log(...) without cancelling against a large m.
// Single-threaded, SIMD-dispatched; used by the cross-entropy loss.
template <class T>
void log_sum_exp_rows(const T* x, int64_t rows, int64_t n, T* lse, T* max_out);

// softmax of `rows` contiguous rows of length n, single-threaded, SIMD-dispatched.
template <class T>
void softmax_rows(const T* x, T* y, int64_t rows, int64_t n);

// Name of the micro-kernel set in use for T, e.g. "act_avx2_f32".
template <class T>
const char* act_ukernel_name();

}  // namespace nnx
