// CPU feature detection and the instruction-set choice shared by every kernel family.
//
// Each family keeps a table of micro-kernels per scalar type. The table is filled with the portable
// kernels first and then overridden with the fastest ones the active ISA allows (BLIS's context init,
// XNNPACK's configs). The active ISA is detected once, on first use; the environment variable
// NNX_ISA=portable|avx2|avx512|neon lowers it (never raises it above what the CPU supports), and
// set_active_isa() lets tests run every path in one process.
#pragma once
#include <string>

namespace nnx {

enum class Isa : int { portable = 0, avx2 = 1, avx512 = 2, neon = 3 };

// Best ISA this CPU and this build support.
Isa detected_isa();
// ISA the kernels use now.
Isa active_isa();
// Lowers (or restores) the active ISA; returns the one actually set (clamped to detected_isa()).
Isa set_active_isa(Isa isa);
const char* isa_name(Isa isa);
bool parse_isa(const std::string& name, Isa* out);

// True when `isa` may be used on this machine (portable always can).
bool isa_supported(Isa isa);

// Whether this CPU runs 512-bit multiply-adds at about twice its 256-bit rate: two full-width FMA pipes, as
// Intel's server cores have; Zen 4 issues a 512-bit operation as two 256-bit halves, so there the two rates
// are equal and 256-bit kernels, with their cheaper shuffles and tails, measured as fast or faster. A
// family whose AVX-512 table has full-width variants fills them from this (cpp/conv/). Measured once, on
// first use, by a microbenchmark of about 2 ms (fma512_rate_ratio > 1.4); NNX_WIDE_FMA=0 or 1 overrides
// it. False on CPUs without AVX-512. The choice never depends on the thread count.
bool wide_vector_fma();
// 512-bit over 256-bit multiply-add flops per second as measured here (0 when not measured: no AVX-512).
double fma512_rate_ratio();

}  // namespace nnx
