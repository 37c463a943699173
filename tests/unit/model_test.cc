// The networks: shapes, parameter names, weights-file errors, and the export
// round trip through PyTorch.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <iterator>
#include <sstream>

#include "checkpoint/model_file.h"
#include "commands/commands.h"
#include "common/error.h"
#include "data/image.h"
#include "data/image_tensor.h"
#include "model/tensor_file.h"
#include "model/tiled_forward.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "test_paths.h"
#include "test_util.h"
#include "vgg_test_dict.h"

namespace stylefleet {
namespace {
using testing::TempDir;
using namespace std::string_literals;

TEST(TransformerNetTest, KeepsShapeAndUsesThePyTorchExampleNames) {
  torch::manual_seed(0);
  TransformerNet net;
  const torch::Tensor out = net->forward(torch::rand({2, 3, 36, 44}) * 255);
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({2, 3, 36, 44}));
  const auto params = net->named_parameters();
  for (const char* key : {"conv1.conv2d.weight", "in1.weight", "in1.bias", "conv3.conv2d.bias",
                          "res1.conv1.conv2d.weight", "res5.in2.bias", "deconv1.conv2d.weight",
                          "in5.weight", "deconv3.conv2d.bias"}) {
    EXPECT_NE(params.find(key), nullptr) << key;
  }
  EXPECT_EQ(params.size(), 62u);  // 16 conv layers x 2 + 15 instance norms x 2
}

TEST(Vgg16Test, RandomIsDeterministicAndStopsAtTheDeepestLayer) {
  const Vgg16 a = Vgg16::Load("random:5"), b = Vgg16::Load("random:5"), c = Vgg16::Load("random:6");
  const torch::Tensor image = torch::rand({1, 3, 32, 32}) * 255;
  const auto fa = a.Forward(image, {1, 3});
  ASSERT_EQ(fa.size(), 2u);
  EXPECT_EQ(fa.at(1).sizes(), torch::IntArrayRef({1, 64, 32, 32}));
  EXPECT_EQ(fa.at(3).sizes(), torch::IntArrayRef({1, 128, 16, 16}));
  EXPECT_TRUE(torch::equal(fa.at(3), b.Forward(image, {3}).at(3)));
  EXPECT_FALSE(torch::equal(fa.at(3), c.Forward(image, {3}).at(3)));
  EXPECT_EQ(a.Forward(image, {9}).at(9).sizes(), torch::IntArrayRef({1, 512, 4, 4}));
}

// The built-in network's input convention: RGB 0..255 minus the mean pixel,
// in RGB order. An image of exactly that pixel is all zeros after
// normalization, so the first layer's output is its bias everywhere, borders
// included (VGG pads with zeros); the same pixel in BGR order is not zero, and
// the zero padding then makes the borders differ.
TEST(Vgg16Test, RandomNetworkSubtractsTheRgbMeanPixel) {
  const Vgg16 vgg = Vgg16::Load("random:5");
  auto spread = [&](float r, float g, float b) {
    const torch::Tensor image =
        torch::tensor({r, g, b}).view({1, 3, 1, 1}).expand({1, 3, 8, 8}).contiguous();
    const torch::Tensor f = vgg.Forward(image, {0}).at(0);
    return (f.amax({2, 3}) - f.amin({2, 3})).max().item<float>();
  };
  EXPECT_EQ(spread(123.68f, 116.78f, 103.94f), 0.0f);
  EXPECT_GT(spread(103.94f, 116.78f, 123.68f), 1e-3f);
}

std::string LoadError(const std::string& path) {
  try {
    Vgg16::Load(path);
  } catch (const DataError& e) {
    return e.what();
  }
  return "loaded";
}

TEST(Vgg16Test, PlainTorchvisionDictMeansTorchvisionNormalization) {
  TempDir dir;
  SaveTensorDict(testing::VggTestDict(), dir / "vgg.pt");
  const Vgg16 vgg = Vgg16::Load(dir / "vgg.pt");
  EXPECT_EQ(vgg.normalization().input_scale, 1.0);
  EXPECT_DOUBLE_EQ(vgg.normalization().mean[0], 0.485);
  EXPECT_DOUBLE_EQ(vgg.normalization().std[2], 0.225);
}

TEST(Vgg16Test, BadWeightsFilesNameTheProblem) {
  TempDir dir;
  TensorDict missing = testing::VggTestDict();
  missing.erase(missing.begin() + 5);  // features.10.bias... index 5 is features.5.bias
  SaveTensorDict(missing, dir / "missing.pt");
  EXPECT_EQ(LoadError(dir / "missing.pt"), dir / "missing.pt: missing key 'features.5.bias'");

  TensorDict shape = testing::VggTestDict();
  shape[2].second = torch::zeros({64, 3, 3, 3});
  SaveTensorDict(shape, dir / "shape.pt");
  EXPECT_EQ(
      LoadError(dir / "shape.pt"),
      dir / "shape.pt: key 'features.2.weight' has shape [64, 3, 3, 3], expected [64, 64, 3, 3]");

  testing::WriteFile(dir / "junk.pt", "not a zip");
  EXPECT_NE(LoadError(dir / "junk.pt").find("junk.pt: not a file written by torch.save"),
            std::string::npos);
  EXPECT_EQ(LoadError(dir / "absent.pt"), dir / "absent.pt: cannot open file");
}

TEST(Vgg16Test, NonTensorValuesAreNamed) {
  TempDir dir;
  testing::WriteFile(
      dir / "make.py",
      "import torch\n"
      "torch.save({'features.0.weight': 'text', 'features.0.bias': torch.zeros(2)}, '" +
          (dir / "string.pt") +
          "')\n"
          "torch.save([torch.zeros(1)], '" +
          (dir / "list.pt") + "')\n");
  ASSERT_EQ(std::system(("/usr/bin/python3 " + (dir / "make.py")).c_str()), 0);
  EXPECT_EQ(LoadError(dir / "string.pt"),
            dir / "string.pt: key 'features.0.weight' is not a tensor (String)");
  EXPECT_EQ(LoadError(dir / "list.pt"),
            dir / "list.pt: expected a dict of tensors (such as a state_dict), got List");
}

// What python3-torch 1.13 writes, in both containers: the zip format and
// _use_new_zipfile_serialization=False (the legacy format of the PyTorch
// example's downloadable models).
const char kTorchFilesScript[] = R"(import collections, sys, torch
sys.path.insert(0, sys.argv[2])
from reference import TransformerNet
out = sys.argv[1]
torch.manual_seed(5)
net = TransformerNet()
state = net.state_dict()  # an OrderedDict with _metadata, as the example saves it
# Old example models carry instance-norm running statistics PyTorch no longer has.
state['in1.running_mean'] = torch.zeros(32)
state['in1.running_var'] = torch.ones(32)
x = torch.rand(1, 3, 40, 36) * 255
with torch.no_grad():
    y = net(x)
torch.save({'input': x, 'output': y}, out + '/io.pt')
mixed = collections.OrderedDict()
mixed['f64_transposed'] = torch.arange(12, dtype=torch.float64).reshape(3, 4).t()
mixed['i64_slice'] = torch.arange(10)[2:8:2]
mixed['half'] = torch.tensor([0.5, -2.0], dtype=torch.float16)
mixed['bool'] = torch.tensor([True, False, True])
mixed['u8'] = torch.tensor([1, 255], dtype=torch.uint8)
mixed['scalar'] = torch.tensor(7.25)
mixed['empty'] = torch.zeros(0, 3)
base = torch.arange(6, dtype=torch.float32)
mixed['shared_a'], mixed['shared_b'] = base[:3], base[3:]  # one storage, two views
for zip_format in (True, False):
    suffix = 'zip' if zip_format else 'legacy'
    torch.save(state, f'{out}/example_{suffix}.pth', _use_new_zipfile_serialization=zip_format)
    torch.save(mixed, f'{out}/mixed_{suffix}.pt', _use_new_zipfile_serialization=zip_format)
)";

TEST(TorchFileTest, ReadsStateDictsOfBothContainers) {
  TempDir dir;
  testing::WriteFile(dir / "make.py", kTorchFilesScript);
  const std::string make = "/usr/bin/python3 " + (dir / "make.py") + " " + dir.path() + " " +
                           STYLEFLEET_SOURCE_DIR + "/tests/reference";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  const TensorDict io = LoadTensorDict(dir / "io.pt");
  torch::NoGradGuard no_grad;
  for (const char* format : {"zip", "legacy"}) {
    SCOPED_TRACE(format);
    // The PyTorch example's model file stylizes as in PyTorch.
    TransformerNet net = LoadTransformer(dir / ("example_" + std::string(format) + ".pth"));
    const torch::Tensor y = net->forward(*FindTensor(io, "input"));
    const torch::Tensor expected = *FindTensor(io, "output");
    EXPECT_LT((y - expected).abs().max().item<double>(),
              1e-4 * expected.abs().max().item<double>());

    const TensorDict mixed = LoadTensorDict(dir / ("mixed_" + std::string(format) + ".pt"));
    ASSERT_EQ(mixed.size(), 9u);
    EXPECT_EQ(mixed[0].first, "f64_transposed");  // file order kept
    auto get = [&](const char* key) { return *FindTensor(mixed, key); };
    EXPECT_TRUE(torch::equal(get("f64_transposed"),
                             torch::arange(12, torch::kFloat64).reshape({3, 4}).t()));
    EXPECT_TRUE(torch::equal(get("i64_slice"), torch::tensor({2, 4, 6}, torch::kInt64)));
    EXPECT_TRUE(torch::equal(get("half"), torch::tensor({0.5, -2.0}).to(torch::kFloat16)));
    EXPECT_TRUE(torch::equal(get("bool"), torch::tensor({true, false, true})));
    EXPECT_TRUE(torch::equal(get("u8"), torch::tensor({1, 255}).to(torch::kUInt8)));
    EXPECT_EQ(get("scalar").dim(), 0);
    EXPECT_EQ(get("scalar").item<float>(), 7.25f);
    EXPECT_EQ(get("empty").sizes(), torch::IntArrayRef({0, 3}));
    EXPECT_TRUE(torch::equal(get("shared_b"), torch::tensor({3.0f, 4.0f, 5.0f})));
  }
}

// Truncated and corrupted copies of real files are refused with the file named,
// never a crash or a read outside the buffer.
// A write never replaces what is not a regular file: a folder, a FIFO (and
// a device: an `export --overwrite` run as root once turned /dev/full into a
// model file), and says why (the reason was once lost to the clean-up of the
// temporary: "(Success)"), leaving no temporary. Through a symbolic link it
// replaces the file the link points to and keeps the link.
TEST(TorchFileTest, OnlyRegularFilesAreReplaced) {
  TempDir dir;
  testing::WriteFile(dir / "model.pt/inside", "x");
  ASSERT_EQ(::mkfifo((dir / "fifo.pt").c_str(), 0600), 0);
  for (const auto& [name, kind] :
       {std::pair<std::string, std::string>{"model.pt", "a folder"}, {"fifo.pt", "a FIFO"}}) {
    try {
      SaveTensorDict({{"w", torch::ones({2})}}, dir / name);
      ADD_FAILURE() << kind << " was replaced";
    } catch (const Error& e) {
      const std::string message = e.what();
      EXPECT_NE(message.find(name + ": is " + kind + ", not a regular file; nothing was written"),
                std::string::npos)
          << message;
      EXPECT_EQ(message.find("Success"), std::string::npos) << message;
    }
    EXPECT_FALSE(std::filesystem::exists(dir / ("." + name + ".tmp")));
  }
  EXPECT_TRUE(std::filesystem::is_fifo(dir / "fifo.pt"));
  ASSERT_EQ(::mkfifo((dir / "fifo.png").c_str(), 0600), 0);
  EXPECT_THROW(SaveImageFile(testing::MakeTestImage(8, 8, 1), dir / "fifo.png"), DataError);
  EXPECT_TRUE(std::filesystem::is_fifo(dir / "fifo.png"));
  testing::WriteFile(dir / "real/target.pt", "old");
  std::filesystem::create_symlink(dir / "real/target.pt", dir / "link.pt");
  SaveTensorDict({{"w", torch::ones({2})}}, dir / "link.pt");
  EXPECT_TRUE(std::filesystem::is_symlink(dir / "link.pt"));
  EXPECT_EQ(LoadTensorDict(dir / "real/target.pt").size(), 1u);
}

TEST(TorchFileTest, DamagedFilesAreRefusedNamingTheFile) {
  TempDir dir;
  testing::WriteFile(dir / "make.py", kTorchFilesScript);
  const std::string make = "/usr/bin/python3 " + (dir / "make.py") + " " + dir.path() + " " +
                           STYLEFLEET_SOURCE_DIR + "/tests/reference";
  ASSERT_EQ(std::system(make.c_str()), 0) << make;
  for (const char* name : {"mixed_zip.pt", "mixed_legacy.pt"}) {
    std::ifstream in(dir / name, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    int refused = 0;
    for (size_t cut = 1; cut < bytes.size(); cut += 7) {
      std::string damaged = bytes.substr(0, cut);
      testing::WriteFile(dir / "cut.pt", damaged);
      try {
        LoadTensorDict(dir / "cut.pt");
      } catch (const DataError& e) {
        ++refused;
        EXPECT_EQ(std::string(e.what()).rfind(dir / "cut.pt: ", 0), 0u) << e.what();
      }
    }
    EXPECT_GT(refused, static_cast<int>(bytes.size() / 7) - 2) << name;
    for (size_t at = 0; at < bytes.size(); at += 5) {  // flipped bytes: loads or DataError
      std::string damaged = bytes;
      damaged[at] = static_cast<char>(damaged[at] ^ 0x5A);
      testing::WriteFile(dir / "flip.pt", damaged);
      try {
        LoadTensorDict(dir / "flip.pt");
      } catch (const DataError&) {
      }
    }
  }
}

// ---- Hostile files, built byte by byte ----------------------------------------
// Shapes no real writer produces (issue 32), so the tests make them here.

std::string Le(uint64_t value, int bytes) {
  std::string out;
  for (int i = 0; i < bytes; ++i) out += static_cast<char>((value >> (8 * i)) & 0xFF);
  return out;
}

std::string Repeat(const std::string& part, size_t times) {
  std::string out;
  out.reserve(part.size() * times);
  for (size_t i = 0; i < times; ++i) out += part;
  return out;
}

std::string PickleText(const std::string& text) { return "X" + Le(text.size(), 4) + text; }
std::string PickleInt(int64_t value) {
  return "\x8a\x08" + Le(static_cast<uint64_t>(value), 8);  // LONG1, any int64
}

// torch._utils._rebuild_tensor_v2 on FloatStorage `key` of `numel` elements.
std::string PickleTensor(const std::string& key, int64_t numel, const std::vector<int64_t>& size,
                         const std::vector<int64_t>& stride) {
  std::string p = "ctorch._utils\n_rebuild_tensor_v2\n(";
  p += "(" + PickleText("storage") + "ctorch\nFloatStorage\n" + PickleText(key) +
       PickleText("cpu") + PickleInt(numel) + "tQ";
  p += PickleInt(0) + "(";
  for (int64_t n : size) p += PickleInt(n);
  p += "t(";
  for (int64_t s : stride) p += PickleInt(s);
  return p + "t\x89tR";
}

// A whole pickle of {name: tensor pickle}.
std::string PickleDict(const std::string& name, const std::string& value) {
  return "\x80\x02}(" + PickleText(name) + value + "u.";
}

// An uncompressed zip of `records`, as torch.save lays them out; the record
// named `deflated`, if any, claims to be deflated to 1 GiB in the directory.
std::string StoredZip(const std::vector<std::pair<std::string, std::string>>& records,
                      const std::string& deflated = "") {
  std::string out, directory;
  for (const auto& [name, data] : records) {
    const uint64_t offset = out.size();
    const std::string sizes = Le(data.size(), 4) + Le(data.size(), 4);
    out += Le(0x04034b50, 4) + Le(20, 2) + Le(0, 2) + Le(0, 2) + Le(0, 4) + Le(0, 4) + sizes +
           Le(name.size(), 2) + Le(0, 2) + name + data;
    const bool bomb = name == deflated;
    directory += Le(0x02014b50, 4) + Le(20, 2) + Le(20, 2) + Le(0, 2) + Le(bomb ? 8 : 0, 2) +
                 Le(0, 4) + Le(0, 4) + Le(data.size(), 4) + Le(bomb ? 1u << 30 : data.size(), 4) +
                 Le(name.size(), 2) + Le(0, 2) + Le(0, 2) + Le(0, 2) + Le(0, 2) + Le(0, 4) +
                 Le(offset, 4) + name;
  }
  return out + directory + Le(0x06054b50, 4) + Le(0, 2) + Le(0, 2) + Le(records.size(), 2) +
         Le(records.size(), 2) + Le(directory.size(), 4) + Le(out.size(), 4) + Le(0, 2);
}

std::string FloatBytes(float value) {
  std::string out(4, '\0');
  std::memcpy(out.data(), &value, 4);
  return out;
}

// A zip torch.save file whose data.pkl is `pickle` and whose storage "0" holds `storage`.
std::string ZipTorchFile(const std::string& pickle, const std::string& storage = FloatBytes(1.5f)) {
  return StoredZip({{"archive/data.pkl", pickle}, {"archive/data/0", storage}});
}

// What LoadTensorDict says about `bytes` written to `path`: "loaded N" or the error.
std::string LoadBytesError(const std::string& path, const std::string& bytes) {
  testing::WriteFile(path, bytes);
  try {
    return "loaded " + std::to_string(LoadTensorDict(path).size());
  } catch (const DataError& e) {
    return e.what();
  }
}

bool StartsWith(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

TEST(TorchFileTest, HandBuiltFilesLoad) {  // the builders below are right
  TempDir dir;
  testing::WriteFile(dir / "ok.pt", ZipTorchFile(PickleDict("w", PickleTensor("0", 1, {1}, {1}))));
  const TensorDict dict = LoadTensorDict(dir / "ok.pt");
  ASSERT_EQ(dict.size(), 1u);
  EXPECT_TRUE(torch::equal(dict[0].second, torch::tensor({1.5f})));
}

// Containers in containers 100,000 deep: a tuple in a tuple (TUPLE1 after
// TUPLE1), lists by MARK and LIST, or lists wrapped through the memo. Their
// destruction recursed once per level into a SIGSEGV; now the file is refused
// naming it.
TEST(TorchFileTest, DeepTuplesAreRefusedNotACrash) {
  TempDir dir;
  const std::string path = dir / "deep.pt";
  const std::string tuples = "\x80\x02N" + std::string(100000, '\x85') + ".";
  const std::string error = LoadBytesError(path, ZipTorchFile(tuples));
  EXPECT_TRUE(StartsWith(error, path + ": ")) << error;
  EXPECT_NE(error.find("containers nested more than 1000 deep"), std::string::npos) << error;
}

TEST(TorchFileTest, DeepListsAreRefusedNotACrash) {
  TempDir dir;
  const std::string path = dir / "deep.pt";
  const std::string marks = "\x80\x02" + std::string(100000, '(') + std::string(100000, 'l') + ".";
  std::string error = LoadBytesError(path, ZipTorchFile(marks));
  EXPECT_TRUE(StartsWith(error, path + ": ")) << error;
  EXPECT_NE(error.find("marks nested more than 1000 deep"), std::string::npos) << error;

  // Each step wraps the top in a new list: BINPUT 0, POP, EMPTY_LIST, BINGET 0, APPEND.
  const std::string wrap = {'q', '\0', '0', ']', 'h', '\0', 'a'};
  error = LoadBytesError(path, ZipTorchFile("\x80\x02N" + Repeat(wrap, 100000) + "."));
  EXPECT_NE(error.find("containers nested more than 1000 deep"), std::string::npos) << error;
}

// Lists joined into a chain after they were built (the tail stays in memo 0
// and each new list is appended to it) nest 200,000 deep while each was added
// at depth 1, which no depth count sees: destroying them must not recurse.
TEST(TorchFileTest, ChainedListsAreFreedWithoutRecursion) {
  TempDir dir;
  const std::string path = dir / "chain.pt";
  // BINGET 0, EMPTY_LIST, BINPUT 0, APPEND, POP.
  const std::string link = {'h', '\0', ']', 'q', '\0', 'a', '0'};
  const std::string chain = "\x80\x02]q"s + '\0' + Repeat(link, 200000) + ".";
  EXPECT_EQ(LoadBytesError(path, ZipTorchFile(chain)),
            path + ": expected a dict of tensors (such as a state_dict), got List");
}

// A list appended to itself (through the memo) and a dict holding itself are
// cycles that reference counting never frees: the reader's arena frees them.
// The leak shows only under LeakSanitizer (launch/test_sanitizers.sh runs
// this test there; the fuzzer found it in 4 s, tests/fuzz/regressions).
TEST(TorchFileTest, ContainersThatHoldThemselvesAreRefusedAndFreed) {
  TempDir dir;
  const std::string path = dir / "cycle.pt";
  // EMPTY_LIST, BINPUT 0, BINGET 0, APPEND, STOP.
  const std::string list = "\x80\x02]q"s + '\0' + 'h' + '\0' + "a.";
  EXPECT_EQ(LoadBytesError(path, ZipTorchFile(list)),
            path + ": expected a dict of tensors (such as a state_dict), got List");
  // EMPTY_DICT, BINPUT 0, BINUNICODE 'k', BINGET 0, SETITEM, STOP.
  const std::string dict =
      "\x80\x02}q"s + '\0' + "X\x01"s + '\0' + '\0' + '\0' + "kh"s + '\0' + "s.";
  EXPECT_EQ(LoadBytesError(path, ZipTorchFile(dict)), path + ": key 'k' is not a tensor (Dict)");
}

// Zip offsets and lengths come from the file: a 46-byte file whose ZIP64
// locator points 16 TiB out once made `size - 56` wrap and the reader read
// there; offsets near 2^64 must not wrap past the checks either.
TEST(TorchFileTest, ZipOffsetsOutsideTheFileAreRefused) {
  TempDir dir;
  const std::string path = dir / "zip.pt";
  const std::string local = Le(0x04034b50, 4);
  const auto locator = [](uint64_t at) {
    return Le(0x07064b50, 4) + Le(0, 4) + Le(at, 8) + Le(1, 4);
  };
  const std::string end = Le(0x06054b50, 4) + Le(0, 2) + Le(0, 2) + Le(0xFFFF, 2) + Le(0xFFFF, 2) +
                          Le(0, 4) + Le(0xFFFFFFFF, 4) + Le(0, 2);
  const std::string tiny = local + locator(0x100000000000) + end;
  ASSERT_EQ(tiny.size(), 46u);
  std::string error = LoadBytesError(path, tiny);
  EXPECT_EQ(error, path + ": damaged zip container (bad ZIP64 record)");

  for (const uint64_t at : {~uint64_t{0} - 15, ~uint64_t{0} - 55, uint64_t{1} << 63}) {
    error = LoadBytesError(path, local + std::string(100, '\0') + locator(at) + end);
    EXPECT_EQ(error, path + ": damaged zip container (bad ZIP64 record)") << at;
  }
  // A ZIP64 end record whose central directory lies near 2^64.
  const std::string record = Le(0x06064b50, 4) + Le(44, 8) + Le(45, 2) + Le(45, 2) + Le(0, 4) +
                             Le(0, 4) + Le(1, 8) + Le(1, 8) + Le(46, 8) + Le(~uint64_t{0} - 20, 8);
  error = LoadBytesError(path, local + record + locator(4) + end);
  EXPECT_EQ(error, path + ": damaged zip container (bad entry)");

  // An entry whose local header lies near 2^64 (its ZIP64 extra field says so).
  const std::string name = "archive/data.pkl";
  const std::string extra = Le(1, 2) + Le(8, 2) + Le(~uint64_t{0} - 10, 8);
  const std::string entry = Le(0x02014b50, 4) + Le(45, 2) + Le(45, 2) + Le(0, 2) + Le(0, 2) +
                            Le(0, 4) + Le(0, 4) + Le(4, 4) + Le(4, 4) + Le(name.size(), 2) +
                            Le(extra.size(), 2) + Le(0, 2) + Le(0, 2) + Le(0, 2) + Le(0, 4) +
                            Le(0xFFFFFFFF, 4) + name + extra;
  const std::string entry_end = Le(0x06054b50, 4) + Le(0, 2) + Le(0, 2) + Le(1, 2) + Le(1, 2) +
                                Le(entry.size(), 4) + Le(4, 4) + Le(0, 2);
  error = LoadBytesError(path, local + entry + entry_end);
  EXPECT_EQ(error, path + ": damaged zip container (entry archive/data.pkl)");
}

// torch.save stores its records; a deflated one is refused before anything is
// inflated. (LibTorch 1.13's PyTorchStreamReader inflated a 1 MB file's
// deflated record to the 1 GiB it claimed; see serialization/containers.h.)
TEST(TorchFileTest, DeflatedRecordsAreRefusedNotInflated) {
  TempDir dir;
  const std::string path = dir / "deflated.pt";
  const std::string pickle = PickleDict("w", PickleTensor("0", 1, {1}, {1}));
  const std::string bytes = StoredZip(
      {{"archive/data.pkl", pickle}, {"archive/data/0", FloatBytes(1.5f)}}, "archive/data/0");
  EXPECT_EQ(LoadBytesError(path, bytes),
            path + ": zip entry archive/data/0 is compressed (torch.save stores)");
}

// The legacy container: five pickles, then each storage's element count and bytes.
std::string LegacyTorchFile(const std::string& object, const std::string& keys,
                            const std::string& storages) {
  const std::string magic = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.";
  return magic + "\x80\x02M\xe9\x03." + "\x80\x02}." + object + keys + storages;
}

// A storage the object uses but the key list leaves out was never filled: its
// weights were uninitialised heap memory, and loaded.
TEST(TorchFileTest, LegacyStoragesWithoutBytesAreRefused) {
  TempDir dir;
  const std::string path = dir / "legacy.pt";
  const std::string object = PickleDict("w", PickleTensor("0", 1, {1}, {1}));
  const std::string one_key = "\x80\x02(" + PickleText("0") + "l.";
  const std::string bytes = Le(1, 8) + FloatBytes(1.5f);
  testing::WriteFile(path, LegacyTorchFile(object, one_key, bytes));
  const TensorDict dict = LoadTensorDict(path);
  ASSERT_EQ(dict.size(), 1u);
  EXPECT_TRUE(torch::equal(dict[0].second, torch::tensor({1.5f})));

  EXPECT_EQ(LoadBytesError(path, LegacyTorchFile(object, "\x80\x02].", "")),
            path + ": storage 0 has no bytes in the file (not in its key list)");
  const std::string twice = "\x80\x02(" + PickleText("0") + PickleText("0") + "l.";
  EXPECT_EQ(LoadBytesError(path, LegacyTorchFile(object, twice, bytes + bytes)),
            path + ": storage 0 is listed twice");
}

// A view of more elements than its storage holds made whoever copied it
// materialise them all: 2^30 floats from one stored float. Dimensions are
// bounded too.
TEST(TorchFileTest, ViewsLargerThanTheirStorageAreRefused) {
  TempDir dir;
  const std::string path = dir / "view.pt";
  std::string error =
      LoadBytesError(path, ZipTorchFile(PickleDict("w", PickleTensor("0", 1, {1 << 30}, {0}))));
  EXPECT_TRUE(StartsWith(error, path + ": ")) << error;
  EXPECT_NE(error.find("tensor of more elements than its storage holds (1)"), std::string::npos)
      << error;
  error = LoadBytesError(
      path, ZipTorchFile(PickleDict("w", PickleTensor("0", 1, {int64_t{1} << 62, 4}, {0, 0}))));
  EXPECT_NE(error.find("more elements than its storage holds"), std::string::npos) << error;
  error = LoadBytesError(
      path, ZipTorchFile(PickleDict("w", PickleTensor("0", 1, std::vector<int64_t>(100, 1),
                                                      std::vector<int64_t>(100, 1)))));
  EXPECT_NE(error.find("tensor of 100 dimensions (at most 64 are read)"), std::string::npos)
      << error;
  // An empty view of a huge shape holds nothing and stays readable.
  EXPECT_EQ(LoadBytesError(path, ZipTorchFile(PickleDict(
                                     "w", PickleTensor("0", 1, {int64_t{1} << 62, 0}, {1, 1})))),
            "loaded 1");
}

// A storage is read once however many tensors view it (a pickle naming one
// record a million times made a million copies), and all storages together
// hold no more than the file does.
TEST(TorchFileTest, StoragesAreReadOnceAndBoundedByTheFile) {
  TempDir dir;
  const std::string path = dir / "shared.pt";
  std::string pickle = "\x80\x02}(";
  for (int i = 0; i < 1000; ++i) {
    pickle += PickleText("w" + std::to_string(i)) + PickleTensor("0", 1, {1}, {1});
  }
  testing::WriteFile(path, ZipTorchFile(pickle + "u."));
  const TensorDict dict = LoadTensorDict(path);
  ASSERT_EQ(dict.size(), 1000u);
  EXPECT_EQ(dict[0].second.data_ptr(), dict[999].second.data_ptr());
  EXPECT_EQ(dict[999].second.item<float>(), 1.5f);

  // Three legacy storages, each half the file's size.
  const auto legacy = [](int64_t numel) {
    std::string object = "\x80\x02}(";
    for (const char* key : {"0", "1", "2"}) {
      object += PickleText(key) + PickleTensor(key, numel, {1}, {1});
    }
    return LegacyTorchFile(object + "u.", "\x80\x02].", "");
  };
  const int64_t half = static_cast<int64_t>(legacy(1).size()) / 8 + 1;
  EXPECT_EQ(LoadBytesError(path, legacy(half)),
            path + ": storage 1 and the storages before it add up to more than the file");
}

// Only a regular file is read, after following links: /dev/zero was read
// until bad_alloc.
TEST(TorchFileTest, NonRegularFilesAreRefusedBeforeReading) {
  TempDir dir;
  try {
    LoadTensorDict("/dev/zero");
    ADD_FAILURE() << "/dev/zero loaded";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), "/dev/zero: is a device, not a regular file");
  }
  std::filesystem::create_directories(dir / "folder.pt");
  EXPECT_EQ(LoadBytesError(dir / "plain.pt", "x"),
            dir / "plain.pt: not a file written by torch.save (neither a zip nor a pickle)");
  try {
    LoadTensorDict(dir / "folder.pt");
    ADD_FAILURE() << "a folder loaded";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), dir / "folder.pt: is a folder, not a regular file");
  }
}

// A checkpoint that is a link to /dev/zero stopped a resume, or `stylize` of
// its folder, with bad_alloc; the message says where the link leads.
TEST(TorchFileTest, CheckpointLinkedToADeviceIsRefused) {
  TempDir dir;
  std::filesystem::create_directories(dir / "out/checkpoints");
  std::filesystem::create_symlink("/dev/zero", dir / "out/checkpoints/step-00000001.pt");
  try {
    LoadModel(dir / "out");
    ADD_FAILURE() << "the checkpoint linked to /dev/zero loaded";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), (dir / "out/checkpoints/step-00000001.pt") +
                                         " (a link to /dev/zero): is a device, not a regular file");
  }
}

// A FIFO as the model path blocked forever. If the open blocks here, opening
// the FIFO's writer side ends the wait, so that a failure cannot hang the run.
TEST(TorchFileTest, FifosAreRefusedWithoutBlocking) {
  TempDir dir;
  const std::string fifo = dir / "fifo.pt";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  auto load = std::async(std::launch::async, [&fifo]() -> std::string {
    try {
      LoadTensorDict(fifo);
      return "loaded";
    } catch (const DataError& e) {
      return e.what();
    }
  });
  if (load.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    ADD_FAILURE() << "reading a FIFO blocked";
    const int writer = ::open(fifo.c_str(), O_WRONLY);
    if (writer >= 0) ::close(writer);
  }
  EXPECT_EQ(load.get(), fifo + ": is a FIFO, not a regular file");
}

// launch/convert_vgg16.py on a whole torchvision vgg16 state dict (classifier
// included) writes a file the loader accepts, with torchvision's convention.
TEST(Vgg16Test, ConverterOutputLoads) {
  TempDir dir;
  testing::WriteFile(dir / "make.py",
                     "import torch, torchvision\n"
                     "torch.save(torchvision.models.vgg16().state_dict(), '" +
                         (dir / "tv.pth") + "')\n");
  ASSERT_EQ(std::system(("/usr/bin/python3 " + (dir / "make.py")).c_str()), 0);
  const std::string convert = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                              "/launch/convert_vgg16.py --from " + (dir / "tv.pth") + " --out " +
                              (dir / "vgg.pth") + " --activation-scale 2";
  ASSERT_EQ(std::system(convert.c_str()), 0);
  const Vgg16 vgg = Vgg16::Load(dir / "vgg.pth");
  EXPECT_FALSE(vgg.is_random());
  EXPECT_EQ(vgg.normalization().input_scale, 1.0);
  EXPECT_NEAR(vgg.normalization().mean[1], 0.456, 1e-6);
  // torchvision's own state dict file (an OrderedDict, classifier too) loads as it is.
  const Vgg16 plain = Vgg16::Load(dir / "tv.pth");
  // Activation scale 2 doubles every activation (ReLU and max-pool are homogeneous).
  const torch::Tensor image = torch::rand({1, 3, 32, 32}) * 255;
  const torch::Tensor a = vgg.Forward(image, {6}).at(6), b = plain.Forward(image, {6}).at(6);
  EXPECT_TRUE(torch::allclose(a, 2 * b, 1e-4, 1e-5));
}

// The loader reads the convention the converter records (its default:
// seed-balanced, at the scale vgg16.h states), infers it for files that record
// none, and says when loss weights in the seed's scale would not balance.
TEST(Vgg16Test, LoaderReadsTheRecordedConvention) {
  TempDir dir;
  testing::WriteFile(dir / "make.py",
                     "import collections, torch, torchvision\n"
                     "f = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs['D'])\n"
                     "torch.save(collections.OrderedDict(('features.' + k, v) for k, v in "
                     "f.state_dict().items()), '" +
                         (dir / "tv.pth") + "')\n");
  ASSERT_EQ(std::system(("/usr/bin/python3 " + (dir / "make.py")).c_str()), 0);
  const std::string convert = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                              "/launch/convert_vgg16.py --from " + (dir / "tv.pth") + " --out ";
  ASSERT_EQ(std::system((convert + (dir / "default.pth") + " >/dev/null").c_str()), 0);
  ASSERT_EQ(std::system((convert + (dir / "one.pth") + " --activation-scale 1 >/dev/null").c_str()),
            0);

  const Vgg16 balanced = Vgg16::Load(dir / "default.pth");
  EXPECT_EQ(balanced.convention().name, "seed-balanced");
  EXPECT_EQ(balanced.convention().activation_scale, kSeedBalancedActivationScale);
  EXPECT_TRUE(balanced.convention().recorded);
  EXPECT_EQ(balanced.SeedBalanceWarning(), "");
  EXPECT_EQ(balanced.DescribeConvention(),
            "seed-balanced: input 0..1 minus mean 0.485/0.456/0.406, divided by std "
            "0.229/0.224/0.225; activations x90 (recorded in the file)");

  const Vgg16 unscaled = Vgg16::Load(dir / "one.pth");
  EXPECT_EQ(unscaled.convention().name, "torchvision");
  EXPECT_TRUE(unscaled.convention().recorded);
  EXPECT_NE(unscaled.SeedBalanceWarning().find("the style term is about 8.1e+03x weaker"),
            std::string::npos)
      << unscaled.SeedBalanceWarning();

  // torchvision's own file records nothing: its input convention says torchvision.
  const Vgg16 plain = Vgg16::Load(dir / "tv.pth");
  EXPECT_EQ(plain.convention().name, "torchvision");
  EXPECT_FALSE(plain.convention().recorded);
  EXPECT_NE(plain.SeedBalanceWarning().find("records no convention"), std::string::npos);

  const Vgg16 random = Vgg16::Load("random:3");
  EXPECT_EQ(random.convention().name, "random");
  EXPECT_EQ(random.SeedBalanceWarning(), "");

  TensorDict bad = testing::VggTestDict();
  bad.emplace_back("stylefleet.convention", torch::ones({2}));
  SaveTensorDict(bad, dir / "bad.pt");
  EXPECT_EQ(LoadError(dir / "bad.pt"),
            dir / "bad.pt: key 'stylefleet.convention' must hold a name as uint8 bytes");

  // A scale that is not a finite positive number is refused; a file named
  // seed-balanced whose scale is not the seed-balanced one is warned about.
  TensorDict infinite = testing::VggTestDict();
  infinite.emplace_back("stylefleet.activation_scale", torch::tensor(INFINITY));
  SaveTensorDict(infinite, dir / "inf.pt");
  EXPECT_EQ(LoadError(dir / "inf.pt"),
            dir / "inf.pt: stylefleet.activation_scale must be a finite number > 0");
  TensorDict misnamed = testing::VggTestDict();
  misnamed.emplace_back("stylefleet.activation_scale", torch::tensor(1.0));
  const std::string name = "seed-balanced";
  misnamed.emplace_back("stylefleet.convention",
                        torch::tensor(std::vector<uint8_t>(name.begin(), name.end())));
  SaveTensorDict(misnamed, dir / "misnamed.pt");
  EXPECT_NE(Vgg16::Load(dir / "misnamed.pt").SeedBalanceWarning(), "");
  EXPECT_NE(std::system(("/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                         "/launch/convert_vgg16.py --from " + (dir / "tv.pth") + " --out " +
                         (dir / "x.pth") + " --activation-scale inf 2>/dev/null")
                            .c_str()),
            0);
}

TEST(TransformerLoadTest, MissingAndMisshapenParametersAreNamed) {
  TransformerNet net;
  TensorDict dict;
  for (const auto& p : net->named_parameters()) dict.emplace_back(p.key(), p.value());
  TensorDict without = dict;
  without.pop_back();
  try {
    LoadTransformerParameters(net, without, "m.pt");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()), "m.pt: model file lacks parameter 'deconv3.conv2d.bias'");
  }
  dict.emplace_back("extra.weight", torch::zeros({1}));
  try {
    LoadTransformerParameters(net, dict, "m.pt");
    FAIL();
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()),
              "m.pt: unexpected key 'extra.weight' (not a TransformerNet parameter)");
  }
}

// A model file's checksum covers every byte of every tensor and every entry's
// name: the last byte of the last parameter changed, or two same-shaped
// parameters whose names were swapped (the bytes in the same order), are
// refused as damage instead of being stylized with.
TEST(ModelFileTest, ChecksumSeesEveryByteAndEveryName) {
  TempDir dir;
  torch::manual_seed(5);
  TransformerNet net;
  TensorDict good;
  for (const auto& [key, tensor] : ModelDict(net, ModelInfo{"job", "style", 64})) {
    good.emplace_back(key, tensor.detach().clone());
  }
  SaveTensorDict(good, dir / "good.pt");
  EXPECT_NO_THROW(LoadTransformer(dir / "good.pt"));
  auto expect_refused = [&](const TensorDict& dict, const std::string& what) {
    SaveTensorDict(dict, dir / "bad.pt");
    try {
      LoadTransformer(dir / "bad.pt");
      ADD_FAILURE() << what << ": the damaged file loaded";
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find("checksum mismatch"), std::string::npos)
          << what << ": " << e.what();
    }
  };
  TensorDict last_byte = good;
  size_t last = 0;
  for (size_t i = 0; i < last_byte.size(); ++i) {
    if (last_byte[i].second.is_floating_point()) last = i;
  }
  torch::Tensor changed = last_byte[last].second.clone();
  auto* bytes = static_cast<uint8_t*>(changed.data_ptr());
  bytes[changed.numel() * changed.element_size() - 1] ^= 0x01;
  last_byte[last].second = changed;
  expect_refused(last_byte, "last byte of " + last_byte[last].first);

  TensorDict renamed = good;
  std::vector<size_t> norm;
  for (size_t i = 0; i < renamed.size(); ++i) {
    if (renamed[i].first == "in1.weight" || renamed[i].first == "in1.bias") norm.push_back(i);
  }
  ASSERT_EQ(norm.size(), 2u);
  std::swap(renamed[norm[0]].first, renamed[norm[1]].first);
  expect_refused(renamed, "in1.weight and in1.bias renamed into each other");
}

// A float64 weight of 1e300 is finite, but infinite as the float32 the
// network holds: it is refused instead of loaded as Inf.
TEST(ModelFileTest, WeightsBeyondFloat32RangeAreRefused) {
  TempDir dir;
  TransformerNet net;
  TensorDict dict;
  for (const auto& p : net->named_parameters()) {
    dict.emplace_back(p.key(), p.value().detach().to(torch::kFloat64));
  }
  dict[0].second.view(-1).narrow(0, 0, 1).fill_(1e300);
  SaveTensorDict(dict, dir / "huge.pt");
  try {
    LoadTransformer(dir / "huge.pt");
    ADD_FAILURE() << "a weight of 1e300 loaded";
  } catch (const DataError& e) {
    EXPECT_EQ(std::string(e.what()),
              (dir / "huge.pt") + ": '" + dict[0].first +
                  "' holds values beyond float32's range (they would become infinite)");
  }
  dict[0].second.view(-1).narrow(0, 0, 1).fill_(0.5);  // float64 within range loads
  SaveTensorDict(dict, dir / "fine.pt");
  EXPECT_NO_THROW(LoadTransformer(dir / "fine.pt"));
}

// export writes the PyTorch example's names; PyTorch loads them strictly into
// its own TransformerNet and reproduces the C++ output.
TEST(ExportTest, PyTorchLoadsTheExportAndMatchesCppInference) {
  TempDir dir;
  torch::manual_seed(3);
  TransformerNet net;
  SaveTensorDict(ModelDict(net, ModelInfo{"job", "style", 64}), dir / "model.pt");
  ExportModel(dir / "model.pt", dir / "export.pth", /*overwrite=*/false);
  const torch::Tensor input = torch::rand({1, 3, 48, 40}) * 255;
  torch::Tensor output;
  {
    torch::NoGradGuard no_grad;
    net->eval();
    output = LoadTransformer(dir / "export.pth")->forward(input);
  }
  SaveTensorDict({{"input", input}, {"output", output}}, dir / "data.pt");
  const std::string command = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                              "/tests/reference/reference.py export " + (dir / "export.pth") + " " +
                              (dir / "data.pt");
  EXPECT_EQ(std::system(command.c_str()), 0) << command;
}

// A per-style export names nothing by default (the PyTorch example's strict
// load refuses other keys); --keep-names keeps the style, job and step, which
// `info`, stylize and python/stylefleet_torch.py --list read back.
TEST(ExportTest, KeepNamesKeepsAPerStyleModelsStyleJobAndStep) {
  TempDir dir;
  torch::manual_seed(3);
  TransformerNet net;
  TensorDict model = ModelDict(net, ModelInfo{"night job", "candy", 64});
  model.emplace_back("stylefleet.step", torch::tensor(int64_t{1200}));
  SaveTensorDict(RecomputeChecksum(model), dir / "model.pt");
  ExportModel(dir / "model.pt", dir / "plain.pth", /*overwrite=*/false);
  for (const auto& [key, value] : LoadTensorDict(dir / "plain.pth")) {
    EXPECT_NE(key.rfind("stylefleet.", 0), 0u) << key;
  }
  ExportModel(dir / "model.pt", dir / "named.pth", /*overwrite=*/false, /*keep_names=*/true);
  const TensorDict named = LoadTensorDict(dir / "named.pth");
  ASSERT_NE(FindTensor(named, "stylefleet.style"), nullptr);
  EXPECT_EQ(TensorToString(*FindTensor(named, "stylefleet.style")), "candy");
  EXPECT_EQ(TensorToString(*FindTensor(named, "stylefleet.job")), "night job");
  EXPECT_EQ(FindTensor(named, "stylefleet.step")->item<int64_t>(), 1200);
  const std::string info = DescribeModel(dir / "named.pth");
  EXPECT_NE(info.find("style: candy\n"), std::string::npos) << info;
  EXPECT_NE(info.find("job: night job\n"), std::string::npos) << info;
  EXPECT_NE(info.find("step: 1200\n"), std::string::npos) << info;
  // The same weights either way.
  const torch::Tensor input = torch::rand({1, 3, 16, 16}) * 255;
  torch::NoGradGuard no_grad;
  EXPECT_TRUE(torch::equal(LoadTransformer(dir / "named.pth")->forward(input),
                           LoadTransformer(dir / "plain.pth")->forward(input)));
  const std::string list = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                           "/python/stylefleet_torch.py " + (dir / "named.pth") + " --list > " +
                           (dir / "list.txt");
  ASSERT_EQ(std::system(list.c_str()), 0) << list;
  std::ifstream listed(dir / "list.txt");
  std::stringstream text;
  text << listed.rdbuf();
  EXPECT_EQ(text.str(), "candy\n");
}

// A shipped photo (569 x 320), as 1 x 3 x H x W in 0..255.
torch::Tensor Photo() {
  return ImageToTensor(
      LoadImageFile(std::string(STYLEFLEET_SOURCE_DIR) + "/configs/data/content/0008.jpg"));
}

// A random transformer whose output spreads over 0..255 like a trained one's
// (a fresh one gives values near 0, which clamping would hide): the last conv
// is rescaled so that `image` comes out with mean 128 and deviation 60.
TransformerNet PhotoRangeTransformer(const torch::Tensor& image) {
  TransformerNet net;
  InitializeTransformer(net, 11);
  torch::NoGradGuard no_grad;
  const torch::Tensor out = net->forward(image);
  const double scale = 60 / out.std().item<double>(), mean = out.mean().item<double>();
  auto params = net->named_parameters();
  params["deconv3.conv2d.weight"].mul_(scale);
  params["deconv3.conv2d.bias"].sub_(mean).mul_(scale).add_(128);
  return net;
}

struct Difference {
  double mean, max;
};
// Between two outputs as written to an image (clamped to 0..255).
Difference PixelDifference(const torch::Tensor& a, const torch::Tensor& b) {
  const torch::Tensor d = (a.clamp(0, 255) - b.clamp(0, 255)).abs();
  return {d.mean().item<double>(), d.max().item<double>()};
}

// The issue's bar: tiled output as untiled within mean 0.5 and max 3 of 255.
// Only float summation order differs, so far less is expected; a misplaced
// tile or per-tile statistics on a photo give tens.
TEST(TiledForwardTest, MatchesOneForwardOnAPhotoSeveralTilesWide) {
  torch::NoGradGuard no_grad;
  const torch::Tensor photo = Photo().slice(2, 0, 200).slice(3, 0, 360);  // multiples of 4
  TransformerNet net = PhotoRangeTransformer(photo);
  const torch::Tensor whole = net->forward(photo);
  ASSERT_GT(whole.clamp(0, 255).std().item<double>(), 40);  // a picture, not a flat image
  // 96: 4 x 3 tiles; 66 (not a multiple of 4): 6 x 4; 64: the smallest the CLI
  // allows; 1000: one tile, the window logic alone.
  for (int64_t tile : {96, 66, 64, 1000}) {
    const torch::Tensor tiled = ForwardInTiles(net, photo, tile);
    ASSERT_EQ(tiled.sizes(), whole.sizes());
    const Difference diff = PixelDifference(tiled, whole);
    std::printf("tile %ld: mean %.2g max %.2g of 255\n", long(tile), diff.mean, diff.max);
    EXPECT_LT(diff.mean, 0.5) << "tile " << tile;
    EXPECT_LT(diff.max, 3) << "tile " << tile;
    EXPECT_LT(diff.max, 0.1) << "tile " << tile << ": more than float rounding";
  }
}

// Thin images (a 5-pixel strip padded to 8), tiles wider than the image in one
// direction, and a batch of two, each image with its own statistics.
TEST(TiledForwardTest, ThinImagesAndBatches) {
  torch::NoGradGuard no_grad;
  const torch::Tensor photo = Photo();
  TransformerNet net = PhotoRangeTransformer(photo.slice(2, 0, 200).slice(3, 0, 360));
  for (const auto& [h, w] : std::vector<std::pair<int64_t, int64_t>>{{8, 300}, {300, 8}, {8, 8}}) {
    const torch::Tensor part = photo.slice(2, 10, 10 + h).slice(3, 20, 20 + w);
    const Difference diff = PixelDifference(ForwardInTiles(net, part, 64), net->forward(part));
    EXPECT_LT(diff.max, 0.1) << h << "x" << w;
  }
  const torch::Tensor batch = torch::cat(
      {photo.slice(2, 0, 96).slice(3, 0, 200), photo.slice(2, 200, 296).slice(3, 0, 200)});
  const Difference diff = PixelDifference(ForwardInTiles(net, batch, 64), net->forward(batch));
  EXPECT_LT(diff.max, 0.1);
}

TEST(TiledForwardTest, RefusesSizesTheNetworkCannotTake) {
  TransformerNet net;
  torch::NoGradGuard no_grad;
  EXPECT_THROW(ForwardInTiles(net, torch::zeros({1, 3, 30, 32}), 64), Error);  // not x4
  EXPECT_THROW(ForwardInTiles(net, torch::zeros({1, 3, 4, 32}), 64), Error);   // under 8
  EXPECT_THROW(ForwardInTiles(net, torch::zeros({1, 3, 32, 32}), 0), Error);
}

}  // namespace
}  // namespace stylefleet
