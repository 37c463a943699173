#include "train/rank_agreement.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/fnv1a.h"
#include "common/log.h"
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
// The folder itself when it exists, else its nearest existing parent: the check creates nothing.
fs::path NearestExistingFolder(const std::string& folder) {
  fs::path at = fs::path(folder).lexically_normal();
  std::error_code ec;
  while (!at.empty() && !fs::is_directory(at, ec)) at = at.parent_path();
  return at.empty() ? fs::path(".") : at;
}

std::string CheckFileText(const std::string& nonce, int rank, const std::string& host) {
  return "stylefleet shared-folder check " + nonce + " rank " + std::to_string(rank) + " host " +
         host + "\n";
}

// "" when `path` holds exactly `text`.
std::string ReadProblem(const std::string& path, const std::string& text) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return "missing";
  std::ostringstream read;
  read << in.rdbuf();
  return read.str() == text ? "" : "different content";
}

// The output folders of a run: job.output_dir and each style's folder not inside another.
std::vector<std::string> OutputFolders(const JobConfig& job,
                                       const std::vector<const StyleSpec*>& styles) {
  std::vector<std::string> all{fs::path(job.output_dir).lexically_normal().string()};
  for (const StyleSpec* style : styles) {
    all.push_back(fs::path(style->output_dir).lexically_normal().string());
  }
  std::vector<std::string> outermost;
  for (const std::string& folder : all) {
    bool inside = false;
    for (const std::string& other : all) {
      const std::string rel = fs::path(folder).lexically_relative(other).string();
      inside = inside || (other != folder && !rel.empty() && rel.rfind("..", 0) != 0);
    }
    if (!inside && std::find(outermost.begin(), outermost.end(), folder) == outermost.end()) {
      outermost.push_back(folder);
    }
  }
  return outermost;
}

// What is wrong with one folder ("" when every rank shares it). Collective.
std::string SharedFolderProblem(Communicator& all, const std::string& host,
                                const std::string& nonce, const std::string& folder) {
  const int me = all.rank();
  const fs::path mine = NearestExistingFolder(folder) /
                        (".stylefleet-shared-check-" + nonce + "-" + std::to_string(me));
  std::string write_problem;
  {
    errno = 0;
    std::ofstream out(mine, std::ios::binary | std::ios::trunc);
    out << CheckFileText(nonce, me, host);
    out.close();
    if (!out) write_problem = std::strerror(errno != 0 ? errno : EIO);
  }
  // Each rank learns every rank's host and where it wrote ("" when it could not).
  const std::vector<std::string> hosts = all.AllGather(host, "shared folder check hosts");
  const std::vector<std::string> placed =
      all.AllGather(write_problem.empty() ? mine.string() : "", "shared folder check files");
  const auto who = [&](int rank) {
    return "rank " + std::to_string(rank) + " (host " + hosts[static_cast<size_t>(rank)] + ")";
  };
  std::string verdict;
  if (!write_problem.empty()) {
    verdict = who(me) + " cannot write in " + mine.parent_path().string() + ": " + write_problem;
  } else if (me != 0 && !placed[0].empty() &&
             !ReadProblem(placed[0], CheckFileText(nonce, 0, hosts[0])).empty()) {
    verdict = who(me) + " does not see the file " + who(0) + " wrote at " + placed[0];
  } else if (me == 0) {
    std::string unseen;
    for (int r = 1; r < all.size(); ++r) {
      const std::string& path = placed[static_cast<size_t>(r)];
      if (path.empty() ||
          ReadProblem(path, CheckFileText(nonce, r, hosts[static_cast<size_t>(r)])).empty())
        continue;
      unseen += (unseen.empty() ? "" : ", ") + who(r);
    }
    if (!unseen.empty()) verdict = who(0) + " does not see the files written by " + unseen;
  }
  // Gathered after every read: no rank removes its file before the others looked.
  const std::vector<std::string> verdicts = all.AllGather(verdict, "shared folder check verdicts");
  std::error_code ignored;
  if (write_problem.empty()) fs::remove(mine, ignored);
  std::string found;
  for (const std::string& v : verdicts) {
    if (!v.empty()) found += (found.empty() ? "" : "; ") + v;
  }
  if (found.empty()) return "";
  return "output folder " + folder + " is not one writable folder on every rank: " + found +
         ". Every rank must see the output folder at the same path on a shared file system "
         "(group roots on every host write checkpoints and models there) and be able to write it";
}

std::string MakeNonce() {
  std::random_device device;
  const auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  const std::string seed = std::to_string(device()) + std::to_string(device()) + " " +
                           std::to_string(now) + " " + std::to_string(::getpid());
  return Hex(Fnv1a(seed));
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

void CheckRanksShareOutputFolders(Communicator& all, const std::string& host, const JobConfig& job,
                                  const std::vector<const StyleSpec*>& styles) {
  if (all.size() == 1) return;
  const std::string nonce =
      all.AllGather(all.rank() == 0 ? MakeNonce() : "", "shared folder check nonce")[0];
  std::vector<std::string> problems;
  const std::vector<std::string> folders = OutputFolders(job, styles);
  for (const std::string& folder : folders) {
    const std::string problem = SharedFolderProblem(all, host, nonce, folder);
    if (!problem.empty()) problems.push_back(problem);
  }
  if (!problems.empty()) throw ConfigError(problems);
  if (all.rank() == 0) {
    for (const std::string& folder : folders) {
      SF_LOG(kInfo) << "output folder " << folder << " is shared by the " << all.size()
                    << " ranks (each wrote a file there that the others read)";
    }
  }
}

}  // namespace stylefleet
