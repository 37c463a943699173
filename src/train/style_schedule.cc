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

std::string DescribeSchedule(const JobConfig& job, const StyleSchedule& plan) {
  std::ostringstream out;
  out << "schedule on " << plan.world << " rank(s): " << plan.groups << " group(s) of "
      << plan.ranks_per_group << " rank(s)\n";
  for (int g = 0; g < plan.groups; ++g) {
    const int first = g * plan.ranks_per_group;
    out << "  group " << g << " (ranks " << first;
    if (plan.ranks_per_group > 1) out << "-" << first + plan.ranks_per_group - 1;
    out << "):";
    const auto& styles = plan.styles_of_group[static_cast<size_t>(g)];
    if (styles.empty()) out << " idle";
    for (size_t i = 0; i < styles.size(); ++i) {
      const auto& style = job.styles[static_cast<size_t>(styles[i])];
      out << (i ? " ->" : "") << " " << style.name << " (batch " << style.training.batch_size
          << " x " << plan.ranks_per_group << " = "
          << style.training.batch_size * plan.ranks_per_group << ")";
    }
    out << "\n";
  }
  return out.str();
}

}  // namespace stylefleet
