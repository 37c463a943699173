// `stylefleet bench`: what a step costs on this machine, as one JSON document.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "comm/world.h"
#include "commands/commands.h"
#include "commands/machine_throughput.h"
#include "common/cpu_info.h"
#include "common/error.h"
#include "common/log.h"
#include "common/torch_compat.h"
#include "common/writable_file.h"
#include "config/job_config.h"
#include "data/batch_loader.h"
#include "data/dataset.h"
#include "model/vgg16.h"
#include "model/winograd_conv.h"
#include "optim/adam.h"
#include "runtime/rank_runtime.h"
#include "step/forward_pass.h"
#include "step/step_cost.h"
#include "step/training_step.h"

namespace stylefleet {
namespace {
using Clock = std::chrono::steady_clock;
using nlohmann::json;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : 0.5 * (values[n / 2 - 1] + values[n / 2]);
}

// The system BLAS that Debian's LibTorch (BLAS_INFO=generic) ends up calling.
std::string SystemBlas() {
  for (const char* link : {"/etc/alternatives/libblas.so.3-x86_64-linux-gnu",
                           "/etc/alternatives/libblas.so.3-aarch64-linux-gnu"}) {
    char target[512];
    const ssize_t n = readlink(link, target, sizeof(target) - 1);
    if (n > 0) return std::string(target, static_cast<size_t>(n));
  }
  return "unknown";
}

// Peak fp32 FLOP/s of the cores in use, from the vector width and the clock;
// the number of FMA pipes per core is not visible to software, so it is an
// assumption that the JSON states.
json PeakEstimate(int cores) {
  const int lanes = CpuHasFlag("avx512f") ? 16 : CpuHasFlag("avx2") ? 8 : 4;
  const double mhz = std::atof(CpuInfoField("cpu MHz").c_str());
  const int fma_pipes = 2;
  const double peak = cores * mhz * 1e6 * lanes * 2.0 * fma_pipes;
  return {{"cores", cores},
          {"clock_mhz", mhz},
          {"fp32_lanes_per_vector", lanes},
          {"fma_pipes_per_core_assumed", fma_pipes},
          {"fp32_gflops", peak / 1e9},
          {"formula", "cores x clock x lanes x 2 (multiply+add) x FMA pipes"}};
}

struct Setup {
  const BenchOptions& options;
  RankRuntime& runtime;
  Vgg16 vgg;
  LossNetworkUse use;
  StepClock& clock;
  const torch::Device& device() const { return runtime.device(); }
  Communicator& group() const { return runtime.control(); }
};

// Where a measurement's batches come from.
class BatchSource {
 public:
  virtual ~BatchSource() = default;
  virtual torch::Tensor Next() = 0;
};

class SyntheticBatches : public BatchSource {
 public:
  SyntheticBatches(int batch, int size, const torch::Device& device) {
    torch::manual_seed(1234);
    images_ = (torch::rand({batch, 3, size, size}) * 255).to(device);
  }
  torch::Tensor Next() override { return images_; }

 private:
  torch::Tensor images_;
};

class FolderBatches : public BatchSource {
 public:
  FolderBatches(const std::vector<std::string>& files, const LoaderOptions& options,
                const torch::Device& device)
      : loader_(files, options), device_(device) {}
  torch::Tensor Next() override {
    batch_ = loader_.Next();
    return torch::from_blob(batch_.pixels.data(), {batch_.count, 3, batch_.size, batch_.size},
                            torch::kFloat32)
        .to(device_);
  }
  double wait_seconds() const { return loader_.wait_seconds(); }

 private:
  BatchLoader loader_;
  torch::Device device_;
  Batch batch_;
};

struct Measurement {
  std::vector<double> step_seconds;
  std::array<double, static_cast<int>(Phase::kCount)> phase_seconds{};  // summed over timed steps
  std::vector<std::vector<double>> totals;  // per step, per style: group-averaged total loss
};

// `count` random styles: transformer, style-image Gram matrices and the
// seed's default loss weights, the same on every rank and for every
// precision (seeded 100 + k). Not copyable: `targets` point into `grams`.
struct RandomStyles {
  std::vector<TransformerNet> nets;
  std::vector<std::vector<torch::Tensor>> grams;
  std::vector<StyleLossTarget> targets;
  std::vector<TransformerNet*> pointers;

  RandomStyles(const Setup& setup, int count, Precision precision)
      : grams(static_cast<size_t>(count)) {
    const int size = setup.options.image_size;
    nets.reserve(grams.size());  // `pointers` point into it
    for (size_t k = 0; k < grams.size(); ++k) {
      nets.emplace_back();
      InitializeTransformer(nets[k], 100 + k);
      nets[k]->to(setup.device());
      if (setup.options.channels_last) {
        for (auto& p : nets[k]->parameters()) {
          if (p.dim() == 4) p.set_data(p.data().contiguous(at::MemoryFormat::ChannelsLast));
        }
      }
      torch::manual_seed(100 + k);
      const torch::Tensor style_image = (torch::rand({1, 3, size, size}) * 255).to(setup.device());
      grams[k] = StyleGrams(setup.vgg, style_image, setup.use.style_layers, precision);
      const TrainingOptions defaults;
      targets.push_back({&grams[k], LossWeights{defaults.content_weight, defaults.style_weight,
                                                defaults.tv_weight}});
      pointers.push_back(&nets[k]);
    }
  }
  RandomStyles(const RandomStyles&) = delete;
  RandomStyles& operator=(const RandomStyles&) = delete;
};

// Trains `styles` models at once on batches from `source` for warmup + steps
// steps, data-parallel over the ranks, with the step `train` runs.
Measurement MeasureTraining(Setup& setup, int styles, Precision precision, BatchSource& source) {
  const BenchOptions& o = setup.options;
  StepOptions step_options{o.micro_batches, setup.use};
  step_options.use.precision = precision;
  RandomStyles random(setup, styles, precision);
  std::vector<std::unique_ptr<Adam>> optimizers;
  std::vector<std::unique_ptr<GradientBuckets>> buckets;
  std::vector<StepStyle> step_styles;
  for (size_t k = 0; k < random.nets.size(); ++k) {
    std::vector<torch::Tensor> params;
    for (const auto& item : TrainableParameters(random.nets[k])) params.push_back(item.second);
    optimizers.push_back(std::make_unique<Adam>(params, TrainingOptions{}.learning_rate));
    buckets.push_back(
        std::make_unique<GradientBuckets>(params, static_cast<size_t>(o.bucket_mb * 1024 * 1024)));
    step_styles.push_back(
        {random.pointers[k], optimizers.back().get(), buckets.back().get(), random.targets[k]});
  }
  TrainingStep step(setup.vgg, setup.runtime.control(), setup.runtime.tensors(), step_options,
                    &setup.clock);
  Measurement m;
  for (int i = 0; i < o.warmup_steps + o.steps; ++i) {
    const bool timed = i >= o.warmup_steps;
    setup.clock.Reset();
    const auto start = Clock::now();
    setup.clock.Begin(Phase::kData);
    torch::Tensor content = source.Next();
    if (o.channels_last) content = content.contiguous(at::MemoryFormat::ChannelsLast);
    const StepOutcome outcome = step.Run(content, step_styles, false);
    const double seconds = Seconds(start);
    if (timed) {
      m.step_seconds.push_back(seconds);
      for (size_t p = 0; p < m.phase_seconds.size(); ++p)
        m.phase_seconds[p] += setup.clock.seconds()[p];
    }
    std::vector<double> totals;
    for (const auto& v : outcome.styles) totals.push_back(v.total);
    m.totals.push_back(totals);
    if (o.progress && setup.group().rank() == 0) {
      std::fprintf(stderr, "  %s, %d style(s): step %d/%d %.2f s%s\n", PrecisionName(precision),
                   styles, i + 1, o.warmup_steps + o.steps, seconds, timed ? "" : " (warm-up)");
    }
  }
  return m;
}

json Report(const Setup& setup, const Measurement& m, int styles, Precision precision) {
  const BenchOptions& o = setup.options;
  const double median = Median(m.step_seconds);
  const int images = o.batch_size * setup.group().size();  // per style per step
  const StepFlops flops =
      TrainingFlopsPerImage(o.image_size, setup.use.content_layers, setup.use.style_layers);
  json phases;
  for (int p = 0; p < static_cast<int>(Phase::kCount); ++p) {
    phases[PhaseName(static_cast<Phase>(p))] =
        m.phase_seconds[static_cast<size_t>(p)] / std::max<size_t>(1, m.step_seconds.size());
  }
  const double per_style = images / median;
  // Sharing the content pass saves its FLOPs for all styles but one.
  const double flops_per_image =
      flops.total() - (styles > 1 ? flops.vgg_content * (styles - 1) / styles : 0.0);
  json r = {{"precision", PrecisionName(precision)},
            {"styles_at_once", styles},
            {"ranks", setup.group().size()},
            {"batch_per_rank", o.batch_size},
            {"image_size", o.image_size},
            {"step_seconds_median", median},
            {"step_seconds", m.step_seconds},
            {"images_per_second_per_style", per_style},
            {"images_per_second_all_styles", per_style * styles},
            {"phase_seconds_per_step", phases},
            {"gflop_per_image", flops_per_image / 1e9},
            {"achieved_gflops", per_style * styles * flops_per_image / 1e9},
            {"total_loss_by_step", m.totals}};
  return r;
}

// Largest relative difference between each style's losses when the styles
// share one pass and when each runs alone (same weights, same batch).
double SharedPassDeviation(Setup& setup, int styles) {
  torch::NoGradGuard no_grad;
  const int size = setup.options.image_size;
  torch::manual_seed(7);
  const torch::Tensor content =
      (torch::rand({setup.options.batch_size, 3, size, size}) * 255).to(setup.device());
  const RandomStyles random(setup, styles, Precision::kFp32);
  const auto together =
      ForwardStyleLosses(random.pointers, setup.vgg, content, random.targets, setup.use, nullptr);
  double worst = 0;
  for (int k = 0; k < styles; ++k) {
    const auto alone =
        ForwardStyleLosses({random.pointers[static_cast<size_t>(k)]}, setup.vgg, content,
                           {random.targets[static_cast<size_t>(k)]}, setup.use, nullptr);
    const double a = alone[0].total.item<double>();
    const double t = together[static_cast<size_t>(k)].total.item<double>();
    worst = std::max(worst, std::abs(a - t) / std::max(std::abs(a), 1e-30));
  }
  return worst;
}

json MeasureStylize(Setup& setup, int size) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(9);
  TransformerNet net;
  net->to(setup.device());
  net->eval();
  const torch::Tensor image = (torch::rand({1, 3, size, size}) * 255).to(setup.device());
  std::vector<double> times;
  const int runs = size >= 1024 ? 2 : 4;
  for (int i = 0; i < runs + 1; ++i) {
    const auto start = Clock::now();
    const torch::Tensor out = net->forward(image);
    SynchronizeDevice(setup.device());
    if (i > 0) times.push_back(Seconds(start));  // the first run warms up
  }
  const double median = Median(times);
  return {{"image_size", size},
          {"seconds_per_image", median},
          {"images_per_second", 1.0 / median},
          {"gflop_per_image", StylizeFlopsPerImage(size) / 1e9},
          {"achieved_gflops", StylizeFlopsPerImage(size) / 1e9 / median}};
}

// algbw = bytes / time; busbw = algbw * 2(n-1)/n (the nccl-tests convention
// for allreduce: what each link carries). On the gradients' communicator and
// device, as training averages them.
json MeasureAllreduce(RankRuntime& runtime, size_t bytes) {
  const int64_t count = static_cast<int64_t>(bytes / sizeof(float));
  Communicator& group = runtime.tensors();
  const torch::Tensor data = torch::ones({count}, torch::TensorOptions(runtime.device()));
  group.AllReduceAverage(data.data_ptr<float>(), static_cast<size_t>(count));  // warm-up
  const int runs = 10;
  runtime.control().Barrier("allreduce benchmark barrier");
  const auto start = Clock::now();
  for (int i = 0; i < runs; ++i)
    group.AllReduceAverage(data.data_ptr<float>(), static_cast<size_t>(count));
  SynchronizeDevice(runtime.device());
  const double seconds = Seconds(start) / runs;
  const double n = group.size();
  const double algbw = double(count * sizeof(float)) / seconds / 1e9;
  return {{"bytes", count * sizeof(float)},
          {"seconds", seconds},
          {"algbw_gbps", algbw},
          {"busbw_gbps", algbw * 2 * (n - 1) / n}};
}

void ValidateBenchOptions(const BenchOptions& o) {
  if (o.image_size < 16 || o.image_size % 4 != 0) {
    throw ConfigError({"--image-size must be a multiple of 4, at least 16 (got " +
                       std::to_string(o.image_size) + ")"});
  }
  if (o.batch_size < 1 || o.steps < 1 || o.warmup_steps < 0) {
    throw ConfigError({"--batch and --steps must be at least 1, --warmup at least 0"});
  }
  if (o.micro_batches < 1 || o.batch_size % o.micro_batches != 0) {
    throw ConfigError({"--micro-batches (" + std::to_string(o.micro_batches) +
                       ") must divide --batch (" + std::to_string(o.batch_size) + ")"});
  }
  if (!(o.bucket_mb >= 0.001 && o.bucket_mb <= 1024)) {
    throw ConfigError({"--bucket-mb must be between 0.001 and 1024"});
  }
  for (const auto& p : o.precisions) {
    if (p != "fp32" && p != "bf16") {
      throw ConfigError({"--precision: expected fp32 or bf16, got '" + p + "'"});
    }
  }
  for (int size : o.stylize_sizes) {
    if (size != 0 && size < 16) {
      throw ConfigError({"--stylize-sizes: " + std::to_string(size) + " is below 16 px"});
    }
  }
}

// The machine, the precision knobs and what a training image costs.
void DescribeMachine(Setup& setup, json& doc) {
  const BenchOptions& o = setup.options;
  const ProcessInfo& me = setup.runtime.process();
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const bool cuda = setup.device().is_cuda();
  const std::string blas_core = OpenBlasCoreName();
  doc["machine"] = {
      {"cpu", CpuInfoField("model name")},
      {"logical_cpus", cores},
      {"device", cuda ? "cuda:" + std::to_string(setup.device().index()) : "cpu"},
      {"tf32", o.tf32 && cuda},
      {"channels_last", o.channels_last},
      // What ran (fp32 on CPU), not only what was asked: "direct" where the
      // CPU or build has no Winograd kernel.
      {"convolution", ConvolutionsUsed(o.convolution)},
      {"convolution_requested", o.convolution},
      {"winograd_available", WinogradAvailable()},
      {"bf16_instructions", CpuHasBf16()},
      {"system_blas", SystemBlas()},
      {"openblas_core", blas_core.empty() ? "unknown" : blas_core},
      {"openblas_core_change", OpenBlasCoreChange()},
      {"onednn_isa", OneDnnIsa()},
      {"libtorch", TorchVersionString()},
      {"ranks", me.size},
      {"threads_per_rank", setup.runtime.threads()},
      {"blas_threads", setup.runtime.blas_threads()},
      {"peak_estimate", PeakEstimate(std::min(cores, setup.runtime.threads() * me.local_size))}};
  const StepFlops flops =
      TrainingFlopsPerImage(o.image_size, setup.use.content_layers, setup.use.style_layers);
  doc["flops_per_training_image"] = {
      {"transformer_forward_gflop", flops.transformer_forward / 1e9},
      {"transformer_backward_gflop", flops.transformer_backward / 1e9},
      {"vgg_generated_forward_backward_gflop", flops.vgg_generated / 1e9},
      {"vgg_content_forward_gflop", flops.vgg_content / 1e9},
      {"total_gflop", flops.total() / 1e9}};
  doc["step_measured"] =
      "TrainingStep (src/step/training_step.h): the step `stylefleet train` runs, with "
      "micro_batches " +
      std::to_string(o.micro_batches) + " and gradient buckets of at most " +
      std::to_string(o.bucket_mb) + " MiB, set up by the same per-rank runtime";
}

void Say(const Setup& setup, const std::string& text) {
  if (setup.options.progress && setup.runtime.process().rank == 0) {
    std::fprintf(stderr, "bench: %s\n", text.c_str());
  }
}

// Rank 0 measures the machine's kernels while the other ranks wait, so that
// they do not share its cores. Collective over the group.
void MeasureMachine(Setup& setup, json& doc) {
  if (!setup.options.machine_throughput) return;
  if (setup.group().rank() == 0) {
    Say(setup, "machine throughput: 3x3 convolution and 2048^3 matrix product");
    MachineThroughputOptions options;
    options.bf16 = !setup.device().is_cpu() || CpuHasBf16();
    doc["machine_throughput"] = MeasureMachineThroughput(setup.device(), options);
  }
  setup.group().Barrier("machine throughput barrier");
}

// A training rate as a fraction of the convolution rate of its precision:
// fp32 against the fp32 convolution, bf16 against the faster bf16 layout. Per
// rank: rank 0 measured the convolution with one rank's threads.
void AddConvFraction(const json& doc, json& run) {
  if (!doc.contains("machine_throughput")) return;
  const json& conv = doc["machine_throughput"]["conv3x3"];
  std::string compared = "fp32";
  if (run["precision"] == "bf16") {
    if (!conv.contains("bf16")) return;
    compared = "bf16";
    if (conv.contains("bf16_channels_last") &&
        conv["bf16_channels_last"]["gflops"].get<double>() > conv["bf16"]["gflops"].get<double>()) {
      compared = "bf16_channels_last";
    }
  }
  run["conv3x3_compared_with"] = compared;
  run["fraction_of_conv3x3_gflops"] = run["achieved_gflops"].get<double>() /
                                      run["ranks"].get<int>() /
                                      conv[compared]["gflops"].get<double>();
}

// One style per precision on synthetic batches, and bf16 against fp32.
std::map<std::string, json> MeasurePrecisions(Setup& setup, BatchSource& synthetic, json& doc) {
  const BenchOptions& o = setup.options;
  doc["train_synthetic"] = json::array();
  std::map<std::string, json> by_precision;
  for (const auto& name : o.precisions) {
    const Precision precision = name == "bf16" ? Precision::kBf16 : Precision::kFp32;
    if (precision == Precision::kBf16 && setup.device().is_cpu() && !CpuHasBf16()) {
      Say(setup, "skipping bf16: this CPU has no BF16 instructions");
      continue;
    }
    Say(setup,
        "training, synthetic images, " + name + ", " + std::to_string(o.image_size) +
            " px, batch " + std::to_string(o.batch_size) + " x " +
            std::to_string(setup.group().size()) + " rank(s), " +
            std::to_string(setup.runtime.threads()) + " thread(s)" +
            (setup.runtime.blas_threads().empty() ? ""
                                                  : " (" + setup.runtime.blas_threads() + ")"));
    const Measurement m = MeasureTraining(setup, 1, precision, synthetic);
    by_precision[name] = Report(setup, m, 1, precision);
    AddConvFraction(doc, by_precision[name]);
    doc["train_synthetic"].push_back(by_precision[name]);
  }
  if (by_precision.count("fp32") && by_precision.count("bf16")) {
    const auto& a = by_precision["fp32"]["total_loss_by_step"];
    const auto& b = by_precision["bf16"]["total_loss_by_step"];
    double worst = 0;
    for (size_t s = 0; s < a.size() && s < b.size(); ++s) {
      const double x = a[s][0].get<double>(), y = b[s][0].get<double>();
      worst = std::max(worst, std::abs(x - y) / std::max(std::abs(x), 1e-30));
    }
    doc["bf16_vs_fp32"] = {
        {"speedup", by_precision["bf16"]["images_per_second_per_style"].get<double>() /
                        by_precision["fp32"]["images_per_second_per_style"].get<double>()},
        {"max_total_loss_relative_deviation", worst},
        {"steps_compared", std::min(a.size(), b.size())}};
  }
  return by_precision;
}

// K styles trained at once against one at a time.
void MeasureStylesAtOnce(Setup& setup, BatchSource& synthetic,
                         std::map<std::string, json>& by_precision, json& doc) {
  const int k = setup.options.styles_at_once;
  if (k <= 1 || by_precision.empty()) return;
  const std::string name = by_precision.count("fp32") ? "fp32" : by_precision.begin()->first;
  const Precision precision = name == "bf16" ? Precision::kBf16 : Precision::kFp32;
  Say(setup, "training " + std::to_string(k) + " styles at once, " + name);
  const Measurement m = MeasureTraining(setup, k, precision, synthetic);
  json r = Report(setup, m, k, precision);
  // K styles one after another train at the one-style rate in total; together
  // they train K models' images per step.
  const double alone = by_precision[name]["images_per_second_per_style"].get<double>();
  r["speedup_over_one_style_at_a_time"] = r["images_per_second_all_styles"].get<double>() / alone;
  r["max_loss_relative_difference_vs_separate"] = SharedPassDeviation(setup, k);
  doc["train_styles_at_once"] = r;
}

// Training through the data pipeline, at the fastest precision measured.
void MeasurePipeline(Setup& setup, const std::vector<std::string>& files, bool bf16, json& doc) {
  const BenchOptions& o = setup.options;
  if (o.content_dir.empty()) return;
  LoaderOptions loader;
  loader.image_size = o.image_size;
  loader.batch_size = o.batch_size;
  loader.threads = o.loader_threads;
  loader.rank = setup.group().rank();
  loader.world = setup.group().size();
  const Precision precision = bf16 ? Precision::kBf16 : Precision::kFp32;
  Say(setup, "training from " + o.content_dir + " (" + std::to_string(files.size()) + " images), " +
                 PrecisionName(precision));
  FolderBatches folder(files, loader, setup.device());
  const Measurement m = MeasureTraining(setup, 1, precision, folder);
  json r = Report(setup, m, 1, precision);
  r["content_dir"] = o.content_dir;
  r["loader_threads"] = o.loader_threads;
  doc["train_pipeline"] = r;
}

// Gradient averaging at 1 MiB, the transformer's gradient size and 64 MiB.
void MeasureAllreduces(Setup& setup, json& doc) {
  if (setup.group().size() == 1) return;
  Say(setup, "allreduce");
  doc["allreduce"] = json::array();
  size_t gradient_bytes = 0;
  TransformerNet net;
  for (const auto& item : TrainableParameters(net)) {
    gradient_bytes += item.second.numel() * sizeof(float);
  }
  for (size_t bytes : {size_t{1} << 20, gradient_bytes, size_t{64} << 20}) {
    doc["allreduce"].push_back(MeasureAllreduce(setup.runtime, bytes));
  }
}

}  // namespace

std::string RunBenchmark(const BenchOptions& o, World& world) {
  ValidateBenchOptions(o);
  const ProcessInfo& me = world.info();
  // All ranks train one model: one group, set up as `train` sets up a group.
  const std::unique_ptr<RankRuntime> runtime = StartRankRuntime(
      world, RuntimeOptions{o.threads, "auto", DistributedOptions{}.timeout_seconds, 0, me.rank});
  const torch::Device device = runtime->device();
  // TF32 only when asked: fp32 figures mean fp32 arithmetic (LibTorch 2.x
  // lets cuDNN use TF32 by default).
  at::globalContext().setAllowTF32CuDNN(o.tf32);
  at::globalContext().setAllowTF32CuBLAS(o.tf32);
  if (device.is_cuda()) at::globalContext().setBenchmarkCuDNN(true);
  const ScopedWinograd convolutions(o.convolution == "winograd");
  if (!o.trace_path.empty()) {
    CheckWritableFile(RankTracePath(o.trace_path, me.rank, me.size), "--trace");
  }
  StepClock clock(device, !o.trace_path.empty());
  Setup setup{o, *runtime, Vgg16::Load(o.loss_network), {}, clock};
  setup.vgg.To(device);
  if (o.channels_last) setup.vgg.UseChannelsLast();
  setup.use.content_layers = VggLayerIndices(o.content_layers);
  setup.use.style_layers = VggLayerIndices(o.style_layers);
  // A bad folder fails now, not after minutes of measuring.
  const std::vector<std::string> files =
      o.content_dir.empty() ? std::vector<std::string>() : ListImageFiles(o.content_dir);

  json doc;
  DescribeMachine(setup, doc);
  MeasureMachine(setup, doc);
  SyntheticBatches synthetic(o.batch_size, o.image_size, device);
  std::map<std::string, json> by_precision = MeasurePrecisions(setup, synthetic, doc);
  MeasureStylesAtOnce(setup, synthetic, by_precision, doc);
  MeasurePipeline(setup, files, by_precision.count("bf16") > 0, doc);
  doc["stylize"] = json::array();
  for (int size : o.stylize_sizes) {
    if (size == 0) continue;
    Say(setup, "stylizing " + std::to_string(size) + " px");
    doc["stylize"].push_back(MeasureStylize(setup, size));
  }
  MeasureAllreduces(setup, doc);
  if (!o.trace_path.empty()) {
    const std::string path = RankTracePath(o.trace_path, me.rank, me.size);
    clock.WriteTrace(path, me.rank, "rank " + std::to_string(me.rank));
    Say(setup, "trace written to " + path);
  }
  world.all().Barrier("end of benchmark barrier");
  return me.rank == 0 ? doc.dump(2) : std::string();
}

}  // namespace stylefleet
