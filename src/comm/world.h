// The set of processes of one launch: who this process is, where it runs, and
// how to split the processes into per-style groups.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "comm/communicator.h"

namespace stylefleet {

struct ProcessInfo {
  int rank = 0;        ///< in the world
  int size = 1;        ///< world size
  int local_rank = 0;  ///< among the processes on this host
  int local_size = 1;
  std::string host;
};

/// Not thread-safe; every process creates exactly one and keeps it for the
/// whole run. Split and Abort follow the collective rules of Communicator.
class World {
 public:
  virtual ~World() = default;
  virtual const ProcessInfo& info() const = 0;
  /// A communicator over every process.
  virtual Communicator& all() = 0;
  /// Collective over the world: processes with the same `color` form one
  /// communicator, ordered by `key`. `backend` is "mpi" or "local"; NCCL
  /// communicators are built on top of one of these (MakeNcclCommunicator).
  virtual std::unique_ptr<Communicator> Split(int color, int key) = 0;
  /// Ends every process of the launch now (after a fatal error on this one,
  /// so that peers blocked in a collective do not hang). Does not return.
  [[noreturn]] virtual void Abort(int exit_code) = 0;
  /// Collectives of all() and of communicators split afterwards warn (once per
  /// call) after `warn_seconds` and throw after `timeout_seconds` without
  /// completing: a dead or stalled peer ends the job instead of hanging it.
  /// Backends without timeouts ignore this.
  virtual void SetCollectiveTimeouts(double warn_seconds, double timeout_seconds) = 0;
};

/// This machine's host name (gethostname), for messages and metrics.
std::string LocalHostName();

/// A world of one process, without MPI.
std::unique_ptr<World> MakeSoloWorld();

/// `size` worlds that talk in memory, one per thread, for tests.
std::vector<std::unique_ptr<World>> MakeLocalWorlds(int size);

/// True when this process was started by an MPI launcher (mpirun, srun with
/// PMI/PMIx), judged from the launcher's environment variables.
bool LaunchedByMpi();

/// Initializes MPI (thread level FUNNELED: only the main thread calls MPI) and
/// describes this process; local rank from MPI_Comm_split_type(SHARED).
/// Finalizes MPI on destruction.
std::unique_ptr<World> MakeMpiWorld();

/// Collectives that waited past the stall warning so far (all MPI communicators).
int64_t CollectiveStallWarnings();

}  // namespace stylefleet
