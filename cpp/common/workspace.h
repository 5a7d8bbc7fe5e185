// Reusable, 64-byte aligned scratch memory owned by the operator layer. Kernels never allocate: an
// operator asks for a buffer of the size the kernel documents and passes the pointer down. Buffers are
// per thread and per slot and only grow, so steady-state training does no allocation in hot loops.
#pragma once
#include <cstddef>
#include <cstdint>
#include <new>

namespace nnx {

// Returns at least `bytes` bytes of 64-byte aligned memory, valid until the next call with the same
// slot on the same thread. Throws std::bad_alloc when the memory is not available.
void* workspace(int slot, size_t bytes);

// Bytes of workspace currently held by all threads (for tests that check it stays bounded).
int64_t workspace_bytes();

template <class T>
T* workspace_as(int slot, size_t count) {
  // count * sizeof(T) must not wrap around (a negative int64 count converts to a huge one).
  if (count > SIZE_MAX / sizeof(T)) throw std::bad_alloc();
  return static_cast<T*>(workspace(slot, count * sizeof(T)));
}

// Slots in use; each family takes its own so nested use (conv calling gemm) never aliases.
enum WorkspaceSlot : int {
  kWsGemmA = 0,
  kWsGemmB = 1,
  kWsConvCol = 2,
  kWsConvAux = 3,
  kWsConvAux2 = 4,
  kWsPool = 5,
  kWsMisc = 6,
  kWsConvPack = 7,
  kWsGemmC = 8,      // gemm.cpp's C^T of a product computed transposed (the calling thread's)
  kWsGemmSplitK = 9,  // gemm.cpp's second half of a product summed in two halves of K (the calling thread's)
  kWsSlots = 10
};

}  // namespace nnx
