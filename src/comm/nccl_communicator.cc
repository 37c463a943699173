// The NCCL backend. The only file with nccl.h and the CUDA runtime.
#include "comm/nccl_communicator.h"

#include <cuda_runtime.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "comm/nccl_compat.h"
#include "comm/world.h"
#include "common/error.h"

namespace stylefleet {
namespace {

std::string NcclDetail(ncclComm_t comm) {
#if STYLEFLEET_NCCL_HAS_LAST_ERROR
  const char* last = ncclGetLastError(comm);
  if (last != nullptr && *last != '\0') return std::string(" (") + last + ")";
#else
  (void)comm;
#endif
  return "";
}

// Vendor return code -> exception with call, file:line, rank, host and message.
#define SF_NCCL_CHECK(call, rank, comm)                                                         \
  do {                                                                                          \
    const ncclResult_t sf_nccl_result = (call);                                                 \
    if (sf_nccl_result != ncclSuccess) {                                                        \
      throw ::stylefleet::Error("NCCL error on rank " + std::to_string(rank) + " (" +           \
                                LocalHostName() + ") in " #call " (" __FILE__ ":" +             \
                                std::to_string(__LINE__) +                                      \
                                "): " + ncclGetErrorString(sf_nccl_result) + NcclDetail(comm)); \
    }                                                                                           \
  } while (0)

#define SF_CUDA_CHECK(call, rank)                                                     \
  do {                                                                                \
    const cudaError_t sf_cuda_error = (call);                                         \
    if (sf_cuda_error != cudaSuccess) {                                               \
      throw ::stylefleet::Error("CUDA error on rank " + std::to_string(rank) + " (" + \
                                LocalHostName() + ") in " #call " (" __FILE__ ":" +   \
                                std::to_string(__LINE__) +                            \
                                "): " + cudaGetErrorString(sf_cuda_error));           \
    }                                                                                 \
  } while (0)

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(Communicator& bootstrap, int device, const NcclOptions& options)
      : bootstrap_(bootstrap), device_(device), options_(options) {
    const int rank = bootstrap_.rank();
    SF_CUDA_CHECK(cudaSetDevice(device_), rank);
    ncclUniqueId id;
    if (rank == 0) SF_NCCL_CHECK(ncclGetUniqueId(&id), rank, nullptr);
    bootstrap_.Broadcast(&id, sizeof(id), 0);
    SF_NCCL_CHECK(ncclCommInitRank(&comm_, bootstrap_.size(), id, rank), rank, nullptr);
    SF_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), rank);
  }

  ~NcclCommunicator() override {
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
    if (comm_ != nullptr) {
      if (aborted_) return;
      ncclCommDestroy(comm_);
    }
  }

  int rank() const override { return bootstrap_.rank(); }
  int size() const override { return bootstrap_.size(); }
  std::string backend() const override { return "nccl"; }

 protected:
  // Host operations and the identity checks run on the bootstrap communicator.
  bool ChecksIdentity() const override { return false; }
  void ExchangeIdentity(const void*, size_t, void*, const std::string&) override {}

  void DoAllReduceAverage(float* data, size_t count, const std::string&) override {
    OrderAfterDevice();
    SF_NCCL_CHECK(ncclAllReduce(data, data, count, ncclFloat, ncclAvg, comm_, stream_), rank(),
                  comm_);
    Wait("allreduce");
  }

  void DoBroadcast(void* data, size_t bytes, int root, const std::string& what) override {
    cudaPointerAttributes attributes{};
    const bool on_device = cudaPointerGetAttributes(&attributes, data) == cudaSuccess &&
                           attributes.type == cudaMemoryTypeDevice;
    if (!on_device) {
      cudaGetLastError();  // clear the error of a host pointer query
      bootstrap_.Broadcast(data, bytes, root, what);
      return;
    }
    OrderAfterDevice();
    SF_NCCL_CHECK(ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_), rank(), comm_);
    Wait("broadcast");
  }

  void DoAllReduceSum(double* data, size_t count, const std::string& what) override {
    bootstrap_.AllReduceSum(data, count, what);
  }
  std::vector<std::string> DoAllGather(const std::string& value, const std::string& what) override {
    return bootstrap_.AllGather(value, what);
  }
  void DoBarrier(const std::string& what) override { bootstrap_.Barrier(what); }

 private:
  // Work queued by LibTorch on its streams (the backward pass) finishes first.
  void OrderAfterDevice() { SF_CUDA_CHECK(cudaDeviceSynchronize(), rank()); }

  // Polls the stream and NCCL's async error; aborts the communicator on error or
  // timeout so that peers fail instead of waiting forever.
  void Wait(const char* what) {
    const auto start = std::chrono::steady_clock::now();
    while (true) {
      const cudaError_t state = cudaStreamQuery(stream_);
      if (state == cudaSuccess) return;
      if (state != cudaErrorNotReady) SF_CUDA_CHECK(state, rank());
      ncclResult_t async = ncclSuccess;
      SF_NCCL_CHECK(ncclCommGetAsyncError(comm_, &async), rank(), comm_);
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (async != ncclSuccess || waited > options_.timeout_seconds) {
        ncclCommAbort(comm_);
        aborted_ = true;
        throw Error("NCCL " + std::string(what) + " on rank " + std::to_string(rank()) + " (" +
                    LocalHostName() + ") " +
                    (async != ncclSuccess ? std::string("failed: ") + ncclGetErrorString(async)
                                          : "did not finish within " +
                                                std::to_string(options_.timeout_seconds) + " s") +
                    "; communicator aborted");
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  Communicator& bootstrap_;
  int device_;
  NcclOptions options_;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  bool aborted_ = false;
};

}  // namespace

bool NcclBackendBuilt() { return true; }

std::string NcclVersion() {
  int code = 0;
  if (ncclGetVersion(&code) != ncclSuccess) return "unknown";
  return std::to_string(code / 10000) + "." + std::to_string(code / 100 % 100) + "." +
         std::to_string(code % 100);
}

std::unique_ptr<Communicator> MakeNcclCommunicator(Communicator& bootstrap, int device,
                                                   const NcclOptions& options) {
  return std::make_unique<NcclCommunicator>(bootstrap, device, options);
}

int CudaDeviceCount() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

}  // namespace stylefleet
