// AVX2 + FMA micro-kernels (sgemm 6x16, dgemm 6x8) and packing compiled for AVX2. Only reached when
// the CPU has AVX2 and FMA (nnx::isa_supported(Isa::avx2)).
#include <immintrin.h>

#include "gemm/epilogue_tile.h"
#include "gemm/pack.h"
#include "gemm/ukernel.h"
#include "gemm/ukernel_simd.h"

namespace nnx {
namespace {

struct Avx2Float {
  using T = float;
  using vec = __m256;
  static constexpr int W = 8;
  static vec zero() { return _mm256_setzero_ps(); }
  static vec load(const T* p) { return _mm256_load_ps(p); }
  static vec loadu(const T* p) { return _mm256_loadu_ps(p); }
  static void storeu(T* p, vec v) { _mm256_storeu_ps(p, v); }
  static vec set1(T x) { return _mm256_set1_ps(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
  static vec mul(vec a, vec b) { return _mm256_mul_ps(a, b); }
};

struct Avx2Double {
  using T = double;
  using vec = __m256d;
  static constexpr int W = 4;
  static vec zero() { return _mm256_setzero_pd(); }
  static vec load(const T* p) { return _mm256_load_pd(p); }
  static vec loadu(const T* p) { return _mm256_loadu_pd(p); }
  static void storeu(T* p, vec v) { _mm256_storeu_pd(p, v); }
  static vec set1(T x) { return _mm256_set1_pd(x); }
  static vec fma(vec a, vec b, vec c) { return _mm256_fmadd_pd(a, b, c); }
  static vec mul(vec a, vec b) { return _mm256_mul_pd(a, b); }
};

// 8x8 transpose of r[0..7] in registers (unpack, shuffle, then swap 128-bit halves).
inline void transpose8x8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 2; ++i) {
    u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i + 0], t[4 * i + 2], _MM_SHUFFLE(3, 2, 3, 2));
    u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(1, 0, 1, 0));
    u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], _MM_SHUFFLE(3, 2, 3, 2));
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// pack_b for float with the transposing case done in registers: when B's columns are contiguous along
// k (B = W^T of a row-major weight, the usual linear layer), each full 16-column sliver is built from
// 8 x 8 blocks (16 rows of W, 8 k values each) transposed with shuffles instead of element by element.
void sgemm_pack_b_avx2_16(int64_t kc, int64_t nc, const float* b, int64_t rs_b, int64_t cs_b, float* out) {
  if (rs_b != 1 || nc < 16 || kc < 8) {
    pack_b_panels<16, float>(kc, nc, b, rs_b, cs_b, out);
    return;
  }
  const int64_t full = nc / 16 * 16;
  const int64_t k8 = kc / 8 * 8;
  for (int64_t j0 = 0; j0 < full; j0 += 16, out += 16 * kc) {
    const float* col = b + j0 * cs_b;
    for (int64_t p = 0; p < k8; p += 8) {
      for (int h = 0; h < 2; ++h) {
        __m256 r[8];
        for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(col + (h * 8 + i) * cs_b + p);
        transpose8x8(r);
        for (int q = 0; q < 8; ++q) _mm256_store_ps(out + (p + q) * 16 + h * 8, r[q]);
      }
    }
    for (int64_t p = k8; p < kc; ++p)
      for (int j = 0; j < 16; ++j) out[p * 16 + j] = col[j * cs_b + p];
  }
  if (full < nc) pack_b_panels<16, float>(kc, nc - full, b + full * cs_b, rs_b, cs_b, out);
}

inline void transpose4x4(__m256d r[4]) {
  __m256d t0 = _mm256_unpacklo_pd(r[0], r[1]);
  __m256d t1 = _mm256_unpackhi_pd(r[0], r[1]);
  __m256d t2 = _mm256_unpacklo_pd(r[2], r[3]);
  __m256d t3 = _mm256_unpackhi_pd(r[2], r[3]);
  r[0] = _mm256_permute2f128_pd(t0, t2, 0x20);
  r[1] = _mm256_permute2f128_pd(t1, t3, 0x20);
  r[2] = _mm256_permute2f128_pd(t0, t2, 0x31);
  r[3] = _mm256_permute2f128_pd(t1, t3, 0x31);
}

// The double twin of sgemm_pack_b_avx2_16: 8-column slivers from 4 x 4 transposed blocks.
void dgemm_pack_b_avx2_8(int64_t kc, int64_t nc, const double* b, int64_t rs_b, int64_t cs_b, double* out) {
  if (rs_b != 1 || nc < 8 || kc < 4) {
    pack_b_panels<8, double>(kc, nc, b, rs_b, cs_b, out);
    return;
  }
  const int64_t full = nc / 8 * 8;
  const int64_t k4 = kc / 4 * 4;
  for (int64_t j0 = 0; j0 < full; j0 += 8, out += 8 * kc) {
    const double* col = b + j0 * cs_b;
    for (int64_t p = 0; p < k4; p += 4) {
      for (int h = 0; h < 2; ++h) {
        __m256d r[4];
        for (int i = 0; i < 4; ++i) r[i] = _mm256_loadu_pd(col + (h * 4 + i) * cs_b + p);
        transpose4x4(r);
        for (int q = 0; q < 4; ++q) _mm256_store_pd(out + (p + q) * 8 + h * 4, r[q]);
      }
    }
    for (int64_t p = k4; p < kc; ++p)
      for (int j = 0; j < 8; ++j) out[p * 8 + j] = col[j * cs_b + p];
  }
  if (full < nc) pack_b_panels<8, double>(kc, nc - full, b + full * cs_b, rs_b, cs_b, out);
}

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

void dgemm_ukernel_avx2_6x8(int64_t k, const double* a, const double* b, double* c, int64_t rs_c,
                                 int64_t cs_c, int64_t m, int64_t n, double alpha, double beta) {
  ukernel_simd<Avx2Double, 6, 2, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
}

void dgemm_ukernel_avx2_6x8_strided_a(int64_t k, const double* a, int64_t rs_a, int64_t cs_a, const double* b,
                                   double* c, int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, double alpha,
                                   double beta) {
  ukernel_simd<Avx2Double, 6, 2, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

template <>
void gemm_ukernels_fill_avx2<float>(GemmUkernels<float>& table) {
  table = GemmUkernels<float>{kS, sgemm_ukernel_avx2_6x16, sgemm_ukernel_avx2_6x16_strided_a,
                              pack_a_panels<kS.mr, float>, sgemm_pack_b_avx2_16, epilogue_tile<float>, "sgemm_ukernel_avx2_6x16"};
}

template <>
void gemm_ukernels_fill_avx2<double>(GemmUkernels<double>& table) {
  table = GemmUkernels<double>{kD, dgemm_ukernel_avx2_6x8, dgemm_ukernel_avx2_6x8_strided_a,
                               pack_a_panels<kD.mr, double>, dgemm_pack_b_avx2_8, epilogue_tile<double>, "dgemm_ukernel_avx2_6x8"};
}

}  // namespace nnx
