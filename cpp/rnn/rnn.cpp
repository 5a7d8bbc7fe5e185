// Drivers of the recurrent family (contract in rnn.h): GEMMs from gemm/gemm.h for every product, the
// active ISA's step kernels (rnn_ukernels.h) for the element-wise pass of each step, split across rows.
#include "rnn/rnn.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <utility>

#include "common/isa_table.h"
#include "common/int_math.h"
#include "common/threads.h"
#include "common/workspace.h"
#include "gemm/gemm.h"
#include "gemm/ukernel.h"
#include "rnn/rnn_ukernels.h"

#if defined(NNX_OPENMP)
#include <omp.h>
#endif

namespace nnx {

namespace {

// Every per-step buffer is batch-major, as y is: a step's gate block is N rows (one per sequence) of GH
// values (gate g of unit u at column g*H + u), and the blocks of all steps sit one after another in one
// (steps*N) x GH matrix, so the input projection of all steps is one GEMM with x as it comes, each step's
// state is a plain N x H slice of y, and nothing is ever transposed. A sequence's rows depend on no other
// sequence's rows at any step, which is what lets threads own disjoint sets of sequences for the whole call.
//
// Workspace segments, in elements, each rounded up to a 64-byte multiple so the next starts on a cache
// line (the caller's buffer itself is aligned by NumPy to at least 16 bytes).
struct Layout {
  int64_t bias, gates, extra, carry, dc, dbias, total;
  Layout(RnnCell cell, int64_t steps, int64_t N, int64_t H) {
    const int64_t GH = rnn_gate_count(cell) * H, R = steps * N, NH = N * H;
    const bool lstm = cell == RnnCell::lstm;
    auto seg = [](int64_t n) { return (n + 15) / 16 * 16; };
    bias = 0;
    gates = bias + seg(GH);
    extra = gates + seg(R * GH);  // LSTM: the cell states of every step; GRU: the hidden-side gate blocks
    carry = extra + seg(lstm ? R * H : cell == RnnCell::gru ? R * GH : 0);
    dc = carry + seg(2 * NH);
    dbias = dc + seg(lstm ? NH : 0);  // backward: one bias-gradient row per sequence (bias_row_width)
    total = dbias + seg(N * bias_row_width(cell, H));
  }
  // The GRU's row holds its gate blocks r, z, n and then the hidden side's n block (r and z are shared).
  static int64_t bias_row_width(RnnCell cell, int64_t H) {
    return cell == RnnCell::gru ? 4 * H : rnn_gate_count(cell) * H;
  }
};

// The recurrent weight as the B operand of the per-step products, packed once per call (gemm_block would
// pack it again at every step): KC-deep blocks of NR-wide slivers, the layout of GemmUkernels::pack_b, in
// the calling thread's kWsMisc buffer. Every step then runs the micro-kernel on it directly: the step
// table's own (rnn_ukernels.h) where the ISA has one, else the GEMM family's.
template <class T>
struct PackedPanel {
  GemmUkernelStridedA<T> ukernel;
  GemmUkernelStridedA<T> row_ukernel;  // the same on one row, or null (RnnUkernels::step_ukernel_row)
  int64_t MR, NR, KC;
  const T* buf;
  int64_t K, N, Np;  // Np: N rounded up to whole slivers
};

template <class T>
PackedPanel<T> pack_panel(const RnnUkernels<T>& k, int64_t K, int64_t N, const T* b, int64_t rs_b, int64_t cs_b) {
  const GemmUkernels<T>& g = gemm_ukernels<T>();
  const bool own = k.step_ukernel != nullptr;
  const GemmBlocking& bl = own ? k.step_blocking : g.blocking;
  const GemmPackB<T> pack = own ? k.step_pack_b : g.pack_b;
  // KC as gemm_block chooses it: equal blocks, depending on K alone (the summation order).
  const int64_t KC = round_up(ceil_div(K, ceil_div(K, bl.kc)), 8);
  const int64_t Np = round_up(N, bl.nr);
  T* buf = workspace_as<T>(kWsMisc, static_cast<size_t>(Np * K));
  for (int64_t pc = 0; pc < K; pc += KC) pack(std::min(KC, K - pc), N, b + pc * rs_b, rs_b, cs_b, buf + pc * Np);
  return PackedPanel<T>{own ? k.step_ukernel : g.ukernel_strided_a, own ? k.step_ukernel_row : nullptr,
                        bl.mr, bl.nr, KC, buf, K, N, Np};
}

// C (m x N, rows ldc apart) = A (m x K, rows lda apart, read in place) B + beta C, B packed. Slivers of B
// outer, row tiles inner: each sliver is read from L2 once and reused from L1 by every row tile. Every
// element is one micro-kernel sum over the same KC blocks wherever its rows fall, so a row's result does
// not depend on which rows are computed with it. With nthreads > 1 (a call whose sequences are fewer than its
// threads) the slivers are split between threads, at least kStepProductGrain multiply-adds each; every element
// is still computed by one kernel call, so the bits do not depend on the split.
constexpr int64_t kStepProductGrain = int64_t{1} << 16;

// Slivers [s0, s1) of that product (rows_times_panel's body; a thread's share of it in forward_rows_team).
template <class T>
void panel_slivers(const PackedPanel<T>& p, int64_t m, const T* a, int64_t lda, T beta, T* c, int64_t ldc, int64_t s0,
                   int64_t s1) {
  const int64_t j0 = s0 * p.NR, j1 = std::min(p.N, s1 * p.NR);
  for (int64_t pc = 0; pc < p.K; pc += p.KC) {
    const int64_t kc = std::min(p.KC, p.K - pc);
    const T beta_pc = pc == 0 ? beta : T(1);
    for (int64_t jr = j0; jr < j1; jr += p.NR) {
      const T* bp = p.buf + pc * p.Np + jr * kc;
      const int64_t n = std::min(p.NR, p.N - jr);
      for (int64_t ir = 0; ir < m; ir += p.MR) {
        const int64_t rows = std::min(p.MR, m - ir);
        if (p.row_ukernel && 2 * rows <= p.MR) {  // a short block: its rows one at a time (same bits)
          for (int64_t i = ir; i < ir + rows; ++i)
            p.row_ukernel(kc, a + i * lda + pc, lda, 1, bp, c + i * ldc + jr, ldc, 1, 1, n, T(1), beta_pc);
        } else {
          p.ukernel(kc, a + ir * lda + pc, lda, 1, bp, c + ir * ldc + jr, ldc, 1, rows, n, T(1), beta_pc);
        }
      }
    }
  }
}

template <class T>
Grain panel_grain(const PackedPanel<T>& p, int64_t m) {
  return Grain{std::max<int64_t>(1, kStepProductGrain / std::max<int64_t>(1, p.K * p.NR * m))};
}

template <class T>
void rows_times_panel(const PackedPanel<T>& p, int64_t m, const T* a, int64_t lda, T beta, T* c, int64_t ldc,
                      int nthreads = 1) {
  const int64_t nsl = ceil_div(p.N, p.NR);
  if (nthreads <= 1) {
    panel_slivers(p, m, a, lda, beta, c, ldc, int64_t{0}, nsl);
    return;
  }
  parallel_for(nsl, panel_grain(p, m), nthreads,
               [&](int64_t s0, int64_t s1) { panel_slivers(p, m, a, lda, beta, c, ldc, s0, s1); });
}

// Sequences of a call worth a thread: each runs steps * GH * (I + H) multiply-adds, so even a handful
// outweighs waking a thread; the split is in whole row tiles (the align argument of parallel_for).
Grain sequences_grain(int64_t steps, int64_t GH, int64_t H) {
  const int64_t flops = std::max<int64_t>(1, 2 * steps * GH * H);
  return Grain{std::max<int64_t>(1, (int64_t{1} << 20) / flops)};
}

// The threads of each step's product: the call's where its sequences make one range of whole row tiles
// (parallel_for then runs them on the calling thread), else one, the sequences being split instead.
int step_product_threads(int64_t N, Grain grain, int nthreads, int64_t MR) {
  return parallel_for_ranges(N, grain, nthreads, MR) <= 1 ? nthreads : 1;
}

// The bias gradients: the per-sequence rows the backward's gate pass accumulated (rnn_ukernels.h, db),
// summed over the sequences in their order, so the result is the same for any thread count. RNN and LSTM
// see one bias sum (both biases get it); the GRU's hidden side differs from the input side in its n block.
template <class T>
void bias_gradients(RnnCell cell, int64_t N, int64_t H, const T* rows, T* db_ih, T* db_hh) {
  const int64_t GH = rnn_gate_count(cell) * H, W = Layout::bias_row_width(cell, H);
  auto sum_rows = [&](int64_t col, int64_t n_cols, T* out) {
    for (int64_t j = 0; j < n_cols; ++j) out[j] = rows[col + j];
    for (int64_t n = 1; n < N; ++n)
      for (int64_t j = 0; j < n_cols; ++j) out[j] += rows[n * W + col + j];
  };
  T* first = db_ih ? db_ih : db_hh;
  sum_rows(0, GH, first);
  if (db_hh && db_hh != first) std::memcpy(db_hh, first, sizeof(T) * GH);
  if (cell == RnnCell::gru && db_hh) sum_rows(3 * H, H, db_hh + 2 * H);  // the hidden side's n block
}

// Where the row of sequence n at step t lies in x, y, dy, dx and every per-step matrix of the workspace:
// time-major t * N + n, batch-first n * steps + t (the caller's layout, so neither is ever transposed). The
// rows of one step's sequences are `seq` rows apart.
struct RowMap {
  int64_t steps, N;
  bool batch_first;
  int64_t row(int64_t t, int64_t n) const { return batch_first ? n * steps + t : t * N + n; }
  int64_t seq() const { return batch_first ? steps : 1; }
  // h_{t-1} of row r: the y row of the step before, or -1 at t = 0 (h0's row n)
  int64_t prev(int64_t r) const { return batch_first ? (r % steps == 0 ? -1 : r - 1) : (r < N ? -1 : r - N); }
  int64_t seq_of(int64_t r) const { return batch_first ? r / steps : r % N; }
};

// dW_ih = dG^T x and dW_hh = dGh^T h_prev over all steps (h_prev: h0 at step 0, then y of the step before).
// Where both read the same dG (RNN, LSTM), they are one product of I + H columns, computed transposed:
// [x | h_prev]^T dG, whose B operand (dG, rows of GH values) the GEMM packs from contiguous rows and whose
// M = I + H fills GEMM's row tiles better than GH does; the h0 step joins the same sum. Measured with the
// GEMM alone (1 thread, Zen 4): 0.66 against 0.75 ms on RNN 28 -> 128, 13.6 against 14.4 ms on LSTM 64 -> 256,
// equal on RNN 64 -> 256; and one product against two (dG^T x, dG^T h): 14.7 against 17.0 ms on LSTM 64.
template <class T>
void weight_gradients(const RowMap& rm, int64_t I, int64_t H, int64_t GH, const T* dg, const T* dgh, const T* x,
                      const T* h0, const T* y, T* dw_ih, T* dw_hh, int nthreads) {
  const int64_t N = rm.N, R = rm.steps * N;
  auto h_prev = [&](int64_t r) { const int64_t p = rm.prev(r); return p < 0 ? h0 + rm.seq_of(r) * H : y + p * H; };
  if (dg == dgh && dw_ih && dw_hh) {
    const int64_t C = I + H;
    T* cat = workspace_as<T>(kWsMisc, static_cast<size_t>(R * C + GH * C));
    T* out = cat + R * C;  // C x GH: row i is column i of [dW_ih | dW_hh]
    parallel_for(R, Grain{kElementwiseGrain.units / C + 1}, nthreads,
                 [&](int64_t b, int64_t e) {
                   for (int64_t r = b; r < e; ++r) {
                     std::memcpy(cat + r * C, x + r * I, sizeof(T) * I);
                     std::memcpy(cat + r * C + I, h_prev(r), sizeof(T) * H);
                   }
                 });
    gemm<T>(C, GH, R, T(1), cat, 1, C, dg, GH, 1, T(0), out, GH, 1, nthreads);
    constexpr int64_t B = 16;  // columns of `out` per pass: one cache line of each row read, 16 rows written
    for (int64_t j0 = 0; j0 < GH; j0 += B) {
      const int64_t je = std::min(GH, j0 + B);
      for (int64_t i = 0; i < C; ++i) {
        const T* src = out + i * GH;
        T* dst = i < I ? dw_ih + i : dw_hh + (i - I);
        const int64_t ld = i < I ? I : H;
        for (int64_t j = j0; j < je; ++j) dst[j * ld] = src[j];
      }
    }
    return;
  }
  if (dw_ih) gemm<T>(GH, I, R, T(1), dg, 1, GH, x, I, 1, T(0), dw_ih, I, 1, nthreads);
  if (!dw_hh) return;
  if (!rm.batch_first) {  // the h0 step, then the outputs of steps 0 .. steps - 2, read in place
    gemm<T>(GH, H, N, T(1), dgh, 1, GH, h0, H, 1, T(0), dw_hh, H, 1, nthreads);
    if (rm.steps > 1) gemm<T>(GH, H, R - N, T(1), dgh + N * GH, 1, GH, y, H, 1, T(1), dw_hh, H, 1, nthreads);
    return;
  }
  // batch-first: each sequence's h0 interrupts the rows of y, so h_prev is gathered into one matrix first
  T* hp = workspace_as<T>(kWsMisc, static_cast<size_t>(R * H));
  parallel_for(R, Grain{kElementwiseGrain.units / H + 1}, nthreads, [&](int64_t b, int64_t e) {
    for (int64_t r = b; r < e; ++r) std::memcpy(hp + r * H, h_prev(r), sizeof(T) * H);
  });
  gemm<T>(GH, H, R, T(1), dgh, 1, GH, hp, H, 1, T(0), dw_hh, H, 1, nthreads);
}

inline bool row_active(const int64_t* lengths, int64_t n, int64_t t) { return lengths == nullptr || t < lengths[n]; }

// Everything one call's sequences share: sizes, inputs, the packed recurrent weight, the step kernels.
template <class T>
struct Seq {
  RnnCell cell;
  RowMap rm;
  int64_t steps, N, H, GH;
  const T *h0, *c0, *b_hh;
  const int64_t* lengths;
  T *gates, *extra, *y;
  PackedPanel<T> w;
  const RnnUkernels<T>* k;
  T* dbias;       // backward: the per-sequence bias-gradient rows, or null (no bias gradient wanted)
  bool need_dh0;  // backward: false skips step 0's product dG_0 W_hh (dh0 not wanted)
  int step_threads = 1;  // threads of each step's product: the call's, where its sequences run on one thread
};

// The gate pass of step t for row r of the block starting at sequence b, hidden units [u0, u1): every unit's
// values are its own (the kernels run lane by lane), so any split of the units gives the same bits.
template <class T>
void forward_gates(const Seq<T>& s, int64_t t, int64_t b, int64_t r, int64_t u0, int64_t u1) {
  const int64_t H = s.H, GH = s.GH, q = s.rm.seq(), n = u1 - u0;
  const RnnUkernels<T>& k = *s.k;
  const int64_t r0 = s.rm.row(t, b);
  T* h = s.y + (r0 + r * q) * H + u0;
  T* c = s.extra + (r0 + r * q) * H + u0;
  if (!row_active(s.lengths, b + r, t)) {  // a finished sequence: output (and cell state) 0
    std::fill(h, h + n, T(0));
    if (s.cell == RnnCell::lstm) std::fill(c, c + n, T(0));
    return;
  }
  T* g = s.gates + (r0 + r * q) * GH + u0;
  switch (s.cell) {
    case RnnCell::rnn_tanh: k.rnn_tanh_forward(n, g, h); break;
    case RnnCell::rnn_relu: k.rnn_relu_forward(n, g, h); break;
    case RnnCell::lstm: {
      const T* c_prev = (t == 0 ? s.c0 + (b + r) * H : s.extra + s.rm.row(t - 1, b + r) * H) + u0;
      k.lstm_forward(n, H, g, c_prev, c, h);
      break;
    }
    case RnnCell::gru: {
      const T* hp = t == 0 ? s.h0 + (b + r) * H : s.y + s.rm.row(t - 1, b) * H + r * q * H;
      k.gru_forward(n, H, g, s.extra + (r0 + r * q) * GH + u0, s.b_hh ? s.b_hh + 2 * H + u0 : nullptr, hp + u0, h);
      break;
    }
  }
}

// Step t's recurrent product for the block [b, b + m), slivers [s0, s1): onto the input projection (the GRU's
// hidden side kept apart, since r multiplies its n block).
template <class T>
void forward_product(const Seq<T>& s, int64_t t, int64_t b, int64_t m, int64_t s0, int64_t s1) {
  const int64_t H = s.H, GH = s.GH, q = s.rm.seq(), r0 = s.rm.row(t, b);
  const T* hp = t == 0 ? s.h0 + b * H : s.y + s.rm.row(t - 1, b) * H;
  const int64_t ldh = t == 0 ? H : q * H;
  if (s.cell == RnnCell::gru)
    panel_slivers(s.w, m, hp, ldh, T(0), s.extra + r0 * GH, q * GH, s0, s1);
  else
    panel_slivers(s.w, m, hp, ldh, T(1), s.gates + r0 * GH, q * GH, s0, s1);
}

// Forward through all steps for sequences [b, e) on this thread: per step the recurrent product of these rows,
// then their gate pass while the rows are still in cache. (Products worth splitting between threads go through
// forward_rows_team.)
template <class T>
void forward_rows(const Seq<T>& s, int64_t b, int64_t e) {
  const int64_t m = e - b, nsl = ceil_div(s.w.N, s.w.NR);
  for (int64_t t = 0; t < s.steps; ++t) {
    forward_product(s, t, b, m, int64_t{0}, nsl);
    for (int64_t r = 0; r < m; ++r) forward_gates(s, t, b, r, int64_t{0}, s.H);
  }
}

// Hidden units a thread's share of the gate pass starts and ends on: whole multiples of every vector width.
constexpr int64_t kGateUnitChunk = 64;

// forward_rows for sequences too few to split between the threads (one sequence, batch-1 inference): one team
// for all the steps, each thread its share of every step's product and then of its gate pass (hidden units).
// Where the gate blocks are whole slivers (H a multiple of NR), a thread computes the product columns of its
// own units (their slivers in every gate block), so one barrier a step suffices; otherwise its share of the
// slivers, a barrier, its units' gate pass, a barrier. A fork and join per product, with the gate pass on one
// thread, ran an LSTM of 256 units over 64 steps at 0.92x PyTorch's time on 2 threads (Zen 4). Each product
// element and each unit is computed by the same kernel call as in forward_rows, so the bits do not depend on
// the team.
template <class T>
void forward_rows_team(const Seq<T>& s, int64_t b, int64_t e, int team_threads) {
  const int64_t m = e - b, NR = s.w.NR, nsl = ceil_div(s.w.N, NR), blocks = s.GH / s.H;
  const int64_t own_chunk = std::lcm(NR, kGateUnitChunk);
  const bool own_columns = s.H % NR == 0 && ceil_div(s.H, own_chunk) >= team_threads;
  const int64_t chunk = own_columns ? own_chunk : kGateUnitChunk, chunks = ceil_div(s.H, chunk);
#if defined(NNX_OPENMP)
#pragma omp parallel num_threads(team_threads)
#endif
  {
#if defined(NNX_OPENMP)
    const int team = omp_get_num_threads(), tid = omp_get_thread_num();
#else
    const int team = 1, tid = 0;
#endif
    const int64_t s0 = nsl * tid / team, s1 = nsl * (tid + 1) / team;
    const int64_t u0 = std::min(s.H, chunks * tid / team * chunk);
    const int64_t u1 = std::min(s.H, chunks * (tid + 1) / team * chunk);
    for (int64_t t = 0; t < s.steps; ++t) {
      if (own_columns) {
        for (int64_t g = 0; g < blocks && u0 < u1; ++g)
          forward_product(s, t, b, m, (g * s.H + u0) / NR, (g * s.H + u1) / NR);
      } else {
        forward_product(s, t, b, m, s0, s1);
#if defined(NNX_OPENMP)
#pragma omp barrier
#endif
      }
      if (u0 < u1)
        for (int64_t r = 0; r < m; ++r) forward_gates(s, t, b, r, u0, u1);
#if defined(NNX_OPENMP)
#pragma omp barrier
#endif
    }
  }
}

// Backward through all steps, steps - 1 down to 0, for sequences [b, e): per step the gate gradients of
// these rows (overwriting their activations), then dh of step t - 1 = pass + dG_t W_hh. carry and pass
// swap roles every step; the caller finds dh0 in the one the parity of `steps` says.
template <class T>
void backward_rows(const Seq<T>& s, const T* dy, T* carry, T* pass, T* dc, int64_t b, int64_t e) {
  const int64_t H = s.H, GH = s.GH, m = e - b, q = s.rm.seq();
  const RnnUkernels<T>& k = *s.k;
  const bool gru = s.cell == RnnCell::gru;
  T* cr = carry + b * H;
  T* pr = pass + b * H;
  const int64_t DW = Layout::bias_row_width(s.cell, H);
  if (s.dbias) std::fill(s.dbias + b * DW, s.dbias + e * DW, T(0));
  for (int64_t t = s.steps - 1; t >= 0; --t) {
    const int64_t r0 = s.rm.row(t, b);
    T* gt = s.gates + r0 * GH;
    T* ght = (gru ? s.extra : s.gates) + r0 * GH;  // the hidden-side gate gradients
    for (int64_t r = 0; r < m; ++r) {
      const int64_t n = b + r, row = r0 + r * q;
      T* g = gt + r * q * GH;
      T* cin = cr + r * H;
      T* cout = pr + r * H;
      if (!row_active(s.lengths, n, t)) {  // a step this sequence does not take: dh (and dc) pass through
        std::fill(g, g + GH, T(0));
        if (gru) std::fill(ght + r * q * GH, ght + r * q * GH + GH, T(0));
        std::memcpy(cout, cin, sizeof(T) * H);
        continue;
      }
      const T* dyr = dy + row * H;
      const int64_t prev = t == 0 ? -1 : s.rm.row(t - 1, n);
      const T* hp = prev < 0 ? s.h0 + n * H : s.y + prev * H;
      T* db = s.dbias ? s.dbias + n * DW : nullptr;
      switch (s.cell) {
        case RnnCell::rnn_tanh: k.rnn_tanh_backward(H, s.y + row * H, dyr, cin, g, cout, db); break;
        case RnnCell::rnn_relu: k.rnn_relu_backward(H, s.y + row * H, dyr, cin, g, cout, db); break;
        case RnnCell::lstm: {
          const T* c = s.extra + row * H;
          k.lstm_backward(H, H, g, prev < 0 ? s.c0 + n * H : s.extra + prev * H, c, dyr, cin, dc + n * H, cout, db);
          break;
        }
        case RnnCell::gru: k.gru_backward(H, H, g, ght + r * q * GH, hp, dyr, cin, cout, db); break;
      }
    }
    // dh of step t - 1 (at t == 0: dh0, which only pass + this product gives; skipped when not wanted)
    if (t > 0 || s.need_dh0) rows_times_panel(s.w, m, ght, q * GH, T(1), pr, H, s.step_threads);
    std::swap(cr, pr);
  }
}

}  // namespace

int rnn_gate_count(RnnCell cell) {
  switch (cell) {
    case RnnCell::lstm: return 4;
    case RnnCell::gru: return 3;
    default: return 1;
  }
}

int64_t rnn_workspace_size(RnnCell cell, int64_t steps, int64_t N, int64_t H) {
  return Layout(cell, steps, N, H).total;
}

template <class T>
const RnnUkernels<T>& rnn_ukernels() {
  static const IsaTable<RnnUkernels<T>> table(
      IsaFills<RnnUkernels<T>>{rnn_ukernels_fill_portable<T>, NNX_X86_FILL(rnn_ukernels_fill_avx2<T>),
                               NNX_X86_FILL(rnn_ukernels_fill_avx512<T>)});
  return table.active();
}

template <class T>
void rnn_forward(RnnCell cell, int64_t steps, int64_t N, int64_t I, int64_t H, const T* x, const T* h0,
                 const T* c0, const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh, const int64_t* lengths,
                 T* y, T* h_n, T* c_n, T* ws, int nthreads, bool batch_first) {
  if (steps <= 0 || N <= 0 || H <= 0) return;
  const RowMap rm{steps, N, batch_first};
  const Layout L(cell, steps, N, H);
  const int64_t GH = rnn_gate_count(cell) * H, R = steps * N;
  const bool gru = cell == RnnCell::gru, lstm = cell == RnnCell::lstm;
  T* gates = ws + L.gates;
  T* extra = ws + L.extra;

  // Input projection of all steps, gates = x W_ih^T + bias. RNN and LSTM add both biases here (their sum is
  // all the cell sees), the GRU those of its r and z blocks; its b_hn goes with the hidden side, where r
  // multiplies it (the step kernel adds it).
  Epilogue<T> ep_x;
  if (b_ih || b_hh) {
    T* bias = ws + L.bias;
    const int64_t hh_end = gru ? 2 * H : GH;  // the columns of b_hh added here
    for (int64_t j = 0; j < GH; ++j) bias[j] = (b_ih ? b_ih[j] : T(0)) + (b_hh && j < hh_end ? b_hh[j] : T(0));
    ep_x.bias = bias;
  }
  // In tiles for any number of rows (gemm_tiled), so that a sequence alone has the bits it has in a batch.
  gemm_tiled<T>(R, GH, I, T(1), x, I, 1, w_ih, 1, I, T(0), gates, GH, 1, nthreads, ep_x);

  const RnnUkernels<T>& k = rnn_ukernels<T>();
  // Per step gates += h_{t-1} W_hh^T: B(k, j) = W_hh(j, k).
  const PackedPanel<T> w = pack_panel(k, H, GH, w_hh, 1, H);
  const Grain seq_grain = sequences_grain(steps, GH, H);
  const Seq<T> s{cell, rm, steps, N, H, GH, h0, c0, b_hh, lengths, gates, extra, y, w, &k, nullptr, false,
                 step_product_threads(N, seq_grain, nthreads, w.MR)};
  const int team = s.step_threads > 1 ? parallel_for_ranges(ceil_div(w.N, w.NR), panel_grain(w, N), s.step_threads)
                                     : 1;
  if (team > 1)
    forward_rows_team(s, int64_t{0}, N, team);
  else
    parallel_for(N, seq_grain, nthreads, [&](int64_t b, int64_t e) { forward_rows(s, b, e); }, w.MR);
  for (int64_t n = 0; n < N; ++n) {  // h_n, c_n: the states after each row's last step
    const int64_t last = (lengths ? lengths[n] : steps) - 1;
    std::memcpy(h_n + n * H, y + rm.row(last, n) * H, sizeof(T) * H);
    if (lstm && c_n) std::memcpy(c_n + n * H, extra + rm.row(last, n) * H, sizeof(T) * H);
  }
}

template <class T>
void rnn_backward(RnnCell cell, int64_t steps, int64_t N, int64_t I, int64_t H, const T* x, const T* h0,
                  const T* c0, const T* w_ih, const T* w_hh, const int64_t* lengths, const T* y, const T* dy,
                  const T* dh_n, const T* dc_n, T* ws, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih,
                  T* db_hh, int nthreads, bool batch_first) {
  if (steps <= 0 || N <= 0 || H <= 0) return;
  const RowMap rm{steps, N, batch_first};
  const Layout L(cell, steps, N, H);
  const int64_t GH = rnn_gate_count(cell) * H, NH = N * H, R = steps * N;
  const bool gru = cell == RnnCell::gru, lstm = cell == RnnCell::lstm;
  T* gates = ws + L.gates;
  T* extra = ws + L.extra;
  T* carry = ws + L.carry;  // dh arriving from step t + 1
  T* pass = carry + NH;     // dh leaving for step t - 1
  T* dc = ws + L.dc;
  if (dh_n) std::memcpy(carry, dh_n, sizeof(T) * NH);
  else std::fill(carry, carry + NH, T(0));
  if (lstm) {
    if (dc_n) std::memcpy(dc, dc_n, sizeof(T) * NH);
    else std::fill(dc, dc + NH, T(0));
  }

  const RnnUkernels<T>& k = rnn_ukernels<T>();
  // Per step dh_{t-1} += dG_t W_hh: B = W_hh as stored. The Seq's y is read only.
  T* dbias = db_ih || db_hh ? ws + L.dbias : nullptr;
  const PackedPanel<T> w = pack_panel(k, GH, H, w_hh, H, 1);
  const Grain seq_grain = sequences_grain(steps, GH, H);
  const Seq<T> s{cell, rm, steps, N, H, GH, h0, c0, nullptr, lengths, gates, extra, const_cast<T*>(y), w, &k, dbias,
                 dh0 != nullptr, step_product_threads(N, seq_grain, nthreads, w.MR)};
  parallel_for(N, seq_grain, nthreads,
               [&](int64_t b, int64_t e) { backward_rows(s, dy, carry, pass, dc, b, e); }, w.MR);
  const T* dh_first = steps % 2 == 0 ? carry : pass;  // each step swapped the two
  if (dh0) std::memcpy(dh0, dh_first, sizeof(T) * NH);
  if (lstm && dc0) std::memcpy(dc0, dc, sizeof(T) * NH);

  // Products over all steps at once: K is never split, so each sum keeps one order.
  const T* dgh = gru ? extra : gates;  // the hidden-side gate gradients (the gates' own for RNN and LSTM)
  if (dx) gemm<T>(R, I, GH, T(1), gates, GH, 1, w_ih, I, 1, T(0), dx, I, 1, nthreads);   // dx = dG W_ih
  weight_gradients(rm, I, H, GH, gates, dgh, x, h0, y, dw_ih, dw_hh, nthreads);
  if (dbias) bias_gradients(cell, N, H, dbias, db_ih, db_hh);
}

template <class T>
const char* rnn_ukernel_name() {
  return rnn_ukernels<T>().name;
}

#define NNX_RNN_INSTANTIATE(T)                                                                                   \
  template const RnnUkernels<T>& rnn_ukernels<T>();                                                              \
  template void rnn_forward<T>(RnnCell, int64_t, int64_t, int64_t, int64_t, const T*, const T*, const T*,        \
                               const T*, const T*, const T*, const T*, const int64_t*, T*, T*, T*, T*, int,      \
                               bool);                                                                             \
  template void rnn_backward<T>(RnnCell, int64_t, int64_t, int64_t, int64_t, const T*, const T*, const T*,       \
                                const T*, const T*, const int64_t*, const T*, const T*, const T*, const T*, T*,  \
                                T*, T*, T*, T*, T*, T*, T*, int, bool);                                          \
  template const char* rnn_ukernel_name<T>();
NNX_RNN_INSTANTIATE(float)
NNX_RNN_INSTANTIATE(double)
#undef NNX_RNN_INSTANTIATE

}  // namespace nnx
