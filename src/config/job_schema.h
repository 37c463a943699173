// The key tables: one entry per key of the job file (its type, default, doc,
// what ranks must share, whether a resume may change it, how to show and read
// it), the single source of the loader, of configs/README.md and of the
// settings ranks compare; and the lookups that read a mapping against a table.
// Part of the job loader (src/config), not for use outside it.
#pragma once

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

#include "config/job_config.h"
#include "config/job_settings.h"
#include "config/problems.h"
#include "config/yaml_value.h"

namespace stylefleet::job_loader {

constexpr size_t kMaxStyles = 4096;

// A value as text that reads back to the same value: what ranks compare and
// what `check` prints. Doubles at 17 significant digits, so 0.01 and
// 0.0100000001 differ.
std::string ShowValue(const std::string& value);
std::string ShowValue(int value);
std::string ShowValue(int64_t value);
std::string ShowValue(uint64_t value);
std::string ShowValue(bool value);
std::string ShowValue(double value);
std::string ShowValue(const std::vector<std::string>& values);

template <typename Target, typename Member>
std::function<std::string(const Target&)> Show(Member Target::*member) {
  return [member](const Target& target) { return ShowValue(target.*member); };
}

// A name becomes a folder, a log-line label and a JSON string: UTF-8 text
// without control characters (a newline would forge log lines).
bool IsPlainText(const std::string& name);
// Job and style names become folder names under the output root.
bool ValidFolderName(const std::string& name);
// What ValidFolderName asks, for messages.
extern const char kFolderNameRule[];

template <typename Target>
struct Field {
  std::string key;
  std::string type;
  std::string default_text;
  std::string doc;
  Agreement agreement;
  std::function<std::string(const Target&)> show;
  std::function<void(Target&, const Value&)> read;
  /// Whether a resumed style may go on after this key changed (kPerRank keys
  /// always may); kMustMatch unless the entry says otherwise.
  OnResume on_resume = OnResume::kMustMatch;
};

template <typename Target>
using FieldTable = std::vector<Field<Target>>;

// Keys of one entry of `styles:` besides the training overrides.
struct StyleEntry {
  std::string name;
  std::string image;
  std::string output_dir;
};

const FieldTable<JobConfig>& JobFields();
const FieldTable<DataOptions>& DataFields();
const FieldTable<LossNetworkOptions>& LossNetworkFields();
const FieldTable<TrainingOptions>& TrainingFields();
const FieldTable<CheckpointOptions>& CheckpointFields();
const FieldTable<DistributedOptions>& DistributedFields();
const FieldTable<MonitoringOptions>& MonitoringFields();
const FieldTable<StyleEntry>& StyleFields();

// Calls visit(section, table, part) for each job-wide section of a job file
// (job, data, loss_network, training, checkpoint, distributed, monitoring, in
// that order), `part` being that section's part of `job` (const when `job` is):
// the one place that pairs a section's name with its table and its struct.
template <typename Job, typename Visit>
void ForEachSection(Job& job, Visit&& visit) {
  visit("job", JobFields(), job);
  visit("data", DataFields(), job.data);
  visit("loss_network", LossNetworkFields(), job.loss_network);
  visit("training", TrainingFields(), job.training);
  visit("checkpoint", CheckpointFields(), job.checkpoint);
  visit("distributed", DistributedFields(), job.distributed);
  visit("monitoring", MonitoringFields(), job.monitoring);
}

// The sections of a job file, and the keys of a seed-format file (the
// TensorFlow project's conf/*.yml).
const std::vector<std::string>& JobSections();
const std::vector<std::string>& SeedKeys();

// "unknown key 'KEY' in 'SECTION'" with the nearest valid key, or all of them.
std::string UnknownKeyMessage(const std::string& section, const std::string& key,
                              const std::vector<std::string>& valid);

template <typename Target>
std::vector<std::string> KeysOf(const FieldTable<Target>& table) {
  std::vector<std::string> keys;
  for (const auto& f : table) keys.push_back(f.key);
  return keys;
}

template <typename Target>
const Field<Target>* FindField(const FieldTable<Target>& table, const std::string& key) {
  for (const auto& f : table) {
    if (f.key == key) return &f;
  }
  return nullptr;
}

// Reads the keys of `map` that `table` knows into `target`. Keys listed in
// `handled_elsewhere` are skipped (the caller reads them); other keys are
// errors with a suggestion from `suggest_from`.
template <typename Target>
void ReadMap(const YAML::Node& map, const std::string& section, const FieldTable<Target>& table,
             Target& target, Problems& problems, std::set<std::string>* seen_keys = nullptr,
             const std::vector<std::string>& handled_elsewhere = {},
             const std::vector<std::string>& extra_suggestions = {}) {
  std::set<std::string> seen;
  for (auto it = map.begin(); it != map.end(); ++it) {
    const YAML::Node key_node = it->first;
    const YAML::Node value_node = it->second;
    if (!key_node.IsScalar()) {
      problems.At(key_node.Mark(), "keys must be plain names");
      continue;
    }
    const std::string key = key_node.Scalar();
    const std::string path = section.empty() ? key : section + "." + key;
    if (!seen.insert(key).second) {
      problems.At(key_node.Mark(), "duplicate key '" + path + "'");
      continue;
    }
    if (std::find(handled_elsewhere.begin(), handled_elsewhere.end(), key) !=
        handled_elsewhere.end()) {
      continue;
    }
    const Field<Target>* field = FindField(table, key);
    if (field == nullptr) {
      std::vector<std::string> valid = KeysOf(table);
      valid.insert(valid.end(), handled_elsewhere.begin(), handled_elsewhere.end());
      valid.insert(valid.end(), extra_suggestions.begin(), extra_suggestions.end());
      problems.At(key_node.Mark(), UnknownKeyMessage(section, key, valid));
      continue;
    }
    field->read(target, Value{value_node, path, problems, "", key_node.Mark()});
  }
  if (seen_keys != nullptr) seen_keys->insert(seen.begin(), seen.end());
}

}  // namespace stylefleet::job_loader
