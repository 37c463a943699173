// The options several subcommands share (cli/command.h).
#include "cli/command.h"

#include "common/cpu_info.h"

namespace stylefleet {

void JobArgs::AddTo(CLI::App* command) {
  command->add_option("job", job_file, "Job file (stylefleet job or seed-style per-style file)")
      ->required();
  command->add_option("--set", overrides,
                      "Override a key: section.key=value (value in YAML), e.g. "
                      "training.batch_size=8 or styles.wave.style_weight=50; repeatable");
  command->add_option("--content", content_dir,
                      "Content image folder (overrides data.content_dir; seed-style files default "
                      "to train2014/ under the working directory)");
}

LoadOptions JobArgs::load_options() const {
  LoadOptions options;
  options.overrides = overrides;
  options.content_dir = content_dir;
  return options;
}

CLI::Option* AddThreadsOption(CLI::App* command, int* threads, ThreadsDefault left_out) {
  const std::string text =
      left_out == ThreadsDefault::kPerRank
          ? "Intra-op threads per rank, 1 to 1024; 0 or left out: OMP_NUM_THREADS when set, "
            "else cores / ranks on the host"
          : "Intra-op threads, 1 to 1024; 0 or left out: OMP_NUM_THREADS when set, else all "
            "cores";
  return command->add_option("--threads", *threads, text)->check(CLI::Range(0, kMaxIntraOpThreads));
}

CLI::Option* AddConvolutionOption(CLI::App* command, std::string* convolution) {
  return command
      ->add_option("--convolution", *convolution,
                   "fp32 3x3 convolutions on CPU: winograd (oneDNN's, where the CPU has it) or "
                   "direct (LibTorch's, as PyTorch computes them), as the job key "
                   "job.convolution (default winograd)")
      ->check(CLI::IsMember({"winograd", "direct"}));
}

CLI::Option* AddTraceOption(CLI::App* command, std::string* path, const std::string& what) {
  return command->add_option("--trace", *path,
                             "Write a Chrome-trace JSON of " + what + " here; open it in Perfetto");
}

}  // namespace stylefleet
