// How the styles of a job are laid onto the ranks of a launch. Torch-free.
#pragma once

#include <string>
#include <vector>

#include "config/job_config.h"

namespace stylefleet {

/// With S styles on N ranks: `groups` groups of `ranks_per_group` consecutive
/// ranks; group k trains styles k, k + groups, k + 2*groups, ... one after another.
struct StyleSchedule {
  int world = 1;
  int groups = 1;
  int ranks_per_group = 1;
  std::vector<std::vector<int>> styles_of_group;

  int GroupOf(int rank) const { return rank / ranks_per_group; }
  int RankInGroup(int rank) const { return rank % ranks_per_group; }
};

/// Lays `styles` styles onto `world` ranks. `ranks_per_style` 0 picks the
/// largest group count that divides `world` and does not exceed `styles` (no
/// idle group, no idle rank). Throws ConfigError when `ranks_per_style` does
/// not divide `world`.
StyleSchedule PlanStyles(int styles, int world, int ranks_per_style);

/// The passes of one group: `group_styles` (indices into `styles`) in order,
/// cut into runs of up to `styles_at_once` consecutive styles whose
/// pass-shaping settings agree (CanShareTrainingPass); the styles of a pass
/// train together on the same batches. `styles_at_once` 0: consecutive runs of
/// one sweep, up to kAutoStylesAtOnce. What `train` does and `check` prints.
std::vector<std::vector<int>> GroupPasses(const std::vector<const StyleSpec*>& styles,
                                          const std::vector<int>& group_styles, int styles_at_once);

/// The plan in words: which ranks train which style, in which order, and
/// which styles train together (job.styles_at_once). With `rank_hosts` (the
/// host of each rank, schedule.world of them) it also says which host runs
/// which ranks, and each group's hosts.
std::string DescribeSchedule(const JobConfig& job, const StyleSchedule& schedule,
                             const std::vector<std::string>& rank_hosts = {});

/// The host of each rank when Open MPI's mpirun starts `world` ranks from the
/// hostfile at `path` ("NAME [slots=N] [max_slots=M] ..." per line, '#'
/// comments; a host listed again adds its slots): ranks fill each host's slots
/// in file order, as plain mpirun does by default. `ranks_per_host` > 0 stands
/// for every host's slots (launch/mpirun.sh --ranks-per-node K lays ranks out
/// so). `world` 0 means as many ranks as slots. Hosts are named as Open MPI
/// names the node: without the domain, localhost as this machine. Throws
/// ConfigError naming the file and line for an unreadable file, a word that is
/// not Open MPI's, an exclusion (^host), a line without slots= when
/// `ranks_per_host` is 0 (mpirun would count that host's cores, which only that
/// host knows), or more ranks than slots (at most 2^20).
std::vector<std::string> RankHostsFromHostfile(const std::string& path, int world,
                                               int ranks_per_host);

/// "  2 host(s): a (ranks 0-1), b (ranks 2-3)\n": which host runs which ranks,
/// from the host of each rank.
std::string DescribeRankHosts(const std::vector<std::string>& rank_hosts);

/// "0-3, 6, 8-9": rank numbers (ascending) with consecutive runs joined.
std::string DescribeRanks(const std::vector<int>& ranks);

}  // namespace stylefleet
