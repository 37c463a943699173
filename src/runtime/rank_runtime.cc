#include "runtime/rank_runtime.h"

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "comm/nccl_communicator.h"
#include "common/blas_threads.h"
#include "common/error.h"
#include "common/log.h"

namespace stylefleet {
namespace {

// One GPU per rank, chosen by local rank; else the CPU.
torch::Device DeviceOfLocalRank(int local_rank) {
  if (!torch::cuda::is_available()) return torch::Device(torch::kCPU);
  return torch::Device(torch::kCUDA,
                       static_cast<c10::DeviceIndex>(local_rank % torch::cuda::device_count()));
}

// Two ranks on one GPU would share its memory and serialize their kernels:
// refuse before anything is allocated. Collective over the world.
void CheckNoSharedGpu(World& world, const torch::Device& device) {
  const ProcessInfo& me = world.info();
  if (!device.is_cuda() || me.size == 1) return;
  const auto placements = world.all().AllGather(me.host + " GPU " + std::to_string(device.index()),
                                                "GPU placement check");
  for (int a = 0; a < me.size; ++a) {
    for (int b = a + 1; b < me.size; ++b) {
      if (placements[static_cast<size_t>(a)] == placements[static_cast<size_t>(b)]) {
        throw ConfigError({"ranks " + std::to_string(a) + " and " + std::to_string(b) +
                           " would share " + placements[static_cast<size_t>(a)] +
                           ": start at most as many ranks per node as it has GPUs"});
      }
    }
  }
}

// The backend that averages this rank's tensors.
std::string ChooseBackend(const std::string& configured, const torch::Device& device,
                          int world_size) {
  const bool cuda = device.is_cuda();
  const std::string backend = configured == "auto" ? (cuda ? "nccl" : "mpi") : configured;
  if (backend == "nccl" && !cuda) {
    throw ConfigError(
        {"distributed.backend: nccl needs CUDA GPUs and a CUDA build "
         "(-DSTYLEFLEET_WITH_CUDA=ON); this process sees none"});
  }
  if (backend == "mpi" && cuda && world_size > 1) {
    throw ConfigError(
        {"distributed.backend: mpi averages host memory; with tensors on CUDA "
         "use nccl (or auto)"});
  }
  return backend;
}

}  // namespace

RankRuntime::RankRuntime(ProcessInfo process, ThreadBudget threads, torch::Device device,
                         std::unique_ptr<Communicator> control, std::unique_ptr<Communicator> nccl)
    : process_(std::move(process)),
      threads_(std::move(threads)),
      device_(device),
      control_(std::move(control)),
      nccl_(std::move(nccl)) {}

int ThreadsFromOmpEnvironment() {
  const char* text = std::getenv("OMP_NUM_THREADS");
  if (text == nullptr || *text == '\0') return 0;
  // A list sets nested levels; the first entry is the outer one.
  const std::string first(text, std::strcspn(text, ","));
  errno = 0;
  char* end = nullptr;
  const long value = std::strtol(first.c_str(), &end, 10);
  const bool whole =
      end != first.c_str() &&
      first.find_first_not_of(" \t", static_cast<size_t>(end - first.c_str())) == std::string::npos;
  if (!whole || errno == ERANGE || value < 1 || value > kMaxIntraOpThreads) {
    LogLine(LogLevel::kWarning, "OMP_NUM_THREADS='" + std::string(text) +
                                    "' is not a thread count from 1 to " +
                                    std::to_string(kMaxIntraOpThreads) + "; ignored");
    return 0;
  }
  return static_cast<int>(value);
}

ThreadBudget UseIntraOpThreads(int requested, int ranks_on_host) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int from_environment = requested > 0 ? 0 : ThreadsFromOmpEnvironment();
  const int threads = requested > 0          ? requested
                      : from_environment > 0 ? from_environment
                                             : std::max(1, cores / std::max(1, ranks_on_host));
  torch::set_num_threads(threads);
  return ThreadBudget{threads, SetBlasThreads(threads)};
}

std::unique_ptr<RankRuntime> StartRankRuntime(World& world, const RuntimeOptions& options) {
  const ProcessInfo& me = world.info();
  ThreadBudget threads = UseIntraOpThreads(options.threads, me.local_size);
  const torch::Device device = DeviceOfLocalRank(me.local_rank);
  CheckNoSharedGpu(world, device);
  const std::string backend = ChooseBackend(options.backend, device, me.size);
  std::unique_ptr<Communicator> control = world.Split(options.group, options.rank_in_group);
  std::unique_ptr<Communicator> nccl;
  if (backend == "nccl" && control->size() > 1) {
    NcclOptions nccl_options;
    nccl_options.timeout_seconds = options.timeout_seconds;
    nccl = MakeNcclCommunicator(*control, device.index(), nccl_options);
  }
  return std::make_unique<RankRuntime>(me, std::move(threads), device, std::move(control),
                                       std::move(nccl));
}

}  // namespace stylefleet
