// Whether a job's training steps fit this machine's memory, checked before any
// memory is spent. Torch-free (`check` uses it).
#pragma once

#include <string>

#include "config/job_config.h"

namespace stylefleet {

struct MemoryBudget {
  /// The largest pass of the job plus each loader thread decoding the largest
  /// image allowed, times the processes on the host.
  double needed_bytes = 0;
  double available_bytes = 0;  ///< 0 when unknown (then nothing is refused)
  std::string largest_pass;    ///< which styles and settings need the most, in words
  bool fits() const { return available_bytes <= 0 || needed_bytes <= available_bytes; }
};

/// The estimated peak memory of training `job` on CPU (step/step_cost.h) with
/// `processes_on_host` ranks sharing this host, against what the host has
/// available now.
MemoryBudget EstimateMemoryBudget(const JobConfig& job, int processes_on_host);

/// The problem to report, with the estimate and the limit, when the job cannot
/// fit (so a run never dies in an allocation failure minutes in); "" when it fits.
std::string MemoryBudgetProblem(const JobConfig& job, int processes_on_host);

/// Throws ConfigError with MemoryBudgetProblem when the job cannot fit.
void CheckMemoryBudget(const JobConfig& job, int processes_on_host);

}  // namespace stylefleet
