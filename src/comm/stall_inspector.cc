#include "comm/stall_inspector.h"

#include <algorithm>
#include <atomic>
#include <utility>

#include "comm/world.h"

namespace stylefleet {
namespace {
std::atomic<int64_t> g_stall_warnings{0};
}  // namespace

int64_t CollectiveStallWarnings() { return g_stall_warnings.load(); }

StallInspector::StallInspector(int rank, std::vector<int> world_ranks, StallTimeouts timeouts)
    : rank_(rank),
      world_ranks_(std::move(world_ranks)),
      timeouts_(timeouts),
      announced_(world_ranks_.size(), -1) {}

void StallInspector::set_world_hosts(std::shared_ptr<const std::vector<std::string>> world_hosts) {
  world_hosts_ = std::move(world_hosts);
}

int64_t StallInspector::Start() {
  announced_now_ = false;
  warned_now_ = false;
  return ++sequence_;
}

bool StallInspector::ShouldAnnounce(double waited) {
  if (announced_now_ || !Listening(waited)) return false;
  announced_now_ = true;
  announced_[static_cast<size_t>(rank_)] = sequence_;
  return true;
}

bool StallInspector::Listening(double waited) const { return waited > timeouts_.warn_seconds / 2; }

void StallInspector::Heard(int rank, int64_t sequence) {
  if (rank < 0 || static_cast<size_t>(rank) >= announced_.size()) return;
  int64_t& latest = announced_[static_cast<size_t>(rank)];
  latest = std::max(latest, sequence);
}

std::string StallInspector::Warning(double waited, const std::string& what) {
  if (warned_now_ || waited <= timeouts_.warn_seconds) return "";
  warned_now_ = true;
  g_stall_warnings.fetch_add(1);
  return "rank " + std::to_string(world_ranks_[static_cast<size_t>(rank_)]) + " has waited " +
         std::to_string(static_cast<int>(waited)) + " s in a " + what + " of " +
         std::to_string(world_ranks_.size()) +
         " ranks: a peer is slow, stalled or dead (distributed.stall_warn_seconds); " + Missing();
}

std::string StallInspector::Timeout(double waited, const std::string& what) const {
  if (waited <= timeouts_.timeout_seconds) return "";
  return "rank " + std::to_string(world_ranks_[static_cast<size_t>(rank_)]) + ": " + what + " of " +
         std::to_string(world_ranks_.size()) + " ranks did not complete within " +
         std::to_string(static_cast<int>(timeouts_.timeout_seconds)) +
         " s (distributed.timeout_seconds): a peer rank is stalled or dead, or its host is "
         "lost; " +
         Missing();
}

// "rank 3 (host b) has not reached it": the peers that have not said they
// wait in the current collective, with their hosts.
std::string StallInspector::Missing() const {
  std::string missing;
  int count = 0;
  for (size_t r = 0; r < world_ranks_.size(); ++r) {
    if (static_cast<int>(r) == rank_ || announced_[r] >= sequence_) continue;
    const int world_rank = world_ranks_[r];
    missing += (missing.empty() ? "" : ", ") + std::to_string(world_rank);
    if (world_hosts_ && world_rank >= 0 && static_cast<size_t>(world_rank) < world_hosts_->size()) {
      missing += " (host " + (*world_hosts_)[static_cast<size_t>(world_rank)] + ")";
    }
    ++count;
  }
  if (count == 0) return "every peer reports waiting too";
  return std::string(count == 1 ? "rank " : "ranks ") + missing + (count == 1 ? " has" : " have") +
         " not reached it";
}

}  // namespace stylefleet
