// pack_b with the transposing case done in registers, for the x86 micro-kernel tables (include only from
// *_avx2.cpp and *_avx512.cpp; everything here has internal linkage, so each ISA's translation unit keeps
// its own copy and none is shared with baseline code). When B's columns are contiguous along k (B = W^T of a
// row-major weight, the usual linear layer; the Winograd weight gradient's transformed inputs), each full
// NR-column sliver is built from 8 x 8 float (4 x 4 double) blocks transposed with shuffles instead of
// element by element. Every other case is pack.h's pack_b_panels.
#pragma once
#include <immintrin.h>

#include <cstdint>

#include "gemm/pack.h"

namespace nnx {
namespace {

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

template <class T>
struct TransposeBlock;
template <>
struct TransposeBlock<float> {
  static constexpr int B = 8;
  static void run(const float* src, int64_t ld, float* dst, int64_t ldd) {  // dst[q][i] = src[i][q]
    __m256 r[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
    transpose8x8(r);
    for (int q = 0; q < 8; ++q) _mm256_storeu_ps(dst + q * ldd, r[q]);
  }
};
template <>
struct TransposeBlock<double> {
  static constexpr int B = 4;
  static void run(const double* src, int64_t ld, double* dst, int64_t ldd) {
    __m256d r[4];
    for (int i = 0; i < 4; ++i) r[i] = _mm256_loadu_pd(src + i * ld);
    transpose4x4(r);
    for (int q = 0; q < 4; ++q) _mm256_storeu_pd(dst + q * ldd, r[q]);
  }
};

template <int NR, class T>
void pack_b_transposed(int64_t kc, int64_t nc, const T* b, int64_t rs_b, int64_t cs_b, T* out) {
  constexpr int B = TransposeBlock<T>::B;
  static_assert(NR % B == 0, "slivers of whole transposed blocks");
  if (rs_b != 1 || nc < NR || kc < B) {
    pack_b_panels<NR, T>(kc, nc, b, rs_b, cs_b, out);
    return;
  }
  const int64_t full = nc / NR * NR;
  const int64_t kb = kc / B * B;
  for (int64_t j0 = 0; j0 < full; j0 += NR, out += NR * kc) {
    const T* col = b + j0 * cs_b;
    for (int64_t p = 0; p < kb; p += B)
      for (int h = 0; h < NR / B; ++h) TransposeBlock<T>::run(col + h * B * cs_b + p, cs_b, out + p * NR + h * B, NR);
    for (int64_t p = kb; p < kc; ++p)
      for (int j = 0; j < NR; ++j) out[p * NR + j] = col[j * cs_b + p];
  }
  if (full < nc) pack_b_panels<NR, T>(kc, nc - full, b + full * cs_b, rs_b, cs_b, out);
}

// transpose_portable in TransposeBlock's blocks (8 x 8 floats, 4 x 4 doubles), the edges by transpose_portable.
template <class T>
void transpose_blocks(int64_t m, int64_t n, const T* src, int64_t ld_src, T* dst, int64_t ld_dst) {
  constexpr int B = TransposeBlock<T>::B;
  const int64_t mb = m / B * B, nb = n / B * B;
  for (int64_t i0 = 0; i0 < mb; i0 += B)
    for (int64_t j0 = 0; j0 < nb; j0 += B) TransposeBlock<T>::run(src + i0 * ld_src + j0, ld_src, dst + j0 * ld_dst + i0, ld_dst);
  transpose_portable(mb, n - nb, src + nb, ld_src, dst + nb * ld_dst, ld_dst);  // the last columns
  transpose_portable(m - mb, n, src + mb * ld_src, ld_src, dst + mb, ld_dst);   // the last rows
}

}  // namespace
}  // namespace nnx
