// The normalization micro-kernels, written once against a small vector interface V and instantiated per
// ISA (norm_ukernels_portable.cpp: one lane; norm_ukernels_avx2.cpp: 8 x float / 4 x double;
// norm_ukernels_avx512.cpp: 16 x float / 8 x double).
//
// V provides: T, R (register), M (mask), W (lanes); load/store/set1/zero; load_partial(p, cnt, pad) /
// store_partial(p, v, cnt) for the first cnt < W lanes (never touching memory past them); add/sub/mul;
// fmadd(a, b, c) = a * b + c; max with the x86 rule "an unordered pair returns the second operand" (so
// max(zero, x) keeps a NaN x); gt -> M; select(m, a, b) = m ? a : b; hsum (fixed lane order).
//
// Sums use four accumulators (a fixed pattern: element i goes to accumulator (i / W) % 4 while whole
// groups of 4W remain) so a result depends on the run's length only, never on where a thread started.
// Ragged tails go through partial vectors padded so they add nothing.
#pragma once
#include <cstdint>

#include "activation/activation_generic.h"
#include "norm/norm_ukernels.h"

namespace nnx {
namespace norm_generic {

// Whole or partial vectors, as the activation kernels load and store them (one definition of the tail rule).
using act_generic::load_part;
using act_generic::store_part;

// The sum over [0, n) of f(i, cnt), the vector of elements i .. i + W - 1 (`cnt` valid lanes), each added into
// its accumulator by add(accumulator, vector).
template <class V, class F, class Add>
inline typename V::R reduce_by(int64_t n, F f, Add add) {
  using R = typename V::R;
  R a0 = V::zero(), a1 = V::zero(), a2 = V::zero(), a3 = V::zero();
  int64_t i = 0;
  for (; i + 4 * V::W <= n; i += 4 * V::W) {
    a0 = add(a0, f(i, V::W));
    a1 = add(a1, f(i + V::W, V::W));
    a2 = add(a2, f(i + 2 * V::W, V::W));
    a3 = add(a3, f(i + 3 * V::W, V::W));
  }
  for (; i < n; i += V::W) a0 = add(a0, f(i, n - i));
  return V::add(V::add(a0, a1), V::add(a2, a3));
}

template <class V, class F>
inline typename V::R reduce(int64_t n, F f) {
  return reduce_by<V>(n, f, [](typename V::R a, typename V::R v) { return V::add(a, v); });
}

// The sum of the squares, each square fused into its add (these kernels compile without contraction:
// CMakeLists.txt).
template <class V, class F>
inline typename V::R reduce_squares(int64_t n, F f) {
  return reduce_by<V>(n, f, [](typename V::R a, typename V::R d) { return V::fmadd(d, d, a); });
}

// f(i, cnt) over [0, n) a vector at a time: whole vectors with cnt the constant V::W (so load_part and
// store_part inside f test no lane count), then the ragged tail.
template <class V, class F>
inline void for_vectors(int64_t n, F f) {
  int64_t i = 0;
  for (; i + V::W <= n; i += V::W) f(i, int64_t{V::W});
  if (i < n) f(i, n - i);
}

// Over `runs` runs of n elements, run r starting at x + r * stride.
template <class V>
void moments(const typename V::T* x, int64_t runs, int64_t n, int64_t stride, double* mean, double* m2) {
  using T = typename V::T;
  using R = typename V::R;
  R s = V::zero();
  for (int64_t r = 0; r < runs; ++r) {
    const T* p = x + r * stride;
    s = V::add(s, reduce<V>(n, [&](int64_t i, int64_t c) { return load_part<V>(p + i, c, T(0)); }));
  }
  const double cnt = static_cast<double>(runs) * static_cast<double>(n);
  const double m = static_cast<double>(V::hsum(s)) / cnt;
  // Deviations from the mean rounded to T; the exact M2 about m follows from the shift formula.
  const T mt = static_cast<T>(m);
  const R mv = V::set1(mt);
  R q = V::zero();
  for (int64_t r = 0; r < runs; ++r) {
    const T* p = x + r * stride;
    q = V::add(q, reduce_squares<V>(n, [&](int64_t i, int64_t c) { return V::sub(load_part<V>(p + i, c, mt), mv); }));
  }
  const double shift = m - static_cast<double>(mt);
  *mean = m;
  *m2 = static_cast<double>(V::hsum(q)) - cnt * shift * shift;
}

template <class V, bool Relu>
void affine_run(const typename V::T* x, typename V::T* y, int64_t n, typename V::T m, typename V::T a,
                typename V::T b) {
  using R = typename V::R;
  const R mv = V::set1(m), av = V::set1(a), bv = V::set1(b), zero = V::zero();
  for (int64_t i = 0; i < n; i += V::W) {
    R v = V::fmadd(V::sub(load_part<V>(x + i, n - i, 0), mv), av, bv);
    if (Relu) v = V::max(zero, v);
    store_part<V>(y + i, v, n - i);
  }
}

template <class V>
void affine(const typename V::T* x, typename V::T* y, int64_t n, typename V::T m, typename V::T a, typename V::T b,
            bool relu) {
  if (relu) affine_run<V, true>(x, y, n, m, a, b);
  else affine_run<V, false>(x, y, n, m, a, b);
}

// g = dy, masked by y > 0 when y is given (the fused ReLU's derivative).
template <class V, bool Masked>
inline typename V::R grad_at(const typename V::T* dy, const typename V::T* y, int64_t i, int64_t cnt) {
  auto g = load_part<V>(dy + i, cnt, 0);
  if (Masked) g = V::select(V::gt(load_part<V>(y + i, cnt, 0), V::zero()), g, V::zero());
  return g;
}

// Both sums in one sweep (two accumulator pairs; the split depends on n only).
template <class V, bool Masked>
void grad_sums_run(const typename V::T* dy, const typename V::T* x, const typename V::T* y, int64_t runs, int64_t n,
                   int64_t stride, typename V::T mean, double* s1, double* s2) {
  using R = typename V::R;
  const R mv = V::set1(mean);
  R a1 = V::zero(), b1 = V::zero(), a2 = V::zero(), b2 = V::zero();
  for (int64_t r = 0; r < runs; ++r) {
    const int64_t o = r * stride;
    int64_t i = 0;
    for (; i + 2 * V::W <= n; i += 2 * V::W) {
      const R g0 = grad_at<V, Masked>(dy, y, o + i, V::W);
      const R g1 = grad_at<V, Masked>(dy, y, o + i + V::W, V::W);
      a1 = V::add(a1, g0);
      b1 = V::add(b1, g1);
      a2 = V::fmadd(g0, V::sub(V::load(x + o + i), mv), a2);
      b2 = V::fmadd(g1, V::sub(V::load(x + o + i + V::W), mv), b2);
    }
    for (; i < n; i += V::W) {
      const R g = grad_at<V, Masked>(dy, y, o + i, n - i);
      a1 = V::add(a1, g);
      a2 = V::fmadd(g, V::sub(load_part<V>(x + o + i, n - i, mean), mv), a2);
    }
  }
  *s1 = V::hsum(V::add(a1, b1));
  *s2 = V::hsum(V::add(a2, b2));
}

template <class V>
void grad_sums(const typename V::T* dy, const typename V::T* x, const typename V::T* y, int64_t runs, int64_t n,
               int64_t stride, typename V::T mean, double* s1, double* s2) {
  if (y) grad_sums_run<V, true>(dy, x, y, runs, n, stride, mean, s1, s2);
  else grad_sums_run<V, false>(dy, x, y, runs, n, stride, mean, s1, s2);
}

template <class V, bool Masked>
void grad_apply_run(const typename V::T* dy, const typename V::T* x, const typename V::T* y, typename V::T* dx,
                    int64_t n, typename V::T m, typename V::T a, typename V::T b, typename V::T d) {
  using R = typename V::R;
  const R mv = V::set1(m), av = V::set1(a), bv = V::set1(b), dv = V::set1(d);
  for (int64_t i = 0; i < n; i += V::W) {
    const R g = grad_at<V, Masked>(dy, y, i, n - i);
    const R t = V::fmadd(bv, V::sub(load_part<V>(x + i, n - i, 0), mv), dv);
    store_part<V>(dx + i, V::fmadd(av, g, t), n - i);
  }
}

template <class V>
void grad_apply(const typename V::T* dy, const typename V::T* x, const typename V::T* y, typename V::T* dx,
                int64_t n, typename V::T m, typename V::T a, typename V::T b, typename V::T d) {
  if (y) grad_apply_run<V, true>(dy, x, y, dx, n, m, a, b, d);
  else grad_apply_run<V, false>(dy, x, y, dx, n, m, a, b, d);
}

// ---------------------------------------------------------------- (N, C) blocks: vectors across columns
// Each column's sums run down the rows in order, one chain per vector of columns; G vectors of columns are
// summed side by side so that G chains are in flight (one chain was bound by the adds' latency: a 64 x 256
// batch's forward spent 40% of its time there). The grouping changes no column's order, so no bits.
constexpr int kColGroup = 4;

template <class V, int G>
void col_moments_group(const typename V::T* x, int64_t rows, int64_t w, int64_t ld, double* mean, double* m2) {
  using T = typename V::T;
  using R = typename V::R;
  R s[G], q[G], mv[G];
  for (int g = 0; g < G; ++g) s[g] = q[g] = V::zero();
  for (int64_t r = 0; r < rows; ++r)
    for (int g = 0; g < G; ++g) s[g] = V::add(s[g], load_part<V>(x + r * ld + g * V::W, w - g * V::W, T(0)));
  T buf[G * V::W], mt[G * V::W];
  double m[G * V::W];
  for (int g = 0; g < G; ++g) V::store(buf + g * V::W, s[g]);
  for (int l = 0; l < G * V::W; ++l) {
    m[l] = static_cast<double>(buf[l]) / static_cast<double>(rows);
    mt[l] = static_cast<T>(m[l]);
  }
  for (int g = 0; g < G; ++g) mv[g] = V::load(mt + g * V::W);
  for (int64_t r = 0; r < rows; ++r)
    for (int g = 0; g < G; ++g) {
      const R d = V::sub(load_part<V>(x + r * ld + g * V::W, w - g * V::W, T(0)), mv[g]);
      q[g] = V::fmadd(d, d, q[g]);
    }
  for (int g = 0; g < G; ++g) V::store(buf + g * V::W, q[g]);
  for (int l = 0; l < G * V::W && l < w; ++l) {
    const double shift = m[l] - static_cast<double>(mt[l]);
    mean[l] = m[l];
    m2[l] = static_cast<double>(buf[l]) - static_cast<double>(rows) * shift * shift;
  }
}

template <class V>
void col_moments(const typename V::T* x, int64_t rows, int64_t w, int64_t ld, double* mean, double* m2) {
  int64_t j = 0;
  for (; j + kColGroup * V::W <= w; j += kColGroup * V::W)
    col_moments_group<V, kColGroup>(x + j, rows, w - j, ld, mean + j, m2 + j);
  for (; j < w; j += V::W) col_moments_group<V, 1>(x + j, rows, w - j, ld, mean + j, m2 + j);
}

template <class V, bool Masked, int G>
void col_grad_sums_group(const typename V::T* dy, const typename V::T* x, const typename V::T* y, int64_t rows,
                         int64_t w, int64_t ld, const typename V::T* mean, double* s1, double* s2) {
  using T = typename V::T;
  using R = typename V::R;
  R mv[G], a1[G], a2[G];
  for (int g = 0; g < G; ++g) {
    mv[g] = load_part<V>(mean + g * V::W, w - g * V::W, T(0));
    a1[g] = a2[g] = V::zero();
  }
  for (int64_t r = 0; r < rows; ++r)
    for (int g = 0; g < G; ++g) {
      const int64_t o = r * ld + g * V::W, cnt = w - g * V::W;
      const R gr = grad_at<V, Masked>(dy, y, o, cnt);
      a1[g] = V::add(a1[g], gr);
      a2[g] = V::fmadd(gr, V::sub(load_part<V>(x + o, cnt, T(0)), mv[g]), a2[g]);
    }
  T b1[G * V::W], b2[G * V::W];
  for (int g = 0; g < G; ++g) {
    V::store(b1 + g * V::W, a1[g]);
    V::store(b2 + g * V::W, a2[g]);
  }
  for (int l = 0; l < G * V::W && l < w; ++l) {
    s1[l] = b1[l];
    s2[l] = b2[l];
  }
}

template <class V, bool Masked>
void col_grad_sums_run(const typename V::T* dy, const typename V::T* x, const typename V::T* y, int64_t rows,
                       int64_t w, int64_t ld, const typename V::T* mean, double* s1, double* s2) {
  int64_t j = 0;
  for (; j + kColGroup * V::W <= w; j += kColGroup * V::W)
    col_grad_sums_group<V, Masked, kColGroup>(dy + j, x + j, y ? y + j : y, rows, w - j, ld, mean + j, s1 + j,
                                              s2 + j);
  for (; j < w; j += V::W)
    col_grad_sums_group<V, Masked, 1>(dy + j, x + j, y ? y + j : y, rows, w - j, ld, mean + j, s1 + j, s2 + j);
}

template <class V>
void col_grad_sums(const typename V::T* dy, const typename V::T* x, const typename V::T* y, int64_t rows, int64_t w,
                   int64_t ld, const typename V::T* mean, double* s1, double* s2) {
  if (y) col_grad_sums_run<V, true>(dy, x, y, rows, w, ld, mean, s1, s2);
  else col_grad_sums_run<V, false>(dy, x, y, rows, w, ld, mean, s1, s2);
}

template <class V, bool Relu>
void affine_rows_run(const typename V::T* x, typename V::T* y, int64_t rows, int64_t C, const typename V::T* m,
                     const typename V::T* a, const typename V::T* b) {
  using R = typename V::R;
  const R zero = V::zero();
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r * C;
    for (int64_t j = 0; j < C; j += V::W) {
      const int64_t cnt = C - j;
      const R xc = V::sub(load_part<V>(x + o + j, cnt, 0), load_part<V>(m + j, cnt, 0));
      R v = V::fmadd(xc, load_part<V>(a + j, cnt, 0), load_part<V>(b + j, cnt, 0));
      if (Relu) v = V::max(zero, v);
      store_part<V>(y + o + j, v, cnt);
    }
  }
}

template <class V>
void affine_rows(const typename V::T* x, typename V::T* y, int64_t rows, int64_t C, const typename V::T* m,
                 const typename V::T* a, const typename V::T* b, bool relu) {
  if (relu) affine_rows_run<V, true>(x, y, rows, C, m, a, b);
  else affine_rows_run<V, false>(x, y, rows, C, m, a, b);
}

template <class V, bool Masked>
void grad_apply_rows_run(const typename V::T* dy, const typename V::T* x, const typename V::T* y, typename V::T* dx,
                         int64_t rows, int64_t C, const typename V::T* m, const typename V::T* a,
                         const typename V::T* b, const typename V::T* d) {
  using R = typename V::R;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t o = r * C;
    for (int64_t j = 0; j < C; j += V::W) {
      const int64_t cnt = C - j;
      const R g = grad_at<V, Masked>(dy, y, o + j, cnt);
      const R xc = V::sub(load_part<V>(x + o + j, cnt, 0), load_part<V>(m + j, cnt, 0));
      const R t = V::fmadd(load_part<V>(b + j, cnt, 0), xc, load_part<V>(d + j, cnt, 0));
      store_part<V>(dx + o + j, V::fmadd(load_part<V>(a + j, cnt, 0), g, t), cnt);
    }
  }
}

template <class V>
void grad_apply_rows(const typename V::T* dy, const typename V::T* x, const typename V::T* y, typename V::T* dx,
                     int64_t rows, int64_t C, const typename V::T* m, const typename V::T* a, const typename V::T* b,
                     const typename V::T* d) {
  if (y) grad_apply_rows_run<V, true>(dy, x, y, dx, rows, C, m, a, b, d);
  else grad_apply_rows_run<V, false>(dy, x, y, dx, rows, C, m, a, b, d);
}

// ---------------------------------------------------------------- layer norm rows
// The row is in L1 (moments just read it) and the arithmetic light, so past_caches streams straight from the
// loop (act_generic::stream_values). A/B against cached stores, one process (Zen 4): 8192 x 512 0.98x at 1
// thread and 1.23x at 2, 16384 x 1024 1.15x and 1.10x.
template <class V>
void ln_apply(const typename V::T* x, typename V::T* y, int64_t n, typename V::T mean, typename V::T invstd,
              const typename V::T* w, const typename V::T* b, bool past_caches) {
  using R = typename V::R;
  const R mv = V::set1(mean), iv = V::set1(invstd);
  auto value = [&](int64_t i, int64_t cnt) {
    R v = V::mul(V::sub(load_part<V>(x + i, cnt, 0), mv), iv);
    if (w && b) return V::fmadd(v, load_part<V>(w + i, cnt, 0), load_part<V>(b + i, cnt, 0));
    if (w) v = V::mul(v, load_part<V>(w + i, cnt, 0));
    if (b) v = V::add(v, load_part<V>(b + i, cnt, 0));
    return v;
  };
  if (past_caches && V::kStreams) return act_generic::stream_values<V>(y, n, value);
  for_vectors<V>(n, [&](int64_t i, int64_t cnt) { store_part<V>(y + i, value(i, cnt), cnt); });
}

template <class V>
void ln_grad_sums(const typename V::T* dy, const typename V::T* x, const typename V::T* w, int64_t n,
                  typename V::T mean, typename V::T invstd, double* s1, double* s2) {
  using R = typename V::R;
  const R mv = V::set1(mean), iv = V::set1(invstd);
  // Both sums in one pass over the row, each with reduce's four accumulators and order (so the bits of
  // two reduce calls): two passes read dy and w twice and ran behind PyTorch on 8192 x 512 rows.
  R a[4] = {V::zero(), V::zero(), V::zero(), V::zero()}, b[4] = {V::zero(), V::zero(), V::zero(), V::zero()};
  auto step = [&](int k, int64_t i, int64_t c) {
    R g = load_part<V>(dy + i, c, 0);
    if (w) g = V::mul(g, load_part<V>(w + i, c, 0));
    a[k] = V::add(a[k], g);
    b[k] = V::fmadd(g, V::mul(V::sub(load_part<V>(x + i, c, mean), mv), iv), b[k]);
  };
  int64_t i = 0;
  for (; i + 4 * V::W <= n; i += 4 * V::W)
    for (int k = 0; k < 4; ++k) step(k, i + k * V::W, V::W);
  for (; i < n; i += V::W) step(0, i, n - i);
  *s1 = V::hsum(V::add(V::add(a[0], a[1]), V::add(a[2], a[3])));
  *s2 = V::hsum(V::add(V::add(b[0], b[1]), V::add(b[2], b[3])));
}

// The apply pass reads the row from L1 (ln_grad_sums just read it), so memory would idle through it: it asks for
// the next row's dy and x (next_dy / next_x, or null) a line a step, and streams dx past the caches where
// past_caches says so (the caller fences).
template <class V>
void ln_grad_apply(const typename V::T* dy, const typename V::T* x, const typename V::T* w, typename V::T* dx,
                   int64_t n, typename V::T mean, typename V::T invstd, typename V::T c1, typename V::T c2,
                   typename V::T* dw_acc, typename V::T* db_acc, bool past_caches, const typename V::T* next_dy,
                   const typename V::T* next_x) {
  using T = typename V::T;
  using R = typename V::R;
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  const R mv = V::set1(mean), iv = V::set1(invstd), c1v = V::set1(c1), c2v = V::set1(c2);
  // The vector of dx at i; the weight and bias sums along the way.
  auto step = [&](int64_t i, int64_t cnt) {
    if (next_dy && i % kLine == 0) {
      __builtin_prefetch(next_dy + i, 0, 2);
      __builtin_prefetch(next_x + i, 0, 2);
    }
    const R d = load_part<V>(dy + i, cnt, 0);
    const R xh = V::mul(V::sub(load_part<V>(x + i, cnt, 0), mv), iv);
    if (dw_acc) store_part<V>(dw_acc + i, V::fmadd(d, xh, load_part<V>(dw_acc + i, cnt, 0)), cnt);
    if (db_acc) store_part<V>(db_acc + i, V::add(d, load_part<V>(db_acc + i, cnt, 0)), cnt);
    const R g = w ? V::mul(d, load_part<V>(w + i, cnt, 0)) : d;
    // invstd * (g - c1 - xhat * c2)
    return V::mul(iv, V::sub(V::sub(g, c1v), V::mul(xh, c2v)));
  };
  if (!dx) {
    for_vectors<V>(n, [&](int64_t i, int64_t cnt) { step(i, cnt); });
  } else if (past_caches && V::kStreams) {
    act_generic::stream_values<V>(dx, n, step);
  } else {
    for_vectors<V>(n, [&](int64_t i, int64_t cnt) { store_part<V>(dx + i, step(i, cnt), cnt); });
  }
}

template <class V>
NormUkernels<typename V::T> make_table(const char* name) {
  NormUkernels<typename V::T> t;
  t.name = name;
  t.moments = moments<V>;
  t.affine = affine<V>;
  t.grad_sums = grad_sums<V>;
  t.grad_apply = grad_apply<V>;
  t.col_moments = col_moments<V>;
  t.col_grad_sums = col_grad_sums<V>;
  t.affine_rows = affine_rows<V>;
  t.grad_apply_rows = grad_apply_rows<V>;
  t.ln_apply = ln_apply<V>;
  t.ln_grad_sums = ln_grad_sums<V>;
  t.ln_grad_apply = ln_grad_apply<V>;
  return t;
}

}  // namespace norm_generic
}  // namespace nnx
