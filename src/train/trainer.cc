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

// Group-averaged loss values of one step of one style.
struct StepValues {
  double content = 0, style = 0, tv = 0, total = 0;
  std::vector<double> style_layers;
  bool bad = false;   ///< NaN/Inf loss or gradient: the update was skipped
  bool stop = false;  ///< a stop signal reached some rank of the group
};

// What a step cost, shared by the styles trained in it.
struct StepTiming {
  double seconds = 0;          ///< wall time of the step
  double average_seconds = 0;  ///< moving average, for the ETA
  double data_wait = 0;
  int images = 0;              ///< per style, over the group
  double epoch = 0;            ///< fractional
  int64_t skipped_files = 0;
  bool tty = false;            ///< draw the progress line
  bool stopping = false;       ///< a stop signal: StopHere writes the checkpoint
};

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

  // Claims the output folder, computes the style grams, builds the model (or
  // resumes it from the newest checkpoint) and makes every rank of the group
  // hold the same state. Returns false when the style is already trained (its
  // model is then written again).
  bool Prepare() {
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

    RunOnRoot(group_, [&] { position_ = Resume(); });
    SynchronizeState(position_);
    per_epoch_ = static_cast<int64_t>(files_.size()) / group_.size() / t.batch_size;
    total_steps_ = t.epochs > 0 ? t.epochs * per_epoch_ : INT64_MAX;
    if (t.max_steps > 0) total_steps_ = std::min(total_steps_, t.max_steps);
    if (position_.step >= total_steps_) {
      if (root_) {
        SF_LOG(kInfo) << "[" << style_.name << "] already trained (" << position_.step
                      << " steps); writing the final model";
      }
      RunOnRoot(group_, [&] { WriteModel(); });
      return false;
    }
    return true;
  }

  // Announces the run, starts the style's metrics and previews (after Prepare).
  void Start(int styles_together) {
    const auto& t = style_.training;
    if (root_) {
      SF_LOG(kInfo) << "[" << style_.name << "] training steps " << position_.step + 1 << ".."
                    << total_steps_ << " (" << per_epoch_ << " per epoch)"
                    << (styles_together > 1
                            ? ", together with " + std::to_string(styles_together - 1) +
                                  " other style(s) on the same batches"
                            : std::string());
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
    metrics_.StyleStarted(style_.name, job_.loss_network.style_layers, group_index_, root_);
    if (root_) {
      TrimMetrics(position_.step);
      PreparePreviews();
    }
    run_start_ = Clock::now();
  }

  const StyleSpec& style() const { return style_; }
  const RunPosition& position() const { return position_; }
  int64_t total_steps() const { return total_steps_; }
  TransformerNet* net() { return &net_; }
  StyleLossTarget target() const { return StyleLossTarget{&style_grams_, weights_}; }
  const LossNetworkUse& loss_use() const { return loss_use_; }
  void ZeroGrad() { adam_->ZeroGrad(); }
  bool InjectNan(int64_t step) const {
    return std::find(options_.inject_nan.begin(), options_.inject_nan.end(),
                     style_.name + ":" + std::to_string(step)) != options_.inject_nan.end();
  }

  // Group averages of the loss terms: what logs and metrics show, and what
  // the finiteness check looks at, so every rank takes the same decision.
  // The last slot carries "a stop signal arrived here" to the whole group.
  // Then averages the gradients and updates the model unless a value or
  // gradient is not finite. `values`: content, style, tv, total, each style
  // layer (this rank's, averaged over the micro-batches).
  StepValues FinishStep(std::vector<double> values) {
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

  // Everything after a step: metrics, log, replica check, preview, fault
  // count (throws NumericalFault past max_bad_steps) and checkpoint.
  void AfterStep(const RunPosition& position, const StepValues& values, const StepTiming& timing) {
    const auto& t = style_.training;
    position_ = position;
    ++steps_this_run_;
    window_seconds_ += timing.seconds;
    window_images_ += timing.images;
    const double eta = timing.average_seconds * double(total_steps_ - position.step);
    if (root_) {
      StepReport report;
      report.step = position.step;
      report.total_steps = total_steps_;
      report.images = timing.images;
      report.epoch = timing.epoch;
      report.content = values.content;
      report.style = values.style;
      report.tv = values.tv;
      report.total = values.total;
      report.content_weight = weights_.content;
      report.style_weight = weights_.style;
      report.tv_weight = weights_.tv;
      report.style_layers = values.style_layers;
      report.learning_rate = t.learning_rate;
      report.step_seconds = timing.seconds;
      report.data_wait_seconds = timing.data_wait;
      report.allreduce_seconds = group_.size() > 1 ? buckets_->last_seconds() : 0.0;
      report.eta_seconds = eta;
      metrics_.StepDone(style_.name, report);
    }
    if (timing.tty) {
      std::printf("\r[%s] step %lld/%lld  loss %.4g  %.2f img/s  ETA %s   ", style_.name.c_str(),
                  static_cast<long long>(position.step), static_cast<long long>(total_steps_),
                  values.total, timing.images / std::max(timing.seconds, 1e-9),
                  FormatDuration(eta).c_str());
      std::fflush(stdout);
    }
    const bool last = position.step == total_steps_;
    if (job_.distributed.check_every_steps > 0 && group_.size() > 1 &&
        (position.step % job_.distributed.check_every_steps == 0 || last)) {
      CheckReplicasAgree(position.step);
    }
    if (position.step % t.log_every_steps == 0 || last) {
      if (timing.tty) std::printf("\n");
      const double rate = window_images_ / std::max(window_seconds_, 1e-9);
      RunOnRoot(group_, [&] { Log(position, values, rate, eta, timing.skipped_files); });
      window_seconds_ = 0;
      window_images_ = 0;
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
    if (!timing.stopping && (position.step % job_.checkpoint.every_steps == 0 || last)) {
      RunOnRoot(group_, [&] { WriteCheckpoint(position); });
      if (root_) {
        metrics_.CheckpointWritten(
            style_.name,
            std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                .count());
      }
    }
  }

  // A stop signal: a checkpoint at the current position.
  void StopHere() {
    RunOnRoot(group_, [&] { WriteCheckpoint(position_); });
    if (root_) {
      SF_LOG(kWarning) << "[" << style_.name << "] stop signal: checkpoint written at step "
                       << position_.step << "; run the same command to resume";
    }
  }

  // The end of training: the final model.
  void Finish() {
    RunOnRoot(group_, [&] { WriteModel(); });
    metrics_.StyleFinished(style_.name);
    if (root_) {
      SF_LOG(kInfo) << "[" << style_.name << "] done: " << steps_this_run_ << " steps in "
                    << FormatDuration(std::chrono::duration<double>(Clock::now() - run_start_).count())
                    << "; model " << (fs::path(style_.output_dir) / "model.pt").string();
    }
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
  RunPosition position_;
  int64_t per_epoch_ = 0;
  int64_t total_steps_ = 0;
  int bad_in_a_row_ = 0;
  int64_t steps_this_run_ = 0;
  double window_seconds_ = 0;
  int64_t window_images_ = 0;
  Clock::time_point run_start_;
};

// Styles that can share batches: the loader and step count follow from these.
bool CanTrainTogether(const StyleSpec& a, const StyleSpec& b) {
  const auto& x = a.training;
  const auto& y = b.training;
  return x.batch_size == y.batch_size && x.micro_batches == y.micro_batches &&
         x.epochs == y.epochs && x.max_steps == y.max_steps && x.precision == y.precision;
}

// Trains prepared styles that stand at the same position on the same batches:
// one content pass and one loss-network pass over all their generated images
// per step (one style is the common case). Returns true when a stop signal
// ended it (each style wrote a checkpoint). A style stopped by numerical
// faults leaves the pass, its name added to `failed`; the others go on.
bool TrainTogether(std::vector<StyleTrainer*> trainers, const JobConfig& job,
                   const std::vector<std::string>& files, const TrainRunOptions& options,
                   Communicator& group, const Vgg16& vgg, const torch::Device& device,
                   StepClock& clock, TrainingMetrics& metrics, std::vector<std::string>& failed) {
  const TrainingOptions& t = trainers.front()->style().training;
  RunPosition position = trainers.front()->position();
  const int64_t total_steps = trainers.front()->total_steps();
  LoaderOptions loader_options;
  loader_options.image_size = job.data.image_size;
  loader_options.batch_size = t.batch_size;
  loader_options.threads = job.data.loader_threads;
  loader_options.prefetch_batches = job.data.prefetch_batches;
  loader_options.max_image_pixels = job.data.max_image_pixels;
  loader_options.seed = job.seed;
  loader_options.rank = group.rank();
  loader_options.world = group.size();
  BatchLoader loader(files, loader_options, LoaderPosition{position.epoch, position.batch});
  for (StyleTrainer* trainer : trainers) trainer->Start(static_cast<int>(trainers.size()));

  const bool tty = group.rank() == 0 && options.progress && isatty(STDOUT_FILENO);
  const size_t values_per_style = 4 + job.loss_network.style_layers.size();
  int64_t skipped_reported = 0;
  int64_t stalls_reported = CollectiveStallWarnings();
  double wait_before = 0;
  double average_seconds = 0;
  int64_t steps = 0;
  while (position.step < total_steps && !trainers.empty()) {
    const auto step_start = Clock::now();
    clock.Begin(Phase::kData);
    Batch batch = loader.Next();
    torch::Tensor content =
        torch::from_blob(batch.pixels.data(), {batch.count, 3, batch.size, batch.size},
                         torch::kFloat32);
    if (!device.is_cpu()) content = content.to(device);
    const double data_wait = loader.wait_seconds() - wait_before;
    wait_before = loader.wait_seconds();
    const int64_t step = position.step + 1;

    std::vector<TransformerNet*> nets;
    std::vector<StyleLossTarget> targets;
    for (StyleTrainer* trainer : trainers) {
      trainer->ZeroGrad();
      nets.push_back(trainer->net());
      targets.push_back(trainer->target());
    }
    const int parts = t.micro_batches;
    std::vector<std::vector<double>> values(trainers.size(), std::vector<double>(values_per_style, 0.0));
    for (int part = 0; part < parts; ++part) {
      // Part m takes images m, m+M, ... (strided like the shards of a group, so
      // M parts in one process reproduce M ranks bit for bit).
      const torch::Tensor images =
          parts == 1 ? content : content.slice(0, part, content.size(0), parts).contiguous();
      std::vector<LossTerms> terms =
          ForwardStyleLosses(nets, vgg, images, targets, trainers.front()->loss_use(), &clock);
      clock.Begin(Phase::kBackward);
      // One backward for all styles: each network's gradient comes from its own loss only.
      torch::Tensor total;
      for (size_t k = 0; k < trainers.size(); ++k) {
        if (trainers[k]->InjectNan(step)) {
          terms[k].total = terms[k].total * std::numeric_limits<double>::quiet_NaN();
        }
        // Scaling the loss by 1/M scales every gradient exactly when M is a power of 2.
        const torch::Tensor scaled = parts == 1 ? terms[k].total : terms[k].total * (1.0 / parts);
        total = k == 0 ? scaled : total + scaled;
      }
      total.backward();
      for (size_t k = 0; k < trainers.size(); ++k) {
        std::vector<double> part_values = {terms[k].content.item<double>(), terms[k].style.item<double>(),
                                           terms[k].tv.item<double>(), terms[k].total.item<double>()};
        for (const auto& layer : terms[k].style_layers) part_values.push_back(layer.item<double>());
        for (size_t i = 0; i < values_per_style; ++i) values[k][i] += part_values[i] / parts;
      }
    }
    std::vector<StepValues> results;
    bool stop = false;
    for (size_t k = 0; k < trainers.size(); ++k) {
      results.push_back(trainers[k]->FinishStep(values[k]));
      stop = stop || results.back().stop;  // the same verdict on every rank of the group
    }
    clock.End();

    position.step = step;
    position.epoch = batch.epoch;
    position.batch = batch.batch_in_epoch + 1;
    if (position.batch == loader.batches_per_epoch()) {
      position.batch = 0;
      ++position.epoch;
    }
    ++steps;
    StepTiming timing;
    timing.seconds = std::chrono::duration<double>(Clock::now() - step_start).count();
    average_seconds = steps == 1 ? timing.seconds : 0.9 * average_seconds + 0.1 * timing.seconds;
    timing.average_seconds = average_seconds;
    timing.data_wait = data_wait;
    timing.images = batch.count * group.size();
    timing.epoch = double(position.epoch) + double(position.batch) / loader.batches_per_epoch();
    timing.skipped_files = loader.skipped_files();
    timing.stopping = stop;
    const int64_t stalls_now = CollectiveStallWarnings();
    metrics.CollectiveStalls(stalls_now - stalls_reported);
    stalls_reported = stalls_now;
    metrics.ImagesSkipped(timing.skipped_files - skipped_reported);
    skipped_reported = timing.skipped_files;

    std::vector<StyleTrainer*> going_on;
    for (size_t k = 0; k < trainers.size(); ++k) {
      timing.tty = tty && k == 0;  // one progress line: the first style's
      try {
        trainers[k]->AfterStep(position, results[k], timing);
        going_on.push_back(trainers[k]);
      } catch (const NumericalFault& e) {
        // The group decided together (group-averaged values), so all its ranks are here.
        if (group.rank() == 0) SF_LOG(kError) << e.what();
        failed.push_back(trainers[k]->style().name);
      }
    }
    trainers = going_on;
    if (stop) {
      for (StyleTrainer* trainer : trainers) trainer->StopHere();
      return true;
    }
  }
  for (StyleTrainer* trainer : trainers) trainer->Finish();
  return false;
}

}  // namespace

TrainOutcome TrainJob(const JobConfig& job, const TrainRunOptions& options) {
  const auto world = MakeSoloWorld();
  return TrainJob(job, options, *world);
}

TrainOutcome TrainJob(const JobConfig& job, const TrainRunOptions& options, World& world) {
  const ProcessInfo& me = world.info();
  const int threads = UseIntraOpThreads(options.threads, me.local_size);
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
  const torch::Device device = DeviceOfLocalRank(me.local_rank);
  const bool cuda = device.is_cuda();
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
  TrainingMetrics& metrics = options.metrics != nullptr ? *options.metrics : *null_metrics;
  for (size_t i = 0; i < mine.size() && !outcome.stopped;) {
    // The next pass: up to styles_at_once consecutive styles that can share batches.
    std::vector<const StyleSpec*> pass = {styles[static_cast<size_t>(mine[i])]};
    size_t next = i + 1;
    while (next < mine.size() && static_cast<int>(pass.size()) < job.styles_at_once &&
           CanTrainTogether(*pass.front(), *styles[static_cast<size_t>(mine[next])])) {
      pass.push_back(styles[static_cast<size_t>(mine[next++])]);
    }
    std::vector<std::unique_ptr<StyleTrainer>> prepared;
    for (size_t k = 0; k < pass.size(); ++k) {
      if (group->rank() == 0) {
        SF_LOG(kInfo) << "style " << i + k + 1 << "/" << mine.size()
                      << (me.size > 1 ? " of group " + std::to_string(group_index) : std::string())
                      << ": " << pass[k]->name;
      }
      auto trainer = std::make_unique<StyleTrainer>(job, *pass[k], vgg, files, run_options, gradients,
                                                    device, group_index, metrics, clock);
      if (trainer->Prepare()) prepared.push_back(std::move(trainer));
    }
    i = next;
    // Styles resumed at different steps cannot share batches: each position trains apart.
    while (!prepared.empty() && !outcome.stopped) {
      const RunPosition first = prepared.front()->position();
      std::vector<std::unique_ptr<StyleTrainer>> now, later;
      for (auto& trainer : prepared) {
        const RunPosition& p = trainer->position();
        const bool same = p.step == first.step && p.epoch == first.epoch && p.batch == first.batch;
        (same ? now : later).push_back(std::move(trainer));
      }
      if (!later.empty() && group->rank() == 0) {
        SF_LOG(kInfo) << "styles resumed at different steps train apart";
      }
      std::vector<StyleTrainer*> together;
      for (auto& trainer : now) together.push_back(trainer.get());
      outcome.stopped = TrainTogether(together, job, files, run_options, gradients, vgg, device,
                                      clock, metrics, outcome.failed_styles);
      prepared = std::move(later);
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
