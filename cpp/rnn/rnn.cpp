// Drivers of the recurrent family (contract in rnn.h): GEMMs from gemm/gemm.h for every product, the
// active ISA's step kernels (rnn_ukernels.h) for the element-wise pass of each step, split across rows.
#include "rnn/rnn.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "common/isa_table.h"
#include "common/threads.h"
#include "gemm/gemm.h"
#include "rnn/rnn_ukernels.h"

namespace nnx {

namespace {

// Workspace segments, in elements, each rounded up to a 64-byte multiple so the next starts on a cache
// line (the caller's buffer itself is aligned by NumPy to at least 16 bytes).
struct Layout {
  int64_t bias, gates, extra, carry, dc, wt, total;
  Layout(RnnCell cell, int64_t steps, int64_t N, int64_t H) {
    const int64_t GH = rnn_gate_count(cell) * H;
    auto seg = [](int64_t n) { return (n + 15) / 16 * 16; };
    bias = 0;
    gates = bias + seg(GH);
    // LSTM: the cell states of every step; GRU: the hidden-side gate blocks of every step.
    const int64_t extra_n = cell == RnnCell::lstm ? steps * N * H : cell == RnnCell::gru ? steps * N * GH : 0;
    extra = gates + seg(steps * N * GH);
    carry = extra + seg(extra_n);
    dc = carry + seg(2 * N * H);
    wt = dc + seg(cell == RnnCell::lstm ? N * H : 0);
    total = wt + seg(GH * H);
  }
};

// Rows of one step's element-wise pass worth a thread: a gate element costs about four passes over
// memory (loads, stores and an exp or tanh), so one thread should get at least a quarter of the
// element-wise grain.
Grain step_rows_grain(int64_t GH) { return Grain{std::max<int64_t>(1, kElementwiseGrain.units / (4 * GH))}; }

// Columns of a bias-gradient sum worth a thread (each column is a sum over all steps x rows).
constexpr Grain kColsumColumns{64};

template <class T>
void column_sums(const T* g, int64_t rows, int64_t cols, int64_t ld, T* out, int nthreads) {
  // Each column is summed over the rows in row order, whichever thread owns it: thread-count independent.
  const Grain grain{std::max<int64_t>(kColsumColumns.units, kElementwiseGrain.units / std::max<int64_t>(rows, 1))};
  parallel_for(cols, grain, nthreads, [&](int64_t b, int64_t e) {
    std::fill(out + b, out + e, T(0));
    for (int64_t r = 0; r < rows; ++r) {
      const T* gr = g + r * ld;
      for (int64_t j = b; j < e; ++j) out[j] += gr[j];
    }
  }, 16);
}

// c (N x GH, row-major) = beta c + h W_hh^T (+ bias per gate unit), computed as its transpose
// c^T = W_hh h^T: with the batch as the GEMM's narrow N side, the micro-kernel reads W_hh in place and
// only the small h is packed, where the direct form would repack all of W_hh at every step.
template <class T>
void recurrent_product(int64_t N, int64_t GH, int64_t H, const T* h, const T* w_hh, T beta, T* c, int nthreads,
                       Epilogue<T> ep) {
  ep.bias_per_row = true;
  gemm<T>(GH, N, H, T(1), w_hh, H, 1, h, 1, H, beta, c, 1, GH, nthreads, ep);
}

// out (cols x rows) = in^T, in tiles that stay in L1.
template <class T>
void transpose(int64_t rows, int64_t cols, const T* in, T* out) {
  constexpr int64_t B = 32;
  for (int64_t i0 = 0; i0 < rows; i0 += B)
    for (int64_t j0 = 0; j0 < cols; j0 += B)
      for (int64_t j = j0; j < std::min(cols, j0 + B); ++j)
        for (int64_t i = i0; i < std::min(rows, i0 + B); ++i) out[j * rows + i] = in[i * cols + j];
}

inline bool row_active(const int64_t* lengths, int64_t n, int64_t t) { return lengths == nullptr || t < lengths[n]; }

// h_n / c_n: the state after each row's last step.
template <class T>
void gather_last(const T* states, const int64_t* lengths, int64_t steps, int64_t N, int64_t H, T* out) {
  for (int64_t n = 0; n < N; ++n) {
    const int64_t last = (lengths ? lengths[n] : steps) - 1;
    std::memcpy(out + n * H, states + (last * N + n) * H, sizeof(T) * H);
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
      IsaFills<RnnUkernels<T>>{rnn_ukernels_fill_portable<T>, NNX_X86_FILL(rnn_ukernels_fill_avx2<T>)});
  return table.active();
}

template <class T>
void rnn_forward(RnnCell cell, int64_t steps, int64_t N, int64_t I, int64_t H, const T* x, const T* h0,
                 const T* c0, const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh, const int64_t* lengths,
                 T* y, T* h_n, T* c_n, T* ws, int nthreads) {
  if (steps <= 0 || N <= 0 || H <= 0) return;
  const Layout L(cell, steps, N, H);
  const int64_t GH = rnn_gate_count(cell) * H, NH = N * H;
  const bool gru = cell == RnnCell::gru, lstm = cell == RnnCell::lstm;
  const bool elman = !gru && !lstm;
  const auto& k = rnn_ukernels<T>();
  T* gates = ws + L.gates;
  T* extra = ws + L.extra;

  // Input projection of all steps. RNN and LSTM add both biases here (their sum is all the cell sees);
  // the GRU's b_hh goes with the hidden side, where r multiplies its n block.
  Epilogue<T> ep_x;
  if (b_ih || (b_hh && !gru)) {
    T* bias = ws + L.bias;
    for (int64_t j = 0; j < GH; ++j) bias[j] = (b_ih ? b_ih[j] : T(0)) + (b_hh && !gru ? b_hh[j] : T(0));
    ep_x.bias = bias;
  }
  T* proj = elman ? y : gates;  // the Elman cell's gate block is its output
  gemm<T>(steps * N, GH, I, T(1), x, I, 1, w_ih, 1, I, T(0), proj, GH, 1, nthreads, ep_x);
  Epilogue<T> ep_h;
  ep_h.bias = gru ? b_hh : nullptr;

  const Grain rows = step_rows_grain(GH);
  for (int64_t t = 0; t < steps; ++t) {
    const T* hprev = t == 0 ? h0 : y + (t - 1) * NH;
    T* yt = y + t * NH;
    T* gt = gates + t * N * GH;
    if (gru) {
      T* ght = extra + t * N * GH;
      recurrent_product(N, GH, H, hprev, w_hh, T(0), ght, nthreads, ep_h);
      parallel_for(N, rows, nthreads, [&](int64_t b, int64_t e) {
        for (int64_t n = b; n < e; ++n) {
          if (row_active(lengths, n, t)) k.gru_forward(H, gt + n * GH, ght + n * GH, hprev + n * H, yt + n * H);
          else std::fill(yt + n * H, yt + (n + 1) * H, T(0));
        }
      });
    } else {
      T* acc = elman ? yt : gt;
      recurrent_product(N, GH, H, hprev, w_hh, T(1), acc, nthreads, Epilogue<T>());
      const T* cprev = t == 0 ? c0 : extra + (t - 1) * NH;
      T* ct = extra + t * NH;
      parallel_for(N, rows, nthreads, [&](int64_t b, int64_t e) {
        for (int64_t n = b; n < e; ++n) {
          if (!row_active(lengths, n, t)) {
            std::fill(yt + n * H, yt + (n + 1) * H, T(0));
            if (lstm) std::fill(ct + n * H, ct + (n + 1) * H, T(0));
          } else if (lstm) {
            k.lstm_forward(H, gt + n * GH, cprev + n * H, ct + n * H, yt + n * H);
          } else if (cell == RnnCell::rnn_tanh) {
            k.rnn_tanh_forward(H, yt + n * H);
          } else {
            k.rnn_relu_forward(H, yt + n * H);
          }
        }
      });
    }
  }
  gather_last(y, lengths, steps, N, H, h_n);
  if (lstm && c_n) gather_last(extra, lengths, steps, N, H, c_n);
}

template <class T>
void rnn_backward(RnnCell cell, int64_t steps, int64_t N, int64_t I, int64_t H, const T* x, const T* h0,
                  const T* c0, const T* w_ih, const T* w_hh, const int64_t* lengths, const T* y, const T* dy,
                  const T* dh_n, const T* dc_n, T* ws, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih,
                  T* db_hh, int nthreads) {
  if (steps <= 0 || N <= 0 || H <= 0) return;
  const Layout L(cell, steps, N, H);
  const int64_t GH = rnn_gate_count(cell) * H, NH = N * H;
  const bool gru = cell == RnnCell::gru, lstm = cell == RnnCell::lstm;
  const auto& k = rnn_ukernels<T>();
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
  // The gradient of the hidden-side gate block: the GRU keeps its own, the others share the gates'.
  T* dgh = gru ? extra : gates;
  T* wt = ws + L.wt;
  transpose(GH, H, w_hh, wt);

  const Grain rows = step_rows_grain(GH);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* hprev = t == 0 ? h0 : y + (t - 1) * NH;
    const T* yt = y + t * NH;
    const T* dyt = dy + t * NH;
    T* gt = gates + t * N * GH;
    T* ght = dgh + t * N * GH;
    parallel_for(N, rows, nthreads, [&](int64_t b, int64_t e) {
      for (int64_t n = b; n < e; ++n) {
        const int64_t o = n * H;
        if (!row_active(lengths, n, t)) {  // dh (and dc) pass through a step the row does not take
          std::fill(gt + n * GH, gt + (n + 1) * GH, T(0));
          if (gru) std::fill(ght + n * GH, ght + (n + 1) * GH, T(0));
          std::memcpy(pass + o, carry + o, sizeof(T) * H);
          continue;
        }
        switch (cell) {
          case RnnCell::rnn_tanh: k.rnn_tanh_backward(H, yt + o, dyt + o, carry + o, gt + n * GH, pass + o); break;
          case RnnCell::rnn_relu: k.rnn_relu_backward(H, yt + o, dyt + o, carry + o, gt + n * GH, pass + o); break;
          case RnnCell::lstm: {
            const T* cprev = t == 0 ? c0 + o : extra + (t - 1) * NH + o;
            k.lstm_backward(H, gt + n * GH, cprev, extra + t * NH + o, dyt + o, carry + o, dc + o, pass + o);
            break;
          }
          case RnnCell::gru: k.gru_backward(H, gt + n * GH, ght + n * GH, hprev + o, dyt + o, carry + o, pass + o); break;
        }
      }
    });
    // pass^T (H x N) += W_hh^T dG_t^T, for the same reason as recurrent_product (on the copy wt = W_hh^T,
    // whose rows the micro-kernel then reads contiguously).
    gemm<T>(H, N, GH, T(1), wt, GH, 1, ght, 1, GH, T(1), pass, 1, H, nthreads);
    std::swap(carry, pass);
  }
  if (dh0) std::memcpy(dh0, carry, sizeof(T) * NH);
  if (lstm && dc0) std::memcpy(dc0, dc, sizeof(T) * NH);

  // Products over all steps at once: K = steps * N is never split, so each sum keeps one order.
  const int64_t R = steps * N;
  if (dx) gemm<T>(R, I, GH, T(1), gates, GH, 1, w_ih, I, 1, T(0), dx, I, 1, nthreads);
  // The weight gradients are computed transposed, dW^T = x^T dG: the wide dG is then the packed B operand,
  // where dW = dG^T x would read it in place with a stride of G*H elements between consecutive k.
  if (dw_ih) gemm<T>(I, GH, R, T(1), x, 1, I, gates, GH, 1, T(0), dw_ih, 1, I, nthreads);
  if (dw_hh) {
    gemm<T>(H, GH, N, T(1), h0, 1, H, dgh, GH, 1, T(0), dw_hh, 1, H, nthreads);
    if (steps > 1)
      gemm<T>(H, GH, R - N, T(1), y, 1, H, dgh + N * GH, GH, 1, T(1), dw_hh, 1, H, nthreads);
  }
  if (db_ih) column_sums(gates, R, GH, GH, db_ih, nthreads);
  if (db_hh) {
    if (gru || !db_ih) column_sums(dgh, R, GH, GH, db_hh, nthreads);
    else std::memcpy(db_hh, db_ih, sizeof(T) * GH);
  }
}

template <class T>
const char* rnn_ukernel_name() {
  return rnn_ukernels<T>().name;
}

#define NNX_RNN_INSTANTIATE(T)                                                                                   \
  template const RnnUkernels<T>& rnn_ukernels<T>();                                                              \
  template void rnn_forward<T>(RnnCell, int64_t, int64_t, int64_t, int64_t, const T*, const T*, const T*,        \
                               const T*, const T*, const T*, const T*, const int64_t*, T*, T*, T*, T*, int);     \
  template void rnn_backward<T>(RnnCell, int64_t, int64_t, int64_t, int64_t, const T*, const T*, const T*,       \
                                const T*, const T*, const int64_t*, const T*, const T*, const T*, const T*, T*,  \
                                T*, T*, T*, T*, T*, T*, T*, int);                                                \
  template const char* rnn_ukernel_name<T>();
NNX_RNN_INSTANTIATE(float)
NNX_RNN_INSTANTIATE(double)
#undef NNX_RNN_INSTANTIATE

}  // namespace nnx
