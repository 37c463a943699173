// Builds without CUDA/NCCL: the NCCL backend's functions say so.
#include "comm/nccl_communicator.h"
#include "common/error.h"

namespace stylefleet {

bool NcclBackendBuilt() { return false; }
std::string NcclVersion() { return "not built"; }

std::unique_ptr<Communicator> MakeNcclCommunicator(Communicator&, int, const NcclOptions&) {
  throw Error(
      "this stylefleet was built without the NCCL backend: configure with "
      "-DSTYLEFLEET_WITH_CUDA=ON against the CUDA toolkit and NCCL");
}

int CudaDeviceCount() { return 0; }

}  // namespace stylefleet
