#include "data/batch_loader.h"

#include <chrono>
#include <cstring>

#include "common/error.h"
#include "common/log.h"
#include "data/dataset.h"
#include "data/image.h"

namespace stylefleet {

BatchLoader::BatchLoader(std::vector<std::string> files, const LoaderOptions& options,
                         LoaderPosition start)
    : files_(std::move(files)), options_(options), start_(start) {
  SF_CHECK(options_.batch_size >= 1 && options_.threads >= 1 && options_.prefetch_batches >= 1,
           "bad loader options");
  const int64_t per_rank = static_cast<int64_t>(files_.size()) / options_.world;
  batches_per_epoch_ = per_rank / options_.batch_size;
  if (batches_per_epoch_ == 0) {
    throw DataError("content set has " + std::to_string(files_.size()) +
                    " images; one step needs batch_size x ranks = " +
                    std::to_string(options_.batch_size * options_.world));
  }
  items_per_epoch_ = batches_per_epoch_ * options_.batch_size;
  start_.epoch += start_.batch / batches_per_epoch_;
  start_.batch %= batches_per_epoch_;
  slots_.resize(static_cast<size_t>(options_.prefetch_batches) * options_.batch_size);
  for (int i = 0; i < options_.threads; ++i) workers_.emplace_back([this] { WorkerLoop(); });
}

BatchLoader::~BatchLoader() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  worker_cv_.notify_all();
  for (auto& t : workers_) t.join();
}

int64_t BatchLoader::skipped_files() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return static_cast<int64_t>(bad_files_.size());
}

// Called with mutex_ held.
int64_t BatchLoader::FileOfItem(int64_t item) {
  const int64_t absolute = start_.batch * options_.batch_size + item;
  const int64_t epoch = start_.epoch + absolute / items_per_epoch_;
  const int64_t within = absolute % items_per_epoch_;
  auto it = shards_.find(epoch);
  if (it == shards_.end()) {
    const auto order = EpochOrder(static_cast<int64_t>(files_.size()), options_.seed, epoch);
    it = shards_.emplace(epoch, ShardOf(order, options_.rank, options_.world)).first;
    while (shards_.size() > 2 && shards_.begin()->first < epoch - 1) shards_.erase(shards_.begin());
  }
  return it->second[static_cast<size_t>(within)];
}

namespace {
bool IsUniformColour(const RgbImage& image) {
  const auto& p = image.pixels;
  for (size_t i = 3; i < p.size(); ++i) {
    if (p[i] != p[i % 3]) return false;
  }
  return true;
}
}  // namespace

bool BatchLoader::DecodeInto(int64_t file_index, std::vector<float>& out) {
  const std::string& path = files_[static_cast<size_t>(file_index)];
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (bad_files_.count(file_index)) return false;
  }
  try {
    DecodeOptions decode;
    decode.max_pixels = options_.max_image_pixels;
    decode.min_short_side = options_.image_size;
    const RgbImage image = ResizeCenterCrop(LoadImageFile(path, decode), options_.image_size);
    if (IsUniformColour(image)) {
      // Instance norm divides by sqrt(variance + 1e-5): at zero variance its
      // backward multiplies gradients by ~316 in each of the transformer's 15
      // norms (every later activation stays constant too), so a flat image's
      // gradients overflow to Inf and poison the whole batch's step.
      throw DataError(path +
                      ": the training crop is one uniform colour, which carries no "
                      "content and whose gradients overflow (zero variance in instance "
                      "normalization)");
    }
    out.resize(static_cast<size_t>(3) * options_.image_size * options_.image_size);
    ToPlanarFloat(image, out.data());
    return true;
  } catch (const std::exception& e) {
    bool first = false;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      first = bad_files_.insert(file_index).second;
    }
    if (first) SF_LOG(kWarning) << "skipping content image: " << e.what();
    return false;
  }
}

void BatchLoader::WorkerLoop() {
  const int64_t window = static_cast<int64_t>(slots_.size());
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    worker_cv_.wait(lock, [&] { return stop_ || next_claim_ < next_consume_ + window; });
    if (stop_) return;
    const int64_t item = next_claim_++;
    Slot& slot = slots_[static_cast<size_t>(item % window)];
    slot.item = item;
    slot.ready = false;
    const int64_t file_index = FileOfItem(item);
    lock.unlock();
    std::vector<float> pixels;
    const bool ok = DecodeInto(file_index, pixels);
    lock.lock();
    slot.pixels = std::move(pixels);
    slot.ok = ok;
    slot.path = files_[static_cast<size_t>(file_index)];
    slot.ready = true;
    consumer_cv_.notify_one();
  }
}

// Fills the slots of files that did not decode with a good image of this
// batch (or the last good image seen), keeping the batch full.
void BatchLoader::FillUndecoded(const std::vector<bool>& ok, Batch* batch) {
  const size_t image_floats = static_cast<size_t>(3) * batch->size * batch->size;
  int good = -1;
  for (int j = 0; j < batch->count; ++j) {
    if (ok[static_cast<size_t>(j)]) good = j;
  }
  if (good >= 0) {
    last_good_.assign(batch->pixels.begin() + image_floats * good,
                      batch->pixels.begin() + image_floats * (good + 1));
    last_good_path_ = batch->paths[static_cast<size_t>(good)];
  } else if (last_good_.empty()) {
    // Nothing decoded yet: look through the whole set once for any usable image.
    for (size_t f = 0; f < files_.size() && last_good_.empty(); ++f) {
      std::vector<float> pixels;
      if (DecodeInto(static_cast<int64_t>(f), pixels)) {
        last_good_ = std::move(pixels);
        last_good_path_ = files_[f];
      }
    }
    if (last_good_.empty()) {
      throw DataError("no file of the content set (" + std::to_string(files_.size()) +
                      " files) can be trained on: each one failed to decode, is smaller than "
                      "the training size, or is one uniform colour (the warnings above name "
                      "them and say which)");
    }
  }
  for (int j = 0; j < batch->count; ++j) {
    if (ok[static_cast<size_t>(j)]) continue;
    const float* source = good >= 0 ? &batch->pixels[image_floats * good] : last_good_.data();
    std::memcpy(&batch->pixels[image_floats * j], source, image_floats * sizeof(float));
    batch->paths[static_cast<size_t>(j)] =
        good >= 0 ? batch->paths[static_cast<size_t>(good)] : last_good_path_;
  }
}

Batch BatchLoader::Next() {
  const int64_t window = static_cast<int64_t>(slots_.size());
  const int size = options_.image_size;
  const size_t image_floats = static_cast<size_t>(3) * size * size;
  Batch batch;
  batch.count = options_.batch_size;
  batch.size = size;
  batch.pixels.resize(image_floats * batch.count);
  batch.paths.resize(static_cast<size_t>(batch.count));
  std::vector<bool> ok(static_cast<size_t>(batch.count), false);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    const int64_t absolute = start_.batch * options_.batch_size + next_consume_;
    batch.epoch = start_.epoch + absolute / items_per_epoch_;
    batch.batch_in_epoch = (absolute % items_per_epoch_) / options_.batch_size;
    const auto wait_start = std::chrono::steady_clock::now();
    for (int j = 0; j < batch.count; ++j) {
      Slot& slot = slots_[static_cast<size_t>((next_consume_ + j) % window)];
      consumer_cv_.wait(lock, [&] { return slot.item == next_consume_ + j && slot.ready; });
      ok[static_cast<size_t>(j)] = slot.ok;
      batch.paths[static_cast<size_t>(j)] = slot.path;
      if (slot.ok)
        std::memcpy(&batch.pixels[image_floats * j], slot.pixels.data(),
                    image_floats * sizeof(float));
      slot.pixels = std::vector<float>();
    }
    wait_seconds_ +=
        std::chrono::duration<double>(std::chrono::steady_clock::now() - wait_start).count();
    next_consume_ += batch.count;
  }
  worker_cv_.notify_all();

  FillUndecoded(ok, &batch);
  return batch;
}

}  // namespace stylefleet
