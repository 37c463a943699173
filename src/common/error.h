// Error types shared by every part of stylefleet.
//
// Library code reports failures by throwing; only src/cli turns them into exit codes.
// Each type maps to one exit code so scripts and schedulers can tell a bad job file
// (fix the config, do not retry) from a run-time failure (maybe retry).
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace stylefleet {

/// Exit codes used by the command-line tool.
enum ExitCode : int {
  kExitOk = 0,
  kExitRuntimeError = 1,  ///< training or I/O failed
  kExitConfigError = 2,   ///< the job, its files or the command line are invalid
};

/// A failure with a message meant for the user. `what()` is the full message.
class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

/// One or more problems in a job file or in command-line overrides. Each entry
/// is already formatted as `file:line:column: message`.
class ConfigError : public Error {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

/// Input data that cannot be used (an image that does not decode, a weights file
/// with a wrong key). Thrown with the offending path in the message.
class DataError : public Error {
 public:
  using Error::Error;
};

}  // namespace stylefleet

/// Throws stylefleet::Error with file:line context when `cond` is false.
/// For internal invariants that user input cannot break; user input gets a
/// specific message instead.
#define SF_CHECK(cond, msg)                                                       \
  do {                                                                            \
    if (!(cond)) {                                                                \
      throw ::stylefleet::Error(std::string(__FILE__) + ":" +                     \
                                std::to_string(__LINE__) + ": check failed: " #cond \
                                ": " + (msg));                                    \
    }                                                                             \
  } while (0)
