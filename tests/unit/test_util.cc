#include "test_util.h"

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "common/cpu_info.h"
#include "test_paths.h"

namespace stylefleet::testing {
namespace fs = std::filesystem;

TempDir::TempDir() {
  std::string pattern = (fs::temp_directory_path() / "stylefleet_test_XXXXXX").string();
  if (mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void WriteFile(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) throw std::runtime_error("cannot write " + path);
}

RgbImage MakeTestImage(int width, int height, int seed) {
  RgbImage image;
  image.width = width;
  image.height = height;
  image.pixels.resize(static_cast<size_t>(width) * height * 3);
  for (int y = 0; y < height; ++y) {
    for (int x = 0; x < width; ++x) {
      uint8_t* p = &image.pixels[(static_cast<size_t>(y) * width + x) * 3];
      p[0] = static_cast<uint8_t>((x * 255) / std::max(1, width - 1));
      p[1] = static_cast<uint8_t>((y * 255) / std::max(1, height - 1));
      p[2] = static_cast<uint8_t>(((x / 8 + y / 8 + seed) % 2) * 200 + seed * 7 % 50);
    }
  }
  return image;
}

// Child processes compute with this process's BLAS kernels: `train` and
// `bench` would otherwise choose better ones where OpenBLAS mistakes the CPU
// (ChooseOpenBlasCore), and results that tests compare bit for bit with
// in-process training would differ in the last bits.
std::string SameBlasKernels() {
  if (std::getenv("OPENBLAS_CORETYPE") != nullptr) return "";
  const std::string core = OpenBlasCoreName();
  return core.empty() ? "" : "export OPENBLAS_CORETYPE=" + core + "; ";
}

CommandResult RunCommand(const std::string& command) {
  FILE* pipe = popen((SameBlasKernels() + command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot run " + command);
  std::string output;
  std::array<char, 4096> buffer;
  while (size_t n = fread(buffer.data(), 1, buffer.size(), pipe)) output.append(buffer.data(), n);
  const int status = pclose(pipe);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

CommandResult RunReference(const std::string& arguments) {
  return RunCommand("/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR) +
                    "/tests/reference/reference.py " + arguments);
}

JobText::JobText() {
  Set("job", "name", "t").Set("job", "output_dir", "out");
  Set("data", "content_dir", "photos").Set("data", "image_size", "64");
  Set("data", "loader_threads", "1");
  Set("loss_network", "weights", "'random:1'");
  Set("training", "batch_size", "1").Set("training", "epochs", "0");
  Set("training", "max_steps", "1").Set("training", "preview_every_steps", "0");
  Set("monitoring", "listen", "'off'");
}

JobText& JobText::Set(const std::string& section, const std::string& key,
                      const std::string& value) {
  auto s = std::find_if(sections_.begin(), sections_.end(),
                        [&](const auto& entry) { return entry.first == section; });
  if (s == sections_.end()) s = sections_.insert(sections_.end(), {section, {}});
  auto& keys = s->second;
  auto k = std::find_if(keys.begin(), keys.end(), [&](const auto& kv) { return kv.first == key; });
  if (value.empty()) {
    if (k != keys.end()) keys.erase(k);
  } else if (k != keys.end()) {
    k->second = value;
  } else {
    keys.emplace_back(key, value);
  }
  return *this;
}

JobText& JobText::Style(const std::string& keys) {
  styles_.push_back(keys);
  return *this;
}

JobText& JobText::Section(const std::string& yaml) {
  raw_sections_.push_back(yaml);
  return *this;
}

std::string JobText::Text() const {
  std::string text;
  for (const auto& [section, keys] : sections_) {
    if (keys.empty()) continue;
    text += section + ": {";
    for (size_t i = 0; i < keys.size(); ++i) {
      text += (i ? ", " : "") + keys[i].first + ": " + keys[i].second;
    }
    text += "}\n";
  }
  for (const auto& yaml : raw_sections_) text += yaml + (yaml.back() == '\n' ? "" : "\n");
  if (!styles_.empty()) text += "styles:\n";
  for (const auto& style : styles_) text += "  - {" + style + "}\n";
  return text;
}

std::string JobText::Write(const std::string& path) const {
  WriteFile(path, Text());
  return path;
}

void WriteTestImages(const std::string& dir, int count, int width, int height) {
  fs::create_directories(dir);
  for (int i = 0; i < count; ++i) {
    char name[32];
    std::snprintf(name, sizeof(name), "%04d.%s", i, i % 2 == 0 ? "jpg" : "png");
    SaveImageFile(MakeTestImage(width, height, i), dir + "/" + name);
  }
}

}  // namespace stylefleet::testing
