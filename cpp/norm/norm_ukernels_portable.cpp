// Portable twin of the normalization micro-kernels: the generic kernels on a one-lane "vector", built for
// the baseline ISA.
#include "norm/norm_generic.h"

namespace nnx {
namespace {

template <class Tp>
struct ScalarVec {
  using T = Tp;
  using R = Tp;
  using M = bool;
  static constexpr int W = 1;
  static R load(const T* p) { return *p; }
  static void store(T* p, R v) { *p = v; }
  // With one lane a partial vector is never needed (cnt >= 1 = W); defined for the interface.
  static R load_partial(const T* p, int64_t cnt, T pad) { return cnt > 0 ? *p : pad; }
  static void store_partial(T* p, R v, int64_t cnt) { if (cnt > 0) *p = v; }
  static R set1(T v) { return v; }
  static R zero() { return T(0); }
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  static R fmadd(R a, R b, R c) { return a * b + c; }
  // x86 maxps semantics: an unordered (NaN) pair returns b.
  static R max(R a, R b) { return a > b ? a : b; }
  static M gt(R a, R b) { return a > b; }
  static R select(M m, R a, R b) { return m ? a : b; }
  static T hsum(R a) { return a; }
};

}  // namespace

template <class T>
void norm_ukernels_fill_portable(NormUkernels<T>& table) {
  table = norm_generic::make_table<ScalarVec<T>>(sizeof(T) == 4 ? "norm_portable_f32" : "norm_portable_f64");
}

template void norm_ukernels_fill_portable<float>(NormUkernels<float>&);
template void norm_ukernels_fill_portable<double>(NormUkernels<double>&);

}  // namespace nnx
