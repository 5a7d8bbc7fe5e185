// The maxout micro-kernels, written once against the vector interface of activation/activation_generic.h
// (load/store, load_part/store_part for ragged tails, set1/zero, gt, select) and instantiated per ISA.
// A row's `inner` elements are the vector axis; rows narrower than one vector (a Linear's output, inner = 1)
// run the same arithmetic on one lane.
//
// Everything is in an anonymous namespace: the one-lane instantiation is compiled into every ISA's
// translation unit, and each must keep its own copy (a shared inline copy could be the AVX2 one).
#pragma once
#include <algorithm>
#include <cstdint>

#include "activation/activation_generic.h"
#include "maxout/maxout_ukernels.h"

namespace nnx {
namespace maxout_generic {
namespace {

// One lane of T: the vector interface's subset these kernels use, for rows narrower than a vector.
template <class Tp>
struct OneLane {
  using T = Tp;
  using R = Tp;
  using M = bool;
  static constexpr int W = 1;
  static R load(const T* p) { return *p; }
  static void store(T* p, R v) { *p = v; }
  static R load_partial(const T* p, int64_t, T) { return *p; }
  static void store_partial(T* p, R v, int64_t) { *p = v; }
  static R set1(T v) { return v; }
  static R zero() { return T(0); }
  static M gt(R a, R b) { return a > b; }
  static R select(M m, R a, R b) { return m ? a : b; }
};

using act_generic::load_part;
using act_generic::store_part;

// The running maximum over the pieces of one vector of columns (piece j at xr + j * inner) and, when
// `idx` is given, the winning piece as a value of T (exact: pieces < kMaxoutMaxPieces).
template <class V, bool kIndex>
inline typename V::R winner(const typename V::T* xr, int64_t pieces, int64_t inner, int64_t cnt,
                            typename V::R* idx) {
  using T = typename V::T;
  auto m = load_part<V>(xr, cnt, T(0));
  auto id = V::zero();
  for (int64_t j = 1; j < pieces; ++j) {
    const auto v = load_part<V>(xr + j * inner, cnt, T(0));
    const auto better = V::gt(v, m);  // strict: the earlier piece keeps a tie
    m = V::select(better, v, m);
    if (kIndex) id = V::select(better, V::set1(static_cast<T>(j)), id);
  }
  if (kIndex) *idx = id;
  return m;
}

template <class V>
void forward_rows(const typename V::T* x, typename V::T* y, int64_t rows, int64_t pieces, int64_t inner) {
  using T = typename V::T;
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * pieces * inner;
    T* yr = y + r * inner;
    for (int64_t i = 0; i < inner; i += V::W) {
      const int64_t cnt = std::min<int64_t>(V::W, inner - i);
      store_part<V>(yr + i, winner<V, false>(xr + i, pieces, inner, cnt, nullptr), cnt);
    }
  }
}

template <class V>
void backward_rows(const typename V::T* dy, const typename V::T* x, typename V::T* dx, int64_t rows,
                   int64_t pieces, int64_t inner) {
  using T = typename V::T;
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * pieces * inner;
    const T* dyr = dy + r * inner;
    T* dxr = dx + r * pieces * inner;
    for (int64_t i = 0; i < inner; i += V::W) {
      const int64_t cnt = std::min<int64_t>(V::W, inner - i);
      typename V::R id;
      winner<V, true>(xr + i, pieces, inner, cnt, &id);
      // dy goes to the first piece j >= the winner, i.e. the winner; `rest` is zero once it is placed.
      auto rest = load_part<V>(dyr + i, cnt, T(0));
      for (int64_t j = 0; j < pieces; ++j) {
        const auto here = V::gt(V::set1(static_cast<T>(j) + T(0.5)), id);
        store_part<V>(dxr + j * inner + i, V::select(here, rest, V::zero()), cnt);
        rest = V::select(here, V::zero(), rest);
      }
    }
  }
}

// The backward of rows one element wide (a Linear's output): the winner as an integer, then the row of
// dx written once; written without data-dependent branches, which random data would mispredict half the
// time.
template <class T, int K>  // K > 0: pieces known at compile time (unrolled); K == 0: any
void backward_rows_one_lane(const T* dy, const T* x, T* dx, int64_t rows, int64_t pieces_any) {
  const int64_t pieces = K > 0 ? K : pieces_any;
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * pieces;
    T* dxr = dx + r * pieces;
    T m = xr[0];
    int64_t w = 0;
    for (int64_t j = 1; j < pieces; ++j) {
      const T v = xr[j];
      const int64_t better = -static_cast<int64_t>(v > m);  // all ones when strictly greater, as winner()
      m = v > m ? v : m;                                    // maxss: a NaN v or a tie keeps m
      w = (w & ~better) | (j & better);
    }
    for (int64_t j = 0; j < pieces; ++j) dxr[j] = T(0);
    dxr[w] = dy[r];
  }
}

template <class T>
void backward_one_lane(const T* dy, const T* x, T* dx, int64_t rows, int64_t pieces) {
  switch (pieces) {  // the piece counts maxout networks use, unrolled
    case 2: backward_rows_one_lane<T, 2>(dy, x, dx, rows, 2); break;
    case 3: backward_rows_one_lane<T, 3>(dy, x, dx, rows, 3); break;
    case 4: backward_rows_one_lane<T, 4>(dy, x, dx, rows, 4); break;
    default: backward_rows_one_lane<T, 0>(dy, x, dx, rows, pieces); break;
  }
}

template <class V>
void forward(const typename V::T* x, typename V::T* y, int64_t rows, int64_t pieces, int64_t inner) {
  if (inner < V::W) forward_rows<OneLane<typename V::T>>(x, y, rows, pieces, inner);
  else forward_rows<V>(x, y, rows, pieces, inner);
}

template <class V>
void backward(const typename V::T* dy, const typename V::T* x, typename V::T* dx, int64_t rows, int64_t pieces,
              int64_t inner) {
  if (inner == 1) backward_one_lane(dy, x, dx, rows, pieces);
  else if (inner < V::W) backward_rows<OneLane<typename V::T>>(dy, x, dx, rows, pieces, inner);
  else backward_rows<V>(dy, x, dx, rows, pieces, inner);
}

template <class V>
MaxoutUkernels<typename V::T> make_table(const char* name) {
  MaxoutUkernels<typename V::T> t;
  t.name = name;
  t.forward = forward<V>;
  t.backward = backward<V>;
  return t;
}

}  // namespace
}  // namespace maxout_generic
}  // namespace nnx
