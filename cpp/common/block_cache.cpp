#include "common/block_cache.h"

#include <cstdlib>
#include <mutex>
#include <utility>
#include <vector>

namespace nnx {
namespace {

constexpr size_t kSizeClass = size_t{2} << 20;
constexpr size_t kDefaultLimit = size_t{1} << 30;

struct Cache {
  std::mutex mu;
  std::vector<std::pair<size_t, void*>> kept;  // oldest first
  size_t kept_bytes = 0;
  size_t limit = kDefaultLimit;
  Cache() {
    if (const char* v = std::getenv("NNX_BLOCK_CACHE_BYTES")) {
      char* end = nullptr;
      const unsigned long long n = std::strtoull(v, &end, 10);
      if (end != v && *end == '\0') limit = static_cast<size_t>(n);
    }
  }
  // Frees the oldest kept blocks until the kept bytes fit `budget`. Called with mu held.
  void trim(size_t budget) {
    size_t drop = 0;
    while (drop < kept.size() && kept_bytes > budget) {
      std::free(kept[drop].second);
      kept_bytes -= kept[drop].first;
      ++drop;
    }
    kept.erase(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(drop));
  }
};

Cache& cache() {
  static Cache* c = new Cache();  // never destroyed: results may die after static destructors run
  return *c;
}

}  // namespace

void* block_cache_take(size_t bytes, size_t* capacity) {
  const size_t cap = (bytes + kSizeClass - 1) / kSizeClass * kSizeClass;
  *capacity = cap;
  Cache& c = cache();
  {
    std::lock_guard<std::mutex> lock(c.mu);
    for (size_t i = c.kept.size(); i-- > 0;) {  // the most recently kept first: likeliest still in cache
      if (c.kept[i].first == cap) {
        void* p = c.kept[i].second;
        c.kept.erase(c.kept.begin() + static_cast<std::ptrdiff_t>(i));
        c.kept_bytes -= cap;
        return p;
      }
    }
  }
  return std::aligned_alloc(64, cap);
}

void block_cache_give(void* block, size_t capacity) {
  if (block == nullptr) return;
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  if (capacity > c.limit) {
    std::free(block);
    return;
  }
  c.trim(c.limit - capacity);
  c.kept.emplace_back(capacity, block);
  c.kept_bytes += capacity;
}

size_t block_cache_kept_bytes() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.kept_bytes;
}

size_t block_cache_limit() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  return c.limit;
}

void block_cache_set_limit(size_t bytes) {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mu);
  c.limit = bytes;
  c.trim(bytes);
}

}  // namespace nnx
