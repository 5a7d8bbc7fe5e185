// AVX-512 micro-kernels: the AVX2 kernel with zmm registers (sgemm 8x32, dgemm 6x16), and for narrow products
// on CPUs with full-width 512-bit FMA pipes a one-vector tile (sgemm 16x16, dgemm 16x8; gemm.cpp's
// gemm_ukernels_for). Filled into the tables only when the CPU has AVX-512 F/DQ/BW/VL (common/isa_table.h);
// the tests' `isa` fixture runs them on AVX-512 machines beside the AVX2 and portable kernels.
#include <immintrin.h>

#include "gemm/epilogue_tile.h"
#include "gemm/gemv_dot.h"
#include "gemm/pack.h"
#include "gemm/pack_transposed_x86.h"
#include "gemm/ukernel.h"
#include "gemm/ukernel_simd.h"
#include "gemm/ukernel_vec_avx512.h"

namespace nnx {
namespace {

using avx512::Avx512Double;
using avx512::Avx512Float;

// The table of a tile of MR rows by NV vectors of V, with the blocking bl (whose mr and nr it must be).
template <class V, int MR, int NV>
GemmUkernels<typename V::T> tile_table(const GemmBlocking& bl, const char* name) {
  using T = typename V::T;
  constexpr int NR = NV * V::W;
  GemmUkernel<T> packed = [](int64_t k, const T* a, const T* b, T* c, int64_t rs_c, int64_t cs_c, int64_t m,
                             int64_t n, T alpha, T beta) {
    ukernel_simd<V, MR, NV, false>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
  };
  GemmUkernelStridedA<T> strided = [](int64_t k, const T* a, int64_t rs_a, int64_t cs_a, const T* b, T* c,
                                      int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, T alpha, T beta) {
    ukernel_simd<V, MR, NV, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
  };
  GemmUkernel<T> stream_c = [](int64_t k, const T* a, const T* b, T* c, int64_t rs_c, int64_t cs_c, int64_t m,
                               int64_t n, T alpha, T beta) {
    ukernel_simd<V, MR, NV, false, true>(k, a, 0, 0, b, c, rs_c, cs_c, m, n, alpha, beta);
  };
  GemmUkernelStridedAB<T> strided_ab = [](int64_t k, const T* a, int64_t rs_a, int64_t cs_a, const T* b, int64_t ldb,
                                          T* c, int64_t rs_c, int64_t cs_c, int64_t m, int64_t n, T alpha, T beta) {
    ukernel_simd<V, MR, NV, true, false, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta, ldb);
  };
  return GemmUkernels<T>{bl,   packed, strided, pack_a_panels<MR, T>, pack_b_transposed<NR>, epilogue_tile<T>,
                         name, stream_c, strided_ab, transpose_blocks<T>,
                         dot_rows_simd<V>, axpy_row_simd<V>};
}

constexpr GemmBlocking kS = kSgemmBlockingAvx512;
constexpr GemmBlocking kD = kDgemmBlockingAvx512;
constexpr GemmBlocking kSN = kSgemmBlockingAvx512Narrow;
constexpr GemmBlocking kDN = kDgemmBlockingAvx512Narrow;
static_assert(kS.mr == 8 && kS.nr == 32 && kD.mr == 6 && kD.nr == 16, "tile names below");
static_assert(kSN.mr == 16 && kSN.nr == 16 && kDN.mr == 16 && kDN.nr == 8, "tile names below");

}  // namespace

template <>
void gemm_ukernels_fill_avx512<float>(GemmUkernels<float>& table) {
  table = tile_table<Avx512Float, kS.mr, kS.nr / Avx512Float::W>(kS, "sgemm_ukernel_avx512_8x32");
}

template <>
void gemm_ukernels_fill_avx512<double>(GemmUkernels<double>& table) {
  table = tile_table<Avx512Double, kD.mr, kD.nr / Avx512Double::W>(kD, "dgemm_ukernel_avx512_6x16");
}

template <>
void gemm_ukernels_fill_avx512_narrow<float>(GemmUkernels<float>& table) {
  table = tile_table<Avx512Float, kSN.mr, kSN.nr / Avx512Float::W>(kSN, "sgemm_ukernel_avx512_16x16");
}

template <>
void gemm_ukernels_fill_avx512_narrow<double>(GemmUkernels<double>& table) {
  table = tile_table<Avx512Double, kDN.mr, kDN.nr / Avx512Double::W>(kDN, "dgemm_ukernel_avx512_16x8");
}

}  // namespace nnx
