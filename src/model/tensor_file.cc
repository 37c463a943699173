#include "model/tensor_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

#include "common/error.h"
#include "common/writable_file.h"
#include "serialization/containers.h"
#include "serialization/pickle.h"

namespace stylefleet {
namespace fs = std::filesystem;
using torch_save::KindName;
using torch_save::PickleArena;
using torch_save::PyObject;
using torch_save::PyRef;

namespace {

// What a path names when it is not a regular file, for messages.
std::string FileKind(mode_t mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISCHR(mode) || S_ISBLK(mode)) return "a device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "a special file";
}

// The whole of a regular file. Anything else is refused before a byte is
// read: /dev/zero never ends (the read ran until bad_alloc), and a FIFO with
// no writer blocked forever. O_NONBLOCK keeps the open itself from waiting
// for a FIFO's writer; the check is on the opened file, so a path swapped
// between a check and the open cannot slip through.
std::vector<char> ReadRegularFile(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) throw DataError(path + ": cannot open file");
    throw DataError(path + ": cannot open file (" + std::strerror(errno) + ")");
  }
  struct FdCloser {
    int fd;
    ~FdCloser() { ::close(fd); }
  } closer{fd};
  struct stat info {};
  if (::fstat(fd, &info) != 0) {
    throw DataError(path + ": cannot open file (" + std::strerror(errno) + ")");
  }
  if (!S_ISREG(info.st_mode)) {
    std::error_code ec;
    std::string shown = path;
    if (fs::is_symlink(fs::symlink_status(path, ec))) {
      const fs::path target = fs::canonical(path, ec);
      if (!ec) shown += " (a link to " + target.string() + ")";
    }
    throw DataError(shown + ": is " + FileKind(info.st_mode) + ", not a regular file");
  }
  std::vector<char> bytes;
  bytes.reserve(static_cast<size_t>(std::max<off_t>(info.st_size, 0)));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof(buffer));
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      throw DataError(path + ": cannot read file (" + std::strerror(errno) + ")");
    }
    bytes.insert(bytes.end(), buffer, buffer + n);
  }
  return bytes;
}

}  // namespace

TensorDict LoadTensorDict(const std::string& path) {
  return ParseTensorDict(ReadRegularFile(path), path);
}

TensorDict ParseTensorDict(const std::vector<char>& bytes, const std::string& path) {
  if (bytes.empty()) throw DataError(path + ": file is empty");
  PickleArena arena;  // declared first: it outlives every reference below
  PyRef value;
  if (torch_save::IsZipContainer(bytes)) {
    value = torch_save::LoadZipPickle(bytes, path, arena);
  } else if (static_cast<uint8_t>(bytes[0]) == 0x80) {
    value = torch_save::LoadLegacyPickle(bytes, path, arena);
  } else {
    throw DataError(path + ": not a file written by torch.save (neither a zip nor a pickle)");
  }
  if (value->kind != PyObject::Kind::kDict) {
    throw DataError(path + ": expected a dict of tensors (such as a state_dict), got " +
                    KindName(*value));
  }
  TensorDict dict;
  for (const auto& [key, item] : value->entries) {
    if (key->kind != PyObject::Kind::kString) throw DataError(path + ": dict keys must be strings");
    if (item->kind != PyObject::Kind::kTensor) {
      throw DataError(path + ": key '" + key->text + "' is not a tensor (" + KindName(*item) + ")");
    }
    dict.emplace_back(key->text, item->tensor);
  }
  return dict;
}

void SaveTensorDict(const TensorDict& dict, const std::string& path) {
  c10::Dict<std::string, torch::Tensor> out;
  for (const auto& [key, tensor] : dict) out.insert(key, tensor.detach().cpu().contiguous());
  const std::vector<char> bytes = torch::pickle_save(torch::IValue(out));
  ReplaceFileDurably(path, std::string_view(bytes.data(), bytes.size()));
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
