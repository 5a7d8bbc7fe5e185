// The activation micro-kernels, written once against a small vector interface V and instantiated per
// ISA (activation_ukernels_portable.cpp: one-lane scalar V with std:: math; activation_ukernels_avx2.cpp: 8 x float / 4 x double).
//
// V provides: T, R (register), M (mask), W (lanes); load/store/set1/zero; load_partial(p, cnt, pad) /
// store_partial(p, v, cnt) for the first cnt < W lanes; add/sub/mul/div; max/min with
// the x86 rule "an unordered pair returns the second operand" (so max(zero, x) keeps a NaN x);
// abs; neg_abs (-|x|); gt/ge -> M; select(m, a, b) = m ? a : b; exp; exp_nonpos and expm1_nonpos (argument
// <= 0 or NaN); tanh; hsum/hmax (horizontal, fixed lane order).
//
// Ragged tails are loaded as a partial vector (padded lanes) so every element sees exactly the same
// arithmetic as the full vectors (no scalar fallback with different rounding).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "activation/activation_ukernels.h"
#include "common/stream_store.h"

namespace nnx {
namespace act_generic {

// The first min(cnt, W) elements at p, the other lanes `pad` (V::load_partial: masked loads that never
// touch memory past p[cnt - 1]).
template <class V>
inline typename V::R load_part(const typename V::T* p, int64_t cnt, typename V::T pad) {
  return cnt >= V::W ? V::load(p) : V::load_partial(p, cnt, pad);
}

template <class V>
inline void store_part(typename V::T* p, typename V::R v, int64_t cnt) {
  if (cnt >= V::W) V::store(p, v);
  else V::store_partial(p, v, cnt);
}

// The first elements before y reaches a whole-vector boundary, where streaming stores (V::stream) can start; n
// when it never does (an address that is not a multiple of T's size).
template <class V>
inline int64_t stream_head(const typename V::T* y, int64_t n) {
  constexpr int64_t kBytes = sizeof(typename V::R);
  const auto addr = reinterpret_cast<uintptr_t>(y);
  if (addr % sizeof(typename V::T)) return n;
  return std::min<int64_t>(n, static_cast<int64_t>((kBytes - addr % kBytes) % kBytes / sizeof(typename V::T)));
}

// Streaming stores issued from the computing loop itself ran the exponential maps 1.15-2.3x slower than ordinary
// ones (Zen 4, 1 thread, 16 M floats: sigmoid, its backward, softmax), as if each store waited for the loop's
// arithmetic; computed into an L1 buffer and copied out a chunk at a time (common/stream_store.h's
// stream_chunk_bytes) they run like a copy.
constexpr int64_t kStreamChunkBytes = kStreamChunkMaxBytes;

// A map asks for x's line kPrefetchAheadBytes ahead while it computes: its exponentials left the hardware's
// prefetch behind the loads (Xeon, 1 thread, 16 M floats, streamed, against none: sigmoid 1.16x, tanh 1.18x,
// ReLU 1.08x at 8 KiB ahead; 1.08-1.12x at 4 KiB, 16 KiB as 8; in cache 0.99-1.03x).

// y's n results, value(i, cnt) the vector of elements i .. i + cnt - 1 (cnt <= W), with the whole vectors from
// y's first vector boundary streamed and the elements before and after it stored as usual (all of them when y
// never reaches a boundary): for a light value, or inputs in L1.
template <class V, class Value>
inline void stream_values(typename V::T* y, int64_t n, Value value) {
  const int64_t head = stream_head<V>(y, n);
  for (int64_t j = 0; j < head; j += V::W) store_part<V>(y + j, value(j, std::min<int64_t>(V::W, head - j)), head - j);
  int64_t i = head;
  for (; i + V::W <= n; i += V::W) V::stream(y + i, value(i, int64_t{V::W}));
  if (i < n) V::store_partial(y + i, value(i, n - i), n - i);
}

// y[i] = f(x[i]) through stream_values (map1's buffer, softmax's row).
template <class V, class F>
inline void stream_map1(const typename V::T* x, typename V::T* y, int64_t n, F f) {
  stream_values<V>(y, n, [&](int64_t i, int64_t cnt) { return f(load_part<V>(x + i, cnt, 0)); });
}

// A map's n results written past the caches: compute(i, len, dst) writes those of elements [i, i + len) to dst.
// The head up to y's first vector boundary and the tail go straight to y, the pieces between into an L1 buffer
// and out with streaming stores; the caller ends its streaming with V::stream_fence() (once: the fence waits
// for the stores to drain).
// The chunk a compile-time constant (its copy loop unrolled; a run-time length measured 0.9x on the Xeon).
template <class V, int64_t kChunkBytes, class Compute>
inline void stream_pieces_of(typename V::T* y, int64_t n, Compute compute) {
  constexpr int64_t kChunk = kChunkBytes / sizeof(typename V::T);
  alignas(64) typename V::T buf[kChunk];
  int64_t i = stream_head<V>(y, n);
  compute(int64_t{0}, i, y);
  for (; i + kChunk <= n; i += kChunk) {
    compute(i, kChunk, +buf);
    stream_map1<V>(buf, y + i, kChunk, [](typename V::R v) { return v; });
  }
  compute(i, n - i, y + i);
}

template <class V, class Compute>
inline void stream_pieces(typename V::T* y, int64_t n, Compute compute) {
  static_assert(kStreamChunkBytes == 2048, "the chunks stream_chunk_bytes chooses from");
  if (stream_chunk_bytes() == 512) stream_pieces_of<V, 512>(y, n, compute);
  else stream_pieces_of<V, 2048>(y, n, compute);
}

// y[i] = f(x[i]); with kStream, y is written past the caches (common/stream_store.h) by stream_pieces.
template <class V, bool kStream = false, class F>
inline void map1(const typename V::T* x, typename V::T* y, int64_t n, F f) {
  using T = typename V::T;
  if constexpr (kStream) {
    stream_pieces<V>(y, n, [&](int64_t i, int64_t len, T* dst) { map1<V>(x + i, dst, len, f); });
    return;
  }
  int64_t i = 0;
  for (; i + 2 * V::W <= n; i += 2 * V::W) {
    __builtin_prefetch(x + i + kPrefetchAheadBytes / static_cast<int64_t>(sizeof(typename V::T)), 0, 2);
    auto a = f(V::load(x + i));
    auto b = f(V::load(x + i + V::W));
    V::store(y + i, a);
    V::store(y + i + V::W, b);
  }
  for (; i < n; i += V::W) store_part<V>(y + i, f(load_part<V>(x + i, n - i, 0)), n - i);
}

// y[i] = f(a[i], b[i]); kStream as map1's.
template <class V, bool kStream = false, class F>
inline void map2(const typename V::T* a, const typename V::T* b, typename V::T* y, int64_t n, F f) {
  using T = typename V::T;
  if constexpr (kStream) {
    stream_pieces<V>(y, n, [&](int64_t i, int64_t len, T* dst) { map2<V>(a + i, b + i, dst, len, f); });
    return;
  }
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) V::store(y + i, f(V::load(a + i), V::load(b + i)));
  if (i < n) store_part<V>(y + i, f(load_part<V>(a + i, n - i, 0), load_part<V>(b + i, n - i, 0)), n - i);
}

template <class V>
inline typename V::R sigmoid(typename V::R v) {
  // e = exp(-|v|) <= 1, so neither branch can overflow: 1/(1+e) for v >= 0, e/(1+e) for v < 0, one division
  // of the numerator chosen first (as common/epilogue.h's scalar form). The exponential's argument is never
  // positive, which spares its overflow clamp.
  const auto one = V::set1(1);
  auto e = V::exp_nonpos(V::neg_abs(v));
  return V::div(V::select(V::ge(v, V::zero()), one, e), V::add(one, e));
}

template <class V, bool kStream>
void forward_stores(Act fn, const typename V::T* x, typename V::T* y, int64_t n, typename V::T param) {
  using R = typename V::R;
  const R zero = V::zero(), p = V::set1(param);
  switch (fn) {
    case Act::none: std::memmove(y, x, sizeof(typename V::T) * n); break;
    case Act::relu: map1<V, kStream>(x, y, n, [&](R v) { return V::max(zero, v); }); break;
    case Act::leaky_relu:
      map1<V, kStream>(x, y, n, [&](R v) { return V::select(V::gt(v, zero), v, V::mul(v, p)); });
      break;
    case Act::sigmoid: map1<V, kStream>(x, y, n, [](R v) { return sigmoid<V>(v); }); break;
    case Act::tanh: map1<V, kStream>(x, y, n, [](R v) { return V::tanh(v); }); break;
    case Act::elu:
      map1<V, kStream>(x, y, n, [&](R v) {
        return V::select(V::gt(v, zero), v, V::mul(p, V::expm1_nonpos(V::min(zero, v))));
      });
      break;
  }
}

template <class V, bool kStream>
void backward_stores(Act fn, const typename V::T* dy, const typename V::T* x, typename V::T* dx, int64_t n,
                     typename V::T param) {
  using R = typename V::R;
  const R zero = V::zero(), one = V::set1(1), p = V::set1(param);
  switch (fn) {
    case Act::none: std::memmove(dx, dy, sizeof(typename V::T) * n); break;
    case Act::relu:
      map2<V, kStream>(dy, x, dx, n, [&](R g, R v) { return V::select(V::gt(v, zero), g, zero); });
      break;
    case Act::leaky_relu:
      map2<V, kStream>(dy, x, dx, n, [&](R g, R v) { return V::select(V::gt(v, zero), g, V::mul(g, p)); });
      break;
    // s (1 - s) and 1 - tanh^2 cancel where the curves flatten; e / (1 + e)^2 with e = exp(-|x|)
    // (sigmoid) and 4 e / (1 + e)^2 with e = exp(-2|x|) (tanh, = 1 / cosh^2) are exact rewrites that don't.
    case Act::sigmoid:
      map2<V, kStream>(dy, x, dx, n, [&](R g, R v) {
        R e = V::exp_nonpos(V::sub(zero, V::abs(v)));
        R d = V::add(one, e);
        return V::div(V::mul(g, e), V::mul(d, d));
      });
      break;
    case Act::tanh:
      map2<V, kStream>(dy, x, dx, n, [&](R g, R v) {
        R e = V::exp_nonpos(V::mul(V::set1(-2), V::abs(v)));
        R d = V::add(one, e);
        return V::div(V::mul(V::mul(g, V::set1(4)), e), V::mul(d, d));
      });
      break;
    case Act::elu:
      map2<V, kStream>(dy, x, dx, n, [&](R g, R v) {
        return V::select(V::gt(v, zero), g, V::mul(g, V::mul(p, V::exp_nonpos(V::min(zero, v)))));
      });
      break;
  }
}

template <class V, bool kStream>
void backward_from_output_stores(Act act, const typename V::T* dy, const typename V::T* y, typename V::T* dz,
                                 int64_t n, typename V::T slope) {
  using R = typename V::R;
  const R zero = V::zero(), one = V::set1(1), p = V::set1(slope);
  switch (act) {
    case Act::none: std::memmove(dz, dy, sizeof(typename V::T) * n); break;
    case Act::relu:
      map2<V, kStream>(dy, y, dz, n, [&](R g, R v) { return V::select(V::gt(v, zero), g, zero); });
      break;
    case Act::leaky_relu:
      map2<V, kStream>(dy, y, dz, n, [&](R g, R v) { return V::select(V::gt(v, zero), g, V::mul(g, p)); });
      break;
    case Act::sigmoid:
      map2<V, kStream>(dy, y, dz, n, [&](R g, R v) { return V::mul(V::mul(g, v), V::sub(one, v)); });
      break;
    case Act::tanh:
      map2<V, kStream>(dy, y, dz, n, [&](R g, R v) { return V::mul(g, V::sub(one, V::mul(v, v))); });
      break;
    case Act::elu:  // not fusable (act_fusable); the bindings never pass it: the scalar definition, for completeness
      for (int64_t i = 0; i < n; ++i) dz[i] = dy[i] * act_grad_from_output(act, y[i], slope);
      break;
  }
}

// Runs body(std::false_type) (stores through the caches) or body(std::true_type) (streaming stores, then the
// one fence) as past_caches says: the table's entries pick their stores with it (the driver's stores_past_caches).
// A vector type whose stream() is an ordinary store (V::kStreams false: the portable one) always takes the first.
template <class V, class Body>
inline void with_stores(bool past_caches, Body body) {
  if (!(past_caches && V::kStreams)) return body(std::false_type{});
  body(std::true_type{});
  V::stream_fence();
}

template <class V>
void forward(Act fn, const typename V::T* x, typename V::T* y, int64_t n, typename V::T param, bool past_caches) {
  with_stores<V>(past_caches, [&](auto s) { forward_stores<V, decltype(s)::value>(fn, x, y, n, param); });
}

template <class V>
void backward(Act fn, const typename V::T* dy, const typename V::T* x, typename V::T* dx, int64_t n,
              typename V::T param, bool past_caches) {
  with_stores<V>(past_caches, [&](auto s) { backward_stores<V, decltype(s)::value>(fn, dy, x, dx, n, param); });
}

template <class V>
void backward_from_output(Act act, const typename V::T* dy, const typename V::T* y, typename V::T* dz, int64_t n,
                          typename V::T slope, bool past_caches) {
  with_stores<V>(past_caches,
                 [&](auto s) { backward_from_output_stores<V, decltype(s)::value>(act, dy, y, dz, n, slope); });
}

// ---- reductions over one contiguous row (two accumulators, fixed order) ----

template <class V>
typename V::T row_max(const typename V::T* x, int64_t n) {
  using T = typename V::T;
  const T ninf = -std::numeric_limits<T>::infinity();
  auto m0 = V::set1(ninf), m1 = V::set1(ninf);
  int64_t i = 0;
  for (; i + 2 * V::W <= n; i += 2 * V::W) {
    m0 = V::max(m0, V::load(x + i));
    m1 = V::max(m1, V::load(x + i + V::W));
  }
  for (; i < n; i += V::W) m0 = V::max(m0, load_part<V>(x + i, n - i, ninf));
  return V::hmax(V::max(m0, m1));
}

// Asks for the cache lines of next[i .. i + kElems) into L2 (next: a later row, row_ahead, or null), while the
// exponentials of this row keep the core busy: with nothing asked for, memory idled through each row's exp and
// scale passes and the next row's max pass waited on it (rows of 512-2048 floats, 1 thread: 1.03-1.25x). A no-op
// for the portable vectors, whose steps are shorter than a line.
template <class T, int64_t kElems>
inline void prefetch_row_step(const T* next, int64_t i) {
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  if constexpr (kElems >= kLine) {
    if (next)
      for (int64_t l = 0; l < kElems; l += kLine) __builtin_prefetch(next + i + l, 0, 2);
  }
}

// What a row kernel asks for while it computes the row at x (prefetch_row_step's next): the elements at least
// kPrefetchAheadBytes on, a row's length of them, whatever row they fall in. The next row alone was too close for short
// rows (softmax of 96 M floats, 1 thread, one process alternating with that: rows of 128 1.20-1.62x, of 256
// 1.50-1.53x, of 512 1.47x, of 1024 1.15x; 2 KiB ahead 1.32-1.49x). Asked for past the last row too, where they
// are the caller's next rows (cross-entropy sums 4 rows of 1000 a call: 0.87-0.90x when it stopped at the last
// row) or, at the array's end, nothing (a prefetch never faults).
template <class T>
inline const T* row_ahead(const T* x, int64_t n) {
  return x + std::max<int64_t>(n, kPrefetchAheadBytes / static_cast<int64_t>(sizeof(T)));
}

// y = exp(x - shift) (y may be nullptr: not stored); returns sum(y). next: as prefetch_row_step. shift is the row's
// max, so x - shift <= 0 (or NaN) and the exponential skips its overflow clamp (V::exp_nonpos: the same bits).
template <class V, bool kStore>
typename V::T exp_shift_sum(const typename V::T* x, typename V::T shift, typename V::T* y, int64_t n,
                            const typename V::T* next = nullptr) {
  using T = typename V::T;
  const T ninf = -std::numeric_limits<T>::infinity();
  const auto sh = V::set1(shift);
  auto s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * V::W <= n; i += 2 * V::W) {
    prefetch_row_step<T, 2 * V::W>(next, i);
    auto e0 = V::exp_nonpos(V::sub(V::load(x + i), sh));
    auto e1 = V::exp_nonpos(V::sub(V::load(x + i + V::W), sh));
    if (kStore) { V::store(y + i, e0); V::store(y + i + V::W, e1); }
    s0 = V::add(s0, e0);
    s1 = V::add(s1, e1);
  }
  for (; i < n; i += V::W) {
    // Padding with -inf makes the padded lanes exp(-inf) = 0 in the sum.
    auto e = V::exp_nonpos(V::sub(load_part<V>(x + i, n - i, ninf), sh));
    if (kStore) store_part<V>(y + i, e, n - i);
    s0 = V::add(s0, e);
  }
  return V::hsum(V::add(s0, s1));
}

template <class V>
typename V::T row_sum(const typename V::T* x, int64_t n) {
  auto s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  for (; i + 2 * V::W <= n; i += 2 * V::W) {
    s0 = V::add(s0, V::load(x + i));
    s1 = V::add(s1, V::load(x + i + V::W));
  }
  for (; i < n; i += V::W) s0 = V::add(s0, load_part<V>(x + i, n - i, 0));
  return V::hsum(V::add(s0, s1));
}

template <class V>
typename V::T row_dot(const typename V::T* a, const typename V::T* b, int64_t n) {
  auto s0 = V::zero(), s1 = V::zero();
  int64_t i = 0;
  // Fused multiply-adds written out, not left to the compiler's contraction, so that every ISA's version
  // (activation_ukernels_avx512.cpp's PairedHalves) rounds each step the same way.
  for (; i + 2 * V::W <= n; i += 2 * V::W) {
    s0 = V::fmadd(V::load(a + i), V::load(b + i), s0);
    s1 = V::fmadd(V::load(a + i + V::W), V::load(b + i + V::W), s1);
  }
  for (; i < n; i += V::W) s0 = V::fmadd(load_part<V>(a + i, n - i, 0), load_part<V>(b + i, n - i, 0), s0);
  return V::hsum(V::add(s0, s1));
}

// The row reductions of the softmax kernels below, as a policy: these two-accumulator loops on V by default;
// the AVX-512 table substitutes loops that keep AVX2's lane order in half the instructions
// (activation_ukernels_avx512.cpp), so a row sums the same way on either.
template <class V>
struct TwoAccumulators {
  using T = typename V::T;
  static T max(const T* x, int64_t n) { return row_max<V>(x, n); }
  template <bool kStore>
  static T exp_shift_sum(const T* x, T shift, T* y, int64_t n, const T* next = nullptr) {
    return act_generic::exp_shift_sum<V, kStore>(x, shift, y, n, next);
  }
  static T sum(const T* x, int64_t n) { return row_sum<V>(x, n); }
  static T dot(const T* a, const T* b, int64_t n) { return row_dot<V>(a, b, n); }
};

// Rows of up to kLogBlockRowElems elements take their logs kLogBlockRows rows at a time, after all of those rows'
// sums: each row's chain (max, exponentials, sum, log) ends in a libm call, and one call per row between the
// vector passes kept the row loop to one row at a time (log-softmax of (8192, 16), Xeon, 1 thread: half the time
// in logf). The same std::log of the same sums: the same bits.
constexpr int64_t kLogBlockRows = 16, kLogBlockRowElems = 256;

template <class T>
inline void log_block(T* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = std::log(v[i]);
}

// For each of `rows` contiguous rows of n: max_out[r] = m = max_j x_j and lse[r] = log(sum_j exp(x_j - m)), the
// logs taken after all the sums (log_block).
template <class V, class Red = TwoAccumulators<V>>
void log_sum_exp_rows(const typename V::T* x, int64_t rows, int64_t n, typename V::T* lse,
                      typename V::T* max_out) {
  for (int64_t r = 0; r < rows; ++r, x += n) {
    max_out[r] = Red::max(x, n);
    lse[r] = Red::template exp_shift_sum<false>(x, max_out[r], nullptr, n, row_ahead(x, n));
  }
  log_block(lse, rows);
}

// Rows up to this many bytes stream their softmax (past_caches) from a buffer on the stack; longer ones (their
// buffer would push x's row out of L1) go through the caches.
constexpr int64_t kSoftmaxStreamRowBytes = 8192;

template <class V, class Red = TwoAccumulators<V>>
void softmax_rows(const typename V::T* x, typename V::T* y, int64_t rows, int64_t n, bool log, bool past_caches) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int64_t kStreamRow = kSoftmaxStreamRowBytes / sizeof(T);
  alignas(64) T buf[kStreamRow];
  past_caches = past_caches && V::kStreams;
  for (int64_t r = 0; r < rows; ++r, x += n, y += n) {
    const T* next = row_ahead(x, n);
    if (log && n <= kLogBlockRowElems && rows - r > 1) {
      // A block of short rows: their maxima and logs apart from their sums, then the rows.
      const int64_t nb = std::min<int64_t>(kLogBlockRows, rows - r);
      T mb[kLogBlockRows], lb[kLogBlockRows];
      log_sum_exp_rows<V, Red>(x, nb, n, lb, mb);
      for (int64_t b = 0; b < nb; ++b) {
        const R mv = V::set1(mb[b]), ls = V::set1(lb[b]);
        if (past_caches) stream_map1<V>(x + b * n, y + b * n, n, [&](R v) { return V::sub(V::sub(v, mv), ls); });
        else map1<V>(x + b * n, y + b * n, n, [&](R v) { return V::sub(V::sub(v, mv), ls); });
      }
      r += nb - 1, x += (nb - 1) * n, y += (nb - 1) * n;
      continue;
    }
    const T m = Red::max(x, n);
    if (!log && past_caches && n <= kStreamRow) {
      // The exponentials into an L1 buffer, then scaled and streamed: y's lines are never read.
      const R inv = V::set1(T(1) / Red::template exp_shift_sum<true>(x, m, buf, n, next));
      stream_map1<V>(buf, y, n, [&](R e) { return V::mul(e, inv); });
    } else if (!log) {
      T s = Red::template exp_shift_sum<true>(x, m, y, n, next);
      const R inv = V::set1(T(1) / s);
      map1<V>(y, y, n, [&](R e) { return V::mul(e, inv); });
    } else {
      // (x - max) - log(sum exp(x - max)), the reference's order of operations.
      const R mv = V::set1(m), ls = V::set1(std::log(Red::template exp_shift_sum<false>(x, m, nullptr, n, next)));
      if (past_caches) stream_map1<V>(x, y, n, [&](R v) { return V::sub(V::sub(v, mv), ls); });
      else map1<V>(x, y, n, [&](R v) { return V::sub(V::sub(v, mv), ls); });
    }
  }
  if (past_caches) V::stream_fence();
}

template <class V, class Red = TwoAccumulators<V>>
void softmax_rows_backward(const typename V::T* dy, const typename V::T* x, typename V::T* dx, int64_t rows,
                           int64_t n, bool log) {
  using T = typename V::T;
  using R = typename V::R;
  for (int64_t r = 0; r < rows; ++r, x += n, dy += n, dx += n) {
    T m = Red::max(x, n);
    // dx holds exp(x - max) until overwritten below
    T s = Red::template exp_shift_sum<true>(x, m, dx, n, row_ahead(x, n));
    const R inv = V::set1(T(1) / s);
    if (!log) {
      const R dot = V::set1(Red::dot(dy, dx, n) / s);  // sum(dy * softmax)
      map2<V>(dx, dy, dx, n, [&](R e, R g) { return V::mul(V::mul(e, inv), V::sub(g, dot)); });
    } else {
      const R sdy = V::set1(Red::sum(dy, n));
      map2<V>(dx, dy, dx, n, [&](R e, R g) { return V::sub(g, V::mul(V::mul(e, inv), sdy)); });
    }
  }
}

// Columns: the softmax axis has stride `stride`; up to kColTile adjacent columns are done together, their
// running max / sum / dot kept in small L1 arrays, so each pass reads every row segment contiguously.
constexpr int64_t kColTile = kSoftmaxColTile;

// Asks for line j of the next tile's row segments (at p, past this tile) while this tile's exp pass computes
// from cache: the hardware's stream prefetch does not follow n interleaved row streams, so without it the
// memory idles through the exp and scale passes and the next tile's max pass waits on every row (channel
// softmax of (64, 32, 56, 56) forward and backward: 1.4-1.5x at 1 thread, 1.25-1.4x at 2). One line a
// vector, into L2, spreads the requests out; a burst of a row's lines at once did not help. next_w > 0: the
// next tile's width (past it, line 0 is asked for again).
template <int kWrite = 0, class T>
inline void prefetch_next_tile(const T* p, int64_t j, int64_t next_w) {
  __builtin_prefetch(p + (j < next_w ? j : 0), kWrite, 2);
}

// f(std::true_type) when there is a next tile to fetch, else f(std::false_type): a call of one tile runs the
// exp pass it ran before the prefetches (a test in that loop cost 1-tile calls up to 10%).
// The backwards' two inputs (read) and their output (written), at the same offset.
template <class T>
inline void prefetch_next_tiles(const T* a, const T* b, T* out, int64_t j, int64_t next_w) {
  prefetch_next_tile(a, j, next_w);
  prefetch_next_tile(b, j, next_w);
  prefetch_next_tile<1>(out, j, next_w);
}

template <class F>
inline void with_prefetch(bool on, F f) {
  if (on) f(std::true_type{});
  else f(std::false_type{});
}

// Its results go through the caches however large: the exponentials of a tile kept in a buffer and y's rows
// streamed from it (common/stream_store.h) measured 0.84-0.94x, forward and backward from the output alike
// (64x32x56x56 over the channels, 1 and 2 threads).
template <class V>
void softmax_cols(const typename V::T* x, typename V::T* y, int64_t n, int64_t stride, int64_t width, bool log) {
  using T = typename V::T;
  using R = typename V::R;
  const T ninf = -std::numeric_limits<T>::infinity();
  alignas(64) T m[kColTile], s[kColTile];
  for (int64_t c0 = 0; c0 < width; c0 += kColTile) {
    const int64_t w = width - c0 < kColTile ? width - c0 : kColTile;
    for (int64_t j = 0; j < kColTile; ++j) { m[j] = ninf; s[j] = T(0); }
    for (int64_t k = 0; k < n; ++k) {
      const T* xk = x + k * stride + c0;
      for (int64_t j = 0; j < w; j += V::W) V::store(m + j, V::max(V::load(m + j), load_part<V>(xk + j, w - j, ninf)));
    }
    const int64_t next_w = std::min(kColTile, width - c0 - w);
    with_prefetch(next_w > 0, [&](auto fetch) {
      for (int64_t k = 0; k < n; ++k) {
        const T* xk = x + k * stride + c0;
        T* yk = y + k * stride + c0;
        for (int64_t j = 0; j < w; j += V::W) {
          if constexpr (decltype(fetch)::value) {
            prefetch_next_tile(xk + w, j, next_w);
            prefetch_next_tile<1>(yk + w, j, next_w);
          }
          R e = V::exp_nonpos(V::sub(load_part<V>(xk + j, w - j, ninf), V::load(m + j)));
          if (!log) store_part<V>(yk + j, e, w - j);
          V::store(s + j, V::add(V::load(s + j), e));
        }
      }
    });
    if (!log) {
      for (int64_t j = 0; j < w; ++j) s[j] = T(1) / s[j];
      for (int64_t k = 0; k < n; ++k) {
        T* yk = y + k * stride + c0;
        for (int64_t j = 0; j < w; j += V::W)
          store_part<V>(yk + j, V::mul(load_part<V>(yk + j, w - j, 0), V::load(s + j)), w - j);
      }
    } else {
      for (int64_t j = 0; j < w; ++j) s[j] = std::log(s[j]);  // one log per column: not worth a vector log
      for (int64_t k = 0; k < n; ++k) {
        const T* xk = x + k * stride + c0;
        T* yk = y + k * stride + c0;
        for (int64_t j = 0; j < w; j += V::W)
          store_part<V>(yk + j, V::sub(V::sub(load_part<V>(xk + j, w - j, 0), V::load(m + j)), V::load(s + j)),
                        w - j);
      }
    }
  }
}

template <class V>
void softmax_cols_backward(const typename V::T* dy, const typename V::T* x, typename V::T* dx, int64_t n,
                           int64_t stride, int64_t width, bool log) {
  using T = typename V::T;
  using R = typename V::R;
  const T ninf = -std::numeric_limits<T>::infinity();
  alignas(64) T m[kColTile], s[kColTile], d[kColTile];
  for (int64_t c0 = 0; c0 < width; c0 += kColTile) {
    const int64_t w = width - c0 < kColTile ? width - c0 : kColTile;
    for (int64_t j = 0; j < kColTile; ++j) { m[j] = ninf; s[j] = T(0); d[j] = T(0); }
    for (int64_t k = 0; k < n; ++k) {
      const T* xk = x + k * stride + c0;
      for (int64_t j = 0; j < w; j += V::W) V::store(m + j, V::max(V::load(m + j), load_part<V>(xk + j, w - j, ninf)));
    }
    // s = sum exp(x - max) (kept in dx meanwhile); d = sum dy exp(x - max) (softmax) or sum dy (log_softmax).
    const int64_t next_w = std::min(kColTile, width - c0 - w);
    with_prefetch(next_w > 0, [&](auto fetch) {
      for (int64_t k = 0; k < n; ++k) {
        const int64_t off = k * stride + c0;
        for (int64_t j = 0; j < w; j += V::W) {
          if constexpr (decltype(fetch)::value) prefetch_next_tiles(x + off + w, dy + off + w, dx + off + w, j, next_w);
          R e = V::exp_nonpos(V::sub(load_part<V>(x + off + j, w - j, ninf), V::load(m + j)));
          R g = load_part<V>(dy + off + j, w - j, 0);
          store_part<V>(dx + off + j, e, w - j);
          V::store(s + j, V::add(V::load(s + j), e));
          V::store(d + j, V::add(V::load(d + j), log ? g : V::mul(g, e)));
        }
      }
    });
    for (int64_t j = 0; j < w; ++j) {
      if (!log) d[j] /= s[j];
      s[j] = T(1) / s[j];
    }
    for (int64_t k = 0; k < n; ++k) {
      const int64_t off = k * stride + c0;
      for (int64_t j = 0; j < w; j += V::W) {
        R sm = V::mul(load_part<V>(dx + off + j, w - j, 0), V::load(s + j));
        R g = load_part<V>(dy + off + j, w - j, 0);
        R dj = V::load(d + j);
        store_part<V>(dx + off + j, log ? V::sub(g, V::mul(sm, dj)) : V::mul(sm, V::sub(g, dj)), w - j);
      }
    }
  }
}

// The columns of the backward from the output, which makes two light passes over dy and y: memory-bound, so
// its tiles are as wide as two arrays' n rows keep within kWideTileBytes (an L2), where the passes that
// recompute the softmax keep 256 (they are bound by their exponentials, and wider tiles did not help them).
// Rows of a few thousand contiguous elements stream where 256-element pieces a plane apart did not:
// 64x32x56x56 1.2x, 64x128x784 1.7-2.0x, 64x21x28x28 1.2-1.3x (1 thread, against 256-column tiles).
constexpr int64_t kWideColTile = 4096, kWideTileBytes = int64_t{1} << 20;
template <class T>
inline int64_t wide_col_tile(int64_t n) {
  const int64_t fit = kWideTileBytes / (2 * n * static_cast<int64_t>(sizeof(T)));
  return std::max(kColTile, std::min(kWideColTile, fit / 16 * 16));
}

// From the forward OUTPUT y (softmax: y = s; log_softmax: y = log s), nothing recomputed: softmax dx =
// y (dy - sum(dy y)); log_softmax dx = dy - exp(y) sum(dy). Two passes over dy and y, no max and, for
// softmax, no exponential (what training runs: nnx.functional keeps y).
template <class V, class Red, bool kStream>
void softmax_rows_backward_from_output_stores(const typename V::T* dy, const typename V::T* y, typename V::T* dx,
                                              int64_t rows, int64_t n, bool log) {
  using R = typename V::R;
  for (int64_t r = 0; r < rows; ++r, y += n, dy += n, dx += n) {
    if (!log) {
      const R dot = V::set1(Red::dot(dy, y, n));
      map2<V, kStream>(y, dy, dx, n, [&](R s, R g) { return V::mul(s, V::sub(g, dot)); });
    } else {
      const R sdy = V::set1(Red::sum(dy, n));
      map2<V, kStream>(y, dy, dx, n, [&](R l, R g) { return V::sub(g, V::mul(V::exp(l), sdy)); });
    }
  }
}

template <class V, class Red = TwoAccumulators<V>>
void softmax_rows_backward_from_output(const typename V::T* dy, const typename V::T* y, typename V::T* dx,
                                       int64_t rows, int64_t n, bool log, bool past_caches) {
  with_stores<V>(past_caches, [&](auto s) {
    softmax_rows_backward_from_output_stores<V, Red, decltype(s)::value>(dy, y, dx, rows, n, log);
  });
}

template <class V>
void softmax_cols_backward_from_output(const typename V::T* dy, const typename V::T* y, typename V::T* dx,
                                       int64_t n, int64_t stride, int64_t width, bool log) {
  using T = typename V::T;
  using R = typename V::R;
  alignas(64) T d[kWideColTile];
  const int64_t tile = wide_col_tile<T>(n);
  for (int64_t c0 = 0; c0 < width; c0 += tile) {
    const int64_t w = width - c0 < tile ? width - c0 : tile;
    for (int64_t j = 0; j < (w + V::W - 1) / V::W * V::W; ++j) d[j] = T(0);  // whole vectors: every lane read
    for (int64_t k = 0; k < n; ++k) {  // d = sum dy y (softmax) or sum dy (log_softmax), column by column
      const int64_t off = k * stride + c0;
      for (int64_t j = 0; j < w; j += V::W) {
        R g = load_part<V>(dy + off + j, w - j, 0);
        V::store(d + j, V::add(V::load(d + j), log ? g : V::mul(g, load_part<V>(y + off + j, w - j, 0))));
      }
    }
    const int64_t next_w = std::min(tile, width - c0 - w);
    with_prefetch(next_w > 0, [&](auto fetch) {
      for (int64_t k = 0; k < n; ++k) {
        const int64_t off = k * stride + c0;
        for (int64_t j = 0; j < w; j += V::W) {
          if constexpr (decltype(fetch)::value) prefetch_next_tiles(y + off + w, dy + off + w, dx + off + w, j, next_w);
          R v = load_part<V>(y + off + j, w - j, 0);
          R g = load_part<V>(dy + off + j, w - j, 0);
          R dj = V::load(d + j);
          store_part<V>(dx + off + j, log ? V::sub(g, V::mul(V::exp(v), dj)) : V::mul(v, V::sub(g, dj)), w - j);
        }
      }
    });
  }
}

template <class V>
ActivationUkernels<typename V::T> make_table(const char* name) {
  ActivationUkernels<typename V::T> t;
  t.name = name;
  t.forward = &forward<V>;
  t.backward = &backward<V>;
  t.backward_from_output = &backward_from_output<V>;
  t.softmax_rows = &softmax_rows<V, TwoAccumulators<V>>;
  t.softmax_rows_backward = &softmax_rows_backward<V, TwoAccumulators<V>>;
  t.softmax_cols = &softmax_cols<V>;
  t.softmax_cols_backward = &softmax_cols_backward<V>;
  t.softmax_rows_backward_from_output = &softmax_rows_backward_from_output<V, TwoAccumulators<V>>;
  t.softmax_cols_backward_from_output = &softmax_cols_backward_from_output<V>;
  t.log_sum_exp_rows = &log_sum_exp_rows<V, TwoAccumulators<V>>;
  return t;
}

}  // namespace act_generic
}  // namespace nnx
