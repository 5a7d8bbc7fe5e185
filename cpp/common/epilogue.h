// The fused epilogue that GEMM and convolution apply to each output tile while it is still in cache:
// optional bias (one value per row or per column of C) followed by an optional activation.
#pragma once
#include <cmath>
#include <cstdint>

namespace nnx {

// The activation codes of the whole library, the one list of them: the activation family's element-wise
// kernels take every code but none; the fused epilogue of GEMM and convolution takes the codes that
// act_fusable allows. The bindings export both sets to Python (nnx._C.ACTIVATION_CODES,
// nnx._C.EPILOGUE_ACTIVATIONS); nothing else lists them.
enum class Act : int { none = 0, relu = 1, leaky_relu = 2, sigmoid = 3, tanh = 4, elu = 5 };
constexpr Act kActLast = Act::elu;

// Whether the fused epilogue implements the activation (ELU runs only as a separate element-wise pass).
constexpr bool act_fusable(Act act) { return act != Act::elu; }

template <class T>
struct Epilogue {
  const T* bias = nullptr;  // nullptr: no bias
  bool bias_per_row = false;  // true: bias[i] added to row i of C; false: bias[j] added to column j
  Act act = Act::none;
  T slope = T(0.01);  // leaky_relu's negative slope

  bool empty() const { return bias == nullptr && act == Act::none; }
};

// Scalar activation, each code's definition. The fused epilogues' relu and leaky relu agree with it bit for
// bit; their sigmoid and tanh run through the activation family's vector kernels instead (the bits of
// ops.sigmoid / ops.tanh, within the ops contract's tolerance of these). The helpers of this header
// are `static` so that each translation unit keeps its own copy: one compiled for AVX2 must never be the
// one a portable caller links to (scripts/check_isa_symbols.py checks this).
template <class T>
static inline T apply_act(Act act, T v, T slope) {
  switch (act) {
    case Act::none: return v;
    case Act::relu: return v < T(0) ? T(0) : v;
    case Act::leaky_relu: return v < T(0) ? v * slope : v;
    case Act::sigmoid: {
      // exp of a non-positive argument only: no overflow for any |v|.
      if (v >= T(0)) { T e = std::exp(-v); return T(1) / (T(1) + e); }
      T e = std::exp(v);
      return e / (T(1) + e);
    }
    case Act::tanh: return std::tanh(v);
    case Act::elu: return v < T(0) ? slope * std::expm1(v) : v;  // slope carries ELU's alpha
  }
  return v;
}

// Derivative of the activation expressed through its output y = act(v), so backward needs only y.
template <class T>
static inline T act_grad_from_output(Act act, T y, T slope) {
  switch (act) {
    case Act::none: return T(1);
    case Act::relu: return y > T(0) ? T(1) : T(0);
    case Act::leaky_relu: return y > T(0) ? T(1) : slope;
    case Act::sigmoid: return y * (T(1) - y);
    case Act::tanh: return T(1) - y * y;
    case Act::elu: return y > T(0) ? T(1) : y + slope;  // alpha e^z = y + alpha for z <= 0
  }
  return T(1);
}

// Applies the epilogue to an m x n block of C at (row0, col0) of the full matrix; C is addressed with
// row stride rs and column stride cs.
template <class T>
static inline void apply_epilogue(const Epilogue<T>& ep, int64_t row0, int64_t col0, int64_t m, int64_t n,
                           T* c, int64_t rs, int64_t cs) {
  if (ep.empty()) return;
  for (int64_t i = 0; i < m; ++i) {
    T* ci = c + i * rs;
    for (int64_t j = 0; j < n; ++j) {
      T v = ci[j * cs];
      if (ep.bias) v += ep.bias_per_row ? ep.bias[row0 + i] : ep.bias[col0 + j];
      ci[j * cs] = apply_act(ep.act, v, ep.slope);
    }
  }
}

}  // namespace nnx
