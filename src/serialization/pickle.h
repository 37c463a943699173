// The pickle side of torch.save files (protocol 2): the objects a pickle
// builds, the arena that owns them, and an unpickler that knows only the
// opcodes torch.save emits and refuses any other global, so it never runs code
// whatever the file says. Tensors appear as calls of
// torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...) on a
// persistent id ('storage', torch.FloatStorage, key, location, numel). Its own
// rather than LibTorch's: LibTorch 1.13's unpickler turns
// collections.OrderedDict (what model.state_dict() returns) into None.
// Internal to model/tensor_file.cc (LoadTensorDict); serialization/containers.h
// finds the pickles and the storage bytes inside the two containers.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace stylefleet {
namespace torch_save {

// A value on the unpickler's stack.
struct PyObject;
using PyRef = std::shared_ptr<PyObject>;
struct PyObject {
  enum class Kind {
    kNone,
    kBool,
    kInt,
    kBigInt,
    kFloat,
    kString,
    kTuple,
    kList,
    kDict,
    kGlobal,
    kStorage,
    kTensor
  };
  PyObject() = default;
  PyObject(const PyObject&) = delete;
  PyObject& operator=(const PyObject&) = delete;
  ~PyObject();

  Kind kind = Kind::kNone;
  int depth = 0;  // containers: 1 + the deepest item's depth when it was added
  int64_t integer = 0;
  double number = 0;
  std::string text;                              // string, bytes, or "module.name" of a global
  std::vector<PyRef> items;                      // tuple, list
  std::vector<std::pair<PyRef, PyRef>> entries;  // dict, in insertion order
  torch::Tensor tensor;                          // storage (1-D, whole) or tensor
};

/// The name LibTorch's IValue::tagKind() gives `o`'s kind, so that messages read the same.
std::string KindName(const PyObject& o);

// Owns every object the unpicklers of one file make. A pickle can make a
// container hold itself (a list appended to itself through the memo), and
// reference counting never frees such a cycle: when the arena goes, it
// empties every container first, which frees them all. At most one object per
// opcode, so the arena is bounded by the file's size.
class PickleArena {
 public:
  PickleArena() = default;
  PickleArena(const PickleArena&) = delete;
  PickleArena& operator=(const PickleArena&) = delete;
  ~PickleArena() {
    for (const PyRef& o : objects_) {
      o->items.clear();
      o->entries.clear();
    }
  }
  PyRef Make(PyObject::Kind kind) {
    objects_.push_back(std::make_shared<PyObject>());
    objects_.back()->kind = kind;
    return objects_.back();
  }

 private:
  std::vector<PyRef> objects_;
};

// Finds storage bytes by key: a zip record, or (legacy) a tensor filled later.
using StorageLoader =
    std::function<torch::Tensor(const std::string& key, torch::ScalarType dtype, int64_t numel)>;

/// Unpickles the pickle that starts at `*pos` in `bytes` and returns its
/// object; `*pos` is then just past its STOP. Storages come from `storages`;
/// every object made belongs to `arena`. Throws DataError naming `path` and the
/// pickle offset on anything torch.save does not write.
PyRef Unpickle(const std::vector<char>& bytes, size_t* pos, const std::string& path,
               StorageLoader storages, PickleArena& arena);

}  // namespace torch_save
}  // namespace stylefleet
