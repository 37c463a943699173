// Output files that are written at the end of long work (a trace after
// training, a benchmark's JSON after measuring) are checked before it starts.
#pragma once

#include <string>

namespace stylefleet {

/// Throws ConfigError ("`option` PATH: why") unless `path` can be created or
/// replaced: its folder exists and is writable, and the path is not a folder
/// or a file that cannot be written. Creates nothing.
void CheckWritableFile(const std::string& path, const std::string& option);

/// The file a write-then-rename of `path` replaces: `path`, or the file a
/// symbolic link there points to (renaming over the link would replace the
/// link, not the file). Throws Error ("PATH: is a device, not a regular
/// file; nothing was written") when what is there is not a regular file: a
/// rename over /dev/null or a FIFO would replace it with a plain file.
std::string FileToReplace(const std::string& path);

}  // namespace stylefleet
