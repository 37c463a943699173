#include "common/blas_threads.h"

#include <dlfcn.h>

#include <cstdint>
#include <mutex>

namespace stylefleet {
namespace {

// One library's thread API. The symbols are looked up in the process's global
// scope (libblas.so.3 is loaded as a dependency of LibTorch), so any BLAS
// works and a BLAS without threads is fine.
struct BlasThreadApi {
  const char* library;
  const char* set_name;
  const char* get_name;
  bool takes_int64;  // BLIS's dim_t is 64 bits wide
};

constexpr BlasThreadApi kApis[] = {
    {"OpenBLAS", "openblas_set_num_threads", "openblas_get_num_threads", false},
    {"BLIS", "bli_thread_set_num_threads", "bli_thread_get_num_threads", true},
    {"MKL", "MKL_Set_Num_Threads", "MKL_Get_Max_Threads", false},
};

// The first library of kApis that is loaded; nullptr when none.
const BlasThreadApi* LoadedApi() {
  for (const BlasThreadApi& api : kApis) {
    if (dlsym(RTLD_DEFAULT, api.set_name) != nullptr &&
        dlsym(RTLD_DEFAULT, api.get_name) != nullptr) {
      return &api;
    }
  }
  return nullptr;
}

}  // namespace

std::string SetBlasThreads(int threads) {
  const BlasThreadApi* api = LoadedApi();
  if (api == nullptr || threads < 1) return "";
  // No BLAS documents its setter as thread-safe, and tests run several
  // in-process ranks, each setting its budget from its own thread.
  static std::mutex setting;
  const std::lock_guard<std::mutex> lock(setting);
  void* set = dlsym(RTLD_DEFAULT, api->set_name);
  if (api->takes_int64) {
    reinterpret_cast<void (*)(int64_t)>(set)(threads);
  } else {
    reinterpret_cast<void (*)(int)>(set)(threads);
  }
  const int now = BlasThreads();
  return std::string(api->library) + ": " + std::to_string(now) +
         (now == 1 ? " thread" : " threads");
}

int BlasThreads() {
  const BlasThreadApi* api = LoadedApi();
  if (api == nullptr) return 0;
  void* get = dlsym(RTLD_DEFAULT, api->get_name);
  if (api->takes_int64) return static_cast<int>(reinterpret_cast<int64_t (*)()>(get)());
  return reinterpret_cast<int (*)()>(get)();
}

}  // namespace stylefleet
