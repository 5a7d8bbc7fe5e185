// Blocking parameters of the GEMM, per ISA and scalar type, in this one place.
//
//   MR x NR  register tile of the micro-kernel (accumulators live in vector registers)
//   KC       depth of one packed block: an MR x KC sliver of A and a KC x NR sliver of B stay in L1
//   MC       rows of the packed A block (MC x KC), sized to stay in L2
//   NC       columns of the packed B block (KC x NC), sized to stay in L3
//
// The x86 numbers are chosen for AMD Zen3 (32 KiB L1d, 512 KiB L2 per core, 32 MiB shared L3) and suit
// Intel Haswell..Ice Lake as well: a 6x16 float tile uses 12 of the 16 ymm registers as accumulators,
// 2 for B and 1 for the A broadcast; KC = 256 keeps the B sliver (256 * 16 * 4 B = 16 KiB) in half of L1;
// MC * KC * 4 B = 144 KiB of A in L2 leaves room for the streaming B and C; KC * NC fits L3.
#pragma once

namespace nnx {

struct GemmBlocking {
  int mr, nr, kc, mc, nc;
};

// Portable C++ (the compiler's baseline vectors, SSE2 on x86-64): 8 accumulator registers.
constexpr GemmBlocking kSgemmBlockingPortable{4, 8, 256, 128, 2048};
constexpr GemmBlocking kDgemmBlockingPortable{4, 4, 256, 64, 2048};

// AVX2 + FMA (16 ymm registers).
constexpr GemmBlocking kSgemmBlockingAvx2{6, 16, 256, 144, 4080};
constexpr GemmBlocking kDgemmBlockingAvx2{6, 8, 256, 72, 4080};

// AVX-512 (32 zmm registers). Float: 8 x 32, 16 accumulators, 10 loads (2 of B, 8 broadcasts of A) per 16
// multiply-adds where 6 x 32 took 8 per 12. Measured against 6 x 32 on the Xeon with full-width 512-bit FMA
// (bench/test_gemm.py's shapes, medians, 5 alternated runs of two builds): 1 thread 1.00-1.10x (256^3 1.10x,
// 64 x 3136 x 576 1.09x, 576 x 256 x 128 0.98x), 2 threads 0.98-1.11x (1024^3 1.10x); 12 x 32 gained on
// the squares (1024^3 1.14x) but lost 0.95x where M = 64 (its last tile a third full), 14 x 32 lost on most.
// Unmeasured on CPUs that split 512-bit operations (Zen 4), where fewer loads per multiply-add should not
// cost. A tile's shape never changes the order of a sum (k within KC blocks), so the bits stay the same.
constexpr GemmBlocking kSgemmBlockingAvx512{8, 32, 256, 144, 4096};
constexpr GemmBlocking kDgemmBlockingAvx512{6, 16, 256, 72, 4096};

// AVX-512 for narrow products (C at most one vector wide, e.g. 16 float columns) on CPUs with full-width
// 512-bit FMA pipes (common/cpu.h's wide_vector_fma): one vector of B per k step and 16 rows of A.
constexpr GemmBlocking kSgemmBlockingAvx512Narrow{16, 16, 256, 144, 4096};
constexpr GemmBlocking kDgemmBlockingAvx512Narrow{16, 8, 256, 144, 4096};

// NEON (AArch64, 32 q registers of 128 bits): 8 x 3 vectors = 24 accumulators.
constexpr GemmBlocking kSgemmBlockingNeon{8, 12, 256, 128, 4080};
constexpr GemmBlocking kDgemmBlockingNeon{8, 6, 256, 64, 4080};

// Large C: each KC block of the k loop loads and stores all of C once more, and a C past the caches goes to
// memory each time (2048^3 float: 16 MiB of C, 8 passes). Where C has more than kDeepKcMinCBytes and K spans
// at least kDeepKcMinBlocks KC blocks, the blocks are twice as deep (KC 512 for float: half the passes over
// C; the 64 KiB B sliver no longer fits L1, which costs less than the passes it saves once there are enough
// of them). Measured on the Xeon (1 thread, fastest of 3 alternated runs), 2048 x 2048 x K: K = 1024 1.05x,
// 1536 1.07x, 2048 1.04x, 3072 1.05x, but K = 600 (3 -> 2 blocks) 0.95x; 1024 x 3136 x 1024 1.02x; 1536 x
// 1536 x 2048 1.00x; 1024^3 (4 MiB of C) 0.98x, so it stays below. A function of M, N and K only, so the sums
// are the same for any thread count.
constexpr long kDeepKcMinCBytes = 8L << 20;
constexpr int kDeepKcMinBlocks = 4;

// A C of at least this many bytes written in one pass (beta == 0, K within one KC block: a linear layer's
// weight gradient, K = the batch) is stored past the caches (gemm.cpp's stream_c_lead).
constexpr long kStreamCMinBytes = 4L << 20;

// A block of rows that is one MC block packs B this many bytes of slivers at a time, each chunk just before its
// micro-tiles (gemm.cpp's gemm_block), so it stays in the L2 between its packing and its use. One sliver at a
// time, as before, measured 1.14x the whole KC x NC block on the Xeon (2 MiB of L2; 64x3136x576), but on Zen 3
// (512 KiB of L2, 1 thread, fastest of 30 calls, M x N x K, ms, one sliver / 32 KiB / 128 KiB / 384 KiB / the
// whole block): 64x3136x576 5.8 / 5.8-6.5 / 3.9-4.3 / 4.1 / 3.8-3.9, 32x4096x288 1.7-2.3 / 1.5-2.5 / 1.6-1.7 /
// 1.2-1.7 / 1.6-1.8, 64x3136x1024 10.4-10.8 / 8.0-10.2 / 7.5-7.6 / 6.8-8.1 / 6.6-7.3: a sliver's kc short rows,
// each on lines of its own, escape the stream prefetchers, and prefetching the next sliver by hand gained
// less (64x3136x576, three runs: 5.6-6.1 -> 4.9-5.7). Which chunk a column falls in never changes its sums.
constexpr long kPackBChunkBytes = 256L << 10;

// Rows of A whose KC-deep panel takes at most kPackAPanelMaxBytes are packed as one MC block (MC is then M) where
// B's packed KC x NC block would take kPackBWholeMaxBytes or more, so that B is packed a chunk at a time for them
// too: a whole block that large is written out past half the L2 and read back for each MC block. Measured on the
// Xeon (alternated calls, medians of 9): a 4096 -> 1024 linear layer at batch 256 (256 x 4096 x 1024, B^T) 1.04x
// at 1 thread, 256 x 1024 x 4096 1.05x at 1 and 2 threads, 256 x 512 x 2048 1.05x / 1.01x; 256 x 256 x 1024 (a
// 1 MiB block) 0.99-1.01x. The same tiles and sums, so the same bits.
constexpr long kPackAPanelMaxBytes = 256L << 10;
constexpr long kPackBWholeMaxBytes = 1L << 20;

// Narrow products: when C has at most this many NR-wide column slivers, each sliver of A is used too few
// times to pay for packing it, and the micro-kernel reads A in place (if A is contiguous along a row or
// a column). Measured on Zen3: 4096x16x256 runs 2x faster, 64x120x400 about 8% faster.
constexpr int kStridedAMaxSlivers = 8;
// But an A read in place along its columns (rs_a == 1: the MR rows of each k contiguous, each k a stride away)
// puts every k of a panel on a line of its own, and the slivers re-read them: past the L1 they come from L2, and
// strides of a multiple of 1 KiB fold them onto a few L1 sets (a conv dx's W^T, 2304 taps: a 9 KiB stride, 4 of
// 64 sets). So with 3 or more slivers A is read in place along its columns only while all of it fits this many
// bytes. Measured on the Xeon (1 thread, alternated calls, A^T view times B, M x N x K, this rule against in place):
// 2304 x 245 x 512 1.22x (the 256 -> 512 stride-2 conv's dx on 14x14 maps: 21.3 -> 17.2 ms), 1000 x 100 x 1000
// 1.21x, 512 x 256 x 128 1.06x, 256 x 256 x 64 1.09x, 576 x 256 x 64 1.07x; packing every such A lost where A stays
// in L1 anyway: 120 x 84 x 64 (30 KiB) 0.81x, 64 x 96 x 64 0.86x, 84 x 120 x 64 0.96x. The same sums either way.
constexpr long kStridedAColumnsMaxBytes = 32L << 10;

// Where A is read in place and all of B (K x N, rows contiguous) is at most this many bytes, B is read in place
// too: its full slivers are not packed (gemm.cpp's gemm_block, ukernel.h's ukernel_strided_ab; the AVX-512
// tables). Measured against packing (Xeon, 1 thread, best of 5 x 4 alternated runs, M x N x K): 64 x 128 x 64
// 1.12x, 16 x 256 x 32 1.11x, 64 x 120 x 64 1.03x, 32^3 1.03x, 64^3 and 96^3 even. The same sums.
constexpr long kInPlaceBMaxBytes = 32L << 10;
// B is read in place at any size where A has at most this many MR-row slivers (A read in place or packed): each
// of B's slivers then meets at most two micro-tiles, and packing it (a read, a write and a read back) cost more
// than the tiles' own reads of its rows. A linear layer's weight gradient dy^T x for 10 outputs (10 x 256 x 1024,
// B 1 MiB) and a dx of 16 filters; figures at gemm.cpp's in_place_b. The same sums.
// Not where B's rows lie a multiple of this many bytes apart: a sliver's rows then share a few L1 sets (16 x 2048 x
// 512 0.83x and 16 x 4096 x 1024 0.71x in place).
constexpr int kInPlaceBMaxASlivers = 2;
constexpr long kInPlaceBSetConflictStride = 8192;

}  // namespace nnx
