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

}  // namespace nnx
