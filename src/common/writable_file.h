// Output files that are written at the end of long work (a trace after
// training, a benchmark's JSON after measuring) are checked before it starts.
#pragma once

#include <string>

namespace stylefleet {

/// Throws ConfigError ("`option` PATH: why") unless `path` can be created or
/// replaced: its folder exists and is writable, and the path is not a folder
/// or a file that cannot be written. Creates nothing.
void CheckWritableFile(const std::string& path, const std::string& option);

}  // namespace stylefleet
