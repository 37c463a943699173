// The settings each style's checkpoints were trained with, kept next to them
// (<style folder>/settings.json), so that a resume notices a job that changed
// underneath it. Which changes matter comes from the config tables
// (OnResume), not from a list here. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "config/job_config.h"

namespace stylefleet {

/// What `style` of `job` trains with on groups of `group_ranks` ranks: the
/// config's StyleRunSettings plus the group size, which sets the effective
/// batch (batch_size x ranks) and so must match too, and `content_list`
/// (DescribeContentList of the content files; left out when empty): photos
/// added or removed change the epochs' order, safe to continue with but said.
std::vector<Setting> RunSettings(const JobConfig& job, const StyleSpec& style, int group_ranks,
                                 const std::string& content_list);

/// Writes `settings` to <style_dir>/settings.json (replacing it atomically).
/// Throws Error when it cannot.
void RecordRunSettings(const std::string& style_dir, const std::vector<Setting>& settings);

/// One key whose recorded value differs from the current one.
struct SettingChange {
  std::string key;
  std::string recorded;
  std::string now;
  OnResume on_resume = OnResume::kMustMatch;  ///< as the current tables say
};

/// The keys of `now` whose value differs from <style_dir>/settings.json.
/// Keys missing on either side (written by another version) are not compared.
/// Sets `*found` to whether a record exists. Throws Error when it is unreadable.
std::vector<SettingChange> CompareRunSettings(const std::string& style_dir,
                                              const std::vector<Setting>& now, bool* found);

}  // namespace stylefleet
