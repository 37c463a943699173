// The test-only faults a training step can be given on one rank. Torch-free:
// train/test_hooks.h parses them before training.
#pragma once

#include <string>

namespace stylefleet {

/// Test-only faults a step can be given on one rank, to trigger the
/// finiteness guards (`stylefleet train --test-inject-fault`). Loss faults
/// change the loss value only (its gradients stay finite); gradient faults
/// change one gradient element only (the loss stays finite), so each guard is
/// the only thing that can catch its fault.
enum class InjectedFault {
  kNone,
  kNanLoss,
  kInfLoss,
  kNanGradient,
  kInfGradient,
};

/// "nan-loss", "inf-loss", "nan-gradient", "inf-gradient"; throws ConfigError
/// for another name.
InjectedFault InjectedFaultNamed(const std::string& name);

}  // namespace stylefleet
