#include "common/workspace.h"

#include <atomic>
#include <cstdlib>
#include <limits>
#include <new>

namespace nnx {
namespace {

// Bytes held by all threads' buffers together (a thread's buffers are freed when it exits).
std::atomic<int64_t> held_bytes{0};

struct Buffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  ~Buffer() {
    std::free(ptr);
    held_bytes -= static_cast<int64_t>(bytes);
  }
};

}  // namespace

void* workspace(int slot, size_t bytes) {
  thread_local Buffer buffers[kWsSlots];
  Buffer& b = buffers[slot];
  if (bytes == 0) bytes = 64;
  // A request this large cannot be met (and the 1.5x growth below would wrap around): refuse it rather
  // than hand out a smaller buffer.
  if (bytes > std::numeric_limits<size_t>::max() / 4) throw std::bad_alloc();
  if (b.bytes < bytes) {
    // Round up to 64 bytes as aligned_alloc requires, and grow by 1.5x to avoid repeated reallocation.
    size_t want = bytes + bytes / 2;
    want = (want + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, want);
    if (!p) throw std::bad_alloc();
    std::free(b.ptr);
    held_bytes += static_cast<int64_t>(want) - static_cast<int64_t>(b.bytes);
    b.ptr = p;
    b.bytes = want;
  }
  return b.ptr;
}

int64_t workspace_bytes() { return held_bytes.load(); }

}  // namespace nnx
