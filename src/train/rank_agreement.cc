#include "train/rank_agreement.h"

#include <filesystem>
#include <fstream>
#include <set>

#include "common/fnv1a.h"
#include "data/dataset.h"
#include "runtime/group_ops.h"

namespace stylefleet {
namespace fs = std::filesystem;

namespace {
std::string Hex(uint64_t hash) {
  char text[20];
  std::snprintf(text, sizeof(text), "%016llx", static_cast<unsigned long long>(hash));
  return text;
}
}  // namespace

std::string FileContentHash(const std::string& path, bool sampled) {
  std::error_code ec;
  const auto size = fs::file_size(path, ec);
  std::ifstream in(path, std::ios::binary);
  if (ec || !in) return "missing";
  constexpr uint64_t kBlock = 64 * 1024;
  constexpr uint64_t kBlocks = 16;
  uint64_t hash = Fnv1a(std::to_string(size) + "\n");
  std::string block(kBlock, '\0');
  const bool whole = !sampled || size <= kBlock * kBlocks;
  const uint64_t count = whole ? (size + kBlock - 1) / kBlock : kBlocks;
  for (uint64_t i = 0; i < count; ++i) {
    // Sampled: first and last block and 14 evenly between them.
    const uint64_t at = whole ? i * kBlock : (size - kBlock) * i / (kBlocks - 1);
    in.seekg(static_cast<std::streamoff>(at));
    in.read(block.data(), static_cast<std::streamsize>(std::min(kBlock, size - at)));
    hash = Fnv1a(std::string_view(block.data(), static_cast<size_t>(in.gcount())), hash);
    if (!in) return "unreadable";
  }
  return Hex(hash);
}

JobInputs ReadJobInputs(const JobConfig& job) {
  JobInputs inputs;
  inputs.content_files = ListImageFiles(job.data.content_dir);
  std::set<std::string> seen;  // a sweep's runs share their image
  for (const StyleSpec& style : job.styles) {
    if (!seen.insert(style.image).second) continue;
    inputs.file_hashes.emplace_back("the style image " + style.image + " (size and bytes, hashed)",
                                    FileContentHash(style.image, false));
  }
  if (job.loss_network.weights.rfind("random:", 0) != 0) {
    inputs.file_hashes.emplace_back(
        "the loss network " + job.loss_network.weights + " (size and sampled bytes, hashed)",
        FileContentHash(job.loss_network.weights, true));
  }
  if (!job.base_model.empty()) {
    inputs.file_hashes.emplace_back(
        "job.base_model " + job.base_model + " (size and sampled bytes, hashed)",
        FileContentHash(job.base_model, true));
  }
  return inputs;
}

void CheckRanksAgreeOnJob(Communicator& all, const JobConfig& job,
                          const std::vector<std::string>& selected_styles,
                          const JobInputs& inputs) {
  const std::vector<std::string>& content_files = inputs.content_files;
  std::vector<AgreedItem> items;
  for (const Setting& s : ListSettings(job)) {
    if (s.agreement != Agreement::kPerRank) items.emplace_back(s.key, s.value);
  }
  std::string selection;
  for (const auto& name : selected_styles) selection += (selection.empty() ? "" : ", ") + name;
  items.emplace_back("the styles selected with --style", selection.empty() ? "all" : selection);
  CheckRanksAgree(all, items,
                  "every rank must load the same job file with the same --set, --style and "
                  "--content options");
  CheckRanksAgree(all,
                  {{"the number of content files in " + job.data.content_dir,
                    std::to_string(content_files.size())},
                   {"the content files (relative paths and sizes, hashed)",
                    ContentListHash(job.data.content_dir, content_files)}},
                  "every rank must see the same content folder (a shared file system, or "
                  "identical copies)");
  CheckRanksAgree(all, inputs.file_hashes,
                  "every rank must read the same style images and model files (a shared file "
                  "system, or identical copies)");
}

}  // namespace stylefleet
