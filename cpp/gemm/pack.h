// Packing of A and B into the micro-kernel's slivers (contract in ukernel.h). Included by each ISA's
// file so the copies are compiled (and vectorised) for that ISA; the anonymous namespace keeps the
// per-ISA instantiations apart, so an AVX2 copy can never be linked into the portable path.
#pragma once
#include <cstdint>
#include <cstring>

namespace nnx {
namespace {

// dst (n x m, rows ld_dst apart) = src (m x n, rows ld_src apart) transposed, in 8 x 8 blocks so that both
// sides stay within a few cache lines at a time. The scalar twin of pack_transposed_x86.h's transpose_blocks.
template <class T>
void transpose_portable(int64_t m, int64_t n, const T* src, int64_t ld_src, T* dst, int64_t ld_dst) {
  for (int64_t i0 = 0; i0 < m; i0 += 8)
    for (int64_t j0 = 0; j0 < n; j0 += 8)
      for (int64_t j = j0; j < n && j < j0 + 8; ++j)
        for (int64_t i = i0; i < m && i < i0 + 8; ++i) dst[j * ld_dst + i] = src[i * ld_src + j];
}

// Packs rows [0, m) of an MR-row sliver: out[p * MR + i] = src(i, p), rows m..MR-1 zero.
// `rs` steps between the sliver's rows, `cs` along k.
template <int MR, class T>
inline void pack_sliver(int64_t m, int64_t kc, const T* __restrict a, int64_t rs, int64_t cs,
                        T* __restrict out) {
  if (m == MR && rs == 1) {
    // Each k step is MR contiguous values (A column-major / B row-major): straight copies.
    for (int64_t p = 0; p < kc; ++p) std::memcpy(out + p * MR, a + p * cs, sizeof(T) * MR);
    return;
  }
  if (m == MR && cs == 1) {
    // Each row is contiguous along k: read MR rows side by side, write interleaved. Blocking p by 8
    // keeps MR read streams and one write stream, which the compiler turns into vector shuffles.
    const T* rows[MR];
    for (int i = 0; i < MR; ++i) rows[i] = a + i * rs;
    int64_t p = 0;
    for (; p + 8 <= kc; p += 8) {
#pragma GCC unroll 8
      for (int q = 0; q < 8; ++q)
#pragma GCC unroll 32
        for (int i = 0; i < MR; ++i) out[(p + q) * MR + i] = rows[i][p + q];
    }
    for (; p < kc; ++p)
      for (int i = 0; i < MR; ++i) out[p * MR + i] = rows[i][p];
    return;
  }
  for (int64_t p = 0; p < kc; ++p) {
    const T* src = a + p * cs;
    int64_t i = 0;
    for (; i < m; ++i) out[p * MR + i] = src[i * rs];
    for (; i < MR; ++i) out[p * MR + i] = T(0);
  }
}

template <int MR, class T>
void pack_a_panels(int64_t mc, int64_t kc, const T* a, int64_t rs_a, int64_t cs_a, T* out) {
  const int64_t full = mc / MR * MR;
  if (rs_a == 1 && full > 0) {
    // A's columns are contiguous (A = x^T, a weight gradient's x^T dy): a few columns at a time, dealt out to
    // every panel. Panel by panel, each k step read MR values a column apart on a line of its own, kc lines
    // per panel, and every line again for the next panel. One column at a time instead, the panels' MR-value
    // pieces (a multiple of 4 KiB apart) all fall on one L1 set and evict each other's half-written lines.
    constexpr int64_t kColumns = 8;
    for (int64_t p0 = 0; p0 < kc; p0 += kColumns) {
      const int64_t p1 = p0 + kColumns < kc ? p0 + kColumns : kc;
      for (int64_t i0 = 0; i0 < full; i0 += MR)
        for (int64_t p = p0; p < p1; ++p) std::memcpy(out + i0 * kc + p * MR, a + p * cs_a + i0, sizeof(T) * MR);
    }
    if (full < mc) pack_sliver<MR>(mc - full, kc, a + full, rs_a, cs_a, out + full * kc);
    return;
  }
  for (int64_t i0 = 0; i0 < mc; i0 += MR) {
    int64_t m = mc - i0 < MR ? mc - i0 : MR;
    pack_sliver<MR>(m, kc, a + i0 * rs_a, rs_a, cs_a, out);
    out += MR * kc;
  }
}

// B's slivers are A's with the roles of the strides swapped: columns of B play the rows of A.
template <int NR, class T>
void pack_b_panels(int64_t kc, int64_t nc, const T* b, int64_t rs_b, int64_t cs_b, T* out) {
  const int64_t full = nc / NR * NR;
  if (cs_b == 1 && full > 0) {
    // Rows of B are contiguous (im2col's columns, a 1x1 convolution's image): a few rows at a time, each dealt
    // out to the slivers, as pack_a_panels does A's columns. A row at a time read one sequential stream but wrote
    // the slivers' NR-value pieces NR * kc apart, a multiple of 4 KiB whenever kc is a multiple of 32 (floats):
    // all on one L1 set, so nearly every store missed (the pack was 14% of a 32 -> 64 1x1 layer on 32x32, Zen
    // 4, 1 thread, perf). Now each sliver gets kRows consecutive pieces, one run of kRows * NR values.
    constexpr int64_t kRows = 8;
    for (int64_t p0 = 0; p0 < kc; p0 += kRows) {
      const int64_t p1 = p0 + kRows < kc ? p0 + kRows : kc;
      for (int64_t j0 = 0; j0 < full; j0 += NR)
        for (int64_t p = p0; p < p1; ++p) std::memcpy(out + j0 * kc + p * NR, b + p * rs_b + j0, sizeof(T) * NR);
    }
    if (full < nc) pack_sliver<NR>(nc - full, kc, b + full, cs_b, rs_b, out + full * kc);
    return;
  }
  for (int64_t j0 = 0; j0 < nc; j0 += NR) {
    int64_t n = nc - j0 < NR ? nc - j0 : NR;
    pack_sliver<NR>(n, kc, b + j0 * cs_b, cs_b, rs_b, out);
    out += NR * kc;
  }
}

}  // namespace
}  // namespace nnx
