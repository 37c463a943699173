// FNV-1a, 64 bit: a stable hash of text for fingerprints and seeds (the same
// value on every machine and run, unlike std::hash).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace stylefleet {

inline uint64_t Fnv1a(std::string_view text, uint64_t hash = 1469598103934665603ULL) {
  for (unsigned char c : text) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

}  // namespace stylefleet
