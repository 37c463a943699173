#include "model/tensor_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "common/error.h"
#include "common/writable_file.h"

namespace stylefleet {
namespace fs = std::filesystem;

namespace {

// ---- Reading torch.save files without Python ----------------------------------
// torch.save writes a pickle (protocol 2) in one of two containers:
//  - zip (PyTorch >= 1.6): an uncompressed zip holding PREFIX/data.pkl and one
//    record PREFIX/data/KEY of raw little-endian bytes per storage;
//  - legacy (_use_new_zipfile_serialization=False, and PyTorch < 1.6): five
//    pickles in a row (magic number, protocol 1001, system info, the object,
//    the list of storage keys), then each storage as an int64 element count
//    followed by its bytes, in the order of that list.
// Tensors appear as calls of torch._utils._rebuild_tensor_v2(storage, offset,
// size, stride, ...) on a persistent id ('storage', torch.FloatStorage, key,
// location, numel). LibTorch 1.13's unpickler turns collections.OrderedDict
// (what model.state_dict() returns) into None, so this small reader handles
// the opcodes torch.save emits and refuses any other global: it never runs
// code, whatever the file says.

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

// A pickle can nest containers 100,000 deep, or chain lists into each other
// through the memo after they were built (which no depth count at
// construction sees): the default destructor would recurse once per level
// and overflow the stack. Items whose last reference is here are emptied into
// a work list instead, so that destruction needs a constant stack depth.
PyObject::~PyObject() {
  std::vector<PyRef> pending;
  const auto take_items = [&pending](PyObject& o) {
    for (PyRef& item : o.items) pending.push_back(std::move(item));
    for (auto& [key, value] : o.entries) {
      pending.push_back(std::move(key));
      pending.push_back(std::move(value));
    }
    o.items.clear();
    o.entries.clear();
  };
  take_items(*this);
  while (!pending.empty()) {
    PyRef next = std::move(pending.back());
    pending.pop_back();
    if (next && next.use_count() == 1) take_items(*next);
  }  // `next` dies here holding no items: its destructor does not recurse
}

// The names LibTorch's IValue::tagKind() gives, so messages read the same.
std::string KindName(const PyObject& o) {
  using K = PyObject::Kind;
  switch (o.kind) {
    case K::kNone:
      return "None";
    case K::kBool:
      return "Bool";
    case K::kInt:
    case K::kBigInt:
      return "Int";
    case K::kFloat:
      return "Double";
    case K::kString:
      return "String";
    case K::kTuple:
      return "Tuple";
    case K::kList:
      return "List";
    case K::kDict:
      return "Dict";
    case K::kGlobal:
      return "Global " + o.text;
    case K::kStorage:
      return "Storage";
    case K::kTensor:
      return "Tensor";
  }
  return "?";
}

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

std::optional<torch::ScalarType> StorageDtype(const std::string& global) {
  static const std::map<std::string, torch::ScalarType> types = {
      {"torch.FloatStorage", torch::kFloat32}, {"torch.DoubleStorage", torch::kFloat64},
      {"torch.HalfStorage", torch::kFloat16},  {"torch.BFloat16Storage", torch::kBFloat16},
      {"torch.LongStorage", torch::kInt64},    {"torch.IntStorage", torch::kInt32},
      {"torch.ShortStorage", torch::kInt16},   {"torch.CharStorage", torch::kInt8},
      {"torch.ByteStorage", torch::kUInt8},    {"torch.BoolStorage", torch::kBool}};
  const auto it = types.find(global);
  if (it == types.end()) return std::nullopt;
  return it->second;
}

// How deeply containers may nest, and marks stack up. torch.save's state dicts
// nest a few levels (a dict, its _metadata, a tensor's arguments); Python's
// own pickler stops near 1000, the default recursion limit.
constexpr int kMaxDepth = 1000;

// Finds storage bytes by key: a zip record, or (legacy) a tensor filled later.
using StorageLoader =
    std::function<torch::Tensor(const std::string& key, torch::ScalarType dtype, int64_t numel)>;

class Unpickler {
 public:
  Unpickler(const std::vector<char>& bytes, size_t pos, const std::string& path,
            StorageLoader storages, PickleArena& arena)
      : bytes_(bytes), pos_(pos), path_(path), storages_(std::move(storages)), arena_(arena) {}

  // Runs to STOP and returns the object; position() is then just past it.
  PyRef Load();
  size_t position() const { return pos_; }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw DataError(path_ + ": cannot read this torch.save file: " + what + " (pickle offset " +
                    std::to_string(pos_) + ")");
  }
  const uint8_t* Take(size_t n) {
    if (n > bytes_.size() - pos_) Fail("file ends inside the pickle");
    const auto* p = reinterpret_cast<const uint8_t*>(bytes_.data() + pos_);
    pos_ += n;
    return p;
  }
  uint64_t Unsigned(size_t n) {  // little-endian
    const uint8_t* p = Take(n);
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
    return v;
  }
  std::string Line() {
    std::string out;
    for (;;) {
      const char c = static_cast<char>(*Take(1));
      if (c == '\n') return out;
      out += c;
    }
  }
  PyRef Pop() {
    if (stack_.empty() || !stack_.back()) Fail("stack underflow");
    PyRef v = stack_.back();
    stack_.pop_back();
    return v;
  }
  std::vector<PyRef> PopToMark() {
    if (marks_.empty()) Fail("no mark");
    const size_t mark = marks_.back();
    marks_.pop_back();
    if (mark > stack_.size()) Fail("bad mark");
    std::vector<PyRef> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  PyRef Top() {
    if (stack_.empty() || !stack_.back()) Fail("stack underflow");
    return stack_.back();
  }
  PyRef Text(std::string text) {
    PyRef o = arena_.Make(PyObject::Kind::kString);
    o->text = std::move(text);
    return o;
  }
  PyRef Int(int64_t v) {
    PyRef o = arena_.Make(PyObject::Kind::kInt);
    o->integer = v;
    return o;
  }
  PyRef Tuple(std::vector<PyRef> items) {
    PyRef o = arena_.Make(PyObject::Kind::kTuple);
    for (const PyRef& item : items) Nest(*o, *item);
    o->items = std::move(items);
    return o;
  }
  // Records that `item` goes into `container`, refusing nesting past kMaxDepth.
  void Nest(PyObject& container, const PyObject& item) {
    if (item.depth >= kMaxDepth) {
      Fail("containers nested more than " + std::to_string(kMaxDepth) + " deep");
    }
    container.depth = std::max(container.depth, item.depth + 1);
  }
  void SetItems(const PyRef& dict, const std::vector<PyRef>& kv);
  bool Step(uint8_t op);
  bool StepScalar(uint8_t op);
  bool StepContainer(uint8_t op);
  bool StepObject(uint8_t op);
  PyRef Call(const PyRef& callable, const PyRef& args);
  PyRef PersistentLoad(const PyRef& id);
  PyRef RebuildTensor(const std::vector<PyRef>& args);

  const std::vector<char>& bytes_;
  size_t pos_;
  const std::string& path_;
  StorageLoader storages_;
  PickleArena& arena_;  // owns every object this unpickler makes
  std::vector<PyRef> stack_;
  std::vector<size_t> marks_;
  std::map<uint32_t, PyRef> memo_;
};

PyRef Unpickler::Load() {
  for (;;) {
    if (!Step(*Take(1))) break;
  }
  if (stack_.size() != 1) Fail("pickle leaves " + std::to_string(stack_.size()) + " values");
  return stack_.back();
}

void Unpickler::SetItems(const PyRef& dict, const std::vector<PyRef>& kv) {
  if (dict->kind != PyObject::Kind::kDict || kv.size() % 2 != 0) Fail("SETITEMS on a non-dict");
  for (size_t i = 0; i < kv.size(); i += 2) {
    Nest(*dict, *kv[i]);
    Nest(*dict, *kv[i + 1]);
    dict->entries.emplace_back(kv[i], kv[i + 1]);
  }
}

// One opcode; false at STOP. Opcodes are grouped by what they make.
bool Unpickler::Step(uint8_t op) {
  switch (op) {
    case 0x80:
      Take(1);
      return true;  // PROTO
    case 0x95:
      Take(8);
      return true;  // FRAME (protocol 4)
    case '.':
      return false;  // STOP
    case '(':
      if (marks_.size() >= kMaxDepth) {
        Fail("marks nested more than " + std::to_string(kMaxDepth) + " deep");
      }
      marks_.push_back(stack_.size());
      return true;  // MARK
  }
  if (StepScalar(op) || StepContainer(op) || StepObject(op)) return true;
  char hex[8];
  std::snprintf(hex, sizeof(hex), "0x%02x", op);
  Fail(std::string("unsupported pickle opcode ") + hex);
}

// None, booleans, integers, floats, strings, bytes and globals.
bool Unpickler::StepScalar(uint8_t op) {
  using K = PyObject::Kind;
  switch (op) {
    case 'N':
      stack_.push_back(arena_.Make(K::kNone));
      break;
    case 0x88:
    case 0x89: {  // NEWTRUE, NEWFALSE
      PyRef b = arena_.Make(K::kBool);
      b->integer = op == 0x88;
      stack_.push_back(b);
      break;
    }
    case 'J':
      stack_.push_back(Int(static_cast<int32_t>(Unsigned(4))));
      break;  // BININT
    case 'K':
      stack_.push_back(Int(static_cast<int64_t>(Unsigned(1))));
      break;  // BININT1
    case 'M':
      stack_.push_back(Int(static_cast<int64_t>(Unsigned(2))));
      break;      // BININT2
    case 0x8a: {  // LONG1
      const size_t n = *Take(1);
      if (n > 8) {  // only the legacy magic number is this long
        PyRef big = arena_.Make(K::kBigInt);
        const uint8_t* p = Take(n);
        big->text.assign(reinterpret_cast<const char*>(p), n);
        stack_.push_back(big);
        break;
      }
      uint64_t v = n == 0 ? 0 : Unsigned(n);
      if (n > 0 && n < 8 && (v >> (8 * n - 1)) & 1) v |= ~uint64_t{0} << (8 * n);  // sign
      stack_.push_back(Int(static_cast<int64_t>(v)));
      break;
    }
    case 'G': {  // BINFLOAT, big-endian
      const uint8_t* p = Take(8);
      uint64_t bits = 0;
      for (int i = 0; i < 8; ++i) bits = bits << 8 | p[i];
      PyRef f = arena_.Make(K::kFloat);
      std::memcpy(&f->number, &bits, 8);
      stack_.push_back(f);
      break;
    }
    case 'X':
    case 0x8c:
    case 0x8d:
    case 'T':
    case 'U':
    case 'B':
    case 'C': {  // strings, bytes
      const size_t n = (op == 0x8c || op == 'U' || op == 'C') ? Unsigned(1)
                       : op == 0x8d                           ? Unsigned(8)
                                                              : Unsigned(4);
      const uint8_t* p = Take(n);
      stack_.push_back(Text(std::string(reinterpret_cast<const char*>(p), n)));
      break;
    }
    case 'c': {  // GLOBAL module\nname\n
      PyRef g = arena_.Make(K::kGlobal);
      g->text = Line();
      g->text += "." + Line();
      stack_.push_back(g);
      break;
    }
    case 0x93: {  // STACK_GLOBAL
      const PyRef name = Pop(), module = Pop();
      PyRef g = arena_.Make(K::kGlobal);
      g->text = module->text + "." + name->text;
      stack_.push_back(g);
      break;
    }
    default:
      return false;
  }
  return true;
}

// The memo, tuples, lists, dicts and stack manipulation.
bool Unpickler::StepContainer(uint8_t op) {
  using K = PyObject::Kind;
  switch (op) {
    case 'q':
      memo_[static_cast<uint32_t>(Unsigned(1))] = Top();
      break;  // BINPUT
    case 'r':
      memo_[static_cast<uint32_t>(Unsigned(4))] = Top();
      break;  // LONG_BINPUT
    case 0x94:
      memo_[static_cast<uint32_t>(memo_.size())] = Top();
      break;  // MEMOIZE
    case 'h':
    case 'j': {  // BINGET, LONG_BINGET
      const auto it = memo_.find(static_cast<uint32_t>(Unsigned(op == 'h' ? 1 : 4)));
      if (it == memo_.end()) Fail("memo key missing");
      stack_.push_back(it->second);
      break;
    }
    case ')':
      stack_.push_back(Tuple({}));
      break;  // EMPTY_TUPLE
    case 't':
      stack_.push_back(Tuple(PopToMark()));
      break;  // TUPLE
    case 0x85:
    case 0x86:
    case 0x87: {  // TUPLE1..3
      std::vector<PyRef> items(static_cast<size_t>(op - 0x84));
      for (size_t i = items.size(); i-- > 0;) items[i] = Pop();
      stack_.push_back(Tuple(std::move(items)));
      break;
    }
    case ']':
      stack_.push_back(arena_.Make(K::kList));
      break;     // EMPTY_LIST
    case 'l': {  // LIST
      PyRef list = arena_.Make(K::kList);
      list->items = PopToMark();
      for (const PyRef& item : list->items) Nest(*list, *item);
      stack_.push_back(list);
      break;
    }
    case 'a':
    case 'e': {  // APPEND, APPENDS
      std::vector<PyRef> items = op == 'a' ? std::vector<PyRef>{Pop()} : PopToMark();
      const PyRef list = Top();
      if (list->kind != K::kList) Fail("APPEND to a non-list");
      for (const PyRef& item : items) Nest(*list, *item);
      list->items.insert(list->items.end(), items.begin(), items.end());
      break;
    }
    case '}':
      stack_.push_back(arena_.Make(K::kDict));
      break;     // EMPTY_DICT
    case 'd': {  // DICT
      PyRef dict = arena_.Make(K::kDict);
      SetItems(dict, PopToMark());
      stack_.push_back(dict);
      break;
    }
    case 's': {  // SETITEM
      const PyRef value = Pop(), key = Pop();
      SetItems(Top(), {key, value});
      break;
    }
    case 'u': {  // SETITEMS
      const std::vector<PyRef> kv = PopToMark();
      SetItems(Top(), kv);
      break;
    }
    case '0':
      Pop();
      break;  // POP
    case '1':
      PopToMark();
      break;  // POP_MARK
    case '2':
      stack_.push_back(Top());
      break;  // DUP
    default:
      return false;
  }
  return true;
}

// Calls (only the allowed globals), object state and storages.
bool Unpickler::StepObject(uint8_t op) {
  switch (op) {
    case 'R':
    case 0x81: {  // REDUCE, NEWOBJ
      const PyRef args = Pop(), callable = Pop();
      stack_.push_back(Call(callable, args));
      break;
    }
    case 'b':
      Pop();
      Top();
      break;  // BUILD: attribute state (a state dict's _metadata), unused
    case 'Q':
      stack_.push_back(PersistentLoad(Pop()));
      break;  // BINPERSID
    default:
      return false;
  }
  return true;
}

// The few callables torch.save's state dicts use; anything else is refused.
PyRef Unpickler::Call(const PyRef& callable, const PyRef& args) {
  if (callable->kind != PyObject::Kind::kGlobal || args->kind != PyObject::Kind::kTuple) {
    Fail("REDUCE of a " + KindName(*callable));
  }
  const std::string& name = callable->text;
  if (name == "collections.OrderedDict" && args->items.empty())
    return arena_.Make(PyObject::Kind::kDict);
  if (name == "torch._utils._rebuild_tensor_v2" || name == "torch._utils._rebuild_tensor") {
    return RebuildTensor(args->items);
  }
  // LibTorch's pickle_save (SaveTensorDict) wraps a typed dict in this; it returns its argument.
  if (name == "torch.jit._pickle.restore_type_tag" && !args->items.empty()) return args->items[0];
  if (name == "torch._utils._rebuild_parameter" && !args->items.empty() &&
      args->items[0]->kind == PyObject::Kind::kTensor) {
    return args->items[0];  // a Parameter is its data here
  }
  Fail("unsupported object " + name + " (only dicts of tensors are read)");
}

PyRef Unpickler::PersistentLoad(const PyRef& id) {
  using K = PyObject::Kind;
  const auto& f = id->items;
  if (id->kind != K::kTuple || f.size() < 5 || f[0]->text != "storage" ||
      f[1]->kind != K::kGlobal || f[2]->kind != K::kString || f[4]->kind != K::kInt) {
    Fail("unexpected persistent id (not a storage)");
  }
  const auto dtype = StorageDtype(f[1]->text);
  if (!dtype) Fail("unsupported storage type " + f[1]->text);
  if (f[4]->integer < 0) Fail("negative storage size");
  PyRef storage = arena_.Make(K::kStorage);
  storage->tensor = storages_(f[2]->text, *dtype, f[4]->integer);
  return storage;
}

// _rebuild_tensor[_v2](storage, offset, size, stride, ...): a view of the storage,
// bounds-checked so that a corrupt file cannot read outside it.
PyRef Unpickler::RebuildTensor(const std::vector<PyRef>& args) {
  using K = PyObject::Kind;
  if (args.size() < 4 || args[0]->kind != K::kStorage || args[1]->kind != K::kInt ||
      args[2]->kind != K::kTuple || args[3]->kind != K::kTuple ||
      args[2]->items.size() != args[3]->items.size()) {
    Fail("malformed tensor");
  }
  // Beyond what any model holds; kernels slow down or refuse past a few dozen.
  constexpr size_t kMaxDims = 64;
  if (args[2]->items.size() > kMaxDims) {
    Fail("tensor of " + std::to_string(args[2]->items.size()) + " dimensions (at most " +
         std::to_string(kMaxDims) + " are read)");
  }
  const torch::Tensor& storage = args[0]->tensor;
  const int64_t offset = args[1]->integer;
  std::vector<int64_t> size, stride;
  bool empty = false;
  for (size_t i = 0; i < args[2]->items.size(); ++i) {
    const PyRef& n = args[2]->items[i];
    const PyRef& s = args[3]->items[i];
    if (n->kind != K::kInt || s->kind != K::kInt || n->integer < 0 || s->integer < 0) {
      Fail("malformed tensor shape");
    }
    size.push_back(n->integer);
    stride.push_back(s->integer);
    empty = empty || n->integer == 0;
  }
  // The highest element touched, offset + sum((size - 1) * stride), must lie in
  // the storage; summed with division so that no product can overflow.
  if (offset < 0) Fail("tensor reaches past its storage");
  int64_t room = storage.numel() - 1 - offset;
  if (!empty && room < 0) Fail("tensor reaches past its storage");
  for (size_t i = 0; i < size.size() && !empty; ++i) {
    if (stride[i] == 0 || size[i] <= 1) continue;
    if (size[i] - 1 > room / stride[i]) Fail("tensor reaches past its storage");
    room -= (size[i] - 1) * stride[i];
  }
  // A view costs nothing, but whatever copies it (contiguous(), the checksum,
  // the finiteness check) materialises every element: size [2^30] with stride
  // 0 on one stored float would take 4 GiB. A view may hold no more elements
  // than its storage, so the file's own size bounds what reading it costs;
  // torch.save writes overlapping views (expand()) only when asked to.
  int64_t numel = 1;
  for (size_t i = 0; i < size.size() && !empty; ++i) {
    if (size[i] > storage.numel() / numel) {
      Fail("tensor of more elements than its storage holds (" + std::to_string(storage.numel()) +
           ")");
    }
    numel *= size[i];
  }
  PyRef t = arena_.Make(K::kTensor);
  t->tensor = storage.as_strided(size, stride, offset);
  return t;
}

// ---- Containers ----------------------------------------------------------------

struct ZipEntry {
  uint64_t offset = 0;  // of the local header
  uint64_t size = 0;
  uint16_t method = 0;
};

// Whether `n` bytes from `at` lie inside a buffer of `size` bytes. Offsets and
// lengths come from the file and may be anything up to 2^64 - 1: `at + n` and
// `size - n` could wrap, `size - at` cannot once `at <= size`.
bool Fits(size_t size, uint64_t at, uint64_t n) { return at <= size && n <= size - at; }

uint64_t ReadLe(const std::vector<char>& b, size_t at, size_t n) {
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t{static_cast<uint8_t>(b[at + i])} << (8 * i);
  return v;
}

// The central directory of a zip archive (ZIP64 sizes and offsets included).
std::map<std::string, ZipEntry> ReadZipDirectory(const std::vector<char>& b,
                                                 const std::string& path) {
  const auto fail = [&](const std::string& why) -> DataError {
    return DataError(path + ": damaged zip container (" + why + ")");
  };
  if (b.size() < 22) throw fail("too short");
  size_t eocd = b.size() - 22;
  while (ReadLe(b, eocd, 4) != 0x06054b50) {
    if (eocd == 0 || b.size() - eocd > 22 + 65535) throw fail("no end of central directory");
    --eocd;
  }
  uint64_t count = ReadLe(b, eocd + 10, 2), at = ReadLe(b, eocd + 16, 4);
  if ((count == 0xFFFF || at == 0xFFFFFFFF) && eocd >= 20 &&
      ReadLe(b, eocd - 20, 4) == 0x07064b50) {
    const uint64_t z = ReadLe(b, eocd - 12, 8);  // ZIP64 end record
    if (!Fits(b.size(), z, 56)) throw fail("bad ZIP64 record");
    count = ReadLe(b, z + 32, 8);
    at = ReadLe(b, z + 48, 8);
  }
  std::map<std::string, ZipEntry> entries;
  for (uint64_t i = 0; i < count; ++i) {
    if (!Fits(b.size(), at, 46) || ReadLe(b, at, 4) != 0x02014b50) throw fail("bad entry");
    const size_t name_len = ReadLe(b, at + 28, 2), extra_len = ReadLe(b, at + 30, 2);
    const size_t comment_len = ReadLe(b, at + 32, 2);
    if (!Fits(b.size(), at + 46, name_len + extra_len)) throw fail("bad entry");
    ZipEntry e;
    e.method = static_cast<uint16_t>(ReadLe(b, at + 10, 2));
    e.size = ReadLe(b, at + 24, 4);
    e.offset = ReadLe(b, at + 42, 4);
    // ZIP64 extra field: the 64-bit values of whichever fields read 0xFFFFFFFF.
    for (size_t x = at + 46 + name_len, end = x + extra_len; x + 4 <= end;) {
      const uint64_t tag = ReadLe(b, x, 2), len = ReadLe(b, x + 2, 2);
      size_t v = x + 4;
      if (tag == 1) {
        if (e.size == 0xFFFFFFFF && v + 8 <= end) {
          e.size = ReadLe(b, v, 8);
          v += 8;
        }
        if (ReadLe(b, at + 20, 4) == 0xFFFFFFFF && v + 8 <= end) v += 8;  // compressed size
        if (e.offset == 0xFFFFFFFF && v + 8 <= end) e.offset = ReadLe(b, v, 8);
      }
      x += 4 + len;
    }
    entries[std::string(&b[at + 46], name_len)] = e;
    at += 46 + name_len + extra_len + comment_len;
  }
  return entries;
}

// Where an entry's bytes start and how many there are, checked against the file.
std::pair<size_t, size_t> ZipData(const std::vector<char>& b, const ZipEntry& e,
                                  const std::string& name, const std::string& path) {
  if (e.method != 0)
    throw DataError(path + ": zip entry " + name + " is compressed (torch.save stores)");
  if (!Fits(b.size(), e.offset, 30) || ReadLe(b, e.offset, 4) != 0x04034b50) {
    throw DataError(path + ": damaged zip container (entry " + name + ")");
  }
  const uint64_t start = e.offset + 30 + ReadLe(b, e.offset + 26, 2) + ReadLe(b, e.offset + 28, 2);
  if (!Fits(b.size(), start, e.size)) {
    throw DataError(path + ": damaged zip container (entry " + name + " runs past the end)");
  }
  return {static_cast<size_t>(start), static_cast<size_t>(e.size)};
}

torch::Tensor StorageFromBytes(const char* data, size_t size, torch::ScalarType dtype,
                               int64_t numel, const std::string& what, const std::string& path) {
  const size_t element = c10::elementSize(dtype);
  if (static_cast<uint64_t>(numel) > size / element) {
    throw DataError(path + ": storage " + what + " holds " + std::to_string(size) +
                    " bytes, fewer than its " + std::to_string(numel) + " elements need");
  }
  torch::Tensor t = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
  if (numel > 0) std::memcpy(t.data_ptr(), data, static_cast<size_t>(numel) * element);
  return t;
}

PyRef LoadZipPickle(const std::vector<char>& bytes, const std::string& path, PickleArena& arena) {
  const auto entries = ReadZipDirectory(bytes, path);
  std::string prefix;
  const ZipEntry* pickle = nullptr;
  for (const auto& [name, entry] : entries) {
    const size_t slash = name.find('/');
    if (slash != std::string::npos && name.substr(slash + 1) == "data.pkl") {
      prefix = name.substr(0, slash + 1);
      pickle = &entry;
    }
  }
  if (pickle == nullptr)
    throw DataError(path + ": zip file without data.pkl: not written by torch.save");
  const auto [start, length] = ZipData(bytes, *pickle, prefix + "data.pkl", path);
  const std::vector<char> pkl(bytes.begin() + static_cast<std::ptrdiff_t>(start),
                              bytes.begin() + static_cast<std::ptrdiff_t>(start + length));
  // A storage several tensors view is read once and shared, as torch.load
  // does: a pickle naming one record a million times must not make a million
  // copies. Records may overlap in a crafted zip, so the storages' total is
  // bounded by the file too.
  std::map<std::string, torch::Tensor> loaded;
  uint64_t total = 0;
  StorageLoader storages = [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    const auto found = loaded.find(key);
    if (found != loaded.end()) return found->second;
    const std::string name = prefix + "data/" + key;
    const auto it = entries.find(name);
    if (it == entries.end()) throw DataError(path + ": storage record " + name + " is missing");
    const auto [at, size] = ZipData(bytes, it->second, name, path);
    const size_t element = c10::elementSize(dtype);
    if (static_cast<uint64_t>(numel) <= size / element &&
        static_cast<uint64_t>(numel) > (bytes.size() - total) / element) {
      throw DataError(path + ": storages add up to more bytes than the file holds (at " + name +
                      ")");
    }
    total += static_cast<uint64_t>(numel) * element;
    return loaded[key] = StorageFromBytes(bytes.data() + at, size, dtype, numel, name, path);
  };
  return Unpickler(pkl, 0, path, storages, arena).Load();
}

PyRef LoadLegacyPickle(const std::vector<char>& bytes, const std::string& path,
                       PickleArena& arena) {
  size_t pos = 0;
  const StorageLoader none = [&](const std::string&, torch::ScalarType, int64_t) -> torch::Tensor {
    throw DataError(path + ": storage outside the object pickle");
  };
  for (int i = 0; i < 3; ++i) {  // magic number, protocol version, system info
    Unpickler header(bytes, pos, path, none, arena);
    const PyRef value = header.Load();
    if (i == 0 && value->kind != PyObject::Kind::kBigInt) {
      throw DataError(path + ": not a file written by torch.save (no magic number)");
    }
    if (i == 2 && value->kind == PyObject::Kind::kDict) {
      for (const auto& [k, v] : value->entries) {
        if (k->text == "little_endian" && v->integer == 0) {
          throw DataError(path + ": written on a big-endian machine; not supported");
        }
      }
    }
    pos = header.position();
  }
  // Storages are created empty while the object is read and filled afterwards.
  // Their bytes all follow in the file, so together they cannot be larger than it.
  std::map<std::string, torch::Tensor> storages;
  uint64_t total = 0;
  StorageLoader create = [&](const std::string& key, torch::ScalarType dtype, int64_t numel) {
    auto it = storages.find(key);
    if (it != storages.end()) return it->second;
    const size_t element = c10::elementSize(dtype);
    if (static_cast<uint64_t>(numel) > (bytes.size() - total) / element) {
      throw DataError(path + ": storage " + key +
                      (total == 0 ? " is larger than the file"
                                  : " and the storages before it add up to more than the file"));
    }
    total += static_cast<uint64_t>(numel) * element;
    return storages[key] = torch::empty({numel}, torch::TensorOptions().dtype(dtype));
  };
  Unpickler object(bytes, pos, path, create, arena);
  const PyRef result = object.Load();
  Unpickler keys_reader(bytes, object.position(), path, none, arena);
  const PyRef keys = keys_reader.Load();
  pos = keys_reader.position();
  if (keys->kind != PyObject::Kind::kList) throw DataError(path + ": storage key list missing");
  std::set<std::string> filled;
  for (const PyRef& key : keys->items) {
    const auto it = storages.find(key->text);
    if (it == storages.end()) throw DataError(path + ": unknown storage " + key->text);
    if (!filled.insert(key->text).second) {
      throw DataError(path + ": storage " + key->text + " is listed twice");
    }
    torch::Tensor& t = it->second;
    const size_t element = t.element_size();
    if (bytes.size() - pos < 8) throw DataError(path + ": file ends before storage " + key->text);
    const uint64_t numel = ReadLe(bytes, pos, 8);
    pos += 8;
    if (numel != static_cast<uint64_t>(t.numel()) || bytes.size() - pos < numel * element) {
      throw DataError(path + ": storage " + key->text + " is truncated or of the wrong size");
    }
    if (numel > 0) std::memcpy(t.data_ptr(), bytes.data() + pos, numel * element);
    pos += numel * element;
  }
  // A storage the object uses but the list leaves out was never filled: its
  // tensors would hold whatever the allocator's memory held.
  for (const auto& [key, storage] : storages) {
    if (filled.count(key) == 0) {
      throw DataError(path + ": storage " + key +
                      " has no bytes in the file (not in its key list)");
    }
  }
  return result;
}

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
  if (bytes.size() >= 4 && ReadLe(bytes, 0, 4) == 0x04034b50) {
    value = LoadZipPickle(bytes, path, arena);
  } else if (static_cast<uint8_t>(bytes[0]) == 0x80) {
    value = LoadLegacyPickle(bytes, path, arena);
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
