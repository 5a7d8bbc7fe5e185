// nnx.compile's plan object: records the kernel calls of a step while it runs eagerly (as the Recorder of
// bindings/record.h), keeps every array they touch alive, and replays them without the GIL.
// The checks that make a recording safe to replay (every kernel input produced by an earlier kernel or
// declared as step input / state, two recordings alike) are made in Python, on log().
#include <pybind11/stl.h>

#include <string>
#include <utility>
#include <vector>

#include "bindings/bindings.h"
#include "bindings/record.h"
#include "common/threads.h"
#include "compile/plan.h"

namespace nnx {
namespace {

thread_local Recorder* tl_recorder = nullptr;

struct LoggedCall {
  std::string op;
  std::vector<double> attrs;
  std::vector<std::pair<py::object, char>> arrays;
};

class PyPlan final : public Recorder {
 public:
  ~PyPlan() {
    if (tl_recorder == this) tl_recorder = nullptr;
  }

  void record(const char* op, const ArrayUse* arrays, size_t count, std::vector<double> attrs,
              KernelCall call) override {
    LoggedCall c{op, std::move(attrs), {}};
    for (size_t i = 0; i < count; ++i)
      if (arrays[i].array && !arrays[i].array.is_none())
        c.arrays.emplace_back(py::reinterpret_borrow<py::object>(arrays[i].array), static_cast<char>(arrays[i].use));
    log_.push_back(std::move(c));
    plan_.add(op, std::move(call));
  }

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
    for (const LoggedCall& c : log_) {
      py::list arrays;
      for (const auto& a : c.arrays) arrays.append(py::make_tuple(a.first, std::string(1, a.second)));
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
  Plan plan_;
  std::vector<LoggedCall> log_;
  std::vector<std::string> refusals_;
};

}  // namespace

Recorder* active_recorder() { return tl_recorder; }

void bind_compile(py::module_& m) {
  py::class_<PyPlan>(m, "Plan", "Kernel calls recorded from one run of a step (nnx.compile), replayable.")
      .def(py::init<>())
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
