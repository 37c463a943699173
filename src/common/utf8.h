// UTF-8 checks for text that goes into JSON records, HTML and log lines: job
// and style names and paths come from users and file systems, where any bytes
// are allowed.
#pragma once

#include <cstddef>
#include <string>

namespace stylefleet {

/// Length of the valid UTF-8 sequence at text[i] (1 to 4), 0 when it is not
/// one (a stray continuation byte, an overlong form, a surrogate, a code
/// point past U+10FFFF, or a sequence cut by the end of the text).
size_t Utf8Length(const std::string& text, size_t i);

/// Whether the whole text is valid UTF-8.
bool IsUtf8(const std::string& text);

/// The text for an error message: bytes that are not valid UTF-8 and control
/// characters (newlines included) as \xNN, everything else as it is.
std::string EscapeForMessage(const std::string& text);

}  // namespace stylefleet
