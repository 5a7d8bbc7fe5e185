// AVX2 + FMA micro-kernels (sgemm 6x16, dgemm 6x8) and packing compiled for AVX2. Only reached when
// the CPU has AVX2 and FMA (nnx::isa_supported(Isa::avx2)).
#include <immintrin.h>

#include "gemm/epilogue_tile.h"
#include "gemm/gemv_dot.h"
#include "gemm/pack.h"
#include "gemm/pack_transposed_x86.h"
#include "gemm/ukernel.h"
#include "gemm/ukernel_simd.h"
#include "gemm/ukernel_vec_avx2.h"

namespace nnx {
namespace {

using avx2::Avx2Float;
using avx2::Avx2Double;

constexpr GemmBlocking kS = kSgemmBlockingAvx2;
constexpr GemmBlocking kD = kDgemmBlockingAvx2;
static_assert(kS.mr == 6 && kS.nr == 16 && kD.mr == 6 && kD.nr == 8, "tile names below");

}  // namespace

void sgemm_ukernel_avx2_6x16(int64_t k, const float* a, const float* b, float* c, int64_t rs_c,
                                  int64_t cs_c, int64_t m, int64_t n, float alpha, float beta) {
  ukernel_simd<Avx2Float, 6, 2, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void sgemm_ukernel_avx2_6x16_strided_a(int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const float* b,
                                   float* c, int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, float alpha,
                                   float beta) {
  ukernel_simd<Avx2Float, 6, 2, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void sgemm_ukernel_avx2_6x16_stream_c(int64_t k, const float* a, const float* b, float* c, int64_t rs_c,
                                      int64_t cs_c, int64_t m, int64_t n, float alpha, float beta) {
  ukernel_simd<Avx2Float, 6, 2, false, true>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_avx2_6x8(int64_t k, const double* a, const double* b, double* c, int64_t rs_c,
                                 int64_t cs_c, int64_t m, int64_t n, double alpha, double beta) {
  ukernel_simd<Avx2Double, 6, 2, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_avx2_6x8_strided_a(int64_t k, const double* a, int64_t rs_a, int64_t cs_a, const double* b,
                                   double* c, int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, double alpha,
                                   double beta) {
  ukernel_simd<Avx2Double, 6, 2, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_avx2_6x8_stream_c(int64_t k, const double* a, const double* b, double* c, int64_t rs_c,
                                     int64_t cs_c, int64_t m, int64_t n, double alpha, double beta) {
  ukernel_simd<Avx2Double, 6, 2, false, true>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

template <>
void gemm_ukernels_fill_avx2<float>(GemmUkernels<float>& table) {
  table = GemmUkernels<float>{kS, sgemm_ukernel_avx2_6x16, sgemm_ukernel_avx2_6x16_strided_a,
                              pack_a_panels<kS.mr, float>, pack_b_transposed<kS.nr>, epilogue_tile<float>, "sgemm_ukernel_avx2_6x16",
                              sgemm_ukernel_avx2_6x16_stream_c, nullptr, transpose_blocks<float>,
                              dot_rows_simd<Avx2Float>, axpy_row_simd<Avx2Float>};
}

template <>
void gemm_ukernels_fill_avx2<double>(GemmUkernels<double>& table) {
  table = GemmUkernels<double>{kD, dgemm_ukernel_avx2_6x8, dgemm_ukernel_avx2_6x8_strided_a,
                               pack_a_panels<kD.mr, double>, pack_b_transposed<kD.nr>, epilogue_tile<double>, "dgemm_ukernel_avx2_6x8",
                               dgemm_ukernel_avx2_6x8_stream_c, nullptr, transpose_blocks<double>,
                              dot_rows_simd<Avx2Double>, axpy_row_simd<Avx2Double>};
}

}  // namespace nnx
