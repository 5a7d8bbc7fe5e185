// Integer rounding for sizes and blocks, one definition for every family. In an anonymous namespace: each
// translation unit, baseline or ISA-compiled, keeps its own copy, so none is shared across ISAs
// (scripts/check_isa_symbols.py).
#pragma once
#include <cstdint>

namespace nnx {
namespace {

// x rounded up to a multiple of m (m > 0, x >= 0).
constexpr int64_t round_up(int64_t x, int64_t m) { return (x + m - 1) / m * m; }
// The number of blocks of m that cover x.
constexpr int64_t ceil_div(int64_t x, int64_t m) { return (x + m - 1) / m; }
// x / m rounded toward minus infinity, for x of either sign (m > 0): the block of m that holds x.
constexpr int64_t floor_div(int64_t x, int64_t m) { return x >= 0 ? x / m : -((-x + m - 1) / m); }

}  // namespace
}  // namespace nnx
