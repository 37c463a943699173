// The clock that splits a step's time into phases, and writes them as a
// Chrome trace (chrome://tracing, Perfetto).
#pragma once

#include <torch/torch.h>

#include <array>
#include <chrono>
#include <string>
#include <vector>

namespace stylefleet {

/// The phases a step's time is split into.
enum class Phase : int {
  kData,
  kTransformerForward,
  kVggForward,
  kLoss,
  kBackward,
  kAllreduce,
  kOptimizer,
  kCount
};
const char* PhaseName(Phase phase);

/// Accumulates wall time per phase. On a GPU it synchronizes at every phase
/// boundary (so only when asked to: benchmarks and traces), on CPU the
/// operators are synchronous anyway. Optionally records every span for a
/// Chrome trace (chrome://tracing, Perfetto).
class StepClock {
 public:
  StepClock(const torch::Device& device, bool record_spans);

  /// Ends the running phase (if any) and starts `phase`.
  void Begin(Phase phase, const std::string& detail = "");
  /// Ends the running phase.
  void End();

  /// Seconds per phase since the last Reset().
  const std::array<double, static_cast<int>(Phase::kCount)>& seconds() const { return seconds_; }
  void Reset() { seconds_.fill(0); }

  /// Writes the recorded spans as Chrome-trace JSON; `process` labels the
  /// rank. Throws Error when the file cannot be written.
  void WriteTrace(const std::string& path, int process, const std::string& process_name) const;

 private:
  struct Span {
    Phase phase;
    std::string detail;
    double start_us, duration_us;
  };
  torch::Device device_;
  bool record_spans_;
  bool running_ = false;
  Phase phase_ = Phase::kData;
  std::string detail_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point origin_;
  std::array<double, static_cast<int>(Phase::kCount)> seconds_{};
  std::vector<Span> spans_;
};

/// `path` itself in a world of one; else the rank goes before the extension
/// (trace.json -> trace.rank1.json).
std::string RankTracePath(const std::string& path, int rank, int world_size);

}  // namespace stylefleet
