#include "train/test_hooks.h"

#include <vector>

#include "common/error.h"

namespace stylefleet {
namespace {

// STYLE:STEP split at the last ':'; false when there is no STYLE or STEP is
// not a whole number from 1.
bool SplitStyleStep(const std::string& entry, std::string* style, int64_t* step) {
  const size_t colon = entry.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == entry.size()) return false;
  const std::string digits = entry.substr(colon + 1);
  if (digits.size() > 15 || digits.find_first_not_of("0123456789") != std::string::npos) {
    return false;
  }
  *style = entry.substr(0, colon);
  *step = std::stoll(digits);
  return *step >= 1;
}

}  // namespace

TestHooks::TestHooks(const std::vector<std::string>& inject_faults,
                     const std::vector<std::string>& perturb_replica,
                     const std::vector<std::string>& reseed_initial_model) {
  std::vector<std::string> problems;
  for (const std::string& entry : inject_faults) {
    const size_t colon = entry.rfind(':');
    std::string style;
    int64_t step = 0;
    if (colon == std::string::npos || !SplitStyleStep(entry.substr(0, colon), &style, &step)) {
      problems.push_back("test fault " + entry +
                         " (--test-inject-fault, or --test-inject-nan STYLE:STEP): expected "
                         "STYLE:STEP:KIND with STEP a whole number from 1");
      continue;
    }
    try {
      faults_.emplace(std::make_pair(style, step), InjectedFaultNamed(entry.substr(colon + 1)));
    } catch (const ConfigError& e) {
      problems.push_back("test fault " + entry + " (--test-inject-fault): " + e.problems().front());
    }
  }
  for (const std::string& entry : perturb_replica) {
    std::string style;
    int64_t step = 0;
    if (!SplitStyleStep(entry, &style, &step)) {
      problems.push_back("--test-perturb-replica " + entry +
                         ": expected STYLE:STEP with STEP a whole number from 1");
      continue;
    }
    perturbed_.insert({style, step});
  }
  reseeded_.insert(reseed_initial_model.begin(), reseed_initial_model.end());
  if (!problems.empty()) throw ConfigError(problems);
}

InjectedFault TestHooks::FaultAt(const std::string& style, int64_t step) const {
  const auto found = faults_.find({style, step});
  return found == faults_.end() ? InjectedFault::kNone : found->second;
}

bool TestHooks::PerturbsReplicaAt(const std::string& style, int64_t step) const {
  return perturbed_.count({style, step}) > 0;
}

bool TestHooks::Reseeds(const std::string& style) const { return reseeded_.count(style) > 0; }

}  // namespace stylefleet
