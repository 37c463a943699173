// Checkpoint files of one style: names, listing, pruning. Torch-free.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stylefleet {

/// `<style_dir>/checkpoints/step-00000042.pt`
std::string CheckpointPath(const std::string& style_dir, int64_t step);

/// Checkpoints of a style, newest (highest step) first. Temporary files of an
/// interrupted write are never listed.
std::vector<std::string> ListCheckpoints(const std::string& style_dir);

/// Deletes all but the newest `keep` checkpoints.
void PruneCheckpoints(const std::string& style_dir, int keep);

/// Why `style_dir` cannot be used by (job, style): it belongs to another job
/// or style, or holds files stylefleet did not write. Empty when it can (also
/// when it does not exist yet). Reads only; `check` and `train` share it.
std::string OutputDirConflict(const std::string& style_dir, const std::string& job,
                              const std::string& style);

/// Why the style of a `network` network (conditional or arbitrary: one for
/// all the job's styles) may not write into `style_dir`: the folder holds a
/// per-style network's model.pt, checkpoints or settings.json (the same job
/// trained with `job.network: per_style`), or its owner file says a network
/// of the other kind claimed it; that run's metrics, previews and final
/// images would be replaced. Empty when it may. Reads only.
std::string PerStyleRunConflict(const std::string& style_dir,
                                const std::string& network = "conditional");

/// The reverse: why a per-style run may not write into `style_dir`: its owner
/// file says a conditional or arbitrary network's style claimed it. Empty
/// when it may (also for folders claimed before the owner file recorded
/// this). Reads only.
std::string ConditionalStyleDirConflict(const std::string& style_dir);

/// ClaimOutputDir for the style of a `network` network (conditional or
/// arbitrary): refuses a folder PerStyleRunConflict refuses and records in a
/// new owner file that the folder belongs to that kind's style. Throws Error.
void ClaimConditionalStyleDir(const std::string& style_dir, const std::string& job,
                              const std::string& style, const std::string& network = "conditional");

/// Claims `style_dir` for (job, style): writes a marker (stylefleet.json) on
/// first use; throws Error when the folder already belongs to another job or
/// style, so a run never overwrites someone else's results silently. For a run
/// of a sweep the marker also records `sweep` (the swept style) and `swept`
/// (each swept key and its value, in order), for reports and tools. A new
/// marker of a conditional or arbitrary network's style records that kind
/// (`one_network`: "conditional" or "arbitrary").
void ClaimOutputDir(const std::string& style_dir, const std::string& job, const std::string& style,
                    const std::string& sweep = "",
                    const std::vector<std::pair<std::string, std::string>>& swept = {},
                    const std::string& one_network = "");

}  // namespace stylefleet
