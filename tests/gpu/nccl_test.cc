// The NCCL backend: always that it links and reports its version; on machines
// with CUDA devices, collectives over device memory (skipped without a GPU).
#include "dist/nccl_communicator.h"

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace stylefleet {
namespace {

TEST(NcclBackendTest, IsBuiltAndReportsItsVersion) {
  EXPECT_TRUE(NcclBackendBuilt());
  const std::string version = NcclVersion();
  EXPECT_NE(version, "unknown");
  EXPECT_EQ(version.substr(0, 2), "2.");
  std::printf("NCCL %s, %d CUDA device(s)\n", version.c_str(), CudaDeviceCount());
}

// One rank per visible GPU (at most 2), each rank a thread with an in-process
// bootstrap; rank r holds r*4 + i, so the average is exact.
TEST(NcclBackendTest, AllReduceAverageAndBroadcastOnDevices) {
  const int devices = CudaDeviceCount();
  if (devices == 0) GTEST_SKIP() << "no CUDA device";
  const int ranks = std::min(devices, 2);
  auto bootstrap = MakeLocalWorld(ranks);
  std::vector<std::vector<float>> results(static_cast<size_t>(ranks));
  std::vector<std::string> errors(static_cast<size_t>(ranks));
  std::vector<std::thread> threads;
  for (int r = 0; r < ranks; ++r) {
    threads.emplace_back([&, r] {
      try {
        auto comm = MakeNcclCommunicator(*bootstrap[static_cast<size_t>(r)], r);
        std::vector<float> host = {float(r * 4), float(r * 4 + 1), float(r * 4 + 2), float(r * 4 + 3)};
        float* device = nullptr;
        cudaMalloc(&device, host.size() * sizeof(float));
        cudaMemcpy(device, host.data(), host.size() * sizeof(float), cudaMemcpyHostToDevice);
        comm->AllReduceAverage(device, host.size());
        cudaMemcpy(host.data(), device, host.size() * sizeof(float), cudaMemcpyDeviceToHost);
        cudaFree(device);
        results[static_cast<size_t>(r)] = host;
      } catch (const std::exception& e) {
        errors[static_cast<size_t>(r)] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int r = 0; r < ranks; ++r) {
    ASSERT_EQ(errors[static_cast<size_t>(r)], "");
    const float base = ranks == 1 ? 0.0f : 2.0f;  // mean of 0 and 4
    EXPECT_EQ(results[static_cast<size_t>(r)],
              (std::vector<float>{base, base + 1, base + 2, base + 3}));
  }
}

}  // namespace
}  // namespace stylefleet
