// Minimal leveled logging to stderr, thread-safe, one line per call.
//
// Why not a library: the project logs a few lines per step; a mutex and a
// timestamp are all that is needed, and keeping it here avoids a dependency.
#pragma once

#include <sstream>
#include <string>

namespace stylefleet {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

/// Messages below this level are dropped. Default kInfo.
void SetLogLevel(LogLevel level);
LogLevel GetLogLevel();

/// Prefix added to every line (e.g. "[rank 1] "); empty by default.
void SetLogPrefix(const std::string& prefix);

/// Writes one line `HH:MM:SS level prefix message` to stderr (as WriteToStderr).
void LogLine(LogLevel level, const std::string& message);

/// Writes `text` to stderr with one write() where the system takes it whole:
/// processes that share the stream (ranks under mpirun) cannot split each
/// other's lines, as a message written piece by piece can be.
void WriteToStderr(const std::string& text);

namespace internal {
class LogStream {
 public:
  explicit LogStream(LogLevel level) : level_(level) {}
  ~LogStream() { LogLine(level_, stream_.str()); }
  template <typename T>
  LogStream& operator<<(const T& value) {
    stream_ << value;
    return *this;
  }

 private:
  LogLevel level_;
  std::ostringstream stream_;
};
}  // namespace internal

}  // namespace stylefleet

// A for-statement (not an if) so that `if (x) SF_LOG(kInfo) << ...; else ...` binds as written.
#define SF_LOG(level)                                                                    \
  for (bool sf_log_once_ = ::stylefleet::LogLevel::level >= ::stylefleet::GetLogLevel(); \
       sf_log_once_; sf_log_once_ = false)                                               \
  ::stylefleet::internal::LogStream(::stylefleet::LogLevel::level)
