// Graceful stop on SIGTERM/SIGINT/SIGUSR1 (what Slurm, Kubernetes and mpirun send before
// killing a job): the handler only sets a flag; the trainer checks it after
// each step, writes a checkpoint and returns. A second signal ends the process
// at once (the default action), for a user who insists.
#pragma once

namespace stylefleet {

/// Installs the handlers for SIGTERM, SIGINT and SIGUSR1. Call once, from main().
void InstallStopSignalHandlers();

/// True once a stop signal arrived (or RequestStop() was called).
bool StopRequested();

/// Sets the flag as a signal would (tests, other shutdown paths).
void RequestStop();

/// Clears the flag (tests).
void ClearStopRequest();

}  // namespace stylefleet
