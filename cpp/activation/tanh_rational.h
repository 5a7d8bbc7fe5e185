// The float tanh of the vector kernels, written once over activation_generic.h's vector interface V and
// instantiated by the AVX2 and AVX-512 types (so both give the same bits): an odd rational
// function, tanh(x) = x P(x^2) / Q(x^2) for |x| <= kTanhClamp, with P and Q of degree 4 and P(0) = Q(0) = 1.
// Fitted for this library by iteratively reweighted least squares on relative error (tanh(x) / x against
// P / Q over t = x^2 in [0, 81]): 2.2e-8 in exact arithmetic. Evaluated in float with Horner's rule it is
// within 6 ulp of the correctly rounded tanh (3.3e-7 relative, near x = 8.5; 3 ulp below 1, 4 below 4, less
// than 1 on average), measured on every third float from 2^-20 to 10. Past 8.9, where tanh is within 1 ulp
// of 1 in float (1 - 3.7e-8), x is clamped to +-8.9 (x P / Q is +-1 there), and the result to [-1, 1] (from
// 8.2 up it rounded 1 ulp past 1); the clamps keep NaN. It costs 4 clamps, 8 multiply-adds, 2 products and
// one division where tanh|x| = -m / (m + 2) with m = expm1(-2|x|) took about 20 operations: 1.6x the
// throughput in L1 (Xeon).
#pragma once

namespace nnx {

constexpr float kTanhClamp = 8.9f;
// Coefficients of t^4, t^3, t^2, t^1, t^0, for Horner's rule.
constexpr float kTanhP[5] = {1.3423016667354567e-08f, 2.0663577594838805e-05f, 0.003499137088872258f,
                             0.1338409907948701f, 1.f};
constexpr float kTanhQ[5] = {7.806039836947239e-07f, 0.00032912687684901403f, 0.025890743101437443f,
                             0.467174205872721f, 1.f};

template <class V>
inline typename V::R tanh_rational(typename V::R x) {
  using R = typename V::R;
  x = V::max(V::set1(-kTanhClamp), V::min(V::set1(kTanhClamp), x));
  const R t = V::mul(x, x);
  R p = V::set1(kTanhP[0]), q = V::set1(kTanhQ[0]);
  for (int i = 1; i < 5; ++i) {
    p = V::fmadd(p, t, V::set1(kTanhP[i]));
    q = V::fmadd(q, t, V::set1(kTanhQ[i]));
  }
  const R y = V::div(V::mul(x, p), q);
  return V::max(V::set1(-1.f), V::min(V::set1(1.f), y));
}

}  // namespace nnx
