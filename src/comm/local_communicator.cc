// The in-process backend: a world of threads that meet at a barrier for every
// collective. Always built, so bucket and trainer logic is tested without mpirun.
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <mutex>

#include "comm/communicator.h"
#include "comm/world.h"
#include "common/error.h"

namespace stylefleet {
namespace {

class SoloCommunicator : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string backend() const override { return "local"; }

 protected:
  void DoAllReduceAverage(float*, size_t, const std::string&) override {}
  void DoAllReduceSum(double*, size_t, const std::string&) override {}
  void DoBroadcast(void*, size_t, int root, const std::string&) override {
    SF_CHECK(root == 0, "broadcast root out of range");
  }
  std::vector<std::string> DoAllGather(const std::string& value, const std::string&) override {
    return {value};
  }
  void DoBarrier(const std::string&) override {}
  void ExchangeIdentity(const void* mine, size_t bytes, void* all, const std::string&) override {
    std::memcpy(all, mine, bytes);
  }
};

// State shared by the ranks of one local world.
struct Rendezvous {
  explicit Rendezvous(int n) : size(n), slots(static_cast<size_t>(n)) {}
  const int size;
  std::mutex mutex;
  std::condition_variable cv;
  int arrived = 0;
  uint64_t generation = 0;
  std::vector<const void*> slots;
  std::vector<std::string> strings;

  // Blocks until all ranks arrived (a reusable barrier).
  void Wait() {
    std::unique_lock<std::mutex> lock(mutex);
    const uint64_t my_generation = generation;
    if (++arrived == size) {
      arrived = 0;
      ++generation;
      cv.notify_all();
    } else {
      cv.wait(lock, [&] { return generation != my_generation; });
    }
  }
};

class LocalCommunicator : public Communicator {
 public:
  LocalCommunicator(std::shared_ptr<Rendezvous> shared, int rank)
      : shared_(std::move(shared)), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return shared_->size; }
  std::string backend() const override { return "local"; }

 protected:
  void DoAllReduceAverage(float* data, size_t count, const std::string&) override {
    Reduce(data, count, true);
  }
  void DoAllReduceSum(double* data, size_t count, const std::string&) override {
    Reduce(data, count, false);
  }

  void DoBroadcast(void* data, size_t bytes, int root, const std::string&) override {
    SF_CHECK(root >= 0 && root < size(), "broadcast root out of range");
    Publish(data);
    if (rank_ != root) std::memcpy(data, shared_->slots[static_cast<size_t>(root)], bytes);
    shared_->Wait();  // the root's buffer stays valid until everyone has copied
  }

  std::vector<std::string> DoAllGather(const std::string& value, const std::string&) override {
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      if (shared_->strings.size() != static_cast<size_t>(size())) shared_->strings.resize(size());
      shared_->strings[static_cast<size_t>(rank_)] = value;
    }
    shared_->Wait();
    std::vector<std::string> all;
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      all = shared_->strings;
    }
    shared_->Wait();
    return all;
  }

  void DoBarrier(const std::string&) override { shared_->Wait(); }
  void ExchangeIdentity(const void* mine, size_t bytes, void* all, const std::string&) override {
    Publish(mine);
    for (int r = 0; r < size(); ++r) {
      std::memcpy(static_cast<char*>(all) + static_cast<size_t>(r) * bytes,
                  shared_->slots[static_cast<size_t>(r)], bytes);
    }
    shared_->Wait();  // every rank has read before any buffer goes away
  }

 private:
  void Publish(const void* data) {
    {
      std::lock_guard<std::mutex> lock(shared_->mutex);
      shared_->slots[static_cast<size_t>(rank_)] = data;
    }
    shared_->Wait();
  }

  template <typename T>
  void Reduce(T* data, size_t count, bool average) {
    Publish(data);
    // Every rank sums in the same order, so all ranks get bitwise the same
    // result: for a power-of-two size the tree the MPI backend uses (rank r
    // with r + N/2 first, then r + N/4, ...), otherwise rank order.
    const size_t n = static_cast<size_t>(size());
    std::vector<const T*> all(n);
    for (size_t r = 0; r < n; ++r) all[r] = static_cast<const T*>(shared_->slots[r]);
    std::vector<T> sum(count, T(0));
    if ((n & (n - 1)) == 0) {
      std::vector<T> partial(n);
      for (size_t i = 0; i < count; ++i) {
        for (size_t r = 0; r < n; ++r) partial[r] = all[r][i];
        for (size_t d = n / 2; d >= 1; d /= 2) {
          for (size_t r = 0; r < d; ++r) partial[r] = partial[r] + partial[r + d];
        }
        sum[i] = partial[0];
      }
    } else {
      for (size_t r = 0; r < n; ++r) {
        for (size_t i = 0; i < count; ++i) sum[i] += all[r][i];
      }
    }
    shared_->Wait();  // all have read before anyone overwrites its buffer
    for (size_t i = 0; i < count; ++i) data[i] = average ? sum[i] / T(size()) : sum[i];
  }

  std::shared_ptr<Rendezvous> shared_;
  int rank_;
};

}  // namespace

std::unique_ptr<Communicator> MakeSoloCommunicator() {
  return std::make_unique<SoloCommunicator>();
}

std::vector<std::unique_ptr<Communicator>> MakeLocalWorld(int size) {
  SF_CHECK(size >= 1, "world size must be positive");
  auto shared = std::make_shared<Rendezvous>(size);
  std::vector<std::unique_ptr<Communicator>> world;
  for (int r = 0; r < size; ++r) world.push_back(std::make_unique<LocalCommunicator>(shared, r));
  return world;
}

}  // namespace stylefleet

// ---------------------------------------------------------------------------
// Worlds without MPI.

namespace stylefleet {
namespace {

class SoloWorld : public World {
 public:
  SoloWorld() : all_(MakeSoloCommunicator()) { info_.host = LocalHostName(); }
  const ProcessInfo& info() const override { return info_; }
  Communicator& all() override { return *all_; }
  std::unique_ptr<Communicator> Split(int, int) override { return MakeSoloCommunicator(); }
  [[noreturn]] void Abort(int exit_code) override { std::_Exit(exit_code); }
  void SetCollectiveTimeouts(double, double) override {}  // nothing to wait for

 private:
  ProcessInfo info_;
  std::unique_ptr<Communicator> all_;
};

// Groups created by Split, shared by the threads of a local world.
struct SplitRegistry {
  std::mutex mutex;
  std::map<std::pair<uint64_t, int>, std::shared_ptr<Rendezvous>> groups;
};

class LocalWorld : public World {
 public:
  LocalWorld(std::unique_ptr<Communicator> all, std::shared_ptr<SplitRegistry> registry)
      : all_(std::move(all)), registry_(std::move(registry)) {
    info_.rank = all_->rank();
    info_.size = all_->size();
    info_.local_rank = info_.rank;
    info_.local_size = info_.size;
    info_.host = LocalHostName();
  }
  const ProcessInfo& info() const override { return info_; }
  Communicator& all() override { return *all_; }

  std::unique_ptr<Communicator> Split(int color, int key) override {
    const uint64_t split = splits_++;  // the same sequence on every rank (collective order)
    const auto entries = all_->AllGather(std::to_string(color) + " " + std::to_string(key));
    // Members of my color ordered by (key, rank).
    std::vector<std::pair<int, int>> members;
    for (int r = 0; r < static_cast<int>(entries.size()); ++r) {
      int c = 0, k = 0;
      std::sscanf(entries[static_cast<size_t>(r)].c_str(), "%d %d", &c, &k);
      if (c == color) members.emplace_back(k, r);
    }
    std::sort(members.begin(), members.end());
    int my_index = 0;
    for (size_t i = 0; i < members.size(); ++i) {
      if (members[i].second == info_.rank) my_index = static_cast<int>(i);
    }
    std::shared_ptr<Rendezvous> shared;
    {
      std::lock_guard<std::mutex> lock(registry_->mutex);
      auto& slot = registry_->groups[{split, color}];
      if (!slot) slot = std::make_shared<Rendezvous>(static_cast<int>(members.size()));
      shared = slot;
    }
    return std::make_unique<LocalCommunicator>(shared, my_index);
  }
  [[noreturn]] void Abort(int exit_code) override { std::_Exit(exit_code); }
  // Threads of one process cannot die alone; tests of timeouts use MPI.
  void SetCollectiveTimeouts(double, double) override {}

 private:
  ProcessInfo info_;
  std::unique_ptr<Communicator> all_;
  std::shared_ptr<SplitRegistry> registry_;
  uint64_t splits_ = 0;
};

}  // namespace

std::string LocalHostName() {
  char host[256] = {0};
  gethostname(host, sizeof(host) - 1);
  return host;
}

std::unique_ptr<World> MakeSoloWorld() { return std::make_unique<SoloWorld>(); }

std::vector<std::unique_ptr<World>> MakeLocalWorlds(int size) {
  auto registry = std::make_shared<SplitRegistry>();
  std::vector<std::unique_ptr<World>> worlds;
  for (auto& comm : MakeLocalWorld(size)) {
    worlds.push_back(std::make_unique<LocalWorld>(std::move(comm), registry));
  }
  return worlds;
}

}  // namespace stylefleet
