// Files holding a dict of named tensors in PyTorch's torch.save formats,
// readable by Python's torch.load and written by it.
#pragma once

#include <torch/torch.h>

#include <string>
#include <utility>
#include <vector>

namespace stylefleet {

using TensorDict = std::vector<std::pair<std::string, torch::Tensor>>;

/// Reads a file written by torch.save (Python, any PyTorch since 0.4, either
/// the zip format or _use_new_zipfile_serialization=False) or by SaveTensorDict
/// holding a dict of tensors: a plain dict or an OrderedDict such as
/// `model.state_dict()`, in the file's key order. Needs no Python: a small
/// unpickler that knows only dicts, tensors and their storages, and refuses
/// any other object. Throws DataError naming the file: unreadable, damaged, not
/// a torch.save file, not a dict, or a value that is not a tensor (naming its key).
TensorDict LoadTensorDict(const std::string& path);

/// LoadTensorDict of a file's `bytes` already read; `path` names it in errors.
/// What a file may make it allocate is bounded by the file's size. Throws
/// DataError only (the reader's fuzz target, tests/fuzz, holds it to that).
TensorDict ParseTensorDict(const std::vector<char>& bytes, const std::string& path);

/// Writes `dict` atomically: a temporary file in the same folder, fsync, rename,
/// fsync of the folder. A crash leaves either the old file or the new one.
/// Creates missing parent folders. Throws Error naming `path`.
void SaveTensorDict(const TensorDict& dict, const std::string& path);

/// Finds `key`; nullptr when absent.
const torch::Tensor* FindTensor(const TensorDict& dict, const std::string& key);

/// Strings travel as uint8 tensors (torch.save dicts of tensors only).
torch::Tensor StringToTensor(const std::string& text);
std::string TensorToString(const torch::Tensor& tensor);

}  // namespace stylefleet
