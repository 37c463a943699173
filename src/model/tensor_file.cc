#include "model/tensor_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "common/error.h"

namespace stylefleet {
namespace fs = std::filesystem;

TensorDict LoadTensorDict(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw DataError(path + ": cannot open file");
  const std::vector<char> bytes((std::istreambuf_iterator<char>(in)),
                                std::istreambuf_iterator<char>());
  if (bytes.empty()) throw DataError(path + ": file is empty");
  torch::IValue value;
  try {
    value = torch::pickle_load(bytes);
  } catch (const std::exception& e) {
    std::string reason = e.what();
    // LibTorch 1.13 unpickles an OrderedDict as None and then fails to fill it.
    if (reason.find("Expected GenericDict but got None") != std::string::npos) {
      throw DataError(path + ": holds an OrderedDict (such as model.state_dict()), which "
                             "LibTorch cannot read: save dict(state_dict) instead");
    }
    reason = reason.substr(0, reason.find('\n'));
    throw DataError(path + ": not a file written by torch.save (" + reason + ")");
  }
  if (!value.isGenericDict()) {
    throw DataError(path + ": expected a dict of tensors, got " + value.tagKind() +
                    (value.isNone() ? " (an OrderedDict such as model.state_dict() loads as "
                                      "None: save dict(state_dict) instead)"
                                    : ""));
  }
  TensorDict dict;
  for (const auto& item : value.toGenericDict()) {
    if (!item.key().isString()) throw DataError(path + ": dict keys must be strings");
    const std::string& key = item.key().toStringRef();
    if (!item.value().isTensor()) {
      throw DataError(path + ": key '" + key + "' is not a tensor (" + item.value().tagKind() + ")");
    }
    dict.emplace_back(key, item.value().toTensor());
  }
  return dict;
}

namespace {
void SyncPath(const std::string& path, int flags) {
  const int fd = ::open(path.c_str(), flags);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}
}  // namespace

void SaveTensorDict(const TensorDict& dict, const std::string& path) {
  c10::Dict<std::string, torch::Tensor> out;
  for (const auto& [key, tensor] : dict) out.insert(key, tensor.detach().cpu().contiguous());
  const std::vector<char> bytes = torch::pickle_save(torch::IValue(out));
  const fs::path target(path);
  std::error_code ec;
  if (!target.parent_path().empty()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) throw Error(path + ": cannot create its folder (" + ec.message() + ")");
  }
  // Errors name the file asked for; the temporary beside it is an internal detail.
  const std::string temp = (target.parent_path() / ("." + target.filename().string() + ".tmp")).string();
  {
    std::ofstream file(temp, std::ios::binary | std::ios::trunc);
    if (!file) throw Error(path + ": cannot create file (" + std::strerror(errno) + ")");
    file.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    file.flush();
    if (!file) {
      const std::string reason = std::strerror(errno);
      fs::remove(temp, ec);
      throw Error(path + ": write failed (" + reason + ")");
    }
  }
  SyncPath(temp, O_RDONLY);
  fs::rename(temp, target, ec);
  if (ec) {
    fs::remove(temp, ec);
    throw Error(path + ": cannot move new file into place (" + ec.message() + ")");
  }
  SyncPath(target.parent_path().empty() ? "." : target.parent_path().string(),
           O_RDONLY | O_DIRECTORY);
}

const torch::Tensor* FindTensor(const TensorDict& dict, const std::string& key) {
  for (const auto& item : dict) {
    if (item.first == key) return &item.second;
  }
  return nullptr;
}

torch::Tensor StringToTensor(const std::string& text) {
  torch::Tensor t = torch::empty({static_cast<int64_t>(text.size())}, torch::kUInt8);
  if (!text.empty()) std::memcpy(t.data_ptr<uint8_t>(), text.data(), text.size());
  return t;
}

std::string TensorToString(const torch::Tensor& tensor) {
  const torch::Tensor t = tensor.to(torch::kUInt8).contiguous();
  return std::string(reinterpret_cast<const char*>(t.data_ptr<uint8_t>()),
                     static_cast<size_t>(t.numel()));
}

}  // namespace stylefleet
