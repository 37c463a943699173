#include "runtime/launch_errors.h"

#include "common/log.h"

namespace stylefleet {

std::string DescribeConfigError(const ConfigError& error, const std::string& then) {
  std::string text;
  for (const auto& problem : error.problems()) text += problem + "\n";
  const size_t count = error.problems().size();
  text +=
      std::to_string(count) + (count == 1 ? " problem" : " problems") + " found; nothing was run\n";
  return text + then;
}

int RunOnEveryRank(World& world, const std::function<int()>& body) {
  const ProcessInfo& me = world.info();
  try {
    return body();
  } catch (const ConfigError& e) {
    if (me.size == 1) throw;
    WriteToStderr(DescribeConfigError(e, "rank " + std::to_string(me.rank) + " on " + me.host +
                                             ": aborting all " + std::to_string(me.size) +
                                             " ranks\n"));
    world.Abort(kExitConfigError);
  } catch (const std::exception& e) {
    if (me.size == 1) throw;
    WriteToStderr("error: rank " + std::to_string(me.rank) + " on " + me.host + ": " + e.what() +
                  "\naborting all " + std::to_string(me.size) + " ranks\n");
    world.Abort(kExitRuntimeError);
  }
  return kExitRuntimeError;  // not reached: Abort does not return
}

void PrefixLogWithRank(const World& world) {
  if (world.info().size > 1) SetLogPrefix("[rank " + std::to_string(world.info().rank) + "] ");
}

}  // namespace stylefleet
