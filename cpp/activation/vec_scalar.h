// The vector interface of act/activation_generic.h on one scalar lane with the C library's exp / expm1 / tanh:
// the portable twin of every family whose element-wise kernels are written against that interface
// (activations, normalization, recurrent gates), built for the baseline ISA.
#pragma once
#include <cmath>
#include <cstdint>

namespace nnx {
namespace portable {

template <class Tp>
struct ScalarVec {
  using T = Tp;
  using R = Tp;
  using M = bool;
  static constexpr int W = 1;
  static R load(const T* p) { return *p; }
  static void store(T* p, R v) { *p = v; }
  // No non-temporal store in portable C++: an ordinary one, and kStreams false, so the kernels keep their cached
  // path rather than buffer for nothing.
  static void stream(T* p, R v) { *p = v; }
  static void stream_fence() {}
  static constexpr bool kStreams = false;
  // With one lane a partial vector is never needed (cnt >= 1 = W); defined for the interface.
  static R load_partial(const T* p, int64_t cnt, T pad) { return cnt > 0 ? *p : pad; }
  static void store_partial(T* p, R v, int64_t cnt) { if (cnt > 0) *p = v; }
  static R set1(T v) { return v; }
  static R zero() { return T(0); }
  static R add(R a, R b) { return a + b; }
  static R sub(R a, R b) { return a - b; }
  static R mul(R a, R b) { return a * b; }
  static R fmadd(R a, R b, R c) { return a * b + c; }
  static R div(R a, R b) { return a / b; }
  // x86 maxps/minps semantics: an unordered (NaN) pair returns b.
  static R max(R a, R b) { return a > b ? a : b; }
  static R min(R a, R b) { return a < b ? a : b; }
  static R abs(R a) { return std::fabs(a); }
  static R neg_abs(R a) { return -std::fabs(a); }
  static M gt(R a, R b) { return a > b; }
  static M ge(R a, R b) { return a >= b; }
  static R select(M m, R a, R b) { return m ? a : b; }
  static R exp(R a) { return std::exp(a); }
  static R exp_nonpos(R a) { return std::exp(a); }
  static R expm1_nonpos(R a) { return std::expm1(a); }
  static R tanh(R a) { return std::tanh(a); }
  static T hsum(R a) { return a; }
  static T hmax(R a) { return a; }
};

}  // namespace portable
}  // namespace nnx
