// AVX-512 dropout kernels for float: sixteen mask hashes per step where AVX2 does eight (the hash of
// dropout_hash.h on 32-bit lanes: exact integer arithmetic, so the same masks as the AVX2 and portable
// kernels), the kept lanes as the compare's 16-bit mask, which is also the two bytes of saved bits. Each
// element is multiplied by scale or 0 as on AVX2 (so a dropped -x or NaN gives -0 or NaN there too). Ragged
// tails go through masked loads and stores. float64 keeps the AVX2 kernels.
#include <immintrin.h>

#include "activation/vec_avx512.h"
#include "dropout/dropout_hash.h"
#include "dropout/dropout_stream.h"
#include "dropout/dropout_ukernels.h"

namespace nnx {
namespace {

typedef uint32_t U32x16 __attribute__((vector_size(sizeof(__m512i))));

inline __m512i mix32(__m512i x) {  // dropout_mix32 on each lane
  return reinterpret_cast<__m512i>(dropout_mix32(reinterpret_cast<U32x16>(x)));
}

// Lanes whose element is kept (hash >= threshold, unsigned), for indices lo .. lo + 15 (wrapping as uint32).
inline __mmask16 kept(uint32_t lo, __m512i k0, __m512i hik1, __m512i thr) {
  const __m512i idx = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(lo)),
                                       _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
  const __m512i h = mix32(_mm512_xor_si512(mix32(_mm512_xor_si512(idx, k0)), hik1));
  return _mm512_cmpge_epu32_mask(h, thr);
}

// x (dy) is asked for this many floats (common/stream_store.h's kPrefetchAheadBytes) ahead, a line a step, as the
// activation maps do: the hashes left the hardware's prefetch behind.
constexpr int64_t kPrefetchAhead = kPrefetchAheadBytes / static_cast<int64_t>(sizeof(float));

inline __mmask16 lanes_below(int64_t cnt) { return static_cast<__mmask16>((1u << cnt) - 1u); }  // cnt < 16

// x * (scale where kept, 0 elsewhere)
inline __m512 scaled(__m512 x, __mmask16 k, __m512 s) { return _mm512_mul_ps(x, _mm512_maskz_mov_ps(k, s)); }

void apply_save_run(const float* x, float* y, uint8_t* bits, int64_t n, uint64_t start, uint32_t k0, uint32_t k1,
                    uint32_t threshold, float scale) {
  const __m512i vk0 = _mm512_set1_epi32(static_cast<int>(k0));
  const __m512i hik1 = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(start >> 32) + k1));
  const __m512i thr = _mm512_set1_epi32(static_cast<int>(threshold));
  const __m512 s = _mm512_set1_ps(scale);
  const uint32_t lo0 = static_cast<uint32_t>(start);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __builtin_prefetch(x + j + kPrefetchAhead, 0, 2);
    const __mmask16 k = kept(lo0 + static_cast<uint32_t>(j), vk0, hik1, thr);
    _mm512_storeu_ps(y + j, scaled(_mm512_loadu_ps(x + j), k, s));
    if (bits) {
      const uint16_t b = k;  // element j + i is bit i: byte j / 8, then byte j / 8 + 1
      bits[j / 8] = static_cast<uint8_t>(b);
      bits[j / 8 + 1] = static_cast<uint8_t>(b >> 8);
    }
  }
  if (j < n) {
    const __mmask16 lanes = lanes_below(n - j);
    const __mmask16 k = kept(lo0 + static_cast<uint32_t>(j), vk0, hik1, thr) & lanes;
    _mm512_mask_storeu_ps(y + j, lanes, scaled(_mm512_maskz_loadu_ps(lanes, x + j), k, s));
    if (bits) {
      bits[j / 8] = static_cast<uint8_t>(k);
      if (n - j > 8) bits[j / 8 + 1] = static_cast<uint8_t>(k >> 8);
    }
  }
}

void apply_from_bits_run(const float* dy, float* dx, const uint8_t* bits, int64_t n, float scale) {
  const __m512 s = _mm512_set1_ps(scale);
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    __builtin_prefetch(dy + j + kPrefetchAhead, 0, 2);
    const __mmask16 k = static_cast<__mmask16>(bits[j / 8] | (bits[j / 8 + 1] << 8));
    _mm512_storeu_ps(dx + j, scaled(_mm512_loadu_ps(dy + j), k, s));
  }
  if (j < n) {
    const __mmask16 lanes = lanes_below(n - j);
    const __mmask16 k = static_cast<__mmask16>(bits[j / 8] | (n - j > 8 ? bits[j / 8 + 1] << 8 : 0));
    _mm512_mask_storeu_ps(dx + j, lanes, scaled(_mm512_maskz_loadu_ps(lanes, dy + j), k, s));
  }
}

// The table's entries: the kernels above a chunk at a time when the result goes past the caches.
void apply_save_avx512(const float* x, float* y, uint8_t* bits, int64_t n, uint64_t start, uint32_t k0, uint32_t k1,
                       uint32_t threshold, float scale, bool past_caches) {
  dropout_stream::pieces<avx512::VecF32Avx512>(y, n, past_caches, [&](int64_t i, int64_t len, float* dst) {
    apply_save_run(x + i, dst, bits ? bits + i / 8 : nullptr, len, start + static_cast<uint64_t>(i), k0, k1,
                   threshold, scale);
  });
}

void apply_avx512(const float* x, float* y, int64_t n, uint64_t start, uint32_t k0, uint32_t k1, uint32_t threshold,
                  float scale, bool past_caches) {
  apply_save_avx512(x, y, nullptr, n, start, k0, k1, threshold, scale, past_caches);
}

void apply_from_bits_avx512(const float* dy, float* dx, const uint8_t* bits, int64_t n, float scale,
                            bool past_caches) {
  dropout_stream::pieces<avx512::VecF32Avx512>(dx, n, past_caches, [&](int64_t i, int64_t len, float* dst) {
    apply_from_bits_run(dy + i, dst, bits + i / 8, len, scale);
  });
}

}  // namespace

template <>
void dropout_ukernels_fill_avx512<float>(DropoutUkernels<float>& table) {
  table.name = "dropout_avx512_f32";
  table.apply = apply_avx512;
  table.apply_save = apply_save_avx512;
  table.apply_from_bits = apply_from_bits_avx512;
}

template <>
void dropout_ukernels_fill_avx512<double>(DropoutUkernels<double>&) {}  // the AVX2 kernels stay

}  // namespace nnx
