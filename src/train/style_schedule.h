// How the styles of a job are laid onto the ranks of a launch. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "config/job_config.h"

namespace stylefleet {

/// With S styles on N ranks: `groups` groups of `ranks_per_group` consecutive
/// ranks; group k trains styles k, k + groups, k + 2*groups, ... one after another.
struct StyleSchedule {
  int world = 1;
  int groups = 1;
  int ranks_per_group = 1;
  std::vector<std::vector<int>> styles_of_group;

  int GroupOf(int rank) const { return rank / ranks_per_group; }
  int RankInGroup(int rank) const { return rank % ranks_per_group; }
};

/// Lays `styles` styles onto `world` ranks. `ranks_per_style` 0 picks the
/// largest group count that divides `world` and does not exceed `styles` (no
/// idle group, no idle rank). Throws ConfigError when `ranks_per_style` does
/// not divide `world`.
StyleSchedule PlanStyles(int styles, int world, int ranks_per_style);

/// The passes of one group: `group_styles` (indices into `styles`) in order,
/// cut into runs of up to `styles_at_once` consecutive styles whose
/// pass-shaping settings agree (CanShareTrainingPass); the styles of a pass
/// train together on the same batches. `styles_at_once` 0: consecutive runs of
/// one sweep, up to kAutoStylesAtOnce. What `train` does and `check` prints.
std::vector<std::vector<int>> GroupPasses(const std::vector<const StyleSpec*>& styles,
                                          const std::vector<int>& group_styles, int styles_at_once);

/// The plan in words: which ranks train which style, in which order, and
/// which styles train together (job.styles_at_once).
std::string DescribeSchedule(const JobConfig& job, const StyleSchedule& schedule);

}  // namespace stylefleet
