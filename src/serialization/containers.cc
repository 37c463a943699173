#include "serialization/containers.h"

#include <cstring>
#include <map>
#include <set>

#include "common/error.h"

namespace stylefleet {
namespace torch_save {
namespace {

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

}  // namespace

bool IsZipContainer(const std::vector<char>& bytes) {
  return bytes.size() >= 4 && ReadLe(bytes, 0, 4) == 0x04034b50;
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
  size_t start_of_pickle = 0;
  return Unpickle(pkl, &start_of_pickle, path, storages, arena);
}

namespace {

// The storages' bytes after a legacy file's object, in the order of its key
// list, copied into `storages` (read from `*pos` on). Every storage must be
// filled once, with its own size.
void FillLegacyStorages(const std::vector<char>& bytes, const std::string& path,
                        const std::vector<PyRef>& keys, size_t* at,
                        std::map<std::string, torch::Tensor>& storages) {
  size_t& pos = *at;
  std::set<std::string> filled;
  for (const PyRef& key : keys) {
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
}

}  // namespace

PyRef LoadLegacyPickle(const std::vector<char>& bytes, const std::string& path,
                       PickleArena& arena) {
  size_t pos = 0;
  const StorageLoader none = [&](const std::string&, torch::ScalarType, int64_t) -> torch::Tensor {
    throw DataError(path + ": storage outside the object pickle");
  };
  for (int i = 0; i < 3; ++i) {  // magic number, protocol version, system info
    const PyRef value = Unpickle(bytes, &pos, path, none, arena);
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
  const PyRef result = Unpickle(bytes, &pos, path, create, arena);
  const PyRef keys = Unpickle(bytes, &pos, path, none, arena);
  if (keys->kind != PyObject::Kind::kList) throw DataError(path + ": storage key list missing");
  FillLegacyStorages(bytes, path, keys->items, &pos, storages);
  return result;
}

}  // namespace torch_save
}  // namespace stylefleet
