// NEON (AArch64 AdvSIMD) micro-kernels: sgemm 8x12, dgemm 8x6, i.e. 24 accumulator registers of the 32.
// Built only on aarch64 (NEON is baseline there). During development it was cross-compiled with
// aarch64-linux-gnu-g++ 12 and checked against a naive GEMM under qemu-aarch64 user emulation (both
// dtypes, transposes, edges, 1 and 2 threads); it has not run on real ARM hardware, nor been timed.
#include <arm_neon.h>

#include "gemm/epilogue_tile.h"
#include "gemm/gemv_dot.h"
#include "gemm/pack.h"
#include "gemm/ukernel.h"
#include "gemm/ukernel_simd.h"

namespace nnx {
namespace {

struct NeonFloat {
  using T = float;
  using vec = float32x4_t;
  static constexpr int W = 4;
  static vec zero() { return vdupq_n_f32(0.0f); }
  static vec load(const T* p) { return vld1q_f32(p); }
  static vec loadu(const T* p) { return vld1q_f32(p); }
  static void storeu(T* p, vec v) { vst1q_f32(p, v); }
  static vec set1(T x) { return vdupq_n_f32(x); }
  static vec fma(vec a, vec b, vec c) { return vfmaq_f32(c, a, b); }
  static vec mul(vec a, vec b) { return vmulq_f32(a, b); }
};

struct NeonDouble {
  using T = double;
  using vec = float64x2_t;
  static constexpr int W = 2;
  static vec zero() { return vdupq_n_f64(0.0); }
  static vec load(const T* p) { return vld1q_f64(p); }
  static vec loadu(const T* p) { return vld1q_f64(p); }
  static void storeu(T* p, vec v) { vst1q_f64(p, v); }
  static vec set1(T x) { return vdupq_n_f64(x); }
  static vec fma(vec a, vec b, vec c) { return vfmaq_f64(c, a, b); }
  static vec mul(vec a, vec b) { return vmulq_f64(a, b); }
};

constexpr GemmBlocking kS = kSgemmBlockingNeon;
constexpr GemmBlocking kD = kDgemmBlockingNeon;
static_assert(kS.mr == 8 && kS.nr == 12 && kD.mr == 8 && kD.nr == 6, "tile names below");

}  // namespace

void sgemm_ukernel_neon_8x12(int64_t k, const float* a, const float* b, float* c, int64_t rs_c,
                             int64_t cs_c, int64_t m, int64_t n, float alpha, float beta) {
  ukernel_simd<NeonFloat, 8, 3, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void sgemm_ukernel_neon_8x12_strided_a(int64_t k, const float* a, int64_t rs_a, int64_t cs_a,
                                       const float* b, float* c, int64_t rs_c, int64_t cs_c, int64_t m,
                                       int64_t n, float alpha, float beta) {
  ukernel_simd<NeonFloat, 8, 3, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_neon_8x6(int64_t k, const double* a, const double* b, double* c, int64_t rs_c,
                            int64_t cs_c, int64_t m, int64_t n, double alpha, double beta) {
  ukernel_simd<NeonDouble, 8, 3, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_neon_8x6_strided_a(int64_t k, const double* a, int64_t rs_a, int64_t cs_a,
                                      const double* b, double* c, int64_t rs_c, int64_t cs_c, int64_t m,
                                      int64_t n, double alpha, double beta) {
  ukernel_simd<NeonDouble, 8, 3, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

template <>
void gemm_ukernels_fill_neon<float>(GemmUkernels<float>& table) {
  table = GemmUkernels<float>{kS, sgemm_ukernel_neon_8x12, sgemm_ukernel_neon_8x12_strided_a,
                              pack_a_panels<kS.mr, float>, pack_b_panels<kS.nr, float>, epilogue_tile<float>, "sgemm_ukernel_neon_8x12",
                              nullptr, nullptr, transpose_portable<float>,
                              dot_rows_portable<float>, axpy_row_portable<float>};
}

template <>
void gemm_ukernels_fill_neon<double>(GemmUkernels<double>& table) {
  table = GemmUkernels<double>{kD, dgemm_ukernel_neon_8x6, dgemm_ukernel_neon_8x6_strided_a,
                               pack_a_panels<kD.mr, double>, pack_b_panels<kD.nr, double>, epilogue_tile<double>, "dgemm_ukernel_neon_8x6",
                              nullptr, nullptr, transpose_portable<double>,
                              dot_rows_portable<double>, axpy_row_portable<double>};
}

}  // namespace nnx
