// The element-wise step kernels of the recurrent family, written once against the vector interface of
// act/activation_generic.h (V: load/store, partial loads for ragged tails, add/sub/mul/div, select, exp, tanh)
// and instantiated per ISA in rnn_ukernels_<isa>.cpp. Each kernel handles H contiguous values (the hidden
// units of one sequence, see rnn_ukernels.h) whose gate blocks lie gs apart; a ragged tail is a partial
// vector, so every value sees the same arithmetic wherever it falls.
//
// Derivatives are taken through the kept activations: sigmoid' = s (1 - s), tanh' = 1 - t^2. The LSTM
// recomputes tanh(c_t) in the backward (one tanh per unit) instead of keeping it in the workspace.
#pragma once
#include <cstdint>

#include "activation/activation_generic.h"
#include "rnn/rnn_ukernels.h"

namespace nnx {
namespace rnn_generic {

using act_generic::load_part;
using act_generic::store_part;
using act_generic::sigmoid;

// db += d over the lanes of one vector (the bias-gradient row of this sequence; db null: not wanted).
template <class V>
inline void accumulate(typename V::T* db, int64_t j, typename V::R d, int64_t n) {
  if (db) store_part<V>(db + j, V::add(load_part<V>(db + j, n, 0), d), n);
}

template <class V>
void rnn_tanh_forward(int64_t H, const typename V::T* g, typename V::T* y) {
  for (int64_t j = 0; j < H; j += V::W) store_part<V>(y + j, V::tanh(load_part<V>(g + j, H - j, 0)), H - j);
}

template <class V>
void rnn_relu_forward(int64_t H, const typename V::T* g, typename V::T* y) {
  // max(0, v): an unordered pair returns the second operand, so a NaN stays NaN.
  for (int64_t j = 0; j < H; j += V::W)
    store_part<V>(y + j, V::max(V::zero(), load_part<V>(g + j, H - j, 0)), H - j);
}

template <class V>
void rnn_tanh_backward(int64_t H, const typename V::T* y, const typename V::T* dy, const typename V::T* carry,
                       typename V::T* g, typename V::T* pass, typename V::T* db) {
  const auto one = V::set1(1);
  for (int64_t j = 0; j < H; j += V::W) {
    const int64_t n = H - j;
    auto v = load_part<V>(y + j, n, 0);
    auto dh = V::add(load_part<V>(dy + j, n, 0), load_part<V>(carry + j, n, 0));
    auto d = V::mul(dh, V::sub(one, V::mul(v, v)));
    store_part<V>(g + j, d, n);
    accumulate<V>(db, j, d, n);
    store_part<V>(pass + j, V::zero(), n);
  }
}

template <class V>
void rnn_relu_backward(int64_t H, const typename V::T* y, const typename V::T* dy, const typename V::T* carry,
                       typename V::T* g, typename V::T* pass, typename V::T* db) {
  for (int64_t j = 0; j < H; j += V::W) {
    const int64_t n = H - j;
    auto v = load_part<V>(y + j, n, 0);
    auto dh = V::add(load_part<V>(dy + j, n, 0), load_part<V>(carry + j, n, 0));
    auto d = V::select(V::gt(v, V::zero()), dh, V::zero());
    store_part<V>(g + j, d, n);
    accumulate<V>(db, j, d, n);
    store_part<V>(pass + j, V::zero(), n);
  }
}

template <class V>
void lstm_forward(int64_t H, int64_t gs, typename V::T* g, const typename V::T* c_prev, typename V::T* c, typename V::T* h) {
  for (int64_t j = 0; j < H; j += V::W) {
    const int64_t n = H - j;
    auto i = sigmoid<V>(load_part<V>(g + j, n, 0));
    auto f = sigmoid<V>(load_part<V>(g + gs + j, n, 0));
    auto z = V::tanh(load_part<V>(g + 2 * gs + j, n, 0));
    auto o = sigmoid<V>(load_part<V>(g + 3 * gs + j, n, 0));
    auto cv = V::add(V::mul(f, load_part<V>(c_prev + j, n, 0)), V::mul(i, z));
    store_part<V>(g + j, i, n);
    store_part<V>(g + gs + j, f, n);
    store_part<V>(g + 2 * gs + j, z, n);
    store_part<V>(g + 3 * gs + j, o, n);
    store_part<V>(c + j, cv, n);
    store_part<V>(h + j, V::mul(o, V::tanh(cv)), n);
  }
}

template <class V>
void lstm_backward(int64_t H, int64_t gs, typename V::T* g, const typename V::T* c_prev, const typename V::T* c,
                   const typename V::T* dy, const typename V::T* carry, typename V::T* dc, typename V::T* pass,
                   typename V::T* db) {
  const auto one = V::set1(1);
  for (int64_t j = 0; j < H; j += V::W) {
    const int64_t n = H - j;
    auto i = load_part<V>(g + j, n, 0);
    auto f = load_part<V>(g + gs + j, n, 0);
    auto z = load_part<V>(g + 2 * gs + j, n, 0);
    auto o = load_part<V>(g + 3 * gs + j, n, 0);
    auto dh = V::add(load_part<V>(dy + j, n, 0), load_part<V>(carry + j, n, 0));
    auto tc = V::tanh(load_part<V>(c + j, n, 0));
    auto dcv = V::add(load_part<V>(dc + j, n, 0), V::mul(V::mul(dh, o), V::sub(one, V::mul(tc, tc))));
    auto di = V::mul(V::mul(dcv, z), V::mul(i, V::sub(one, i)));
    auto df = V::mul(V::mul(dcv, load_part<V>(c_prev + j, n, 0)), V::mul(f, V::sub(one, f)));
    auto dz = V::mul(V::mul(dcv, i), V::sub(one, V::mul(z, z)));
    auto dout = V::mul(V::mul(dh, tc), V::mul(o, V::sub(one, o)));
    store_part<V>(g + j, di, n);
    store_part<V>(g + gs + j, df, n);
    store_part<V>(g + 2 * gs + j, dz, n);
    store_part<V>(g + 3 * gs + j, dout, n);
    accumulate<V>(db, j, di, n);
    accumulate<V>(db, gs + j, df, n);
    accumulate<V>(db, 2 * gs + j, dz, n);
    accumulate<V>(db, 3 * gs + j, dout, n);
    store_part<V>(dc + j, V::mul(dcv, f), n);
    store_part<V>(pass + j, V::zero(), n);
  }
}

template <class V>
void gru_forward(int64_t H, int64_t gs, typename V::T* g, typename V::T* gh, const typename V::T* b_hn,
                 const typename V::T* h_prev, typename V::T* h) {
  for (int64_t j = 0; j < H; j += V::W) {
    const int64_t n = H - j;
    auto r = sigmoid<V>(V::add(load_part<V>(g + j, n, 0), load_part<V>(gh + j, n, 0)));
    auto z = sigmoid<V>(V::add(load_part<V>(g + gs + j, n, 0), load_part<V>(gh + gs + j, n, 0)));
    auto hn = load_part<V>(gh + 2 * gs + j, n, 0);
    if (b_hn) {  // the hidden side's n block keeps its bias (the backward reads it)
      hn = V::add(hn, load_part<V>(b_hn + j, n, 0));
      store_part<V>(gh + 2 * gs + j, hn, n);
    }
    auto nn = V::tanh(V::add(load_part<V>(g + 2 * gs + j, n, 0), V::mul(r, hn)));
    store_part<V>(g + j, r, n);
    store_part<V>(g + gs + j, z, n);
    store_part<V>(g + 2 * gs + j, nn, n);
    store_part<V>(h + j, V::add(nn, V::mul(z, V::sub(load_part<V>(h_prev + j, n, 0), nn))), n);
  }
}

template <class V>
void gru_backward(int64_t H, int64_t gs, typename V::T* g, typename V::T* gh, const typename V::T* h_prev,
                  const typename V::T* dy, const typename V::T* carry, typename V::T* pass, typename V::T* db) {
  const auto one = V::set1(1);
  for (int64_t j = 0; j < H; j += V::W) {
    const int64_t n = H - j;
    auto r = load_part<V>(g + j, n, 0);
    auto z = load_part<V>(g + gs + j, n, 0);
    auto nn = load_part<V>(g + 2 * gs + j, n, 0);
    auto dh = V::add(load_part<V>(dy + j, n, 0), load_part<V>(carry + j, n, 0));
    auto dn = V::mul(V::mul(dh, V::sub(one, z)), V::sub(one, V::mul(nn, nn)));
    auto dz = V::mul(V::mul(dh, V::sub(load_part<V>(h_prev + j, n, 0), nn)), V::mul(z, V::sub(one, z)));
    auto dr = V::mul(V::mul(dn, load_part<V>(gh + 2 * gs + j, n, 0)), V::mul(r, V::sub(one, r)));
    store_part<V>(g + j, dr, n);
    store_part<V>(g + gs + j, dz, n);
    store_part<V>(g + 2 * gs + j, dn, n);
    store_part<V>(gh + j, dr, n);
    store_part<V>(gh + gs + j, dz, n);
    auto dhn = V::mul(dn, r);
    store_part<V>(gh + 2 * gs + j, dhn, n);
    accumulate<V>(db, j, dr, n);
    accumulate<V>(db, gs + j, dz, n);
    accumulate<V>(db, 2 * gs + j, dn, n);
    accumulate<V>(db, 3 * gs + j, dhn, n);
    store_part<V>(pass + j, V::mul(dh, z), n);
  }
}

template <class V>
RnnUkernels<typename V::T> make_table(const char* name) {
  RnnUkernels<typename V::T> t;
  t.name = name;
  t.rnn_tanh_forward = rnn_tanh_forward<V>;
  t.rnn_relu_forward = rnn_relu_forward<V>;
  t.rnn_tanh_backward = rnn_tanh_backward<V>;
  t.rnn_relu_backward = rnn_relu_backward<V>;
  t.lstm_forward = lstm_forward<V>;
  t.lstm_backward = lstm_backward<V>;
  t.gru_forward = gru_forward<V>;
  t.gru_backward = gru_backward<V>;
  t.step_blocking = GemmBlocking{0, 0, 0, 0, 0};
  t.step_ukernel = nullptr;  // the GEMM family's (an ISA fill may set its own)
  t.step_ukernel_row = nullptr;
  t.step_pack_b = nullptr;
  return t;
}

}  // namespace rnn_generic
}  // namespace nnx
