// The background writer of checkpoints and previews: order, failures, back
// pressure, its thread's share of the cores, and that nothing queued is lost.
#include "train/background_writer.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <vector>

#include "common/error.h"

namespace stylefleet {
namespace {

TEST(BackgroundWriterTest, RunsTasksInTheOrderSubmitted) {
  std::vector<int> done;
  BackgroundWriter writer(2);
  for (int i = 0; i < 6; ++i) writer.Submit([&done, i] { done.push_back(i); });
  writer.Drain();
  EXPECT_EQ(done, (std::vector<int>{0, 1, 2, 3, 4, 5}));
}

TEST(BackgroundWriterTest, AFailureReachesTheCallerAsThrownAndStopsLaterTasks) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> later_ran{false};
  BackgroundWriter writer(3);
  writer.Submit([released] {
    released.wait();
    throw DataError("/full/disk/step-00000003.pt: cannot write (No space left on device)");
  });
  writer.Submit([&later_ran] { later_ran = true; });
  release.set_value();
  try {
    writer.Drain();
    FAIL() << "the failure was not thrown";
  } catch (const DataError& e) {  // its own type, so the CLI's exit code stays right
    EXPECT_STREQ(e.what(), "/full/disk/step-00000003.pt: cannot write (No space left on device)");
  }
  EXPECT_FALSE(later_ran.load());
  // Thrown once; the writer goes on afterwards.
  EXPECT_NO_THROW(writer.ThrowIfFailed());
  std::atomic<bool> after{false};
  writer.Submit([&after] { after = true; });
  writer.Drain();
  EXPECT_TRUE(after.load());
}

// A Submit waiting for room when the running task fails throws that failure
// rather than queueing (or waiting for ever).
TEST(BackgroundWriterTest, SubmitThrowsAnEarlierFailureInsteadOfQueueing) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<bool> queued_ran{false};
  BackgroundWriter writer(1);
  writer.Submit([released] {
    released.wait();
    throw Error("checkpoint write failed");
  });
  std::future<void> second = std::async(std::launch::async, [&writer, &queued_ran] {
    writer.Submit([&queued_ran] { queued_ran = true; });
  });
  release.set_value();
  try {
    second.get();
    FAIL() << "Submit queued after a failure";
  } catch (const Error& e) {
    EXPECT_STREQ(e.what(), "checkpoint write failed");
  }
  writer.Drain();
  EXPECT_FALSE(queued_ran.load());
}

TEST(BackgroundWriterTest, SubmitWaitsWhileTooManyTasksArePending) {
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  BackgroundWriter writer(1);
  writer.Submit([released] { released.wait(); });
  std::future<void> second = std::async(std::launch::async, [&writer] { writer.Submit([] {}); });
  // The first task holds the only place: the second Submit cannot return.
  EXPECT_EQ(second.wait_for(std::chrono::milliseconds(200)), std::future_status::timeout);
  release.set_value();
  second.get();
  writer.Drain();
}

TEST(BackgroundWriterTest, TasksComputeOnOneThreadAndLeaveTheCallersThreadsAlone) {
  at::set_num_threads(2);
  int task_threads = 0;
  BackgroundWriter writer;
  writer.Submit([&task_threads] { task_threads = at::get_num_threads(); });
  writer.Drain();
  EXPECT_EQ(task_threads, 1);
  EXPECT_EQ(at::get_num_threads(), 2);
}

TEST(BackgroundWriterTest, DestroyingItWritesWhatIsQueued) {
  std::atomic<int> done{0};
  {
    BackgroundWriter writer(8);
    for (int i = 0; i < 5; ++i) {
      writer.Submit([&done] {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
        ++done;
      });
    }
  }
  EXPECT_EQ(done.load(), 5);
}

}  // namespace
}  // namespace stylefleet
