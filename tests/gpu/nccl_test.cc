// The NCCL backend: always that it links and reports its version; on machines
// with two or more CUDA devices, AllReduceAverage and Broadcast over device
// memory. Without them the device tests skip, saying why (ctest lists them as
// skipped: see tests/CMakeLists.txt).
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "comm/nccl_communicator.h"

namespace stylefleet {
namespace {

// A failed CUDA call in a test rank: an exception naming the call and CUDA's message.
#define TEST_CUDA_CHECK(call)                                                      \
  do {                                                                             \
    const cudaError_t test_cuda_error = (call);                                    \
    if (test_cuda_error != cudaSuccess) {                                          \
      throw std::runtime_error(std::string(#call) +                                \
                               " failed: " + cudaGetErrorString(test_cuda_error)); \
    }                                                                              \
  } while (0)

constexpr int kRanks = 2;
constexpr size_t kCount = 4;

// Why the device tests cannot run here; empty when they can.
std::string WhyNoDevices() {
  int devices = 0;
  const cudaError_t status = cudaGetDeviceCount(&devices);
  if (status != cudaSuccess) {
    cudaGetLastError();
    return std::string("no usable CUDA device (cudaGetDeviceCount: ") + cudaGetErrorString(status) +
           ")";
  }
  if (devices < kRanks) {
    // NCCL refuses two ranks of one communicator on the same device.
    return "needs " + std::to_string(kRanks) + " CUDA devices (one per rank), found " +
           std::to_string(devices);
  }
  return "";
}

// Runs `body(communicator, device buffer)` on one thread per rank, rank r on
// device r with `host[r]` copied to its buffer; returns each rank's buffer
// afterwards. Failures (CUDA or NCCL) are test failures naming the rank.
std::vector<std::vector<float>> OnDevices(const std::vector<std::vector<float>>& host,
                                          const std::function<void(Communicator&, float*)>& body) {
  auto bootstrap = MakeLocalWorld(kRanks);
  std::vector<std::vector<float>> results(kRanks, std::vector<float>(kCount, -1.0f));
  std::vector<std::string> errors(kRanks);
  std::vector<std::thread> threads;
  for (int r = 0; r < kRanks; ++r) {
    threads.emplace_back([&, r] {
      const size_t i = static_cast<size_t>(r);
      float* device = nullptr;
      try {
        TEST_CUDA_CHECK(cudaSetDevice(r));
        auto comm = MakeNcclCommunicator(*bootstrap[i], r);
        TEST_CUDA_CHECK(cudaMalloc(&device, kCount * sizeof(float)));
        TEST_CUDA_CHECK(
            cudaMemcpy(device, host[i].data(), kCount * sizeof(float), cudaMemcpyHostToDevice));
        body(*comm, device);
        TEST_CUDA_CHECK(
            cudaMemcpy(results[i].data(), device, kCount * sizeof(float), cudaMemcpyDeviceToHost));
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
      if (device != nullptr) cudaFree(device);
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(errors[static_cast<size_t>(r)], "") << "rank " << r;
  }
  return results;
}

TEST(NcclBackendTest, IsBuiltAndReportsItsVersion) {
  EXPECT_TRUE(NcclBackendBuilt());
  const std::string version = NcclVersion();
  EXPECT_NE(version, "unknown");
  EXPECT_EQ(version.substr(0, 2), "2.");
  std::printf("NCCL %s, %d CUDA device(s)\n", version.c_str(), CudaDeviceCount());
}

// Rank r holds r*4 + i: the average over 2 ranks, 2 + i, is exact in float.
TEST(NcclDeviceTest, AllReduceAverageOverTwoDevices) {
  const std::string why = WhyNoDevices();
  if (!why.empty()) GTEST_SKIP() << why;
  const auto results = OnDevices({{0, 1, 2, 3}, {4, 5, 6, 7}}, [](Communicator& comm, float* data) {
    comm.AllReduceAverage(data, kCount);
  });
  for (int r = 0; r < kRanks; ++r) {
    EXPECT_EQ(results[static_cast<size_t>(r)], (std::vector<float>{2, 3, 4, 5})) << "rank " << r;
  }
}

// From each root in turn: every rank ends with the root's values, whichever
// rank the root is (a backend that ignored `root` passes for root 0 only).
TEST(NcclDeviceTest, BroadcastFromEachRootOverTwoDevices) {
  const std::string why = WhyNoDevices();
  if (!why.empty()) GTEST_SKIP() << why;
  const std::vector<std::vector<float>> host = {{10, 11, 12, 13}, {20, 21, 22, 23}};
  for (int root = 0; root < kRanks; ++root) {
    const auto results = OnDevices(host, [root](Communicator& comm, float* data) {
      comm.Broadcast(data, kCount * sizeof(float), root);
    });
    for (int r = 0; r < kRanks; ++r) {
      EXPECT_EQ(results[static_cast<size_t>(r)], host[static_cast<size_t>(root)])
          << "root " << root << ", rank " << r;
    }
  }
}

}  // namespace
}  // namespace stylefleet
