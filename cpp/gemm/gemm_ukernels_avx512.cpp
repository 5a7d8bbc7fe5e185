// AVX-512 micro-kernels (sgemm 6x32, dgemm 6x16): the AVX2 kernel with zmm registers. Filled into the
// table only when the CPU has AVX-512 F/DQ/BW/VL (common/isa_table.h); the tests' `isa` fixture runs
// them on AVX-512 machines beside the AVX2 and portable kernels.
#include <immintrin.h>

#include "gemm/epilogue_tile.h"
#include "gemm/pack.h"
#include "gemm/pack_transposed_x86.h"
#include "gemm/ukernel.h"
#include "gemm/ukernel_simd.h"
#include "gemm/ukernel_vec_avx512.h"

namespace nnx {
namespace {

using avx512::Avx512Double;
using avx512::Avx512Float;

constexpr GemmBlocking kS = kSgemmBlockingAvx512;
constexpr GemmBlocking kD = kDgemmBlockingAvx512;
static_assert(kS.mr == 6 && kS.nr == 32 && kD.mr == 6 && kD.nr == 16, "tile names below");
constexpr GemmBlocking kSN = kSgemmBlockingAvx512Narrow;
constexpr GemmBlocking kDN = kDgemmBlockingAvx512Narrow;
static_assert(kSN.mr == 16 && kSN.nr == 16 && kDN.mr == 16 && kDN.nr == 8, "tile names below");

}  // namespace

void sgemm_ukernel_avx512_6x32(int64_t k, const float* a, const float* b, float* c, int64_t rs_c,
                                    int64_t cs_c, int64_t m, int64_t n, float alpha, float beta) {
  ukernel_simd<Avx512Float, 6, 2, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void sgemm_ukernel_avx512_6x32_strided_a(int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const float* b,
                                   float* c, int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, float alpha,
                                   float beta) {
  ukernel_simd<Avx512Float, 6, 2, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_avx512_6x16(int64_t k, const double* a, const double* b, double* c, int64_t rs_c,
                                    int64_t cs_c, int64_t m, int64_t n, double alpha, double beta) {
  ukernel_simd<Avx512Double, 6, 2, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_avx512_6x16_strided_a(int64_t k, const double* a, int64_t rs_a, int64_t cs_a, const double* b,
                                   double* c, int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, double alpha,
                                   double beta) {
  ukernel_simd<Avx512Double, 6, 2, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void sgemm_ukernel_avx512_16x16(int64_t k, const float* a, const float* b, float* c, int64_t rs_c, int64_t cs_c,
                                int64_t m, int64_t n, float alpha, float beta) {
  ukernel_simd<Avx512Float, 16, 1, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void sgemm_ukernel_avx512_16x16_strided_a(int64_t k, const float* a, int64_t rs_a, int64_t cs_a, const float* b,
                                          float* c, int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, float alpha,
                                          float beta) {
  ukernel_simd<Avx512Float, 16, 1, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_avx512_16x8(int64_t k, const double* a, const double* b, double* c, int64_t rs_c, int64_t cs_c,
                               int64_t m, int64_t n, double alpha, double beta) {
  ukernel_simd<Avx512Double, 16, 1, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_avx512_16x8_strided_a(int64_t k, const double* a, int64_t rs_a, int64_t cs_a, const double* b,
                                         double* c, int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, double alpha,
                                         double beta) {
  ukernel_simd<Avx512Double, 16, 1, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

template <>
void gemm_ukernels_fill_avx512<float>(GemmUkernels<float>& table) {
  table = GemmUkernels<float>{kS, sgemm_ukernel_avx512_6x32, sgemm_ukernel_avx512_6x32_strided_a,
                              pack_a_panels<kS.mr, float>, pack_b_transposed<kS.nr>, epilogue_tile<float>, "sgemm_ukernel_avx512_6x32"};
}

template <>
void gemm_ukernels_fill_avx512<double>(GemmUkernels<double>& table) {
  table = GemmUkernels<double>{kD, dgemm_ukernel_avx512_6x16, dgemm_ukernel_avx512_6x16_strided_a,
                               pack_a_panels<kD.mr, double>, pack_b_transposed<kD.nr>, epilogue_tile<double>, "dgemm_ukernel_avx512_6x16"};
}

template <>
void gemm_ukernels_fill_avx512_narrow<float>(GemmUkernels<float>& table) {
  table = GemmUkernels<float>{kSN, sgemm_ukernel_avx512_16x16, sgemm_ukernel_avx512_16x16_strided_a,
                              pack_a_panels<kSN.mr, float>, pack_b_transposed<kSN.nr>, epilogue_tile<float>,
                              "sgemm_ukernel_avx512_16x16"};
}

template <>
void gemm_ukernels_fill_avx512_narrow<double>(GemmUkernels<double>& table) {
  table = GemmUkernels<double>{kDN, dgemm_ukernel_avx512_16x8, dgemm_ukernel_avx512_16x8_strided_a,
                               pack_a_panels<kDN.mr, double>, pack_b_transposed<kDN.nr>, epilogue_tile<double>,
                               "dgemm_ukernel_avx512_16x8"};
}

}  // namespace nnx
