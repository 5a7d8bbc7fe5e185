// GEMM micro-kernels and packing routines, one table per ISA and scalar type.
//
// Micro-kernel contract (BLIS's gemm ukernel with edge handling inside):
//   ukernel(k, a, b, c, rs_c, cs_c, m, n, alpha, beta)
//   a: packed MR x k sliver of A, column by column: a[p * MR + i] = A(i, p)   (rows >= m are zero)
//   b: packed k x NR sliver of B, row by row:       b[p * NR + j] = B(p, j)   (columns >= n are zero)
//   Both are aligned to 64 bytes (the packing buffers and every sliver in them are).
//   Computes the MR x NR tile AB = sum over p = 0..k-1 in increasing order (one fused multiply-add per
//   p, so every element of the tile is summed in the same order wherever it lies in C), then writes
//     C(i, j) = alpha * AB(i, j) + beta * C(i, j)   for i < m, j < n only (m <= MR, n <= NR)
//   with C(i, j) = c[i * rs_c + j * cs_c]. beta == 0 never reads C. k may be 0 (then AB = 0).
// ukernel_stream_c: the same as ukernel (k <= KC, one block); full tiles with beta == 0 are written with
//   non-temporal stores, which skip reading C's lines into the caches before writing them. Needs cs_c == 1
//   and each row of the tile to start on a 64-byte boundary (NR values are whole cache lines); the caller
//   fences after the last one. Absent (nullptr) where the ISA has no such store.
// ukernel_strided_a: the same with A read in place, A(i, p) = a[i * rs_a + p * cs_a] for i < m (rows
//   past m are never touched). Same arithmetic in the same order, so both give bitwise equal tiles; it
//   saves packing when each sliver of A meets only a few slivers of B (narrow N).
// ukernel_strided_ab: ukernel_strided_a with B read in place as well, row p of the k x NR sliver at b + p * ldb
//   (n == NR: no padding to read; any alignment). For a small B (gemm.cpp's kInPlaceBMaxBytes), whose packing
//   would cost as much as a fraction of the product. Absent (nullptr) where the table has none.
//
// pack_a(mc, kc, a, rs_a, cs_a, out): packs the mc x kc block A(i, p) = a[i * rs_a + p * cs_a] into
//   ceil(mc / MR) slivers of MR * kc elements each (sliver s holds rows s*MR ..), zero-padding the rows
//   past mc. Any strides (zero, negative) are allowed.
// pack_b(kc, nc, b, rs_b, cs_b, out): packs the kc x nc block B(p, j) = b[p * rs_b + j * cs_b] into
//   ceil(nc / NR) slivers of kc * NR elements each, zero-padding the columns past nc.
#pragma once
#include <cstdint>

#include "common/epilogue.h"
#include "gemm/gemm_config.h"

namespace nnx {

template <class T>
using GemmUkernel = void (*)(int64_t k, const T* a, const T* b, T* c, int64_t rs_c, int64_t cs_c,
                             int64_t m, int64_t n, T alpha, T beta);
template <class T>
using GemmUkernelStridedA = void (*)(int64_t k, const T* a, int64_t rs_a, int64_t cs_a, const T* b, T* c,
                                     int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, T alpha, T beta);
template <class T>
using GemmUkernelStridedAB = void (*)(int64_t k, const T* a, int64_t rs_a, int64_t cs_a, const T* b, int64_t ldb, T* c,
                                      int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, T alpha, T beta);
template <class T>
using GemmPackA = void (*)(int64_t mc, int64_t kc, const T* a, int64_t rs_a, int64_t cs_a, T* out);
template <class T>
using GemmPackB = void (*)(int64_t kc, int64_t nc, const T* b, int64_t rs_b, int64_t cs_b, T* out);

// transpose_c(m, n, src, ld_src, dst, ld_dst): dst[j * ld_dst + i] = src[i * ld_src + j] for i < m, j < n (gemm.cpp's
//   product computed as C^T): pack.h's transpose_portable, or its x86 twin transpose_blocks.
template <class T>
using GemmTranspose = void (*)(int64_t m, int64_t n, const T* src, int64_t ld_src, T* dst, int64_t ld_dst);

// dot_rows(m, n, K, a, lda, b, ldb, out, ldo): out[i * ldo + j] = sum over k of a[i * lda + k] b[j * ldb + k] for
//   i < m, j < n, each in gemv_dot.h's lanes and order (a linear layer's x W^T for a batch of a few rows,
//   gemm.cpp's gemv_rows).
// axpy_row(n, K, a, cs_a, b, rs_b, out): out[j] = sum over k < K, in increasing order, of a[k * cs_a] b[k * rs_b + j]
//   for j < n (one row times a row-major B: gemm.cpp's gemv_rows), gemv_dot.h's axpy_row_portable or its vector form.
template <class T>
using GemmAxpyRow = void (*)(int64_t n, int64_t K, const T* a, int64_t cs_a, const T* b, int64_t rs_b, T* out);

template <class T>
using GemmDotRows = void (*)(int64_t m, int64_t n, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* out,
                             int64_t ldo);

// epilogue(ep, row0, col0, m, n, c, rs_c, cs_c): apply_epilogue on an m x n tile of C whose first element
//   is C(row0, col0) of the whole product, vectorised for the ISA; returns false (touching nothing) for
//   the cases it leaves to gemm.cpp's epilogue_rest (sigmoid, tanh, a strided C).
template <class T>
using GemmEpilogue = bool (*)(const Epilogue<T>& ep, int64_t row0, int64_t col0, int64_t m, int64_t n, T* c,
                              int64_t rs_c, int64_t cs_c);

template <class T>
struct GemmUkernels {
  GemmBlocking blocking;
  GemmUkernel<T> ukernel;
  GemmUkernelStridedA<T> ukernel_strided_a;
  GemmPackA<T> pack_a;
  GemmPackB<T> pack_b;
  GemmEpilogue<T> epilogue;
  const char* name;  // the micro-kernel's name, e.g. "sgemm_ukernel_avx2_6x16"
  GemmUkernel<T> ukernel_stream_c = nullptr;
  GemmUkernelStridedAB<T> ukernel_strided_ab = nullptr;
  GemmTranspose<T> transpose_c = nullptr;
  GemmDotRows<T> dot_rows = nullptr;
  GemmAxpyRow<T> axpy_row = nullptr;
};

// One fill per ISA (the dispatch idiom of common/isa_table.h), each defined in the file compiled for that
// ISA (gemm_ukernels_<isa>.cpp) and called only on CPUs that have it.
template <class T>
void gemm_ukernels_fill_portable(GemmUkernels<T>& table);
#if defined(NNX_X86)
template <class T>
void gemm_ukernels_fill_avx2(GemmUkernels<T>& table);
template <class T>
void gemm_ukernels_fill_avx512(GemmUkernels<T>& table);
// The AVX-512 table for narrow products on CPUs with full-width 512-bit FMA (gemm.cpp's gemm_ukernels_for).
template <class T>
void gemm_ukernels_fill_avx512_narrow(GemmUkernels<T>& table);
#endif
#if defined(NNX_ARM64)
template <class T>
void gemm_ukernels_fill_neon(GemmUkernels<T>& table);
#endif

// The table of the active ISA.
template <class T>
const GemmUkernels<T>& gemm_ukernels();

}  // namespace nnx
