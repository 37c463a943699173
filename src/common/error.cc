#include "common/error.h"

namespace stylefleet {
namespace {
std::string JoinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& line : lines) {
    if (!out.empty()) out += '\n';
    out += line;
  }
  return out;
}
}  // namespace

ConfigError::ConfigError(std::vector<std::string> problems)
    : Error(JoinLines(problems)), problems_(std::move(problems)) {}

}  // namespace stylefleet
