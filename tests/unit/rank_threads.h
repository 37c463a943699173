// Ranks as threads over the in-process backend (MakeLocalWorld), for tests
// of collectives and group operations without mpirun.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "comm/communicator.h"
#include "common/error.h"

namespace stylefleet::testing {

/// Runs body(rank, communicator) on one thread per rank of `world` and
/// returns what each rank's body threw, as "KIND: message" (KIND config, data
/// or error: stylefleet's exception classes; a ConfigError's problems joined
/// by '|'), "" where it returned. Any other exception ends the test program.
template <typename F>
[[nodiscard]] std::vector<std::string> OnEveryRank(
    std::vector<std::unique_ptr<Communicator>>& world, F body) {
  std::vector<std::string> thrown(world.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < world.size(); ++r) {
    threads.emplace_back([&, r] {
      try {
        body(static_cast<int>(r), *world[r]);
      } catch (const ConfigError& e) {
        std::string all;
        for (const auto& p : e.problems()) all += p + "|";
        thrown[r] = "config: " + all;
      } catch (const DataError& e) {
        thrown[r] = std::string("data: ") + e.what();
      } catch (const Error& e) {
        thrown[r] = std::string("error: ") + e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  return thrown;
}

/// OnEveryRank, where every rank's body is expected to return. A rank that
/// throws ends the test program at once, with its message on stderr: the other
/// ranks may be waiting for it in a collective that would never complete, and
/// a failed expectation would leave the test hanging until ctest's timeout.
template <typename F>
void RunOnEveryRank(std::vector<std::unique_ptr<Communicator>>& world, F body) {
  // The wrapper never lets an exception out, so OnEveryRank has nothing to report.
  (void)OnEveryRank(world, [&](int rank, Communicator& comm) {
    try {
      body(rank, comm);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "rank %d threw, ending the test program: %s\n", rank, e.what());
      std::fflush(stderr);
      std::abort();
    }
  });
}

}  // namespace stylefleet::testing
