// The per-ISA micro-kernel table of the normalization family. Every entry is one template of
// norm_generic.h instantiated on a vector type (portable: one-lane scalar; AVX2: 8 x float / 4 x double;
// AVX-512: 16 x float / 8 x double, with some AVX2 entries, see norm_ukernels_avx512.cpp).
// All entries are single-threaded and reduce in a fixed lane order; norm.cpp cuts the work into
// shape-fixed chunks and merges chunk results in chunk order.
//
// "g" below is the incoming gradient dy, masked by y > 0 when the forward fused a ReLU (y not null).
#pragma once
#include <cstdint>

namespace nnx {

template <class T>
struct NormUkernels {
  const char* name;
  // ---- contiguous runs: `runs` runs of n elements `stride` apart (a chunk of one channel's planes, or one
  // layer-norm row with runs = 1)
  // *mean = sum(x) / count and *m2 = sum((x - mean)^2) over the runs, count = runs * n >= 1 (two passes;
  // the chunk is in L1/L2 for the second).
  void (*moments)(const T* x, int64_t runs, int64_t n, int64_t stride, double* mean, double* m2);
  // y = (x - m) * a + b, then max(y, 0) when relu (centred first so a large mean does not cancel).
  void (*affine)(const T* x, T* y, int64_t n, T m, T a, T b, bool relu);
  // *s1 = sum(g), *s2 = sum(g * (x - mean)) over the runs.
  void (*grad_sums)(const T* dy, const T* x, const T* y, int64_t runs, int64_t n, int64_t stride, T mean,
                    double* s1, double* s2);
  // dx = a * g + b * (x - m) + d.
  void (*grad_apply)(const T* dy, const T* x, const T* y, T* dx, int64_t n, T m, T a, T b, T d);

  // ---- a block of `rows` rows of an (N, C) array (row stride ld), columns [0, w) of the block
  // mean[j] = column mean, m2[j] = sum of squared deviations of column j.
  void (*col_moments)(const T* x, int64_t rows, int64_t w, int64_t ld, double* mean, double* m2);
  // s1[j] = sum over rows of g, s2[j] = sum of g * (x - mean[j]).
  void (*col_grad_sums)(const T* dy, const T* x, const T* y, int64_t rows, int64_t w, int64_t ld, const T* mean,
                        double* s1, double* s2);
  // Whole rows of length C: y = (x - m[c]) * a[c] + b[c] (relu), dx = a[c] * g + b[c] * (x - m[c]) + d[c].
  void (*affine_rows)(const T* x, T* y, int64_t rows, int64_t C, const T* m, const T* a, const T* b, bool relu);
  void (*grad_apply_rows)(const T* dy, const T* x, const T* y, T* dx, int64_t rows, int64_t C, const T* m,
                          const T* a, const T* b, const T* d);

  // ---- layer norm rows (weight/bias may be null)
  // y = (x - mean) * invstd * w + b; past_caches: y written with streaming stores (common/stream_store.h; the
  // caller fences), the same values.
  void (*ln_apply)(const T* x, T* y, int64_t n, T mean, T invstd, const T* w, const T* b, bool past_caches);
  // *s1 = sum(dy * w), *s2 = sum(dy * w * xhat).
  void (*ln_grad_sums)(const T* dy, const T* x, const T* w, int64_t n, T mean, T invstd, double* s1, double* s2);
  // dx = invstd * (dy * w - c1 - xhat * c2) (dx may be null); dw_acc += dy * xhat, db_acc += dy (each may
  // be null). past_caches: dx written with streaming stores (the caller fences), the same values. next_dy /
  // next_x: the next row's, fetched meanwhile (or null).
  void (*ln_grad_apply)(const T* dy, const T* x, const T* w, T* dx, int64_t n, T mean, T invstd, T c1, T c2,
                        T* dw_acc, T* db_acc, bool past_caches, const T* next_dy, const T* next_x);
};

// Fills of the one dispatch idiom (common/isa_table.h), each in norm_ukernels_<isa>.cpp.
template <class T>
void norm_ukernels_fill_portable(NormUkernels<T>& table);
#if defined(NNX_X86)
template <class T>
void norm_ukernels_fill_avx2(NormUkernels<T>& table);
template <class T>
void norm_ukernels_fill_avx512(NormUkernels<T>& table);
#endif

// The table of the active ISA (looked up per call, so nnx.set_isa takes effect at once).
template <class T>
const NormUkernels<T>& norm_ukernels();

}  // namespace nnx
