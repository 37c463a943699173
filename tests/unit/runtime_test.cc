// Group operations and the per-rank runtime, with ranks as threads over the
// in-process backend.
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <thread>

#include "comm/communicator.h"
#include "comm/world.h"
#include "common/error.h"
#include "rank_threads.h"
#include "runtime/group_ops.h"
#include "runtime/rank_runtime.h"

namespace stylefleet {
namespace {

using testing::OnEveryRank;

TEST(RunOnRootTest, EveryRankThrowsTheRootsErrorOfTheSameKind) {
  auto world = MakeLocalWorld(3);
  auto thrown = OnEveryRank(world, [](int, Communicator& c) {
    RunOnRoot(c, "test action", [] {
      throw ConfigError({"job.yaml:3:1: first", "job.yaml:4:1: second"});
    });
  });
  for (const auto& t : thrown) EXPECT_EQ(t, "config: job.yaml:3:1: first|job.yaml:4:1: second|");
  thrown = OnEveryRank(world, [](int, Communicator& c) {
    RunOnRoot(c, "test action", [] { throw DataError("photo.png: truncated"); });
  });
  for (const auto& t : thrown) EXPECT_EQ(t, "data: photo.png: truncated");
  thrown = OnEveryRank(world, [](int, Communicator& c) {
    RunOnRoot(c, "test action", [] { throw std::runtime_error("disk full"); });
  });
  for (const auto& t : thrown) EXPECT_EQ(t, "error: disk full");
}

TEST(RunOnRootTest, ActionRunsOnTheRootOnly) {
  auto world = MakeLocalWorld(2);
  std::vector<int> ran(2, 0);
  const auto thrown = OnEveryRank(world, [&](int rank, Communicator& c) {
    RunOnRoot(c, "test action", [&] { ran[static_cast<size_t>(rank)] = 1; });
  });
  EXPECT_EQ(ran, (std::vector<int>{1, 0}));
  EXPECT_EQ(thrown, (std::vector<std::string>{"", ""}));
}

TEST(CheckRanksAgreeTest, NamesTheItemAndWhichRanksHoldWhichValue) {
  auto world = MakeLocalWorld(3);
  const auto thrown = OnEveryRank(world, [](int rank, Communicator& c) {
    CheckRanksAgree(c,
                    {{"training.learning_rate", rank == 1 ? "0.01" : "0.0100000001"},
                     {"data.image_size", "256"}},
                    "load the same job");
  });
  for (const auto& t : thrown) {
    EXPECT_EQ(t,
              "config: ranks disagree on training.learning_rate: ranks 0, 2 have "
              "'0.0100000001'; rank 1 has '0.01'|load the same job|");
  }
}

TEST(CheckRanksAgreeTest, NamesAnItemOnlySomeRanksHave) {
  auto world = MakeLocalWorld(2);
  const auto thrown = OnEveryRank(world, [](int rank, Communicator& c) {
    std::vector<AgreedItem> items = {{"styles.a.name", "a"}};
    if (rank == 1) items.emplace_back("styles.b.name", "b");
    CheckRanksAgree(c, items, "advice");
  });
  for (const auto& t : thrown) {
    EXPECT_EQ(
        t, "config: ranks disagree on styles.b.name: rank 0 has nothing; rank 1 has 'b'|advice|");
  }
}

// Styles listed in another order: the same items, so the message says where
// the order first differs.
TEST(CheckRanksAgreeTest, NamesWhereTheOrderDiffers) {
  auto world = MakeLocalWorld(2);
  const auto thrown = OnEveryRank(world, [](int rank, Communicator& c) {
    std::vector<AgreedItem> items = {
        {"job.name", "j"}, {"styles.a.name", "a"}, {"styles.b.name", "b"}};
    if (rank == 1) std::swap(items[1], items[2]);
    CheckRanksAgree(c, items, "advice");
  });
  for (const auto& t : thrown) {
    EXPECT_EQ(t,
              "config: ranks disagree on the order of their settings: item 2 is "
              "'styles.a.name' on rank 0, 'styles.b.name' on rank 1|advice|");
  }
}

TEST(CheckRanksAgreeTest, AgreeingRanksPass) {
  auto world = MakeLocalWorld(2);
  const auto thrown = OnEveryRank(world, [](int, Communicator& c) {
    CheckRanksAgree(c, {{"x", "1"}, {"y", "2"}}, "advice");
  });
  EXPECT_EQ(thrown, (std::vector<std::string>{"", ""}));
}

TEST(RankRuntimeTest, CpuRanksShareOneCommunicatorForValuesAndTensors) {
  auto worlds = MakeLocalWorlds(2);
  std::vector<std::string> seen(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      RuntimeOptions options;
      options.threads = 1;
      options.rank_in_group = r;
      auto runtime = StartRankRuntime(*worlds[static_cast<size_t>(r)], options);
      seen[static_cast<size_t>(r)] = std::to_string(runtime->control().size()) + " " +
                                     runtime->tensors().backend() + " " +
                                     (runtime->device().is_cpu() ? "cpu" : "gpu") + " " +
                                     std::to_string(&runtime->control() == &runtime->tensors());
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen, (std::vector<std::string>{"2 local cpu 1", "2 local cpu 1"}));
}

TEST(RankRuntimeTest, NcclOnACpuIsAConfigError) {
  auto world = MakeSoloWorld();
  RuntimeOptions options;
  options.backend = "nccl";
  try {
    StartRankRuntime(*world, options);
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_NE(e.problems().front().find("nccl needs CUDA GPUs"), std::string::npos);
  }
}

// Launchers set OMP_NUM_THREADS (launch/slurm.sbatch from Slurm's
// cpus-per-task); --threads wins over it, a bad value is ignored.
TEST(UseIntraOpThreadsTest, OmpNumThreadsSetsTheDefault) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int before = at::get_num_threads();
  setenv("OMP_NUM_THREADS", "3", 1);
  EXPECT_EQ(UseIntraOpThreads(0, 1).threads, 3);
  EXPECT_EQ(at::get_num_threads(), 3);
  EXPECT_EQ(UseIntraOpThreads(0, 4).threads, 3);
  EXPECT_EQ(UseIntraOpThreads(2, 1).threads, 2);
  EXPECT_EQ(at::get_num_threads(), 2);
  setenv("OMP_NUM_THREADS", "5,1", 1);
  EXPECT_EQ(UseIntraOpThreads(0, 1).threads, 5);
  for (const char* bad : {"abc", "0", "-2", "3x", "99999999999999999999", "2000"}) {
    setenv("OMP_NUM_THREADS", bad, 1);
    EXPECT_EQ(ThreadsFromOmpEnvironment(), 0) << bad;
    EXPECT_EQ(UseIntraOpThreads(0, 1).threads, cores) << bad;
  }
  unsetenv("OMP_NUM_THREADS");
  EXPECT_EQ(UseIntraOpThreads(0, 1).threads, cores);
  EXPECT_EQ(UseIntraOpThreads(0, 2 * cores).threads, 1);
  at::set_num_threads(before);
}

// The BLAS library keeps its own pool, sized by the CPUs the process may use
// (2 here, whatever LibTorch's count): the rank's budget sets it too, read
// back through the library's own API, not through the project's.
TEST(UseIntraOpThreadsTest, TheBlasPoolGetsTheRanksThreads) {
  using GetThreads = int (*)();
  const auto openblas_threads =
      reinterpret_cast<GetThreads>(dlsym(RTLD_DEFAULT, "openblas_get_num_threads"));
  if (openblas_threads == nullptr) GTEST_SKIP() << "the system BLAS is not OpenBLAS";
  const int before = at::get_num_threads();
  for (const int threads : {1, 3, 2}) {
    const ThreadBudget budget = UseIntraOpThreads(threads, 1);
    EXPECT_EQ(budget.threads, threads);
    EXPECT_EQ(openblas_threads(), threads);
    EXPECT_EQ(budget.blas,
              "OpenBLAS: " + std::to_string(threads) + (threads == 1 ? " thread" : " threads"));
  }
  setenv("OMP_NUM_THREADS", "3", 1);
  UseIntraOpThreads(0, 1);
  EXPECT_EQ(openblas_threads(), 3) << "OMP_NUM_THREADS sizes the BLAS pool too";
  unsetenv("OMP_NUM_THREADS");
  UseIntraOpThreads(before, 1);
}

}  // namespace
}  // namespace stylefleet
