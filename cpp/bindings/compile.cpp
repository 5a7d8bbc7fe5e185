// nnx.compile's plan object: records the kernel calls of a step while it runs eagerly (as the Recorder of
// bindings/record.h), keeps every array they touch alive (the op results made during the capture in blocks of its
// own, CaptureArena; the others by holding them), and replays them without the GIL.
// The checks that make a recording safe to replay (every kernel input produced by an earlier kernel or
// declared as step input / state, two recordings alike) are made in Python, on log().
#include <pybind11/numpy.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "bindings/array_view.h"
#include "bindings/bindings.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "compile/plan.h"

namespace nnx {
namespace {

thread_local Recorder* tl_recorder = nullptr;

// The memory of the op results made while a step is captured (nnx._args.empty during a capture): blocks owned by
// the plan, since its calls write them by address on every replay. A result dropped during the capture gives its
// block back, and a later result of up to its size takes it (take()), as malloc would have in the eager step: without
// that a plan kept every intermediate array apart, and a ResNet-20 inference at batch 64 ran 44.6 ms compiled
// against 33.4 eager (1 thread; the eager step finds freed memory still in the caches). Reuse follows the capture's
// own order of results and releases, which the replay repeats, so no call overwrites a value a later call reads.
class CaptureArena {
 public:
  CaptureArena() = default;
  CaptureArena(const CaptureArena&) = delete;
  CaptureArena& operator=(const CaptureArena&) = delete;
  ~CaptureArena() {
    for (const auto& b : blocks_) std::free(reinterpret_cast<void*>(b.first));
  }

  // A block of at least `bytes`: the smallest free one up to twice that (the most recently given back among
  // equals), else a new one; *capacity receives its size, which give() needs back.
  void* take(size_t bytes, size_t* capacity) {
    const size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    auto it = free_.lower_bound(rounded);
    if (it != free_.end() && it->first <= 2 * rounded) {
      void* p = it->second;
      *capacity = it->first;
      free_.erase(it);
      return p;
    }
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) throw std::bad_alloc();
    blocks_.emplace(reinterpret_cast<uintptr_t>(p), rounded);
    held_ += rounded;
    *capacity = rounded;
    return p;
  }
  void give(void* p, size_t capacity) { free_.emplace_hint(free_.lower_bound(capacity), capacity, p); }

  // Whether p lies in one of the blocks.
  bool holds(const void* p) const {
    const uintptr_t a = reinterpret_cast<uintptr_t>(p);
    auto it = blocks_.upper_bound(a);
    if (it == blocks_.begin()) return false;
    --it;
    return a < it->first + it->second;
  }
  size_t held_bytes() const { return held_; }

 private:
  std::map<uintptr_t, size_t> blocks_;   // start -> capacity
  std::multimap<size_t, void*> free_;    // capacity -> block, not in use
  size_t held_ = 0;
};

// The base of a result whose memory is a capture's block: gives the block back when the result and its views are
// gone, and keeps the arena (and so the block) alive until then.
struct CaptureBlock {
  std::shared_ptr<CaptureArena> arena;
  void* p = nullptr;
  size_t capacity = 0;
  CaptureBlock() = default;
  CaptureBlock(const CaptureBlock&) = delete;
  CaptureBlock& operator=(const CaptureBlock&) = delete;
  ~CaptureBlock() {
    if (arena) arena->give(p, capacity);
  }
};

// An array the log describes instead of holding: one in the arena, which the plan keeps alive anyway (holding the
// array itself would keep its block from being given back).
struct ArenaView {
  const void* data;
  py::dtype dtype;
  std::vector<py::ssize_t> shape, strides;
};

struct LoggedCall {
  std::string op;
  std::vector<double> attrs;
  std::vector<std::pair<py::object, char>> arrays;  // the array, or None where views[i] describes it
  std::vector<std::optional<ArenaView>> views;
};

class PyPlan final : public Recorder {
 public:
  ~PyPlan() {
    if (tl_recorder == this) tl_recorder = nullptr;
  }

  void record(const char* op, const ArrayUse* arrays, size_t count, std::vector<double> attrs,
              KernelCall call) override {
    LoggedCall c{op, std::move(attrs), {}, {}};
    for (size_t i = 0; i < count; ++i) {
      if (!arrays[i].array || arrays[i].array.is_none()) continue;
      auto obj = py::reinterpret_borrow<py::object>(arrays[i].array);
      const char use = static_cast<char>(arrays[i].use);
      if (py::isinstance<py::array>(obj)) {
        auto a = py::reinterpret_borrow<py::array>(obj);
        if (a.nbytes() > 0 && arena_->holds(a.data())) {
          ArenaView v{a.data(), a.dtype(), {}, {}};
          for (py::ssize_t d = 0; d < a.ndim(); ++d) {
            v.shape.push_back(a.shape(d));
            v.strides.push_back(a.strides(d));
          }
          c.views.push_back(std::move(v));
          c.arrays.emplace_back(py::none(), use);
          continue;
        }
      }
      c.views.emplace_back();
      c.arrays.emplace_back(std::move(obj), use);
    }
    log_.push_back(std::move(c));
    plan_.add(op, std::move(call));
  }

  // An uninitialised C-contiguous array in the arena (nnx._args.empty while this plan records).
  py::array empty(const std::vector<py::ssize_t>& shape, const py::dtype& dt) {
    const size_t bytes = c_array_bytes(shape, dt, "empty");
    auto owner = std::make_unique<CaptureBlock>();
    owner->p = arena_->take(bytes, &owner->capacity);
    owner->arena = arena_;
    void* data = owner->p;
    return c_array_on(data, shape, dt, py::cast(owner.release(), py::return_value_policy::take_ownership));
  }
  size_t arena_bytes() const { return arena_->held_bytes(); }

  void refuse(const std::string& why) override { refusals_.push_back(why); }

  void begin() {
    if (tl_recorder != nullptr)
      throw py::value_error("nnx.compile: a step is already being captured on this thread (nested capture)");
    tl_recorder = this;
  }
  void end() {
    if (tl_recorder == this) tl_recorder = nullptr;
  }

  py::list log() const {
    py::list out;
    // Arena arrays come back as views of their blocks, each keeping the arena alive while it lives.
    auto keep = [this] {
      return py::capsule(new std::shared_ptr<CaptureArena>(arena_),
                         [](void* p) { delete static_cast<std::shared_ptr<CaptureArena>*>(p); });
    };
    for (const LoggedCall& c : log_) {
      py::list arrays;
      for (size_t i = 0; i < c.arrays.size(); ++i) {
        const auto& a = c.arrays[i];
        const std::optional<ArenaView>& v = c.views[i];
        py::object arr = a.first;
        if (v) arr = py::array(v->dtype, v->shape, v->strides, v->data, keep());
        arrays.append(py::make_tuple(arr, std::string(1, a.second)));
      }
      out.append(py::make_tuple(c.op, py::tuple(py::cast(c.attrs)), arrays));
    }
    return out;
  }

  void run() {
    if (tl_recorder == this) throw py::value_error("nnx.compile: a plan cannot replay while it records");
    int nt = num_threads();
    py::gil_scoped_release release;
    plan_.run(nt);
  }

  void set_tuning(bool on) { plan_.set_tuning(on); }
  std::vector<int> thread_choice() const { return plan_.thread_choice(); }
  std::vector<double> candidate_times() const { return plan_.candidate_times(); }

  py::list profile(int replays) {
    if (replays < 1) throw py::value_error("replays: expected an int >= 1, got " + std::to_string(replays));
    if (tl_recorder == this) throw py::value_error("nnx.compile: a plan cannot replay while it records");
    std::vector<double> best;
    {
      int nt = num_threads();
      py::gil_scoped_release release;
      best = plan_.profile(nt, replays);
    }
    py::list out;
    for (size_t i = 0; i < best.size(); ++i) out.append(py::make_tuple(plan_.op(i), best[i]));
    return out;
  }

  std::vector<std::string> refusals() const { return refusals_; }
  size_t size() const { return plan_.size(); }

 private:
  std::shared_ptr<CaptureArena> arena_ = std::make_shared<CaptureArena>();
  Plan plan_;
  std::vector<LoggedCall> log_;
  std::vector<std::string> refusals_;
};

}  // namespace

Recorder* active_recorder() { return tl_recorder; }

void bind_compile(py::module_& m) {
  py::class_<CaptureBlock>(m, "CaptureBlock",
                           "The base of an op result made while a step is captured: its memory, a block of the "
                           "plan's, given back for reuse within the capture when the result and its views are gone.");
  py::class_<PyPlan>(m, "Plan", "Kernel calls recorded from one run of a step (nnx.compile), replayable.")
      .def(py::init<>())
      .def("empty", &PyPlan::empty, py::arg("shape"), py::arg("dtype"),
           "An uninitialised C-contiguous array in the plan's memory (an op result made during the capture).")
      .def_property_readonly("arena_bytes", &PyPlan::arena_bytes,
                             "Bytes of the blocks the plan holds for the results made during its capture.")
      .def("begin", &PyPlan::begin, "Records the kernel calls made on this thread from now on.")
      .def("end", &PyPlan::end, "Stops recording.")
      .def("log", &PyPlan::log, "[(op, attrs, [(array, use 'r'|'w'|'u'), ...]), ...] in call order.")
      .def("refusals", &PyPlan::refusals, "Why the recorded step cannot be replayed (empty when it can).")
      .def("run", &PyPlan::run, "Replays the recorded calls in order, without the GIL.")
      .def("set_tuning", &PyPlan::set_tuning,
           "Whether replays choose the thread count per call by timing (on by default; compile/plan.h).")
      .def("thread_choice", &PyPlan::thread_choice,
           "The thread count chosen for each call, or [] while none is chosen (one thread, tuning off, or timing).")
      .def("candidate_times", &PyPlan::candidate_times,
           "Median replay seconds of the per-call choice, all calls on one thread and all on every thread "
           "(compile/plan.h), or [] before they are timed.")
      .def("profile", &PyPlan::profile, py::arg("replays"),
           "Replays `replays` times (with the step's effects: a training step trains) and returns [(op, best seconds), ...], one per recorded call.")
      .def("__len__", &PyPlan::size);
}

}  // namespace nnx
