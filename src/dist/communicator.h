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

class Communicator {
 public:
  virtual ~Communicator() = default;

  /// This process's index in the communicator, 0..size()-1.
  virtual int rank() const = 0;
  virtual int size() const = 0;
  /// "mpi", "nccl" or "local".
  virtual std::string backend() const = 0;

  /// In place: data[i] = mean over ranks of data[i]. Host memory, or device
  /// memory for NCCL.
  virtual void AllReduceAverage(float* data, size_t count) = 0;
  /// In place: data[i] = sum over ranks (host memory, any backend).
  virtual void AllReduceSum(double* data, size_t count) = 0;
  /// Copies `bytes` bytes from `root` to every rank (host memory; device memory for NCCL).
  virtual void Broadcast(void* data, size_t bytes, int root) = 0;
  /// Every rank's string, in rank order (host memory).
  virtual std::vector<std::string> AllGather(const std::string& value) = 0;
  virtual void Barrier() = 0;
};

/// A world of one: every collective is the identity.
std::unique_ptr<Communicator> MakeSoloCommunicator();

/// `size` communicators that talk to each other in memory, for tests: each is
/// driven from its own thread, like the ranks of a real world.
std::vector<std::unique_ptr<Communicator>> MakeLocalWorld(int size);

}  // namespace stylefleet
