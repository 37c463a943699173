// Collectives of the in-process backend, gradient buckets and the style
// schedule, without mpirun (ranks are threads).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <thread>

#include "checkpoint/checkpoint_files.h"
#include "comm/communicator.h"
#include "comm/stall_inspector.h"
#include "comm/world.h"
#include "common/error.h"
#include "rank_threads.h"
#include "step/gradient_buckets.h"
#include "test_util.h"
#include "train/rank_agreement.h"
#include "train/style_schedule.h"

namespace stylefleet {
namespace {

using testing::RunOnEveryRank;

TEST(LocalCommunicatorTest, CollectivesGiveExactResults) {
  auto world = MakeLocalWorld(3);
  std::vector<std::vector<float>> averaged(3);
  std::vector<std::vector<std::string>> gathered(3);
  std::vector<int> broadcast(3);
  RunOnEveryRank(world, [&](int rank, Communicator& comm) {
    // Values whose mean is exact in float: rank r holds r*3 + i.
    std::vector<float> data = {float(rank * 3), float(rank * 3 + 1), float(rank * 3 + 2)};
    comm.AllReduceAverage(data.data(), data.size());
    averaged[static_cast<size_t>(rank)] = data;
    double sum = rank + 1;
    comm.AllReduceSum(&sum, 1);
    EXPECT_EQ(sum, 6.0);
    gathered[static_cast<size_t>(rank)] = comm.AllGather("r" + std::to_string(rank));
    int value = rank == 2 ? 42 : -1;
    comm.Broadcast(&value, sizeof(value), 2);
    broadcast[static_cast<size_t>(rank)] = value;
    comm.Barrier();
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(averaged[static_cast<size_t>(r)], (std::vector<float>{3, 4, 5}));
    EXPECT_EQ(gathered[static_cast<size_t>(r)], (std::vector<std::string>{"r0", "r1", "r2"}));
    EXPECT_EQ(broadcast[static_cast<size_t>(r)], 42);
  }
}

// A rank whose body throws ends the test program with its message instead of
// leaving the other ranks waiting in a collective it never reaches (the test
// then hung until ctest's timeout).
TEST(RankThreadsDeathTest, ARankThatThrowsBeforeACollectiveEndsTheProgram) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(
      {
        auto world = MakeLocalWorld(2);
        RunOnEveryRank(world, [&](int rank, Communicator& comm) {
          if (rank == 1) throw DataError("rank 1 found no photos");
          comm.Barrier("never met");
        });
      },
      "rank 1 threw, ending the test program: rank 1 found no photos");
}

// Ranks that reach different collectives fail at once on every rank, naming
// both sides, before any payload moves (a schedule that branched differently
// once meant heap corruption).
TEST(LocalCommunicatorTest, DifferentCollectivesFailNamingBothSides) {
  auto world = MakeLocalWorld(2);
  std::vector<std::string> errors(2);
  RunOnEveryRank(world, [&](int rank, Communicator& comm) {
    comm.Barrier("start");  // one matching collective first: sequence numbers agree
    try {
      if (rank == 0) {
        std::vector<char> bytes(1258291);
        comm.Broadcast(bytes.data(), bytes.size(), 0, "checkpoint broadcast");
      } else {
        std::vector<float> grads(1 << 20);
        comm.AllReduceAverage(grads.data(), grads.size(), "gradient bucket 0 allreduce");
      }
    } catch (const Error& e) {
      errors[static_cast<size_t>(rank)] = e.what();
    }
  });
  for (const auto& e : errors) {
    EXPECT_NE(e.find("rank 0 is in checkpoint broadcast #2 of 1.2 MB, rank 1 in gradient bucket 0 "
                     "allreduce #2 of 4.0 MB"),
              std::string::npos)
        << e;
  }
}

TEST(LocalCommunicatorTest, SameCallSiteWithOtherSizesFails) {
  auto world = MakeLocalWorld(2);
  std::vector<std::string> errors(2);
  RunOnEveryRank(world, [&](int rank, Communicator& comm) {
    std::vector<double> values(rank == 0 ? 8 : 9);
    try {
      comm.AllReduceSum(values.data(), values.size(), "loss allreduce");
    } catch (const Error& e) {
      errors[static_cast<size_t>(rank)] = e.what();
    }
  });
  for (const auto& e : errors) {
    EXPECT_NE(e.find("rank 0 is in loss allreduce #1 of 64 bytes, rank 1 in loss allreduce #1 of "
                     "72 bytes"),
              std::string::npos)
        << e;
  }
}

TEST(LocalWorldTest, SplitFormsGroupsOrderedByKey) {
  auto worlds = MakeLocalWorlds(4);
  std::vector<std::pair<int, int>> seen(4);  // (group size, rank in group)
  std::vector<std::thread> threads;
  for (int r = 0; r < 4; ++r) {
    threads.emplace_back([&, r] {
      // Two groups {0, 2} and {1, 3}, keys reversing the order inside each.
      auto group = worlds[static_cast<size_t>(r)]->Split(r % 2, -r);
      double value = r;
      group->AllReduceSum(&value, 1);
      EXPECT_EQ(value, r % 2 == 0 ? 2.0 : 4.0);
      seen[static_cast<size_t>(r)] = {group->size(), group->rank()};
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(seen[0], std::make_pair(2, 1));
  EXPECT_EQ(seen[2], std::make_pair(2, 0));
  EXPECT_EQ(seen[3], std::make_pair(2, 0));
}

// The stall inspector, apart from MPI: a rank announces itself once, after
// half the warning time; at the warning time it names the peers whose newest
// notice is older than the collective (late and stale notices included), once
// per collective; past the timeout it says why the wait ends.
TEST(StallInspectorTest, NamesThePeersThatHaveNotReachedTheCollective) {
  StallInspector stalls(0, {4, 5, 6}, StallTimeouts{10, 30});
  stalls.set_world_hosts(std::make_shared<const std::vector<std::string>>(
      std::vector<std::string>{"a", "a", "b", "b", "c", "d", "e"}));
  EXPECT_EQ(stalls.Start(), 1);
  EXPECT_FALSE(stalls.ShouldAnnounce(4.9));
  EXPECT_FALSE(stalls.Listening(4.9));
  EXPECT_TRUE(stalls.ShouldAnnounce(5.1));
  EXPECT_FALSE(stalls.ShouldAnnounce(6));  // once per collective
  EXPECT_TRUE(stalls.Listening(6));
  EXPECT_EQ(stalls.Warning(9.9, "loss allreduce"), "");
  stalls.Heard(2, 1);
  const int64_t warnings = CollectiveStallWarnings();
  EXPECT_EQ(stalls.Warning(10.5, "loss allreduce"),
            "rank 4 has waited 10 s in a loss allreduce of 3 ranks: a peer is slow, stalled or "
            "dead (distributed.stall_warn_seconds); rank 5 (host d) has not reached it");
  EXPECT_EQ(CollectiveStallWarnings(), warnings + 1);
  EXPECT_EQ(stalls.Warning(11, "loss allreduce"), "");  // once per collective
  EXPECT_EQ(stalls.Timeout(29, "loss allreduce"), "");
  EXPECT_EQ(stalls.Timeout(31, "loss allreduce"),
            "rank 4: loss allreduce of 3 ranks did not complete within 30 s "
            "(distributed.timeout_seconds): a peer rank is stalled or dead, or its host is lost; "
            "rank 5 (host d) has not reached it");

  // The next collective: rank 2's notice of the first is stale, rank 1's of
  // this one arrives before an older one.
  EXPECT_EQ(stalls.Start(), 2);
  EXPECT_TRUE(stalls.ShouldAnnounce(6));
  stalls.Heard(1, 2);
  stalls.Heard(1, 1);
  EXPECT_EQ(stalls.Warning(12, "barrier").substr(0, 25), "rank 4 has waited 12 s in");
  EXPECT_NE(stalls.Timeout(40, "barrier").find("; rank 6 (host e) has not reached it"),
            std::string::npos);
  stalls.Heard(2, 2);
  EXPECT_NE(stalls.Timeout(40, "barrier").find("; every peer reports waiting too"),
            std::string::npos);
  stalls.Heard(7, 2);  // not a rank of the communicator: ignored
}

TEST(GradientBucketsTest, BucketsRespectTheCapInReverseOrder) {
  // 4 parameters of 100, 300, 200, 50 floats; cap 1200 bytes = 300 floats.
  std::vector<torch::Tensor> params = {torch::zeros({100}), torch::zeros({300}),
                                       torch::zeros({200}), torch::zeros({50})};
  GradientBuckets buckets(params, 1200);
  ASSERT_EQ(buckets.bucket_count(), 3u);
  EXPECT_EQ(buckets.bucket(0), (std::vector<size_t>{3, 2}));  // 250 floats
  EXPECT_EQ(buckets.bucket(1), (std::vector<size_t>{1}));     // 300 floats
  EXPECT_EQ(buckets.bucket(2), (std::vector<size_t>{0}));
  EXPECT_EQ(buckets.total_bytes(), 650u * 4);
}

TEST(GradientBucketsTest, AveragesGradientsAcrossRanks) {
  auto world = MakeLocalWorld(2);
  std::vector<torch::Tensor> results(2);
  RunOnEveryRank(world, [&](int rank, Communicator& comm) {
    std::vector<torch::Tensor> params = {torch::zeros({2, 3}, torch::requires_grad()),
                                         torch::zeros({5}, torch::requires_grad())};
    params[0].mutable_grad() = torch::full({2, 3}, float(rank * 2));  // 0 and 2: mean 1
    // params[1] has no gradient on either rank: averages to zeros.
    GradientBuckets buckets(params, 16);  // forces one bucket per parameter
    buckets.AllReduceAverage(comm);
    results[static_cast<size_t>(rank)] = torch::cat({params[0].grad().flatten(), params[1].grad()});
  });
  const torch::Tensor expected = torch::cat({torch::ones({6}), torch::zeros({5})});
  EXPECT_TRUE(torch::equal(results[0], expected));
  EXPECT_TRUE(torch::equal(results[1], expected));
}

// Several gradients share one bucket (the trainer's usual case): each comes
// back from its own slot of the flat buffer, averaged, in its own shape.
TEST(GradientBucketsTest, EachGradientOfASharedBucketGetsItsOwnAverage) {
  auto world = MakeLocalWorld(2);
  std::vector<torch::Tensor> results(2);
  RunOnEveryRank(world, [&](int rank, Communicator& comm) {
    std::vector<torch::Tensor> params = {torch::zeros({2, 3}, torch::requires_grad()),
                                         torch::zeros({4}, torch::requires_grad()),
                                         torch::zeros({3, 1}, torch::requires_grad())};
    // Element i of parameter k holds 100k + i + 10 * rank: the average is 100k + i + 5.
    for (size_t k = 0; k < params.size(); ++k) {
      params[k].mutable_grad() =
          (torch::arange(params[k].numel(), torch::kFloat32) + float(100 * k + 10 * rank))
              .view_as(params[k]);
    }
    GradientBuckets buckets(params, 1 << 20);
    EXPECT_EQ(buckets.bucket_count(), 1u);
    buckets.AllReduceAverage(comm);
    std::vector<torch::Tensor> flat;
    for (const auto& p : params) flat.push_back(p.grad().flatten());
    results[static_cast<size_t>(rank)] = torch::cat(flat);
  });
  std::vector<torch::Tensor> expected;
  const int64_t sizes[] = {6, 4, 3};
  for (int64_t k = 0; k < 3; ++k) {
    expected.push_back(torch::arange(sizes[k], torch::kFloat32) + float(100 * k + 5));
  }
  EXPECT_TRUE(torch::equal(results[0], torch::cat(expected))) << results[0];
  EXPECT_TRUE(torch::equal(results[1], torch::cat(expected))) << results[1];
}

TEST(StyleScheduleTest, AutoUsesEveryRankWithoutIdleGroups) {
  StyleSchedule p = PlanStyles(2, 2, 0);
  EXPECT_EQ(p.groups, 2);
  EXPECT_EQ(p.styles_of_group, (std::vector<std::vector<int>>{{0}, {1}}));
  p = PlanStyles(3, 2, 0);
  EXPECT_EQ(p.groups, 2);
  EXPECT_EQ(p.styles_of_group, (std::vector<std::vector<int>>{{0, 2}, {1}}));
  p = PlanStyles(1, 4, 0);
  EXPECT_EQ(p.groups, 1);
  EXPECT_EQ(p.ranks_per_group, 4);
  p = PlanStyles(2, 3, 0);  // 2 groups cannot split 3 ranks evenly: one group of 3
  EXPECT_EQ(p.groups, 1);
  EXPECT_EQ(p.ranks_per_group, 3);
  p = PlanStyles(6, 8, 0);
  EXPECT_EQ(p.groups, 4);
  EXPECT_EQ(p.GroupOf(5), 2);
  EXPECT_EQ(p.RankInGroup(5), 1);
}

TEST(StyleScheduleTest, ExplicitGroupSizeMustDivideTheWorld) {
  EXPECT_EQ(PlanStyles(3, 4, 2).groups, 2);
  try {
    PlanStyles(3, 4, 3);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems().at(0),
              "distributed.ranks_per_style: 3 does not divide the 4 ranks of this launch");
  }
}

// `check --hostfile`: ranks fill each host's slots in file order, as mpirun lays them out, and
// the schedule says which host runs which rank and each group's hosts.
TEST(StyleScheduleTest, HostfileSlotsPlaceRanksAndTheScheduleNamesTheHosts) {
  const testing::TempDir dir;
  const std::string hostfile = dir / "hosts";
  testing::WriteFile(hostfile,
                     "# two nodes\nnode-a slots=2 max_slots=4\n\nnode-b slots=2  # gpu\n");
  using Hosts = std::vector<std::string>;
  EXPECT_EQ(RankHostsFromHostfile(hostfile, 0, 0), (Hosts{"node-a", "node-a", "node-b", "node-b"}));
  EXPECT_EQ(RankHostsFromHostfile(hostfile, 3, 0), (Hosts{"node-a", "node-a", "node-b"}));
  EXPECT_EQ(RankHostsFromHostfile(hostfile, 0, 1), (Hosts{"node-a", "node-b"}));
  JobConfig job;
  job.styles.resize(2);
  job.styles[0].name = "wave";
  job.styles[1].name = "candy";
  const Hosts hosts = RankHostsFromHostfile(hostfile, 0, 0);
  EXPECT_EQ(DescribeSchedule(job, PlanStyles(2, 4, 2), hosts),
            "schedule on 4 rank(s): 2 group(s) of 2 rank(s)\n"
            "  2 host(s): node-a (ranks 0-1), node-b (ranks 2-3)\n"
            "  group 0 (ranks 0-1 on node-a): wave (batch 4 x 2 = 8)\n"
            "  group 1 (ranks 2-3 on node-b): candy (batch 4 x 2 = 8)\n");
  EXPECT_EQ(DescribeSchedule(job, PlanStyles(2, 4, 4), hosts),
            "schedule on 4 rank(s): 1 group(s) of 4 rank(s)\n"
            "  2 host(s): node-a (ranks 0-1), node-b (ranks 2-3)\n"
            "  group 0 (ranks 0-3 on node-a, node-b): wave (batch 4 x 4 = 16) -> candy (batch 4 x "
            "4 = 16)\n");
  // One line a slot; domains and users are dropped as Open MPI names nodes; max_slots alone
  // gives the slots.
  testing::WriteFile(hostfile,
                     "node-a.cluster.example\n10.0.0.7 slots=1\nme@node-a\nc max_slots=1\n");
  EXPECT_EQ(RankHostsFromHostfile(hostfile, 0, 0), (Hosts{"node-a", "node-a", "10.0.0.7", "c"}));
  EXPECT_EQ(RankHostsFromHostfile(hostfile, 0, 1), (Hosts{"node-a", "10.0.0.7", "c"}));
  // mpirun's own machine comes first when the hostfile lists it.
  char here[256] = {};
  ASSERT_EQ(gethostname(here, sizeof(here) - 1), 0);
  const std::string me = std::string(here).substr(0, std::string(here).find('.'));
  testing::WriteFile(hostfile, "other slots=1\n" + me + " slots=2\n");
  EXPECT_EQ(RankHostsFromHostfile(hostfile, 0, 0), (Hosts{me, me, "other"}));
  EXPECT_EQ(DescribeRankHosts({"b", "a", "b", "a", "a"}),
            "  2 host(s): b (ranks 0, 2), a (ranks 1, 3-4)\n");
  EXPECT_EQ(DescribeRanks({0, 1, 2, 5, 7, 8}), "0-2, 5, 7-8");
}

TEST(StyleScheduleTest, HostfileProblemsNameTheFileAndLine) {
  const testing::TempDir dir;
  const std::string hostfile = dir / "hosts";
  const auto problem = [&](const std::string& text, int world, int per_host) {
    testing::WriteFile(hostfile, text);
    try {
      RankHostsFromHostfile(hostfile, world, per_host);
    } catch (const ConfigError& e) {
      return e.problems().at(0);
    }
    return std::string("accepted");
  };
  const std::string at = "hostfile " + hostfile;
  EXPECT_EQ(problem("a slots=2\nb\n", 0, 0),
            at + ":2: host b has no slots=N: mpirun would start as many ranks there as it has "
                 "cores, which only that host knows; add slots=N or give the ranks per host");
  EXPECT_EQ(problem("a slots=3\nb\n", 0, 3), "accepted");
  EXPECT_EQ(problem("a slots = 2 max-slots=4 username=me\nb cpu=1\n", 3, 0), "accepted");
  EXPECT_EQ(problem("a slots=1\na slots=1\n", 0, 0),
            at + ":2: host a was given slots on line 1 already (mpirun refuses more than one slot "
                 "count)");
  EXPECT_EQ(problem("a slots=1\na\n", 0, 0),
            at + ":2: host a is listed both with slots= and without (one line a slot, or one "
                 "slots=N line)");
  EXPECT_EQ(problem("a\nb slots=1\n", 0, 0),
            at + ":1: host a has no slots=N: mpirun would start as many ranks there as it has "
                 "cores, which only that host knows; add slots=N or give the ranks per host");
  EXPECT_EQ(problem("a slots=2 slots=3\n", 0, 0), at + ":1: gives slots twice");
  EXPECT_EQ(problem("a slots=4 max_slots=2\n", 0, 0),
            at + ":1: max_slots 2 is below slots 4 (mpirun refuses it)");
  EXPECT_EQ(problem("a slots=2\nb slots=2\n", 0, 3),
            at + ": host a has slots=2, fewer than the 3 ranks per host: mpirun refuses that "
                 "without --oversubscribe");
  EXPECT_EQ(problem("a slots=2\r\n", 0, 0),
            at + ":1: ends with a carriage return (a Windows line end), which mpirun cannot "
                 "read: convert the file (dos2unix)");
  EXPECT_EQ(problem("\xef\xbb\xbf"
                    "a slots=2\n",
                    0, 0),
            at + ":1: holds a byte that is not printable ASCII (a host name, 'slots=N' and '#' "
                 "comments only)");
  EXPECT_EQ(problem("a slots=1 // old\nb slots=1\n", 0, 0), "accepted");
  EXPECT_EQ(problem(std::string(70000, 'a') + "\n", 0, 0), at + ":1: longer than 65536 bytes");
  EXPECT_EQ(problem("a slots=0\nb slots=1\n", 1, 0), "accepted");
  EXPECT_EQ(problem("a slots=0\n", 0, 0), at + ": every host has slots=0");
  EXPECT_EQ(problem("a slots=1\n^b\n", 0, 0),
            at + ":2: '^b' is not a host name (exclusions and other syntax are not read here)");
  EXPECT_EQ(problem("a slots=1048576\nb slots=1048576\n", 0, 0),
            at + ": 1048577 ranks do not fit its more than 1048576 slot(s) on 2 host(s) (at most "
                 "1048576 ranks)");
  EXPECT_EQ(problem("a slots=99999999999\n", 0, 0),
            at + ":1: 'slots=99999999999': N must be a whole number from 0 to 1048576");
  EXPECT_EQ(problem("a slots=two\n", 0, 0),
            at + ":1: 'slots=two': N must be a whole number from 0 to 1048576");
  EXPECT_EQ(problem("a slots=-1\n", 0, 0),
            at + ":1: 'slots=-1': N must be a whole number from 0 to 1048576");
  EXPECT_EQ(problem("a slots=2x\n", 0, 0),
            at + ":1: 'slots=2x': N must be a whole number from 0 to 1048576");
  EXPECT_EQ(problem("a cpus=2\n", 0, 0),
            at + ":1: 'cpus=2' is not slots=N (or another word of Open MPI's hostfiles: "
                 "max_slots=N, username=...)");
  EXPECT_EQ(problem("a slots=1\nb slots=2\n", 4, 0),
            at + ": 4 ranks do not fit its 3 slot(s) on 2 host(s)");
  EXPECT_EQ(problem("# nothing\n\n", 0, 0), at + ": names no host");
  EXPECT_EQ(problem("", 0, 0), at + ": names no host");
  try {
    RankHostsFromHostfile(dir.path(), 0, 0);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems().at(0), "hostfile " + dir.path() + ": is a folder");
  }
  try {
    RankHostsFromHostfile(dir / "missing", 0, 0);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems().at(0), "hostfile " + (dir / "missing") + ": cannot be read");
  }
}

// The folders the shared-storage check covers: a conditional network's styles too, a folder
// inside job.output_dir as job.output_dir, "/a/out/" and "/a/out" as one.
TEST(SharedOutputFoldersTest, EachFolderARunWritesIsCheckedOnce) {
  JobConfig job;
  job.output_dir = "/a/out/";
  job.styles.resize(3);
  job.styles[0].output_dir = "/a/out/s0";
  job.styles[1].output_dir = "/b/elsewhere/";
  job.styles[2].output_dir = "/a/out";
  job.conditional_run.output_dir = "/a/out/conditional";
  using Folders = std::vector<std::string>;
  EXPECT_EQ(SharedOutputFolders(job, {&job.styles[0]}), (Folders{"/a/out"}));
  EXPECT_EQ(SharedOutputFolders(job, {&job.styles[1]}), (Folders{"/b/elsewhere"}));
  EXPECT_EQ(SharedOutputFolders(job, {&job.styles[0], &job.styles[1], &job.styles[2]}),
            (Folders{"/a/out", "/b/elsewhere"}));
  EXPECT_EQ(SharedOutputFolders(job, {&job.conditional_run}), (Folders{"/a/out", "/b/elsewhere"}));
  job.output_dir = "/c/unused";  // a folder no selected run writes is not asked of every rank
  EXPECT_EQ(SharedOutputFolders(job, {&job.styles[0]}), (Folders{"/a/out/s0"}));
}

// Ranks on one file system pass the check, and every check file is gone before any rank goes
// on to claim a folder (an unclaimed folder must be empty: a file left by a slower rank made a
// group root refuse it), also in a folder that does not exist yet (nothing is created).
TEST(SharedOutputFoldersTest, RanksOnOneFileSystemPassAndLeaveNothingBehind) {
  const testing::TempDir dir;
  std::filesystem::create_directories(dir / "elsewhere");
  JobConfig job;
  job.output_dir = dir / "out";
  job.styles.resize(2);
  job.styles[0].output_dir = dir / "out/s0";
  job.styles[1].output_dir = dir / "elsewhere";
  const std::vector<const StyleSpec*> styles{&job.styles[0], &job.styles[1]};
  auto world = MakeLocalWorld(3);
  std::vector<std::string> left(3), thrown(3);
  RunOnEveryRank(world, [&](int rank, Communicator& comm) {
    try {
      CheckRanksShareOutputFolders(comm, "host" + std::to_string(rank), job, styles);
    } catch (const std::exception& e) {
      thrown[static_cast<size_t>(rank)] = e.what();
    }
    for (const auto& entry : std::filesystem::recursive_directory_iterator(dir.path())) {
      left[static_cast<size_t>(rank)] += entry.path().string() + " ";
    }
  });
  for (int r = 0; r < 3; ++r) {
    EXPECT_EQ(thrown[static_cast<size_t>(r)], "") << "rank " << r;
    EXPECT_EQ(left[static_cast<size_t>(r)], dir / "elsewhere" + " ") << "rank " << r;
  }
}

// Two machines with one host name: the pair (host, local rank) repeats, and every rank refuses.
TEST(DistinctHostsTest, TwoMachinesWithOneHostNameAreRefused) {
  auto world = MakeLocalWorld(4);
  std::vector<std::string> thrown(4);
  const auto run = [&](const std::vector<std::string>& hosts, const std::vector<int>& locals) {
    RunOnEveryRank(world, [&](int rank, Communicator& comm) {
      thrown[static_cast<size_t>(rank)].clear();
      try {
        CheckRanksHaveDistinctHosts(comm, hosts[static_cast<size_t>(rank)],
                                    locals[static_cast<size_t>(rank)]);
      } catch (const ConfigError& e) {
        thrown[static_cast<size_t>(rank)] = e.problems().at(0);
      }
    });
  };
  run({"a", "a", "b", "b"}, {0, 1, 0, 1});
  EXPECT_EQ(thrown, std::vector<std::string>(4, ""));
  run({"a", "a", "a", "a"}, {0, 1, 0, 1});
  const std::string expected =
      "ranks 0 and 2 both run as local rank 0 on a host named 'a': two machines share a host "
      "name; give each its own (logs, metrics endpoints and the shared-folder check tell hosts "
      "apart by name)";
  EXPECT_EQ(thrown, std::vector<std::string>(4, expected));
}

// A check file left by a rank killed during the check does not make a folder look foreign.
TEST(SharedOutputFoldersTest, ALeftoverCheckFileDoesNotMakeAFolderForeign) {
  const testing::TempDir dir;
  testing::WriteFile(dir / "s/.stylefleet-shared-check-0123456789abcdef-1",
                     "left by a killed rank");
  EXPECT_EQ(OutputDirConflict(dir / "s", "job", "s"), "");
  testing::WriteFile(dir / "s/photo.png", "not ours");
  EXPECT_NE(OutputDirConflict(dir / "s", "job", "s"), "");
}

}  // namespace
}  // namespace stylefleet
