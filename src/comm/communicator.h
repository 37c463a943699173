// The collective operations a style's group of ranks needs, behind one small
// interface with an MPI, a NCCL and an in-process backend.
//
// Every method is collective: all ranks of the communicator call it, in the
// same order, with the same sizes (c10d's call-order contract). Buffers are
// raw pointers so that this folder needs neither LibTorch nor CUDA headers in
// its interface: host memory for MPI and the in-process backend, device memory
// for NCCL. A communicator is used from one thread. Failures throw Error
// naming the rank and the operation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stylefleet {

/// Every collective first compares its identity across the ranks: the
/// operation, a per-communicator sequence number, the byte count and the call
/// site (`what`, e.g. "gradient bucket 3"). Ranks that reach different
/// collectives (a schedule that branched differently) all throw Error naming
/// both sides ("rank 0 is in checkpoint broadcast #12 of 1.2 MB, rank 1 in
/// gradient bucket 0 #12 of 6.8 MB") before any payload moves: never memory
/// corruption, never a wait until the timeout. The exchange is one small
/// allgather per collective.
class Communicator {
 public:
  virtual ~Communicator() = default;

  /// This process's index in the communicator, 0..size()-1.
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "mpi", "nccl" or "local".
  virtual std::string backend() const = 0;

  /// In place: data[i] = mean over ranks of data[i]. Host memory, or device
  /// memory for NCCL. Every rank gets the same bits. With the MPI and the
  /// in-process backends and a power-of-two number of ranks, the sum is
  /// added in one fixed tree (rank r with r + N/2 first, then r + N/4, ...,
  /// as GradientTree adds micro-batches), whatever algorithm MPI would pick;
  /// NCCL adds in its own order.
  void AllReduceAverage(float* data, size_t count, const std::string& what = "allreduce");
  /// In place: data[i] = sum over ranks (host memory, any backend).
  void AllReduceSum(double* data, size_t count, const std::string& what = "value allreduce");
  /// Copies `bytes` bytes from `root` to every rank (host memory; device memory for NCCL).
  void Broadcast(void* data, size_t bytes, int root, const std::string& what = "broadcast");
  /// Every rank's string, in rank order (host memory). Lengths may differ.
  std::vector<std::string> AllGather(const std::string& value,
                                     const std::string& what = "allgather");
  void Barrier(const std::string& what = "barrier");

 protected:
  // The operations themselves, without the identity check.
  virtual void DoAllReduceAverage(float* data, size_t count, const std::string& what) = 0;
  virtual void DoAllReduceSum(double* data, size_t count, const std::string& what) = 0;
  virtual void DoBroadcast(void* data, size_t bytes, int root, const std::string& what) = 0;
  virtual std::vector<std::string> DoAllGather(const std::string& value,
                                               const std::string& what) = 0;
  virtual void DoBarrier(const std::string& what) = 0;
  /// Gathers `bytes` bytes from every rank into `all` (size() * bytes, rank
  /// order): the channel the identities travel on.
  virtual void ExchangeIdentity(const void* mine, size_t bytes, void* all,
                                const std::string& what) = 0;
  /// False where the identities are compared elsewhere (the NCCL backend's
  /// host operations run on its bootstrap communicator, which checks them).
  virtual bool ChecksIdentity() const { return true; }

 private:
  void CheckIdentity(char kind, uint64_t bytes, const std::string& what);
  uint64_t sequence_ = 0;
};

/// A world of one: every collective is the identity.
std::unique_ptr<Communicator> MakeSoloCommunicator();

/// `size` communicators that talk to each other in memory, for tests: each is
/// driven from its own thread, like the ranks of a real world.
std::vector<std::unique_ptr<Communicator>> MakeLocalWorld(int size);

}  // namespace stylefleet
