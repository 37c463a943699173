#include "serialization/pickle.h"

#include <algorithm>
#include <map>
#include <optional>

#include "common/error.h"

namespace stylefleet {
namespace torch_save {

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

namespace {

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
  bool StepText(uint8_t op);
  bool StepMemo(uint8_t op);
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
  if (StepScalar(op) || StepText(op) || StepMemo(op) || StepContainer(op) || StepObject(op)) {
    return true;
  }
  char hex[8];
  std::snprintf(hex, sizeof(hex), "0x%02x", op);
  Fail(std::string("unsupported pickle opcode ") + hex);
}

// None, booleans, integers and floats.
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
    default:
      return false;
  }
  return true;
}

// Strings, bytes and globals.
bool Unpickler::StepText(uint8_t op) {
  using K = PyObject::Kind;
  switch (op) {
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

// Tuples, lists and dicts.
bool Unpickler::StepContainer(uint8_t op) {
  using K = PyObject::Kind;
  switch (op) {
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
    default:
      return false;
  }
  return true;
}

// The memo and stack manipulation.
bool Unpickler::StepMemo(uint8_t op) {
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

}  // namespace

PyRef Unpickle(const std::vector<char>& bytes, size_t* pos, const std::string& path,
               StorageLoader storages, PickleArena& arena) {
  Unpickler unpickler(bytes, *pos, path, std::move(storages), arena);
  PyRef object = unpickler.Load();
  *pos = unpickler.position();
  return object;
}

}  // namespace torch_save
}  // namespace stylefleet
