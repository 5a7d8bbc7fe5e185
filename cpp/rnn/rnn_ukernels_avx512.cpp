// AVX-512 step kernels of the recurrent family: rnn_generic.h on 16 x float / 8 x double (ragged tails
// through mask registers), and the per-step product's 8-row micro-kernel (rnn_ukernels.h).
#include <immintrin.h>

#include <type_traits>

#include "activation/vec_avx512.h"
#include "gemm/pack.h"
#include "gemm/pack_transposed_x86.h"
#include "gemm/ukernel_simd.h"
#include "gemm/ukernel_vec_avx512.h"
#include "rnn/rnn_generic.h"

namespace nnx {
namespace {

// ukernel_simd's vector traits on zmm registers, as the GEMM's AVX-512 micro-kernels use them.
template <class T>
using StepVec = typename std::conditional<std::is_same<T, float>::value, avx512::Avx512Float,
                                          avx512::Avx512Double>::type;

// 8 rows x 2 vectors: 16 accumulators, 2 B vectors and a broadcast of the 32 zmm registers.
constexpr int kStepMR = 8;

template <class T>
void step_ukernel_8x2v(int64_t k, const T* a, int64_t rs_a, int64_t cs_a, const T* b, T* c, int64_t rs_c,
                       int64_t cs_c, int64_t m, int64_t n, T alpha, T beta) {
  ukernel_simd<StepVec<T>, kStepMR, 2, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

template <class T>
void step_ukernel_1x2v(int64_t k, const T* a, int64_t rs_a, int64_t cs_a, const T* b, T* c, int64_t rs_c,
                       int64_t cs_c, int64_t m, int64_t n, T alpha, T beta) {
  ukernel_simd<StepVec<T>, 1, 2, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

}  // namespace

template <class T>
void rnn_ukernels_fill_avx512(RnnUkernels<T>& table) {
  using V = avx512::VecOf<T>;
  table = rnn_generic::make_table<V>(sizeof(T) == 4 ? "rnn_avx512_f32" : "rnn_avx512_f64");
  constexpr int NR = 2 * StepVec<T>::W;
  table.step_blocking = GemmBlocking{kStepMR, NR, 256, 0, 0};
  table.step_ukernel = step_ukernel_8x2v<T>;
  table.step_ukernel_row = step_ukernel_1x2v<T>;
  table.step_pack_b = pack_b_transposed<NR, T>;
}

template void rnn_ukernels_fill_avx512<float>(RnnUkernels<float>&);
template void rnn_ukernels_fill_avx512<double>(RnnUkernels<double>&);

}  // namespace nnx
