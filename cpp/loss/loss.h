// Loss functions: forward (the SUM of per-example losses; the caller divides for "mean") and backward
// (gradient w.r.t. the first argument, times a caller-given `scale` = upstream dy, divided by the count
// for "mean").
//
// Determinism: rows are grouped in fixed-size chunks that depend only on the shape (loss_chunk_rows);
// each chunk's partial sum is accumulated in double in row order by one thread into partials[chunk],
// and the partials are then added in chunk order. The result is bitwise identical for any nthreads.
// `partials` is caller-owned scratch of loss_num_partials(rows, cols) doubles (kernels never allocate).
//
// All arrays are C-contiguous; class targets are int64 in [0, C) (checked by the caller).
#pragma once
#include <cstdint>

namespace nnx {

// Rows per partial sum for rows of `cols` elements (about 4096 elements per chunk).
int64_t loss_chunk_rows(int64_t cols);
int64_t loss_num_partials(int64_t rows, int64_t cols);

// sum_i [log sum_j exp(z_ij) - z_i,t_i]  (log-softmax fused, max subtracted); z is (N, C).
template <class T>
double cross_entropy_sum(const T* z, const int64_t* target, int64_t N, int64_t C, double* partials, int nthreads);
// dz = scale * (softmax(z) - onehot(target)).
template <class T>
void cross_entropy_backward(const T* z, const int64_t* target, int64_t N, int64_t C, T scale, T* dz, int nthreads);

// sum (p - t)^2 over n elements.
template <class T>
double mse_sum(const T* p, const T* t, int64_t n, double* partials, int nthreads);
// dp = scale * 2 (p - t).
template <class T>
void mse_backward(const T* p, const T* t, int64_t n, T scale, T* dp, int nthreads);

// sum x over n elements (a tensor's sum or mean of all its elements, nnx.ops.sum / mean).
template <class T>
double sum_elements(const T* x, int64_t n, double* partials, int nthreads);

// sum max(z, 0) - z t + log1p(exp(-|z|)) over n elements (stable for any |z|).
template <class T>
double bce_with_logits_sum(const T* z, const T* t, int64_t n, double* partials, int nthreads);
// dz = scale * (sigmoid(z) - t).
template <class T>
void bce_with_logits_backward(const T* z, const T* t, int64_t n, T scale, T* dz, int nthreads);

// sum_i sum_{j != t_i} max(0, s_ij - s_i,t_i + margin); s is (N, C).
template <class T>
double multiclass_hinge_sum(const T* s, const int64_t* target, int64_t N, int64_t C, T margin, double* partials,
                            int nthreads);
// ds_ij = scale [s_ij - s_i,t_i + margin > 0] for j != t_i; ds_i,t_i = -scale * (number of such j).
template <class T>
void multiclass_hinge_backward(const T* s, const int64_t* target, int64_t N, int64_t C, T margin, T scale, T* ds,
                               int nthreads);

}  // namespace nnx
