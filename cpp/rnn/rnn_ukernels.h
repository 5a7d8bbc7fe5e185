// The per-ISA micro-kernel table of the recurrent family: the element-wise pass of one step over n
// contiguous values: the H hidden units of one sequence (rnn.cpp keeps every per-step buffer batch-major,
// one row per sequence, gate blocks H apart). Each entry is one template (rnn_generic.h) instantiated on
// a vector type: the portable twin on a one-lane scalar with std:: math, the AVX2 version on __m256 /
// __m256d with the polynomial exp / tanh of act/vecmath_avx2.h, the AVX-512 one on __m512 / __m512d with
// the same polynomials (act/vec_avx512.h).
//
// Arguments (each points at this sequence's n values of this step):
//   g     gate blocks, gs elements apart: preactivations in, activations out (forward); activations in,
//         gradients of the preactivations out (backward). The Elman cell's forward only reads g.
//   gh    GRU only: the hidden-side rows W_hh h_{t-1} (same layout); the forward adds b_hn to its n block
//         (the r and z parts of b_hh are in g already) and keeps that sum for the backward, which overwrites
//         the rows with the gradient of that block (differs from g's in the n row, which r multiplies)
//   dy    gradient of this step's output; carry: dh arriving from step t + 1; pass: the part of dh_{t-1}
//         that does not go through W_hh (0 for RNN and LSTM, dh z for the GRU), which the driver's GEMM
//         then accumulates onto
//   db    backward, null or this sequence's bias-gradient row: each gate gradient written to g (and, for
//         the GRU, to gh's n block) is also added to it, gate blocks gs apart (GRU: r, z, n of g, then the
//         n block of gh), while it is in a register; the driver sums the rows of all sequences after the
//         loop (rnn.cpp), so the bias gradients never re-read the gradients of every step from memory
//
// step_ukernel: the micro-kernel of the per-step recurrent product (ukernel.h's strided-A contract; A is
//   the step's N x K state rows, B the recurrent weight packed once per call by step_pack_b), with its tile
//   in step_blocking (mr, nr, kc). Null: the GEMM family's table of the same ISA is used. The batch is the
//   product's M, often 16..64 rows, which a tile of 8 rows (AVX-512's 32 registers hold 8 x 2 accumulators)
//   divides and GEMM's 6-row tile does not (32 rows: 6 tiles of 6 with 4 rows idle, or 4 full tiles of 8).
#pragma once
#include <cstdint>

#include "gemm/ukernel.h"

namespace nnx {

template <class T>
struct RnnUkernels {
  const char* name;
  // h = act(g) (relu: max(g, 0)); backward g = (dy + carry) act'(through h), pass = 0.
  void (*rnn_tanh_forward)(int64_t n, const T* g, T* h);
  void (*rnn_relu_forward)(int64_t n, const T* g, T* h);
  void (*rnn_tanh_backward)(int64_t n, const T* h, const T* dy, const T* carry, T* g, T* pass, T* db);
  void (*rnn_relu_backward)(int64_t n, const T* h, const T* dy, const T* carry, T* g, T* pass, T* db);
  // c = f c_prev + i g, h = o tanh(c). Backward: dc in (from step t + 1) and out (to step t - 1).
  void (*lstm_forward)(int64_t n, int64_t gs, T* g, const T* c_prev, T* c, T* h);
  void (*lstm_backward)(int64_t n, int64_t gs, T* g, const T* c_prev, const T* c, const T* dy, const T* carry, T* dc,
                        T* pass, T* db);
  // gh: W_hh h_{t-1} without bias; b_hn (null: none) is added to its n block, which keeps the sum.
  void (*gru_forward)(int64_t n, int64_t gs, T* g, T* gh, const T* b_hn, const T* h_prev, T* h);
  void (*gru_backward)(int64_t n, int64_t gs, T* g, T* gh, const T* h_prev, const T* dy, const T* carry, T* pass,
                       T* db);
  GemmBlocking step_blocking;
  GemmUkernelStridedA<T> step_ukernel;
  // The x86 tables pack with the GEMM's transposing pack (pack_transposed_x86.h), as their GEMM tables do: the
  // forward's B is W_hh transposed (B(k, j) = W_hh(j, k)), built from 8 x 8 blocks transposed in registers.
  // Element by element it had been an eighth of a batch-1 LSTM's forward (64 -> 256 over 64 steps, perf, Zen 4,
  // 1 thread), done on one thread while the other waited; that LSTM ran 1.12x / 1.25x faster without it (1 / 2
  // threads).
  GemmPackB<T> step_pack_b;
  // step_ukernel on one row (the same template with a 1-row tile; null where step_ukernel is): every element the
  // same multiply-add chain over the same packed panel, so the bits of the full tile. A tile of 8 rows repeats
  // the last row of a shorter block, 8 times the work for one sequence (batch-1 inference).
  GemmUkernelStridedA<T> step_ukernel_row;
};

// Fills of the one dispatch idiom (common/isa_table.h), each in rnn_ukernels_<isa>.cpp.
template <class T>
void rnn_ukernels_fill_portable(RnnUkernels<T>& table);
#if defined(NNX_X86)
template <class T>
void rnn_ukernels_fill_avx2(RnnUkernels<T>& table);
template <class T>
void rnn_ukernels_fill_avx512(RnnUkernels<T>& table);
#endif

// The table of the active ISA (looked up per call, so nnx.set_isa takes effect at once).
template <class T>
const RnnUkernels<T>& rnn_ukernels();

}  // namespace nnx
