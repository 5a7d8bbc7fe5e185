// AVX2 dropout kernels: eight mask hashes (or eight saved bits) per step with 32-bit lane multiplies; float32 uses them for
// one vector of 8, float64 for two vectors of 4. Ragged tails go through masked loads and stores, so
// every element gets exactly the arithmetic of the full vectors.
#include <immintrin.h>

#include "activation/vec_avx2.h"
#include "dropout/dropout_hash.h"
#include "dropout/dropout_stream.h"
#include "dropout/dropout_ukernels.h"

namespace nnx {
namespace {

typedef uint32_t U32x8 __attribute__((vector_size(sizeof(__m256i))));

inline __m256i mix32(__m256i x) {  // dropout_mix32 on each lane
  return reinterpret_cast<__m256i>(dropout_mix32(reinterpret_cast<U32x8>(x)));
}

// All-ones lanes where the element is dropped (h < threshold, unsigned), for indices lo .. lo + 7.
inline __m256i dropped(uint32_t lo, __m256i k0, __m256i hik1, __m256i thr_biased) {
  const __m256i idx = _mm256_add_epi32(_mm256_set1_epi32(static_cast<int>(lo)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  const __m256i h = mix32(_mm256_xor_si256(mix32(_mm256_xor_si256(idx, k0)), hik1));
  const __m256i bias = _mm256_set1_epi32(static_cast<int>(0x80000000U));
  return _mm256_cmpgt_epi32(thr_biased, _mm256_xor_si256(h, bias));
}

inline __m256i lanes_below32(int64_t cnt) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(cnt)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

inline __m256i lanes_below64(int64_t cnt) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(cnt), _mm256_setr_epi64x(0, 1, 2, 3));
}

// y[0 .. 8) = x * (m0, m1) for doubles, only the first `left` when fewer remain (masked loads and stores).
inline void mul8(const double* x, double* y, __m256d m0, __m256d m1, int64_t left) {
  if (left >= 8) {
    _mm256_storeu_pd(y, _mm256_mul_pd(_mm256_loadu_pd(x), m0));
    _mm256_storeu_pd(y + 4, _mm256_mul_pd(_mm256_loadu_pd(x + 4), m1));
  } else {
    const __m256i l0 = lanes_below64(left), l1 = lanes_below64(left - 4);
    _mm256_maskstore_pd(y, l0, _mm256_mul_pd(_mm256_maskload_pd(x, l0), m0));
    _mm256_maskstore_pd(y + 4, l1, _mm256_mul_pd(_mm256_maskload_pd(x + 4, l1), m1));
  }
}

// The kept bits of 8 elements from their dropped lanes, the lanes at and past `cnt` cleared.
inline uint8_t kept_byte(__m256i dropped_lanes, int64_t cnt) {
  const unsigned kept = ~static_cast<unsigned>(_mm256_movemask_ps(_mm256_castsi256_ps(dropped_lanes))) & 0xFFu;
  return static_cast<uint8_t>(cnt >= 8 ? kept : kept & ((1u << cnt) - 1u));
}

// y = x * mask for elements start .. start + n - 1 and, when bits is not null, the kept bits (the forward
// that saves its mask for the backward).
void apply_save_run(const float* x, float* y, uint8_t* bits, int64_t n, uint64_t start, uint32_t k0, uint32_t k1,
                    uint32_t threshold, float scale) {
  const __m256i vk0 = _mm256_set1_epi32(static_cast<int>(k0));
  const __m256i hik1 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(start >> 32) + k1));
  const __m256i thr = _mm256_set1_epi32(static_cast<int>(threshold ^ 0x80000000U));
  const __m256 s = _mm256_set1_ps(scale);
  const uint32_t lo0 = static_cast<uint32_t>(start);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    const __m256i d = dropped(lo0 + static_cast<uint32_t>(j), vk0, hik1, thr);
    _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(x + j), _mm256_andnot_ps(_mm256_castsi256_ps(d), s)));
    if (bits) bits[j / 8] = kept_byte(d, 8);
  }
  if (j < n) {
    const __m256i lanes = lanes_below32(n - j);
    const __m256i d = dropped(lo0 + static_cast<uint32_t>(j), vk0, hik1, thr);
    const __m256 m = _mm256_andnot_ps(_mm256_castsi256_ps(d), s);
    _mm256_maskstore_ps(y + j, lanes, _mm256_mul_ps(_mm256_maskload_ps(x + j, lanes), m));
    if (bits) bits[j / 8] = kept_byte(d, n - j);
  }
}

void apply_save_run(const double* x, double* y, uint8_t* bits, int64_t n, uint64_t start, uint32_t k0, uint32_t k1,
                    uint32_t threshold, double scale) {
  const __m256i vk0 = _mm256_set1_epi32(static_cast<int>(k0));
  const __m256i hik1 = _mm256_set1_epi32(static_cast<int>(static_cast<uint32_t>(start >> 32) + k1));
  const __m256i thr = _mm256_set1_epi32(static_cast<int>(threshold ^ 0x80000000U));
  const __m256d s = _mm256_set1_pd(scale);
  const uint32_t lo0 = static_cast<uint32_t>(start);
  for (int64_t j = 0; j < n; j += 8) {
    const __m256i d = dropped(lo0 + static_cast<uint32_t>(j), vk0, hik1, thr);
    // Widen the eight 32-bit lane masks to two vectors of four 64-bit ones (sign extension keeps all-ones).
    const __m256d m0 = _mm256_andnot_pd(_mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_castsi256_si128(d))), s);
    const __m256d m1 = _mm256_andnot_pd(_mm256_castsi256_pd(_mm256_cvtepi32_epi64(_mm256_extracti128_si256(d, 1))), s);
    const int64_t left = n - j;
    mul8(x + j, y + j, m0, m1, left);
    if (bits) bits[j / 8] = kept_byte(d, left);
  }
}

// From saved bits: one byte per 8 elements, broadcast and tested against each lane's bit.
void apply_from_bits_run(const float* dy, float* dx, const uint8_t* bits, int64_t n, float scale) {
  const __m256i sel = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
  const __m256 s = _mm256_set1_ps(scale);
  int64_t j = 0;
  for (; j < n; j += 8) {
    const __m256i b = _mm256_set1_epi32(bits[j / 8]);
    const __m256 m = _mm256_and_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(_mm256_and_si256(b, sel), sel)), s);
    if (j + 8 <= n) {
      _mm256_storeu_ps(dx + j, _mm256_mul_ps(_mm256_loadu_ps(dy + j), m));
    } else {
      const __m256i lanes = lanes_below32(n - j);
      _mm256_maskstore_ps(dx + j, lanes, _mm256_mul_ps(_mm256_maskload_ps(dy + j, lanes), m));
    }
  }
}

void apply_from_bits_run(const double* dy, double* dx, const uint8_t* bits, int64_t n, double scale) {
  const __m256i sel0 = _mm256_setr_epi64x(1, 2, 4, 8), sel1 = _mm256_setr_epi64x(16, 32, 64, 128);
  const __m256d s = _mm256_set1_pd(scale);
  for (int64_t j = 0; j < n; j += 8) {
    const __m256i b = _mm256_set1_epi64x(bits[j / 8]);
    const __m256d m0 = _mm256_and_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(b, sel0), sel0)), s);
    const __m256d m1 = _mm256_and_pd(_mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(b, sel1), sel1)), s);
    mul8(dy + j, dx + j, m0, m1, n - j);
  }
}

// The table's entries: the kernels above a chunk at a time when the result goes past the caches.
template <class T>
void apply_save_avx2(const T* x, T* y, uint8_t* bits, int64_t n, uint64_t start, uint32_t k0, uint32_t k1,
                     uint32_t threshold, T scale, bool past_caches) {
  dropout_stream::pieces<avx2::VecOf<T>>(y, n, past_caches, [&](int64_t i, int64_t len, T* dst) {
    apply_save_run(x + i, dst, bits ? bits + i / 8 : nullptr, len, start + static_cast<uint64_t>(i), k0, k1,
                   threshold, scale);
  });
}

template <class T>
void apply_avx2(const T* x, T* y, int64_t n, uint64_t start, uint32_t k0, uint32_t k1, uint32_t threshold, T scale,
                bool past_caches) {
  apply_save_avx2<T>(x, y, nullptr, n, start, k0, k1, threshold, scale, past_caches);
}

template <class T>
void apply_from_bits_avx2(const T* dy, T* dx, const uint8_t* bits, int64_t n, T scale, bool past_caches) {
  dropout_stream::pieces<avx2::VecOf<T>>(dx, n, past_caches, [&](int64_t i, int64_t len, T* dst) {
    apply_from_bits_run(dy + i, dst, bits + i / 8, len, scale);
  });
}

}  // namespace

template <class T>
void dropout_ukernels_fill_avx2(DropoutUkernels<T>& table) {
  table.name = sizeof(T) == 4 ? "dropout_avx2_f32" : "dropout_avx2_f64";
  table.apply = apply_avx2<T>;
  table.apply_save = apply_save_avx2<T>;
  table.apply_from_bits = apply_from_bits_avx2<T>;
}

template void dropout_ukernels_fill_avx2<float>(DropoutUkernels<float>&);
template void dropout_ukernels_fill_avx2<double>(DropoutUkernels<double>&);

}  // namespace nnx
