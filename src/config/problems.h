// Problems found while loading a job, each with its position, so that a user
// sees all of them in one run; and where the values that cross-field rules
// name came from.
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <initializer_list>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"

namespace stylefleet::job_loader {

constexpr size_t kMaxProblems = 100;

class Problems {
 public:
  explicit Problems(std::string file) : file_(std::move(file)) {}

  void At(const YAML::Mark& mark, const std::string& message) { Add(Where(mark) + message); }
  // "file:line:column: ", or "file: " for a null mark.
  std::string Where(const YAML::Mark& mark) const {
    if (mark.is_null()) return file_ + ": ";
    return file_ + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1) +
           ": ";
  }
  void Add(const std::string& formatted) {
    // A job-wide sweep is checked for each style; its problems are said once.
    if (std::find(list_.begin(), list_.end(), formatted) != list_.end()) return;
    if (list_.size() < kMaxProblems)
      list_.push_back(formatted);
    else
      truncated_ = true;
  }
  const std::string& file() const { return file_; }
  void set_file(const std::string& file) { file_ = file; }
  // A value that could not be read keeps its default, so rules across keys
  // that involve it would report the default, not what was written.
  void MarkUnread(const std::string& path) { unread_.insert(path.substr(path.rfind('.') + 1)); }
  bool AnyUnread(std::initializer_list<const char*> keys) const {
    return std::any_of(keys.begin(), keys.end(), [&](const char* k) { return unread_.count(k); });
  }
  bool empty() const { return list_.empty(); }
  size_t size() const { return list_.size(); }
  const std::vector<std::string>& list() const { return list_; }
  void ThrowIfAny() {
    if (list_.empty()) return;
    if (truncated_)
      list_.push_back(file_ + ": too many problems, only the first " +
                      std::to_string(kMaxProblems) + " are shown");
    throw ConfigError(list_);
  }

 private:
  std::string file_;
  std::vector<std::string> list_;
  bool truncated_ = false;
  std::set<std::string> unread_;  // last components of the paths of values not read
};

// Where a job value came from, for cross-field messages.
struct Origins {
  YAML::Mark content_dir, weights, output_dir;
  /// Where data.content_dir came from when not from the file: "command line
  /// (--content)" or "command line (--set data.content_dir=...)".
  std::string content_dir_given;
  std::vector<YAML::Mark> validation_images;  ///< one per entry; empty from the command line
};

// "file:line:column: " of data.content_dir, or the command-line option that set it.
inline std::string ContentDirWhere(const Origins& origins, const Problems& problems) {
  return origins.content_dir_given.empty() ? problems.Where(origins.content_dir)
                                           : origins.content_dir_given + ": ";
}

}  // namespace stylefleet::job_loader
