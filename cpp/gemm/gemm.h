// GEMM: C = alpha * A * B + beta * C, the engine under linear layers and convolutions.
//
// Layout: every matrix is given by a pointer and a row and column stride in elements, as in BLIS, so
// transposes and non-contiguous views are absorbed by the packing and never copied separately:
//   A(i, k) = a[i * rs_a + k * cs_a]   (M x K)
//   B(k, j) = b[k * rs_b + j * cs_b]   (K x N)
//   C(i, j) = c[i * rs_c + j * cs_c]   (M x N)
// Strides may be zero (broadcast) or negative for A and B. C must not overlap A or B.
//
// Rules:
// - beta == 0 never reads C (C may hold NaN or garbage), as in BLIS.
// - K == 0 gives C = beta * C (and applies the epilogue).
// - The epilogue (bias, activation) is applied to each tile of C after alpha/beta.
// - Threads split the M and N loops. K is split only by the shape: a deep product with a small C (K >= 1024,
//   C <= 256 KiB, gemm.cpp's split_k_pays) is summed as two fixed halves of K, the second added to the first.
//   Every element of C is summed in the same order for any thread count, so results are bitwise identical
//   for any `nthreads`.
// - `nthreads` is an upper bound; 1 runs on the calling thread (for callers that are already parallel).
// - The driver takes its packing buffers from nnx::workspace (slots kWsGemmA / kWsGemmB).
#pragma once
#include <cstdint>

#include "common/epilogue.h"

namespace nnx {

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha,
          const T* a, int64_t rs_a, int64_t cs_a,
          const T* b, int64_t rs_b, int64_t cs_b,
          T beta, T* c, int64_t rs_c, int64_t cs_c,
          int nthreads, const Epilogue<T>& epilogue = Epilogue<T>());

// gemm with every element of C summed as the register tiles sum it (k in order within KC blocks) whatever M and
// N: without the few-row products (up to 15 rows of A against B's columns contiguous along k, summed as dot
// products in lanes, gemv_dot.h), so a row of C has the same bits computed alone and with any other rows. For
// callers that promise that (the recurrent family's input projection: a sequence alone as in a batch).
template <class T>
void gemm_tiled(int64_t M, int64_t N, int64_t K, T alpha,
                const T* a, int64_t rs_a, int64_t cs_a,
                const T* b, int64_t rs_b, int64_t cs_b,
                T beta, T* c, int64_t rs_c, int64_t cs_c,
                int nthreads, const Epilogue<T>& epilogue = Epilogue<T>());

// C[i] = alpha * A[i] * B[i] for i < batch, A[i] at a + i * bs_a (likewise B, C; bs_a or bs_b may be 0, one
// matrix for every product), beta = 0 and no epilogue. Each product is gemm's, so its bits are those of the
// same gemm call alone; threads take whole products when there are enough of them to share out evenly,
// otherwise each product splits as gemm does.
template <class T>
void gemm_batch(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha,
                const T* a, int64_t bs_a, int64_t rs_a, int64_t cs_a,
                const T* b, int64_t bs_b, int64_t rs_b, int64_t cs_b,
                T* c, int64_t bs_c, int64_t rs_c, int64_t cs_c, int nthreads);

// dst[j * ld_dst + i] = src[i * ld_src + j] for i < m, j < n: the active ISA's blocked transpose (the table's
// transpose_c, 8 x 8 floats or 4 x 4 doubles in registers), on the calling thread. Loads, shuffles and stores
// only, so a bit copy whatever the values (the layout family copies transposed views with it).
template <class T>
void transpose_matrix(int64_t m, int64_t n, const T* src, int64_t ld_src, T* dst, int64_t ld_dst);

// Name of the micro-kernel the active ISA uses for this type, e.g. "sgemm_ukernel_avx2_6x16".
template <class T>
const char* gemm_ukernel_name();

}  // namespace nnx
