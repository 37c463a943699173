#include "comm/communicator.h"

#include <cstdio>
#include <cstring>

#include "common/error.h"

namespace stylefleet {
namespace {

// What every rank sends before a collective. Fixed size: one allgather.
struct Identity {
  char kind;          // 'A' average, 'S' sum, 'B' broadcast, 'G' allgather, 'R' barrier
  char what[39];      // the call site, cut to fit
  uint64_t sequence;  // per communicator, 1-based
  uint64_t bytes;     // payload size; 0 where it may differ (allgather)
  bool operator==(const Identity& o) const {
    return kind == o.kind && sequence == o.sequence && bytes == o.bytes &&
           std::strncmp(what, o.what, sizeof(what)) == 0;
  }
};

std::string Size(uint64_t bytes) {
  char text[32];
  if (bytes >= (1u << 20)) {
    std::snprintf(text, sizeof(text), "%.1f MB", bytes / 1048576.0);
  } else if (bytes >= 1024) {
    std::snprintf(text, sizeof(text), "%.1f kB", bytes / 1024.0);
  } else {
    std::snprintf(text, sizeof(text), "%llu bytes", static_cast<unsigned long long>(bytes));
  }
  return text;
}

std::string Describe(const Identity& id) {
  return std::string(id.what, strnlen(id.what, sizeof(id.what))) + " #" +
         std::to_string(id.sequence) + (id.bytes > 0 ? " of " + Size(id.bytes) : std::string());
}

}  // namespace

void Communicator::CheckIdentity(char kind, uint64_t bytes, const std::string& what) {
  ++sequence_;
  if (size() == 1 || !ChecksIdentity()) return;
  Identity mine{};
  mine.kind = kind;
  std::strncpy(mine.what, what.c_str(), sizeof(mine.what) - 1);
  mine.sequence = sequence_;
  mine.bytes = bytes;
  std::vector<Identity> all(static_cast<size_t>(size()));
  ExchangeIdentity(&mine, sizeof(Identity), all.data(), what);
  std::string sides;
  for (int r = 0; r < size(); ++r) {
    const Identity& other = all[static_cast<size_t>(r)];
    if (r > 0 && other == all[static_cast<size_t>(r) - 1]) continue;
    sides += std::string(sides.empty() ? "" : ", ") + "rank " + std::to_string(r) +
             (sides.empty() ? " is" : "") + " in " + Describe(other);
  }
  for (const Identity& other : all) {
    if (!(other == all[0])) {
      throw Error("ranks reached different collectives: " + sides +
                  " (their schedules differ: a setting, the data or the code disagrees "
                  "between ranks)");
    }
  }
}

void Communicator::AllReduceAverage(float* data, size_t count, const std::string& what) {
  CheckIdentity('A', count * sizeof(float), what);
  DoAllReduceAverage(data, count, what);
}

void Communicator::AllReduceSum(double* data, size_t count, const std::string& what) {
  CheckIdentity('S', count * sizeof(double), what);
  DoAllReduceSum(data, count, what);
}

void Communicator::Broadcast(void* data, size_t bytes, int root, const std::string& what) {
  CheckIdentity('B', bytes, what);
  DoBroadcast(data, bytes, root, what);
}

std::vector<std::string> Communicator::AllGather(const std::string& value,
                                                 const std::string& what) {
  CheckIdentity('G', 0, what);
  return DoAllGather(value, what);
}

void Communicator::Barrier(const std::string& what) {
  CheckIdentity('R', 0, what);
  DoBarrier(what);
}

}  // namespace stylefleet
