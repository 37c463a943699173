#include "train/rank_agreement.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/fnv1a.h"
#include "common/log.h"
#include "config/job_settings.h"
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

// "" when `path` holds exactly `text`. A file missing at first is looked for again for a few
// seconds: an NFS client may cache a folder's listing from before the file was written.
std::string ReadProblem(const std::string& path, const std::string& text) {
  for (int attempt = 0;; ++attempt) {
    std::ifstream in(path, std::ios::binary);
    if (in) {
      std::ostringstream read;
      read << in.rdbuf();
      return read.str() == text ? "" : "different content";
    }
    if (attempt == 4) return "missing";
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
}

// `folder` without a trailing separator, so that "/a/out/" and "/a/out" are one folder.
fs::path Normal(const std::string& folder) {
  fs::path path = fs::path(folder).lexically_normal();
  return path.has_filename() || !path.has_parent_path() ? path : path.parent_path();
}

bool Inside(const fs::path& folder, const fs::path& outer) {
  const std::string rel = folder.lexically_relative(outer).string();
  return !rel.empty() && rel.rfind("..", 0) != 0;  // "." when they are one folder
}

// This rank's check file: written on construction (problem() says why not), removed when it
// goes out of scope, also when a collective in between throws.
class CheckFile {
 public:
  CheckFile(fs::path path, const std::string& text) : path_(std::move(path)) {
    const int fd = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
      problem_ = std::strerror(errno);
      return;
    }
    created_ = true;
    const bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
    const int write_errno = errno;
    if (::close(fd) != 0 && written) problem_ = std::strerror(errno);
    if (!written) problem_ = std::strerror(write_errno != 0 ? write_errno : EIO);
  }
  ~CheckFile() {
    std::error_code ignored;
    if (created_) fs::remove(path_, ignored);
  }
  CheckFile(const CheckFile&) = delete;
  CheckFile& operator=(const CheckFile&) = delete;
  const std::string& problem() const { return problem_; }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  bool created_ = false;
  std::string problem_;
};

// What is wrong with one folder ("" when every rank shares it). Collective.
std::string SharedFolderProblem(Communicator& all, const std::string& host,
                                const std::string& nonce, const std::string& folder) {
  const int me = all.rank();
  std::string verdicts_text;
  {
    const CheckFile mine(NearestExistingFolder(folder) /
                             (".stylefleet-shared-check-" + nonce + "-" + std::to_string(me)),
                         CheckFileText(nonce, me, host));
    // Each rank learns every rank's host and where it wrote ("" when it could not).
    const std::vector<std::string> hosts = all.AllGather(host, "shared folder check hosts");
    const std::vector<std::string> placed = all.AllGather(
        mine.problem().empty() ? mine.path().string() : "", "shared folder check files");
    const auto who = [&](int rank) {
      return "rank " + std::to_string(rank) + " (host " + hosts[static_cast<size_t>(rank)] + ")";
    };
    std::string verdict;
    if (!mine.problem().empty()) {
      verdict = who(me) + " cannot write in " + mine.path().parent_path().string() + ": " +
                mine.problem();
    } else if (me != 0 && !placed[0].empty() &&
               !ReadProblem(placed[0], CheckFileText(nonce, 0, hosts[0])).empty()) {
      verdict = who(me) + " does not see the file " + who(0) + " wrote at " + placed[0];
    } else if (me == 0) {
      std::string unseen;
      for (int r = 1; r < all.size(); ++r) {
        const std::string& path = placed[static_cast<size_t>(r)];
        const std::string text = CheckFileText(nonce, r, hosts[static_cast<size_t>(r)]);
        if (!path.empty() && !ReadProblem(path, text).empty()) {
          unseen += (unseen.empty() ? "" : ", ") + who(r);
        }
      }
      if (!unseen.empty()) verdict = who(0) + " does not see the files written by " + unseen;
    }
    // Gathered after every read: no rank removes its file before the others looked.
    for (const std::string& v : all.AllGather(verdict, "shared folder check verdicts")) {
      if (!v.empty()) verdicts_text += (verdicts_text.empty() ? "" : "; ") + v;
    }
  }
  // Every file is gone before any group root claims a folder (an unclaimed one must be empty).
  all.Barrier("shared folder check cleanup");
  if (verdicts_text.empty()) return "";
  return "output folder " + folder + " is not one writable folder on every rank: " + verdicts_text +
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

std::string BytesContentHash(const std::vector<uint8_t>& bytes) {
  // FNV-1a runs byte by byte: one pass over the whole equals FileContentHash's blocks.
  const uint64_t hash = Fnv1a(std::to_string(bytes.size()) + "\n");
  return Hex(
      Fnv1a(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()), hash));
}

JobInputs ReadJobInputs(const JobConfig& job, size_t content_files, std::string content_list_hash,
                        const std::map<std::string, std::string>& style_image_hashes) {
  JobInputs inputs;
  inputs.content_files = content_files;
  inputs.content_list_hash = std::move(content_list_hash);
  std::set<std::string> seen;  // a sweep's runs share their image
  for (const StyleSpec& style : job.styles) {
    if (!seen.insert(style.image).second) continue;
    const auto decoded = style_image_hashes.find(style.image);
    inputs.file_hashes.emplace_back("the style image " + style.image + " (size and bytes, hashed)",
                                    decoded != style_image_hashes.end()
                                        ? decoded->second
                                        : FileContentHash(style.image, false));
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

void CheckRanksHaveDistinctHosts(Communicator& all, const std::string& host, int local_rank) {
  if (all.size() == 1) return;
  const std::vector<std::string> places =
      all.AllGather(std::to_string(local_rank) + " " + host, "host name check");
  std::map<std::string, int> first_rank;
  std::vector<std::string> problems;
  for (int rank = 0; rank < static_cast<int>(places.size()); ++rank) {
    const std::string& place = places[static_cast<size_t>(rank)];
    const auto [seen, fresh] = first_rank.emplace(place, rank);
    if (fresh) continue;
    const size_t space = place.find(' ');
    problems.push_back("ranks " + std::to_string(seen->second) + " and " + std::to_string(rank) +
                       " both run as local rank " + place.substr(0, space) + " on a host named '" +
                       place.substr(space + 1) +
                       "': two machines share a host name; give each its own (logs, metrics "
                       "endpoints and the shared-folder check tell hosts apart by name)");
  }
  if (!problems.empty()) throw ConfigError(problems);
}

void CheckRanksAgreeOnJob(Communicator& all, const JobConfig& job,
                          const std::vector<std::string>& selected_styles,
                          const JobInputs& inputs) {
  // A `train` run compares once (cli_test counts these lines).
  SF_LOG(kDebug) << "comparing the job and its inputs over " << all.size() << " rank(s)";
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
  CheckRanksAgree(
      all,
      {{"the number of content files in " + job.data.content_dir,
        std::to_string(inputs.content_files)},
       {"the content files (relative paths and sizes, hashed)", inputs.content_list_hash}},
      "every rank must see the same content folder (a shared file system, or "
      "identical copies)");
  CheckRanksAgree(all, inputs.file_hashes,
                  "every rank must read the same style images and model files (a shared file "
                  "system, or identical copies)");
}

std::vector<std::string> SharedOutputFolders(const JobConfig& job,
                                             const std::vector<const StyleSpec*>& styles) {
  const fs::path job_dir = Normal(job.output_dir);
  std::vector<fs::path> all;
  for (const StyleSpec* style : styles) {
    all.push_back(Normal(style->output_dir));
    if (style != &job.conditional_run) continue;
    for (const StyleSpec& member : job.styles) all.push_back(Normal(member.output_dir));
  }
  for (fs::path& folder : all) {
    if (Inside(folder, job_dir)) folder = job_dir;
  }
  std::vector<std::string> outermost;
  for (const fs::path& folder : all) {
    bool inside = false;
    for (const fs::path& other : all) inside = inside || (other != folder && Inside(folder, other));
    if (!inside &&
        std::find(outermost.begin(), outermost.end(), folder.string()) == outermost.end()) {
      outermost.push_back(folder.string());
    }
  }
  return outermost;
}

void CheckRanksShareOutputFolders(Communicator& all, const std::string& host, const JobConfig& job,
                                  const std::vector<const StyleSpec*>& styles) {
  if (all.size() == 1) return;
  const std::string nonce =
      all.AllGather(all.rank() == 0 ? MakeNonce() : "", "shared folder check nonce")[0];
  std::vector<std::string> problems;
  const std::vector<std::string> folders = SharedOutputFolders(job, styles);
  for (const std::string& folder : folders) {
    const std::string problem = SharedFolderProblem(all, host, nonce, folder);
    if (!problem.empty()) problems.push_back(problem);
  }
  if (!problems.empty()) throw ConfigError(problems);
  if (all.rank() == 0) {
    for (const std::string& folder : folders) {
      SF_LOG(kInfo) << "output folder " << folder << " is shared by the " << all.size()
                    << " ranks (rank 0 read a file written there by each rank, and each rank "
                       "read rank 0's)";
    }
  }
}

}  // namespace stylefleet
