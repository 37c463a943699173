// The MPI backend: process wiring and CPU collectives. The only file with mpi.h.
#include <mpi.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "dist/world.h"

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
#define SF_MPI_CHECK(call)                                                                   \
  do {                                                                                       \
    const int sf_mpi_code = (call);                                                          \
    if (sf_mpi_code != MPI_SUCCESS) {                                                        \
      throw ::stylefleet::Error(std::string("MPI error on rank ") +                          \
                                std::to_string(WorldRank()) + " in " #call " (" __FILE__ ":" + \
                                std::to_string(__LINE__) + "): " + MpiErrorText(sf_mpi_code)); \
    }                                                                                        \
  } while (0)

// MPI counts are int: large buffers go in chunks.
constexpr size_t kMaxChunk = static_cast<size_t>(INT_MAX) / 8;

class MpiCommunicator : public Communicator {
 public:
  explicit MpiCommunicator(MPI_Comm comm) : comm_(comm) {
    SF_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
    SF_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  }
  ~MpiCommunicator() override {
    if (comm_ != MPI_COMM_WORLD && comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
  }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  std::string backend() const override { return "mpi"; }

  void AllReduceAverage(float* data, size_t count) override {
    if (size_ == 1) return;
    for (size_t done = 0; done < count; done += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - done));
      SF_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + done, n, MPI_FLOAT, MPI_SUM, comm_));
    }
    const float scale = 1.0f / static_cast<float>(size_);
    for (size_t i = 0; i < count; ++i) data[i] *= scale;
  }

  void AllReduceSum(double* data, size_t count) override {
    if (size_ == 1) return;
    for (size_t done = 0; done < count; done += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, count - done));
      SF_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, data + done, n, MPI_DOUBLE, MPI_SUM, comm_));
    }
  }

  void Broadcast(void* data, size_t bytes, int root) override {
    if (size_ == 1) return;
    auto* p = static_cast<char*>(data);
    for (size_t done = 0; done < bytes; done += kMaxChunk) {
      const int n = static_cast<int>(std::min(kMaxChunk, bytes - done));
      SF_MPI_CHECK(MPI_Bcast(p + done, n, MPI_BYTE, root, comm_));
    }
  }

  std::vector<std::string> AllGather(const std::string& value) override {
    if (size_ == 1) return {value};
    const int length = static_cast<int>(value.size());
    std::vector<int> lengths(static_cast<size_t>(size_));
    SF_MPI_CHECK(MPI_Allgather(&length, 1, MPI_INT, lengths.data(), 1, MPI_INT, comm_));
    std::vector<int> offsets(static_cast<size_t>(size_), 0);
    for (int r = 1; r < size_; ++r) offsets[r] = offsets[r - 1] + lengths[r - 1];
    std::string joined(static_cast<size_t>(offsets.back() + lengths.back()), '\0');
    SF_MPI_CHECK(MPI_Allgatherv(value.data(), length, MPI_CHAR, joined.data(), lengths.data(),
                                offsets.data(), MPI_CHAR, comm_));
    std::vector<std::string> out;
    for (int r = 0; r < size_; ++r) out.push_back(joined.substr(offsets[r], lengths[r]));
    return out;
  }

  void Barrier() override { SF_MPI_CHECK(MPI_Barrier(comm_)); }

 private:
  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
};

class MpiWorld : public World {
 public:
  MpiWorld() {
    int provided = 0;
    SF_MPI_CHECK(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
    // Errors come back as codes (turned into exceptions) instead of aborting inside MPI.
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    all_ = std::make_unique<MpiCommunicator>(MPI_COMM_WORLD);
    info_.rank = all_->rank();
    info_.size = all_->size();
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
    return std::make_unique<MpiCommunicator>(group);
  }
  [[noreturn]] void Abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);
  }

 private:
  ProcessInfo info_;
  std::unique_ptr<MpiCommunicator> all_;
};

}  // namespace

bool LaunchedByMpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE",
                           "MPI_LOCALNRANKS"}) {
    if (std::getenv(name) != nullptr) return true;
  }
  return false;
}

std::unique_ptr<World> MakeMpiWorld() { return std::make_unique<MpiWorld>(); }

}  // namespace stylefleet
