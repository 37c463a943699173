// What a loaded job's keys say beyond their values: which keys the ranks of
// a launch must share, which may change when a style resumes, every key as
// text (what ranks compare and checkpoints record), and the Markdown reference
// of configs/README.md. All derived from the loader's key tables
// (config/job_schema.h), so a new key cannot be left out of any of them.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "config/job_config.h"

namespace stylefleet {

/// Whether the ranks of a launch must hold the same value of a key. Every key's
/// table entry says which; what ranks compare before training (ListSettings,
/// JobFingerprint) is derived from that, so a new key cannot be forgotten.
enum class Agreement {
  /// May differ between ranks without changing what any rank computes or
  /// which collectives it calls (decode threads, the metrics endpoint).
  kPerRank,
  /// Every rank must hold the same value: it decides what is computed or the
  /// order and number of collective calls.
  kEveryRank,
  /// kEveryRank, and styles trained together in one pass (job.styles_at_once)
  /// must share it: it fixes the batches and the step count.
  kPassShape,
};

/// Whether resuming a style from a checkpoint may go on after a key changed.
/// Keys with Agreement::kPerRank never change what is computed and may always
/// change; for the others each table entry says.
enum class OnResume {
  /// The change alters what the model learns (data, losses, optimizer,
  /// seed): a resumed run would mix two setups, so it is refused.
  kMustMatch,
  /// The change only moves the end, the bookkeeping or the way the same
  /// update is computed (max_steps, logging, checkpoints, micro_batches).
  kMayChange,
};

/// One key of a loaded job and its value, as text that round-trips (numbers at
/// full precision, lists as `[a, b]`).
struct Setting {
  std::string key;  ///< `section.key`, or `styles.NAME.key` for a style's keys
  std::string value;
  Agreement agreement = Agreement::kEveryRank;
  OnResume on_resume = OnResume::kMustMatch;
};

/// Every key of `job`, from the same tables the loader reads: the job-wide
/// sections in reference order, then each style's own keys and its training
/// settings (job defaults with its overrides applied).
std::vector<Setting> ListSettings(const JobConfig& job);

/// The settings that shape what `style` of `job` trains, recorded with its
/// checkpoints: every job-wide key except the `training` defaults (the style's
/// own resolved training keys stand for them), then the style's own keys as
/// `styles.NAME.key`. From the same tables as ListSettings.
std::vector<Setting> StyleRunSettings(const JobConfig& job, const StyleSpec& style);

/// A key of the schema, for tools and tests: `section.key` (styles' keys as
/// `styles[].key`), its documented default text and its agreement.
struct KeyInfo {
  std::string key;
  std::string default_text;
  Agreement agreement = Agreement::kEveryRank;
};
std::vector<KeyInfo> ListKeys();

/// True when every training setting of `a` equals that of `b`.
bool SameTraining(const TrainingOptions& a, const TrainingOptions& b);

/// True when two styles may train in one pass: their kPassShape settings agree.
bool CanShareTrainingPass(const TrainingOptions& a, const TrainingOptions& b);

/// Human-readable resolved plan: every job-wide setting, then each style with
/// its image, folder and the training settings it overrides.
std::string DescribeJob(const JobConfig& job);

/// Markdown reference of every key (the body of configs/README.md's key tables).
std::string ConfigReference();

/// Stable fingerprint (FNV-1a) of every setting that all ranks must share
/// (Agreement other than kPerRank), values at full precision.
uint64_t JobFingerprint(const JobConfig& job);

}  // namespace stylefleet
