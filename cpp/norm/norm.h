// Normalization family: batch norm over axis 1 of (N, C, S) and layer norm over the last D elements of
// (R, D), forward and backward, float and double, C-contiguous inputs.
//
// Determinism: every sum over more elements than one thread owns is cut into chunks whose bounds depend
// on the shape only (kNormChunk elements of a plane, or kNormChunk / C rows of an (N, C) array). Each
// chunk is reduced by one thread in a fixed lane order and the chunk results are merged in chunk order
// on one thread, so results are bitwise identical for any thread count. Each chunk yields its own mean
// and sum of squared deviations (M2), combined exactly in double by Chan et al.'s formula, so the variance
// does not suffer the cancellation of E[x^2] - E[x]^2 when |mean| >> std.
//
// Memory passes: batch-norm forward in training reads x twice (statistics, then y; every chunk's two
// reductions run while it is in L1) and writes y once; evaluation reads x and writes y. Backward in
// training reads (dy, x[, y]) twice and writes dx; in evaluation once. Layer norm does one pass per row
// (each row is reduced and normalised while it is in cache).
//
// Scratch: the partial sums live in workspace slot kWsMisc of the calling thread.
#pragma once
#include <cstdint>

namespace nnx {

// Elements per reduction chunk (fixed: part of the result's definition, not a tuning knob per machine).
constexpr int64_t kNormChunk = 4096;

// Batch norm of x viewed as (N, C, S), S = product of the spatial sizes (1 for an (N, C) input).
//   training: mean/var over the N*S values of each channel (biased var); mean_out and invstd_out (C each,
//     may not be null) receive mean and 1/sqrt(var + eps). When running_mean / running_var are not null
//     they move by `momentum` towards mean and the unbiased var * n / (n - 1) (n = N*S > 1), as PyTorch.
//   evaluation: mean = running_mean, invstd = 1/sqrt(running_var + eps) (written to the outputs too).
//   y = xhat * weight + bias (weight/bias may be null: 1 and 0), then max(y, 0) when relu is set.
template <class T>
void batch_norm_forward(const T* x, T* y, int64_t N, int64_t C, int64_t S, const T* weight, const T* bias,
                        T* running_mean, T* running_var, bool training, double momentum, double eps, bool relu,
                        T* mean_out, T* invstd_out, int nthreads);

// Backward of batch_norm_forward given the mean and invstd it used. `y` (the forward output) is given
// when the forward fused a ReLU: dy is then masked by y > 0. dx may be null (not needed); dweight/dbias
// may be null; when given they receive sum(dy * xhat) and sum(dy) per channel.
//   training: dx = w * invstd * (dy - dbias / n - xhat * dweight / n); evaluation: dx = w * invstd * dy.
template <class T>
void batch_norm_backward(const T* dy, const T* x, const T* y, T* dx, int64_t N, int64_t C, int64_t S,
                         const T* weight, const T* mean, const T* invstd, bool training, T* dweight, T* dbias,
                         int nthreads);

// Layer norm of x viewed as (R, D): each row normalised by its own mean and biased variance, then
// y = xhat * weight + bias elementwise over D (weight/bias may be null). mean_out/invstd_out: R each.
template <class T>
void layer_norm_forward(const T* x, T* y, int64_t R, int64_t D, const T* weight, const T* bias, double eps,
                        T* mean_out, T* invstd_out, int nthreads);

// Backward: dx (may be null) = invstd * (g - mean(g) - xhat * mean(g * xhat)) per row, g = dy * weight;
// dweight = sum over rows of dy * xhat, dbias = sum over rows of dy (each may be null). dy's rows lie ldy apart:
// D, or 0 for one row of dy shared by every row (the gradient of a sum or mean of the output, never spread over R
// rows).
template <class T>
void layer_norm_backward(const T* dy, int64_t ldy, const T* x, T* dx, int64_t R, int64_t D, const T* weight,
                         const T* mean, const T* invstd, T* dweight, T* dbias, int nthreads);

template <class T>
const char* norm_ukernel_name();

}  // namespace nnx
