// Portable twins of the loss micro-kernels (C library log1p / exp).
#include <algorithm>
#include <cmath>

#include "loss/loss_ukernels.h"

namespace nnx {
namespace {

template <class T>
double mse_sum_portable(const T* p, const T* t, int64_t n) {
  // Four interleaved sums (fixed order) so the additions pipeline.
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    double d0 = double(p[i]) - double(t[i]), d1 = double(p[i + 1]) - double(t[i + 1]);
    double d2 = double(p[i + 2]) - double(t[i + 2]), d3 = double(p[i + 3]) - double(t[i + 3]);
    a0 += d0 * d0;
    a1 += d1 * d1;
    a2 += d2 * d2;
    a3 += d3 * d3;
  }
  for (; i < n; ++i) {
    double d = double(p[i]) - double(t[i]);
    a0 += d * d;
  }
  return (a0 + a1) + (a2 + a3);
}

template <class T>
double sum_portable(const T* x, int64_t n) {
  double a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    a0 += double(x[i]);
    a1 += double(x[i + 1]);
    a2 += double(x[i + 2]);
    a3 += double(x[i + 3]);
  }
  for (; i < n; ++i) a0 += double(x[i]);
  return (a0 + a1) + (a2 + a3);
}

template <class T>
double bce_sum_portable(const T* z, const T* t, int64_t n) {
  double acc = 0.0;
  for (int64_t i = 0; i < n; ++i) acc += bce_term_scalar(z[i], t[i]);
  return acc;
}

}  // namespace

template <class T>
void loss_ukernels_fill_portable(LossUkernels<T>& table) {
  table = LossUkernels<T>{sizeof(T) == 4 ? "loss_portable_f32" : "loss_portable_f64", &mse_sum_portable<T>,
                          &bce_sum_portable<T>, &sum_portable<T>};
}
template void loss_ukernels_fill_portable<float>(LossUkernels<float>&);
template void loss_ukernels_fill_portable<double>(LossUkernels<double>&);

}  // namespace nnx
