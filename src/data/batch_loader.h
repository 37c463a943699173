// Produces training batches from the content set with a pool of decode threads
// and a bounded prefetch window, deterministically.
//
// Batch b of epoch e holds items [b*B, (b+1)*B) of this rank's shard of
// EpochOrder(seed, e). A file that fails to decode is warned about once,
// counted, and its slot is filled with another image of the same batch, so
// every epoch has the same number of steps on every rank (ranks must agree on
// step counts or their collectives would hang).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace stylefleet {

struct LoaderOptions {
  int image_size = 256;
  int batch_size = 4;
  int threads = 2;
  int prefetch_batches = 4;
  int64_t max_image_pixels = 100000000;
  uint64_t seed = 42;
  int rank = 0;   ///< shard index
  int world = 1;  ///< number of shards
};

/// Where reading (re)starts: an epoch and a batch index within it.
struct LoaderPosition {
  int64_t epoch = 0;
  int64_t batch = 0;
};

/// One batch: `count` images of size x size as planar float RGB 0..255 (NCHW).
struct Batch {
  int64_t epoch = 0;
  int64_t batch_in_epoch = 0;
  int count = 0;
  int size = 0;
  std::vector<float> pixels;
  std::vector<std::string> paths;  ///< the file behind each image (a substitute's own path)
};

/// Not thread-safe: one consumer calls Next(). Decoding runs on internal threads.
class BatchLoader {
 public:
  /// Throws DataError when the set is too small for one batch per rank.
  BatchLoader(std::vector<std::string> files, const LoaderOptions& options,
              LoaderPosition start = {});
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  /// The next batch; epochs follow one another without end. Throws DataError
  /// when no image of a whole batch nor any earlier one could be used.
  Batch Next();

  /// Full batches per epoch on this rank.
  int64_t batches_per_epoch() const { return batches_per_epoch_; }
  /// Distinct files skipped so far because they did not decode.
  int64_t skipped_files() const;
  size_t file_count() const { return files_.size(); }
  /// Seconds Next() spent waiting for decoders since construction.
  double wait_seconds() const { return wait_seconds_; }

 private:
  struct Slot {
    int64_t item = -1;  // global item index held, -1 when free
    bool ready = false;
    bool ok = false;
    std::vector<float> pixels;
    std::string path;
  };

  void WorkerLoop();
  // File index of global item `item` (counted from the start position).
  int64_t FileOfItem(int64_t item);
  bool DecodeInto(int64_t file_index, std::vector<float>& out);
  // Next()'s last part: slots whose file did not decode (`ok` false) get a good image.
  void FillUndecoded(const std::vector<bool>& ok, Batch* batch);

  std::vector<std::string> files_;
  LoaderOptions options_;
  LoaderPosition start_;
  int64_t batches_per_epoch_ = 0;
  int64_t items_per_epoch_ = 0;  // batches_per_epoch_ * batch_size

  mutable std::mutex mutex_;
  std::condition_variable worker_cv_;
  std::condition_variable consumer_cv_;
  std::vector<Slot> slots_;
  int64_t next_claim_ = 0;    // next item a worker may decode
  int64_t next_consume_ = 0;  // first item of the next batch
  bool stop_ = false;
  std::map<int64_t, std::vector<int64_t>> shards_;  // epoch -> shard (kept for two epochs)
  std::set<int64_t> bad_files_;
  std::vector<float> last_good_;
  std::string last_good_path_;
  double wait_seconds_ = 0;
  std::vector<std::thread> workers_;
};

}  // namespace stylefleet
