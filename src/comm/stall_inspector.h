// Watching a communicator's collectives for peers that do not arrive, apart
// from how a backend waits and how its notices travel (the MPI backend polls
// its requests and sends the notices on a communicator of their own).
//
// Every rank numbers its collectives in the order it calls them, the same on
// every rank. A rank that has waited half the warning time tells its peers
// which collective it waits in; at the warning time, the peers whose latest
// notice is older than that collective are the ones that have not reached it,
// and the warning names them (with their hosts when known). Fast collectives
// send nothing. Torch-free and MPI-free.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace stylefleet {

struct StallTimeouts {
  double warn_seconds = 60;      ///< distributed.stall_warn_seconds
  double timeout_seconds = 600;  ///< distributed.timeout_seconds
};

/// One communicator's view; used by its own thread only.
class StallInspector {
 public:
  /// This process is rank `rank` of a communicator whose rank r is world rank
  /// world_ranks[r].
  StallInspector(int rank, std::vector<int> world_ranks, StallTimeouts timeouts);

  /// The host of each world rank, for naming the peers that have not arrived.
  void set_world_hosts(std::shared_ptr<const std::vector<std::string>> world_hosts);

  /// A collective starts: its number (1, 2, ...).
  int64_t Start();
  /// True once per collective, when it has waited past half the warning
  /// time: tell the peers now that this rank waits in collective Start gave.
  bool ShouldAnnounce(double waited);
  /// Whether the peers' notices matter yet (read them, and pass each to Heard).
  bool Listening(double waited) const;
  /// Peer `rank` of the communicator said it waits in collective `sequence`
  /// (notices may arrive late or out of order: the newest counts).
  void Heard(int rank, int64_t sequence);
  /// Once per collective, when it has waited past the warning time: the
  /// warning to log, naming the peers that have not reached it (counted in
  /// CollectiveStallWarnings, comm/world.h); empty otherwise.
  std::string Warning(double waited, const std::string& what);
  /// When the collective has waited past the timeout: why the wait ends (the
  /// caller cancels it and throws); empty otherwise.
  std::string Timeout(double waited, const std::string& what) const;

 private:
  std::string Missing() const;

  int rank_;
  std::vector<int> world_ranks_;
  StallTimeouts timeouts_;
  std::shared_ptr<const std::vector<std::string>> world_hosts_;
  int64_t sequence_ = 0;
  bool announced_now_ = false, warned_now_ = false;
  std::vector<int64_t> announced_;  ///< newest collective each rank said it waits in
};

}  // namespace stylefleet
