#!/usr/bin/env bash
# Development build: compiles nnx._C into build/dev and links it into python/nnx, so that
#   PYTHONPATH=python python -m pytest
# runs against the working tree without reinstalling. Extra arguments go to cmake (e.g. -DNNX_SANITIZE=ON).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${NNX_BUILD_DIR:-build/dev}
cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -Dpybind11_DIR="$(python -c 'import pybind11; print(pybind11.get_cmake_dir())')" "$@" > /dev/null
cmake --build "$BUILD"
so=$(ls "$BUILD"/_C*.so)
ln -sf "$(realpath "$so")" python/nnx/"$(basename "$so")"
echo "built $(basename "$so") -> python/nnx/"
