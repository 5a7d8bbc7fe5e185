#!/usr/bin/env bash
# Builds nnx._C with AddressSanitizer + UndefinedBehaviorSanitizer (-DNNX_SANITIZE=ON) into build/asan and
# runs a subset of the test suite against it. Any report aborts the run with a non-zero status.
#
# The instrumented extension is staged with a copy of python/nnx under build/asan/stage, so the normal
# build (build/dev, linked into python/nnx) and an installed nnx are left alone.
#
# The subset covers every kernel family (gemm, activation, loss, conv with all its algorithms, pool, norm,
# dropout, rnn, optim), the nn/autograd/training path, the replay of captured steps (nnx.compile runs the
# kernels from C++ without the GIL), and every dispatch path: the tests' `isa` fixture runs each kernel test
# on every ISA the CPU has, and test_backend starts a subprocess with NNX_ISA=portable.
# Of test_leaks only the workspace tests run: ASan's quarantine of freed memory makes RSS meaningless.
# Extra arguments go to pytest (e.g. scripts/sanitize.sh -x -k conv).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${NNX_ASAN_BUILD_DIR:-build/asan}
STAGE="$BUILD/stage"

# CI installs nnx into a fresh venv where the build tools lived only in pip's isolated build env.
python -c "import pybind11" 2>/dev/null && command -v cmake >/dev/null && command -v ninja >/dev/null ||
  python -m pip install -q pybind11 cmake ninja

start=$SECONDS
# RelWithDebInfo: pybind11 strips Release modules, and a report without symbols names no function.
# No link-time optimisation, so that inlining across files does not blur the reported lines.
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DNNX_SANITIZE=ON -DCMAKE_INTERPROCEDURAL_OPTIMIZATION=OFF \
  -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" > /dev/null
cmake --build "$BUILD"
echo "sanitizer build: $((SECONDS - start)) s"

rm -rf "$STAGE"
mkdir -p "$STAGE"
cp -r python/nnx "$STAGE/nnx"
find "$STAGE/nnx" \( -name '_C*.so' -o -name '__pycache__' \) -prune -exec rm -rf {} +
cp "$BUILD"/_C*.so "$STAGE/nnx/"

# The instrumented extension is loaded into an uninstrumented python, so the ASan runtime must come
# first; libstdc++ is preloaded with it so that ASan's operator new/delete interceptors see its symbols.
export LD_PRELOAD="$(g++ -print-file-name=libasan.so):$(g++ -print-file-name=libstdc++.so)"
# detect_leaks=0: CPython deliberately never frees interned objects and module state at exit, so the leak
# checker would report thousands of blocks that are not nnx's (tests/test_leaks.py watches RSS instead).
# allocator_may_return_null=1: the tests that ask for absurd sizes expect MemoryError, i.e. malloc
# returning NULL as it does without ASan, not ASan's "allocation-size-too-big" abort.
export ASAN_OPTIONS=detect_leaks=0:halt_on_error=1:abort_on_error=1:allocator_may_return_null=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$PWD/$STAGE"
python -c "import nnx, sys; sys.exit(0 if nnx.__file__.startswith('$PWD/$STAGE') else 'not the staged nnx: ' + nnx.__file__)"

start=$SECONDS
# --capture=sys: a report goes to the real stderr; pytest's fd capture would swallow it when ASan aborts.
python -m pytest -q --capture=sys -p no:cacheprovider \
  tests/ops tests/nn tests/test_optim.py tests/test_backend.py tests/test_tensor.py tests/test_determinism.py \
  tests/test_optim_more.py tests/test_compile.py tests/test_compile_layers.py \
  tests/test_leaks.py::test_workspace_is_bounded_when_shapes_change \
  tests/test_leaks.py::test_concurrent_threads_compute_correctly_and_free_their_workspace \
  "$@"
echo "sanitizer tests: $((SECONDS - start)) s, no reports"
