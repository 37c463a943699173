// Distributed training under `mpirun -np 2` (ctest label `mpi`), MPI backend on CPU.
// The key property: 2 ranks x batch 2 end with the same parameters as
// 1 process x batch 4 on the same data and seed. Also: ranks that start from
// different initial weights end equal (the root's state broadcast), only the
// root writes files, and each rank trains the styles the plan gives its group.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "comm/world.h"
#include "common/error.h"
#include "config/job_config.h"
#include "data/image.h"
#include "model/tensor_file.h"
#include "recording_metrics.h"
#include "test_util.h"
#include "train/train.h"

namespace stylefleet {
namespace {
namespace fs = std::filesystem;

World* g_world = nullptr;

// A folder every rank sees: created by rank 0, its path broadcast.
class SharedDir {
 public:
  SharedDir() {
    std::string path;
    if (g_world->info().rank == 0) {
      dir_ = std::make_unique<testing::TempDir>();
      path = dir_->path();
    }
    uint64_t length = path.size();
    g_world->all().Broadcast(&length, sizeof(length), 0);
    path.resize(length);
    g_world->all().Broadcast(path.data(), length, 0);
    path_ = path;
  }
  ~SharedDir() { g_world->all().Barrier(); }  // nobody deletes while others read
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::unique_ptr<testing::TempDir> dir_;
  std::string path_;
};

class MpiTrainTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(g_world->info().size, 2) << "run under mpirun -np 2";
    if (g_world->info().rank == 0) {
      testing::WriteTestImages(dir_ / "photos", 8, 72, 64);
      for (int s = 0; s < 3; ++s) {
        SaveImageFile(testing::MakeTestImage(80, 80, 10 + s),
                      dir_ / ("s" + std::to_string(s) + ".png"));
      }
    }
    g_world->all().Barrier();
  }

  JobConfig Job(int styles, const std::vector<std::string>& overrides) {
    testing::JobText text;  // batch_size: the default
    text.Set("job", "seed", "9").Set("loss_network", "weights", "'random:4'");
    text.Set("training", "batch_size", "").Set("training", "max_steps", "3");
    text.Set("training", "learning_rate", "0.01").Set("training", "log_every_steps", "1");
    text.Set("distributed", "check_every_steps", "1");
    for (int s = 0; s < styles; ++s) text.Style("image: s" + std::to_string(s) + ".png");
    const std::string path =
        text.Write(dir_ / ("job" + std::to_string(g_world->info().rank) + ".yaml"));
    LoadOptions options;
    options.overrides = overrides;
    JobConfig job = LoadJob(path, options);
    job.source_file = "job.yaml";  // the file name differs per rank; the content does not
    return job;
  }

  static TrainRunOptions Options() {
    TrainRunOptions options;
    options.threads = 1;
    options.progress = false;
    return options;
  }

  SharedDir dir_;
};

double ModelFilesMaxRelativeDifference(const std::string& a_path, const std::string& b_path) {
  const TensorDict a = LoadTensorDict(a_path), b = LoadTensorDict(b_path);
  double worst = 0;
  for (const auto& [key, tensor] : a) {
    if (key.rfind("stylefleet.", 0) == 0) continue;
    const torch::Tensor* other = FindTensor(b, key);
    if (other == nullptr) return 1e9;
    const double scale = std::max(tensor.abs().max().item<double>(), 1e-6);
    worst = std::max(worst, (tensor - *other).abs().max().item<double>() / scale);
  }
  return worst;
}

std::vector<double> TotalLosses(const std::string& metrics) {
  std::ifstream in(metrics);
  std::vector<double> out;
  for (std::string line; std::getline(in, line);) {
    out.push_back(nlohmann::json::parse(line)["total_loss"].get<double>());
  }
  return out;
}

// Bytes this process has passed to write() and similar calls so far
// (/proc/self/io wchar): files, pipes and sockets. MPI between ranks of one
// host goes through shared memory, which it does not count.
int64_t BytesWrittenByThisProcess() {
  std::ifstream in("/proc/self/io");
  for (std::string key; in >> key;) {
    int64_t value = 0;
    in >> value;
    if (key == "wchar:") return value;
  }
  return -1;
}

// What each rank's metrics saw, gathered on every rank: "style/group/root(1|0)/steps" per start.
std::vector<std::string> StartsOnEachRank(const testing::RecordingMetrics& metrics) {
  std::string mine;
  for (const auto& start : metrics.started) {
    const auto steps = metrics.steps.find(start.style);
    mine += (mine.empty() ? "" : " ") + start.style + "/" + std::to_string(start.group) + "/" +
            (start.reports_losses ? "root" : "member") + "/" +
            std::to_string(steps == metrics.steps.end() ? 0 : steps->second.size());
  }
  return g_world->all().AllGather(mine);
}

// The single-process run processes its batch of 4 as 2 micro-batches (images
// 0,2 and 1,3: what the two ranks hold), so the float sums are the same and the
// parameters can be compared strictly. Against a plain batch-4 pass the loss
// trajectory is compared instead: the batch-4 reduction rounds differently,
// and Adam turns rounding-level differences in near-zero gradient elements
// into full +-lr steps, so no implementation can match those parameters to 1e-5.
TEST_F(MpiTrainTest, TwoRanksOfBatchTwoEqualOneProcessOfBatchFour) {
  TrainJob(Job(1, {"training.batch_size=2", "job.output_dir=" + (dir_ / "parallel")}), Options(),
           *g_world);
  if (g_world->info().rank == 0) {
    TrainJob(Job(1, {"training.batch_size=4", "training.micro_batches=2",
                     "job.output_dir=" + (dir_ / "single")}),
             Options());
    const double difference =
        ModelFilesMaxRelativeDifference(dir_ / "parallel/s0/model.pt", dir_ / "single/s0/model.pt");
    EXPECT_LT(difference, 1e-5);
    std::printf(
        "2 ranks x batch 2 vs 1 process x batch 4 (2 micro-batches): largest relative "
        "parameter difference %.3g\n",
        difference);

    TrainJob(Job(1, {"training.batch_size=4", "job.output_dir=" + (dir_ / "plain")}), Options());
    const auto parallel = TotalLosses(dir_ / "parallel/s0/metrics.jsonl");
    const auto plain = TotalLosses(dir_ / "plain/s0/metrics.jsonl");
    ASSERT_EQ(parallel.size(), 3u);
    ASSERT_EQ(plain.size(), 3u);
    // A batch of 4 reduces its loss and gradients in another order than two
    // of 2, and oneDNN's Winograd convolution may choose its blocking by
    // batch (it does on AMD Zen 5), so only the first step, before Adam turns
    // rounding in near-zero gradient elements into whole +-lr steps, is a
    // property of the code: within 1e-5. Later steps drifted 2.2e-4 apart at
    // step 3 on Intel and can reach percents on other CPUs; they are printed.
    // Errors of the data-parallel step are caught by the strict comparison above.
    EXPECT_NEAR(parallel[0], plain[0], 1e-5 * std::abs(plain[0])) << "step 1";
    for (size_t i = 0; i < 3; ++i) {
      std::printf("step %zu: 2 ranks x batch 2 total %.9g, 1 process x batch 4 total %.9g\n", i + 1,
                  parallel[i], plain[i]);
    }
  }
  g_world->all().Barrier();
}

// Which rank trained which style: the plan (distributed.ranks_per_style 1:
// one group per rank, group k trains styles k, k+2, ...) as each rank's own
// metrics saw it, and metrics.jsonl records written by groups of one rank.
TEST_F(MpiTrainTest, TwoStylesOnTwoRanksTrainOneEach) {
  testing::RecordingMetrics metrics;
  TrainRunOptions options = Options();
  options.metrics = &metrics;
  TrainJob(Job(2, {"training.batch_size=2", "distributed.ranks_per_style=1"}), options, *g_world);
  EXPECT_EQ(StartsOnEachRank(metrics), (std::vector<std::string>{"s0/0/root/3", "s1/1/root/3"}));
  if (g_world->info().rank == 0) {
    for (const std::string style : {"s0", "s1"}) {
      EXPECT_TRUE(fs::exists(dir_ / ("out/" + style + "/model.pt"))) << style;
      std::ifstream in(dir_ / ("out/" + style + "/metrics.jsonl"));
      int records = 0;
      for (std::string line; std::getline(in, line); ++records) {
        EXPECT_EQ(nlohmann::json::parse(line)["ranks"], 1) << style << ": " << line;
      }
      EXPECT_EQ(records, 3) << style;
    }
  }
}

TEST_F(MpiTrainTest, ThreeStylesOnTwoRanksAllFinish) {
  testing::RecordingMetrics metrics;
  TrainRunOptions options = Options();
  options.metrics = &metrics;
  TrainJob(Job(3, {"training.batch_size=2"}), options, *g_world);
  EXPECT_EQ(StartsOnEachRank(metrics),
            (std::vector<std::string>{"s0/0/root/3 s2/0/root/3", "s1/1/root/3"}));
  if (g_world->info().rank == 0) {
    for (int s = 0; s < 3; ++s) {
      EXPECT_TRUE(fs::exists(dir_ / ("out/s" + std::to_string(s) + "/model.pt"))) << s;
    }
  }
}

// Both ranks in one group (distributed.ranks_per_style 2): both train both
// styles, only rank 0 reports their losses.
TEST_F(MpiTrainTest, TwoStylesOnOneGroupOfTwoRanksTrainBothOnBoth) {
  testing::RecordingMetrics metrics;
  TrainRunOptions options = Options();
  options.metrics = &metrics;
  TrainJob(Job(2, {"training.batch_size=2", "distributed.ranks_per_style=2",
                   "job.output_dir=" + (dir_ / "grouped")}),
           options, *g_world);
  EXPECT_EQ(StartsOnEachRank(metrics),
            (std::vector<std::string>{"s0/0/root/3 s1/0/root/3", "s0/0/member/0 s1/0/member/0"}));
}

// Every rank starts from the root's state. Rank 1 builds its initial model
// from another seed (a test hook); the root state broadcast makes the
// replicas equal before the first step, so the run passes the replica check
// of every step and ends bitwise equal to a run whose ranks agreed from the
// start. Only the root writes: rank 1's process writes less than 1 MB in all
// while the root writes checkpoints and a model of several MB each.
TEST_F(MpiTrainTest, RanksStartedFromDifferentSeedsEndEqualAndOnlyTheRootWrites) {
  const int rank = g_world->info().rank;
  TrainJob(Job(1, {"training.batch_size=2", "job.output_dir=" + (dir_ / "agreed")}), Options(),
           *g_world);
  TrainRunOptions options = Options();
  if (rank == 1) options.reseed_initial_model = {"s0"};
  const int64_t before = BytesWrittenByThisProcess();
  std::string error;
  try {
    TrainJob(Job(1, {"training.batch_size=2", "job.output_dir=" + (dir_ / "reseeded")}), options,
             *g_world);
  } catch (const Error& e) {
    error = e.what();
  }
  const int64_t written = BytesWrittenByThisProcess() - before;
  EXPECT_EQ(error, "");
  // Judged on rank 0, which prints the report.
  const auto all = g_world->all().AllGather(std::to_string(written));
  if (rank == 0) {
    std::printf("bytes written while training: rank 0 %s, rank 1 %s\n", all[0].c_str(),
                all[1].c_str());
    std::error_code no_model;
    const int64_t model =
        static_cast<int64_t>(fs::file_size(dir_ / "reseeded/s0/model.pt", no_model));
    EXPECT_FALSE(no_model) << no_model.message();
    EXPECT_GT(std::stoll(all[0]), 2 * model);  // the measure sees file writes: model, checkpoints
    EXPECT_LT(std::stoll(all[1]), 1 << 20) << "rank 1 wrote files";
    if (!no_model) {
      EXPECT_EQ(ModelFilesMaxRelativeDifference(dir_ / "agreed/s0/model.pt",
                                                dir_ / "reseeded/s0/model.pt"),
                0.0);
    }
  }
  g_world->all().Barrier();
}

TEST_F(MpiTrainTest, MismatchedJobsFailClearlyOnEveryRank) {
  const std::string weight = g_world->info().rank == 0 ? "100" : "50";
  try {
    TrainJob(Job(1, {"training.style_weight=" + weight}), Options(), *g_world);
    FAIL() << "ranks with different jobs trained";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems().at(0),
              "ranks disagree on training.style_weight: rank 0 has '100'; rank 1 has '50'");
  }
}

// A replica that drifts (a broken rank or network) is caught even with the
// periodic check off: the last step always compares, and the run fails on
// every rank instead of writing a model as if it were fine.
TEST_F(MpiTrainTest, ADivergedReplicaIsCaughtAtTheLastStepEvenWithChecksOff) {
  TrainRunOptions options = Options();
  if (g_world->info().rank == 1) options.perturb_replica = {"s0:2"};
  std::string error;
  try {
    TrainJob(Job(1, {"training.batch_size=2", "distributed.check_every_steps=0",
                     "job.output_dir=" + (dir_ / "diverged")}),
             options, *g_world);
  } catch (const Error& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("style 's0': at step 3 rank 1 of its group holds parameters with checksum"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("the replicas diverged"), std::string::npos) << error;
  if (g_world->info().rank == 0) {
    EXPECT_FALSE(fs::exists(dir_ / "diverged/s0/model.pt"));
  }
}

// The periodic check: a replica that drifts after step 1 is caught at the
// first multiple of check_every_steps (2), not only at the end (step 5).
TEST_F(MpiTrainTest, ADivergedReplicaIsCaughtAtTheNextPeriodicCheck) {
  TrainRunOptions options = Options();
  if (g_world->info().rank == 1) options.perturb_replica = {"s0:1"};
  std::string error;
  try {
    TrainJob(
        Job(1, {"training.batch_size=2", "training.max_steps=5", "distributed.check_every_steps=2",
                "job.output_dir=" + (dir_ / "diverged_early")}),
        options, *g_world);
  } catch (const Error& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("style 's0': at step 2 rank 1 of its group holds parameters with checksum"),
            std::string::npos)
      << error;
}

// Under MPI too: ranks in different collectives stop at once, naming both.
TEST_F(MpiTrainTest, RanksInDifferentCollectivesFailNamingBoth) {
  auto group = g_world->Split(0, g_world->info().rank);
  std::string error;
  try {
    if (g_world->info().rank == 0) {
      int64_t step = 5;
      group->Broadcast(&step, sizeof(step), 0, "checkpoint broadcast");
    } else {
      std::vector<float> grads(1000);
      group->AllReduceAverage(grads.data(), grads.size(), "gradient bucket 0 allreduce");
    }
  } catch (const Error& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("rank 0 is in checkpoint broadcast #1 of 8 bytes, rank 1 in gradient "
                       "bucket 0 allreduce #1 of 3.9 kB"),
            std::string::npos)
      << error;
}

}  // namespace
}  // namespace stylefleet

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto world = stylefleet::MakeMpiWorld();
  stylefleet::g_world = world.get();
  // One report: the other ranks' results still count through the exit code.
  if (world->info().rank != 0) {
    auto& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
  }
  int failed = RUN_ALL_TESTS();
  double any = failed;
  world->all().AllReduceSum(&any, 1);
  return any == 0 ? 0 : 1;
}
