#!/usr/bin/env bash
# The emulated-CPU matrix: proves that nnx runs on every x86-64 CPU and picks the right kernels there.
#
# 1. scripts/check_isa_symbols.py: no inline function or template compiled for AVX2/AVX-512 is shared
#    with baseline code (the linker could hand the ISA copy to portable callers).
# 2. tests/test_isa_smoke.py (every op family forward and backward against nnx.reference, a training step,
#    the optimizers) natively and under qemu-x86_64 as older CPUs, asserting which ISA nnx.cpu_info()
#    reports on each:
#      Nehalem      SSE4.2 only          -> portable
#      SandyBridge  AVX, no AVX2/FMA     -> portable
#      Haswell-v4   AVX2 + FMA           -> avx2
#    On an AVX-512 machine the native run is made twice, NNX_WIDE_FMA=0 and 1, for the conv family's two
#    AVX-512 tables (cpp/conv/conv_ukernels_avx512.cpp and conv_ukernels_zmm_avx512.cpp).
#    A kernel compiled for an ISA the emulated CPU lacks dies there with SIGILL and fails the run.
#
# Runs against whichever nnx `python -c "import nnx"` finds (the installed one in CI; with
# PYTHONPATH=python the in-place build of scripts/dev_build.sh). Installs Debian's qemu-user when missing.
# Usage: scripts/isa_matrix.sh [BUILD_DIR]   (BUILD_DIR holds the object files; default: the newest build/*)
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(uname -m)" != "x86_64" ]; then
  echo "isa_matrix: not an x86-64 machine; nothing to emulate"; exit 0
fi

build=${1:-$(ls -td build/*/ 2>/dev/null | while read -r d; do [ -d "$d/CMakeFiles/_C.dir" ] && echo "$d" && break; done)}
if [ -n "$build" ]; then
  python scripts/check_isa_symbols.py "$build"
else
  echo "isa_matrix: no build directory with object files found; symbol check skipped" >&2
fi

if ! command -v qemu-x86_64 >/dev/null; then
  echo "isa_matrix: installing qemu-user"
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null) ||
    { echo "isa_matrix: qemu-user could not be installed" >&2; exit 1; }
fi

py=$(python -c "import sys; print(sys.executable)")
native=$(python -c "import nnx; print(nnx.cpu_info()['detected_isa'])")
run() {  # run LABEL EXPECTED_ISA [qemu args...]
  local label=$1 want=$2; shift 2
  local start=$SECONDS
  if NNX_EXPECT_ISA=$want "$@" "$py" -m pytest -q -p no:cacheprovider tests/test_isa_smoke.py > "/tmp/isa_matrix_$label.log" 2>&1; then
    echo "isa_matrix: $label ($want): $(tail -1 "/tmp/isa_matrix_$label.log") [$((SECONDS - start)) s]"
  else
    echo "isa_matrix: $label ($want) FAILED:"; tail -30 "/tmp/isa_matrix_$label.log"; exit 1
  fi
}
if [ "$native" = avx512 ]; then
  # Both AVX-512 conv tables (cpu.h's wide_vector_fma picks one per CPU), whichever this CPU would pick.
  NNX_WIDE_FMA=0 run native-halves "$native"
  NNX_WIDE_FMA=1 run native-full-width "$native"
else
  run native "$native"
fi
run Nehalem portable qemu-x86_64 -cpu Nehalem
run SandyBridge portable qemu-x86_64 -cpu SandyBridge
run Haswell-v4 avx2 qemu-x86_64 -cpu Haswell-v4
echo "isa_matrix: passed"
