// The NCCL backend: gradients averaged between GPUs. Built only when the CUDA
// toolkit and NCCL are found (nccl_communicator.cc); otherwise
// nccl_unavailable.cc provides the same functions, which report that clearly.
#pragma once

#include <memory>

#include "comm/communicator.h"

namespace stylefleet {

struct NcclOptions {
  /// A collective still unfinished after this long aborts the communicator
  /// (ncclCommAbort) and throws, instead of hanging every rank.
  double timeout_seconds = 600;
};

/// True when this build has the NCCL backend.
bool NcclBackendBuilt();

/// NCCL version as "2.28.9", or "not built".
std::string NcclVersion();

/// Collective over `bootstrap` (an MPI or in-process group): rank 0 creates the
/// NCCL unique id, `bootstrap` broadcasts it, every rank joins with
/// ncclCommInitRank on CUDA device `device`. AllReduceAverage and Broadcast
/// take device pointers and run on the communicator's own stream, after
/// everything queued before on the device (a device-wide sync orders them after
/// the backward pass); AllReduceSum, AllGather and Barrier run on host data
/// through `bootstrap`, which must outlive the result. Throws Error (with rank,
/// host and NCCL's message) when NCCL is not built in or fails.
std::unique_ptr<Communicator> MakeNcclCommunicator(Communicator& bootstrap, int device,
                                                   const NcclOptions& options = {});

/// Number of CUDA devices visible to this process; 0 without a driver or when
/// the backend is not built.
int CudaDeviceCount();

}  // namespace stylefleet
