// The per-ISA micro-kernel table of the activation family. Every entry is one template (activation_generic.h)
// instantiated on a vector type: the portable twin on a one-lane scalar "vector" with std:: math, the
// AVX2 version on __m256 / __m256d with the polynomial exp of vecmath_avx2.h; on AVX-512 CPUs the float32
// entries run on 16 lanes (vec_avx512.h, same polynomial, softmax rows summed in AVX2's order: the same bits)
// and float64 stays AVX2.
// All entries are single-threaded; activation.cpp splits the work across threads.
#pragma once
#include <cstdint>

#include "activation/activation.h"

namespace nnx {

// Columns a softmax_cols tile holds: its running max and sum (and the backward's dot) stay in L1 arrays of
// this many elements, and its n row segments in L2.
constexpr int64_t kSoftmaxColTile = 256;

template <class T>
struct ActivationUkernels {
  const char* name;
  // past_caches: the result is written with streaming stores (common/stream_store.h; the same values).
  void (*forward)(Act fn, const T* x, T* y, int64_t n, T param, bool past_caches);
  void (*backward)(Act fn, const T* dy, const T* x, T* dx, int64_t n, T param, bool past_caches);
  void (*backward_from_output)(Act act, const T* dy, const T* y, T* dz, int64_t n, T slope, bool past_caches);
  // `rows` contiguous rows of length n.
  void (*softmax_rows)(const T* x, T* y, int64_t rows, int64_t n, bool log, bool past_caches);
  void (*softmax_rows_backward)(const T* dy, const T* x, T* dx, int64_t rows, int64_t n, bool log);
  // `width` adjacent columns, each of n elements `stride` apart (softmax along a non-last axis), in tiles of
  // kSoftmaxColTile columns (the last one narrower): the fewer calls a range of columns takes, the more of
  // its tiles find their rows already fetched (the kernels ask for tile t + 1 while computing tile t).
  void (*softmax_cols)(const T* x, T* y, int64_t n, int64_t stride, int64_t width, bool log);
  void (*softmax_cols_backward)(const T* dy, const T* x, T* dx, int64_t n, int64_t stride, int64_t width,
                                bool log);
  // The two backwards from the forward output y instead of x (activation.h's softmax_backward_from_output).
  void (*softmax_rows_backward_from_output)(const T* dy, const T* y, T* dx, int64_t rows, int64_t n, bool log,
                                            bool past_caches);
  void (*softmax_cols_backward_from_output)(const T* dy, const T* y, T* dx, int64_t n, int64_t stride,
                                            int64_t width, bool log);
  // Per row of `rows` contiguous rows of n: lse[r] = log(sum_j exp(x_j - m)) with m = max_j x_j in max_out[r].
  void (*log_sum_exp_rows)(const T* x, int64_t rows, int64_t n, T* lse, T* max_out);
};

// Fills of the one dispatch idiom (common/isa_table.h), each in act_ukernels_<isa>.cpp.
template <class T>
void activation_ukernels_fill_portable(ActivationUkernels<T>& table);
#if defined(NNX_X86)
template <class T>
void activation_ukernels_fill_avx2(ActivationUkernels<T>& table);
template <class T>
void activation_ukernels_fill_avx512(ActivationUkernels<T>& table);
#endif

// The table of the active ISA (looked up per call, so nnx.set_isa takes effect at once).
template <class T>
const ActivationUkernels<T>& activation_ukernels();

}  // namespace nnx
