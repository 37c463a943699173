// Where a stylize run writes each image: folder trees mirrored, nothing read
// from the output folder, no output file claimed by two inputs, existing
// files kept unless asked.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>

#include "commands/commands.h"
#include "common/error.h"
#include "data/dataset.h"
#include "data/image.h"

namespace stylefleet {
namespace fs = std::filesystem;

namespace {

// "out/" -> "out": a trailing separator leaves an empty last element that
// would defeat the element-wise comparisons below.
fs::path WithoutTrailingSeparator(fs::path path) {
  while (path.has_relative_path() && path.filename().empty()) path = path.parent_path();
  return path;
}

// The absolute path with symlinks, "." and ".." resolved as far as it
// exists, so that two spellings of one file or folder compare equal.
fs::path Resolved(const std::string& path) {
  std::error_code ec;
  const fs::path absolute = fs::absolute(path, ec);
  if (ec) return WithoutTrailingSeparator(fs::path(path).lexically_normal());
  fs::path resolved = fs::weakly_canonical(absolute, ec);
  if (ec) resolved = absolute.lexically_normal();
  return WithoutTrailingSeparator(resolved);
}

bool IsInside(const fs::path& path, const fs::path& folder) {
  return std::mismatch(folder.begin(), folder.end(), path.begin(), path.end()).first ==
         folder.end();
}

// Where `file`, found by listing `folder`, sits below it ("sub/a.jpg").
fs::path RelativeTo(const std::string& file, const std::string& folder) {
  const fs::path base = WithoutTrailingSeparator(fs::path(folder).lexically_normal());
  const fs::path relative = fs::path(file).lexically_normal().lexically_relative(base);
  if (relative.empty() || *relative.begin() == "..") return fs::path(file).filename();
  return relative;
}

std::string JoinNames(const std::vector<std::string>& items) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == items.size() ? " and " : ", ") + items[i];
  }
  return out;
}

}  // namespace

std::string DescribeSkip(const SkippedImage& skipped) {
  switch (skipped.reason) {
    case SkipReason::kInsideOutput:
      return "skipped " + skipped.input + ": it is inside the output folder";
    case SkipReason::kOutputExists:
      return "skipped " + skipped.input + ": " + skipped.output +
             " exists (--overwrite replaces it)";
    case SkipReason::kRepeatedInput:
      return "skipped " + skipped.input + ": the same file is already an input";
  }
  return "skipped " + skipped.input;
}

namespace {

// Without --overwrite: the targets whose output exists (as anything, a link
// included) move to the skipped.
void SkipExistingOutputs(StylizePlan* plan) {
  std::vector<StylizeTarget> kept;
  for (StylizeTarget& target : plan->targets) {
    std::error_code ec;
    if (fs::exists(fs::symlink_status(target.output, ec))) {
      plan->skipped.push_back({target.input, target.output, SkipReason::kOutputExists});
    } else {
      kept.push_back(std::move(target));
    }
  }
  plan->targets = std::move(kept);
}

}  // namespace

StylizePlan PlanStylize(const StylizeOptions& options) {
  const std::string format = CanonicalImageFormat(options.format);
  if (format.empty()) {
    throw ConfigError({"--format: expected jpg or png, got '" + options.format + "'"});
  }
  const fs::path output_dir = WithoutTrailingSeparator(options.output_dir);
  const fs::path resolved_output = Resolved(options.output_dir);
  StylizePlan plan;
  std::set<fs::path> inputs_seen;                        // resolved
  std::map<fs::path, std::vector<std::string>> writers;  // output path -> its inputs
  const auto add = [&](const std::string& file, fs::path relative) {
    const fs::path resolved = Resolved(file);
    if (IsInside(resolved, resolved_output)) {
      plan.skipped.push_back({file, "", SkipReason::kInsideOutput});
      return;
    }
    if (!inputs_seen.insert(resolved).second) {
      plan.skipped.push_back({file, "", SkipReason::kRepeatedInput});
      return;
    }
    const fs::path output = (output_dir / relative.replace_extension("." + format));
    std::vector<std::string>& claimed = writers[output.lexically_normal()];
    claimed.push_back(file);
    if (claimed.size() == 1) plan.targets.push_back({file, output.string()});
  };
  for (const std::string& input : options.inputs) {
    std::error_code ec;
    if (fs::is_directory(input, ec)) {
      for (const std::string& file : ListImageFiles(input)) add(file, RelativeTo(file, input));
    } else {
      add(input, fs::path(input).filename());
    }
  }

  // Two inputs on one output file: refused as a whole (the user decides which
  // one they meant), before any image is written.
  std::vector<std::string> problems;
  for (const auto& [output, inputs] : writers) {
    if (inputs.size() > 1) {
      problems.push_back("stylize: " + output.string() + " would be written from each of " +
                         JoinNames(inputs) +
                         "; rename one of them or stylize them in separate runs");
    } else if (inputs_seen.count(Resolved(output.string())) > 0) {
      problems.push_back("stylize: " + output.string() + " is the input image " + inputs[0] +
                         " itself (through a link); choose another --output");
    }
  }
  if (!problems.empty()) throw ConfigError(problems);

  if (!options.overwrite) SkipExistingOutputs(&plan);
  return plan;
}

}  // namespace stylefleet
