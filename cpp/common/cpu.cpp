#include "common/cpu.h"

#include <atomic>
#include <cstdlib>

#include "common/stream_store.h"

namespace nnx {
namespace {

Isa detect() {
#if defined(NNX_X86) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  // AVX-512 kernels use F, DQ, BW and VL; AVX2 kernels use AVX2 and FMA.
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("fma"))
    return Isa::avx512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::avx2;
  return Isa::portable;
#elif defined(NNX_ARM64)
  return Isa::neon;  // NEON (AdvSIMD) is part of the aarch64 baseline.
#else
  return Isa::portable;
#endif
}

Isa initial_active() {
  Isa best = detected_isa();
  if (const char* env = std::getenv("NNX_ISA")) {
    Isa wanted;
    if (parse_isa(env, &wanted) && isa_supported(wanted)) return wanted;
  }
  return best;
}

std::atomic<int>& active_slot() {
  static std::atomic<int> slot{static_cast<int>(initial_active())};
  return slot;
}

}  // namespace

#if defined(NNX_X86)
double fma512_rate_ratio_avx512();  // fma_width_avx512.cpp
#endif

double fma512_rate_ratio() {
#if defined(NNX_X86)
  static const double ratio = isa_supported(Isa::avx512) ? fma512_rate_ratio_avx512() : 0.0;
  return ratio;
#else
  return 0.0;
#endif
}

bool wide_vector_fma() {
  static const bool wide = [] {
    if (!isa_supported(Isa::avx512)) return false;
    if (const char* env = std::getenv("NNX_WIDE_FMA")) {
      if (env[0] == '0' && env[1] == '\0') return false;
      if (env[0] == '1' && env[1] == '\0') return true;
    }
    return fma512_rate_ratio() > 1.4;
  }();
  return wide;
}

int64_t stream_chunk_bytes() {  // common/stream_store.h
  static const int64_t bytes = wide_vector_fma() ? 512 : kStreamChunkMaxBytes;
  return bytes;
}

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

bool isa_supported(Isa isa) {
  Isa best = detected_isa();
  switch (isa) {
    case Isa::portable: return true;
    case Isa::avx2: return best == Isa::avx2 || best == Isa::avx512;
    case Isa::avx512: return best == Isa::avx512;
    case Isa::neon: return best == Isa::neon;
  }
  return false;
}

Isa active_isa() { return static_cast<Isa>(active_slot().load(std::memory_order_relaxed)); }

Isa set_active_isa(Isa isa) {
  if (!isa_supported(isa)) isa = detected_isa();
  active_slot().store(static_cast<int>(isa));
  return isa;
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::portable: return "portable";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::neon: return "neon";
  }
  return "unknown";
}

bool parse_isa(const std::string& name, Isa* out) {
  if (name == "portable") { *out = Isa::portable; return true; }
  if (name == "avx2") { *out = Isa::avx2; return true; }
  if (name == "avx512") { *out = Isa::avx512; return true; }
  if (name == "neon") { *out = Isa::neon; return true; }
  return false;
}

}  // namespace nnx
