#include "config/overrides.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "common/fnv1a.h"
#include "common/utf8.h"
#include "common/vgg_layers.h"
#include "config/job_schema.h"
#include "config/paths.h"

namespace stylefleet::job_loader {
namespace fs = std::filesystem;

namespace {

bool ParseOverrideValue(const std::string& text, const std::string& where, Override& o,
                        Problems& problems) {
  try {
    o.value = YAML::Load(text);
    return true;
  } catch (const YAML::Exception& e) {
    problems.Add(where + "value is not valid YAML: " + e.msg);
    return false;
  }
}

}  // namespace

std::vector<Override> ParseOverrides(const std::vector<std::string>& texts, Problems& problems) {
  std::vector<Override> out;
  for (const auto& text : texts) {
    const auto eq = text.find('=');
    const std::string where = "command line (--set " + text + "): ";
    if (eq == std::string::npos || eq == 0) {
      problems.Add(where + "expected section.key=value");
      continue;
    }
    Override o;
    o.text = text;
    std::stringstream keys(text.substr(0, eq));
    std::string part;
    while (std::getline(keys, part, '.')) o.path.push_back(part);
    if (o.path.size() < 2) {
      problems.Add(where + "expected section.key=value, e.g. training.batch_size=8");
      continue;
    }
    // A style's name may hold '.' and '=' (sweep runs): styles.NAME.key=value
    // is split once the job's names are known (ApplyStyleOverrides).
    if (o.path[0] != "styles" && !ParseOverrideValue(text.substr(eq + 1), where, o, problems)) {
      continue;
    }
    out.push_back(o);
  }
  return out;
}

namespace {

// `styles.NAME.key=value` with NAME the longest style, run or sweep name of
// `job` that fits; false when none does.
bool SplitStyleOverride(const Override& o, const JobConfig& job, Override& split,
                        Problems& problems) {
  const std::string rest = o.text.substr(std::string("styles.").size());
  std::string name;
  for (const auto& style : job.styles) {
    for (const std::string* candidate : {&style.name, &style.sweep}) {
      if (!candidate->empty() && candidate->size() > name.size() &&
          rest.compare(0, candidate->size() + 1, *candidate + ".") == 0) {
        name = *candidate;
      }
    }
  }
  if (name.empty()) return false;
  const std::string tail = rest.substr(name.size() + 1);
  const size_t eq = tail.find('=');
  split = o;
  split.path = {"styles", name, eq == std::string::npos ? tail : tail.substr(0, eq)};
  const std::string where = "command line (--set " + o.text + "): ";
  if (eq == std::string::npos || eq == 0 || tail.substr(0, eq).find('.') != std::string::npos) {
    problems.Add(where + "expected styles.NAME.key=value");
    split.path.clear();
    return true;
  }
  if (!ParseOverrideValue(tail.substr(eq + 1), where, split, problems)) split.path.clear();
  return true;
}

template <typename Target>
bool ApplyOverride(const Override& o, const std::string& section, const FieldTable<Target>& table,
                   Target& target, Problems& problems) {
  const std::string& key = o.path.back();
  const Field<Target>* field = FindField(table, key);
  if (field == nullptr) {
    problems.Add("command line (--set " + o.text +
                 "): " + UnknownKeyMessage(section, key, KeysOf(table)));
    return false;
  }
  field->read(target, Value{o.value, section + "." + key, problems, o.text});
  return true;
}

}  // namespace

// Job-level overrides (every section but styles).
void ApplyJobOverrides(const std::vector<Override>& overrides, JobConfig& job, Origins& origins,
                       const fs::path& cwd, Problems& problems) {
  for (const auto& o : overrides) {
    const std::string& section = o.path[0];
    if (section == "styles") continue;
    const std::string where = "command line (--set " + o.text + "): ";
    if (section == "sweep") {  // any depth: sweep.max_runs, sweep.grid.style_weight, ...
      problems.Add(where +
                   "the sweep section is set in the job file only (its lists do not fit "
                   "a command line); edit the file, or pass --set styles.NAME.KEY=VALUE "
                   "for one value");
      continue;
    }
    if (o.path.size() != 2) {
      problems.Add(where + "expected section.key=value");
      continue;
    }
    const std::string& key = o.path[1];
    bool known = false;
    ForEachSection(job, [&](const char* name, const auto& table, auto& part) {
      if (section != name) return;
      ApplyOverride(o, section, table, part, problems);
      known = true;
    });
    if (!known) {
      problems.Add(where + UnknownKeyMessage("", section, JobSections()));
      continue;
    }
    // A path given on the command line is relative to the working folder.
    if (section == "job") {
      if (key == "output_dir") {
        job.output_dir = ResolvePath(job.output_dir, cwd);
        origins.output_dir = YAML::Mark::null_mark();
      }
      if (key == "base_model" && !job.base_model.empty())
        job.base_model = ResolvePath(job.base_model, cwd);
      if (key == "held_out_styles") ResolvePathList(job.held_out_styles, cwd);
    } else if (section == "data") {
      if (key == "content_dir") {
        job.data.content_dir = ResolvePath(job.data.content_dir, cwd);
        origins.content_dir = YAML::Mark::null_mark();
        origins.content_dir_given = "command line (--set " + o.text + ")";
      }
      if (key == "validation_images") {
        ResolvePathList(job.data.validation_images, cwd);
        origins.validation_images.clear();
      }
    } else if (section == "loss_network" && key == "weights") {
      job.loss_network.weights = ResolvePath(job.loss_network.weights, cwd);
      origins.weights = YAML::Mark::null_mark();
    }
  }
}

// `styles.NAME.key=value`: NAME is a style, a run of a sweep (names may hold
// dots), or a swept style, which changes every run of its sweep.
void ApplyStyleOverrides(const std::vector<Override>& overrides, JobConfig& job,
                         const fs::path& cwd, Problems& problems) {
  for (const auto& given : overrides) {
    if (given.path[0] != "styles") continue;
    const std::string where = "command line (--set " + given.text + "): ";
    Override o;
    if (!SplitStyleOverride(given, job, o, problems)) {
      const bool run_name = given.text.substr(0, given.text.find('=')).find('/') !=
                            std::string::npos;  // NAME=VALUE parts: the split is not known
      std::string names;
      for (const auto& s : job.styles) names += (names.empty() ? "" : ", ") + s.name;
      if (given.path.size() < 3 && !run_name) {
        problems.Add(where + "expected styles.NAME.key=value");
      } else if (given.path.size() < 3) {
        problems.Add(where +
                     "no style or sweep run of that name; expected styles.NAME.key=value with "
                     "NAME one of " +
                     names);
      } else {
        problems.Add(where + "no style named '" + given.path[1] + "'; styles are " + names);
      }
      continue;
    }
    if (o.path.empty()) continue;  // reported
    const std::string& name = o.path[1];
    const std::string& key = o.path[2];
    std::vector<StyleSpec*> targets;
    for (auto& s : job.styles) {
      if (s.name == name || s.sweep == name) targets.push_back(&s);
    }
    if (key == "name") {
      problems.Add(where + "a style cannot be renamed from the command line");
      continue;
    }
    for (StyleSpec* style : targets) {
      const bool swept = std::any_of(style->swept.begin(), style->swept.end(),
                                     [&](const auto& pair) { return pair.first == key; });
      if (swept) {
        problems.Add(where + "'" + key + "' is swept in style '" + style->sweep +
                     "'; change its values in the job file's sweep");
        break;
      }
      if (key == "image" || key == "output_dir") {
        StyleEntry entry{style->name, style->image, style->output_dir};
        ApplyOverride(o, "styles." + name, StyleFields(), entry, problems);
        style->image = ResolvePath(entry.image, cwd);
        style->output_dir = ResolvePath(entry.output_dir, cwd);
        // A whole sweep moves: each run keeps its own folder below the new one.
        if (key == "output_dir" && style->sweep == name && style->name != name) {
          style->output_dir = (fs::path(style->output_dir) / style->name.substr(name.size() + 1))
                                  .lexically_normal()
                                  .string();
        }
      } else {
        ApplyOverride(o, "styles." + name, TrainingFields(), style->training, problems);
      }
    }
  }
}

}  // namespace stylefleet::job_loader
