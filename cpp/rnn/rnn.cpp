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

// Every per-step buffer is unit-major: a step's gate block is GH rows (gate g of unit u is row g*H + u) of
// N batch values, and the gate blocks of all steps sit side by side in one GH x (steps*N) matrix, so the
// input projection of all steps is one GEMM and each step's products write plain rows (the micro-kernel's
// contiguous store) of the batch's values. States are (H x N) per step. The element-wise kernels then run
// over the N contiguous values of one unit.
//
// Workspace segments, in elements, each rounded up to a 64-byte multiple so the next starts on a cache
// line (the caller's buffer itself is aligned by NumPy to at least 16 bytes).
struct Layout {
  int64_t bias, gates, extra, hs, h0t, c0t, carry, dc, dc_save, dyt, wt, total;
  Layout(RnnCell cell, int64_t steps, int64_t N, int64_t H) {
    const int64_t GH = rnn_gate_count(cell) * H, R = steps * N, HN = H * N;
    const bool lstm = cell == RnnCell::lstm;
    auto seg = [](int64_t n) { return (n + 15) / 16 * 16; };
    bias = 0;
    gates = bias + seg(GH);
    extra = gates + seg(GH * R);  // LSTM: the cell states of every step; GRU: the hidden-side gate blocks
    hs = extra + seg(lstm ? H * R : cell == RnnCell::gru ? GH * R : 0);
    h0t = hs + seg(H * R);
    c0t = h0t + seg(HN);
    carry = c0t + seg(lstm ? HN : 0);
    dc = carry + seg(2 * HN);
    dc_save = dc + seg(lstm ? HN : 0);
    dyt = dc_save + seg(lstm ? HN : 0);
    wt = dyt + seg(H * R);
    total = wt + seg(GH * H);
  }
};

// Units of one step's element-wise pass worth a thread: a gate value costs about four passes over memory
// (loads, stores and an exp or tanh), so one thread should get at least a quarter of the element-wise grain.
Grain step_units_grain(int64_t G, int64_t N) { return Grain{std::max<int64_t>(1, kElementwiseGrain.units / (4 * G * N))}; }

// Rows of a bias-gradient sum worth a thread.
constexpr Grain kRowSumRows{16};

// out[i] = sum of row i (n contiguous values), in 16 interleaved partial sums combined in a fixed order:
// vectorisable, and the same order for any thread count.
template <class T>
void row_sums(const T* g, int64_t rows, int64_t n, int64_t ld, T* out, int nthreads) {
  constexpr int L = 16;
  parallel_for(rows, kRowSumRows, nthreads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T* r = g + i * ld;
      T acc[L] = {};
      int64_t j = 0;
      for (; j + L <= n; j += L)
        for (int l = 0; l < L; ++l) acc[l] += r[j + l];
      for (int l = 0; j < n; ++j, ++l) acc[l] += r[j];
      for (int w = L / 2; w >= 1; w /= 2)
        for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
      out[i] = acc[0];
    }
  });
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

inline bool any_inactive(const int64_t* lengths, int64_t N, int64_t t) {
  if (!lengths) return false;
  for (int64_t n = 0; n < N; ++n)
    if (t >= lengths[n]) return true;
  return false;
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
  const int G = rnn_gate_count(cell);
  const int64_t GH = G * H, HN = H * N, R = steps * N, gs = H * R;
  const bool gru = cell == RnnCell::gru, lstm = cell == RnnCell::lstm;
  const auto& k = rnn_ukernels<T>();
  T* gates = ws + L.gates;
  T* extra = ws + L.extra;
  T* hs = ws + L.hs;
  T* h0t = ws + L.h0t;
  T* c0t = ws + L.c0t;
  transpose(N, H, h0, h0t);
  if (lstm) transpose(N, H, c0, c0t);

  // Input projection of all steps, gates = W_ih x^T. RNN and LSTM add both biases here (their sum is all
  // the cell sees); the GRU's b_hh goes with the hidden side, where r multiplies its n block.
  Epilogue<T> ep_x;
  ep_x.bias_per_row = true;
  if (b_ih || (b_hh && !gru)) {
    T* bias = ws + L.bias;
    for (int64_t j = 0; j < GH; ++j) bias[j] = (b_ih ? b_ih[j] : T(0)) + (b_hh && !gru ? b_hh[j] : T(0));
    ep_x.bias = bias;
  }
  gemm<T>(GH, R, I, T(1), w_ih, I, 1, x, 1, I, T(0), gates, R, 1, nthreads, ep_x);
  Epilogue<T> ep_h;
  ep_h.bias_per_row = true;
  ep_h.bias = gru ? b_hh : nullptr;

  const Grain units = step_units_grain(G, N);
  for (int64_t t = 0; t < steps; ++t) {
    const T* hp = t == 0 ? h0t : hs + (t - 1) * HN;
    T* ht = hs + t * HN;
    T* gt = gates + t * N;
    // The recurrent product W_hh h_{t-1}: W_hh is read in place (the batch is the narrow side), only the
    // small h is packed.
    if (gru) {
      T* ght = extra + t * N;
      gemm<T>(GH, N, H, T(1), w_hh, H, 1, hp, N, 1, T(0), ght, R, 1, nthreads, ep_h);
      parallel_for(H, units, nthreads, [&](int64_t b, int64_t e) {
        for (int64_t u = b; u < e; ++u) k.gru_forward(N, gs, gt + u * R, ght + u * R, hp + u * N, ht + u * N);
      });
    } else {
      gemm<T>(GH, N, H, T(1), w_hh, H, 1, hp, N, 1, T(1), gt, R, 1, nthreads);
      const T* cp = t == 0 ? c0t : extra + (t - 1) * HN;
      T* ct = extra + t * HN;
      parallel_for(H, units, nthreads, [&](int64_t b, int64_t e) {
        for (int64_t u = b; u < e; ++u) {
          if (lstm) k.lstm_forward(N, gs, gt + u * R, cp + u * N, ct + u * N, ht + u * N);
          else if (cell == RnnCell::rnn_tanh) k.rnn_tanh_forward(N, gt + u * R, ht + u * N);
          else k.rnn_relu_forward(N, gt + u * R, ht + u * N);
        }
      });
    }
    if (any_inactive(lengths, N, t)) {  // outputs (and cell states) of finished sequences are 0
      for (int64_t n = 0; n < N; ++n) {
        if (row_active(lengths, n, t)) continue;
        for (int64_t u = 0; u < H; ++u) ht[u * N + n] = T(0);
        if (lstm)
          for (int64_t u = 0; u < H; ++u) extra[t * HN + u * N + n] = T(0);
      }
    }
    transpose(H, N, ht, y + t * HN);
  }
  for (int64_t n = 0; n < N; ++n) {  // h_n, c_n: the states after each row's last step
    const int64_t last = (lengths ? lengths[n] : steps) - 1;
    std::memcpy(h_n + n * H, y + (last * N + n) * H, sizeof(T) * H);
    if (lstm && c_n)
      for (int64_t u = 0; u < H; ++u) c_n[n * H + u] = extra[last * HN + u * N + n];
  }
}

template <class T>
void rnn_backward(RnnCell cell, int64_t steps, int64_t N, int64_t I, int64_t H, const T* x, const T* h0,
                  const T* c0, const T* w_ih, const T* w_hh, const int64_t* lengths, const T* y, const T* dy,
                  const T* dh_n, const T* dc_n, T* ws, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih,
                  T* db_hh, int nthreads) {
  if (steps <= 0 || N <= 0 || H <= 0) return;
  const Layout L(cell, steps, N, H);
  const int G = rnn_gate_count(cell);
  const int64_t GH = G * H, HN = H * N, R = steps * N, gs = H * R;
  const bool gru = cell == RnnCell::gru, lstm = cell == RnnCell::lstm;
  const auto& k = rnn_ukernels<T>();
  T* gates = ws + L.gates;
  T* extra = ws + L.extra;
  const T* hs = ws + L.hs;
  const T* h0t = ws + L.h0t;
  const T* c0t = ws + L.c0t;
  T* carry = ws + L.carry;  // dh arriving from step t + 1
  T* pass = carry + HN;     // dh leaving for step t - 1
  T* dc = ws + L.dc;
  T* dc_save = ws + L.dc_save;
  T* dyt = ws + L.dyt;
  T* wt = ws + L.wt;  // W_hh^T, so the dh product reads contiguous rows
  transpose(GH, H, w_hh, wt);
  for (int64_t t = 0; t < steps; ++t) transpose(N, H, dy + t * HN, dyt + t * HN);
  if (dh_n) transpose(N, H, dh_n, carry);
  else std::fill(carry, carry + HN, T(0));
  if (lstm) {
    if (dc_n) transpose(N, H, dc_n, dc);
    else std::fill(dc, dc + HN, T(0));
  }
  // The gradient of the hidden-side gate block: the GRU keeps its own, the others share the gates'.
  T* dgh = gru ? extra : gates;

  const Grain units = step_units_grain(G, N);
  for (int64_t t = steps - 1; t >= 0; --t) {
    const T* hp = t == 0 ? h0t : hs + (t - 1) * HN;
    const T* ht = hs + t * HN;
    const T* dy_t = dyt + t * HN;
    T* gt = gates + t * N;
    T* ght = dgh + t * N;
    const bool masked = any_inactive(lengths, N, t);
    if (lstm && masked) std::memcpy(dc_save, dc, sizeof(T) * HN);
    parallel_for(H, units, nthreads, [&](int64_t b, int64_t e) {
      for (int64_t u = b; u < e; ++u) {
        const int64_t o = u * N;
        switch (cell) {
          case RnnCell::rnn_tanh: k.rnn_tanh_backward(N, ht + o, dy_t + o, carry + o, gt + u * R, pass + o); break;
          case RnnCell::rnn_relu: k.rnn_relu_backward(N, ht + o, dy_t + o, carry + o, gt + u * R, pass + o); break;
          case RnnCell::lstm: {
            const T* cp = t == 0 ? c0t + o : extra + (t - 1) * HN + o;
            k.lstm_backward(N, gs, gt + u * R, cp, extra + t * HN + o, dy_t + o, carry + o, dc + o, pass + o);
            break;
          }
          case RnnCell::gru: k.gru_backward(N, gs, gt + u * R, ght + u * R, hp + o, dy_t + o, carry + o, pass + o); break;
        }
      }
    });
    if (masked) {  // a step a row does not take: no gate gradient, dh (and dc) pass through unchanged
      for (int64_t n = 0; n < N; ++n) {
        if (row_active(lengths, n, t)) continue;
        for (int64_t i = 0; i < GH; ++i) gt[i * R + n] = T(0);
        if (gru)
          for (int64_t i = 0; i < GH; ++i) ght[i * R + n] = T(0);
        for (int64_t u = 0; u < H; ++u) pass[u * N + n] = carry[u * N + n];
        if (lstm)
          for (int64_t u = 0; u < H; ++u) dc[u * N + n] = dc_save[u * N + n];
      }
    }
    gemm<T>(H, N, GH, T(1), wt, GH, 1, ght, R, 1, T(1), pass, N, 1, nthreads);
    std::swap(carry, pass);
  }
  if (dh0) transpose(H, N, carry, dh0);
  if (lstm && dc0) transpose(H, N, dc, dc0);

  // Products over all steps at once: K is never split, so each sum keeps one order.
  if (dx) gemm<T>(I, R, GH, T(1), w_ih, 1, I, gates, R, 1, T(0), dx, 1, I, nthreads);  // dx^T = W_ih^T dG
  if (dw_ih) gemm<T>(GH, I, R, T(1), gates, R, 1, x, I, 1, T(0), dw_ih, I, 1, nthreads);
  if (dw_hh) {  // sum_t dG_t h_{t-1}: the h0 step, then the outputs of steps 0 .. steps - 2
    gemm<T>(GH, H, N, T(1), dgh, R, 1, h0, H, 1, T(0), dw_hh, H, 1, nthreads);
    if (steps > 1) gemm<T>(GH, H, R - N, T(1), dgh + N, R, 1, y, H, 1, T(1), dw_hh, H, 1, nthreads);
  }
  if (db_ih) row_sums(gates, GH, R, R, db_ih, nthreads);
  if (db_hh) {
    if (gru || !db_ih) row_sums(dgh, GH, R, R, db_hh, nthreads);
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
