#include "common/log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>

namespace stylefleet {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::mutex g_mutex;
std::string g_prefix;

const char* LevelName(LogLevel level) {
  switch (level) {
    case LogLevel::kDebug: return "DEBUG";
    case LogLevel::kInfo: return "INFO ";
    case LogLevel::kWarning: return "WARN ";
    case LogLevel::kError: return "ERROR";
  }
  return "?";
}
}  // namespace

void SetLogLevel(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel GetLogLevel() { return static_cast<LogLevel>(g_level.load()); }

void SetLogPrefix(const std::string& prefix) {
  std::lock_guard<std::mutex> lock(g_mutex);
  g_prefix = prefix;
}

void LogLine(LogLevel level, const std::string& message) {
  const std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm_now{};
  localtime_r(&now, &tm_now);
  char stamp[16];
  std::strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm_now);
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "%s %s %s%s\n", stamp, LevelName(level), g_prefix.c_str(), message.c_str());
  std::fflush(stderr);
}

}  // namespace stylefleet
