// Sweeps: a `sweep:` mapping (job-wide, or in one style) makes a style one run
// per combination of values of training keys.
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "config/job_config.h"
#include "config/problems.h"

namespace stylefleet::job_loader {

constexpr int kDefaultMaxSweepRuns = 64;
constexpr size_t kMaxSweepValues = 256;

// One axis of a sweep: a grid key with its values, or the zipped keys, whose
// i-th values go together. points[i][k] is the i-th value of keys[k].
struct SweepAxis {
  std::vector<std::string> keys;
  std::vector<std::vector<YAML::Node>> points;
  std::vector<std::string> paths;  // "sweep.grid.style_weight", per key, for messages
};

struct Sweep {
  std::vector<SweepAxis> axes;  // empty: not swept
  // texts[a][i]: "KEY=VALUE,..." of point i of axis a, as it appears in run names.
  std::vector<std::vector<std::string>> texts;
  int max_runs = kDefaultMaxSweepRuns;
  std::string where;  // "sweep" or "styles[].sweep"
  YAML::Mark mark;
};

// Reads a `sweep:` mapping at `where` ("sweep" or "styles[].sweep").
Sweep ReadSweep(const YAML::Node& node, const std::string& where, Problems& problems);

// Adds `style` to the job: as it is when `sweep` has no axes, else as one run
// per combination (first axis slowest), named STYLE/KEY=VALUE,KEY=VALUE.
void AddStyleRuns(const StyleSpec& style, const Sweep& sweep, JobConfig& job, Problems& problems);

}  // namespace stylefleet::job_loader
