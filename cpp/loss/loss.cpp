// Loss drivers. Element-wise sums run on the loss micro-kernels (loss_ukernels.h, portable / AVX2); the
// row-wise exponentials of cross-entropy and the sigmoid of BCE's gradient on the activation family's
// SIMD micro-kernels (log_sum_exp_rows, softmax_rows, act_forward); the hinge loss and the simple
// gradients are plain C++ loops.
#include "loss/loss.h"

#include <algorithm>
#include <cmath>

#include "activation/activation.h"
#include "common/isa_table.h"
#include "loss/loss_ukernels.h"
#include "common/threads.h"

namespace nnx {

namespace {

constexpr int64_t kChunkElements = 4096;
// Chunks per thread worth waking a thread for.
constexpr Grain kChunkGrain{8};

// partials[c] = chunk_sum(c) for every chunk, in parallel; then the partials in chunk order.
template <class F>
double chunked_sum(int64_t rows, int64_t cols, double* partials, int nthreads, F chunk_sum) {
  const int64_t per = loss_chunk_rows(cols);
  const int64_t chunks = loss_num_partials(rows, cols);
  parallel_for_each(chunks, kChunkGrain, nthreads,
                    [&](int64_t c) { partials[c] = chunk_sum(c * per, std::min(rows, (c + 1) * per)); });
  double total = 0.0;
  for (int64_t c = 0; c < chunks; ++c) total += partials[c];
  return total;
}

// body(begin, end) over the chunks' row ranges, in parallel when there is enough work.
template <class F>
void for_row_chunks(int64_t rows, int64_t cols, int nthreads, F body) {
  const int64_t per = loss_chunk_rows(cols);
  const int64_t chunks = loss_num_partials(rows, cols);
  parallel_for_each(chunks, kChunkGrain, nthreads, [&](int64_t c) { body(c * per, std::min(rows, (c + 1) * per)); });
}

}  // namespace

template <class T>
const LossUkernels<T>& loss_ukernels() {
  static const IsaTable<LossUkernels<T>> table(
      IsaFills<LossUkernels<T>>{loss_ukernels_fill_portable<T>, NNX_X86_FILL(loss_ukernels_fill_avx2<T>),
                                NNX_X86_FILL(loss_ukernels_fill_avx512<T>)});
  return table.active();
}

int64_t loss_chunk_rows(int64_t cols) { return std::max<int64_t>(1, kChunkElements / std::max<int64_t>(1, cols)); }

int64_t loss_num_partials(int64_t rows, int64_t cols) {
  const int64_t per = loss_chunk_rows(cols);
  return (rows + per - 1) / per;
}

template <class T>
double cross_entropy_sum(const T* z, const int64_t* target, int64_t N, int64_t C, double* partials, int nthreads) {
  constexpr int64_t kBlock = 64;  // rows whose logs are taken together (log_sum_exp_rows)
  return chunked_sum(N, C, partials, nthreads, [&](int64_t b, int64_t e) {
    double acc = 0.0;
    T ls[kBlock], m[kBlock];
    for (int64_t i0 = b; i0 < e; i0 += kBlock) {
      const int64_t nb = std::min(kBlock, e - i0);
      log_sum_exp_rows<T>(z + i0 * C, nb, C, ls, m);
      // -log_softmax(z)_t = log(sum exp(z - m)) - (z_t - m): no cancellation against a large m.
      for (int64_t j = 0; j < nb; ++j) acc += static_cast<double>(ls[j] - (z[(i0 + j) * C + target[i0 + j]] - m[j]));
    }
    return acc;
  });
}

template <class T>
void cross_entropy_backward(const T* z, const int64_t* target, int64_t N, int64_t C, T scale, T* dz, int nthreads) {
  for_row_chunks(N, C, nthreads, [&](int64_t b, int64_t e) {
    softmax_rows<T>(z + b * C, dz + b * C, e - b, C);
    for (int64_t i = b; i < e; ++i) {
      T* di = dz + i * C;
      di[target[i]] -= T(1);
      for (int64_t j = 0; j < C; ++j) di[j] *= scale;
    }
  });
}

template <class T>
double mse_sum(const T* p, const T* t, int64_t n, double* partials, int nthreads) {
  const auto& k = loss_ukernels<T>();
  return chunked_sum(n, 1, partials, nthreads, [&](int64_t b, int64_t e) { return k.mse_sum(p + b, t + b, e - b); });
}

template <class T>
void mse_backward(const T* p, const T* t, int64_t n, T scale, T* dp, int nthreads) {
  const T s2 = scale * T(2);
  for_row_chunks(n, 1, nthreads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) dp[i] = s2 * (p[i] - t[i]);
  });
}

template <class T>
double sum_elements(const T* x, int64_t n, double* partials, int nthreads) {
  const auto& k = loss_ukernels<T>();
  return chunked_sum(n, 1, partials, nthreads, [&](int64_t b, int64_t e) { return k.sum(x + b, e - b); });
}

template <class T>
double bce_with_logits_sum(const T* z, const T* t, int64_t n, double* partials, int nthreads) {
  const auto& k = loss_ukernels<T>();
  return chunked_sum(n, 1, partials, nthreads,
                     [&](int64_t b, int64_t e) { return k.bce_with_logits_sum(z + b, t + b, e - b); });
}

template <class T>
void bce_with_logits_backward(const T* z, const T* t, int64_t n, T scale, T* dz, int nthreads) {
  for_row_chunks(n, 1, nthreads, [&](int64_t b, int64_t e) {
    act_forward<T>(Act::sigmoid, z + b, dz + b, e - b, T(0), 1);  // SIMD sigmoid into dz, then in place
    for (int64_t i = b; i < e; ++i) dz[i] = scale * (dz[i] - t[i]);
  });
}

template <class T>
double multiclass_hinge_sum(const T* s, const int64_t* target, int64_t N, int64_t C, T margin, double* partials,
                            int nthreads) {
  return chunked_sum(N, C, partials, nthreads, [&](int64_t b, int64_t e) {
    double acc = 0.0;
    for (int64_t i = b; i < e; ++i) {
      const T* si = s + i * C;
      const int64_t y = target[i];
      const T sy = si[y];
      T row = 0;
      for (int64_t j = 0; j < C; ++j) {
        const T v = si[j] - sy + margin;
        // !(v <= 0) rather than v > 0 so that a NaN score makes the loss NaN, as max(0, NaN) does.
        if (j != y && !(v <= T(0))) row += v;
      }
      acc += static_cast<double>(row);
    }
    return acc;
  });
}

template <class T>
void multiclass_hinge_backward(const T* s, const int64_t* target, int64_t N, int64_t C, T margin, T scale, T* ds,
                               int nthreads) {
  for_row_chunks(N, C, nthreads, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const T* si = s + i * C;
      T* di = ds + i * C;
      const int64_t y = target[i];
      const T sy = si[y];
      int64_t active = 0;
      for (int64_t j = 0; j < C; ++j) {
        const bool on = j != y && si[j] - sy + margin > T(0);
        di[j] = on ? scale : T(0);
        active += on;
      }
      di[y] = -scale * static_cast<T>(active);
    }
  });
}

#define NNX_LOSS_INSTANTIATE(T)                                                                             \
  template double cross_entropy_sum<T>(const T*, const int64_t*, int64_t, int64_t, double*, int);            \
  template void cross_entropy_backward<T>(const T*, const int64_t*, int64_t, int64_t, T, T*, int);           \
  template double mse_sum<T>(const T*, const T*, int64_t, double*, int);                                    \
  template double sum_elements<T>(const T*, int64_t, double*, int);                                         \
  template void mse_backward<T>(const T*, const T*, int64_t, T, T*, int);                                   \
  template double bce_with_logits_sum<T>(const T*, const T*, int64_t, double*, int);                        \
  template void bce_with_logits_backward<T>(const T*, const T*, int64_t, T, T*, int);                       \
  template double multiclass_hinge_sum<T>(const T*, const int64_t*, int64_t, int64_t, T, double*, int);      \
  template void multiclass_hinge_backward<T>(const T*, const int64_t*, int64_t, int64_t, T, T, T*, int);
NNX_LOSS_INSTANTIATE(float)
NNX_LOSS_INSTANTIATE(double)
#undef NNX_LOSS_INSTANTIATE

}  // namespace nnx
