// `stylefleet train` from a job file to its exit code, on one process or as
// one rank of an mpirun launch: load and preflight the job, agree on its
// validity over the ranks, lock the style folders, start the metrics
// exporter, train, withdraw the Prometheus targets. Torch-free: src/cli
// includes it.
#pragma once

#include <string>

#include "config/job_config.h"
#include "train/train.h"

namespace stylefleet {

/// Trains the job in `job_file` (loaded with `load`) in the world this
/// process was started in (MPI under a launcher, else solo). Returns the exit
/// code: 0 trained or stopped by a signal (checkpoints written), 1 a style
/// stopped by NaN/Inf faults, 2 a job invalid on any rank (reported once, by
/// rank 0, before a port is opened or a file written). Any other failure
/// aborts every rank of the launch (runtime/launch_errors.h); alone, it throws.
/// `options.metrics` is ignored: the job's monitoring section decides.
int LaunchTrain(const std::string& job_file, const LoadOptions& load,
                const TrainRunOptions& options);

}  // namespace stylefleet
