// The GEMM driver: BLIS's five loops around a register-blocked micro-kernel (ukernel.h), with the
// blocking of gemm_config.h, packing buffers from nnx::workspace and threads over disjoint blocks of C.
//
//   jc: NC columns of B/C      pack B(pc.., jc..) into KC x NC slivers (L3)
//    pc: KC deep                 first block applies beta, later ones accumulate (beta = 1)
//     ic: MC rows of A/C         pack A(ic.., pc..) into MC x KC slivers (L2)
//      jr: NR columns            B sliver stays in L1
//       ir: MR rows              micro-kernel: MR x NR tile of C
//
// Blocks are equal-sized (at most KC/MC/NC), so no thin remainder block pays the per-call overheads.
// Narrow C (few NR slivers) skips packing A: the micro-kernel reads A in place (ukernel_strided_a).
// The vectorised epilogue runs on each tile right after its last KC block, while it is in L1.
//
// Determinism: every C element is summed over k in increasing order inside the micro-kernel, in KC
// blocks that depend only on K; threads own disjoint rectangles of C whose edges are multiples of
// MR / NR, so no tile changes shape with the thread count. A deep product with a small C is summed as two
// halves of K (gemm_split_k), chosen by the shape alone and added in one order. Hence results are bitwise
// identical for any number of threads.
#include "gemm/gemm.h"

#include <algorithm>
#include <cstdint>
#if defined(NNX_X86)
#include <xmmintrin.h>
#endif

#include "activation/activation.h"
#include "common/isa_table.h"
#include "common/int_math.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "gemm/ukernel.h"

namespace nnx {
namespace {

// The epilogue where the ISA's tile epilogue leaves it: sigmoid and tanh, and strided tiles. The bias is added
// as apply_epilogue adds it; sigmoid and tanh then run through the activation family's vector kernels (its
// one dispatch), along whichever direction of the tile is contiguous. Those kernels are elementwise (no value
// depends on its lane or its neighbours), so a fused sigmoid or tanh has the bits of ops.sigmoid / ops.tanh
// on the same sums wherever the value sits in C. The scalar std::tanh / std::exp that ran here took 1.2 ms
// for a 256 x 256 output (18 ns an element) where the kernels take about 0.03.
template <class T>
void epilogue_rest(const Epilogue<T>& ep, int64_t row0, int64_t col0, int64_t m, int64_t n, T* c, int64_t rs_c,
                   int64_t cs_c) {
  if (ep.act != Act::sigmoid && ep.act != Act::tanh) {
    apply_epilogue(ep, row0, col0, m, n, c, rs_c, cs_c);
    return;
  }
  Epilogue<T> bias_only = ep;
  bias_only.act = Act::none;
  apply_epilogue(bias_only, row0, col0, m, n, c, rs_c, cs_c);
  if (cs_c == 1 && (rs_c == n || m == 1)) {  // the tile is one run (C no wider than it): one call
    act_forward_inplace<T>(ep.act, c, m * n, ep.slope);
  } else if (cs_c == 1) {
    for (int64_t i = 0; i < m; ++i) act_forward_inplace<T>(ep.act, c + i * rs_c, n, ep.slope);
  } else if (rs_c == 1) {
    for (int64_t j = 0; j < n; ++j) act_forward_inplace<T>(ep.act, c + j * cs_c, m, ep.slope);
  } else {  // strided both ways (no caller of the library's passes such a C): element by element
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) act_forward_inplace<T>(ep.act, c + i * rs_c + j * cs_c, 1, ep.slope);
  }
}

// C = beta * C (beta == 0 writes zeros without reading C), then the epilogue: the whole GEMM when K == 0.
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* c, int64_t rs_c, int64_t cs_c, const Epilogue<T>& ep,
             int64_t row0, int64_t col0) {
  for (int64_t i = 0; i < M; ++i) {
    T* ci = c + i * rs_c;
    for (int64_t j = 0; j < N; ++j) ci[j * cs_c] = beta == T(0) ? T(0) : beta * ci[j * cs_c];
  }
  if (!ep.empty()) epilogue_rest(ep, row0, col0, M, N, c, rs_c, cs_c);
}

// One thread's GEMM on an M x N block of C whose top-left element is C(row0, col0) of the full matrix
// (for the bias). a, b and c already point at the block.
template <class T>
void gemm_block(const GemmUkernels<T>& kr, int64_t M, int64_t N, int64_t K, T alpha, const T* a,
                int64_t rs_a, int64_t cs_a, const T* b, int64_t rs_b, int64_t cs_b, T beta, T* c,
                int64_t rs_c, int64_t cs_c, const Epilogue<T>& ep, int64_t row0, int64_t col0, bool stream_c) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_c(M, N, beta, c, rs_c, cs_c, ep, row0, col0);
    return;
  }
  const GemmBlocking& bl = kr.blocking;
  const int64_t MR = bl.mr, NR = bl.nr;
  // Blocks of equal size rather than full blocks and a small remainder: a thin last KC block would
  // pay the C load/store of the micro-kernel for little arithmetic (K = 320 becomes 160 + 160, not
  // 256 + 64). KC depends on K alone, so the summation order still depends on nothing but K.
  const int64_t KC = round_up(ceil_div(K, ceil_div(K, bl.kc)), 8);
  const int64_t NC = round_up(ceil_div(N, ceil_div(N, bl.nc)), NR);
  // All of the block's rows as one MC block where their KC-deep panel of A fits kPackAPanelMaxBytes and the
  // packed KC x NC block of B would take kPackBWholeMaxBytes or more: B is then packed a chunk at a time (see
  // chunk_at_a_time below).
  const int64_t elem = static_cast<int64_t>(sizeof(T));
  const bool one_a_panel =
      round_up(M, MR) * KC * elem <= kPackAPanelMaxBytes && std::min(N, NC) * KC * elem >= kPackBWholeMaxBytes;
  const int64_t MC = one_a_panel ? round_up(M, MR) : round_up(ceil_div(M, ceil_div(M, bl.mc)), MR);
  T* bufa = workspace_as<T>(kWsGemmA, static_cast<size_t>(MC * KC));
  T* bufb = workspace_as<T>(kWsGemmB, static_cast<size_t>(NC * KC));
  const bool has_ep = !ep.empty();
  // Narrow C: each sliver of A meets at most kStridedAMaxSlivers slivers of B, too few to pay for
  // packing it, so the micro-kernel reads A in place when A is contiguous in one direction; along its columns
  // (rs_a == 1) only for up to two slivers or an A of kStridedAColumnsMaxBytes (gemm_config.h).
  const int64_t slivers = ceil_div(N, NR);
  const bool small_a = M * K * static_cast<int64_t>(sizeof(T)) <= kStridedAColumnsMaxBytes;
  const bool strided_a = slivers <= kStridedAMaxSlivers && (cs_a == 1 || (rs_a == 1 && (slivers <= 2 || small_a)));
  // A block of rows that is one MC block (a batch-64 to 256 linear layer, an im2col conv of up to MC filters): B is
  // packed a chunk of slivers (kPackBChunkBytes) at a time, just before its micro-tiles run, so the chunk is
  // written to and read back from the L2, where packing the whole KC x NC block first (4 MiB here) wrote it
  // out past the L2 and read it back from L3. A chunk rather than one sliver: a sliver's kc short rows, each
  // on lines of its own, escape the hardware's stream prefetchers (gemm_config.h has the figures). The same
  // tiles and sums, so the same bits.
  const bool chunk_at_a_time = M <= MC;
  const int64_t chunk = std::max<int64_t>(NR, kPackBChunkBytes / (KC * static_cast<int64_t>(sizeof(T))) / NR * NR);
  // A small B read in place by its rows (see in_place_b) rather than packed, sliver by sliver; so is any B that at
  // most kInPlaceBMaxASlivers slivers of A meet (rows not kInPlaceBSetConflictStride apart), with a packed A read
  // through the same kernel (its sliver is A(i, p) = a[i + p * MR]).
  const bool few_a_slivers = ceil_div(M, MR) <= kInPlaceBMaxASlivers && rs_b * elem % kInPlaceBSetConflictStride != 0;
  const bool in_place_b = kr.ukernel_strided_ab && cs_b == 1 &&
                          ((strided_a && K * N * elem <= kInPlaceBMaxBytes) || few_a_slivers);

  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = std::min(NC, N - jc);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = std::min(KC, K - pc);
      const T beta_pc = pc == 0 ? beta : T(1);
      const bool last = pc + kc == K;
      if (!chunk_at_a_time && !in_place_b) kr.pack_b(kc, nc, b + pc * rs_b + jc * cs_b, rs_b, cs_b, bufb);
      for (int64_t ic = 0; ic < M; ic += MC) {  // one block when chunk_at_a_time
        const int64_t mc = std::min(MC, M - ic);
        const T* ablock = a + ic * rs_a + pc * cs_a;
        if (!strided_a) kr.pack_a(mc, kc, ablock, rs_a, cs_a, bufa);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t n = std::min(NR, nc - jr);
          const T* bp = bufb + jr * kc;
          const bool b_in_place = in_place_b && n == NR;
          if (b_in_place) {
            bp = b + pc * rs_b + (jc + jr);
          } else if (in_place_b) {  // the last, partial sliver
            kr.pack_b(kc, n, b + pc * rs_b + (jc + jr) * cs_b, rs_b, cs_b, bufb);
            bp = bufb;
          } else if (chunk_at_a_time) {
            if (jr % chunk == 0)
              kr.pack_b(kc, std::min(chunk, nc - jr), b + pc * rs_b + (jc + jr) * cs_b, rs_b, cs_b, bufb);
            bp = bufb + (jr % chunk) * kc;
          }
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t m = std::min(MR, mc - ir);
            T* ct = c + (ic + ir) * rs_c + (jc + jr) * cs_c;
            if (b_in_place && strided_a)
              kr.ukernel_strided_ab(kc, ablock + ir * rs_a, rs_a, cs_a, bp, rs_b, ct, rs_c, cs_c, m, n, alpha, beta_pc);
            else if (b_in_place)
              kr.ukernel_strided_ab(kc, bufa + ir * kc, 1, MR, bp, rs_b, ct, rs_c, cs_c, m, n, alpha, beta_pc);
            else if (strided_a)
              kr.ukernel_strided_a(kc, ablock + ir * rs_a, rs_a, cs_a, bp, ct, rs_c, cs_c, m, n, alpha, beta_pc);
            else
              (stream_c ? kr.ukernel_stream_c : kr.ukernel)(kc, bufa + ir * kc, bp, ct, rs_c, cs_c, m, n, alpha, beta_pc);
            if (last && has_ep && !kr.epilogue(ep, row0 + ic + ir, col0 + jc + jr, m, n, ct, rs_c, cs_c))
              epilogue_rest(ep, row0 + ic + ir, col0 + jc + jr, m, n, ct, rs_c, cs_c);
          }
        }
      }
    }
  }
#if defined(NNX_X86)
  if (stream_c) _mm_sfence();  // the non-temporal stores are weakly ordered: visible before the caller goes on
#endif
}

// A packed element costs about as much as this many multiply-adds (a copy through memory against a fused
// multiply-add in registers).
constexpr double kPackCost = 8.0;

// Splits C into a tm x tn grid of blocks for `nt` threads, minimising one thread's work: its
// multiply-adds plus kPackCost times the elements of A and B it packs.
void choose_grid(int nt, int64_t M, int64_t N, int64_t K, int64_t MR, int64_t NR, int* tm, int* tn) {
  double best = -1;
  for (int m = 1; m <= nt; ++m) {
    if (nt % m) continue;
    int n = nt / m;
    if (m > ceil_div(M, MR) || n > ceil_div(N, NR)) continue;
    double rows = static_cast<double>(ceil_div(ceil_div(M, MR), m) * MR);
    double cols = static_cast<double>(ceil_div(ceil_div(N, NR), n) * NR);
    double cost = rows * cols * K + kPackCost * (rows + cols) * K;
    if (best < 0 || cost < best) { best = cost; *tm = m; *tn = n; }
  }
  if (best < 0) {  // fewer tiles than threads in both directions: split the longer one only.
    if (ceil_div(M, MR) >= ceil_div(N, NR)) { *tm = static_cast<int>(std::min<int64_t>(nt, ceil_div(M, MR))); *tn = 1; }
    else { *tm = 1; *tn = static_cast<int>(std::min<int64_t>(nt, ceil_div(N, NR))); }
  }
}

// [begin, end) of part `i` of `parts` over `total` elements, in whole units of `unit`.
inline void split_range(int64_t total, int64_t unit, int parts, int i, int64_t* begin, int64_t* end) {
  int64_t units = ceil_div(total, unit);
  int64_t lo = units * i / parts, hi = units * (i + 1) / parts;
  *begin = std::min(total, lo * unit);
  *end = std::min(total, hi * unit);
}

// Fraction of the micro-kernel's lanes doing useful work on an M x N product.
inline double tile_efficiency(int64_t M, int64_t N, int64_t MR, int64_t NR) {
  return static_cast<double>(M) / static_cast<double>(round_up(M, MR)) * static_cast<double>(N) /
         static_cast<double>(round_up(N, NR));
}

// Estimated single-thread cost of an M x N x K product in multiply-add units: the lanes the tiles
// occupy plus the elements packed (A is read in place for narrow N, see gemm_block).
inline double product_cost(int64_t M, int64_t N, int64_t K, int64_t MR, int64_t NR) {
  const double macs = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  double packed = static_cast<double>(N) * static_cast<double>(K);
  if (ceil_div(N, NR) > kStridedAMaxSlivers) packed += static_cast<double>(M) * static_cast<double>(K);
  return macs / tile_efficiency(M, N, MR, NR) + kPackCost * packed;
}

// Narrow C (N below 2 NR) wastes most of the NR-wide tile; computing C^T = B^T A^T puts the narrow
// side along MR instead, worth it when the lanes saved outweigh packing the other operand (25 x 6 x 784:
// 1.5x faster; 256 x 10 x 784: slower, so not swapped). The swap changes no arithmetic: every element
// is still the same products summed in k order (x * y == y * x exactly), so results stay bitwise equal.
inline bool swap_operands(int64_t M, int64_t N, int64_t K, int64_t MR, int64_t NR) {
  return N < 2 * NR && M > N && product_cost(N, M, K, MR, NR) < 0.85 * product_cost(M, N, K, MR, NR);
}

// Below this many flops per thread, starting threads costs more than it saves.
constexpr int64_t kFlopsPerThread = 1 << 20;
// Or elements of C per thread, for products whose stores outweigh their arithmetic (gemm_threads).
constexpr int64_t kCElementsPerThread = int64_t{1} << 17;

// A deep product with a small C (a weight gradient over many positions: x^T dy of 2048 positions by 128 x 128):
// threads that split M and N each pack their rows of A and all of B (or the reverse), half as much packing again
// as arithmetic's share at 2 threads. It is summed as two halves of K instead, the first into C (with beta), the
// second into a scratch then added, each half by its own part of the threads, which pack only their half's
// operands. The halves depend on K alone and C0 + C1 is added in that order, so the bits depend on the shape and
// never on the thread count (they are not those of one undivided sum). Measured against the undivided product
// (Xeon, one process alternating the builds' calls, medians, x^T dy, M x N x K): 2 threads 128 x 128 x 2048 1.22x,
// 256 x 256 x 1024 1.10x, 128 x 64 x 4096 1.22x; 1 thread 0.98-1.00x (the added pass). The scratch and that pass
// stay in L2.
constexpr int64_t kSplitKMinDepth = 1024;
constexpr int64_t kSplitKMaxCBytes = int64_t{256} << 10;

inline bool split_k_pays(int64_t M, int64_t N, int64_t K, size_t elem) {
  return K >= kSplitKMinDepth && M * N * static_cast<int64_t>(elem) <= kSplitKMaxCBytes &&
         2 * M * N * K >= 4 * kFlopsPerThread;
}

// Splits the product over threads (see choose_grid) and runs gemm_block on each thread's block (of rows [i0, i1)
// and columns [j0, j1) of C), on the nt threads of a team whose member this is (t).
template <class T>
void gemm_grid_member(const GemmUkernels<T>& kr, int nt, int t, int64_t M, int64_t N, int64_t K, T alpha, const T* a,
                      int64_t rs_a, int64_t cs_a, const T* b, int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c,
                      int64_t cs_c, const Epilogue<T>& ep, bool stream_c) {
  int tm = 1, tn = 1;
  choose_grid(nt, M, N, K, kr.blocking.mr, kr.blocking.nr, &tm, &tn);
  if (t >= tm * tn) return;
  int64_t i0, i1, j0, j1;
  split_range(M, kr.blocking.mr, tm, t / tn, &i0, &i1);
  split_range(N, kr.blocking.nr, tn, t % tn, &j0, &j1);
  gemm_block(kr, i1 - i0, j1 - j0, K, alpha, a + i0 * rs_a, rs_a, cs_a, b + j0 * cs_b, rs_b, cs_b, beta,
             c + i0 * rs_c + j0 * cs_c, rs_c, cs_c, ep, i0, j0, stream_c);
}

// C = alpha (A0 B0 + A1 B1) + beta C over K's two halves (split_k_pays), then the epilogue.
template <class T>
void gemm_split_k(const GemmUkernels<T>& kr, int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a,
                  int64_t cs_a, const T* b, int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c,
                  int nthreads, const Epilogue<T>& ep) {
  const int64_t k0 = round_up(ceil_div(K, 2), 8);
  T* c1 = workspace_as<T>(kWsGemmSplitK, static_cast<size_t>(M * N));
  const Epilogue<T> none;
  auto half = [&](int h, int nt, int t) {
    if (h == 0)
      gemm_grid_member(kr, nt, t, M, N, k0, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, none, false);
    else
      gemm_grid_member(kr, nt, t, M, N, K - k0, alpha, a + k0 * cs_a, rs_a, cs_a, b + k0 * rs_b, rs_b, cs_b, T(0),
                       c1, N, int64_t{1}, none, false);
  };
  auto add_rows = [&](int64_t r0, int64_t r1) {  // C += C1 in rows [r0, r1), then their epilogue
    for (int64_t i = r0; i < r1; ++i) {
      T* ci = c + i * rs_c;
      const T* di = c1 + i * N;
      for (int64_t j = 0; j < N; ++j) ci[j * cs_c] += di[j];
    }
    if (!ep.empty() && r1 > r0) epilogue_rest(ep, r0, int64_t{0}, r1 - r0, N, c + r0 * rs_c, rs_c, cs_c);
  };
  const int nt = threads_for(2 * M * N * K, kFlopsPerThread, nthreads);
#if defined(NNX_OPENMP)
  if (nt > 1) {
#pragma omp parallel num_threads(nt)
    {
      const int team = omp_get_num_threads(), t = omp_get_thread_num();
      if (team == 1) {
        half(0, 1, 0);
        half(1, 1, 0);
      } else {  // threads [0, team / 2) sum the first half, the others the second
        const int first = team / 2;
        if (t < first) half(0, first, t);
        else half(1, team - first, t - first);
      }
#pragma omp barrier
      int64_t r0, r1;
      split_range(M, 1, team, t, &r0, &r1);
      add_rows(r0, r1);
    }
    return;
  }
#endif
  half(0, 1, 0);
  half(1, 1, 0);
  add_rows(0, M);
}

// Splits the product over threads (see choose_grid) and runs gemm_block on each thread's block.
template <class T>
void gemm_threads(const GemmUkernels<T>& kr, int64_t M, int64_t N, int64_t K, T alpha, const T* a,
                  int64_t rs_a, int64_t cs_a, const T* b, int64_t rs_b, int64_t cs_b, T beta, T* c,
                  int64_t rs_c, int64_t cs_c, int nthreads, const Epilogue<T>& ep, bool stream_c = false,
                  bool split_k = true) {
  if (split_k && !stream_c && split_k_pays(M, N, K, sizeof(T))) {
    gemm_split_k(kr, M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, nthreads, ep);
    return;
  }
  const int64_t flops = 2 * M * N * std::max<int64_t>(K, 1);
  // A thread per kFlopsPerThread, or per kCElementsPerThread of C where writing C outweighs the arithmetic (K of a
  // few; depths 1 to 4 with B's rows contiguous go row by row instead, shallow_rows). Measured on the tiles before
  // shallow_rows took those (Xeon, 1 / 2 threads, us): 1024 x 1024 x 1 192 / 116, 512 x 512 x 1 49 / 50 (C's stores
  // bound both), 256 x 256 x 1 11 / 17-20 (so below the limit).
  const int nt = std::max(threads_for(flops, kFlopsPerThread, nthreads),
                          threads_for(M * N, kCElementsPerThread, nthreads));
  if (nt <= 1) {
    gemm_block(kr, M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, ep, 0, 0, stream_c);
    return;
  }
#if defined(NNX_OPENMP)
#pragma omp parallel num_threads(nt) if (nt > 1)
  // The team may be smaller than asked for; the grid follows the team actually running.
  gemm_grid_member(kr, omp_get_num_threads(), omp_get_thread_num(), M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b,
                   beta, c, rs_c, cs_c, ep, stream_c);
#else
  gemm_block(kr, M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, ep, 0, 0, stream_c);
#endif
}

// ---- few-row products (a layer on 1 to kDotRowsMaxM samples): C (M x N) = alpha * a (M x K) B (K x N) + beta C,
// then the epilogue.
// Packing B, as gemm_block does, reads and writes all of B once more than the product itself and costs as
// much; these loops read B in place, in the direction it is contiguous. Each output element is summed by one
// thread in an order that depends on K alone, so results are bitwise identical for any thread count.

constexpr int64_t kGemvCols = 256;   // columns accumulated at once by the row-major form (on the stack)
constexpr int64_t kDotCols = 64;     // outputs of each row summed at once by the dot form (on the stack)
// Rows taken by the dot form (B's columns contiguous: a linear layer's x W^T, W read once for all the rows, where
// the GEMM packs all of W, transposed, for a few rows). Measured (Xeon, full-width AVX-512, 1 thread, medians,
// x W^T + b, us) against the GEMM: 784 -> 512 at 2 / 4 / 8 / 12 rows 75.7 / 78.4 / 80.3 / 126.4 by the GEMM,
// 25 / 36-42 / 63-78 / 115-122 as dot products; 1024 -> 1024 at 4 / 8 / 12 rows 307 / 330 / 447 against 154 /
// 251-275 / 319-397. From 16 rows kTransposedCMinRows's transposed product takes over.
constexpr int64_t kDotRowsMaxM = 15;

template <class T>
inline T finish_gemv(T sum, T alpha, T beta, const T* cij, const Epilogue<T>& ep, int64_t i, int64_t j) {
  T v = alpha * sum;
  if (beta != T(0)) v += beta * *cij;
  if (!ep.empty()) {
    if (ep.bias) v += ep.bias[ep.bias_per_row ? i : j];
    v = apply_act(ep.act, v, ep.slope);
  }
  return v;
}

constexpr int64_t kGemvGather = 2048;  // longest strided `a` gathered onto the stack for the dot form
constexpr int64_t kGemvBytesPerThread = int64_t{256} << 10;  // of B, at least, per thread (gemv_rows)

// B's columns contiguous (rs_b == 1, e.g. a weight matrix W used as W^T): one dot product per output, M rows of
// a (rs_a apart, contiguous along k) by columns j0 .. j1 - 1, by the table's dot_rows (gemv_dot.h).
template <class T>
void gemv_dot(int64_t M, int64_t j0, int64_t j1, int64_t K, T alpha, const T* a, int64_t rs_a, const T* b,
              int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c, const Epilogue<T>& ep) {
  const GemmDotRows<T> dot_rows = gemm_ukernels<T>().dot_rows;
  T sums[kDotRowsMaxM * kDotCols];
  for (int64_t jb = j0; jb < j1; jb += kDotCols) {
    const int64_t n = std::min(kDotCols, j1 - jb);
    dot_rows(M, n, K, a, rs_a, b + jb * cs_b, cs_b, sums, n);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < n; ++j) {
        T* cij = c + i * rs_c + (jb + j) * cs_c;
        *cij = finish_gemv(sums[i * n + j], alpha, beta, cij, ep, i, jb + j);
      }
  }
}

// B's rows contiguous (cs_b == 1): the row of C accumulates a[k] * B(k, :) for k in order (the table's axpy_row).
template <class T>
void gemv_axpy(int64_t j0, int64_t j1, int64_t K, T alpha, const T* a, int64_t cs_a, const T* b, int64_t rs_b,
               T beta, T* c, int64_t cs_c, const Epilogue<T>& ep) {
  const GemmAxpyRow<T> axpy_row = gemm_ukernels<T>().axpy_row;
  T acc[kGemvCols];
  for (int64_t jb = j0; jb < j1; jb += kGemvCols) {
    const int64_t n = std::min(kGemvCols, j1 - jb);
    axpy_row(n, K, a, cs_a, b + jb, rs_b, acc);
    for (int64_t j = 0; j < n; ++j) c[(jb + j) * cs_c] = finish_gemv(acc[j], alpha, beta, c + (jb + j) * cs_c, ep, 0, jb + j);
  }
}

// C (M x N, M <= kDotRowsMaxM) without packing, or false where the layout does not suit: several rows only in the
// dot form (a's rows and B's columns contiguous along k); one row also with B's rows contiguous (the row-wise
// form) or with a short strided `a` (a column of a wider matrix, e.g. one step's gate gradients of a batch-1
// recurrent layer) gathered onto the stack, the same sums in the same order as a contiguous `a`.
template <class T>
bool gemv_rows(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a, int64_t cs_a, const T* b,
               int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c, int nthreads,
               const Epilogue<T>& ep) {
  const bool dot = rs_b == 1 && (cs_a == 1 || (M == 1 && cs_b != 1 && K <= kGemvGather));
  if (K <= 0 || M > kDotRowsMaxM || !(dot || (M == 1 && cs_b == 1))) return false;
  // Columns per thread: at least kGemvBytesPerThread of B (the product streams B once, memory-bound: 1.6 MB of
  // 784 x 512 weights took 40 us where its flops alone would take 8), whole cache lines of C.
  const Grain grain{std::max<int64_t>(1, kGemvBytesPerThread / (K * static_cast<int64_t>(sizeof(T))))};
  // Sigmoid and tanh as in the tiles (epilogue_rest), over each thread's stretch of a row once it is summed.
  const bool vector_act = ep.act == Act::sigmoid || ep.act == Act::tanh;
  Epilogue<T> ep_sum = ep, ep_act;
  if (vector_act) {
    ep_sum.act = Act::none;
    ep_act.act = ep.act;
  }
  parallel_for(N, grain, nthreads, [&](int64_t j0, int64_t j1) {
    if (dot && cs_a != 1) {
      T gathered[kGemvGather];
      for (int64_t k = 0; k < K; ++k) gathered[k] = a[k * cs_a];
      gemv_dot(1, j0, j1, K, alpha, gathered, K, b, cs_b, beta, c, rs_c, cs_c, ep_sum);
    } else if (dot) {
      gemv_dot(M, j0, j1, K, alpha, a, rs_a, b, cs_b, beta, c, rs_c, cs_c, ep_sum);
    } else {
      gemv_axpy(j0, j1, K, alpha, a, cs_a, b, rs_b, beta, c, cs_c, ep_sum);
    }
    if (vector_act)
      for (int64_t i = 0; i < M; ++i) epilogue_rest(ep_act, i, j0, 1, j1 - j0, c + i * rs_c + j0 * cs_c, 0, cs_c);
  }, 16);
  return true;
}

// A product of depth K <= kShallowMaxK (an outer product, K = 1: a one-sample layer's weight gradient), C's rows
// contiguous and B's too, beta 0 and no epilogue: row by row through the table's axpy_row, each row of C written
// once, front to back, threads taking whole rows. The tiles wrote C 8 rows by 32 columns at a time, each row a
// row stride on, and were bound by those stores (512 x 512 x 1, Xeon: 49 us at 1 and at 2 threads). Each element
// is the tiles' sum (a multiply-add chain from zero in k order, times alpha), so the bits are the same.
constexpr int64_t kShallowMaxK = 4;

template <class T>
bool shallow_rows(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a, int64_t cs_a, const T* b,
                  int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c, int nthreads,
                  const Epilogue<T>& ep) {
  if (K < 1 || K > kShallowMaxK || cs_b != 1 || cs_c != 1 || beta != T(0) || !ep.empty() || N < 16) return false;
  const GemmAxpyRow<T> axpy_row = gemm_ukernels<T>().axpy_row;
  const Grain rows{std::max<int64_t>(1, kCElementsPerThread / N)};
  parallel_for(M, rows, nthreads, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      T* ci = c + i * rs_c;
      axpy_row(N, K, a + i * rs_a, cs_a, b, rs_b, ci);
      if (alpha != T(1))
        for (int64_t j = 0; j < N; ++j) ci[j] *= alpha;
    }
  });
  return true;
}

}  // namespace

template <class T>
static const IsaTable<GemmUkernels<T>>& gemm_tables() {
  static const IsaTable<GemmUkernels<T>> table(IsaFills<GemmUkernels<T>>{
      gemm_ukernels_fill_portable<T>, NNX_X86_FILL(gemm_ukernels_fill_avx2<T>),
      NNX_X86_FILL(gemm_ukernels_fill_avx512<T>), NNX_ARM64_FILL(gemm_ukernels_fill_neon<T>)});
  return table;
}

template <class T>
const GemmUkernels<T>& gemm_ukernels() {
  return gemm_tables<T>().active();
}

// The table a product runs on. The AVX-512 tile is 32 columns wide, and two cases measured faster on the
// AVX2 tables (16 wide) of the same CPU (1 thread, Zen 4, medians of interleaved runs):
// - a narrow C (4096 x 16 x 256: 0.37 ms against 1.0-2.1 ms): N fills half the wide tile, and
//   swap_operands' way around that packs with transposing copies;
// - B stored by columns (a linear layer's x @ w.T, 64 x 120 x 400: 71 us against 94 us): packing a
//   32-wide sliver then reads 32 rows side by side, twice the read streams of the 16-wide one. Not so on a
//   CPU with full-width 512-bit FMA pipes (cpu.h's wide_vector_fma), where the wide tile does twice the
//   work per cycle: there the wide table, with its transposing pack (pack_transposed_x86.h), measured
//   1.41-1.75x on x @ w.T from 64 x 120 x 400 to 512^3 and 1.09-1.26x on the Winograd weight gradients
//   of 32 and 64 channels (Xeon, 1 thread, fastest of 3 alternated runs), the same bits.
// On such a CPU a narrow product runs on the 16 x 16 AVX-512 tile (kSgemmBlockingAvx512Narrow) rather than
// AVX2's 6 x 16, unless AVX2's tile, at half the rate, fits the shape more than twice as well, either way
// round (25 x 6 x 784 fills 78% of 6 x 16 swapped, 29% of 16 x 16). Measured against AVX2's tile (Xeon,
// 1 thread, fastest of 2 x 200 calls): 16 x 16 x 4096 (a Winograd dw point of 16 channels) 1.22x,
// 256 x 10 x 784 1.33x, 784 x 16 x 64 1.30x, 64 x 16 x 400 1.28x, 4096 x 16 x 256 1.02-1.06x; ResNet-20's
// 16-channel Winograd dw 1.16x.
// The choice depends on the shape, the layout and the CPU alone, so results stay independent of the thread
// count.
template <class T>
static double best_fill(const GemmUkernels<T>& t, int64_t M, int64_t N) {
  return std::max(tile_efficiency(M, N, t.blocking.mr, t.blocking.nr),
                  tile_efficiency(N, M, t.blocking.mr, t.blocking.nr));
}

#if defined(NNX_X86)
template <class T>
static const GemmUkernels<T>& gemm_ukernels_avx512_narrow() {
  static const GemmUkernels<T> table = [] {
    GemmUkernels<T> t;
    gemm_ukernels_fill_avx512_narrow<T>(t);
    return t;
  }();
  return table;
}
#endif

template <class T>
static const GemmUkernels<T>& gemm_ukernels_for(int64_t M, int64_t N, int64_t cs_b) {
  const GemmUkernels<T>& kr = gemm_ukernels<T>();
  if (active_isa() != Isa::avx512) return kr;
  const GemmUkernels<T>& avx2 = gemm_tables<T>().for_isa(Isa::avx2);
  if (cs_b != 1 && !wide_vector_fma()) return avx2;
  const GemmUkernels<T>* narrow = &avx2;
#if defined(NNX_X86)
  if (wide_vector_fma()) {
    const GemmUkernels<T>& zn = gemm_ukernels_avx512_narrow<T>();
    if (best_fill(avx2, M, N) <= 2 * best_fill(zn, M, N)) narrow = &zn;
  }
#endif
  const double wide_fill = tile_efficiency(M, N, kr.blocking.mr, kr.blocking.nr);
  const double narrow_fill = tile_efficiency(M, N, narrow->blocking.mr, narrow->blocking.nr);
  return narrow_fill > 1.25 * wide_fill ? *narrow : kr;
}

// A large C written in one pass (beta == 0, K within one KC block, no epilogue) goes to memory past the
// caches (ukernel_stream_c): a C bigger than them is evicted before anyone reads it, and writing it through
// them first reads every line of it from memory. Returns the number of leading columns to run as usual so
// the rest starts on a cache line (every row then does: rs_c is a multiple of a line), or -1 for no
// streaming. Where an element's tile lies never changes its value (ukernel.h), so neither does the split.
template <class T>
int64_t stream_c_lead(const GemmUkernels<T>& kr, int64_t M, int64_t N, int64_t K, T beta, const T* c, int64_t rs_c,
                      int64_t cs_c, const Epilogue<T>& ep) {
  constexpr int64_t kLine = 64;
  if (kr.ukernel_stream_c == nullptr || beta != T(0) || !ep.empty() || cs_c != 1 || K > kr.blocking.kc ||
      ceil_div(N, kr.blocking.nr) <= kStridedAMaxSlivers)  // narrow C reads A in place, never this kernel
    return -1;
  if (M * N * static_cast<int64_t>(sizeof(T)) < kStreamCMinBytes || rs_c * static_cast<int64_t>(sizeof(T)) % kLine ||
      kr.blocking.nr * static_cast<int64_t>(sizeof(T)) % kLine)
    return -1;
  const auto addr = reinterpret_cast<uintptr_t>(c);
  if (addr % sizeof(T)) return -1;
  const int64_t lead = static_cast<int64_t>((kLine - addr % kLine) % kLine / sizeof(T));
  return N - lead >= kr.blocking.nr ? lead : -1;
}

// A linear layer's forward, x W^T (A's rows and B's columns contiguous along k), for a batch of kTransposedCMinRows
// to kTransposedCMaxRows rows: packing B = W^T transposes all of W (N x K) on every call, where the product
// C^T = W x^T reads W in place (as its A, a narrow product's, see gemm_block) and packs only x (M x K); C^T goes to
// a scratch and is transposed into C (exact). Taken where W is past the L2 (kTransposedCMinBBytes: packing it then
// streams it from further out) or where N leaves the direct product a partial sliver of NR columns (the swapped
// product has whole ones along its MR rows). Measured against the direct product (Xeon, full-width AVX-512,
// float32, medians of 3 alternated runs of 7 x 20+ calls, the transpose included), M x K -> N at 1 / 2 threads:
// 64 x 784 -> 512 1.23 / 1.09x, 32 x 1024 -> 1024 - / 1.40x, 64 x 3136 -> 1024 1.28 / 1.17x, 16 x 400 -> 120
// 1.69 / 1.68x, 64 x 120 -> 84 1.20 / 1.18x, 64 x 512 -> 512 1.13 / 0.95x. Not taken: W in the L2 with whole
// slivers (64 x 256 -> 256 1.00 / 0.89x, 64 x 128 -> 64 1.01 / 0.92x); N under half of M (64 x 512 -> 10 even);
// 128 rows (0.97-1.13x at 1 thread, 0.76-1.13x at 2) and more; under 16 rows (0.6x: the swapped tile is mostly
// empty). C^T stays below kStreamCMinBytes, in the caches for the transpose. The same products summed in the same
// order, so the same bits; the choice reads the shape and layout alone.
constexpr int64_t kTransposedCMinRows = 16;
constexpr int64_t kTransposedCMaxRows = 64;
constexpr int64_t kTransposedCMinBBytes = int64_t{1} << 20;
// Elements of C transposed per thread, at least (a copy within the caches: a quarter of a pass over memory's grain).
constexpr Grain kTransposeGrain{kElementwiseGrain.units / 4};

template <class T>
bool transposed_c_pays(const GemmUkernels<T>& kr, int64_t M, int64_t N, int64_t K, int64_t cs_a, int64_t rs_b,
                       int64_t cs_b, T beta, int64_t cs_c) {
  const int64_t nr = kr.blocking.nr;
  return beta == T(0) && cs_a == 1 && rs_b == 1 && cs_b != 1 && cs_c == 1 && K > 0 && M >= kTransposedCMinRows &&
         M <= kTransposedCMaxRows && 2 * N > M && ceil_div(M, nr) <= kStridedAMaxSlivers &&
         (N * K * static_cast<int64_t>(sizeof(T)) >= kTransposedCMinBBytes || N % nr != 0) &&
         M * N * static_cast<int64_t>(sizeof(T)) < kStreamCMinBytes;  // a C^T that stays in the caches
}

// The products of gemm_direct in register tiles (packed, or read in place where that pays). kRowsAlone: for
// gemm_tiled, whose rows must not depend on M, so never summed in halves of K (split_k_pays looks at M).
template <class T, bool kRowsAlone = false>
void gemm_tiles(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a, int64_t cs_a, const T* b,
                int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c, int nthreads,
                const Epilogue<T>& ep);

// The product of gemm without the transposed-C choice (gemm_by), so the transposed product does not choose it again.
template <class T>
void gemm_direct(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a, int64_t cs_a, const T* b,
                 int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c, int nthreads,
                 const Epilogue<T>& ep) {
  if (gemv_rows(M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, nthreads, ep)) return;
  if (shallow_rows(M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, nthreads, ep)) return;
  if (N == 1) {  // one column of C (a batch-1 recurrent step's W h): the transposed one-row product, C^T = B^T A^T
    Epilogue<T> ep_t = ep;
    ep_t.bias_per_row = !ep.bias_per_row;
    if (gemv_rows(int64_t{1}, M, K, alpha, b, cs_b, rs_b, a, cs_a, rs_a, beta, c, cs_c, rs_c, nthreads, ep_t)) return;
  }
  gemm_tiles(M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, nthreads, ep);
}

template <class T, bool kRowsAlone>
void gemm_tiles(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a, int64_t cs_a, const T* b,
                int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c, int nthreads,
                const Epilogue<T>& ep) {
  const GemmUkernels<T>& table = gemm_ukernels_for<T>(M, N, cs_b);
  // kDeepKcMinCBytes: a C past the caches, read back once per KC block. The table is copied only then.
  const bool deep_kc = M * N * static_cast<int64_t>(sizeof(T)) > kDeepKcMinCBytes &&
                       K >= int64_t{kDeepKcMinBlocks} * table.blocking.kc;
  GemmUkernels<T> deep;
  if (deep_kc) {
    deep = table;
    deep.blocking.kc = 2 * table.blocking.kc;
  }
  const GemmUkernels<T>& kr = deep_kc ? deep : table;
  const int64_t MR = kr.blocking.mr, NR = kr.blocking.nr;
  if (swap_operands(M, N, K, MR, NR)) {
    Epilogue<T> ep_t = ep;
    ep_t.bias_per_row = !ep.bias_per_row;
    gemm_threads(kr, N, M, K, alpha, b, cs_b, rs_b, a, cs_a, rs_a, beta, c, cs_c, rs_c, nthreads, ep_t, false,
                 !kRowsAlone);
    return;
  }
  const int64_t lead = stream_c_lead(kr, M, N, K, beta, c, rs_c, cs_c, ep);
  if (lead < 0) {
    gemm_threads(kr, M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, nthreads, ep, false,
                 !kRowsAlone);
    return;
  }
  // The columns before C's first cache-line boundary as usual, the rest with rows that start on one.
  if (lead > 0) gemm_threads(kr, M, lead, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, nthreads, ep);
  gemm_threads(kr, M, N - lead, K, alpha, a, rs_a, cs_a, b + lead * cs_b, rs_b, cs_b, beta, c + lead, rs_c, cs_c,
               nthreads, ep, true);
}

// Products small enough to run straight through their tiles (batch_product_in_place): B within
// kInPlaceBMaxBytes with its rows contiguous, K within one KC block, A contiguous along a row or a column, C's
// rows contiguous, more than one row (one row is gemv_rows's), few slivers (A read in place, as gemm_block
// does for narrow C), a table with ukernel_strided_ab.
template <class T>
bool batch_product_in_place_applies(const GemmUkernels<T>& kr, int64_t M, int64_t N, int64_t K, int64_t rs_a,
                                    int64_t cs_a, int64_t rs_b, int64_t cs_b, int64_t cs_c) {
  return kr.ukernel_strided_ab != nullptr && M >= 2 && N >= 2 && K >= 1 && K <= kr.blocking.kc && cs_b == 1 &&
         rs_b != 1 && (cs_a == 1 || rs_a == 1) && cs_c == 1 &&
         K * N * static_cast<int64_t>(sizeof(T)) <= kInPlaceBMaxBytes &&
         ceil_div(N, kr.blocking.nr) <= kStridedAMaxSlivers;
}

// C = alpha A B of one such product, the tiles gemm_block runs for it (B's full slivers read in place, its last
// partial sliver packed into bufb, A in place, one KC block, beta 0): the same kernels and sums, so the same
// bits, without gemm()'s per-product dispatch (table choice, transposition and threading tests, workspace),
// which cost as much as the arithmetic of 32 products of 16 x 64 by 64 x 16 (Zen 4, 1 thread).
// Row tiles outermost, each across all of B: B's rows lie a row stride apart, so one sliver of them falls in
// a sixteenth of L1's sets, as do C's, and sliver by sliver (the other order) they evicted each other; all of B
// (at most kInPlaceBMaxBytes) spreads over every set and stays. 32 products of 64 x 64 by 64 x 128, Xeon,
// 1 thread: 1.04-1.05x.
template <class T>
void batch_product_in_place(const GemmUkernels<T>& kr, int64_t M, int64_t N, int64_t K, T alpha, const T* a,
                            int64_t rs_a, int64_t cs_a, const T* b, int64_t rs_b, T* c, int64_t rs_c, T* bufb) {
  const int64_t MR = kr.blocking.mr, NR = kr.blocking.nr;
  const int64_t n_full = N / NR * NR;
  if (n_full < N) kr.pack_b(K, N - n_full, b + n_full, rs_b, int64_t{1}, bufb);
  for (int64_t ir = 0; ir < M; ir += MR) {
    const int64_t m = std::min(MR, M - ir);
    for (int64_t jr = 0; jr < N; jr += NR) {
      const int64_t n = std::min(NR, N - jr);
      T* ct = c + ir * rs_c + jr;
      if (n == NR)
        kr.ukernel_strided_ab(K, a + ir * rs_a, rs_a, cs_a, b + jr, rs_b, ct, rs_c, int64_t{1}, m, n, alpha, T(0));
      else
        kr.ukernel_strided_a(K, a + ir * rs_a, rs_a, cs_a, bufb, ct, rs_c, int64_t{1}, m, n, alpha, T(0));
    }
  }
}

template <class T>
void gemm_batch(int64_t batch, int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t bs_a, int64_t rs_a,
                int64_t cs_a, const T* b, int64_t bs_b, int64_t rs_b, int64_t cs_b, T* c, int64_t bs_c, int64_t rs_c,
                int64_t cs_c, int nthreads) {
  if (batch <= 0 || M <= 0 || N <= 0) return;
  const int64_t flops = 2 * M * N * std::max<int64_t>(K, 1);
  const int nt = threads_for(batch * flops, kFlopsPerThread, nthreads);
  const GemmUkernels<T>* table = &gemm_ukernels<T>();
#if defined(NNX_X86)
  // Products narrower than the AVX-512 tile's slivers (an attention head's 16 x 16 scores): the one-vector
  // table, whose slivers they fill, reads all of B in place where the wide tile packed a half-empty sliver.
  if (active_isa() == Isa::avx512 && N < table->blocking.nr && N % gemm_ukernels_avx512_narrow<T>().blocking.nr == 0)
    table = &gemm_ukernels_avx512_narrow<T>();
#endif
  const GemmUkernels<T>& kr = *table;
  const bool in_place = batch_product_in_place_applies(kr, M, N, K, rs_a, cs_a, rs_b, cs_b, cs_c);
  // Products [i0, i1), each on `threads` threads: straight through its tiles where it qualifies and would run on
  // one thread anyway, else through gemm().
  auto products = [&](int64_t i0, int64_t i1, int threads) {
    const bool direct = in_place && threads_for(flops, kFlopsPerThread, threads) <= 1;
    T* bufb = direct ? workspace_as<T>(kWsGemmB, static_cast<size_t>(kr.blocking.nr * K)) : nullptr;
    for (int64_t i = i0; i < i1; ++i) {
      if (direct)
        batch_product_in_place(kr, M, N, K, alpha, a + i * bs_a, rs_a, cs_a, b + i * bs_b, rs_b, c + i * bs_c, rs_c,
                               bufb);
      else
        gemm<T>(M, N, K, alpha, a + i * bs_a, rs_a, cs_a, b + i * bs_b, rs_b, cs_b, T(0), c + i * bs_c, rs_c, cs_c,
                threads);
    }
  };
  // Whole products per thread when every thread gets the same number of them (or so many that one more is
  // little): an attention layer's (sequence x sequence) products are too small to split well one by one.
  if (nt > 1 && (batch % nt == 0 || batch >= 4 * nt)) {
    parallel_for(batch, Grain{1}, nt, [&](int64_t i0, int64_t i1) { products(i0, i1, 1); });
    return;
  }
  products(0, batch, nthreads);  // one product at a time, each on every thread where it is large enough to split
}

// C = the product by `product` (gemm_direct or gemm_tiles), computed as C^T into a scratch and transposed into C
// where transposed_c_pays.
template <class T, class Product>
void gemm_by(Product product, int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a, int64_t cs_a,
             const T* b, int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c, int nthreads,
             const Epilogue<T>& ep) {
  if (M <= 0 || N <= 0) return;
  const GemmUkernels<T>& active = gemm_ukernels<T>();
  if (!transposed_c_pays(active, M, N, K, cs_a, rs_b, cs_b, beta, cs_c)) {
    product(M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, nthreads, ep);
    return;
  }
  T* ct = workspace_as<T>(kWsGemmC, static_cast<size_t>(N * M));
  Epilogue<T> ep_t = ep;
  ep_t.bias_per_row = !ep.bias_per_row;
  product(N, M, K, alpha, b, cs_b, rs_b, a, cs_a, rs_a, T(0), ct, M, int64_t{1}, nthreads, ep_t);
  // Threads take whole cache lines of C's rows.
  parallel_for(N, Grain{std::max<int64_t>(1, kTransposeGrain.units / M)}, nthreads, [&](int64_t j0, int64_t j1) {
    active.transpose_c(j1 - j0, M, ct + j0 * M, M, c + j0, rs_c);
  }, 16);
}

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a, int64_t cs_a,
          const T* b, int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c,
          int nthreads, const Epilogue<T>& ep) {
  gemm_by(gemm_direct<T>, M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, nthreads, ep);
}

template <class T>
void gemm_tiled(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a, int64_t cs_a,
                const T* b, int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c,
                int nthreads, const Epilogue<T>& ep) {
  gemm_by(gemm_tiles<T, true>, M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, nthreads, ep);
}

template <class T>
const char* gemm_ukernel_name() {
  return gemm_ukernels<T>().name;
}

template <class T>
void transpose_matrix(int64_t m, int64_t n, const T* src, int64_t ld_src, T* dst, int64_t ld_dst) {
  gemm_ukernels<T>().transpose_c(m, n, src, ld_src, dst, ld_dst);
}

template void gemm_batch<float>(int64_t, int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, int64_t,
                                const float*, int64_t, int64_t, int64_t, float*, int64_t, int64_t, int64_t, int);
template void gemm_batch<double>(int64_t, int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                                 int64_t, const double*, int64_t, int64_t, int64_t, double*, int64_t, int64_t, int64_t,
                                 int);
template void gemm_tiled<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,
                                int64_t, int64_t, float, float*, int64_t, int64_t, int, const Epilogue<float>&);
template void gemm_tiled<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t, const double*,
                                 int64_t, int64_t, double, double*, int64_t, int64_t, int, const Epilogue<double>&);
template void gemm<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,
                          int64_t, int64_t, float, float*, int64_t, int64_t, int, const Epilogue<float>&);
template void gemm<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double, double*, int64_t, int64_t, int,
                           const Epilogue<double>&);
template void transpose_matrix<float>(int64_t, int64_t, const float*, int64_t, float*, int64_t);
template void transpose_matrix<double>(int64_t, int64_t, const double*, int64_t, double*, int64_t);
template const char* gemm_ukernel_name<float>();
template const char* gemm_ukernel_name<double>();
template const GemmUkernels<float>& gemm_ukernels<float>();
template const GemmUkernels<double>& gemm_ukernels<double>();

}  // namespace nnx
