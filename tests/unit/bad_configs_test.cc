// Thirty-odd hand-written bad jobs through the real command line: each must
// exit with code 2 and the expected message at the expected position, never
// crash or hang.
#include <gtest/gtest.h>

#include <cstdio>

#include "test_paths.h"
#include "test_util.h"

namespace stylefleet {
namespace {

struct BadConfig {
  const char* name;
  std::string yaml;
  std::string expected;  // a substring of the output, "DIR" standing for the folder
};

const std::string kHead = "data:\n  content_dir: photos\nloss_network:\n  weights: random:1\n";
const std::string kStyles = "styles:\n  - image: s.png\n";

std::vector<BadConfig> Cases() {
  std::string bomb = "a: &a [x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'j'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [*" + char(c - 1) + ", *" + char(c - 1) + ", *" +
            char(c - 1) + ", *" + char(c - 1) + "]\n";
  }
  std::string deep(5000, '[');
  return {
      {"syntax error", "job: [unclosed\n", "job.yaml:2:1: YAML syntax error"},
      {"tab indentation", "job:\n\tname: x\n",
       "job.yaml:2:6: YAML syntax error: illegal map value"},
      {"top level is a list", "- a\n- b\n", "job.yaml:1:1: expected a mapping at the top"},
      {"empty file", "", "job.yaml:1:1: job file is empty"},
      {"unknown section", kHead + "trainig: {}\n" + kStyles,
       "job.yaml:5:1: unknown key 'trainig'; did you mean 'training'?"},
      {"unknown key", kHead + "training: {batchsize: 2}\n" + kStyles,
       "job.yaml:5:12: unknown key 'batchsize' in 'training'; did you mean 'batch_size'?"},
      {"section not a mapping", kHead + "training: 5\n" + kStyles,
       "job.yaml:5:11: 'training' must be a mapping of keys"},
      {"string for integer", kHead + "training: {batch_size: two}\n" + kStyles,
       "job.yaml:5:24: training.batch_size: expected an integer, got 'two'"},
      {"quoted number", kHead + "training: {style_weight: \"5\"}\n" + kStyles,
       "training.style_weight: expected a number, got the string \"5\""},
      {"float for integer", kHead + "training: {epochs: 1.5}\n" + kStyles,
       "training.epochs: expected an integer, got '1.5'"},
      {"list for number", kHead + "training: {tv_weight: [1]}\n" + kStyles,
       "training.tv_weight: expected a number, got a list"},
      {"negative weight", kHead + "training: {content_weight: -1}\n" + kStyles,
       "training.content_weight: must be >= 0 and <= 1e+12, got -1"},
      {"NaN weight", kHead + "training: {style_weight: .nan}\n" + kStyles,
       "training.style_weight: must be a finite number, got .nan"},
      {"infinite weight", kHead + "training: {style_weight: .inf}\n" + kStyles,
       "training.style_weight: must be a finite number, got .inf"},
      {"huge weight", kHead + "training: {style_weight: 1e400}\n" + kStyles,
       "training.style_weight: must be a finite number, got 1e400"},
      {"zero batch", kHead + "training: {batch_size: 0}\n" + kStyles,
       "training.batch_size: must be between 1 and 1024, got 0"},
      {"huge batch", kHead + "training: {batch_size: 100000}\n" + kStyles,
       "training.batch_size: must be between 1 and 1024, got 100000"},
      {"integer overflow", kHead + "training: {max_steps: 99999999999999999999999}\n" + kStyles,
       "training.max_steps: expected an integer"},
      {"zero learning rate", kHead + "training: {learning_rate: 0}\n" + kStyles,
       "training.learning_rate: must be > 0 and <= 1, got 0"},
      {"image size not multiple of 4",
       "data:\n  content_dir: photos\n  image_size: 130\nloss_network:\n  weights: random:1\n" +
           kStyles,
       "job.yaml:3:15: data.image_size: must be a multiple of 4"},
      {"image size too small",
       "data:\n  content_dir: photos\n  image_size: 32\nloss_network:\n  weights: random:1\n" +
           kStyles,
       "data.image_size: must be between 64 and 4096, got 32"},
      {"image size huge",
       "data:\n  content_dir: photos\n  image_size: 100000\nloss_network:\n  weights: random:1\n" +
           kStyles,
       "data.image_size: must be between 64 and 4096, got 100000"},
      {"unknown layer", kHead + "  style_layers: [conv9_9]\n" + kStyles,
       "loss_network.style_layers[0]: unknown layer 'conv9_9'; valid layers are conv1_1"},
      {"wrong slim scope", kHead + "  content_layers: [vgg_16/conv2/conv3_3]\n" + kStyles,
       "unknown layer 'vgg_16/conv2/conv3_3'"},
      {"empty layer list", kHead + "  style_layers: []\n" + kStyles,
       "loss_network.style_layers: expected a non-empty list of VGG-16 layer names, got an empty "
       "list"},
      {"duplicate layer", kHead + "  style_layers: [conv1_2, relu1_2]\n" + kStyles,
       "layer 'relu1_2' is listed twice"},
      {"bad random seed",
       "data:\n  content_dir: photos\nloss_network:\n  weights: random:abc\n" + kStyles,
       "job.yaml:4:12: loss_network.weights: expected random:SEED"},
      {"missing weights file",
       "data:\n  content_dir: photos\nloss_network:\n  weights: none.pth\n" + kStyles,
       "weights file 'DIR/none.pth' does not exist"},
      {"TensorFlow checkpoint",
       "data:\n  content_dir: photos\nloss_network:\n  weights: vgg_16.ckpt\n" + kStyles,
       "is a TensorFlow checkpoint, which stylefleet cannot read"},
      {"missing content folder",
       "data:\n  content_dir: nowhere\nloss_network:\n  weights: random:1\n" + kStyles,
       "job.yaml:2:16: data.content_dir: content folder 'DIR/nowhere' does not exist"},
      {"missing style image", kHead + "styles:\n  - image: none.jpg\n",
       "job.yaml:6:5: style 'none': style image 'DIR/none.jpg' does not exist"},
      {"duplicate style", kHead + "styles:\n  - image: s.png\n  - name: s\n    image: s.png\n",
       "duplicate style name 's' (first defined at DIR/job.yaml:6:5)"},
      {"style name with slash", kHead + "styles:\n  - name: a/b\n    image: s.png\n",
       "styles[].name: must be UTF-8 text without '/'"},
      {"no styles", kHead, "missing required section 'styles'"},
      {"empty styles", kHead + "styles: []\n", "'styles' must be a non-empty list of styles"},
      {"style without image", kHead + "styles:\n  - name: x\n",
       "style is missing required key 'image'"},
      {"missing seed file", kHead + "styles:\n  - conf/none.yml\n",
       "job.yaml:6:5: styles[]: cannot open seed-style file 'DIR/conf/none.yml' (missing, or not a "
       "file)"},
      {"folder as seed file", kHead + "styles:\n  - photos\n",
       "cannot open seed-style file 'DIR/photos' (missing, or not a file)"},
      {"duplicate key", kHead + "training: {epochs: 1}\ntraining: {epochs: 2}\n" + kStyles,
       "job.yaml:6:1: duplicate section 'training'"},
      {"micro batches do not divide",
       kHead + "training: {batch_size: 4, micro_batches: 3}\n" + kStyles,
       "micro_batches (3) must divide batch_size (4)"},
      {"epochs and steps zero", kHead + "training: {epochs: 0, max_steps: 0}\n" + kStyles,
       "epochs and max_steps are both 0"},
      {"bad backend", kHead + "distributed: {backend: tcp}\n" + kStyles,
       "distributed.backend: expected auto, mpi or nccl, got 'tcp'"},
      {"bad listen", kHead + "monitoring: {listen: 9450}\n" + kStyles,
       "monitoring.listen: expected host:port (e.g. 0.0.0.0:9450) or off, got '9450'"},
      {"alias bomb", kHead + bomb + "styles: *j\n", "unknown key 'a'"},
      {"deep nesting", kHead + "x: " + deep + "\n", "job.yaml:"},
      {"seed file with wrong loss model", "style_image: s.png\nnaming: w\nloss_model: resnet\n",
       "loss_model: only 'vgg_16' is supported, got 'resnet'"},
  };
}

testing::CommandResult Check(const std::string& job) {
  return testing::RunCommand(std::string(STYLEFLEET_BINARY) + " check " + job);
}

TEST(BadConfigsTest, EachIsRejectedWithItsMessageAndCode2) {
  const auto cases = Cases();
  ASSERT_GE(cases.size(), 30u);
  testing::TempDir dir;
  testing::WriteFile(dir / "photos/a.jpg", "x");
  SaveImageFile(testing::MakeTestImage(8, 8, 0), dir / "s.png");
  for (const auto& c : cases) {
    testing::WriteFile(dir / "job.yaml", c.yaml);
    const testing::CommandResult r = Check(dir / "job.yaml");
    std::string expected = c.expected;
    for (size_t at; (at = expected.find("DIR")) != std::string::npos;)
      expected.replace(at, 3, dir.path());
    EXPECT_EQ(r.exit_code, 2) << c.name << "\n" << r.output;
    EXPECT_NE(r.output.find(expected), std::string::npos)
        << c.name << ": expected '" << expected << "' in\n"
        << r.output;
  }
  std::printf("%zu bad configs rejected with exit code 2\n", cases.size());
}

}  // namespace
}  // namespace stylefleet
