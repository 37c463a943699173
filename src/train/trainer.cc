// The training loop: every style of a job, one after another, in this process.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <limits>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/log.h"
#include "common/stop_signal.h"
#include "common/vgg_layers.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "data/image.h"
#include "loss/losses.h"
#include "model/vgg16.h"
#include "train/checkpoints.h"
#include "dist/nccl_communicator.h"
#include "dist/world.h"
#include "train/commands.h"
#include "train/gradient_buckets.h"
#include "train/model_state.h"
#include "train/step.h"
#include "train/style_schedule.h"

namespace stylefleet {
namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kPreviewImages = 4;

std::string FormatDuration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--:--";
  const auto total = static_cast<long long>(seconds + 0.5);
  char text[32];
  std::snprintf(text, sizeof(text), "%02lld:%02lld:%02lld", total / 3600, (total / 60) % 60,
                total % 60);
  return text;
}

uint64_t NameHash(const std::string& name) {
  uint64_t hash = 1469598103934665603ULL;
  for (unsigned char c : name) {
    hash ^= c;
    hash *= 1099511628211ULL;
  }
  return hash;
}

// Runs `action` on the group root only; if it throws there, every rank of the
// group throws the same error (a root-only failure must not leave the other
// ranks waiting in the next collective).
template <typename F>
void RunOnRoot(Communicator& group, F action) {
  std::string error;
  if (group.rank() == 0) {
    try {
      action();
    } catch (const std::exception& e) {
      error = e.what();
      if (error.empty()) error = "unknown error";
    }
  }
  if (group.size() == 1) {
    if (!error.empty()) throw Error(error);
    return;
  }
  uint64_t length = error.size();
  group.Broadcast(&length, sizeof(length), 0);
  error.resize(length);
  if (length > 0) group.Broadcast(error.data(), length, 0);
  if (!error.empty()) throw Error(error);
}

// Copies every tensor of `tensors` from the group root to all ranks.
void BroadcastTensors(Communicator& group, const std::vector<torch::Tensor>& tensors) {
  if (group.size() == 1) return;
  torch::NoGradGuard no_grad;
  for (const auto& t : tensors) {
    SF_CHECK(t.is_contiguous(), "broadcast needs contiguous tensors");
    group.Broadcast(t.data_ptr(), static_cast<size_t>(t.numel()) * t.element_size(), 0);
  }
}

// A style stopped by numerical faults; the job's other styles go on.
class NumericalFault : public Error {
 public:
  using Error::Error;
};

// bf16 where it pays: always on GPUs, on CPUs with BF16 dot-product instructions.
Precision EffectivePrecision(const std::string& configured, const torch::Device& device) {
  if (configured != "bf16") return Precision::kFp32;
  if (!device.is_cpu() || CpuHasBf16()) return Precision::kBf16;
  static bool warned = false;
  if (!warned) {
    SF_LOG(kWarning) << "training.precision bf16: this CPU has no BF16 instructions (avx512_bf16 "
                        "or amx_bf16), where bf16 would be slower than fp32; training in fp32";
    warned = true;
  }
  return Precision::kFp32;
}

double ParameterChecksum(TransformerNet& net) {
  torch::NoGradGuard no_grad;
  double sum = 0;
  for (const auto& p : net->parameters()) sum += p.to(torch::kFloat64).sum().item<double>();
  return sum;
}

class StyleTrainer {
 public:
  StyleTrainer(const JobConfig& job, const StyleSpec& style, const Vgg16& vgg,
               const std::vector<std::string>& files, const TrainRunOptions& options,
               Communicator& group, const torch::Device& device, int group_index,
               TrainingMetrics& metrics, StepClock& clock)
      : job_(job), style_(style), vgg_(vgg), files_(files), options_(options), group_(group),
        root_(group.rank() == 0), device_(device), group_index_(group_index), metrics_(metrics),
        clock_(clock) {
    loss_use_.content_layers = VggLayerIndices(job.loss_network.content_layers);
    loss_use_.style_layers = VggLayerIndices(job.loss_network.style_layers);
    loss_use_.precision = EffectivePrecision(style.training.precision, device);
    weights_ = {style.training.content_weight, style.training.style_weight, style.training.tv_weight};
  }

  // Returns true when a stop signal ended training early (after a checkpoint).
  bool Run() {
    const auto& t = style_.training;
    RunOnRoot(group_, [&] { ClaimOutputDir(style_.output_dir, job_.name, style_.name); });
    ComputeStyleGrams();

    // Same initial weights for the same job seed and style name, wherever it runs.
    torch::manual_seed(job_.seed ^ NameHash(style_.name));
    net_ = TransformerNet();
    net_->to(device_);
    net_->train();
    std::vector<torch::Tensor> trainable;
    for (const auto& item : TrainableParameters(net_)) trainable.push_back(item.second);
    adam_ = std::make_unique<Adam>(trainable, t.learning_rate);

    LoaderOptions loader_options;
    loader_options.image_size = job_.data.image_size;
    loader_options.batch_size = t.batch_size;
    loader_options.threads = job_.data.loader_threads;
    loader_options.prefetch_batches = job_.data.prefetch_batches;
    loader_options.max_image_pixels = job_.data.max_image_pixels;
    loader_options.seed = job_.seed;
    loader_options.rank = group_.rank();
    loader_options.world = group_.size();

    RunPosition position;
    RunOnRoot(group_, [&] { position = Resume(); });
    SynchronizeState(position);
    const int64_t per_epoch =
        static_cast<int64_t>(files_.size()) / group_.size() / t.batch_size;
    total_steps_ = t.epochs > 0 ? t.epochs * per_epoch : INT64_MAX;
    if (t.max_steps > 0) total_steps_ = std::min(total_steps_, t.max_steps);
    if (position.step >= total_steps_) {
      if (root_) {
        SF_LOG(kInfo) << "[" << style_.name << "] already trained (" << position.step
                      << " steps); writing the final model";
      }
      RunOnRoot(group_, [&] { WriteModel(); });
      return false;
    }
    if (root_) {
      SF_LOG(kInfo) << "[" << style_.name << "] training steps " << position.step + 1 << ".."
                    << total_steps_ << " (" << per_epoch << " per epoch)";
      if (group_.size() > 1) {
        SF_LOG(kInfo) << "[" << style_.name << "] data-parallel over " << group_.size()
                      << " ranks (" << group_.backend() << "), batch " << t.batch_size << " x "
                      << group_.size() << " = " << t.batch_size * group_.size() << ", "
                      << buckets_->bucket_count() << " gradient bucket(s) of at most "
                      << job_.distributed.bucket_mb << " MiB";
      }
      SF_LOG(kInfo) << "[" << style_.name << "] " << job_.data.image_size << " px into "
                    << style_.output_dir;
    }
    BatchLoader loader(files_, loader_options, LoaderPosition{position.epoch, position.batch});
    metrics_.StyleStarted(style_.name, job_.loss_network.style_layers, group_index_, root_);
    int64_t skipped_reported = 0;
    int64_t stalls_reported = CollectiveStallWarnings();
    double wait_before = 0;
    if (root_) {
      TrimMetrics(position.step);
      PreparePreviews();
    }

    const bool tty = root_ && options_.progress && isatty(STDOUT_FILENO);
    double step_seconds_avg = 0;
    const auto run_start = Clock::now();
    int64_t steps_this_run = 0;
    double window_seconds = 0;
    int64_t window_images = 0;
    while (position.step < total_steps_) {
      const auto step_start = Clock::now();
      clock_.Begin(Phase::kData);
      Batch batch = loader.Next();
      torch::Tensor content =
          torch::from_blob(batch.pixels.data(), {batch.count, 3, batch.size, batch.size},
                           torch::kFloat32);
      if (!device_.is_cpu()) content = content.to(device_);
      const double data_wait = loader.wait_seconds() - wait_before;
      wait_before = loader.wait_seconds();
      const StepValues values = TrainStep(content, position.step + 1);
      clock_.End();
      ++position.step;
      ++steps_this_run;
      position.epoch = batch.epoch;
      position.batch = batch.batch_in_epoch + 1;
      if (position.batch == loader.batches_per_epoch()) {
        position.batch = 0;
        ++position.epoch;
      }
      const double seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
      step_seconds_avg = steps_this_run == 1 ? seconds : 0.9 * step_seconds_avg + 0.1 * seconds;
      const int images = batch.count * group_.size();
      window_seconds += seconds;
      window_images += images;
      const double eta = step_seconds_avg * double(total_steps_ - position.step);
      if (root_) {
        StepReport report;
        report.step = position.step;
        report.total_steps = total_steps_;
        report.images = images;
        report.epoch = double(position.epoch) + double(position.batch) / loader.batches_per_epoch();
        report.content = values.content;
        report.style = values.style;
        report.tv = values.tv;
        report.total = values.total;
        report.content_weight = weights_.content;
        report.style_weight = weights_.style;
        report.tv_weight = weights_.tv;
        report.style_layers = values.style_layers;
        report.learning_rate = t.learning_rate;
        report.step_seconds = seconds;
        report.data_wait_seconds = data_wait;
        report.allreduce_seconds = group_.size() > 1 ? buckets_->last_seconds() : 0.0;
        report.eta_seconds = eta;
        metrics_.StepDone(style_.name, report);
      }
      const int64_t stalls_now = CollectiveStallWarnings();
      metrics_.CollectiveStalls(stalls_now - stalls_reported);
      stalls_reported = stalls_now;
      const int64_t skipped_now = loader.skipped_files();
      metrics_.ImagesSkipped(skipped_now - skipped_reported);
      skipped_reported = skipped_now;

      if (tty) {
        std::printf("\r[%s] step %lld/%lld  loss %.4g  %.2f img/s  ETA %s   ", style_.name.c_str(),
                    static_cast<long long>(position.step), static_cast<long long>(total_steps_),
                    values.total, images / std::max(seconds, 1e-9), FormatDuration(eta).c_str());
        std::fflush(stdout);
      }
      const bool last = position.step == total_steps_;
      if (job_.distributed.check_every_steps > 0 && group_.size() > 1 &&
          (position.step % job_.distributed.check_every_steps == 0 || last)) {
        CheckReplicasAgree(position.step);
      }
      if (position.step % t.log_every_steps == 0 || last) {
        if (tty) std::printf("\n");
        const double rate = window_images / std::max(window_seconds, 1e-9);
        const int64_t skipped = loader.skipped_files();
        RunOnRoot(group_, [&] { Log(position, values, rate, eta, skipped); });
        window_seconds = 0;
        window_images = 0;
      }
      if (t.preview_every_steps > 0 && (position.step % t.preview_every_steps == 0 || last)) {
        RunOnRoot(group_, [&] { WritePreview(position.step); });
      }
      if (values.bad) {
        ++bad_in_a_row_;
        if (root_) {
          SF_LOG(kWarning) << "[" << style_.name << "] step " << position.step
                           << ": NaN or infinite loss or gradient; step skipped (" << bad_in_a_row_
                           << " in a row, limit " << t.max_bad_steps << ")";
        }
        metrics_.BadStep(style_.name);
        if (bad_in_a_row_ >= t.max_bad_steps) {
          const auto kept = ListCheckpoints(style_.output_dir);
          throw NumericalFault("style '" + style_.name + "': " + std::to_string(bad_in_a_row_) +
                               " steps in a row (up to step " + std::to_string(position.step) +
                               ") had a NaN or infinite loss or gradient; stopped. Its last good "
                               "checkpoint is kept" +
                               (kept.empty() ? std::string(" (none was written yet)")
                                             : ": " + kept.front()) +
                               ". Lower training.learning_rate or the loss weights.");
        }
      } else {
        bad_in_a_row_ = 0;
      }
      if (values.stop) {
        RunOnRoot(group_, [&] { WriteCheckpoint(position); });
        if (root_) {
          SF_LOG(kWarning) << "[" << style_.name << "] stop signal: checkpoint written at step "
                           << position.step << "; run the same command to resume";
        }
        return true;
      }
      if (position.step % job_.checkpoint.every_steps == 0 || last) {
        RunOnRoot(group_, [&] { WriteCheckpoint(position); });
        if (root_) {
          metrics_.CheckpointWritten(
              style_.name,
              std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                  .count());
        }
      }
    }
    RunOnRoot(group_, [&] { WriteModel(); });
    metrics_.StyleFinished(style_.name);
    if (root_) {
      SF_LOG(kInfo) << "[" << style_.name << "] done: " << steps_this_run << " steps in "
                    << FormatDuration(std::chrono::duration<double>(Clock::now() - run_start).count())
                    << "; model " << (fs::path(style_.output_dir) / "model.pt").string();
    }
    return false;
  }

 private:
  void ComputeStyleGrams() {
    DecodeOptions decode;
    decode.max_pixels = job_.data.max_image_pixels;
    RgbImage image;
    try {
      image = ResizeCenterCrop(LoadImageFile(style_.image, decode), job_.data.image_size);
    } catch (const DataError& e) {
      throw DataError("style '" + style_.name + "': bad style image: " + e.what());
    }
    style_grams_ = StyleGrams(vgg_, ImageToTensor(image).to(device_), loss_use_.style_layers,
                              loss_use_.precision);
  }

  // Group-averaged loss values of one step: content, style, tv, total, then each style layer.
  struct StepValues {
    double content = 0, style = 0, tv = 0, total = 0;
    std::vector<double> style_layers;
    bool bad = false;   ///< NaN/Inf loss or gradient: the update was skipped
    bool stop = false;  ///< a stop signal reached some rank of the group
  };

  StepValues TrainStep(const torch::Tensor& content, int64_t step) {
    adam_->ZeroGrad();
    const std::string fault = style_.name + ":" + std::to_string(step);
    const bool inject_nan = std::find(options_.inject_nan.begin(), options_.inject_nan.end(),
                                      fault) != options_.inject_nan.end();
    const int parts = style_.training.micro_batches;
    std::vector<double> values(4 + loss_use_.style_layers.size(), 0.0);
    for (int part = 0; part < parts; ++part) {
      // Part m takes images m, m+M, ... (strided like the shards of a group, so
      // M parts in one process reproduce M ranks bit for bit).
      const torch::Tensor images =
          parts == 1 ? content : content.slice(0, part, content.size(0), parts).contiguous();
      LossTerms terms = ForwardLosses(images);
      if (inject_nan) terms.total = terms.total * std::numeric_limits<double>::quiet_NaN();
      // Scaling the loss by 1/M scales every gradient exactly when M is a power of 2.
      clock_.Begin(Phase::kBackward);
      (parts == 1 ? terms.total : terms.total * (1.0 / parts)).backward();
      std::vector<double> part_values = {terms.content.item<double>(), terms.style.item<double>(),
                                         terms.tv.item<double>(), terms.total.item<double>()};
      for (const auto& layer : terms.style_layers) part_values.push_back(layer.item<double>());
      for (size_t i = 0; i < values.size(); ++i) values[i] += part_values[i] / parts;
    }
    // Group averages of the loss terms: what logs and metrics show, and what the
    // finiteness check looks at, so every rank takes the same decision. The
    // last slot carries "a stop signal arrived here" to the whole group.
    values.push_back(StopRequested() ? 1.0 : 0.0);
    clock_.Begin(Phase::kAllreduce, "loss values");
    if (group_.size() > 1) {
      group_.AllReduceSum(values.data(), values.size());
      for (double& v : values) v /= group_.size();
    }
    const bool stop = values.back() > 0;
    values.pop_back();
    StepValues out;
    out.content = values[0];
    out.style = values[1];
    out.tv = values[2];
    out.total = values[3];
    out.style_layers.assign(values.begin() + 4, values.end());
    out.stop = stop;
    if (!std::isfinite(out.total)) {
      out.bad = true;  // no update: a NaN must never reach the weights
      return out;
    }
    clock_.Begin(Phase::kAllreduce);
    if (group_.size() > 1) buckets_->AllReduceAverage(group_);
    clock_.Begin(Phase::kOptimizer);
    // After averaging every rank holds the same gradients, so the same verdict.
    for (const auto& p : adam_->params()) {
      if (p.grad().defined() && !torch::isfinite(p.grad()).all().item<bool>()) {
        out.bad = true;
        return out;
      }
    }
    adam_->Step();
    return out;
  }

  LossTerms ForwardLosses(const torch::Tensor& content) {
    std::vector<TransformerNet*> nets = {&net_};
    return std::move(ForwardStyleLosses(nets, vgg_, content, {StyleLossTarget{&style_grams_, weights_}},
                                        loss_use_, &clock_)
                         .front());
  }

  // Every rank starts from the root's state: parameters (fresh or restored),
  // optimizer state and position. Also checks that all ranks built the same model.
  void SynchronizeState(RunPosition& position) {
    std::vector<torch::Tensor> params;
    for (const auto& item : TrainableParameters(net_)) params.push_back(item.second);
    buckets_ = std::make_unique<GradientBuckets>(
        params, static_cast<size_t>(job_.distributed.bucket_mb * 1024 * 1024));
    if (group_.size() == 1) return;
    std::ostringstream shapes;
    for (const auto& p : params) shapes << p.sizes() << ";";
    const std::string mine = std::to_string(params.size()) + " parameters " +
                             std::to_string(std::hash<std::string>()(shapes.str()));
    const auto all = group_.AllGather(mine);
    for (int r = 0; r < group_.size(); ++r) {
      if (all[static_cast<size_t>(r)] != all[0]) {
        throw Error("style '" + style_.name + "': rank " + std::to_string(r) + " of its group has " +
                    all[static_cast<size_t>(r)] + ", rank 0 has " + all[0] +
                    "; every rank must build the same model");
      }
    }
    int64_t numbers[3] = {position.step, position.epoch, position.batch};
    group_.Broadcast(numbers, sizeof(numbers), 0);
    position = RunPosition{numbers[0], numbers[1], numbers[2]};
    std::vector<torch::Tensor> state = net_->parameters();  // frozen ones too: same model everywhere
    for (size_t i = 0; i < params.size(); ++i) {
      state.push_back(adam_->exp_avg(i));
      state.push_back(adam_->exp_avg_sq(i));
    }
    BroadcastTensors(group_, state);
    int64_t adam_steps = adam_->steps();
    group_.Broadcast(&adam_steps, sizeof(adam_steps), 0);
    adam_->set_steps(adam_steps);
  }

  // Replicas must stay bitwise equal; a difference means a broken rank or network.
  void CheckReplicasAgree(int64_t step) {
    char text[64];
    std::snprintf(text, sizeof(text), "%.17g", ParameterChecksum(net_));
    const auto all = group_.AllGather(text);
    for (int r = 1; r < group_.size(); ++r) {
      if (all[static_cast<size_t>(r)] != all[0]) {
        throw Error("style '" + style_.name + "': at step " + std::to_string(step) + " rank " +
                    std::to_string(r) + " of its group holds parameters with checksum " +
                    all[static_cast<size_t>(r)] + ", rank 0 holds " + all[0] +
                    ": the replicas diverged");
      }
    }
  }

  RunPosition Resume() {
    for (const auto& path : ListCheckpoints(style_.output_dir)) {
      try {
        const TensorDict dict = LoadTensorDict(path);
        const RunPosition position = RestoreCheckpoint(dict, path, net_, *adam_);
        SF_LOG(kInfo) << "[" << style_.name << "] resuming from " << path << " (step "
                      << position.step << ")";
        return position;
      } catch (const DataError& e) {
        SF_LOG(kWarning) << "[" << style_.name << "] ignoring unreadable checkpoint: " << e.what();
      }
    }
    return RunPosition{};
  }

  // Drops records past `step` (written after the checkpoint a resume starts from).
  void TrimMetrics(int64_t step) {
    const fs::path path = fs::path(style_.output_dir) / "metrics.jsonl";
    std::error_code ec;
    if (!fs::exists(path, ec)) return;
    std::ifstream in(path);
    std::stringstream kept;
    for (std::string line; std::getline(in, line);) {
      try {
        if (nlohmann::json::parse(line).value("step", int64_t{0}) <= step) kept << line << "\n";
      } catch (const std::exception&) {
        // A torn last line from a crash: drop it.
      }
    }
    in.close();
    std::ofstream out(path, std::ios::trunc);
    out << kept.str();
  }

  void Log(const RunPosition& position, const StepValues& terms, double images_per_second,
           double eta_seconds, int64_t skipped) {
    nlohmann::json record;
    record["step"] = position.step;
    record["total_steps"] = total_steps_;
    record["epoch"] = position.epoch;
    record["content_loss"] = terms.content;
    record["style_loss"] = terms.style;
    record["tv_loss"] = terms.tv;
    record["total_loss"] = terms.total;
    nlohmann::json layers;
    std::ostringstream layer_text;
    for (size_t i = 0; i < loss_use_.style_layers.size(); ++i) {
      const double v = terms.style_layers[i];
      layers[job_.loss_network.style_layers[i]] = v;
      layer_text << (i ? " " : "") << job_.loss_network.style_layers[i] << "=" << std::setprecision(4) << v;
    }
    record["style_loss_by_layer"] = layers;
    record["images_per_second"] = images_per_second;
    record["eta_seconds"] = eta_seconds;
    record["skipped_images"] = skipped;
    record["ranks"] = group_.size();
    record["time"] = std::chrono::duration<double>(
                         std::chrono::system_clock::now().time_since_epoch()).count();
    std::ofstream out(fs::path(style_.output_dir) / "metrics.jsonl", std::ios::app);
    out << record.dump() << "\n";

    std::ostringstream line;
    line << std::setprecision(4) << "[" << style_.name << "] step " << position.step << "/"
         << total_steps_ << " | content " << terms.content << " | style " << terms.style << " ("
         << layer_text.str() << ") | tv " << terms.tv << " | total " << terms.total << " | "
         << std::setprecision(3) << images_per_second << " img/s | ETA "
         << FormatDuration(eta_seconds);
    SF_LOG(kInfo) << line.str();
  }

  void PreparePreviews() {
    preview_inputs_ = torch::Tensor();
    std::vector<torch::Tensor> images;
    for (size_t i = 0; i < files_.size() && images.size() < kPreviewImages; ++i) {
      try {
        images.push_back(ImageToTensor(ResizeCenterCrop(LoadImageFile(files_[i]), job_.data.image_size)));
      } catch (const DataError&) {
        // Broken files are reported by the loader.
      }
    }
    if (!images.empty()) preview_inputs_ = torch::cat(images).to(device_);
  }

  // A grid: the content images on top, the current model's output below.
  void WritePreview(int64_t step) {
    if (!preview_inputs_.defined()) return;
    torch::Tensor output;
    {
      torch::NoGradGuard no_grad;
      output = net_->forward(preview_inputs_).clamp(0, 255);
    }
    const torch::Tensor top = torch::cat(preview_inputs_.unbind(0), 2);
    const torch::Tensor bottom = torch::cat(output.unbind(0), 2);
    const torch::Tensor grid = torch::cat({top, bottom}, 1);
    char name[40];
    std::snprintf(name, sizeof(name), "step-%08lld.png", static_cast<long long>(step));
    const fs::path dir = fs::path(style_.output_dir) / "previews";
    fs::create_directories(dir);
    SaveImageFile(TensorToImage(grid), (dir / name).string());
  }

  ModelInfo Info() const { return ModelInfo{job_.name, style_.name, job_.data.image_size}; }

  void WriteCheckpoint(const RunPosition& position) {
    const std::string path = CheckpointPath(style_.output_dir, position.step);
    SaveTensorDict(CheckpointDict(net_, *adam_, position, Info()), path);
    PruneCheckpoints(style_.output_dir, job_.checkpoint.keep);
    SF_LOG(kDebug) << "[" << style_.name << "] checkpoint " << path;
  }

  void WriteModel() {
    SaveTensorDict(ModelDict(net_, Info()), (fs::path(style_.output_dir) / "model.pt").string());
  }

  const JobConfig& job_;
  const StyleSpec& style_;
  const Vgg16& vgg_;
  const std::vector<std::string>& files_;
  const TrainRunOptions& options_;
  Communicator& group_;
  const bool root_;
  const torch::Device device_;
  const int group_index_;
  TrainingMetrics& metrics_;
  std::unique_ptr<GradientBuckets> buckets_;
  LossNetworkUse loss_use_;
  StepClock& clock_;
  LossWeights weights_;
  std::vector<torch::Tensor> style_grams_;
  TransformerNet net_{nullptr};
  std::unique_ptr<Adam> adam_;
  torch::Tensor preview_inputs_;
  int64_t total_steps_ = 0;
  int bad_in_a_row_ = 0;
};

}  // namespace

TrainOutcome TrainJob(const JobConfig& job, const TrainRunOptions& options) {
  const auto world = MakeSoloWorld();
  return TrainJob(job, options, *world);
}

TrainOutcome TrainJob(const JobConfig& job, const TrainRunOptions& options, World& world) {
  const ProcessInfo& me = world.info();
  // LibTorch's OpenMP default can be 1 thread here even with 2 cores; be explicit,
  // and share the cores of a host among its ranks.
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = options.threads > 0 ? options.threads : std::max(1, cores / me.local_size);
  torch::set_num_threads(threads);
  for (const auto& name : options.only_styles) {
    if (std::none_of(job.styles.begin(), job.styles.end(),
                     [&](const StyleSpec& s) { return s.name == name; })) {
      throw ConfigError({"--style " + name + ": the job has no such style"});
    }
  }
  std::vector<const StyleSpec*> styles;
  for (const auto& style : job.styles) {
    if (options.only_styles.empty() ||
        std::find(options.only_styles.begin(), options.only_styles.end(), style.name) !=
            options.only_styles.end()) {
      styles.push_back(&style);
    }
  }
  // Every rank must run the same job: compare fingerprints before anything else.
  if (me.size > 1) {
    char mine[32];
    std::snprintf(mine, sizeof(mine), "%016llx", static_cast<unsigned long long>(JobFingerprint(job)));
    const auto all = world.all().AllGather(mine);
    for (int r = 0; r < me.size; ++r) {
      if (all[static_cast<size_t>(r)] != all[0]) {
        throw ConfigError({"rank " + std::to_string(r) + " loaded a different job than rank 0 "
                           "(fingerprint " + all[static_cast<size_t>(r)] + " vs " + all[0] +
                           "): every rank must see the same job file, overrides and paths"});
      }
    }
  }
  const StyleSchedule plan =
      PlanStyles(static_cast<int>(styles.size()), me.size, job.distributed.ranks_per_style);
  const int group_index = plan.GroupOf(me.rank);
  std::unique_ptr<Communicator> group = world.Split(group_index, plan.RankInGroup(me.rank));

  // One GPU per rank, chosen by local rank; a preflight makes sure no two ranks share one.
  const bool cuda = torch::cuda::is_available();
  const torch::Device device =
      cuda ? torch::Device(torch::kCUDA,
                           static_cast<c10::DeviceIndex>(me.local_rank % torch::cuda::device_count()))
           : torch::Device(torch::kCPU);
  if (cuda && me.size > 1) {
    const auto placements = world.all().AllGather(me.host + " GPU " + std::to_string(device.index()));
    for (int a = 0; a < me.size; ++a) {
      for (int b = a + 1; b < me.size; ++b) {
        if (placements[static_cast<size_t>(a)] == placements[static_cast<size_t>(b)]) {
          throw ConfigError({"ranks " + std::to_string(a) + " and " + std::to_string(b) +
                             " would share " + placements[static_cast<size_t>(a)] +
                             ": start at most as many ranks per node as it has GPUs"});
        }
      }
    }
  }
  const std::string backend =
      job.distributed.backend == "auto" ? (cuda ? "nccl" : "mpi") : job.distributed.backend;
  if (backend == "nccl" && !cuda) {
    throw ConfigError({"distributed.backend: nccl needs CUDA GPUs and a CUDA build "
                       "(-DSTYLEFLEET_WITH_CUDA=ON); this process sees none"});
  }
  if (backend == "mpi" && cuda && me.size > 1) {
    throw ConfigError({"distributed.backend: mpi averages host memory; with tensors on CUDA "
                       "use nccl (or auto)"});
  }
  std::unique_ptr<Communicator> nccl;
  if (backend == "nccl" && group->size() > 1) nccl = MakeNcclCommunicator(*group, device.index());
  Communicator& gradients = nccl ? *nccl : *group;

  // Problems that would stop a style later are found before any training starts.
  Vgg16 vgg = Vgg16::Load(job.loss_network.weights);
  vgg.To(device);
  if (vgg.is_random() && me.rank == 0) {
    SF_LOG(kWarning) << "loss network is random (" << job.loss_network.weights
                     << "): the machinery trains, but results are not artistic without real "
                        "VGG-16 weights (launch/convert_vgg16.py)";
  }
  for (const StyleSpec* style : styles) {
    try {
      LoadImageFile(style->image, DecodeOptions{job.data.max_image_pixels, 0});
    } catch (const DataError& e) {
      throw DataError("style '" + style->name + "': bad style image: " + e.what());
    }
  }
  const std::vector<std::string> files = ListImageFiles(job.data.content_dir);
  if (me.rank == 0) {
    SF_LOG(kInfo) << "job " << job.name << ": " << styles.size() << " style(s), " << files.size()
                  << " content images, " << me.size << " rank(s), " << threads
                  << " thread(s) per rank, " << (cuda ? "CUDA" : "CPU");
    if (me.size > 1) {
      std::vector<std::string> names;
      JobConfig view = job;
      view.styles.clear();
      for (const StyleSpec* s : styles) view.styles.push_back(*s);
      std::istringstream lines(DescribeSchedule(view, plan));
      for (std::string line; std::getline(lines, line);) SF_LOG(kInfo) << line;
    }
  }
  // Under mpirun the ranks' output is interleaved (and usually a file): no progress line.
  TrainRunOptions run_options = options;
  const auto null_metrics = MakeNullMetrics();
  if (me.size > 1) run_options.progress = false;
  TrainOutcome outcome;
  StepClock clock(device, !options.trace_path.empty());
  const auto& mine = plan.styles_of_group[static_cast<size_t>(group_index)];
  for (size_t i = 0; i < mine.size() && !outcome.stopped; ++i) {
    const StyleSpec& style = *styles[static_cast<size_t>(mine[i])];
    if (group->rank() == 0) {
      SF_LOG(kInfo) << "style " << i + 1 << "/" << mine.size()
                    << (me.size > 1 ? " of group " + std::to_string(group_index) : std::string())
                    << ": " << style.name;
    }
    try {
      outcome.stopped =
          StyleTrainer(job, style, vgg, files, run_options, gradients, device, group_index,
                       options.metrics != nullptr ? *options.metrics : *null_metrics, clock)
              .Run();
    } catch (const NumericalFault& e) {
      // The group decided together (group-averaged values), so all its ranks are here.
      if (group->rank() == 0) SF_LOG(kError) << e.what();
      outcome.failed_styles.push_back(style.name);
    }
  }
  if (!options.trace_path.empty()) {
    const std::string path = RankTracePath(options.trace_path, me.rank, me.size);
    clock.WriteTrace(path, me.rank, "rank " + std::to_string(me.rank) + " (" + me.host + ")");
    if (me.rank == 0) SF_LOG(kInfo) << "step trace written to " << path;
  }
  // Groups finish at different times; leave together.
  world.all().Barrier();
  return outcome;
}

}  // namespace stylefleet
