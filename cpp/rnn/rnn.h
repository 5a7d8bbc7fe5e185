// Recurrent layers over a whole sequence: Elman RNN (tanh, relu), LSTM and GRU, forward and backward
// through time, one layer and one direction per call (stacks and reverse directions are composed by the
// caller). Gate order and parameter shapes are PyTorch's:
//   rnn:  h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)                       G = 1 gate block
//   lstm: [i f g o] = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh                       G = 4
//         i, f, o = sigmoid, g = tanh; c_t = f c_{t-1} + i g; h_t = o tanh(c_t)
//   gru:  [r z n]: r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z),                  G = 3
//         n = tanh(x_n + r h_n) with x_* = (W_ih x_t + b_ih)_*, h_* = (W_hh h_{t-1} + b_hh)_*;
//         h_t = (1 - z) n + z h_{t-1}
//
// Layout (all C-contiguous): x (steps, N, I) time-major, or (N, steps, I) with batch_first; h0, c0, h_n,
// c_n (N, H); y, dy (steps, N, H) or (N, steps, H) and dx like x; w_ih (G*H, I); w_hh (G*H, H); b_ih, b_hh
// (G*H) or null (no bias). Both layouts are read and written in place: the per-step matrices of the
// workspace take the rows in the order x has them, and a step's sequences are then 1 or `steps` rows apart.
//
// Forward: the input projection of all steps is one GEMM into the workspace (gates = x W_ih^T + bias, one
// row per sequence and step, as y). W_hh is packed once per call; each step is then the micro-kernel
// product h_{t-1} W_hh^T of each block of sequences accumulated onto that step's projection (GRU: into its
// own buffer, since r multiplies the hidden side alone), followed at once by the element-wise pass of the
// same rows (the ISA micro-kernels, rnn_ukernels.h) that applies the gate nonlinearities and the state
// update and keeps the activations for the backward.
//
// Backward through time, steps - 1 down to 0, per block of sequences: an element-wise pass turns dh, dc
// and the kept activations into the gate gradients (overwriting the activations), then the product
// dG_t W_hh (W_hh packed once per call) carries dh to step t - 1. After the loop: dx = dG W_ih is one GEMM
// over all steps, dW_ih and dW_hh one or two more (rnn.cpp, weight_gradients). The bias gradients are
// accumulated per sequence by the gate pass (over the steps, while each gradient is in a register) and
// summed over the sequences after the loop.
//
// lengths (N int64 values in [1, steps], or null = all `steps`): row n takes part in steps t < lengths[n]
// only. Its outputs y[t, n] at later steps are 0, its h_n / c_n are the states after its last step, and
// the backward carries dh_n / dc_n back to that step unchanged. Padded inputs must be finite.
//
// The workspace (rnn_workspace_size elements) is written by the forward and read, then overwritten, by
// the backward of the same call arguments; the caller keeps it between the two (training). The packed
// W_hh and the weight-gradient operands live in the calling thread's kWsMisc buffer (common/workspace.h)
// during a call.
// Results are bitwise identical for any `nthreads`: a sequence's rows depend on no other sequence's, and
// threads own whole sequences for a whole call (every element is the same micro-kernel sum wherever its
// rows fall); the GEMMs over all steps never split K; the bias sums add the sequences in their order.
#pragma once
#include <cstdint>

namespace nnx {

enum class RnnCell : int { rnn_tanh = 0, rnn_relu = 1, lstm = 2, gru = 3 };

// Gate blocks of H columns per cell: 1, 1, 4, 3.
int rnn_gate_count(RnnCell cell);

// Elements of T the workspace holds for one call of these sizes.
int64_t rnn_workspace_size(RnnCell cell, int64_t steps, int64_t N, int64_t H);

template <class T>
void rnn_forward(RnnCell cell, int64_t steps, int64_t N, int64_t I, int64_t H, const T* x, const T* h0,
                 const T* c0, const T* w_ih, const T* w_hh, const T* b_ih, const T* b_hh, const int64_t* lengths,
                 T* y, T* h_n, T* c_n, T* ws, int nthreads, bool batch_first = false);

// dy (steps, N, H); dh_n, dc_n may be null (zero). Outputs dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh may each
// be null (not needed); dc0 is used by the LSTM only. y is the forward's output.
template <class T>
void rnn_backward(RnnCell cell, int64_t steps, int64_t N, int64_t I, int64_t H, const T* x, const T* h0,
                  const T* c0, const T* w_ih, const T* w_hh, const int64_t* lengths, const T* y, const T* dy,
                  const T* dh_n, const T* dc_n, T* ws, T* dx, T* dh0, T* dc0, T* dw_ih, T* dw_hh, T* db_ih,
                  T* db_hh, int nthreads, bool batch_first = false);

template <class T>
const char* rnn_ukernel_name();

}  // namespace nnx
