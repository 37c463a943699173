#include "config/job_settings.h"

#include <cstdio>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "common/fnv1a.h"
#include "config/job_schema.h"

namespace stylefleet {
namespace fs = std::filesystem;
using namespace job_loader;  // NOLINT: the tables are the settings' only source

namespace {
// The "ranks" column of the reference: what every rank of a launch must share.
const char* AgreementText(Agreement agreement) {
  switch (agreement) {
    case Agreement::kPerRank:
      return "may differ";
    case Agreement::kEveryRank:
      return "same on all";
    case Agreement::kPassShape:
      return "same on all; styles trained together share it";
  }
  return "";
}

// The "resume" column: whether a style resumes after the key changed.
template <typename Target>
OnResume EffectiveOnResume(const Field<Target>& f) {
  return f.agreement == Agreement::kPerRank ? OnResume::kMayChange : f.on_resume;
}

template <typename Target>
void AppendTable(std::ostringstream& out, const std::string& title, const FieldTable<Target>& t) {
  out << "### `" << title
      << "`\n\n| key | type | default | ranks | resume | meaning |\n|---|---|---|---|---|---|\n";
  for (const auto& f : t) {
    out << "| `" << f.key << "` | " << f.type << " | " << f.default_text << " | "
        << AgreementText(f.agreement) << " | "
        << (EffectiveOnResume(f) == OnResume::kMustMatch ? "must match" : "may change") << " | "
        << f.doc << " |\n";
  }
  out << "\n";
}
}  // namespace

std::string ConfigReference() {
  std::ostringstream out;
  const JobConfig defaults;
  ForEachSection(defaults, [&](const char* section, const auto& table, const auto&) {
    AppendTable(out, section, table);
  });
  out << "### `styles` (a list; each entry a mapping, or the path of a seed-style file)\n\n"
         "Each mapping takes these keys, plus any key of `training` to override the job's "
         "default for this style. Instead of `image`, `name` and `output_dir`, a mapping may "
         "give `folder: DIR`: each image file directly in DIR (.jpg, .jpeg, .png, .bmp, .tga, "
         ".gif; sub-folders are not read), in file-name order, becomes one style named after "
         "its file, with the mapping's training keys and `sweep`: the folder is listed when the "
         "job is read, as if its styles were written out in the job.\n\n";
  AppendTable(out, "styles[]", StyleFields());
  return out.str();
}

namespace {

// Appends `prefix + key` and its value for every key of `table`.
template <typename Target>
void AppendSettings(const std::string& prefix, const FieldTable<Target>& table,
                    const Target& target, std::vector<Setting>& out) {
  for (const auto& f : table) {
    out.push_back({prefix + f.key, f.show(target), f.agreement, EffectiveOnResume(f)});
  }
}

template <typename Target>
void AppendKeys(const std::string& prefix, const FieldTable<Target>& table,
                std::vector<KeyInfo>& out) {
  for (const auto& f : table) out.push_back({prefix + f.key, f.default_text, f.agreement});
}

// True when every key of `table` for which `selected` holds shows the same value.
template <typename Target, typename Predicate>
bool SameValues(const FieldTable<Target>& table, const Target& a, const Target& b,
                Predicate selected) {
  for (const auto& f : table) {
    if (selected(f) && f.show(a) != f.show(b)) return false;
  }
  return true;
}

}  // namespace

std::vector<Setting> ListSettings(const JobConfig& job) {
  std::vector<Setting> out;
  ForEachSection(job, [&](const char* section, const auto& table, const auto& part) {
    AppendSettings(section + std::string("."), table, part, out);
  });
  for (const auto& style : job.styles) {
    const std::string prefix = "styles." + style.name + ".";
    AppendSettings(prefix, StyleFields(), StyleEntry{style.name, style.image, style.output_dir},
                   out);
    AppendSettings(prefix, TrainingFields(), style.training, out);
  }
  return out;
}

std::vector<Setting> StyleRunSettings(const JobConfig& job, const StyleSpec& style) {
  std::vector<Setting> out;
  ForEachSection(job, [&](const char* section, const auto& table, const auto& part) {
    // The job's training defaults are not this run's: its own values follow.
    if (std::string(section) != "training") {
      AppendSettings(section + std::string("."), table, part, out);
    }
  });
  const std::string prefix = "styles." + style.name + ".";
  AppendSettings(prefix, StyleFields(), StyleEntry{style.name, style.image, style.output_dir}, out);
  AppendSettings(prefix, TrainingFields(), style.training, out);
  return out;
}

std::vector<KeyInfo> ListKeys() {
  std::vector<KeyInfo> out;
  const JobConfig defaults;
  ForEachSection(defaults, [&](const char* section, const auto& table, const auto&) {
    AppendKeys(section + std::string("."), table, out);
  });
  AppendKeys("styles[].", StyleFields(), out);
  return out;
}

bool SameTraining(const TrainingOptions& a, const TrainingOptions& b) {
  return SameValues(TrainingFields(), a, b, [](const auto&) { return true; });
}

bool CanShareTrainingPass(const TrainingOptions& a, const TrainingOptions& b) {
  return SameValues(TrainingFields(), a, b,
                    [](const auto& f) { return f.agreement == Agreement::kPassShape; });
}

std::string DescribeJob(const JobConfig& job) {
  std::ostringstream out;
  out << "job " << job.name << " (" << job.source_file
      << (job.seed_format ? ", seed-style file" : "") << ")\n";
  const std::vector<Setting> settings = ListSettings(job);
  for (const auto& s : settings) {
    if (s.key.rfind("styles.", 0) != 0) out << "  " << s.key << ": " << s.value << "\n";
  }
  std::vector<std::string> sweeps;
  for (const auto& style : job.styles) {
    if (!style.sweep.empty() &&
        std::find(sweeps.begin(), sweeps.end(), style.sweep) == sweeps.end())
      sweeps.push_back(style.sweep);
  }
  for (const auto& sweep : sweeps) {
    std::vector<std::string> runs, keys;
    for (const auto& style : job.styles) {
      if (style.sweep != sweep) continue;
      runs.push_back(style.name);
      if (keys.empty())
        for (const auto& pair : style.swept) keys.push_back(pair.first);
    }
    out << "  sweep " << sweep << ": " << runs.size() << " run(s) over " << ShowValue(keys) << "\n";
    for (const auto& run : runs) out << "    " << run << "\n";
  }
  out << "  styles (" << job.styles.size() << "):\n";
  std::vector<Setting> defaults;
  AppendSettings("", TrainingFields(), job.training, defaults);
  for (const auto& style : job.styles) {
    std::vector<Setting> own;
    AppendSettings("", StyleFields(), StyleEntry{style.name, style.image, style.output_dir}, own);
    out << "  - " << style.name << "\n";
    for (size_t i = 1; i < own.size(); ++i) {
      out << "      " << own[i].key << ": " << own[i].value << "\n";
    }
    std::vector<Setting> training;
    AppendSettings("", TrainingFields(), style.training, training);
    for (size_t i = 0; i < training.size(); ++i) {
      if (training[i].value != defaults[i].value) {
        out << "      " << training[i].key << ": " << training[i].value << " (overrides "
            << defaults[i].value << ")\n";
      }
    }
  }
  return out.str();
}

uint64_t JobFingerprint(const JobConfig& job) {
  uint64_t hash = Fnv1a("");
  for (const auto& s : ListSettings(job)) {
    if (s.agreement != Agreement::kPerRank) hash = Fnv1a(s.key + "=" + s.value + "\n", hash);
  }
  return hash;
}

}  // namespace stylefleet
