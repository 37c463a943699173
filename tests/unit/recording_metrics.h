// A TrainingMetrics that remembers what the trainer reported, for tests that
// check who reported what (which rank trained which style, bad steps).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "metrics/training_metrics.h"

namespace stylefleet::testing {

class RecordingMetrics : public TrainingMetrics {
 public:
  struct Start {
    std::string style;
    int group = 0;
    bool reports_losses = false;
    std::vector<std::string> layers;
    std::vector<std::pair<std::string, std::string>> labels;
  };

  void StyleStarted(const std::string& style, const std::vector<std::string>& layers, int group,
                    bool reports_losses,
                    const std::vector<std::pair<std::string, std::string>>& labels) override {
    started.push_back({style, group, reports_losses, layers, labels});
  }
  void OnStep(const StepEvent& event) override {
    for (const StyleStepEvent& style : event.styles) {
      if (style.step.images > 0) steps[style.style].push_back(event.step);
    }
  }
  void ImagesSkipped(int64_t) override {}
  void CheckpointWritten(const std::string& style, double) override { ++checkpoints[style]; }
  void BadStep(const std::string& style) override { ++bad_steps[style]; }
  void CollectiveStalls(int64_t count) override { stalls += count; }
  void StyleFinished(const std::string& style) override { finished.push_back(style); }

  std::vector<Start> started;                         ///< in call order
  std::map<std::string, std::vector<int64_t>> steps;  ///< steps with images, per style
  std::map<std::string, int> bad_steps;
  std::map<std::string, int> checkpoints;  ///< CheckpointWritten calls per style
  std::vector<std::string> finished;
  int64_t stalls = 0;
};

}  // namespace stylefleet::testing
