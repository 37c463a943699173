#include "config/sweeps.h"

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

namespace stylefleet::job_loader {
namespace fs = std::filesystem;

namespace {

// Reads `key: [values]` pairs of a grid or zip mapping; false on a problem.
bool ReadSweepLists(const YAML::Node& map, const std::string& path, Problems& problems,
                    std::set<std::string>& swept_keys,
                    std::vector<std::pair<std::string, YAML::Node>>& lists) {
  if (!map.IsMap() || map.size() == 0) {
    problems.At(map.Mark(), path + ": expected a mapping of training keys to lists of values");
    return false;
  }
  bool ok = true;
  for (auto it = map.begin(); it != map.end(); ++it) {
    if (!it->first.IsScalar()) {
      problems.At(it->first.Mark(), "keys must be plain names");
      ok = false;
      continue;
    }
    const std::string key = it->first.Scalar();
    if (FindField(TrainingFields(), key) == nullptr) {
      problems.At(it->first.Mark(), UnknownKeyMessage(path, key, KeysOf(TrainingFields())) +
                                        " (a sweep varies training keys)");
      ok = false;
      continue;
    }
    if (!swept_keys.insert(key).second) {
      problems.At(it->first.Mark(), path + "." + key + ": '" + key + "' is swept twice");
      ok = false;
      continue;
    }
    const YAML::Node values = it->second;
    if (!values.IsSequence() || values.size() == 0 || values.size() > kMaxSweepValues) {
      problems.At(values.Mark(), path + "." + key + ": expected a list of 1 to " +
                                     std::to_string(kMaxSweepValues) + " values");
      ok = false;
      continue;
    }
    lists.emplace_back(key, values);
  }
  return ok;
}

void CheckSweepValues(Sweep& sweep, Problems& problems);

}  // namespace

namespace {

// A sweep's `zip:` lists as one axis whose points take the lists' values
// together; false (a problem at the list) when the lists differ in length.
// Adds no axis when `ok` is false (an earlier problem) or the lengths differ.
bool AddZipAxis(const std::vector<std::pair<std::string, YAML::Node>>& lists,
                const std::string& where, Problems& problems, bool ok, Sweep* sweep) {
  SweepAxis axis;
  bool same_length = true;
  for (const auto& [name, values] : lists) {
    axis.keys.push_back(name);
    axis.paths.push_back(where + ".zip." + name);
    if (values.size() != lists.front().second.size()) {
      problems.At(values.Mark(), where + ".zip." + name + ": has " + std::to_string(values.size()) +
                                     " values but zip." + lists.front().first + " has " +
                                     std::to_string(lists.front().second.size()) +
                                     "; zipped lists go together value by value, so they "
                                     "must be equally long");
      same_length = false;
    }
  }
  if (!ok || !same_length) return same_length;
  for (size_t i = 0; i < lists.front().second.size(); ++i) {
    std::vector<YAML::Node> point;
    for (const auto& list : lists) point.push_back(list.second[i]);
    axis.points.push_back(point);
  }
  sweep->axes.push_back(axis);
  return true;
}

}  // namespace

Sweep ReadSweep(const YAML::Node& node, const std::string& where, Problems& problems) {
  Sweep sweep;
  sweep.where = where;
  sweep.mark = node.Mark();
  // `sweep:` left empty (or `{}`) in a style: that style is not swept.
  if (node.IsNull() || (node.IsMap() && node.size() == 0)) return sweep;
  if (!node.IsMap()) {
    problems.At(node.Mark(), where + ": expected a mapping with grid, zip and max_runs");
    return sweep;
  }
  std::set<std::string> swept_keys;
  bool ok = true;
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
    if (key == "grid") {
      std::vector<std::pair<std::string, YAML::Node>> lists;
      ok = ReadSweepLists(it->second, where + ".grid", problems, swept_keys, lists) && ok;
      for (const auto& [name, values] : lists) {
        SweepAxis axis;
        axis.keys = {name};
        axis.paths = {where + ".grid." + name};
        for (size_t i = 0; i < values.size(); ++i) axis.points.push_back({values[i]});
        sweep.axes.push_back(axis);
      }
    } else if (key == "zip") {
      std::vector<std::pair<std::string, YAML::Node>> lists;
      ok = ReadSweepLists(it->second, where + ".zip", problems, swept_keys, lists) && ok;
      if (!lists.empty()) ok = AddZipAxis(lists, where, problems, ok, &sweep) && ok;
    } else if (key == "max_runs") {
      Value{it->second, where + ".max_runs", problems, "", it->first.Mark()}.ReadInt(
          &sweep.max_runs, 1, static_cast<long long>(kMaxStyles));
    } else {
      problems.At(it->first.Mark(),
                  UnknownKeyMessage(where, key.empty() ? "?" : key, {"grid", "zip", "max_runs"}));
      ok = false;
    }
  }
  if (!ok) sweep.axes.clear();
  CheckSweepValues(sweep, problems);
  return sweep;
}

namespace {

// A swept value as it appears in run names and folders: the scalar as
// written, a list's items joined by '+'. Empty when it cannot name a folder.
std::string SweptValueText(const YAML::Node& node) {
  std::string text;
  if (node.IsScalar()) {
    text = node.Scalar();
  } else if (node.IsSequence()) {
    for (size_t i = 0; i < node.size(); ++i) {
      if (!node[i].IsScalar()) return "";
      text += (i ? "+" : "") + node[i].Scalar();
    }
  }
  const bool plain = !text.empty() && text.size() <= 64 &&
                     text.find_first_not_of(
                         "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                         "0123456789._+-") == std::string::npos &&
                     text != "." && text != "..";
  return plain ? text : "";
}

// Reads (and names) every value of `sweep` once, when the sweep is read, so
// that a bad value is reported once and a job-wide sweep costs each style only
// its runs. Clears the axes when a value is bad.
void CheckSweepValues(Sweep& sweep, Problems& problems) {
  // Every value is read (and named) once, so that a bad one is reported once.
  bool ok = true;
  std::vector<std::vector<std::string>>& texts = sweep.texts;
  texts.assign(sweep.axes.size(), {});
  for (size_t a = 0; a < sweep.axes.size(); ++a) {
    const SweepAxis& axis = sweep.axes[a];
    for (size_t i = 0; i < axis.points.size(); ++i) {
      std::string text;
      for (size_t k = 0; k < axis.keys.size(); ++k) {
        const YAML::Node& node = axis.points[i][k];
        const std::string path = axis.paths[k] + "[" + std::to_string(i) + "]";
        TrainingOptions scratch;
        Problems read_problems(problems.file());
        FindField(TrainingFields(), axis.keys[k])
            ->read(scratch, Value{node, path, read_problems, ""});
        if (!read_problems.empty()) {
          for (const auto& p : read_problems.list()) problems.Add(p);
          ok = false;
          continue;
        }
        const std::string value = SweptValueText(node);
        if (value.empty()) {
          ok = false;
          problems.At(node.Mark(), path +
                                       ": this value names the run's folder; write it with "
                                       "letters, digits, '.', '_', '+' and '-' only (at most 64)");
        }
        text += (k ? "," : "") + axis.keys[k] + "=" + value;
      }
      texts[a].push_back(text);
    }
  }
  if (!ok) sweep.axes.clear();
}

// Run `r` of the sweep of `style` (the last axis turns fastest): its swept
// values read into its training settings, its name and folder suffixed by them.
StyleSpec SweepRun(const StyleSpec& style, const Sweep& sweep, size_t r, Problems& problems) {
  StyleSpec run = style;
  std::string suffix;
  size_t rest = r;
  std::vector<size_t> index(sweep.axes.size());
  for (size_t a = sweep.axes.size(); a-- > 0;) {
    index[a] = rest % sweep.axes[a].points.size();
    rest /= sweep.axes[a].points.size();
  }
  for (size_t a = 0; a < sweep.axes.size(); ++a) {
    const SweepAxis& axis = sweep.axes[a];
    for (size_t k = 0; k < axis.keys.size(); ++k) {
      const YAML::Node& node = axis.points[index[a]][k];
      FindField(TrainingFields(), axis.keys[k])
          ->read(run.training, Value{node, axis.paths[k], problems, ""});
      run.swept.emplace_back(axis.keys[k], SweptValueText(node));
    }
    suffix += (suffix.empty() ? "" : ",") + sweep.texts[a][index[a]];
  }
  run.sweep = style.name;
  run.name = style.name + "/" + suffix;
  run.output_dir = (fs::path(style.output_dir) / suffix).lexically_normal().string();
  return run;
}

}  // namespace

// Adds `style` to the job: as it is when `sweep` has no axes, else as one run
// per combination (first axis slowest), named STYLE/KEY=VALUE,KEY=VALUE.
void AddStyleRuns(const StyleSpec& style, const Sweep& sweep, JobConfig& job, Problems& problems) {
  if (sweep.axes.empty()) {
    job.styles.push_back(style);
    return;
  }
  size_t runs = 1;
  std::string shape;
  for (const SweepAxis& axis : sweep.axes) {
    runs = std::min(runs * axis.points.size(), kMaxStyles + 1);
    std::string keys;
    for (const auto& key : axis.keys) keys += (keys.empty() ? "" : "+") + key;
    shape += (shape.empty() ? "" : " x ") + std::to_string(axis.points.size()) + " " + keys;
  }
  if (runs > static_cast<size_t>(sweep.max_runs)) {
    problems.At(
        sweep.mark,
        sweep.where + ": the sweep " +
            (sweep.where == "sweep" ? std::string("of every style")
                                    : "of style '" + style.name + "'") +
            " makes " +
            (runs > kMaxStyles ? "more than " + std::to_string(kMaxStyles) : std::to_string(runs)) +
            " runs (" + shape + "), more than max_runs " + std::to_string(sweep.max_runs) +
            "; sweep fewer values, or raise " + sweep.where + ".max_runs");
    return;
  }
  if (job.styles.size() + runs > kMaxStyles) {
    problems.At(sweep.mark, sweep.where + ": the job would have more than " +
                                std::to_string(kMaxStyles) + " styles and sweep runs");
    return;
  }
  std::set<std::string> settings_seen;
  for (size_t r = 0; r < runs; ++r) {
    const StyleSpec run = SweepRun(style, sweep, r, problems);
    std::string settings;
    for (const auto& f : TrainingFields()) settings += f.key + "=" + f.show(run.training) + "\n";
    if (!settings_seen.insert(settings).second) {
      problems.At(sweep.mark, sweep.where + ": run '" + run.name +
                                  "' trains with the same settings as an earlier run of the "
                                  "sweep (a value listed twice, e.g. 50 and 50.0)");
      return;
    }
    job.styles.push_back(run);
  }
}

}  // namespace stylefleet::job_loader
