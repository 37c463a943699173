// The subcommands that use a trained model or measure the machine: stylize,
// export, info, losses and bench (their work is in src/commands).
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include "cli/command.h"
#include "comm/world.h"
#include "commands/commands.h"
#include "common/error.h"
#include "common/log.h"
#include "common/writable_file.h"
#include "runtime/launch_errors.h"

namespace stylefleet {
namespace {

// "stylize: 3 written, 2 skipped (1 output exists, 1 inside the output
// folder), 0 failed": the line a user reads after a long run.
std::string DescribeStylizeResult(const StylizeResult& result) {
  int exists = 0, inside = 0, repeated = 0;
  for (const SkippedImage& skipped : result.skipped) {
    if (skipped.reason == SkipReason::kOutputExists) ++exists;
    if (skipped.reason == SkipReason::kInsideOutput) ++inside;
    if (skipped.reason == SkipReason::kRepeatedInput) ++repeated;
  }
  std::string why;
  const auto add = [&](int count, const std::string& what) {
    if (count > 0) why += (why.empty() ? "" : ", ") + std::to_string(count) + " " + what;
  };
  add(exists, "output exists, --overwrite replaces");
  add(inside, "inside the output folder");
  add(repeated, "given twice");
  return "stylize: " + std::to_string(result.written.size()) + " written, " +
         std::to_string(result.skipped.size()) + " skipped" +
         (why.empty() ? "" : " (" + why + ")") + ", " + std::to_string(result.failed.size()) +
         " failed";
}

class StylizeCommand : public Command {
 public:
  CLI::App* Register(CLI::App& app) override {
    CLI::App* stylize = app.add_subcommand("stylize", "Apply a trained model to images");
    stylize
        ->add_option("--model", options_.model,
                     "model.pt, a checkpoint, a style's output folder, or a PyTorch-example .pth")
        ->required();
    stylize->add_option("inputs", options_.inputs, "Images or folders of images")->required();
    stylize->add_option("--output", options_.output_dir, "Output folder")->required();
    stylize->add_option("--format", options_.format, "jpg or png (default jpg)");
    stylize->add_option("--tile", options_.tile_size,
                        "Images with a side over this many pixels run layer by layer in tiles of "
                        "this size: the same result as one pass, in less memory (default 1024; "
                        "at least 64; 0: always one pass)");
    stylize->add_option("--overlap", options_.tile_overlap,
                        "Ignored, kept for old command lines: tiles no longer overlap or blend");
    stylize
        ->add_option("--max-image-pixels", options_.max_image_pixels,
                     "Refuse inputs whose header declares more pixels, before decoding (default "
                     "100000000; decoding takes 3 bytes a pixel, stylizing more)")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
    AddThreadsOption(stylize, &options_.threads, ThreadsDefault::kAllCores);
    stylize->add_flag("--overwrite", options_.overwrite,
                      "Replace output files that exist (default: keep them, skip their inputs)");
    AddStyleChoice(stylize);
    AddConvolutionOption(stylize, &options_.convolution);
    stylize->footer(
        "A folder's tree is mirrored under --output (IN/sub/a.png -> OUT/sub/a.jpg); a file goes "
        "to OUT/<its name>. Images inside the output folder are never read. Skipped images "
        "(output exists, inside the output folder, given twice) are logged and counted; they do "
        "not fail the run.\nExit codes: 0 every image written or skipped; 1 an image or the "
        "model could not be read or written; 2 bad options, or two inputs that would write one "
        "output file (a.jpg and a.png -> a.jpg): then nothing is written.");
    return stylize;
  }

  int Run() override {
    const StylizeResult result = StylizeImages(options_);
    WriteToStderr(DescribeStylizeResult(result) + "\n");
    return result.failed.empty() ? kExitOk : kExitRuntimeError;
  }

 private:
  // Which style, blend and colours the model gives each image.
  void AddStyleChoice(CLI::App* stylize) {
    stylize->add_option("--style", options_.style,
                        "A conditional model's style (`stylefleet info MODEL` lists them)");
    stylize->add_flag("--preserve-colour,--preserve-color", options_.preserve_colour,
                      "Keep each photo's colours: take only the stylized luminance (YCbCr, "
                      "BT.601) and the photo's chroma; a channel that would leave 0..255 is "
                      "clamped");
    stylize->add_option("--blend", options_.blend,
                        "A conditional model's blend of styles: NAME=W,NAME=W with weights from "
                        "0 to 1 that sum to 1 (e.g. candy=0.7,mosaic=0.3); for an arbitrary-style "
                        "model, one weight per --style-image in order (e.g. 0.7,0.3; default: "
                        "equal), blended in the predictor's embedding");
    stylize
        ->add_option("--style-image", options_.style_images,
                     "An arbitrary-style model's style: any image (give it again for more "
                     "images to blend). Summarized by the model's loss network at the "
                     "model's style image size (`stylefleet info MODEL` shows both)")
        ->allow_extra_args(false);  // one path per --style-image: the photos follow
    stylize
        ->add_option("--strength", options_.strength,
                     "An arbitrary-style model's style strength from 0 to 1 (default 1): each "
                     "photo's embedding moves from its own (0) to the style's (1)")
        ->check(CLI::Range(0.0, 1.0));
    stylize->add_option("--loss-network", options_.loss_network,
                        "An arbitrary-style model's loss network (weights file or random:SEED), "
                        "when not the file it names (`info` shows it)");
  }

  StylizeOptions options_;
};

class ExportCommand : public Command {
 public:
  CLI::App* Register(CLI::App& app) override {
    CLI::App* command = app.add_subcommand(
        "export",
        "Write a model as a PyTorch state dict (PyTorch example names; an arbitrary-style "
        "model with its loss network's layers, for python/stylefleet_torch.py)");
    command->add_option("--model", model_, "Model file or style output folder")->required();
    command->add_option("--to", to_, "Output .pt/.pth file")->required();
    command->add_flag("--overwrite", overwrite_,
                      "Replace --to if it exists (without it an existing file is kept: exit 2)");
    command->add_flag(
        "--keep-names", keep_names_,
        "Keep a per-style model's style, job and (from a checkpoint) step as stylefleet.* "
        "entries (python/stylefleet_torch.py --list and `info` show them; the PyTorch "
        "example's strict load_state_dict refuses them). A conditional network always keeps "
        "its style names");
    command->add_option("--loss-network", loss_network_,
                        "An arbitrary-style model's loss network (weights file or random:SEED), "
                        "when the one it names is not at hand: a copy of the network it trained "
                        "with. Its layers down to the deepest the predictor reads go into the "
                        "export, which names it");
    return command;
  }

  int Run() override {
    ExportModel(model_, to_, overwrite_, keep_names_, loss_network_);
    return kExitOk;
  }

 private:
  std::string model_, to_, loss_network_;
  bool overwrite_ = false;
  bool keep_names_ = false;
};

class InfoCommand : public Command {
 public:
  CLI::App* Register(CLI::App& app) override {
    CLI::App* info = app.add_subcommand(
        "info", "Describe a model file: network kind, its styles, parameters and size");
    info->add_option("model", model_, "model.pt, a checkpoint or an output folder")->required();
    return info;
  }

  int Run() override {
    std::cout << DescribeModel(model_);
    return kExitOk;
  }

 private:
  std::string model_;
};

class LossesCommand : public Command {
 public:
  CLI::App* Register(CLI::App& app) override {
    CLI::App* losses =
        app.add_subcommand("losses", "Print the seed's loss terms for one image as JSON");
    losses->add_option("--loss-network", options_.loss_network,
                       "Weights file or random:SEED (default with --job: the job's)");
    losses->add_option("--model", options_.model,
                       "Transformer to stylize the content with (default: score the content "
                       "itself). An arbitrary-style model stylizes with the norms it predicts "
                       "from the style image (summarized by the loss network its file names)");
    losses->add_option("--content", options_.content, "Content image")->required();
    losses->add_option("--style", options_.style,
                       "Style image; with --job, the name of one of the job's styles (its image "
                       "and weights; may be left out when the job has one style)");
    losses
        ->add_option("--image-size", options_.image_size,
                     "Content crop size (default: the job's data.image_size, or 256); the style "
                     "image is cropped to the job style's training.style_image_size, or to this")
        ->check(CLI::Range(16, 4096));
    losses->add_option("--job", job_file_,
                       "Take layers, loss network, image size and the style's weights from this "
                       "job");
    luminance_flag_ = losses->add_flag(
        "--style-luminance-only", luminance_,
        "Style loss on luminance only, as training.style_luminance_only (default: the --job "
        "style's setting, else off; --style-luminance-only=false turns a job's off)");
    return losses;
  }

  int Run() override {
    if (luminance_flag_->count() > 0) options_.style_luminance_only = luminance_;
    JobConfig job;
    if (!job_file_.empty()) {
      job = LoadJob(job_file_);
      options_.job = &job;
    }
    std::cout << ComputeLossesJson(options_) << "\n";
    return kExitOk;
  }

 private:
  LossesOptions options_;
  std::string job_file_;
  bool luminance_ = false;
  CLI::Option* luminance_flag_ = nullptr;
};

class BenchCommand : public Command {
 public:
  CLI::App* Register(CLI::App& app) override {
    CLI::App* bench = app.add_subcommand(
        "bench", "Measure training, stylizing and allreduce speed on this machine; prints JSON");
    AddStepOptions(bench);
    AddWhatToMeasure(bench);
    bench->add_option("--loss-network", options_.loss_network,
                      "Weights file or random:SEED (default random:7; speed does not depend on "
                      "it)");
    AddTraceOption(bench, &options_.trace_path, "every timed phase");
    bench->add_option("--output", output_, "Also write the JSON to this file");
    bench->add_flag("!--no-progress", options_.progress, "No progress lines on stderr");
    return bench;
  }

  // On one process or over all ranks of an mpirun launch (the same abort path as `train`).
  int Run() override {
    const std::unique_ptr<World> world = LaunchedByMpi() ? MakeMpiWorld() : MakeSoloWorld();
    PrefixLogWithRank(*world);
    return RunOnEveryRank(*world, [&] {
      // A bad --output fails now, not after minutes of measuring.
      if (!output_.empty() && world->info().rank == 0) CheckWritableFile(output_, "--output");
      const std::string json = RunBenchmark(options_, *world);
      if (world->info().rank != 0) return kExitOk;
      std::cout << json << "\n";
      if (!output_.empty()) {
        // Streamed, not replaced (ReplaceFileDurably): --output may name /dev/stdout or a pipe.
        std::ofstream out(output_, std::ios::trunc);
        out << json << "\n";
        if (!out) throw Error("cannot write " + output_ + " (" + std::strerror(errno) + ")");
      }
      return kExitOk;
    });
  }

 private:
  // The shape of the measured training step.
  void AddStepOptions(CLI::App* bench) {
    bench->add_option("--image-size", options_.image_size, "Image side in pixels (default 256)")
        ->check(CLI::Range(16, 4096));
    bench->add_option("--batch", options_.batch_size, "Images per step per rank (default 4)")
        ->check(CLI::Range(1, 1024));
    AddThreadsOption(bench, &options_.threads, ThreadsDefault::kPerRank);
    bench->add_option("--warmup", options_.warmup_steps, "Untimed steps first (default 1)")
        ->check(CLI::Range(0, 1000));
    bench->add_option("--steps", options_.steps, "Timed steps per measurement (default 3)")
        ->check(CLI::Range(1, 100000));
    bench
        ->add_option("--precision", options_.precisions,
                     "fp32 and/or bf16 (default both; bf16 only with BF16 instructions or a GPU)")
        ->check(CLI::IsMember({"fp32", "bf16"}));
    bench->add_option("--micro-batches", options_.micro_batches,
                      "Parts each step's batch runs in, as training.micro_batches (default 1)");
    bench->add_option("--bucket-mb", options_.bucket_mb,
                      "Gradient bucket cap in MiB, as distributed.bucket_mb (default 25)");
    bench->add_flag("--channels-last", options_.channels_last,
                    "Weights and images in channels-last (NHWC) layout");
    AddConvolutionOption(bench, &options_.convolution);
    bench->add_flag("--tf32", options_.tf32,
                    "GPU: allow TF32 in fp32 convolutions and matrix products (default: true "
                    "fp32)");
  }

  // The measurements beside the training step.
  void AddWhatToMeasure(CLI::App* bench) {
    bench
        ->add_option("--styles-at-once", options_.styles_at_once,
                     "Also train this many styles at once and compare (default 4; 1 skips)")
        ->check(CLI::Range(1, 64));
    bench->add_option("--content", options_.content_dir,
                      "A folder of images: also measure training through the data pipeline");
    bench
        ->add_option("--loader-threads", options_.loader_threads,
                     "Decode threads for --content (default 2)")
        ->check(CLI::Range(1, 256));
    bench
        ->add_option("--stylize-sizes", options_.stylize_sizes,
                     "Image sides for the stylize measurement (default 256 1024; 0 skips it)")
        ->check(CLI::Range(0, 8192));
    bench->add_flag("!--no-machine", options_.machine_throughput,
                    "Skip measuring the machine (JSON machine_throughput: GFLOP/s of a 3x3 "
                    "convolution and a 2048^3 matrix product, fp32 and bf16; a few seconds)");
  }

  BenchOptions options_;
  std::string output_;
};

}  // namespace

std::unique_ptr<Command> MakeStylizeCommand() { return std::make_unique<StylizeCommand>(); }
std::unique_ptr<Command> MakeExportCommand() { return std::make_unique<ExportCommand>(); }
std::unique_ptr<Command> MakeInfoCommand() { return std::make_unique<InfoCommand>(); }
std::unique_ptr<Command> MakeLossesCommand() { return std::make_unique<LossesCommand>(); }
std::unique_ptr<Command> MakeBenchCommand() { return std::make_unique<BenchCommand>(); }

}  // namespace stylefleet
