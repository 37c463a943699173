// Job loading: good jobs, seed-style files, overrides, and one test per class
// of error with the exact message and position.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "common/error.h"
#include "config/job_config.h"
#include "config/job_settings.h"
#include "test_paths.h"
#include "test_util.h"

namespace stylefleet {
namespace {
namespace fs = std::filesystem;
using testing::TempDir;
using testing::WriteFile;

// A folder with a content dir and two style images, and the job file text's common head.
class ConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(dir_ / "photos");
    WriteFile(dir_ / "styles/wave.jpg", "not decoded by the loader");
    WriteFile(dir_ / "styles/candy.png", "x");
  }

  JobConfig Load(const std::string& text, LoadOptions options = {}) {
    const std::string path = dir_ / "job.yaml";
    WriteFile(path, text);
    return LoadJob(path, options);
  }

  // The problems of a job that must fail, with the folder prefix replaced by "DIR".
  std::vector<std::string> Problems(const std::string& text, LoadOptions options = {}) {
    try {
      Load(text, options);
    } catch (const ConfigError& e) {
      std::vector<std::string> out;
      for (std::string p : e.problems()) {
        for (size_t at; (at = p.find(dir_.path())) != std::string::npos;) {
          p.replace(at, dir_.path().size(), "DIR");
        }
        out.push_back(p);
      }
      return out;
    }
    ADD_FAILURE() << "job loaded without error:\n" << text;
    return {};
  }

  // A job head whose data section lists `photos` (YAML text) as validation images.
  static std::string WithPhotos(const std::string& photos) {
    return "loss_network: {weights: 'random:1'}\n"
           "data:\n"
           "  validation_images: " +
           photos +
           "\n"
           "  content_dir: photos\n";
  }

  static std::string Head() {
    return "job:\n"
           "  name: test\n"
           "data:\n"
           "  content_dir: photos\n"
           "loss_network:\n"
           "  weights: random:1\n";
  }

  TempDir dir_;
};

TEST_F(ConfigTest, LoadsAMultiStyleJobWithDefaultsAndOverrides) {
  const JobConfig job = Load(Head() +
                             "training:\n"
                             "  style_weight: 50\n"
                             "  max_steps: 10\n"
                             "styles:\n"
                             "  - image: styles/wave.jpg\n"
                             "  - name: sweet\n"
                             "    image: styles/candy.png\n"
                             "    style_weight: 200\n"
                             "    batch_size: 2\n");
  EXPECT_EQ(job.name, "test");
  EXPECT_EQ(job.data.content_dir, dir_ / "photos");
  EXPECT_EQ(job.output_dir, dir_ / "runs/test");
  EXPECT_EQ(job.data.image_size, 256);
  EXPECT_EQ(job.loss_network.content_layers, std::vector<std::string>{"conv3_3"});
  ASSERT_EQ(job.styles.size(), 2u);
  EXPECT_EQ(job.styles[0].name, "wave");
  EXPECT_EQ(job.styles[0].image, dir_ / "styles/wave.jpg");
  EXPECT_EQ(job.styles[0].output_dir, dir_ / "runs/test/wave");
  EXPECT_EQ(job.styles[0].training.style_weight, 50);
  EXPECT_EQ(job.styles[0].training.batch_size, 4);
  EXPECT_EQ(job.styles[1].name, "sweet");
  EXPECT_EQ(job.styles[1].training.style_weight, 200);
  EXPECT_EQ(job.styles[1].training.batch_size, 2);
  EXPECT_EQ(job.styles[1].training.max_steps, 10);
  EXPECT_EQ(job.styles[1].origin, dir_ / "job.yaml:12:5");
}

TEST_F(ConfigTest, AcceptsAllThreeLayerSpellings) {
  const JobConfig job = Load(Head() +
                             "  content_layers: [vgg_16/conv3/conv3_3]\n"
                             "  style_layers: [relu1_2, conv2_2, vgg_16/conv4/conv4_3]\n"
                             "styles:\n  - image: styles/wave.jpg\n");
  EXPECT_EQ(job.loss_network.content_layers, std::vector<std::string>{"conv3_3"});
  EXPECT_EQ(job.loss_network.style_layers,
            (std::vector<std::string>{"conv1_2", "conv2_2", "conv4_3"}));
}

TEST_F(ConfigTest, CommandLineOverridesApplyToJobAndToOneStyle) {
  LoadOptions options;
  options.overrides = {"training.batch_size=8", "styles.candy.style_weight=7",
                       "loss_network.style_layers=[conv1_1, conv2_1]"};
  const JobConfig job = Load(Head() +
                                 "styles:\n  - image: styles/wave.jpg\n"
                                 "  - image: styles/candy.png\n",
                             options);
  EXPECT_EQ(job.styles[0].training.batch_size, 8);
  EXPECT_EQ(job.styles[1].training.batch_size, 8);
  EXPECT_EQ(job.styles[0].training.style_weight, 100);
  EXPECT_EQ(job.styles[1].training.style_weight, 7);
  EXPECT_EQ(job.loss_network.style_layers, (std::vector<std::string>{"conv1_1", "conv2_1"}));
}

// The seed project's own conf/wave.yml, unchanged.
const char* kSeedWave =
    "## Basic configuration\n"
    "style_image: img/wave.jpg # targeted style image\n"
    "naming: \"wave\" # the name of this model. Determine the path to save checkpoint and events "
    "file.\n"
    "model_path: models  # root path to save checkpoint and events file. The final path would be "
    "<model_path>/<naming>\n"
    "\n"
    "## Weight of the loss\n"
    "content_weight: 1.0  # weight for content features loss\n"
    "style_weight: 220.0  # weight for style features loss\n"
    "tv_weight: 0.0  # weight for total variation loss\n"
    "\n"
    "## The size, the iter number to run\n"
    "image_size: 256\n"
    "batch_size: 4\n"
    "epoch: 2\n"
    "\n"
    "## Loss Network\n"
    "loss_model: \"vgg_16\"\n"
    "content_layers:  # use these layers for content loss\n"
    "  - \"vgg_16/conv3/conv3_3\"\n"
    "style_layers:  # use these layers for style loss\n"
    "  - \"vgg_16/conv1/conv1_2\"\n"
    "  - \"vgg_16/conv2/conv2_2\"\n"
    "  - \"vgg_16/conv3/conv3_3\"\n"
    "  - \"vgg_16/conv4/conv4_3\"\n"
    "checkpoint_exclude_scopes: \"vgg_16/fc\"  # we only use the convolution layers, so ignore fc "
    "layers.\n"
    "loss_model_file: \"pretrained/vgg_16.ckpt\"  # the path to the checkpoint\n";

// Runs `body` with the working directory set to `dir` (seed files resolve against it).
template <typename F>
void InDir(const std::string& dir, F body) {
  const fs::path previous = fs::current_path();
  fs::current_path(dir);
  try {
    body();
  } catch (...) {
    fs::current_path(previous);
    throw;
  }
  fs::current_path(previous);
}

TEST_F(ConfigTest, SeedStyleFileLoadsAsOneStyleJobRelativeToWorkingDirectory) {
  WriteFile(dir_ / "conf/wave.yml", kSeedWave);
  WriteFile(dir_ / "img/wave.jpg", "x");
  fs::create_directories(dir_ / "train2014");
  InDir(dir_.path(), [&] {
    LoadOptions options;
    options.overrides = {"loss_network.weights=random:3"};
    const JobConfig job = LoadJob("conf/wave.yml", options);
    EXPECT_TRUE(job.seed_format);
    ASSERT_EQ(job.styles.size(), 1u);
    EXPECT_EQ(job.name, "wave");
    EXPECT_EQ(job.styles[0].name, "wave");
    EXPECT_EQ(job.styles[0].image, dir_ / "img/wave.jpg");
    EXPECT_EQ(job.styles[0].output_dir, dir_ / "models/wave");
    EXPECT_EQ(job.data.content_dir, dir_ / "train2014");
    EXPECT_EQ(job.styles[0].training.style_weight, 220);
    EXPECT_EQ(job.styles[0].training.epochs, 2);
    EXPECT_EQ(job.loss_network.style_layers,
              (std::vector<std::string>{"conv1_2", "conv2_2", "conv3_3", "conv4_3"}));
    EXPECT_EQ(job.loss_network.weights, "random:3");
  });
}

TEST_F(ConfigTest, SeedStyleFileExplainsThatTensorFlowCheckpointsNeedConverting) {
  WriteFile(dir_ / "conf/wave.yml", kSeedWave);
  WriteFile(dir_ / "img/wave.jpg", "x");
  fs::create_directories(dir_ / "train2014");
  InDir(dir_.path(), [&] {
    try {
      LoadJob("conf/wave.yml");
      FAIL() << "expected an error";
    } catch (const ConfigError& e) {
      ASSERT_EQ(e.problems().size(), 1u);
      EXPECT_EQ(e.problems()[0].substr(0, 18), "conf/wave.yml:26:1");
      EXPECT_NE(e.problems()[0].find("is a TensorFlow checkpoint"), std::string::npos);
      EXPECT_NE(e.problems()[0].find("launch/convert_vgg16.py"), std::string::npos);
    }
  });
}

TEST_F(ConfigTest, SeedStyleFileTakesContentFolderFromCommandLine) {
  WriteFile(dir_ / "conf/wave.yml", kSeedWave);
  WriteFile(dir_ / "img/wave.jpg", "x");
  InDir(dir_.path(), [&] {
    LoadOptions options;
    options.overrides = {"loss_network.weights=random:3"};
    options.content_dir = "photos";
    EXPECT_EQ(LoadJob("conf/wave.yml", options).data.content_dir, dir_ / "photos");
    options.content_dir.clear();
    try {
      LoadJob("conf/wave.yml", options);
      FAIL() << "expected an error";
    } catch (const ConfigError& e) {
      ASSERT_EQ(e.problems().size(), 1u);
      EXPECT_NE(e.problems()[0].find("train2014' does not exist"), std::string::npos);
      EXPECT_NE(e.problems()[0].find("pass --content DIR"), std::string::npos);
    }
  });
}

TEST_F(ConfigTest, JobListsSeedStyleFilesAsStyles) {
  std::string seed = kSeedWave;
  seed.replace(seed.find("img/wave.jpg"), 12, "styles/wave.jpg");
  WriteFile(dir_ / "conf/wave.yml", seed);
  InDir(dir_.path(), [&] {
    const JobConfig job =
        Load(Head() + "styles:\n  - conf/wave.yml\n  - image: styles/candy.png\n");
    ASSERT_EQ(job.styles.size(), 2u);
    EXPECT_EQ(job.styles[0].name, "wave");
    EXPECT_EQ(job.styles[0].training.style_weight, 220);
    EXPECT_EQ(job.styles[0].output_dir, dir_ / "runs/test/wave");
    EXPECT_EQ(job.styles[1].training.style_weight, 100);
  });
}

// --- one test per error class, exact message and position ---

TEST_F(ConfigTest, SyntaxErrorHasPosition) {
  EXPECT_EQ(Problems("job:\n  name: [unclosed\n"),
            std::vector<std::string>{
                "DIR/job.yaml:3:1: YAML syntax error: end of sequence flow not found"});
}

// A second document was dropped without a word; an empty one is harmless.
TEST_F(ConfigTest, ASecondYamlDocumentIsRefused) {
  const std::string job = Head() + "styles:\n  - image: styles/wave.jpg\n";
  EXPECT_EQ(Problems(job + "---\n" + job),
            std::vector<std::string>{"DIR/job.yaml:10:1: a second YAML document starts here "
                                     "(after '---'); a job file holds one job: split it into two "
                                     "files, or remove the '---' line"});
  EXPECT_EQ(Load("---\n" + job + "---\n").styles.size(), 1u);
  // yaml-cpp's LoadAll never returned on this (the fuzzer's timeout): an
  // error, at once.
  EXPECT_FALSE(Problems(", x\n").empty());
}

// 100000 levels of nesting once gave "YAML syntax error: bad file".
TEST_F(ConfigTest, AbsurdNestingSaysSo) {
  EXPECT_EQ(Problems("a: " + std::string(100000, '[') + std::string(100000, ']') + "\n"),
            std::vector<std::string>{"DIR/job.yaml:1:260: lists and mappings are nested more "
                                     "than 256 levels deep here; a job file never needs that (is "
                                     "it a job file?)"});
}

// The job name names a folder under the output root, as a style name does:
// `../../x` once wrote outside it.
TEST_F(ConfigTest, JobNameThatIsNotAFolderNameIsRefused) {
  const std::string rest =
      "data:\n  content_dir: photos\nloss_network:\n  weights: random:1\n"
      "styles:\n  - image: styles/wave.jpg\n";
  EXPECT_EQ(Problems("job:\n  name: ../../x\n" + rest),
            std::vector<std::string>{"DIR/job.yaml:2:9: job.name: must be UTF-8 text without '/', "
                                     "'\\' or control characters, and not '.' or '..' (it names "
                                     "a folder), got '../../x'"});
  EXPECT_EQ(Problems("job:\n  name: '..'\n" + rest).size(), 1u);
}

TEST_F(ConfigTest, UnknownKeySuggestsClosest) {
  EXPECT_EQ(
      Problems(Head() + "training:\n  styel_weight: 3\nstyles:\n  - image: styles/wave.jpg\n"),
      std::vector<std::string>{"DIR/job.yaml:8:3: unknown key 'styel_weight' in 'training'; "
                               "did you mean 'style_weight'?"});
}

// job.network conditional: the styles of the network may differ only in
// their loss weights and style image size; a swept style, a base_model
// without a conditional network and a style in the network's folder are
// refused; the network's run is filled in.
TEST_F(ConfigTest, ConditionalNetworkStylesShareTheirTrainingAndLayers) {
  const std::string head =
      "job:\n  name: test\n  network: conditional\ndata:\n  content_dir: photos\n"
      "loss_network:\n  weights: random:1\n";
  const JobConfig job = Load(head +
                             "styles:\n  - image: styles/wave.jpg\n"
                             "  - {image: styles/candy.png, style_weight: 7, style_image_size: "
                             "128}\n");
  EXPECT_EQ(job.network, "conditional");
  EXPECT_EQ(job.conditional_run.name, "conditional");
  EXPECT_EQ(job.conditional_run.output_dir, ConditionalNetworkDir(job));
  EXPECT_EQ(job.conditional_run.output_dir, job.output_dir + "/conditional");
  EXPECT_EQ(
      Problems(head +
               "styles:\n  - image: styles/wave.jpg\n"
               "  - {image: styles/candy.png, style_layers: [conv1_2], learning_rate: 0.1}\n"),
      (std::vector<std::string>{
          "DIR/job.yaml:10:5: style 'candy': training.learning_rate is 0.10000000000000001 but "
          "0.001 for style 'wave'; the styles of a conditional network share one optimizer and "
          "one batch, so only content_weight, style_weight, tv_weight and style_image_size may "
          "differ",
          "DIR/job.yaml:10:5: style 'candy': training.style_layers is [conv1_2] but [conv1_2, "
          "conv2_2, conv3_3, conv4_3] for style 'wave'; the styles of a conditional network "
          "share one optimizer and one batch, so only content_weight, style_weight, tv_weight "
          "and style_image_size may differ"}));
  EXPECT_EQ(Problems(head + "styles:\n  - {name: w, image: styles/wave.jpg, sweep: {grid: "
                            "{style_weight: [1, 2]}}}\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:9:5: style 'w' is swept, which a conditional network (job.network) "
                "cannot do: its styles share one training; list the variants as styles instead"}));
  EXPECT_EQ(Problems(head + "styles:\n  - {name: conditional, image: styles/wave.jpg}\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:9:5: style 'conditional' writes to 'DIR/runs/test/conditional', the "
                "conditional network's own folder; rename the style or set its output_dir"}));
  EXPECT_EQ(Problems(Head() + "styles:\n  - image: styles/wave.jpg\n",
                     LoadOptions{{"job.base_model=model.pt"}}),
            (std::vector<std::string>{
                "DIR/job.yaml: job.base_model is set but job.network is per_style (a base model "
                "starts a conditional or arbitrary-style network)"}));
  EXPECT_EQ(Problems(head + "styles:\n  - image: styles/wave.jpg\n",
                     LoadOptions{{"job.distill_steps=5"}}),
            (std::vector<std::string>{
                "DIR/job.yaml: job.distill_steps fits an arbitrary-style network's predictor to "
                "the rows of its job.base_model; this job trains network conditional"}));
  EXPECT_EQ(
      Problems(head + "styles:\n  - image: styles/wave.jpg\n", LoadOptions{{"job.network=shared"}}),
      (std::vector<std::string>{"command line (--set job.network=shared): job.network: "
                                "expected per_style, conditional or arbitrary, got 'shared'"}));
}

// job.network arbitrary: the styles are one training set (no training key
// may differ, loss weights included), at least two of them; the predictor's
// keys belong to it alone; job.distill_steps needs its base model.
TEST_F(ConfigTest, ArbitraryNetworkStylesAreOneTrainingSet) {
  const std::string head =
      "job:\n  name: test\n  network: arbitrary\ndata:\n  content_dir: photos\n"
      "loss_network:\n  weights: random:1\n";
  const std::string two = "styles:\n  - image: styles/wave.jpg\n  - image: styles/candy.png\n";
  const JobConfig job = Load(head + two);
  EXPECT_EQ(job.conditional_run.name, "arbitrary");
  EXPECT_EQ(job.conditional_run.output_dir, job.output_dir + "/arbitrary");
  EXPECT_EQ(job.predictor_embedding_size, 100);
  EXPECT_EQ(job.predictor_layers, job.loss_network.style_layers);
  const JobConfig shaped =
      Load(head + two, LoadOptions{{"job.predictor_embedding_size=16",
                                    "job.predictor_layers=[relu1_2, vgg_16/conv3/conv3_3]"}});
  EXPECT_EQ(shaped.predictor_embedding_size, 16);
  EXPECT_EQ(shaped.predictor_layers, (std::vector<std::string>{"conv1_2", "conv3_3"}));
  EXPECT_EQ(Problems(head + "styles:\n  - image: styles/wave.jpg\n  - {image: styles/candy.png, "
                            "style_weight: 7}\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:10:5: style 'candy': training.style_weight is 7 but 100 for style "
                "'wave'; the styles of an arbitrary-style network are one training set, so none of "
                "their training keys may differ (set it in the job's training section)"}));
  EXPECT_EQ(Problems(head + "styles:\n  - image: styles/wave.jpg\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:9:5: job.network is arbitrary but the job lists one style; an "
                "arbitrary-style network learns from a set of style images: list at least 2"}));
  // A base model may start it (train_test); a missing one is named.
  EXPECT_EQ(
      Problems(head + two, LoadOptions{{"job.base_model=" + dir_.path() + "/none.pt"}}),
      (std::vector<std::string>{"DIR/job.yaml: job.base_model: 'DIR/none.pt' does not exist"}));
  EXPECT_EQ(Problems(head + two, LoadOptions{{"job.distill_steps=5"}}),
            (std::vector<std::string>{
                "DIR/job.yaml: job.distill_steps fits an arbitrary-style network's predictor to "
                "the rows of its job.base_model; this job names no base_model"}));
  EXPECT_EQ(Problems(head + two, LoadOptions{{"job.distill_steps=-1"}}).size(), 1u);
  EXPECT_EQ(Problems(head + two,
                     LoadOptions{{"job.network=conditional", "job.predictor_embedding_size=16"}}),
            (std::vector<std::string>{
                "DIR/job.yaml: job.predictor_embedding_size and job.predictor_layers shape the "
                "style predictor of job.network arbitrary; this job's network is conditional"}));
  EXPECT_EQ(Problems(head + "styles:\n  - image: styles/wave.jpg\n  - {image: styles/candy.png, "
                            "sweep: {grid: {style_weight: [1, 2]}}}\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:10:5: style 'candy' is swept, which an arbitrary-style network "
                "(job.network) cannot do: its styles share one training; list the variants as "
                "styles instead"}));
  EXPECT_EQ(Problems(head + two, LoadOptions{{"job.network=conditional",
                                              "job.held_out_styles=[styles/wave.jpg]"}}),
            (std::vector<std::string>{
                "DIR/job.yaml: job.held_out_styles measures the style predictor of job.network "
                "arbitrary; this job's network is conditional"}));
  // Paths: the job file's folder for its own, the working folder for --set's.
  const JobConfig held =
      Load("job:\n  name: test\n  network: arbitrary\n  held_out_styles: [held, x.png]\n" +
           head.substr(head.find("data:")) + two);
  EXPECT_EQ(held.held_out_styles, (std::vector<std::string>{dir_ / "held", dir_ / "x.png"}));
  EXPECT_EQ(Load(head + two, LoadOptions{{"job.held_out_styles=[a.png]"}}).held_out_styles,
            (std::vector<std::string>{(fs::current_path() / "a.png").string()}));
  EXPECT_FALSE(Problems(head + two, LoadOptions{{"job.held_out_styles=a.png"}}).empty());
  EXPECT_FALSE(Problems(head + two, LoadOptions{{"job.predictor_embedding_size=0"}}).empty());
  EXPECT_FALSE(Problems(head + two, LoadOptions{{"job.predictor_layers=[conv9_9]"}}).empty());
}

// A `folder:` style entry is its images, in file-name order, each a style
// named after its file with the entry's training keys (issue 34: a folder of
// style images as an arbitrary network's training set); what cannot be a
// style set is refused where the folder is named.
TEST_F(ConfigTest, AStyleFolderIsOneStylePerImageFile) {
  WriteFile(dir_ / "set/b.png", "x");
  WriteFile(dir_ / "set/a.JPG", "x");
  WriteFile(dir_ / "set/notes.txt", "not an image");
  WriteFile(dir_ / "set/deeper/c.png", "sub-folders are not read");
  fs::create_symlink(dir_ / "missing.png", dir_ / "set/dangling.png");
  const std::string head =
      "job:\n  name: test\n  network: arbitrary\ndata:\n  content_dir: photos\n"
      "loss_network:\n  weights: random:1\n";
  const JobConfig job = Load(head + "styles:\n  - {folder: set, style_weight: 7}\n");
  ASSERT_EQ(job.styles.size(), 2u);
  EXPECT_EQ(job.styles[0].name, "a");
  EXPECT_EQ(job.styles[0].image, dir_ / "set/a.JPG");
  EXPECT_EQ(job.styles[0].output_dir, job.output_dir + "/a");
  EXPECT_EQ(job.styles[1].name, "b");
  EXPECT_EQ(job.styles[1].training.style_weight, 7);
  EXPECT_EQ(job.styles[0].origin, job.styles[1].origin);
  // With other entries, in the list's order; a per-style job trains each.
  const JobConfig mixed = Load(Head() + "styles:\n  - image: styles/wave.jpg\n  - folder: set\n");
  ASSERT_EQ(mixed.styles.size(), 3u);
  EXPECT_EQ(mixed.styles[2].name, "b");
  WriteFile(dir_ / "one/only.png", "x");
  fs::create_directories(dir_ / "empty");
  WriteFile(dir_ / "twice/a.png", "x");
  WriteFile(dir_ / "twice/a.jpg", "x");
  WriteFile(dir_ / "dots/...png", "x");
  EXPECT_EQ(Problems(head + "styles:\n  - folder: one\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:9:5: job.network is arbitrary but the job lists one style; an "
                "arbitrary-style network learns from a set of style images: list at least 2"}));
  EXPECT_EQ(Problems(head + "styles:\n  - folder: empty\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:9:13: styles[].folder: style folder 'DIR/empty' holds no .jpg, "
                ".jpeg, .png, .bmp, .tga or .gif files (sub-folders are not read)"}));
  EXPECT_EQ(Problems(head + "styles:\n  - folder: nowhere\n"),
            (std::vector<std::string>{"DIR/job.yaml:9:13: styles[].folder: style folder "
                                      "'DIR/nowhere' does not exist or is not a folder"}));
  EXPECT_EQ(Problems(head + "styles:\n  - {folder: set, image: styles/wave.jpg}\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:9:5: a style entry with 'folder' takes no 'image': each image in "
                "the folder is one style, named after its file and written under "
                "job.output_dir"}));
  EXPECT_EQ(Problems(head + "styles:\n  - folder: [set]\n").size(), 1u);
  const std::vector<std::string> twice = Problems(head + "styles:\n  - folder: twice\n");
  ASSERT_EQ(twice.size(), 1u);
  EXPECT_NE(twice[0].find("'a'"), std::string::npos) << twice[0];
  EXPECT_EQ(Problems(head + "styles:\n  - folder: set\n  - folder: dots\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:10:13: styles[].folder: style name '..' (from the image file "
                "'DIR/dots/...png' in the folder) must be UTF-8 text without '/', '\\' or control "
                "characters, and not '.' or '..' (it names a folder); rename the file, or list "
                "it as a style of its own with a name: key"}));
}

TEST_F(ConfigTest, ConvolutionIsWinogradOrDirect) {
  const std::string styles = "styles:\n  - image: styles/wave.jpg\n";
  EXPECT_EQ(Load(Head() + styles).convolution, "winograd");
  EXPECT_EQ(Load(Head() + styles, LoadOptions{{"job.convolution=direct"}}).convolution, "direct");
  EXPECT_EQ(Problems(Head() + styles, LoadOptions{{"job.convolution=fft"}}),
            (std::vector<std::string>{"command line (--set job.convolution=fft): "
                                      "job.convolution: expected winograd or direct, got 'fft'"}));
}

// Names and paths go into JSON records, log lines and folder names: bytes
// that are not UTF-8 and control characters are refused when the job is
// read, not by the first write after training started.
TEST_F(ConfigTest, NamesAndPathsMustBeUtf8TextWithoutControlCharacters) {
  const std::string styles = "styles:\n  - image: styles/wave.jpg\n";
  EXPECT_EQ(Problems("job:\n  name: m\xff\xfeine\n" + Head().substr(18) + styles),
            (std::vector<std::string>{
                "DIR/job.yaml:2:9: job.name: must be UTF-8 text without '/', '\\' or control "
                "characters, and not '.' or '..' (it names a folder), got 'm\\xff\\xfeine'"}));
  EXPECT_EQ(Problems(Head() + "styles:\n  - image: styles/wave.jpg\n    name: \"x\\ny\"\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:9:11: styles[].name: must be UTF-8 text without '/', '\\' or control "
                "characters, and not '.' or '..' (it names a folder), got 'x\\x0ay'"}));
  // A style image whose file name is not UTF-8 (its default name comes from it).
  WriteFile(dir_ / "styles/w\xe9ve.jpg", "x");
  EXPECT_EQ(Problems(Head() + "styles:\n  - image: styles/w\xe9ve.jpg\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:8:5: style name 'w\\xe9ve' must be UTF-8 text without control "
                "characters (it names a folder)",
                "DIR/job.yaml:8:5: style image 'DIR/styles/w\\xe9ve.jpg' is not UTF-8 text; "
                "stylefleet records names and paths in JSON files, which hold UTF-8 only: rename "
                "it",
                "DIR/job.yaml:8:5: output folder 'DIR/runs/test/w\\xe9ve' is not UTF-8 text; "
                "stylefleet records names and paths in JSON files, which hold UTF-8 only: rename "
                "it"}));
  // A job file in a Latin-1 folder: every path resolved against it.
  const fs::path latin1 = dir_ / "caf\xe9";
  fs::create_directories(latin1 / "photos");
  fs::copy(dir_ / "styles", latin1 / "styles");
  WriteFile(latin1 / "job.yaml", Head() + styles);
  try {
    LoadJob(latin1 / "job.yaml", {});
    ADD_FAILURE() << "a job in a Latin-1 folder loaded";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 3u);
    EXPECT_NE(e.problems()[0].find(":4:16: data.content_dir: '"), std::string::npos);
    EXPECT_NE(e.problems()[0].find("caf\\xe9/photos' is not UTF-8 text"), std::string::npos);
    EXPECT_NE(e.problems()[1].find("style image"), std::string::npos);
    EXPECT_NE(e.problems()[2].find("output folder"), std::string::npos);
  }
}

// A style's default name is its image's file name without the extension:
// `...png` gave '..' and `..png` '.', whose outputs landed in the parent of the
// job's output folder or in it (issue 32). They follow the rules of a written
// name, and the problem asks for one.
TEST_F(ConfigTest, ANameFromAnImageFileFollowsTheRulesOfAWrittenName) {
  for (const std::string file : {"...png", "..png", "a\\b.png"}) {
    WriteFile(dir_ / ("styles/" + file), "x");
    const std::string stem = file.substr(0, file.size() - 4);
    EXPECT_EQ(
        Problems(Head() + "styles:\n  - image: styles/wave.jpg\n  - image: 'styles/" + file +
                 "'\n"),
        (std::vector<std::string>{
            "DIR/job.yaml:9:5: style name '" + stem + "' (from the image file 'styles/" + file +
            "') must be UTF-8 text without '/', '\\' or control characters, and not '.' "
            "or '..' (it names a folder); set the style's name: key"}));
    // An explicit name makes the job load, its outputs in their own folder.
    const JobConfig job = Load(Head() + "styles:\n  - image: 'styles/" + file + "'\n    name: x\n");
    ASSERT_EQ(job.styles.size(), 1u);
    EXPECT_EQ(job.styles[0].name, "x");
    EXPECT_EQ(job.styles[0].output_dir, dir_ / "runs/test/x");
  }
}

// The content folder is read with its sub-folders: an output folder inside it
// would feed the run's previews and final images back as training photos.
TEST_F(ConfigTest, OutputsInsideTheContentFolderAreRefused) {
  const std::string rest = Head().substr(18) + "styles:\n  - image: styles/wave.jpg\n";
  EXPECT_EQ(Problems("job:\n  name: test\n  output_dir: photos/runs\n" + rest),
            (std::vector<std::string>{
                "DIR/job.yaml:9:5: style 'wave' writes to 'DIR/photos/runs/wave', inside "
                "data.content_dir 'DIR/photos', whose sub-folders are read too: its previews and "
                "final images would become training photos; choose a job.output_dir outside it"}));
  EXPECT_EQ(Problems("job:\n  name: test\n  output_dir: .\n" + rest,
                     LoadOptions{{"data.content_dir=" + dir_.path()}})
                .size(),
            1u);
  // A sibling whose name begins with the content folder's is outside it.
  fs::create_directories(dir_ / "photos2");
  EXPECT_EQ(Load("job:\n  name: test\n  output_dir: photos2\n" + rest).styles.size(), 1u);
}

// A value that is not one of the allowed words names them, whatever it is.
TEST_F(ConfigTest, ChoiceKeysListTheirValuesForAnyWrongValue) {
  const std::string styles = "styles:\n  - image: styles/wave.jpg\n";
  EXPECT_EQ(Problems("job:\n  name: test\n  convolution: []\n" + Head().substr(18) + styles),
            (std::vector<std::string>{
                "DIR/job.yaml:3:16: job.convolution: expected winograd or direct, got a list"}));
  EXPECT_EQ(Problems(Head() + "training:\n  precision: {a: 1}\n" + styles),
            (std::vector<std::string>{
                "DIR/job.yaml:8:14: training.precision: expected fp32 or bf16, got a mapping"}));
}

// yaml-cpp places a blank value at the next token, here two lines down; the
// message points at the key instead.
TEST_F(ConfigTest, ABlankValueIsReportedAtItsKey) {
  EXPECT_EQ(Problems("job:\n  name: test\n  convolution:\n\n" + Head().substr(18) +
                     "styles:\n  - image: styles/wave.jpg\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:3:3: job.convolution: expected winograd or direct, got nothing"}));
  EXPECT_EQ(
      Problems(Head() + "training:\n  batch_size:\n\n\nstyles:\n  - image: styles/wave.jpg\n"),
      (std::vector<std::string>{
          "DIR/job.yaml:8:3: training.batch_size: expected an integer, got nothing"}));
  EXPECT_EQ(Problems(Head() + "styles:\n  - image: styles/wave.jpg\n    style_weight:\n\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:9:5: styles[].style_weight: expected a number, got nothing"}));
}

// A conditional network's style names go into --blend (NAME=W,NAME=W) and
// the model file's newline-separated list: names those would split are
// refused before training, not found unloadable after it.
TEST_F(ConfigTest, ConditionalStyleNamesMustSurviveBlendsAndTheModelFile) {
  const std::string head =
      "job:\n  name: test\n  network: conditional\ndata:\n  content_dir: photos\n"
      "loss_network:\n  weights: random:1\nstyles:\n  - image: styles/wave.jpg\n";
  for (const std::string name : {"\"a,b\"", "\"a=b\"", "\" ab\""}) {
    const std::vector<std::string> problems =
        Problems(head + "  - {name: " + name + ", image: styles/candy.png}\n");
    ASSERT_EQ(problems.size(), 1u) << name;
    EXPECT_NE(problems.front().find("DIR/job.yaml:10:5: style '"), std::string::npos)
        << problems.front();
    EXPECT_NE(problems.front().find("': a conditional network's style names must not contain "
                                    "',', '=' or control characters"),
              std::string::npos)
        << problems.front();
  }
  // Control characters are refused in any style's name, at its key.
  for (const std::string name : {"\"a\\nb\"", "\"a\\tb\""}) {
    const std::vector<std::string> problems =
        Problems(head + "  - {name: " + name + ", image: styles/candy.png}\n");
    ASSERT_EQ(problems.size(), 1u) << name;
    EXPECT_NE(problems.front().find("DIR/job.yaml:10:12: styles[].name: must be UTF-8 text without "
                                    "'/', '\\' or control characters"),
              std::string::npos)
        << problems.front();
  }
  // Unicode and inner spaces are fine; per-style networks keep their old rule.
  EXPECT_EQ(Load(head + "  - {name: \"café au lait\", image: styles/candy.png}\n").styles[1].name,
            "café au lait");
  EXPECT_EQ(
      Load(Head() + "styles:\n  - {name: \"a,b=c\", image: styles/wave.jpg}\n").styles.front().name,
      "a,b=c");
}

TEST_F(ConfigTest, UnknownSectionListsValidOnes) {
  EXPECT_EQ(
      Problems(Head() + "logging:\n  x: 1\nstyles:\n  - image: styles/wave.jpg\n"),
      std::vector<std::string>{
          "DIR/job.yaml:7:1: unknown key 'logging'; valid keys: job, "
          "data, loss_network, training, checkpoint, distributed, monitoring, sweep, styles"});
}

TEST_F(ConfigTest, WrongTypesAreReported) {
  EXPECT_EQ(
      Problems(Head() + "training:\n  batch_size: four\n  style_weight: \"5\"\n  epochs: [1]\n"
                        "styles:\n  - image: styles/wave.jpg\n"),
      (std::vector<std::string>{
          "DIR/job.yaml:8:15: training.batch_size: expected an integer, got 'four'",
          "DIR/job.yaml:9:17: training.style_weight: expected a number, got the string \"5\"",
          "DIR/job.yaml:10:11: training.epochs: expected an integer, got a list"}));
}

TEST_F(ConfigTest, OutOfRangeValuesAreReportedAllAtOnce) {
  EXPECT_EQ(
      Problems("job:\n  name: test\n"
               "data:\n  content_dir: photos\n  image_size: 250\n"
               "loss_network:\n  weights: random:1\n"
               "training:\n  style_weight: -1\n  batch_size: 0\n  tv_weight: .nan\n"
               "styles:\n  - image: styles/wave.jpg\n    image_size: 32\n"),
      (std::vector<std::string>{
          "DIR/job.yaml:5:15: data.image_size: must be a multiple of 4 (the network "
          "downsamples twice by 2), got 250",
          "DIR/job.yaml:9:17: training.style_weight: must be >= 0 and <= 1e+12, got -1",
          "DIR/job.yaml:10:15: training.batch_size: must be between 1 and 1024, got 0",
          "DIR/job.yaml:11:14: training.tv_weight: must be a finite number, got .nan",
          "DIR/job.yaml:14:5: unknown key 'image_size' in 'styles[]'; valid keys: name, "
          "image, output_dir, content_weight, style_weight, tv_weight, batch_size, micro_batches, "
          "epochs, "
          "max_steps, learning_rate, log_every_steps, preview_every_steps, max_bad_steps, "
          "precision, style_image_size, style_layers, style_luminance_only, sweep, folder"}));
}

TEST_F(ConfigTest, SmallImageSizeIsRejected) {
  EXPECT_EQ(Problems(Head() + "styles:\n  - image: styles/wave.jpg\n",
                     LoadOptions{{"data.image_size=60"}, "", true}),
            std::vector<std::string>{"command line (--set data.image_size=60): data.image_size: "
                                     "must be between 64 and 4096, got 60"});
}

TEST_F(ConfigTest, UnknownLayerListsValidLayers) {
  EXPECT_EQ(Problems(Head() +
                     "  style_layers: [conv1_2, conv2_3]\nstyles:\n  - image: styles/wave.jpg\n"),
            std::vector<std::string>{
                "DIR/job.yaml:7:27: loss_network.style_layers[1]: unknown layer 'conv2_3'; valid "
                "layers are conv1_1, conv1_2, conv2_1, conv2_2, conv3_1, conv3_2, conv3_3, "
                "conv4_1, conv4_2, conv4_3, conv5_1, conv5_2, conv5_3 (also written relu3_3 or "
                "vgg_16/conv3/conv3_3)"});
}

TEST_F(ConfigTest, MissingFilesAreReported) {
  EXPECT_EQ(Problems("data:\n  content_dir: nowhere\nloss_network:\n  weights: vgg.pth\n"
                     "styles:\n  - image: styles/none.jpg\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:6:5: style 'none': style image 'DIR/styles/none.jpg' does not exist "
                "or is not a file",
                "DIR/job.yaml:2:16: data.content_dir: content folder 'DIR/nowhere' does not exist "
                "or is not a folder",
                "DIR/job.yaml:4:12: loss_network.weights: weights file 'DIR/vgg.pth' does not "
                "exist (use random:SEED for a random network)"}));
}

// A content folder given on the command line is reported as the command
// line's, not at the job file (a trial was sent to a file that did not name it).
TEST_F(ConfigTest, AContentFolderFromTheCommandLineIsReportedAsSuch) {
  const std::string job = Head() + "styles:\n  - image: styles/wave.jpg\n";
  LoadOptions content;
  content.content_dir = dir_ / "gone";
  EXPECT_EQ(Problems(job, content),
            std::vector<std::string>{"command line (--content): data.content_dir: content folder "
                                     "'DIR/gone' does not exist or is not a folder"});
  LoadOptions set;
  set.overrides = {"data.content_dir=" + (dir_ / "gone")};
  EXPECT_EQ(Problems(job, set),
            std::vector<std::string>{"command line (--set data.content_dir=DIR/gone): "
                                     "data.content_dir: content folder 'DIR/gone' does not exist "
                                     "or is not a folder"});
}

TEST_F(ConfigTest, ValidationImagesResolveAgainstTheJobFolderAndDefaultToNone) {
  WriteFile(dir_ / "val/a.png", "x");
  WriteFile(dir_ / "val/b.jpg", "x");
  const std::string styles = "styles:\n  - image: styles/wave.jpg\n";
  EXPECT_TRUE(Load(Head() + styles).data.validation_images.empty());
  const JobConfig job = Load(WithPhotos("[val/b.jpg, " + (dir_ / "val/a.png") + "]") + styles);
  EXPECT_EQ(job.data.validation_images,
            (std::vector<std::string>{dir_ / "val/b.jpg", dir_ / "val/a.png"}));
  // From the command line, against the working directory, as other paths.
  LoadOptions options;
  options.overrides = {"data.validation_images=[" + (dir_ / "val/a.png") + "]"};
  EXPECT_EQ(Load(Head() + styles, options).data.validation_images,
            std::vector<std::string>{dir_ / "val/a.png"});
}

TEST_F(ConfigTest, MissingTooManyOrRepeatedValidationImagesAreReported) {
  WriteFile(dir_ / "val/a.png", "x");
  const std::string styles = "styles:\n  - image: styles/wave.jpg\n";
  EXPECT_EQ(
      Problems("data:\n  content_dir: photos\n  validation_images:\n    - val/a.png\n"
               "    - val/gone.png\nloss_network: {weights: 'random:1'}\n" +
               styles),
      std::vector<std::string>{"DIR/job.yaml:5:7: data.validation_images[1]: validation photo "
                               "'DIR/val/gone.png' does not exist or is not a file"});
  EXPECT_EQ(Problems(WithPhotos("[val/a.png, val/a.png]") + styles),
            std::vector<std::string>{
                "DIR/job.yaml:3:34: data.validation_images[1]: 'val/a.png' is listed twice"});
  // The same file spelled another way, or through a link.
  EXPECT_EQ(Problems(WithPhotos("[val/a.png, ./val/../val/a.png]") + styles),
            std::vector<std::string>{
                "DIR/job.yaml:3:34: data.validation_images[1]: 'DIR/val/a.png' is the same photo "
                "as data.validation_images[0] ('DIR/val/a.png')"});
  fs::create_symlink(dir_ / "val/a.png", dir_ / "val/link.png");
  EXPECT_EQ(Problems(WithPhotos("[val/a.png, val/link.png]") + styles),
            std::vector<std::string>{
                "DIR/job.yaml:3:34: data.validation_images[1]: 'DIR/val/link.png' is the same "
                "photo as data.validation_images[0] ('DIR/val/a.png')"});
  EXPECT_EQ(Problems(WithPhotos("[a, b, c, d, e, f, g, h, i]") + styles),
            std::vector<std::string>{
                "DIR/job.yaml:3:22: data.validation_images: at most 8 entries, got 9"});
  EXPECT_EQ(Problems(WithPhotos("val/a.png") + styles),
            std::vector<std::string>{"DIR/job.yaml:3:22: data.validation_images: expected a list "
                                     "of paths, got 'val/a.png'"});
}

TEST_F(ConfigTest, DuplicateStyleNamesAreReported) {
  EXPECT_EQ(Problems(Head() + "styles:\n  - image: styles/wave.jpg\n  - name: wave\n    image: "
                              "styles/candy.png\n"),
            std::vector<std::string>{"DIR/job.yaml:9:5: duplicate style name 'wave' (first "
                                     "defined at DIR/job.yaml:8:5)"});
}

TEST_F(ConfigTest, MissingRequiredKeysAreReported) {
  EXPECT_EQ(
      Problems("job:\n  name: x\n"),
      (std::vector<std::string>{
          "DIR/job.yaml:1:1: missing required key 'data.content_dir'",
          "DIR/job.yaml:1:1: missing required key 'loss_network.weights' (a weights file "
          "or random:SEED)",
          "DIR/job.yaml:1:1: missing required section 'styles' (a list of styles to train)"}));
}

TEST_F(ConfigTest, BadOverridesAreReported) {
  EXPECT_EQ(
      Problems(Head() + "styles:\n  - image: styles/wave.jpg\n",
               LoadOptions{{"training.batchsize=3", "styles.nope.epochs=1", "nokey"}, "", true}),
      (std::vector<std::string>{
          "command line (--set nokey): expected section.key=value",
          "command line (--set training.batchsize=3): unknown key 'batchsize' in "
          "'training'; did you mean 'batch_size'?",
          "command line (--set styles.nope.epochs=1): no style named 'nope'; styles are "
          "wave"}));
}

TEST_F(ConfigTest, CrossFieldRulesAreChecked) {
  EXPECT_EQ(Problems(Head() + "training:\n  epochs: 0\nstyles:\n  - image: styles/wave.jpg\n"),
            std::vector<std::string>{"DIR/job.yaml: training: epochs and max_steps are both 0; "
                                     "set at least one to end training"});
  // A job whose styles all end by their own max_steps needs none of its own.
  EXPECT_EQ(Load(Head() + "training:\n  epochs: 0\nstyles:\n  - image: styles/wave.jpg\n"
                          "    max_steps: 5\n")
                .styles.front()
                .training.max_steps,
            5);
  // A value that could not be read is reported once, without the rules it
  // would break only by keeping its default (found in a trial).
  EXPECT_EQ(Problems(Head() + "training:\n  epochs: 0\nstyles:\n  - image: styles/wave.jpg\n"
                              "    max_steps: abc\n"),
            std::vector<std::string>{
                "DIR/job.yaml:11:16: styles[].max_steps: expected an integer, got 'abc'"});
  EXPECT_EQ(Problems(Head() + "training:\n  epochs: 0\n  max_steps: -5\nstyles:\n"
                              "  - image: styles/wave.jpg\n"),
            std::vector<std::string>{"DIR/job.yaml:9:14: training.max_steps: must be between 0 "
                                     "and 1099511627776, got -5"});
  EXPECT_EQ(Problems(Head() + "styles:\n  - image: styles/wave.jpg\n    micro_batches: 3\n"),
            std::vector<std::string>{"DIR/job.yaml: style 'wave': micro_batches (3) must divide "
                                     "batch_size (4)"});
  EXPECT_EQ(
      Problems(Head() + "distributed:\n  backend: gloo\nstyles:\n  - image: styles/wave.jpg\n"),
      std::vector<std::string>{"DIR/job.yaml:8:12: distributed.backend: expected auto, mpi or "
                               "nccl, got 'gloo'"});
}

TEST_F(ConfigTest, AliasBombIsRejectedWithoutExpanding) {
  std::string bomb = Head() + "a: &a [x, x, x, x, x, x, x, x, x, x]\n";
  for (char c = 'b'; c <= 'k'; ++c) {
    bomb += std::string(1, c) + ": &" + c + " [";
    for (int i = 0; i < 10; ++i) bomb += std::string(i ? ", " : "") + "*" + char(c - 1);
    bomb += "]\n";
  }
  bomb += "styles: *k\n";
  const auto problems = Problems(bomb);
  ASSERT_FALSE(problems.empty());
  EXPECT_LE(problems.size(), 101u);
}

TEST_F(ConfigTest, MissingJobFileIsAnError) {
  try {
    LoadJob(dir_ / "absent.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.problems().at(0), dir_ / "absent.yaml: job file does not exist or is not a file");
  }
}

// Every key of the loader's tables is documented: configs/README.md holds the
// generated reference verbatim.
TEST(ConfigReferenceTest, ReadmeHoldsTheGeneratedReference) {
  std::ifstream in(std::string(STYLEFLEET_SOURCE_DIR) + "/configs/README.md");
  ASSERT_TRUE(in) << "configs/README.md missing";
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find(ConfigReference()), std::string::npos)
      << "configs/README.md is out of date: regenerate its key tables with "
         "`stylefleet config-reference`";
}

// Every shipped example job loads (file checks included: shipped data is in the repo).
TEST(ShippedConfigsTest, AllExampleJobsLoad) {
  const std::string root = STYLEFLEET_SOURCE_DIR;
  int count = 0;
  for (const auto& entry : fs::directory_iterator(root + "/configs")) {
    if (entry.path().extension() != ".yaml") continue;
    ++count;
    EXPECT_NO_THROW(LoadJob(entry.path().string())) << entry.path();
  }
  EXPECT_GE(count, 1);
}

// Examples that point at data users bring themselves (COCO, converted weights)
// parse and validate apart from the file checks.
TEST(ShippedConfigsTest, ExamplesAndSeedFilesParse) {
  const std::string root = STYLEFLEET_SOURCE_DIR;
  LoadOptions options;
  options.check_files = false;
  int count = 0;
  for (const char* folder : {"/configs/examples", "/configs/seed"}) {
    for (const auto& entry : fs::directory_iterator(root + folder)) {
      ++count;
      EXPECT_NO_THROW(LoadJob(entry.path().string(), options)) << entry.path();
    }
  }
  EXPECT_GE(count, 2);
}

}  // namespace
}  // namespace stylefleet

namespace stylefleet {
namespace {

// The reference's default column is the truth users read: every key's
// documented default must be what a job that omits the key gets. Keys whose
// default is derived from other values are listed here, so a new key with a
// literal default cannot slip past.
TEST_F(ConfigTest, EveryDocumentedDefaultIsTheDefaultConstructedValue) {
  const std::set<std::string> derived = {"job.name",
                                         "job.output_dir",
                                         "data.content_dir",
                                         "loss_network.weights",
                                         "styles[].name",
                                         "styles[].image",
                                         "styles[].output_dir",
                                         "training.style_image_size",
                                         "training.style_layers",
                                         "job.predictor_layers"};
  const JobConfig job = Load(
      "data: {content_dir: photos}\nloss_network: {weights: 'random:1'}\n"
      "styles:\n  - image: styles/wave.jpg\n");
  std::map<std::string, std::string> values;
  for (const Setting& s : ListSettings(job)) values[s.key] = s.value;
  for (const KeyInfo& key : ListKeys()) {
    if (derived.count(key.key)) continue;
    std::string text = key.default_text;
    text.erase(std::remove(text.begin(), text.end(), '`'), text.end());
    const size_t note = text.find(" (");  // "0 (auto)"
    if (note != std::string::npos) text.resize(note);
    if (text == "none") text.clear();
    ASSERT_TRUE(values.count(key.key)) << key.key << " is not listed by ListSettings";
    const std::string& actual = values[key.key];
    char* end = nullptr;
    const double number = std::strtod(text.c_str(), &end);
    if (!text.empty() && end == text.c_str() + text.size()) {
      EXPECT_EQ(number, std::strtod(actual.c_str(), nullptr))
          << key.key << ": documented default " << key.default_text << ", actual " << actual;
    } else {
      EXPECT_EQ(text, actual) << key.key << ": documented default " << key.default_text;
    }
  }
}

// Ranks compare values at full precision: 6 significant digits once let
// learning rates 0.01 and 0.0100000001 pass as the same job.
TEST_F(ConfigTest, FingerprintSeesEveryRankInvariantKeyAtFullPrecision) {
  const std::string text =
      "data: {content_dir: photos}\nloss_network: {weights: 'random:1'}\n"
      "styles:\n  - image: styles/wave.jpg\n";
  const uint64_t base = JobFingerprint(Load(text));
  LoadOptions close;
  close.overrides = {"training.learning_rate=0.0010000000001"};
  EXPECT_NE(JobFingerprint(Load(text, close)), base);
  LoadOptions per_rank;
  per_rank.overrides = {"data.loader_threads=7", "monitoring.listen=off"};
  EXPECT_EQ(JobFingerprint(Load(text, per_rank)), base);
  for (const std::string& key :
       {std::string("checkpoint.every_steps=5"), std::string("training.log_every_steps=3"),
        std::string("distributed.bucket_mb=1"), std::string("distributed.check_every_steps=0"),
        std::string("distributed.ranks_per_style=1"), std::string("training.micro_batches=2")}) {
    LoadOptions changed;
    changed.overrides = {key};
    EXPECT_NE(JobFingerprint(Load(text, changed)), base) << key;
  }
}

TEST_F(ConfigTest, TrainingComparisonsFollowTheTables) {
  TrainingOptions a, b;
  EXPECT_TRUE(SameTraining(a, b));
  EXPECT_TRUE(CanShareTrainingPass(a, b));
  b.style_weight = 50;  // a per-style weight: still one pass
  EXPECT_FALSE(SameTraining(a, b));
  EXPECT_TRUE(CanShareTrainingPass(a, b));
  b.micro_batches = 2;  // shapes the step: trained apart
  EXPECT_FALSE(CanShareTrainingPass(a, b));
  TrainingOptions luminance;
  luminance.style_luminance_only = true;  // one loss-network pass more: trained apart
  EXPECT_FALSE(CanShareTrainingPass(TrainingOptions{}, luminance));
}

// training.style_luminance_only: false unless set, per style, and one value
// for all the styles of a conditional network (they share one pass).
TEST_F(ConfigTest, StyleLuminanceOnlyIsPerStyleAndSharedByAConditionalNetwork) {
  const std::string head = "data:\n  content_dir: photos\nloss_network:\n  weights: random:1\n";
  const JobConfig job = Load(head +
                             "styles:\n  - image: styles/wave.jpg\n"
                             "  - {image: styles/candy.png, style_luminance_only: true}\n");
  EXPECT_FALSE(job.styles[0].training.style_luminance_only);
  EXPECT_TRUE(job.styles[1].training.style_luminance_only);
  EXPECT_EQ(Problems(head + "training: {style_luminance_only: 2}\nstyles:\n  - image: "
                            "styles/wave.jpg\n"),
            (std::vector<std::string>{"DIR/job.yaml:5:34: training.style_luminance_only: "
                                      "expected true or false, got '2'"}));
  EXPECT_EQ(Problems("job: {name: test, network: conditional}\n" + head +
                     "styles:\n  - image: styles/wave.jpg\n"
                     "  - {image: styles/candy.png, style_luminance_only: true}\n"),
            (std::vector<std::string>{
                "DIR/job.yaml:8:5: style 'candy': training.style_luminance_only is true but false "
                "for style 'wave'; the styles of a conditional network share one optimizer and one "
                "batch, so only content_weight, style_weight, tv_weight and style_image_size may "
                "differ"}));
}

TEST_F(ConfigTest, DescribeJobShowsEverySettingAndEachStylesOverrides) {
  const JobConfig job = Load(
      "data: {content_dir: photos}\nloss_network: {weights: 'random:1'}\n"
      "styles:\n  - image: styles/wave.jpg\n  - {image: styles/candy.png, style_weight: 50}\n");
  const std::string text = DescribeJob(job);
  for (const Setting& s : ListSettings(job)) {
    if (s.key.rfind("styles.", 0) != 0) {
      EXPECT_NE(text.find("  " + s.key + ": " + s.value + "\n"), std::string::npos) << s.key;
    }
  }
  EXPECT_NE(text.find("  - candy\n"), std::string::npos) << text;
  EXPECT_NE(text.find("      style_weight: 50 (overrides 100)\n"), std::string::npos) << text;
}

// ---------------------------------------------------------------------------
// Sweeps.

TEST_F(ConfigTest, SweepGridMakesOneNamedRunPerCombinationInItsOwnFolder) {
  const JobConfig job = Load(Head() +
                             "training: {max_steps: 10, style_weight: 7}\n"
                             "sweep:\n"
                             "  grid:\n"
                             "    style_weight: [50, 1e2]\n"
                             "    style_image_size: [128, 256, 512]\n"
                             "styles:\n"
                             "  - image: styles/candy.png\n"
                             "  - name: calm\n"
                             "    image: styles/wave.jpg\n"
                             "    sweep: {}\n");
  ASSERT_EQ(job.styles.size(), 7u);
  std::vector<std::string> names;
  for (const auto& s : job.styles) names.push_back(s.name);
  EXPECT_EQ(names,
            (std::vector<std::string>{"candy/style_weight=50,style_image_size=128",
                                      "candy/style_weight=50,style_image_size=256",
                                      "candy/style_weight=50,style_image_size=512",
                                      "candy/style_weight=1e2,style_image_size=128",
                                      "candy/style_weight=1e2,style_image_size=256",
                                      "candy/style_weight=1e2,style_image_size=512", "calm"}));
  const StyleSpec& run = job.styles[4];
  EXPECT_EQ(run.sweep, "candy");
  EXPECT_EQ(run.swept, (std::vector<std::pair<std::string, std::string>>{
                           {"style_weight", "1e2"}, {"style_image_size", "256"}}));
  EXPECT_EQ(run.training.style_weight, 100);
  EXPECT_EQ(run.training.style_image_size, 256);
  EXPECT_EQ(run.training.max_steps, 10);  // unswept keys keep the style's values
  EXPECT_EQ(
      run.output_dir,
      (fs::path(job.output_dir) / "candy" / "style_weight=1e2,style_image_size=256").string());
  // A style with an empty sweep opts out of the job's.
  EXPECT_TRUE(job.styles[6].sweep.empty());
  EXPECT_EQ(job.styles[6].training.style_weight, 7);
  // Unswept derived keys are concrete after loading.
  EXPECT_EQ(job.styles[6].training.style_image_size, job.data.image_size);
  EXPECT_EQ(job.styles[6].training.style_layers, job.loss_network.style_layers);
}

TEST_F(ConfigTest, ZippedValuesGoTogetherAndAStylesOwnSweepReplacesTheJobs) {
  const JobConfig job = Load(Head() +
                             "sweep:\n"
                             "  grid: {tv_weight: [0, 1]}\n"
                             "styles:\n"
                             "  - image: styles/candy.png\n"
                             "    sweep:\n"
                             "      grid: {style_layers: [[conv1_2, relu2_2], [conv3_3]]}\n"
                             "      zip:\n"
                             "        learning_rate: [0.001, 0.003]\n"
                             "        max_steps: [200, 100]\n"
                             "  - image: styles/wave.jpg\n");
  std::vector<std::string> names;
  for (const auto& s : job.styles) names.push_back(s.name);
  EXPECT_EQ(names, (std::vector<std::string>{
                       "candy/style_layers=conv1_2+relu2_2,learning_rate=0.001,max_steps=200",
                       "candy/style_layers=conv1_2+relu2_2,learning_rate=0.003,max_steps=100",
                       "candy/style_layers=conv3_3,learning_rate=0.001,max_steps=200",
                       "candy/style_layers=conv3_3,learning_rate=0.003,max_steps=100",
                       "wave/tv_weight=0", "wave/tv_weight=1"}));
  EXPECT_EQ(job.styles[0].training.style_layers, (std::vector<std::string>{"conv1_2", "conv2_2"}));
  EXPECT_EQ(job.styles[1].training.learning_rate, 0.003);
  EXPECT_EQ(job.styles[1].training.max_steps, 100);
  EXPECT_EQ(job.styles[5].training.tv_weight, 1);
  const std::string plan = DescribeJob(job);
  EXPECT_NE(plan.find("  sweep candy: 4 run(s) over [style_layers, learning_rate, max_steps]\n"),
            std::string::npos)
      << plan;
  EXPECT_NE(plan.find("    wave/tv_weight=1\n"), std::string::npos) << plan;
}

TEST_F(ConfigTest, SweepProblemsAreReportedWithTheirPosition) {
  const auto problems = Problems(Head() +
                                 "sweep:\n"
                                 "  grid:\n"
                                 "    style_weigth: [1, 2]\n"
                                 "    learning_rate: [0.1, 7]\n"
                                 "    image: [a.jpg]\n"
                                 "  zip: {tv_weight: [1, 2], max_steps: [3]}\n"
                                 "  maxruns: 3\n"
                                 "styles:\n"
                                 "  - image: styles/candy.png\n"
                                 "  - image: styles/wave.jpg\n");
  const std::vector<std::string> expected = {
      "DIR/job.yaml:9:5: unknown key 'style_weigth' in 'sweep.grid'; did you mean "
      "'style_weight'? (a sweep varies training keys)",
      "DIR/job.yaml:11:5: unknown key 'image' in 'sweep.grid'; valid keys: content_weight, "
      "style_weight, tv_weight, batch_size, micro_batches, epochs, max_steps, learning_rate, "
      "log_every_steps, preview_every_steps, max_bad_steps, precision, style_image_size, "
      "style_layers, style_luminance_only (a sweep varies training keys)",
      "DIR/job.yaml:12:39: sweep.zip.max_steps: has 1 values but zip.tv_weight has 2; zipped "
      "lists go together value by value, so they must be equally long",
      "DIR/job.yaml:13:3: unknown key 'maxruns' in 'sweep'; did you mean 'max_runs'?"};
  EXPECT_EQ(problems, expected);
}

TEST_F(ConfigTest, BadSweptValuesAreReportedOnceAtTheirListItem) {
  const auto problems = Problems(Head() +
                                 "sweep:\n"
                                 "  grid:\n"
                                 "    learning_rate: [0.1, 7]\n"
                                 "    precision: [fp32, \"b f\"]\n"
                                 "styles:\n"
                                 "  - image: styles/candy.png\n"
                                 "  - image: styles/wave.jpg\n");
  const std::vector<std::string> expected = {
      "DIR/job.yaml:9:26: sweep.grid.learning_rate[1]: must be > 0 and <= 1, got 7",
      "DIR/job.yaml:10:23: sweep.grid.precision[1]: expected fp32 or bf16, got 'b f'"};
  EXPECT_EQ(problems, expected);
  // A value that reads fine but cannot name a folder.
  EXPECT_EQ(
      Problems(Head() + "styles:\n  - image: styles/candy.png\n"
                        "    sweep: {grid: {style_layers: [[conv1_2], [vgg_16/conv3/conv3_3]]}}\n"),
      (std::vector<std::string>{
          "DIR/job.yaml:9:46: styles[].sweep.grid.style_layers[1]: this value names the "
          "run's folder; write it with letters, digits, '.', '_', '+' and '-' only (at most "
          "64)"}));
}

TEST_F(ConfigTest, SweepAboveMaxRunsAndRepeatedValuesAreRefused) {
  auto problems = Problems(Head() +
                           "sweep:\n"
                           "  grid: {style_weight: [1, 2, 3], tv_weight: [0, 1, 2]}\n"
                           "  max_runs: 8\n"
                           "styles:\n  - image: styles/candy.png\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0],
            "DIR/job.yaml:8:3: sweep: the sweep of every style makes 9 runs (3 style_weight x 3 "
            "tv_weight), more than max_runs 8; sweep fewer values, or raise sweep.max_runs");
  problems = Problems(Head() +
                      "sweep: {grid: {style_weight: [50, 50.0]}}\n"
                      "styles:\n  - image: styles/candy.png\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("run 'candy/style_weight=50.0' trains with the same settings"),
            std::string::npos)
      << problems[0];
  // The default limit is 64.
  std::string many = "[";
  for (int i = 1; i <= 65; ++i) many += (i > 1 ? ", " : "") + std::to_string(i);
  problems = Problems(Head() + "sweep: {grid: {style_weight: " + many +
                      "]}}\nstyles:\n  - image: styles/candy.png\n");
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("makes 65 runs (65 style_weight), more than max_runs 64"),
            std::string::npos)
      << problems[0];
}

TEST_F(ConfigTest, ASweptStyleNameIsUniqueLikeAnyStyleName) {
  // Swept and plain: the plain style's folder would hold the sweep's run folders.
  auto problems = Problems(Head() +
                           "styles:\n"
                           "  - image: styles/candy.png\n"
                           "    sweep: {grid: {style_weight: [5, 6]}}\n"
                           "  - {image: styles/wave.jpg, name: candy}\n");
  EXPECT_EQ(problems, (std::vector<std::string>{"DIR/job.yaml:10:5: duplicate style name 'candy' "
                                                "(first defined at DIR/job.yaml:8:5)"}));
  // Two swept styles of one name would merge into one sweep (one message, not one per run).
  problems = Problems(Head() +
                      "styles:\n"
                      "  - image: styles/candy.png\n"
                      "    sweep: {grid: {style_weight: [5, 6]}}\n"
                      "  - image: styles/wave.jpg\n"
                      "    name: candy\n"
                      "    sweep: {grid: {style_weight: [7, 8]}}\n");
  EXPECT_EQ(problems, (std::vector<std::string>{"DIR/job.yaml:10:5: duplicate style name 'candy' "
                                                "(first defined at DIR/job.yaml:8:5)"}));
}

TEST_F(ConfigTest, AnyOverrideOfTheSweepSectionSaysItIsTheJobFiles) {
  LoadOptions options;
  for (const std::string set : {"sweep.max_runs=1", "sweep.grid.style_weight=[1, 2]"}) {
    options.overrides = {set};
    EXPECT_EQ(Problems(Head() + "styles:\n  - image: styles/candy.png\n", options),
              (std::vector<std::string>{
                  "command line (--set " + set +
                  "): the sweep section is set in the job file only (its lists do not fit a "
                  "command line); edit the file, or pass --set styles.NAME.KEY=VALUE for one "
                  "value"}));
  }
}

TEST_F(ConfigTest, AnOverrideOfAnUnknownSweepRunSaysWhichRunsThereAre) {
  LoadOptions options;
  // The sweep has two keys: 'candy/style_weight=5' names no run.
  options.overrides = {"styles.candy/style_weight=5.learning_rate=0.1"};
  EXPECT_EQ(Problems(Head() + "sweep: {grid: {style_weight: [5], tv_weight: [1]}}\n"
                              "styles:\n  - image: styles/candy.png\n",
                     options),
            (std::vector<std::string>{
                "command line (--set styles.candy/style_weight=5.learning_rate=0.1): no style or "
                "sweep run of that name; expected styles.NAME.key=value with NAME one of "
                "candy/style_weight=5,tv_weight=1"}));
}

TEST_F(ConfigTest, OverridesReachSweepRunsButNotSweptKeys) {
  const std::string text = Head() +
                           "sweep: {grid: {style_weight: [1, 2]}}\n"
                           "styles:\n  - image: styles/candy.png\n";
  LoadOptions options;
  options.overrides = {"styles.candy.max_steps=7", "styles.candy/style_weight=2.tv_weight=3",
                       "styles.candy.output_dir=elsewhere"};
  const JobConfig job = Load(text, options);
  ASSERT_EQ(job.styles.size(), 2u);
  EXPECT_EQ(job.styles[0].training.max_steps, 7);
  EXPECT_EQ(job.styles[1].training.max_steps, 7);
  EXPECT_EQ(job.styles[0].training.tv_weight, 0);
  EXPECT_EQ(job.styles[1].training.tv_weight, 3);
  EXPECT_EQ(job.styles[1].output_dir,
            (fs::current_path() / "elsewhere" / "style_weight=2").string());
  options.overrides = {"styles.candy.style_weight=5"};
  try {
    Load(text, options);
    ADD_FAILURE() << "a swept key was overridden";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 1u);
    EXPECT_EQ(e.problems()[0],
              "command line (--set styles.candy.style_weight=5): 'style_weight' is swept in style "
              "'candy'; change its values in the job file's sweep");
  }
}

}  // namespace
}  // namespace stylefleet
