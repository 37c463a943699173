// The two containers torch.save writes around its pickle, and where each
// storage's bytes are in them:
//  - zip (PyTorch >= 1.6): an uncompressed zip holding PREFIX/data.pkl and one
//    record PREFIX/data/KEY of raw little-endian bytes per storage;
//  - legacy (_use_new_zipfile_serialization=False, and PyTorch < 1.6): five
//    pickles in a row (magic number, protocol 1001, system info, the object,
//    the list of storage keys), then each storage as an int64 element count
//    followed by its bytes, in the order of that list.
// Internal to model/tensor_file.cc (LoadTensorDict). Every offset and length
// comes from the file and is checked against it before use.
//
// The zip side is the project's own, not LibTorch's
// caffe2::serialize::PyTorchStreamReader, for a measured reason: the reader
// must allocate no more than the file's size, and PyTorchStreamReader cannot
// be held to that. Its getRecord allocates a record's claimed uncompressed
// size and inflates deflated records, and LibTorch 1.13's interface shows
// neither beforehand. The probe and its figures: docs/architecture.md, "Model
// files: why the zip reader is the project's own". model_test
// (DeflatedRecordsAreRefusedNotInflated) and the fuzzer (tests/fuzz) hold this
// side to the bound.
#pragma once

#include <string>
#include <vector>

#include "serialization/pickle.h"

namespace stylefleet {
namespace torch_save {

/// Whether `bytes` begin as a zip archive does (a local file header).
bool IsZipContainer(const std::vector<char>& bytes);

/// The object of a zip-format file: its PREFIX/data.pkl unpickled, each
/// storage read once from its PREFIX/data/KEY record (shared by the tensors
/// that view it). Throws DataError naming `path`.
PyRef LoadZipPickle(const std::vector<char>& bytes, const std::string& path, PickleArena& arena);

/// The object of a legacy-format file: its header pickles checked (magic
/// number, a little-endian writer), the object unpickled, then every storage it
/// uses filled from the bytes after the storage key list. Throws DataError
/// naming `path`.
PyRef LoadLegacyPickle(const std::vector<char>& bytes, const std::string& path, PickleArena& arena);

}  // namespace torch_save
}  // namespace stylefleet
