// libFuzzer target: arbitrary bytes as a model, checkpoint or loss-network
// file (PyTorch's torch.save formats, zip and legacy, read by the project's
// own unpickler: src/model/tensor_file.cc). The reader must end in a dict of
// tensors or in a DataError; anything else (a crash, another exception such
// as a LibTorch error or bad_alloc, a hang, a leak, memory far beyond the
// input's size) is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "common/error.h"
#include "model/tensor_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<char> bytes(reinterpret_cast<const char*>(data),
                                reinterpret_cast<const char*>(data) + size);
  try {
    const stylefleet::TensorDict dict = stylefleet::ParseTensorDict(bytes, "fuzz.pt");
    // What was read is usable: every tensor's values can be touched.
    for (const auto& [key, tensor] : dict) {
      if (tensor.defined() && tensor.numel() > 0) (void)tensor.sum().item<double>();
    }
  } catch (const stylefleet::DataError& e) {
    const std::string what = e.what();
    if (what.rfind("fuzz.pt", 0) != 0) {
      std::fprintf(stderr, "error that does not name the file: %s\n", what.c_str());
      std::abort();
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "not a DataError: %s\n", e.what());
    std::abort();
  }
  return 0;
}
