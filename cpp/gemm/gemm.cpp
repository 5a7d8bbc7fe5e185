// The GEMM driver: BLIS's five loops around a register-blocked micro-kernel (ukernel.h), with the
// blocking of gemm_config.h, packing buffers from nnx::workspace and threads over disjoint blocks of C.
//
//   jc: NC columns of B/C      pack B(pc.., jc..) into KC x NC slivers (L3)
//    pc: KC deep                 first block applies beta, later ones accumulate (beta = 1)
//     ic: MC rows of A/C         pack A(ic.., pc..) into MC x KC slivers (L2)
//      jr: NR columns            B sliver stays in L1
//       ir: MR rows              micro-kernel: MR x NR tile of C
//
// Determinism: every C element is summed over k in increasing order inside the micro-kernel, in KC
// blocks that depend only on K; threads own disjoint rectangles of C whose edges are multiples of
// MR / NR, so no tile changes shape with the thread count. Hence results are bitwise identical for any
// number of threads.
#include "gemm/gemm.h"

#include <algorithm>

#include "common/cpu.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "gemm/ukernel.h"

namespace nnx {
namespace {

// The dispatch table: portable first, then overridden by the best kernels the active ISA allows.
template <class T>
const GemmKernels<T>& kernels_for(Isa isa);

template <>
const GemmKernels<float>& kernels_for<float>(Isa isa) {
  const GemmKernels<float>* k = &sgemm_kernels_portable();
#if defined(NNX_X86)
  if (isa == Isa::avx2) k = &sgemm_kernels_avx2();
  if (isa == Isa::avx512) k = &sgemm_kernels_avx512();
#elif defined(NNX_ARM64) && defined(NNX_GEMM_NEON)
  if (isa == Isa::neon) k = &sgemm_kernels_neon();
#endif
  return *k;
}

template <>
const GemmKernels<double>& kernels_for<double>(Isa isa) {
  const GemmKernels<double>* k = &dgemm_kernels_portable();
#if defined(NNX_X86)
  if (isa == Isa::avx2) k = &dgemm_kernels_avx2();
  if (isa == Isa::avx512) k = &dgemm_kernels_avx512();
#elif defined(NNX_ARM64) && defined(NNX_GEMM_NEON)
  if (isa == Isa::neon) k = &dgemm_kernels_neon();
#endif
  return *k;
}

inline int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
inline int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }

// C = beta * C (beta == 0 writes zeros without reading C), then the epilogue: the whole GEMM when K == 0.
template <class T>
void scale_c(int64_t M, int64_t N, T beta, T* c, int64_t rs_c, int64_t cs_c, const Epilogue<T>& ep,
             int64_t row0, int64_t col0) {
  for (int64_t i = 0; i < M; ++i) {
    T* ci = c + i * rs_c;
    for (int64_t j = 0; j < N; ++j) ci[j * cs_c] = beta == T(0) ? T(0) : beta * ci[j * cs_c];
  }
  apply_epilogue(ep, row0, col0, M, N, c, rs_c, cs_c);
}

// One thread's GEMM on an M x N block of C whose top-left element is C(row0, col0) of the full matrix
// (for the bias). a, b and c already point at the block.
template <class T>
void gemm_block(const GemmKernels<T>& kr, int64_t M, int64_t N, int64_t K, T alpha, const T* a,
                int64_t rs_a, int64_t cs_a, const T* b, int64_t rs_b, int64_t cs_b, T beta, T* c,
                int64_t rs_c, int64_t cs_c, const Epilogue<T>& ep, int64_t row0, int64_t col0) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0) {
    scale_c(M, N, beta, c, rs_c, cs_c, ep, row0, col0);
    return;
  }
  const GemmBlocking& bl = kr.blocking;
  const int64_t MR = bl.mr, NR = bl.nr;
  const int64_t kc_max = std::min<int64_t>(bl.kc, K);
  const int64_t mc_max = std::min<int64_t>(bl.mc, round_up(M, MR));
  const int64_t nc_max = std::min<int64_t>(bl.nc, round_up(N, NR));
  T* bufa = workspace_as<T>(kWsGemmA, static_cast<size_t>(mc_max * kc_max));
  T* bufb = workspace_as<T>(kWsGemmB, static_cast<size_t>(nc_max * kc_max));
  const bool has_ep = !ep.empty();
  // Narrow C: each sliver of A meets at most kStridedAMaxSlivers slivers of B, too few to pay for
  // packing it, so the micro-kernel reads A in place when A is contiguous in one direction.
  const bool strided_a = ceil_div(N, NR) <= kStridedAMaxSlivers && (cs_a == 1 || rs_a == 1);

  for (int64_t jc = 0; jc < N; jc += bl.nc) {
    const int64_t nc = std::min<int64_t>(bl.nc, N - jc);
    for (int64_t pc = 0; pc < K; pc += bl.kc) {
      const int64_t kc = std::min<int64_t>(bl.kc, K - pc);
      const T beta_pc = pc == 0 ? beta : T(1);
      const bool last = pc + kc == K;
      kr.pack_b(kc, nc, b + pc * rs_b + jc * cs_b, rs_b, cs_b, bufb);
      for (int64_t ic = 0; ic < M; ic += bl.mc) {
        const int64_t mc = std::min<int64_t>(bl.mc, M - ic);
        const T* ablock = a + ic * rs_a + pc * cs_a;
        if (!strided_a) kr.pack_a(mc, kc, ablock, rs_a, cs_a, bufa);
        for (int64_t jr = 0; jr < nc; jr += NR) {
          const int64_t n = std::min(NR, nc - jr);
          const T* bp = bufb + jr * kc;
          for (int64_t ir = 0; ir < mc; ir += MR) {
            const int64_t m = std::min(MR, mc - ir);
            T* ct = c + (ic + ir) * rs_c + (jc + jr) * cs_c;
            if (strided_a)
              kr.ukernel_strided_a(kc, ablock + ir * rs_a, rs_a, cs_a, bp, ct, rs_c, cs_c, m, n, alpha, beta_pc);
            else
              kr.ukernel(kc, bufa + ir * kc, bp, ct, rs_c, cs_c, m, n, alpha, beta_pc);
            if (last && has_ep) apply_epilogue(ep, row0 + ic + ir, col0 + jc + jr, m, n, ct, rs_c, cs_c);
          }
        }
      }
    }
  }
}

// Splits C into a tm x tn grid of blocks for `nt` threads, minimising one thread's work: its
// multiply-adds plus the elements of A and B it packs (each packed element costs about as much as
// kPackCost multiply-adds, a copy against a fused multiply-add in registers).
void choose_grid(int nt, int64_t M, int64_t N, int64_t K, int64_t MR, int64_t NR, int* tm, int* tn) {
  constexpr double kPackCost = 8.0;
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

// Below this many flops per thread, starting threads costs more than it saves.
constexpr int64_t kFlopsPerThread = 1 << 20;

}  // namespace

template <class T>
void gemm(int64_t M, int64_t N, int64_t K, T alpha, const T* a, int64_t rs_a, int64_t cs_a,
          const T* b, int64_t rs_b, int64_t cs_b, T beta, T* c, int64_t rs_c, int64_t cs_c,
          int nthreads, const Epilogue<T>& ep) {
  if (M <= 0 || N <= 0) return;
  const GemmKernels<T>& kr = kernels_for<T>(active_isa());
  const int64_t MR = kr.blocking.mr, NR = kr.blocking.nr;
  const int64_t flops = 2 * M * N * std::max<int64_t>(K, 1);
  const int nt = threads_for(flops, kFlopsPerThread, nthreads);
  if (nt <= 1) {
    gemm_block(kr, M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, ep, 0, 0);
    return;
  }
#if defined(NNX_OPENMP)
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    // The team may be smaller than asked for; the grid follows the team actually running.
    const int team = omp_get_num_threads();
    int tm = 1, tn = 1;
    choose_grid(team, M, N, K, MR, NR, &tm, &tn);
    const int t = omp_get_thread_num();
    if (t < tm * tn) {
      int64_t i0, i1, j0, j1;
      split_range(M, MR, tm, t / tn, &i0, &i1);
      split_range(N, NR, tn, t % tn, &j0, &j1);
      gemm_block(kr, i1 - i0, j1 - j0, K, alpha, a + i0 * rs_a, rs_a, cs_a, b + j0 * cs_b, rs_b, cs_b,
                 beta, c + i0 * rs_c + j0 * cs_c, rs_c, cs_c, ep, i0, j0);
    }
  }
#else
  gemm_block(kr, M, N, K, alpha, a, rs_a, cs_a, b, rs_b, cs_b, beta, c, rs_c, cs_c, ep, 0, 0);
#endif
}

template <class T>
const char* gemm_ukernel_name() {
  return kernels_for<T>(active_isa()).name;
}

template void gemm<float>(int64_t, int64_t, int64_t, float, const float*, int64_t, int64_t, const float*,
                          int64_t, int64_t, float, float*, int64_t, int64_t, int, const Epilogue<float>&);
template void gemm<double>(int64_t, int64_t, int64_t, double, const double*, int64_t, int64_t,
                           const double*, int64_t, int64_t, double, double*, int64_t, int64_t, int,
                           const Epilogue<double>&);
template const char* gemm_ukernel_name<float>();
template const char* gemm_ukernel_name<double>();

}  // namespace nnx
