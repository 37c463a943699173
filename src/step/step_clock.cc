#include "step/step_clock.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/torch_compat.h"

namespace stylefleet {

const char* PhaseName(Phase phase) {
  switch (phase) {
    case Phase::kData:
      return "data";
    case Phase::kTransformerForward:
      return "transformer_forward";
    case Phase::kVggForward:
      return "vgg_forward";
    case Phase::kLoss:
      return "loss";
    case Phase::kBackward:
      return "backward";
    case Phase::kAllreduce:
      return "allreduce";
    case Phase::kOptimizer:
      return "optimizer";
    case Phase::kCount:
      break;
  }
  return "?";
}

StepClock::StepClock(const torch::Device& device, bool record_spans)
    : device_(device), record_spans_(record_spans), origin_(std::chrono::steady_clock::now()) {}

void StepClock::Begin(Phase phase, const std::string& detail) {
  End();
  running_ = true;
  phase_ = phase;
  detail_ = detail;
  start_ = std::chrono::steady_clock::now();
}

void StepClock::End() {
  if (!running_) return;
  SynchronizeDevice(device_);
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - start_).count();
  seconds_[static_cast<size_t>(phase_)] += seconds;
  if (record_spans_) {
    spans_.push_back({phase_, detail_,
                      std::chrono::duration<double, std::micro>(start_ - origin_).count(),
                      seconds * 1e6});
  }
  running_ = false;
}

void StepClock::WriteTrace(const std::string& path, int process,
                           const std::string& process_name) const {
  nlohmann::json events = nlohmann::json::array();
  events.push_back({{"name", "process_name"},
                    {"ph", "M"},
                    {"pid", process},
                    {"tid", 0},
                    {"args", {{"name", process_name}}}});
  for (const Span& span : spans_) {
    nlohmann::json event = {
        {"name", PhaseName(span.phase)}, {"cat", "step"},  {"ph", "X"}, {"ts", span.start_us},
        {"dur", span.duration_us},       {"pid", process}, {"tid", 0}};
    if (!span.detail.empty()) event["args"] = {{"detail", span.detail}};
    events.push_back(event);
  }
  std::ofstream out(path, std::ios::trunc);
  out << nlohmann::json{{"traceEvents", events}, {"displayTimeUnit", "ms"}}.dump() << "\n";
  if (!out) throw Error("cannot write the trace file " + path + " (" + std::strerror(errno) + ")");
}

std::string RankTracePath(const std::string& path, int rank, int world_size) {
  if (world_size <= 1) return path;
  const std::filesystem::path p(path);
  return (p.parent_path() /
          (p.stem().string() + ".rank" + std::to_string(rank) + p.extension().string()))
      .string();
}

}  // namespace stylefleet
