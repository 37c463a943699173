// The test-only hooks of `train` (--test-inject-fault, --test-inject-nan,
// --test-perturb-replica, and the reseeding that tests of the root's state
// broadcast use), parsed once before training from their entries in
// TrainRunOptions (train/train.h) into the answers a run asks for. Torch-free.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "step/injected_fault.h"

namespace stylefleet {

class TestHooks {
 public:
  /// No hooks.
  TestHooks() = default;
  /// The hooks of TrainRunOptions' entries: `inject_faults` "STYLE:STEP:KIND"
  /// (the first entry of a style and step counts), `perturb_replica`
  /// "STYLE:STEP", `reseed_initial_model` "STYLE". STYLE may itself hold ':'
  /// (it is what precedes the last fields). Throws ConfigError naming each
  /// entry whose STEP is not a whole number from 1 or whose KIND is not a
  /// fault's name.
  TestHooks(const std::vector<std::string>& inject_faults,
            const std::vector<std::string>& perturb_replica,
            const std::vector<std::string>& reseed_initial_model);

  /// The fault `style`'s step `step` (1-based) gets on this rank.
  InjectedFault FaultAt(const std::string& style, int64_t step) const;
  /// Whether this rank's replica of `style` is perturbed after step `step`.
  bool PerturbsReplicaAt(const std::string& style, int64_t step) const;
  /// Whether this rank builds `style`'s initial model from another seed.
  bool Reseeds(const std::string& style) const;

 private:
  std::map<std::pair<std::string, int64_t>, InjectedFault> faults_;
  std::set<std::pair<std::string, int64_t>> perturbed_;
  std::set<std::string> reseeded_;
};

}  // namespace stylefleet
