// Portable C++ micro-kernels (the twins of the SIMD ones, same contract: ukernel.h), compiled for the
// baseline ISA so they run on any CPU; the compiler vectorises the inner loops with what it may use.
#include "gemm/epilogue_tile.h"
#include "gemm/gemv_dot.h"
#include "gemm/pack.h"
#include "gemm/ukernel.h"

namespace nnx {
namespace {

// kStridedA: A(i, p) = a[i * rs_a + p * cs_a] read in place (rows >= m repeat row m - 1, dropped at the
// store); otherwise a is a packed sliver.
template <class T, int MR, int NR, bool kStridedA>
void ukernel_portable(int64_t k, const T* __restrict a, int64_t rs_a, int64_t cs_a, const T* __restrict b,
                      T* c, int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, T alpha, T beta) {
  T acc[MR][NR] = {};
  const T* ar[MR];
  for (int i = 0; i < MR; ++i) ar[i] = kStridedA ? a + (i < m ? i : m - 1) * rs_a : a + i;
  const int64_t step = kStridedA ? cs_a : MR;
  int64_t off = 0;
  for (int64_t p = 0; p < k; ++p) {
#pragma GCC unroll 8
    for (int i = 0; i < MR; ++i) {
      const T ai = ar[i][off];
#pragma GCC unroll 16
      for (int j = 0; j < NR; ++j) acc[i][j] += ai * b[j];
    }
    off += step;
    b += NR;
  }
  // One expression for full and edge tiles, so an element's value never depends on its tile.
  for (int64_t i = 0; i < m; ++i) {
    T* ci = c + i * rs_c;
    if (beta == T(0)) {
      for (int64_t j = 0; j < n; ++j) ci[j * cs_c] = alpha * acc[i][j];
    } else {
      for (int64_t j = 0; j < n; ++j) ci[j * cs_c] = alpha * acc[i][j] + beta * ci[j * cs_c];
    }
  }
}

constexpr GemmBlocking kS = kSgemmBlockingPortable;
constexpr GemmBlocking kD = kDgemmBlockingPortable;
static_assert(kS.mr == 4 && kS.nr == 8 && kD.mr == 4 && kD.nr == 4, "tile names below");

}  // namespace

void sgemm_ukernel_portable_4x8(int64_t k, const float* a, const float* b, float* c, int64_t rs_c,
                                int64_t cs_c, int64_t m, int64_t n, float alpha, float beta) {
  ukernel_portable<float, 4, 8, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void sgemm_ukernel_portable_4x8_strided_a(int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                                           const float* b, float* c, int64_t rs_c, int64_t cs_c, int64_t m,
                                           int64_t n, float alpha, float beta) {
  ukernel_portable<float, 4, 8, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_portable_4x4(int64_t k, const double* a, const double* b, double* c, int64_t rs_c,
                                int64_t cs_c, int64_t m, int64_t n, double alpha, double beta) {
  ukernel_portable<double, 4, 4, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_portable_4x4_strided_a(int64_t k, const double* a, int64_t rs_a, int64_t cs_a,
                                           const double* b, double* c, int64_t rs_c, int64_t cs_c, int64_t m,
                                           int64_t n, double alpha, double beta) {
  ukernel_portable<double, 4, 4, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

template <>
void gemm_ukernels_fill_portable<float>(GemmUkernels<float>& table) {
  table = GemmUkernels<float>{kS, sgemm_ukernel_portable_4x8, sgemm_ukernel_portable_4x8_strided_a,
                              pack_a_panels<kS.mr, float>, pack_b_panels<kS.nr, float>, epilogue_tile<float>, "sgemm_ukernel_portable_4x8",
                              nullptr, nullptr, transpose_portable<float>,
                              dot_rows_portable<float>, axpy_row_portable<float>};
}

template <>
void gemm_ukernels_fill_portable<double>(GemmUkernels<double>& table) {
  table = GemmUkernels<double>{kD, dgemm_ukernel_portable_4x4, dgemm_ukernel_portable_4x4_strided_a,
                               pack_a_panels<kD.mr, double>, pack_b_panels<kD.nr, double>, epilogue_tile<double>, "dgemm_ukernel_portable_4x4",
                              nullptr, nullptr, transpose_portable<double>,
                              dot_rows_portable<double>, axpy_row_portable<double>};
}

}  // namespace nnx
