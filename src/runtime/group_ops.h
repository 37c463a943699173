// Operations of a group of ranks built on its collectives: root-only work
// whose failure every rank sees, copies of tensors from the root, and checks
// that the ranks agree. Each function is collective over the communicator it
// takes (every rank calls it, in the same order).
#pragma once

#include <torch/torch.h>

#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "comm/communicator.h"

namespace stylefleet {

/// Runs `action` (named `what` in messages) on the group's root only. If it throws there, every
/// rank of the group throws an exception of the same kind (ConfigError with its problems,
/// DataError, or Error) and message, so that a root-only failure never leaves the other ranks
/// waiting in the next collective, and a config error still exits 2 everywhere. One broadcast when
/// the group has peers.
void RunOnRoot(Communicator& group, const std::string& what, const std::function<void()>& action);

/// Copies every tensor (contiguous, on the communicator's device) from the
/// group's root to all ranks.
void BroadcastTensors(Communicator& group, const std::vector<torch::Tensor>& tensors,
                      const std::string& what);

/// A named value that every rank must hold identically.
using AgreedItem = std::pair<std::string, std::string>;

/// Compares `items` across the group (a hash first, the items themselves only
/// when a hash differs). Throws ConfigError on every rank naming each item
/// that differs (up to five) with the ranks holding each value, followed by
/// `advice`.
void CheckRanksAgree(Communicator& group, const std::vector<AgreedItem>& items,
                     const std::string& advice);

}  // namespace stylefleet
