// How one rank of a launch computes: its intra-op threads, its device and the
// communicators of its group. `train` and `bench` both start here, so they
// place work and average gradients the same way.
#pragma once

#include <torch/torch.h>

#include <memory>
#include <string>

#include "comm/world.h"
#include "common/cpu_info.h"

namespace stylefleet {

struct RuntimeOptions {
  /// LibTorch intra-op threads; 0: the host's cores shared among its ranks.
  int threads = 0;
  /// "auto" (NCCL when tensors live on CUDA, else MPI), "mpi" or "nccl"
  /// (DistributedOptions::backend).
  std::string backend = "auto";
  /// A NCCL collective unfinished after this long aborts the communicator
  /// (DistributedOptions::timeout_seconds).
  double timeout_seconds = 600;
  /// This rank's group (World::Split's colour) and its index in it.
  int group = 0;
  int rank_in_group = 0;
};

/// The threads a rank computes with.
struct ThreadBudget {
  /// LibTorch's intra-op threads (OpenMP, which oneDNN shares).
  int threads = 1;
  /// What the BLAS library's own pool was set to ("OpenBLAS: 2 threads"),
  /// or "" when the loaded BLAS has no pool (SetBlasThreads).
  std::string blas;
};

/// The runtime of one rank. Not thread-safe; lives for the whole command.
class RankRuntime {
 public:
  RankRuntime(ProcessInfo process, ThreadBudget threads, torch::Device device,
              std::unique_ptr<Communicator> control, std::unique_ptr<Communicator> nccl);

  const ProcessInfo& process() const { return process_; }
  int threads() const { return threads_.threads; }
  /// The BLAS pool's setting, for the log ("" when it has none).
  const std::string& blas_threads() const { return threads_.blas; }
  const torch::Device& device() const { return device_; }
  /// Host-memory collectives of the group: loss values, flags, agreement
  /// checks, broadcasts of host data.
  Communicator& control() { return *control_; }
  /// Collectives on tensors that live on device(): gradient averaging and
  /// parameter broadcasts. NCCL between GPUs, else the same as control().
  Communicator& tensors() { return nccl_ ? *nccl_ : *control_; }

 private:
  ProcessInfo process_;
  ThreadBudget threads_;
  torch::Device device_;
  std::unique_ptr<Communicator> control_;
  std::unique_ptr<Communicator> nccl_;
};

/// Collective over `world`: sets the intra-op threads, picks the GPU of this
/// local rank (or the CPU), checks that no two ranks share a GPU, chooses the
/// backend and builds the group's communicators (NCCL with the timeout of
/// `options`). Throws ConfigError when ranks would share a GPU or the backend
/// cannot serve this process's device; callers under mpirun abort the launch
/// (see src/cli), so no peer waits.
std::unique_ptr<RankRuntime> StartRankRuntime(World& world, const RuntimeOptions& options);

/// Sets every thread pool of this process to one count and returns it:
/// `requested` when > 0, else OMP_NUM_THREADS when set (as
/// launch/slurm.sbatch sets it from Slurm's cpus-per-task), else the host's
/// cores shared among its `ranks_on_host` ranks (LibTorch's own OpenMP
/// default can be 1 even with more cores). LibTorch's intra-op pool and the
/// BLAS library's pool both get it, so a rank's results and load do not
/// depend on whether the launcher bound it to cores.
ThreadBudget UseIntraOpThreads(int requested, int ranks_on_host);

/// The first entry of OMP_NUM_THREADS as a thread count; 0 when unset, and
/// when not a whole number from 1 to kMaxIntraOpThreads (then with a warning).
int ThreadsFromOmpEnvironment();

}  // namespace stylefleet
