// AVX2 maxout micro-kernels: the generic kernels (maxout_generic.h) on 8 x float / 4 x double, ragged
// tails through masked loads and stores.
#include <immintrin.h>

#include <type_traits>

#include "activation/vec_avx2.h"
#include "maxout/maxout_generic.h"

namespace nnx {
namespace {

// The backward of rows one element wide (a Linear's outputs, inner == 1) with 2 or 4 pieces, float: K-piece
// groups side by side in a register (8 / K of them), each piece broadcast across its group's lanes by an in-lane
// shuffle, the winner found as winner() does (strictly greater replaces, in piece order: a tie or a NaN later
// keeps the earlier piece, a NaN first wins), and each lane given dy where its piece is the winner. The one-lane
// loop it replaces ran 1.5x behind PyTorch's scatter of saved indices (Xeon, 1 thread, against it: 256 x 1024
// with 4 pieces 1.75x, 2 pieces 1.20x; 4096 x 1024 with 4 pieces 2.15x).
template <int K>
void backward_grouped_f32(const float* dy, const float* x, float* dx, int64_t rows) {
  static_assert(K == 2 || K == 4, "groups of a 128-bit lane");
  constexpr int kGroups = 8 / K;
  const __m256 piece_of_lane = K == 4 ? _mm256_setr_ps(0, 1, 2, 3, 0, 1, 2, 3)  // each lane's piece in its group
                                       : _mm256_setr_ps(0, 1, 0, 1, 0, 1, 0, 1);
  const __m256i group_of_lane = K == 4 ? _mm256_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1)
                                       : _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
  int64_t r = 0;
  for (; r + kGroups <= rows; r += kGroups) {
    const __m256 v = _mm256_loadu_ps(x + r * K);
    __m256 m, w;
    if constexpr (K == 4) {
      m = _mm256_permute_ps(v, 0x00);
      w = _mm256_setzero_ps();
      const __m256 b[3] = {_mm256_permute_ps(v, 0x55), _mm256_permute_ps(v, 0xAA), _mm256_permute_ps(v, 0xFF)};
      for (int j = 0; j < 3; ++j) {
        const __m256 better = _mm256_cmp_ps(b[j], m, _CMP_GT_OQ);
        m = _mm256_blendv_ps(m, b[j], better);
        w = _mm256_blendv_ps(w, _mm256_set1_ps(static_cast<float>(j + 1)), better);
      }
    } else {
      m = _mm256_permute_ps(v, _MM_SHUFFLE(2, 2, 0, 0));
      const __m256 better = _mm256_cmp_ps(_mm256_permute_ps(v, _MM_SHUFFLE(3, 3, 1, 1)), m, _CMP_GT_OQ);
      w = _mm256_and_ps(better, _mm256_set1_ps(1.f));
    }
    // dy of each group in its lanes: the kGroups values loaded (8 or 16 bytes), spread by a lane permute.
    const __m128 d =
        K == 4 ? _mm_castsi128_ps(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(dy + r))) : _mm_loadu_ps(dy + r);
    const __m256 g = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d), group_of_lane);
    _mm256_storeu_ps(dx + r * K, _mm256_and_ps(_mm256_cmp_ps(w, piece_of_lane, _CMP_EQ_OQ), g));
  }
  maxout_generic::backward<avx2::VecOf<float>>(dy + r, x + r * K, dx + r * K, rows - r, K, 1);
}

template <class T>
void backward_avx2(const T* dy, const T* x, T* dx, int64_t rows, int64_t pieces, int64_t inner) {
  if constexpr (std::is_same_v<T, float>) {
    if (inner == 1 && pieces == 4) return backward_grouped_f32<4>(dy, x, dx, rows);
    if (inner == 1 && pieces == 2) return backward_grouped_f32<2>(dy, x, dx, rows);
  }
  maxout_generic::backward<avx2::VecOf<T>>(dy, x, dx, rows, pieces, inner);
}

}  // namespace

template <class T>
void maxout_ukernels_fill_avx2(MaxoutUkernels<T>& table) {
  using V = avx2::VecOf<T>;
  table = maxout_generic::make_table<V>(sizeof(T) == 4 ? "maxout_avx2_f32" : "maxout_avx2_f64");
  table.backward = backward_avx2<T>;
}

template void maxout_ukernels_fill_avx2<float>(MaxoutUkernels<float>&);
template void maxout_ukernels_fill_avx2<double>(MaxoutUkernels<double>&);

}  // namespace nnx
