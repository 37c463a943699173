// The content image set and the order in which a rank visits it.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace stylefleet {

/// All image files (by extension) under `dir`, recursively, sorted by path so
/// that every rank and every run sees the same list. Symbolic links to folders
/// are followed, each real folder once. Throws DataError when the folder is
/// missing, unreadable or holds no image files.
std::vector<std::string> ListImageFiles(const std::string& dir);

/// A hash (16 hex digits) of `files`' paths relative to `dir` and their sizes:
/// a node whose copy of the folder lacks a file, or holds another one under
/// the same name, gives another value.
std::string ContentListHash(const std::string& dir, const std::vector<std::string>& files);

/// "24 files, paths and sizes hash 0123456789abcdef" for `files` content
/// files whose ContentListHash is `hash`: what a run trained on, for its
/// settings record (train/run_settings.h).
std::string DescribeContentList(size_t files, const std::string& hash);

/// The shuffled order of one epoch: a permutation of [0, count) determined by
/// (seed, epoch) alone, identical on every platform (own Fisher-Yates with
/// splitmix64, since std::shuffle's output is implementation-defined).
std::vector<int64_t> EpochOrder(int64_t count, uint64_t seed, int64_t epoch);

/// The part of `order` that rank `rank` of `world` reads: positions rank,
/// rank + world, ... truncated so every rank gets count / world items. Ranks
/// reading batch b of their shards together read positions [b*B*world,
/// (b+1)*B*world) of the order, exactly what one process with batch B*world reads.
std::vector<int64_t> ShardOf(const std::vector<int64_t>& order, int rank, int world);

}  // namespace stylefleet
