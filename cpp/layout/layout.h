// Layout kernels: copies between strided and C-contiguous arrays, a strided accumulate, a sum and a fill. They
// let the few NumPy steps inside a step (a transpose or slice made contiguous for the next op, the gradient of
// a slice, an all-zero initial state, a residual add, the sum of a tensor's two gradients, a tensor times a
// number) run as kernel
// calls that a captured step (nnx.compile) records and replays, threaded. Elementwise and memory bound, so
// one portable implementation and no ISA table of their own; only a copy of a transposed view (its two innermost
// axes swapped) borrows the GEMM's blocked transpose (gemm.h's transpose_matrix). Each element is copied or added
// once, so results do not depend on the thread count.
#pragma once
#include <cstdint>

namespace nnx {

constexpr int kLayoutMaxDims = 8;

// One iteration space read through two sets of strides (in elements, possibly 0 or negative).
struct StridedPair {
  int ndim = 0;  // 0: a single element
  int64_t shape[kLayoutMaxDims] = {0};
  int64_t src[kLayoutMaxDims] = {0};
  int64_t dst[kLayoutMaxDims] = {0};
};

// dst[i] = src[i] for every index i of g.shape (bit copies: T is an unsigned integer of the item size; 4- and
// 8-byte items whose two innermost axes are swapped between src and dst are copied by blocked transposes).
template <class T>
void layout_copy(const T* src, T* dst, const StridedPair& g, int nthreads);

// dst[i] += src[i] (float, double); dst's elements must be distinct.
template <class T>
void layout_add(const T* src, T* dst, const StridedPair& g, int nthreads);

// out[i] = a[i] + b[i] for C-contiguous arrays of n elements (float, double); out may be a or b.
template <class T>
void layout_sum(const T* a, const T* b, T* out, int64_t n, int nthreads);

// out[i] = a[i] * s for C-contiguous arrays of n elements (float, double); out may be a. A tensor times a number
// and its gradient (Tensor.__mul__): IEEE products, NumPy's bits.
template <class T>
void layout_scale(const T* a, T s, T* out, int64_t n, int nthreads);

// dst[0..n) = 0 (all bits zero, for any element type T).
template <class T>
void layout_zero(T* dst, int64_t n, int nthreads);

}  // namespace nnx
