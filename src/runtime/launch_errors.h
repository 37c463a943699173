// How a command that runs on every rank of a launch ends on an error: a
// failure on one rank is reported with its rank and host and ends the whole
// launch, so that no peer waits in a collective that will never complete.
// Torch-free: src/cli and src/train/launch.cc include it.
#pragma once

#include <functional>
#include <string>

#include "comm/world.h"
#include "common/error.h"

namespace stylefleet {

/// The text a user reads for a ConfigError: each problem on its line, then
/// "N problem(s) found; nothing was run", then `then` (already ended by a
/// newline when not empty).
std::string DescribeConfigError(const ConfigError& error, const std::string& then = "");

/// Runs `body` on this rank and returns its exit code. In a world of one
/// process exceptions propagate to the caller (main's handler); in a larger
/// world an exception is reported on stderr with this rank and host and the
/// whole launch is aborted (exit 2 for a ConfigError, 1 otherwise): this call
/// then does not return.
int RunOnEveryRank(World& world, const std::function<int()>& body);

/// Sets the log prefix "[rank N] " when the world has more than one process.
void PrefixLogWithRank(const World& world);

}  // namespace stylefleet
