// Where `stylize` writes: folder trees mirrored, the output folder never read
// (however it is spelled), one input per output file, existing files kept.
// PlanStylize reads no image, so these cases need neither a model nor pixels.
// Then what it writes with a conditional model's --blend, through the binary.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "checkpoint/model_file.h"
#include "commands/arbitrary_style.h"
#include "commands/commands.h"
#include "common/error.h"
#include "config/job_config.h"
#include "data/image.h"
#include "data/image_tensor.h"
#include "model/tensor_file.h"
#include "model/transformer_net.h"
#include "model/vgg16.h"
#include "step/forward_pass.h"
#include "test_paths.h"
#include "test_util.h"

namespace stylefleet {
namespace {
namespace fs = std::filesystem;

class StylizePlanTest : public ::testing::Test {
 protected:
  // Only names matter to the plan: the files need not hold pixels.
  void Touch(const std::string& name) { testing::WriteFile(dir_ / name, "not read"); }

  StylizePlan Plan(std::vector<std::string> inputs, const std::string& output,
                   bool overwrite = false) {
    StylizeOptions options;
    options.inputs = std::move(inputs);
    options.output_dir = output;
    options.overwrite = overwrite;
    return PlanStylize(options);
  }

  // The output path of every target, relative to `output`, and its input's name.
  std::vector<std::pair<std::string, std::string>> Targets(const StylizePlan& plan,
                                                           const std::string& output) {
    fs::path base = fs::path(output).lexically_normal();
    if (base.filename().empty()) base = base.parent_path();
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& t : plan.targets) {
      out.emplace_back(
          fs::path(t.output).lexically_normal().lexically_relative(base).string(),
          fs::path(t.input).lexically_normal().lexically_relative(dir_.path()).string());
    }
    return out;
  }

  testing::TempDir dir_;
};

using Mapping = std::vector<std::pair<std::string, std::string>>;

TEST_F(StylizePlanTest, FolderTreesAreMirroredAndFilesGoToTheirName) {
  Touch("imgs/a.png");
  Touch("imgs/sub/a.png");
  Touch("imgs/sub/deeper/b.JPEG");
  Touch("other/c.png");
  const std::string out = dir_ / "out";
  // A trailing separator and "." / ".." in the folder's spelling change nothing.
  const StylizePlan plan =
      Plan({dir_ / "imgs/", dir_ / "other/../other/c.png", dir_ / "./imgs/sub/deeper"}, out);
  EXPECT_EQ(Targets(plan, out), (Mapping{{"a.jpg", "imgs/a.png"},
                                         {"sub/a.jpg", "imgs/sub/a.png"},
                                         {"sub/deeper/b.jpg", "imgs/sub/deeper/b.JPEG"},
                                         {"c.jpg", "other/c.png"}}));
  // imgs/sub/deeper/b.JPEG was already an input through imgs/.
  ASSERT_EQ(plan.skipped.size(), 1u);
  EXPECT_EQ(plan.skipped[0].reason, SkipReason::kRepeatedInput);
  EXPECT_NE(DescribeSkip(plan.skipped[0]).find("already an input"), std::string::npos);
}

TEST_F(StylizePlanTest, NothingInsideTheOutputFolderIsReadHoweverItIsSpelled) {
  Touch("imgs/a.png");
  Touch("imgs/styled/a.jpg");  // results of an earlier run, inside the input folder
  Touch("imgs/styled/x/b.png");
  fs::create_directory_symlink(dir_ / "imgs/styled", dir_ / "link");
  for (const std::string& out :
       {dir_ / "imgs/styled", dir_ / "imgs/./x/../styled/", dir_ / "link"}) {
    SCOPED_TRACE(out);
    const StylizePlan plan = Plan({dir_ / "imgs", dir_ / "link/x/b.png"}, out, true);
    EXPECT_EQ(Targets(plan, out), (Mapping{{"a.jpg", "imgs/a.png"}}));
    ASSERT_EQ(plan.skipped.size(), 3u);
    for (const auto& s : plan.skipped) EXPECT_EQ(s.reason, SkipReason::kInsideOutput) << s.input;
  }
}

TEST_F(StylizePlanTest, ExistingOutputsAreKeptUnlessOverwriting) {
  Touch("imgs/a.png");
  Touch("imgs/sub/b.png");
  Touch("out/sub/b.jpg");
  const StylizePlan kept = Plan({dir_ / "imgs"}, dir_ / "out");
  EXPECT_EQ(Targets(kept, dir_ / "out"), (Mapping{{"a.jpg", "imgs/a.png"}}));
  ASSERT_EQ(kept.skipped.size(), 1u);
  EXPECT_EQ(kept.skipped[0].reason, SkipReason::kOutputExists);
  EXPECT_EQ(DescribeSkip(kept.skipped[0]), "skipped " + (dir_ / "imgs/sub/b.png") + ": " +
                                               (dir_ / "out/sub/b.jpg") +
                                               " exists (--overwrite replaces it)");
  const StylizePlan replaced = Plan({dir_ / "imgs"}, dir_ / "out", true);
  EXPECT_EQ(replaced.targets.size(), 2u);
  EXPECT_TRUE(replaced.skipped.empty());
}

// a.jpg and a.png would both become a.jpg; two files of one name from two
// folders would both become OUT/a.jpg: the run is refused, naming each.
TEST_F(StylizePlanTest, TwoInputsOnOneOutputFileAreRefused) {
  Touch("imgs/a.jpg");
  Touch("imgs/a.png");
  Touch("imgs/b.png");
  Touch("more/b.png");
  try {
    Plan({dir_ / "imgs", dir_ / "more/b.png"}, dir_ / "out", true);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    ASSERT_EQ(e.problems().size(), 2u);
    EXPECT_EQ(e.problems()[0], "stylize: " + (dir_ / "out/a.jpg") +
                                   " would be written from each of " + (dir_ / "imgs/a.jpg") +
                                   " and " + (dir_ / "imgs/a.png") +
                                   "; rename one of them or stylize them in separate runs");
    EXPECT_NE(e.problems()[1].find((dir_ / "more/b.png")), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(StylizePlanTest, BadFormatIsAConfigError) {
  StylizeOptions options;
  options.inputs = {dir_ / "a.png"};
  options.output_dir = dir_ / "out";
  options.format = "gif";
  EXPECT_THROW(PlanStylize(options), ConfigError);
}

// `stylize --blend` through the binary (option parsing, names to rows) against
// per-style networks whose norm rows the test mixes itself, not with
// BlendedTransformer. Every row value is a multiple of 1/64 and every weight
// a multiple of 1/8, so each mix is exact in float whatever the order of the
// sums: the blended network must be bit-identical to the expected one and its
// PNG equal to the pixel. An uneven blend given in either order must put each
// weight on its named style (a mutation audit found that weights applied to
// the styles in the wrong order passed every test).
class StylizeBlendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::NoGradGuard no_grad;
    conditional_ = TransformerNet(static_cast<int64_t>(styles_.size()));
    InitializeTransformer(conditional_, 3);
    torch::manual_seed(3);
    for (auto& item : conditional_->named_parameters()) {
      // The frozen shifts (res*.in2.bias) stay 0, as training leaves them.
      if (!IsStyleRowParameter(item.key()) || !item.value().requires_grad()) continue;
      const bool scale = item.key().compare(item.key().size() - 7, 7, ".weight") == 0;
      const auto sizes = item.value().sizes();
      item.value().copy_(scale ? torch::randint(32, 96, sizes) / 64.0
                               : torch::randint(-24, 25, sizes) / 64.0);
    }
    SaveTensorDict(ModelDict(conditional_, ModelInfo{"job", kConditionalNetworkName, 64, styles_}),
                   dir_ / "conditional.pt");
    SaveImageFile(testing::MakeTestImage(24, 24, 5), dir_ / "photo.png");
  }

  // The per-style network whose every norm row is sum_s weights[s] * row s.
  TransformerNet Mixed(const std::vector<double>& weights) {
    torch::NoGradGuard no_grad;
    TransformerNet out;
    const auto source = conditional_->named_parameters();
    for (auto& item : out->named_parameters()) {
      const torch::Tensor& from = source[item.key()];
      if (from.dim() == item.value().dim()) {
        item.value().copy_(from);  // shared by the styles
        continue;
      }
      torch::Tensor row = torch::zeros_like(item.value());
      for (size_t s = 0; s < weights.size(); ++s) row += weights[s] * from[s];
      item.value().copy_(row);
    }
    return out;
  }

  // The image `stylize --model MODEL [EXTRA]` writes for photo.png.
  RgbImage Stylize(const std::string& model, const std::string& extra) {
    const std::string out = dir_ / ("out" + std::to_string(runs_++));
    const testing::CommandResult r = testing::RunCommand(
        std::string(STYLEFLEET_BINARY) + " stylize --threads 1 --format png --model " + model +
        " " + (dir_ / "photo.png") + " --output " + out + " " + extra);
    EXPECT_EQ(r.exit_code, 0) << extra << "\n" << r.output;
    return LoadImageFile(out + "/photo.png");
  }

  // What the per-style network mixed with `weights` writes.
  RgbImage Expected(const std::vector<double>& weights) {
    TransformerNet net = Mixed(weights);
    const std::string path = dir_ / ("expected" + std::to_string(runs_) + ".pt");
    SaveTensorDict(ModelDict(net, ModelInfo{"job", "mixed", 64, {}}), path);
    return Stylize(path, "");
  }

  // How many pixels differ in any channel (every one when the sizes differ).
  static int DifferentPixels(const RgbImage& a, const RgbImage& b) {
    if (a.pixels.size() != b.pixels.size()) {
      return static_cast<int>(std::max(a.pixels.size(), b.pixels.size()) / 3);
    }
    int count = 0;
    for (size_t i = 0; i < a.pixels.size(); i += 3) {
      count += !std::equal(a.pixels.begin() + i, a.pixels.begin() + i + 3, b.pixels.begin() + i);
    }
    return count;
  }

  testing::TempDir dir_;
  std::vector<std::string> styles_ = {"candy", "mosaic", "wave"};
  TransformerNet conditional_{nullptr};
  int runs_ = 0;
};

TEST_F(StylizeBlendTest, EachWeightGoesToItsNamedStyleInAnyOrder) {
  // Every style's rows differ from every other's, so a weight on the wrong row shows.
  for (const auto& item : conditional_->named_parameters()) {
    if (!IsStyleRowParameter(item.key()) || !item.value().requires_grad()) continue;
    for (int64_t s = 0; s < 3; ++s) {
      EXPECT_FALSE(torch::equal(item.value()[s], item.value()[(s + 1) % 3])) << item.key();
    }
  }
  // wave (row 2) first on the command line, candy (row 0) second.
  const RgbImage quarter_wave = Expected({0.75, 0.0, 0.25});
  const RgbImage three_quarters_wave = Expected({0.25, 0.0, 0.75});
  ASSERT_EQ(quarter_wave.pixels.size(), 24u * 24 * 3);
  // The two uneven blends look different (else the comparisons below prove nothing).
  EXPECT_GT(DifferentPixels(quarter_wave, three_quarters_wave), 24 * 24 / 4);
  for (const std::string blend : {"wave=0.25,candy=0.75", "candy=0.75,wave=0.25"}) {
    const RgbImage styled = Stylize(dir_ / "conditional.pt", "--blend " + blend);
    EXPECT_EQ(DifferentPixels(styled, quarter_wave), 0) << blend;
  }
  const RgbImage swapped = Stylize(dir_ / "conditional.pt", "--blend candy=0.25,wave=0.75");
  EXPECT_EQ(DifferentPixels(swapped, three_quarters_wave), 0);

  // Three styles, three different weights, given out of row order.
  const RgbImage three = Expected({0.125, 0.625, 0.25});
  const RgbImage styled =
      Stylize(dir_ / "conditional.pt", "--blend wave=0.25,candy=0.125,mosaic=0.625");
  EXPECT_GT(DifferentPixels(three, quarter_wave), 24 * 24 / 4);
  EXPECT_EQ(DifferentPixels(styled, three), 0);
}

// Colour preservation for both network kinds, through the real CLI: where no
// channel was clamped, the written image has the photo's chroma and the plain
// stylized image's luma (to rounding), and the plain image's chroma is far
// from the photo's (else the comparison would prove nothing).
TEST_F(StylizeBlendTest, PreserveColourKeepsThePhotosChromaForEveryNetworkKind) {
  // Mid-range photo colours and a last layer scaled down around grey, so that
  // most pixels are not clamped (the fixture's photo and network saturate).
  RgbImage photo{24, 24, std::vector<uint8_t>(24 * 24 * 3), {}};
  uint32_t state = 12345;
  for (uint8_t& v : photo.pixels) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<uint8_t>(60 + (state >> 24) % 136);
  }
  SaveImageFile(photo, dir_ / "photo.png");
  {
    torch::NoGradGuard no_grad;
    for (auto& item : conditional_->named_parameters()) {
      if (item.key() == "deconv3.conv2d.weight") item.value().mul_(0.05);
      if (item.key() == "deconv3.conv2d.bias") item.value().fill_(128);
    }
  }
  SaveTensorDict(ModelDict(conditional_, ModelInfo{"job", kConditionalNetworkName, 64, styles_}),
                 dir_ / "conditional.pt");
  const auto cb = [](const uint8_t* p) { return -0.168736 * p[0] - 0.331264 * p[1] + 0.5 * p[2]; };
  const auto cr = [](const uint8_t* p) { return 0.5 * p[0] - 0.418688 * p[1] - 0.081312 * p[2]; };
  const auto luma = [](const uint8_t* p) { return 0.299 * p[0] + 0.587 * p[1] + 0.114 * p[2]; };
  TransformerNet per_style = Mixed({0.0, 0.0, 1.0});
  SaveTensorDict(ModelDict(per_style, ModelInfo{"job", "wave", 64, {}}), dir_ / "wave.pt");
  for (const auto& [model, extra] : std::vector<std::pair<std::string, std::string>>{
           {dir_ / "conditional.pt", "--style mosaic"}, {dir_ / "wave.pt", ""}}) {
    const RgbImage plain = Stylize(model, extra);
    const RgbImage kept = Stylize(model, extra + " --preserve-colour");
    ASSERT_EQ(kept.pixels.size(), photo.pixels.size()) << model;
    ASSERT_EQ(plain.pixels.size(), photo.pixels.size()) << model;
    int unclamped = 0;
    double plain_chroma_change = 0;
    for (size_t i = 0; i < photo.pixels.size(); i += 3) {
      const uint8_t* k = &kept.pixels[i];
      const uint8_t* p = &photo.pixels[i];
      const uint8_t* s = &plain.pixels[i];
      plain_chroma_change += std::abs(cb(s) - cb(p)) + std::abs(cr(s) - cr(p));
      if (std::min({k[0], k[1], k[2]}) == 0 || std::max({k[0], k[1], k[2]}) == 255) continue;
      ++unclamped;
      // The same whole change in every channel: the photo's chroma exactly, the
      // plain image's luma to half a level.
      EXPECT_LE(std::abs(cb(k) - cb(p)), 1e-9) << model << " pixel " << i / 3;
      EXPECT_LE(std::abs(cr(k) - cr(p)), 1e-9) << model << " pixel " << i / 3;
      EXPECT_LE(std::abs(luma(k) - luma(s)), 0.5 + 1e-9) << model << " pixel " << i / 3;
    }
    EXPECT_GT(unclamped, 24 * 24 / 2) << model;
    EXPECT_GT(plain_chroma_change / (24 * 24), 10.0) << model << ": the styles keep the colours";
  }
}

// An arbitrary-style model through the real CLI (issue 34): each style image
// gives its own result, the same image the same bits every time; strength 1
// and a blend with all weight on one image are that image; strength 0 is the
// photo's own embedding whatever the style image; and what a user can get
// wrong is refused with what to do instead.
class StylizeArbitraryTest : public StylizeBlendTest {
 protected:
  void SetUp() override {
    StylizeBlendTest::SetUp();
    TransformerNet arbitrary{PredictedNorms{{1, 3}, 8}};
    InitializeTransformer(arbitrary, 4);
    {
      // A trained predictor's map is not 0: give it a small random one.
      torch::NoGradGuard no_grad;
      torch::manual_seed(9);
      auto map = arbitrary->named_parameters()["predictor.to_norms.weight"];
      map.copy_(torch::randn(map.sizes()) * 3);
    }
    ModelInfo info{"job", kArbitraryNetworkName, 64, {"a", "b"}};
    info.loss_network = "random:5";
    info.style_image_size = 32;
    SaveTensorDict(ModelDict(arbitrary, info), dir_ / "arbitrary.pt");
    SaveImageFile(testing::MakeTestImage(40, 36, 21), dir_ / "unseen1.png");
    SaveImageFile(testing::MakeTestImage(50, 50, 33), dir_ / "unseen2.png");
  }
  std::string Model() const { return dir_ / "arbitrary.pt"; }
  std::string Image(int k) const { return dir_ / ("unseen" + std::to_string(k) + ".png"); }

  // `stylize` with `extra` that must fail with exit code `code` and say `says`.
  void ExpectRefused(const std::string& model, const std::string& extra, int code,
                     const std::string& says) {
    const testing::CommandResult r = testing::RunCommand(
        std::string(STYLEFLEET_BINARY) + " stylize --threads 1 --model " + model + " " +
        (dir_ / "photo.png") + " --output " + (dir_ / "refused") + " " + extra);
    EXPECT_EQ(r.exit_code, code) << extra << "\n" << r.output;
    EXPECT_NE(r.output.find(says), std::string::npos) << extra << "\n" << r.output;
  }
};

TEST_F(StylizeArbitraryTest, AnyStyleImageStrengthAndBlendBehaveAsDefined) {
  const RgbImage first = Stylize(Model(), "--style-image " + Image(1));
  const RgbImage second = Stylize(Model(), "--style-image " + Image(2));
  ASSERT_EQ(first.pixels.size(), 24u * 24 * 3);
  // Each image its own style (the fixture's photo saturates most pixels at 0
  // or 255, so only some of them can differ: 125 of 576 here).
  EXPECT_GT(DifferentPixels(first, second), 24 * 24 / 16);
  EXPECT_EQ(DifferentPixels(Stylize(Model(), "--style-image " + Image(1)), first), 0);
  EXPECT_EQ(DifferentPixels(Stylize(Model(), "--style-image " + Image(1) + " --strength 1"), first),
            0);
  const std::string both = "--style-image " + Image(1) + " --style-image " + Image(2);
  EXPECT_EQ(DifferentPixels(Stylize(Model(), both + " --blend 1,0"), first), 0);
  EXPECT_EQ(DifferentPixels(Stylize(Model(), both + " --blend 0,1"), second), 0);
  // One path per --style-image: the photo may follow it (CLI11 gives a
  // repeatable option every word up to the next option unless told not to).
  const testing::CommandResult before = testing::RunCommand(
      std::string(STYLEFLEET_BINARY) + " stylize --threads 1 --format png --model " + Model() +
      " --style-image " + Image(1) + " " + (dir_ / "photo.png") + " --output " + (dir_ / "before"));
  ASSERT_EQ(before.exit_code, 0) << before.output;
  EXPECT_EQ(DifferentPixels(LoadImageFile(dir_ / "before/photo.png"), first), 0);
  const RgbImage half = Stylize(Model(), both);
  EXPECT_GT(DifferentPixels(half, first), 0);
  EXPECT_GT(DifferentPixels(half, second), 0);
  // Strength 0: the photo's own embedding, the same for any style image.
  const RgbImage own = Stylize(Model(), "--style-image " + Image(1) + " --strength 0");
  EXPECT_EQ(DifferentPixels(Stylize(Model(), "--style-image " + Image(2) + " --strength 0"), own),
            0);
  EXPECT_GT(DifferentPixels(own, first), 0);
  const RgbImage some = Stylize(Model(), "--style-image " + Image(1) + " --strength 0.5");
  EXPECT_GT(DifferentPixels(some, first), 0);
  EXPECT_GT(DifferentPixels(some, own), 0);
}

// `export` of an arbitrary-style model (issue 34): python/stylefleet_torch.py
// loads the one file, which carries the loss network's layers the predictor
// reads (here random:5's, which PyTorch cannot rebuild), and computes what
// stylefleet does for style images, blends and strengths (max abs difference
// < 1e-3 on 0..255): the non-square photo's own embedding (strength < 1)
// enlarges it to the style image size, the style images are shrunk. The
// Python command line writes stylize's image within a level; the model file
// itself, without the loss network's layers, is refused naming export.
TEST_F(StylizeArbitraryTest, PyTorchModuleMatchesStylefleetForStyleImagesBlendsAndStrengths) {
  ExportModel(Model(), dir_ / "export.pt", /*overwrite=*/false);
  LoadedModel exported = LoadModel(dir_ / "export.pt");  // C++ reads its own export too
  ASSERT_TRUE(exported.net->predicts_norms());
  EXPECT_EQ(exported.loss_network, "random:5");
  EXPECT_EQ(exported.trained_styles, (std::vector<std::string>{"a", "b"}));
  const RgbImage photo = testing::MakeTestImage(36, 28, 77);
  const torch::Tensor input = ImageToTensor(photo);
  TensorDict data = {{"input", input}};
  int k = 0;
  const auto add_case = [&](const std::vector<std::string>& images, const std::string& blend,
                            double strength) {
    StylizeOptions options;
    options.model = dir_ / "export.pt";
    options.style_images = images;
    options.blend = blend;
    options.strength = strength;
    std::string paths;
    for (const std::string& path : images) paths += (paths.empty() ? "" : "\n") + path;
    const std::string prefix = "case." + std::to_string(k++) + ".";
    torch::NoGradGuard no_grad;
    data.emplace_back(prefix + "output",
                      ArbitraryStyleNetwork(exported, options, photo)->forward(input));
    data.emplace_back(prefix + "style_images", StringToTensor(paths));
    if (!blend.empty()) data.emplace_back(prefix + "blend", StringToTensor(blend));
    data.emplace_back(prefix + "strength", torch::tensor(strength, torch::kFloat64));
  };
  add_case({Image(1)}, "", 1.0);
  add_case({Image(1), Image(2)}, "0.7,0.3", 1.0);
  add_case({Image(2)}, "", 0.0);
  add_case({Image(1), Image(2)}, "", 0.6);
  SaveTensorDict(data, dir_ / "data.pt");
  const std::string python = "/usr/bin/python3 " + std::string(STYLEFLEET_SOURCE_DIR);
  const testing::CommandResult check =
      testing::RunCommand(python + "/tests/reference/export_check.py " + (dir_ / "export.pt") +
                          " " + (dir_ / "data.pt"));
  EXPECT_EQ(check.exit_code, 0) << check.output;
  EXPECT_NE(check.output.find("case 3 (style images unseen1.png, unseen2.png, strength 0.6)"),
            std::string::npos)
      << check.output;
  // Its resize gives stylefleet's levels exactly, shrinking and enlarging.
  SaveImageFile(photo, dir_ / "photo36x28.png");
  SaveImageFile(ResizeCenterCrop(photo, 32), dir_ / "enlarged.png");
  SaveImageFile(ResizeCenterCrop(LoadImageFile(Image(2)), 32), dir_ / "shrunk.png");
  const testing::CommandResult resized = testing::RunCommand(
      "/usr/bin/python3 -c \"import sys, torch; sys.path.insert(0, '" +
      std::string(STYLEFLEET_SOURCE_DIR) +
      "/python'); import stylefleet_torch as sf; "
      "same = [torch.equal(sf.resize_centre_crop(sf._read_image(a), 32), sf._read_image(b)) "
      "for a, b in [('" +
      (dir_ / "photo36x28.png") + "', '" + (dir_ / "enlarged.png") + "'), ('" + Image(2) + "', '" +
      (dir_ / "shrunk.png") + "')]]; print(same); sys.exit(0 if all(same) else 1)\"");
  EXPECT_EQ(resized.exit_code, 0) << resized.output;
  // The command line, against stylize's written image.
  const RgbImage expected = Stylize(dir_ / "export.pt", "--style-image " + Image(2));
  const std::string tool = python + "/python/stylefleet_torch.py ";
  const testing::CommandResult cli =
      testing::RunCommand(tool + (dir_ / "export.pt") + " " + (dir_ / "photo.png") + " " +
                          (dir_ / "python.png") + " --style-image " + Image(2));
  ASSERT_EQ(cli.exit_code, 0) << cli.output;
  const RgbImage written = LoadImageFile(dir_ / "python.png");
  ASSERT_EQ(written.pixels.size(), expected.pixels.size());
  for (size_t i = 0; i < written.pixels.size(); ++i) {
    ASSERT_LE(std::abs(int(written.pixels[i]) - int(expected.pixels[i])), 1) << "byte " << i;
  }
  const testing::CommandResult unexported =
      testing::RunCommand(tool + Model() + " " + (dir_ / "photo.png") + " " +
                          (dir_ / "refused.png") + " --style-image " + Image(2));
  EXPECT_EQ(unexported.exit_code, 1) << unexported.output;
  EXPECT_NE(unexported.output.find("write the file with `stylefleet export`"), std::string::npos)
      << unexported.output;
}

TEST_F(StylizeArbitraryTest, WhatAUserCanGetWrongIsRefused) {
  ExpectRefused(Model(), "", 2, "is an arbitrary-style model: give the style as an image");
  ExpectRefused(Model(), "--style a --style-image " + Image(1), 2, "has no named styles");
  ExpectRefused(Model(), "--style-image " + Image(1) + " --blend candy=1", 2,
                "is not a weight from 0 to 1");
  ExpectRefused(Model(), "--style-image " + Image(1) + " --blend 0.5", 2,
                "one per --style-image, that sum to 1");
  ExpectRefused(Model(), "--style-image " + Image(1) + " --blend 1,", 2, "is not a weight");
  ExpectRefused(Model(),
                "--style-image " + Image(1) + " --style-image " + Image(2) + " --blend 0.5,0.6", 2,
                "one per --style-image, that sum to 1");
  ExpectRefused(Model(), "--style-image " + Image(1) + " --strength 1.5", 2, "--strength");
  ExpectRefused(dir_ / "conditional.pt", "--style candy --style-image " + Image(1), 2,
                "is not an arbitrary-style model");
  testing::WriteFile(dir_ / "broken.png", "not an image");
  ExpectRefused(Model(), "--style-image " + (dir_ / "broken.png"), 1, "broken.png");
  ExpectRefused(Model(), "--style-image " + (dir_ / "missing.png"), 1, "missing.png");
  SaveImageFile(testing::MakeTestImage(64, 31, 2), dir_ / "thin.png");
  ExpectRefused(Model(), "--style-image " + (dir_ / "thin.png"), 1,
                "thin.png: 64x31 pixels; the predictor needs at least 32 on each side");
  ExpectRefused(Model(), "--style-image " + Image(1) + " --loss-network " + (dir_ / "none.pt"), 1,
                "none.pt");
  EXPECT_FALSE(fs::exists(dir_ / "refused/photo.jpg"));
}

// A model file marked arbitrary is checked before the network is built: a
// claimed bottleneck (a few bytes on disk for a [4M x 0] tensor) would size
// the allocation; bad summary layers, predictor shapes or style image size
// are refused naming the key. `export` needs the loss network it names.
TEST_F(StylizeArbitraryTest, HostileArbitraryFilesAreRefusedBeforeAnythingIsBuilt) {
  const TensorDict good = LoadTensorDict(Model());
  ASSERT_TRUE(LoadModel(Model()).net->predicts_norms());
  const auto with = [&](const std::string& key, const torch::Tensor& value) {
    TensorDict dict = good;
    bool found = false;
    for (auto& entry : dict) {
      if (entry.first == key) {
        entry.second = value;
        found = true;
      }
    }
    if (!found) dict.emplace_back(key, value);
    const std::string path = dir_ / ("hostile" + std::to_string(runs_++) + ".pt");
    SaveTensorDict(RecomputeChecksum(dict), path);
    return path;
  };
  const auto refused = [&](const std::string& path, const std::string& says) {
    try {
      LoadModel(path);
      ADD_FAILURE() << "loaded " << says;
    } catch (const DataError& e) {
      EXPECT_NE(std::string(e.what()).find(says), std::string::npos) << e.what();
    }
  };
  refused(with("predictor.bottleneck.weight", torch::zeros({int64_t{1} << 22, 0})),
          "1 to 4096 embedding numbers");
  refused(with("predictor.bottleneck.weight", torch::zeros({8, 100})),
          "'predictor.bottleneck.weight' is of another shape");
  refused(with("predictor.to_norms.weight", torch::zeros({2560, 7})),
          "'predictor.to_norms.weight' is of another shape");
  refused(with("stylefleet.predictor_layers", torch::tensor({1, 1}, torch::kLong)),
          "not a loss-network layer index (0 to 12) given once");
  refused(with("stylefleet.predictor_layers", torch::tensor({13}, torch::kLong)),
          "not a loss-network layer index");
  refused(with("stylefleet.predictor_layers", torch::zeros({0}, torch::kLong)),
          "'stylefleet.predictor_layers' is missing or not a list");
  refused(with("stylefleet.style_image_size", torch::tensor(int64_t{0})),
          "stylefleet.style_image_size");
  refused(with("in1.weight", torch::ones({32})), "in1.weight");
  ExpectRefused(Model(), "--style-image " + Image(1) + " --max-image-pixels 100", 1,
                "stylize --max-image-pixels");
  // An export needs the loss network: one the file names but that is not
  // there writes nothing and says how to give it; --loss-network does.
  const std::string moved = with("stylefleet.loss_network", StringToTensor(dir_ / "gone/vgg.pt"));
  const std::string export_moved =
      std::string(STYLEFLEET_BINARY) + " export --model " + moved + " --to " + (dir_ / "x.pt");
  const testing::CommandResult exported = testing::RunCommand(export_moved);
  EXPECT_EQ(exported.exit_code, 1) << exported.output;
  EXPECT_NE(exported.output.find("--loss-network FILE gives another copy of it"), std::string::npos)
      << exported.output;
  EXPECT_FALSE(fs::exists(dir_ / "x.pt"));
  const testing::CommandResult given =
      testing::RunCommand(export_moved + " --loss-network random:5");
  EXPECT_EQ(given.exit_code, 0) << given.output;
  EXPECT_NE(given.output.find("export: --loss-network random:5 is not the loss network"),
            std::string::npos)
      << given.output;
  EXPECT_EQ(LoadModel(dir_ / "x.pt").loss_network, "random:5");  // the layers it holds
}

// `losses --model` of an arbitrary-style model scores the photo stylized
// with the norms predicted from the style image it is scored against, that
// image summarized by the loss network the model names (random:5), whatever
// loss network scores (random:6): the numbers of the per-style network of
// those norms, written here as its own file.
TEST_F(StylizeArbitraryTest, LossesScoresWithTheStyleImagesOwnNorms) {
  LoadedModel model = LoadModel(Model());
  const Vgg16 summarizer = Vgg16::Load("random:5");
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor summary = StyleImageSummary(
        summarizer, ImageToTensor(ResizeCenterCrop(LoadImageFile(Image(1)), 32)), {1, 3});
    TransformerNet fixed =
        FixedNormsTransformer(model.net, model.net->predictor()->forward(summary)[0]);
    SaveTensorDict(ModelDict(fixed, ModelInfo{"job", "s", 64}), dir_ / "fixed.pt");
  }
  const auto losses = [&](const std::string& model, int image) {
    const testing::CommandResult r =
        testing::RunCommand(std::string(STYLEFLEET_BINARY) + " losses --model " + model +
                            " --content " + (dir_ / "photo.png") + " --style " + Image(image) +
                            " --loss-network random:6 --image-size 24");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return nlohmann::json::parse(r.output.substr(r.output.find('{')));
  };
  const nlohmann::json arbitrary = losses(Model(), 1), fixed = losses(dir_ / "fixed.pt", 1);
  for (const char* key : {"content_loss", "style_loss", "tv_loss", "total_loss"}) {
    EXPECT_EQ(arbitrary[key], fixed[key]) << key;
  }
  EXPECT_NE(losses(Model(), 2)["style_loss"], arbitrary["style_loss"]);
}

TEST(WithChromaOfTest, AddsTheLumaChangeToEveryChannelAndClampsOnlyThere) {
  RgbImage photo{2, 1, {200, 100, 50, 10, 20, 30}, {}};
  RgbImage styled{2, 1, {0, 0, 0, 250, 250, 250}, {7, 9}};
  const RgbImage out = WithChromaOf(styled, photo);
  // Pixel 0: luma 124.2 -> 0: every channel goes down by 124 (G and B clamped at 0).
  // Pixel 1: luma 18.15 -> 250: up by 232 (B clamped at 255).
  EXPECT_EQ(out.pixels, (std::vector<uint8_t>{76, 0, 0, 242, 252, 255}));
  // A change of exactly -22.5 levels (found by a trial: channels rounded apart
  // gave -22, -23, -22) moves every channel by -23, half away from zero; one
  // of +41.5 by +42.
  const RgbImage half = WithChromaOf(RgbImage{2, 1, {140, 120, 112, 174, 181, 73}, {}},
                                     RgbImage{2, 1, {215, 111, 159, 122, 123, 144}, {}});
  EXPECT_EQ(half.pixels, (std::vector<uint8_t>{192, 88, 136, 164, 165, 186}));
  EXPECT_EQ(out.alpha, styled.alpha);
  EXPECT_THROW(WithChromaOf(styled, RgbImage{1, 1, {1, 2, 3}, {}}), DataError);
}

}  // namespace
}  // namespace stylefleet
