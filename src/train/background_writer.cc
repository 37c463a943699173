#include "train/background_writer.h"

#include <ATen/Parallel.h>
#include <omp.h>

#include "common/log.h"

namespace stylefleet {

BackgroundWriter::BackgroundWriter(size_t max_pending)
    : max_pending_(max_pending < 1 ? 1 : max_pending), thread_([this] { Work(); }) {}

BackgroundWriter::~BackgroundWriter() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return queue_.empty() && running_ == 0; });
    closing_ = true;
  }
  changed_.notify_all();
  thread_.join();
  if (failure_) {
    try {
      std::rethrow_exception(failure_);
    } catch (const std::exception& e) {
      SF_LOG(kWarning) << "background write failed: " << e.what();
    } catch (...) {
      SF_LOG(kWarning) << "background write failed";
    }
  }
}

void BackgroundWriter::Submit(std::function<void()> task) {
  ThrowIfFailed();
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return queue_.size() + running_ < max_pending_ || failure_; });
    if (!failure_) queue_.push_back(std::move(task));
  }
  changed_.notify_all();
  ThrowIfFailed();
}

void BackgroundWriter::ThrowIfFailed() {
  std::exception_ptr failure;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    failure = failure_;
    failure_ = nullptr;
  }
  if (failure) std::rethrow_exception(failure);
}

void BackgroundWriter::Drain() {
  {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return queue_.empty() && running_ == 0; });
  }
  ThrowIfFailed();
}

void BackgroundWriter::Work() {
  // LibTorch sets a new thread's OpenMP team to the global intra-op count on
  // its first parallel region; doing that first and then lowering it keeps
  // this thread at one.
  at::internal::lazy_init_num_threads();
  omp_set_num_threads(1);
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return closing_ || !queue_.empty(); });
    if (queue_.empty()) return;  // closing
    std::function<void()> task = std::move(queue_.front());
    queue_.pop_front();
    ++running_;
    lock.unlock();
    std::exception_ptr failure;
    try {
      task();
    } catch (...) {
      failure = std::current_exception();
    }
    task = nullptr;  // the snapshot goes before the next one is taken
    lock.lock();
    --running_;
    if (failure) {
      // The first failure wins; what was queued after it is not written.
      if (!failure_) failure_ = failure;
      queue_.clear();
    }
    changed_.notify_all();
  }
}

}  // namespace stylefleet
