#include "train/style_schedule.h"

#include <sstream>

#include "common/error.h"

namespace stylefleet {

StyleSchedule PlanStyles(int styles, int world, int ranks_per_style) {
  SF_CHECK(styles >= 1 && world >= 1, "empty schedule");
  StyleSchedule plan;
  plan.world = world;
  if (ranks_per_style > 0) {
    if (world % ranks_per_style != 0) {
      throw ConfigError({"distributed.ranks_per_style: " + std::to_string(ranks_per_style) +
                         " does not divide the " + std::to_string(world) +
                         " ranks of this launch"});
    }
    plan.ranks_per_group = ranks_per_style;
    plan.groups = world / ranks_per_style;
  } else {
    plan.groups = 1;
    for (int g = std::min(styles, world); g >= 1; --g) {
      if (world % g == 0) {
        plan.groups = g;
        break;
      }
    }
    plan.ranks_per_group = world / plan.groups;
  }
  plan.styles_of_group.resize(static_cast<size_t>(plan.groups));
  for (int s = 0; s < styles; ++s)
    plan.styles_of_group[static_cast<size_t>(s % plan.groups)].push_back(s);
  return plan;
}

std::vector<std::vector<int>> GroupPasses(const std::vector<const StyleSpec*>& styles,
                                          const std::vector<int>& group_styles,
                                          int styles_at_once) {
  std::vector<std::vector<int>> passes;
  for (int index : group_styles) {
    const StyleSpec& style = *styles[static_cast<size_t>(index)];
    const StyleSpec* last =
        passes.empty() ? nullptr : styles[static_cast<size_t>(passes.back().front())];
    // 0: runs of one sweep together, up to kAutoStylesAtOnce; other styles alone.
    const bool fits =
        last != nullptr &&
        (styles_at_once > 0 ? static_cast<int>(passes.back().size()) < styles_at_once
                            : !style.sweep.empty() && style.sweep == last->sweep &&
                                  static_cast<int>(passes.back().size()) < kAutoStylesAtOnce);
    if (fits && CanShareTrainingPass(last->training, style.training)) {
      passes.back().push_back(index);
    } else {
      passes.push_back({index});
    }
  }
  return passes;
}

std::string DescribeSchedule(const JobConfig& job, const StyleSchedule& plan) {
  std::vector<const StyleSpec*> styles;
  for (const auto& style : job.styles) styles.push_back(&style);
  std::ostringstream out;
  out << "schedule on " << plan.world << " rank(s): " << plan.groups << " group(s) of "
      << plan.ranks_per_group << " rank(s)\n";
  for (int g = 0; g < plan.groups; ++g) {
    const int first = g * plan.ranks_per_group;
    out << "  group " << g << " (ranks " << first;
    if (plan.ranks_per_group > 1) out << "-" << first + plan.ranks_per_group - 1;
    out << "):";
    const auto& mine = plan.styles_of_group[static_cast<size_t>(g)];
    if (mine.empty()) out << " idle";
    const auto passes = GroupPasses(styles, mine, job.styles_at_once);
    for (size_t p = 0; p < passes.size(); ++p) {
      out << (p ? " ->" : "");
      for (size_t i = 0; i < passes[p].size(); ++i) {
        out << (i ? " +" : "") << " " << styles[static_cast<size_t>(passes[p][i])]->name;
      }
      const TrainingOptions& t = styles[static_cast<size_t>(passes[p].front())]->training;
      out << " (" << (passes[p].size() > 1 ? "together on the same batches, " : "") << "batch "
          << t.batch_size << " x " << plan.ranks_per_group << " = "
          << t.batch_size * plan.ranks_per_group << ")";
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace stylefleet
