// The MPI backend: process wiring and CPU collectives. The only file with mpi.h.
#include <mpi.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "comm/stall_inspector.h"
#include "comm/world.h"
#include "common/error.h"
#include "common/log.h"

namespace stylefleet {
namespace {

std::string MpiErrorText(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

int WorldRank() {
  int rank = -1;
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (initialized) MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  return rank;
}

// MPI return code -> exception with the call, file:line and rank.
#define SF_MPI_CHECK(call)                                                                        \
  do {                                                                                            \
    const int sf_mpi_code = (call);                                                               \
    if (sf_mpi_code != MPI_SUCCESS) {                                                             \
      throw ::stylefleet::Error(std::string("MPI error on rank ") + std::to_string(WorldRank()) + \
                                " in " #call " (" __FILE__ ":" + std::to_string(__LINE__) +       \
                                "): " + MpiErrorText(sf_mpi_code));                               \
    }                                                                                             \
  } while (0)

// MPI counts are int: large buffers go in chunks.
constexpr size_t kMaxChunk = static_cast<size_t>(INT_MAX) / 8;

// How long World::Abort waits for MPI_Abort before the process ends by itself.
constexpr int kAbortGraceSeconds = 5;

// This process's rank in `comm`.
int RankIn(MPI_Comm comm) {
  int rank = 0;
  SF_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  return rank;
}

// The world rank of each rank of `comm`.
std::vector<int> WorldRanksOf(MPI_Comm comm) {
  int size = 1;
  SF_MPI_CHECK(MPI_Comm_size(comm, &size));
  std::vector<int> ranks(static_cast<size_t>(size)), world_ranks(static_cast<size_t>(size));
  for (int r = 0; r < size; ++r) ranks[static_cast<size_t>(r)] = r;
  MPI_Group mine, world;
  MPI_Comm_group(comm, &mine);
  MPI_Comm_group(MPI_COMM_WORLD, &world);
  MPI_Group_translate_ranks(mine, size, ranks.data(), world, world_ranks.data());
  MPI_Group_free(&mine);
  MPI_Group_free(&world);
  return world_ranks;
}

// Tag of the "waiting at collective N" notices of the stall inspector.
constexpr int kWaitingTag = 7301;
// The point-to-point messages of the fixed-order gradient sum.
constexpr int kTreeTag = 7302;

class MpiCommunicator : public Communicator {
 public:
  // Collective over `comm` (it duplicates it). `world_hosts`: the host of each
  // world rank, for naming the ranks a collective waits for.
  MpiCommunicator(MPI_Comm comm, const StallTimeouts& timeouts,
                  std::shared_ptr<const std::vector<std::string>> world_hosts)
      : comm_(comm), rank_(RankIn(comm)), stalls_(rank_, WorldRanksOf(comm), timeouts) {
    SF_MPI_CHECK(MPI_Comm_size(comm_, &size_));
    // A separate channel for stall notices, so they never match collective traffic.
    SF_MPI_CHECK(MPI_Comm_dup(comm_, &notices_));
    MPI_Comm_set_errhandler(notices_, MPI_ERRORS_RETURN);
    stalls_.set_world_hosts(std::move(world_hosts));
  }
  ~MpiCommunicator() override {
    if (notices_ != MPI_COMM_NULL) MPI_Comm_free(&notices_);
    if (comm_ != MPI_COMM_WORLD && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }
  void set_world_hosts(std::shared_ptr<const std::vector<std::string>> world_hosts) {
    stalls_.set_world_hosts(std::move(world_hosts));
  }

 protected:
  void DoAllReduceAverage(float* data, size_t count, const std::string& what) override {
    if (size_ == 1) return;
    if (size_ > 2 && (size_ & (size_ - 1)) == 0) {
      AllReduceAverageInTree(data, count, what);
      return;
    }
    for (size_t done = 0; done < count; done += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - done));
      MPI_Request request;
      SF_MPI_CHECK(
          MPI_Iallreduce(MPI_IN_PLACE, data + done, n, MPI_FLOAT, MPI_SUM, comm_, &request));
      Wait(request, what);
    }
    const float scale = 1.0f / static_cast<float>(size_);
    for (size_t i = 0; i < count; ++i) data[i] *= scale;
  }

  // Recursive doubling in a fixed order: rank r adds rank r ^ N/2's buffer,
  // then r ^ N/4's, ..., r ^ 1's. Both sides of an exchange add the same two
  // numbers, and a + b == b + a, so every rank ends with the same bits; the
  // order of the additions does not depend on MPI's choice of algorithm, and
  // it is the order in which GradientTree adds micro-batches (an elastic
  // resume on fewer ranks continues bit for bit). log2(N) exchanges of the
  // whole buffer, against about 2 for a ring: the CPU backend pays that for
  // exactness (2 ranks, the common CPU case, keep MPI's allreduce: one
  // addition, no order).
  void AllReduceAverageInTree(float* data, size_t count, const std::string& what) {
    std::vector<float> theirs(std::min(count, kMaxChunk));
    for (size_t done = 0; done < count; done += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - done));
      float* mine = data + done;
      for (int distance = size_ / 2; distance >= 1; distance /= 2) {
        const int partner = rank_ ^ distance;
        MPI_Request receive, send;
        SF_MPI_CHECK(MPI_Irecv(theirs.data(), n, MPI_FLOAT, partner, kTreeTag, comm_, &receive));
        SF_MPI_CHECK(MPI_Isend(mine, n, MPI_FLOAT, partner, kTreeTag, comm_, &send));
        Wait(receive, what);
        Wait(send, what);
        for (int i = 0; i < n; ++i) mine[i] = mine[i] + theirs[static_cast<size_t>(i)];
      }
    }
    const float scale = 1.0f / static_cast<float>(size_);
    for (size_t i = 0; i < count; ++i) data[i] *= scale;
  }

  void DoAllReduceSum(double* data, size_t count, const std::string& what) override {
    if (size_ == 1) return;
    for (size_t done = 0; done < count; done += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - done));
      MPI_Request request;
      SF_MPI_CHECK(
          MPI_Iallreduce(MPI_IN_PLACE, data + done, n, MPI_DOUBLE, MPI_SUM, comm_, &request));
      Wait(request, what);
    }
  }

  void DoBroadcast(void* data, size_t bytes, int root, const std::string& what) override {
    if (size_ == 1) return;
    auto* p = static_cast<char*>(data);
    for (size_t done = 0; done < bytes; done += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, bytes - done));
      MPI_Request request;
      SF_MPI_CHECK(MPI_Ibcast(p + done, n, MPI_BYTE, root, comm_, &request));
      Wait(request, what);
    }
  }

  std::vector<std::string> DoAllGather(const std::string& value, const std::string& what) override {
    if (size_ == 1) return {value};
    const int length = static_cast<int>(value.size());
    std::vector<int> lengths(static_cast<size_t>(size_));
    MPI_Request request;
    SF_MPI_CHECK(MPI_Iallgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm_, &request));
    Wait(request, what);
    std::vector<int> offsets(static_cast<size_t>(size_), 0);
    for (int r = 1; r < size_; ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
    std::string joined(static_cast<size_t>(offsets.back() + lengths.back()), '\0');
    SF_MPI_CHECK(MPI_Iallgatherv(value.data(), length, MPI_CHAR, joined.data(), lengths.data(),
                                 offsets.data(), MPI_CHAR, comm_, &request));
    Wait(request, what);
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r) out.push_back(joined.substr(offsets[r], lengths[r]));
    return out;
  }

  void DoBarrier(const std::string& what) override {
    MPI_Request request;
    SF_MPI_CHECK(MPI_Ibarrier(comm_, &request));
    Wait(request, what);
  }

  void ExchangeIdentity(const void* mine, size_t bytes, void* all,
                        const std::string& what) override {
    MPI_Request request;
    SF_MPI_CHECK(MPI_Iallgather(mine, static_cast<int>(bytes), MPI_BYTE, all,
                                static_cast<int>(bytes), MPI_BYTE, comm_, &request));
    Wait(request, what);
  }

 private:
  // Polls a non-blocking collective: a warning once it has waited
  // stall_warn_seconds (a peer is slow, stalled or dead, named by the stall
  // inspector from the peers' notices), an exception after timeout_seconds, so
  // the caller aborts the launch instead of hanging forever.
  void Wait(MPI_Request& request, const std::string& what) {
    const int64_t sequence = stalls_.Start();
    const auto start = std::chrono::steady_clock::now();
    for (int polls = 0;; ++polls) {
      int done = 0;
      SF_MPI_CHECK(MPI_Test(&request, &done, MPI_STATUS_IGNORE));
      if (done) return;
      const double waited =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (stalls_.ShouldAnnounce(waited)) Announce(sequence);
      if (stalls_.Listening(waited)) ReadNotices();
      const std::string warning = stalls_.Warning(waited, what);
      if (!warning.empty()) SF_LOG(kWarning) << warning;
      const std::string timeout = stalls_.Timeout(waited, what);
      if (!timeout.empty()) {
        MPI_Cancel(&request);
        throw Error(timeout);
      }
      // Spin briefly (most collectives complete within microseconds), then yield the core.
      if (polls > 1000) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  // Tells every peer that this rank waits in collective `sequence`. Small
  // messages go out eagerly; the requests are released, not waited for (a
  // dead peer never receives).
  void Announce(int64_t sequence) {
    outgoing_ = sequence;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_) continue;
      MPI_Request request;
      if (MPI_Isend(&outgoing_, 1, MPI_INT64_T, r, kWaitingTag, notices_, &request) ==
          MPI_SUCCESS) {
        MPI_Request_free(&request);
      }
    }
  }

  // Takes in the notices that have arrived (also stale ones from collectives
  // that completed since: only the newest per rank counts).
  void ReadNotices() {
    for (;;) {
      int flag = 0;
      MPI_Status status;
      if (MPI_Iprobe(MPI_ANY_SOURCE, kWaitingTag, notices_, &flag, &status) != MPI_SUCCESS ||
          !flag) {
        return;
      }
      int64_t sequence = -1;
      if (MPI_Recv(&sequence, 1, MPI_INT64_T, status.MPI_SOURCE, kWaitingTag, notices_,
                   MPI_STATUS_IGNORE) != MPI_SUCCESS) {
        return;
      }
      stalls_.Heard(status.MPI_SOURCE, sequence);
    }
  }

  MPI_Comm comm_;
  MPI_Comm notices_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;  // rank_ before stalls_, which is built from it
  StallInspector stalls_;
  int64_t outgoing_ =
      0;  // the buffer of the notices in flight (one value is enough: it only grows)
};

class MpiWorld : public World {
 public:
  MpiWorld() {
    int provided = 0;
    SF_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    // Errors come back as codes (turned into exceptions) instead of aborting inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    SF_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &info_.rank));
    SF_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &info_.size));
    MPI_Comm node;
    SF_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, info_.rank,
                                     MPI_INFO_NULL, &node));
    SF_MPI_CHECK(MPI_Comm_rank(node, &info_.local_rank));
    SF_MPI_CHECK(MPI_Comm_size(node, &info_.local_size));
    MPI_Comm_free(&node);
    char host[MPI_MAX_PROCESSOR_NAME];
    int length = 0;
    MPI_Get_processor_name(host, &length);
    info_.host.assign(host, static_cast<size_t>(length));
    // Every rank's host, once, for naming the ranks a collective waits for.
    all_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD, timeouts_, nullptr);
    world_hosts_ =
        std::make_shared<const std::vector<std::string>>(all_->AllGather(info_.host, "host names"));
    all_->set_world_hosts(world_hosts_);
  }
  ~MpiWorld() override {
    all_.reset();
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
  }
  const ProcessInfo& info() const override { return info_; }
  Communicator& all() override { return *all_; }
  std::unique_ptr<Communicator> Split(int color, int key) override {
    MPI_Comm group;
    SF_MPI_CHECK(MPI_Comm_split(MPI_COMM_WORLD, color, key, &group));
    MPI_Comm_set_errhandler(group, MPI_ERRORS_RETURN);
    return std::make_unique<MpiCommunicator>(group, timeouts_, world_hosts_);
  }
  void SetCollectiveTimeouts(double warn_seconds, double timeout_seconds) override {
    timeouts_ = StallTimeouts{warn_seconds, timeout_seconds};
    MPI_Comm world_copy = MPI_COMM_WORLD;
    all_ = std::make_unique<MpiCommunicator>(world_copy, timeouts_, world_hosts_);
  }
  [[noreturn]] void Abort(int exit_code) override {
    // MPI_Abort asks mpirun to end every rank. When a host is lost it blocks
    // while mpirun tries to reach that host's daemon (about 2 minutes seen with
    // the link down, two_hosts_test): this process ends after a grace period
    // either way, so that a dead host does not hold the survivors' memory.
    try {
      std::thread([exit_code] {
        std::this_thread::sleep_for(std::chrono::seconds(kAbortGraceSeconds));
        std::_Exit(exit_code);
      }).detach();
    } catch (...) {
      // No thread to be had (the error being reported may be that): abort without the grace.
    }
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

 private:
  ProcessInfo info_;
  StallTimeouts timeouts_;
  std::shared_ptr<const std::vector<std::string>> world_hosts_;
  std::unique_ptr<MpiCommunicator> all_;
};

}  // namespace

bool LaunchedByMpi() {
  for (const char* name :
       {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE", "MPI_LOCALNRANKS"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

std::unique_ptr<World> MakeMpiWorld() { return std::make_unique<MpiWorld>(); }

}  // namespace stylefleet
