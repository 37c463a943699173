// Output files that are written at the end of long work (a trace after
// training, a benchmark's JSON after measuring) are checked before it starts.
#pragma once

#include <string>
#include <string_view>

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

/// The one way stylefleet replaces a file (models, checkpoints, images, settings, metrics,
/// reports, targets): the file at `path`, or the regular file a link there points to
/// (FileToReplace), comes to hold exactly `bytes`, so that a crash, a kill or a full disk leaves
/// either the old file or the new one, never a mix or an empty file. Writes `.NAME.tmp` beside
/// it, flushes it to disk, renames it into place and flushes the folder. Creates missing
/// folders. Throws Error ("PATH: why (reason); nothing was replaced") and leaves no temporary
/// file behind when any step fails.
void ReplaceFileDurably(const std::string& path, std::string_view bytes);

}  // namespace stylefleet
