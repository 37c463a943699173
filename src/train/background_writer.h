// Writes a run's files (checkpoints, previews) on a thread of their own, so
// that a step never waits for a disk, an fsync or an image encoder.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace stylefleet {

/// One background thread that runs submitted tasks in order. A task works on
/// its own snapshot of what it writes (tensors cloned by the caller), never on
/// state that training changes. Its LibTorch operations run on one intra-op
/// thread, so that a preview takes one core from training, not all of them.
///
/// A task that throws keeps its exception; the next ThrowIfFailed() or Drain()
/// rethrows it on the caller's thread, as thrown (same type and message), and
/// no later task runs. Not thread-safe itself: one owner calls it.
class BackgroundWriter {
 public:
  /// `max_pending`: Submit waits while this many tasks are queued or running,
  /// which bounds the memory held by snapshots.
  explicit BackgroundWriter(size_t max_pending = 2);
  /// Waits for the queued tasks; a failure is logged, not thrown.
  ~BackgroundWriter();
  BackgroundWriter(const BackgroundWriter&) = delete;
  BackgroundWriter& operator=(const BackgroundWriter&) = delete;

  /// Queues `task`. Throws the failure of an earlier task first, if any.
  void Submit(std::function<void()> task);
  /// Rethrows the first failure of a finished task, once.
  void ThrowIfFailed();
  /// Waits until every queued task has run, then ThrowIfFailed().
  void Drain();

 private:
  void Work();

  const size_t max_pending_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> queue_;
  size_t running_ = 0;
  bool closing_ = false;
  std::exception_ptr failure_;
  std::thread thread_;  // last: starts after the members it reads
};

}  // namespace stylefleet
