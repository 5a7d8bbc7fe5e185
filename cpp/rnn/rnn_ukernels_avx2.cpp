// AVX2 + FMA step kernels of the recurrent family: rnn_generic.h on 8 x float / 4 x double, and the per-step
// product on the GEMM's AVX2 tile (6 rows x 2 vectors, its KC: the bits of the GEMM family's kernel) with the
// same tile on one row for short blocks (rnn_ukernels.h).
#include <immintrin.h>

#include <type_traits>

#include "activation/vec_avx2.h"
#include "gemm/gemm_config.h"
#include "gemm/pack.h"
#include "gemm/pack_transposed_x86.h"
#include "gemm/ukernel_simd.h"
#include "gemm/ukernel_vec_avx2.h"
#include "rnn/rnn_generic.h"

namespace nnx {
namespace {

template <class T>
using StepVec = typename std::conditional<std::is_same<T, float>::value, avx2::Avx2Float, avx2::Avx2Double>::type;

template <class T>
constexpr GemmBlocking step_blocking() {
  return std::is_same<T, float>::value ? kSgemmBlockingAvx2 : kDgemmBlockingAvx2;
}

template <class T, int MR>
void step_ukernel_avx2(int64_t k, const T* a, int64_t rs_a, int64_t cs_a, const T* b, T* c, int64_t rs_c,
                       int64_t cs_c, int64_t m, int64_t n, T alpha, T beta) {
  static_assert(step_blocking<T>().nr == 2 * StepVec<T>::W, "the GEMM's AVX2 tile is 2 vectors wide");
  ukernel_simd<StepVec<T>, MR, 2, true>(k, a, rs_a, cs_a, b, c, rs_c, cs_c, m, n, alpha, beta);
}

}  // namespace

template <class T>
void rnn_ukernels_fill_avx2(RnnUkernels<T>& table) {
  using V = avx2::VecOf<T>;
  table = rnn_generic::make_table<V>(sizeof(T) == 4 ? "rnn_avx2_f32" : "rnn_avx2_f64");
  constexpr GemmBlocking bl = step_blocking<T>();
  table.step_blocking = GemmBlocking{bl.mr, bl.nr, bl.kc, 0, 0};
  table.step_ukernel = step_ukernel_avx2<T, bl.mr>;
  table.step_ukernel_row = step_ukernel_avx2<T, 1>;
  table.step_pack_b = pack_b_transposed<bl.nr, T>;
}

template void rnn_ukernels_fill_avx2<float>(RnnUkernels<float>&);
template void rnn_ukernels_fill_avx2<double>(RnnUkernels<double>&);

}  // namespace nnx
