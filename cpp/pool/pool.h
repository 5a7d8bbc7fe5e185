// 2-D pooling over NCHW planes: max, average (padding counted as zeros), power-average (Lp) and global
// average, forward and backward.
//
// Layout: x and dx are C-contiguous (N, C, H, W); y and dy are C-contiguous (N, C, OH, OW) with
// OH = (H + 2*ph - dh*(kh-1) - 1) / sh + 1 (PyTorch's size without ceil_mode), likewise OW.
// Preconditions (checked by the bindings, relied on here): kernel, stride and dilation >= 1, padding >= 0
// and at most half the kernel (PyTorch's rule), OH and OW >= 1, H*W < 2^31. Without dilation every
// window then holds a real element; a dilated max window may not (its output is -inf, its index -1,
// and it passes no gradient).
//
// Threads: the N*C planes are split between threads; each plane is computed by one thread in a fixed
// order (overlapping windows of the backward pass accumulate in row-major window order), so the results
// are bitwise identical for any thread count. Kernels never allocate (row scratch lives on the stack).
#pragma once
#include <cstdint>

namespace nnx {

// The pooling kinds, the one list of them (exported to Python as nnx._C.POOL_KINDS).
enum class PoolKind : int { max = 0, avg = 1, lp = 2, global_avg = 3 };

// One output extent of a window of `k` taps, `d` apart, moved by `s` over `n` inputs padded by `p` on both
// sides (PyTorch's size without ceil_mode); < 1 when the window does not fit. The shape formula of nnx.ops.
inline int64_t pool_output_size(int64_t n, int64_t k, int64_t s, int64_t p, int64_t d) {
  return (n + 2 * p - (d * (k - 1) + 1)) / s + 1;
}

struct Pool2dShape {
  int64_t planes;   // N * C
  int64_t H, W;     // input plane
  int64_t OH, OW;   // output plane
  int64_t kh, kw;   // window
  int64_t sh, sw;   // stride
  int64_t ph, pw;   // padding (max: never wins; avg: zeros; lp: must be 0)
  int64_t dh, dw;   // dilation (max only; 1 for the others)
};

// y = max over each window. NaN anywhere in a window gives NaN; padded positions are ignored.
template <class T>
void max_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int nthreads);
// dx (fully overwritten) = dy routed to the element PyTorch's scan picks in each window: row-major scan
// that moves on when an element is strictly greater than the current maximum or is NaN (so: the first
// maximum, or the last NaN); a window of -inf values picks its first real element.
template <class T>
void max_pool2d_backward(const Pool2dShape& s, const T* dy, const T* x, T* dx, int nthreads);

// max_pool2d_forward that also stores, for each output, the plane offset ih*W + iw of the element the
// backward scan picks (PyTorch's indices, as int32).
template <class T>
void max_pool2d_forward_indices(const Pool2dShape& s, const T* x, T* y, int32_t* indices, int nthreads);
// dx (fully overwritten) = dy scattered to those offsets, in output order within each plane. Offsets
// -1 (a window with no real element) passes no gradient; offsets outside [-1, H*W) are skipped and make
// it return false (the bindings then raise).
template <class T>
bool max_pool2d_backward_indices(const Pool2dShape& s, const T* dy, const int32_t* indices, T* dx,
                                 int nthreads);

// relu(max_pool2d(x)) with max_pool2d(x)'s indices: the pooling of Conv2d -> ReLU -> MaxPool2d run in the
// other order (the two commute: relu is non-decreasing and the identity where the maximum is positive), so
// the ReLU's mask is read on the pooled output, a quarter of the conv output for 2x2, in the backward.
template <class T>
void max_pool2d_relu_forward_indices(const Pool2dShape& s, const T* x, T* y, int32_t* indices, int nthreads);
// Its backward: dy masked by y > 0 (y: that forward's output), a block of planes at a time into the running
// thread's kWsPool workspace, then max_pool2d_backward_indices on the block. Returns false as that does.
template <class T>
bool max_pool2d_relu_backward_indices(const Pool2dShape& s, const T* dy, const T* y, const int32_t* indices, T* dx,
                                      int nthreads);

// y = (sum of the window, padding counting as zeros) / (kh*kw).
template <class T>
void avg_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int nthreads);
// dx (fully overwritten) = sum over the windows containing each element of dy / (kh*kw).
template <class T>
void avg_pool2d_backward(const Pool2dShape& s, const T* dy, T* dx, int nthreads);

// y = (sum of x^p over the window)^(1/p) (PyTorch's LPPool2d; no padding: s.ph = s.pw = 0, no dilation).
template <class T>
void lp_pool2d_forward(const Pool2dShape& s, T p, const T* x, T* y, int nthreads);
// dx (fully overwritten) = sum over windows of x^(p-1) * y^(1-p) * dy, a window whose sum is 0 giving 0.
// y is recomputed from x, not read.
template <class T>
void lp_pool2d_backward(const Pool2dShape& s, T p, const T* dy, const T* x, T* dx, int nthreads);

// y[plane] = mean of the H*W plane (s.OH = s.OW = 1; the window fields are ignored).
template <class T>
void global_avg_pool2d_forward(const Pool2dShape& s, const T* x, T* y, int nthreads);
template <class T>
void global_avg_pool2d_backward(const Pool2dShape& s, const T* dy, T* dx, int nthreads);

// Name of the micro-kernel set in use for T (for tests/benchmarks: "portable" or "avx2").
template <class T>
const char* pool_kernels_name();

}  // namespace nnx
