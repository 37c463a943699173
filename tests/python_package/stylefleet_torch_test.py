#!/usr/bin/python3
"""Self-test of python/stylefleet_torch.py (no C++ needed): python3 stylefleet_torch_test.py

The conditional network is checked against tests/reference/reference.py's independent
per-style TransformerNet: style s must equal the per-style network whose instance norms
carry row s, a blend the one whose norms carry the blended rows. Also: model files as
stylefleet writes them (round trip, refusals), stylize's validation and padding, the
command line on a PNG, export_check.py passing and failing, and arbitrary-style exports
(blends, strength, the norms' layout, hostile files; their numbers against stylefleet's
own are checked by stylize_test).
"""
import contextlib
import io
import os
import subprocess
import sys
import tempfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
REFERENCE = os.path.join(ROOT, "tests", "reference")
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, REFERENCE)
import reference  # noqa: E402
import stylefleet_torch as sf  # noqa: E402

CLI = os.path.join(ROOT, "python", "stylefleet_torch.py")
CHECKER = os.path.join(REFERENCE, "export_check.py")
STYLES = ["mosaic", "candy", "la muse"]


def close(a, b, rel=1e-5):
    diff = (a - b).abs().max().item()
    scale = max(b.abs().max().item(), 1.0)
    assert diff <= rel * scale, f"differ by {diff} (scale {scale})"


def expect_error(fragment, call):
    try:
        call()
    except ValueError as e:
        assert fragment in str(e), f"message {str(e)!r} lacks {fragment!r}"
        return str(e)
    raise AssertionError(f"no ValueError (expected one saying {fragment!r})")


def text_tensor(s):
    return torch.tensor(list(s.encode("utf-8")), dtype=torch.uint8)


def is_norm(key):
    return key.split(".")[-2].startswith("in")


def random_conditional(num_styles, seed):
    """A conditional net with random convolutions and distinct random rows per style; the
    last layer is scaled and shifted to a spread around mid-range, so that clamping keeps
    most pixels and the images are not flat."""
    torch.manual_seed(seed)
    net = sf.TransformerNet(num_styles)
    with torch.no_grad():
        for key, p in net.named_parameters():
            if is_norm(key):
                p.copy_(torch.randn_like(p) * 0.5 + (1.0 if key.endswith("weight") else 0.0))
        net.deconv3.conv2d.weight.mul_(100.0)
        net.deconv3.conv2d.bias.fill_(128.0)
    return net.eval()


def per_style_with_rows(conditional, rows):
    """reference.py's per-style net with `conditional`'s convolutions and norm rows given
    by `rows(param)` (a [C] tensor from the [N, C] parameter)."""
    net = reference.TransformerNet()
    cond = dict(conditional.named_parameters())
    with torch.no_grad():
        for key, p in net.named_parameters():
            p.copy_(rows(cond[key]) if is_norm(key) else cond[key])
    return net.eval()


def save_conditional(net, names, path, **extra):
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    state["stylefleet.head"] = text_tensor("linear")
    state["stylefleet.network"] = text_tensor("conditional")
    state["stylefleet.styles"] = text_tensor("\n".join(names))
    state["stylefleet.image_size"] = torch.tensor(256)
    state.update(extra)
    torch.save(state, path)


def test_conditional_semantics(tmp):
    net = random_conditional(3, seed=1)
    path = os.path.join(tmp, "cond.pt")
    save_conditional(net, STYLES, path)
    model = sf.load_model(path)
    assert model.styles == STYLES, model.styles
    assert model.metadata["network"] == "conditional" and model.metadata["image_size"] == 256
    assert not model.net.training
    torch.manual_seed(2)
    x = torch.rand(2, 3, 32, 36) * 255
    with torch.no_grad():
        for s in range(3):
            out = model.net(x, s)
            assert torch.equal(out, net(x, s)), "loaded network differs from the saved one"
            close(out, per_style_with_rows(net, lambda p: p[s])(x))
            one_hot = torch.zeros(3)
            one_hot[s] = 1.0
            assert torch.equal(model.net(x, one_hot), out), f"one-hot blend != style {s}"
            by_name = model.net(x, sf.style_argument(model, blend={STYLES[s]: 1.0}))
            assert torch.equal(by_name, out), f"blend {STYLES[s]}=1 != style {STYLES[s]}"
        w = torch.tensor([0.7, 0.0, 0.3])
        blended = model.net(x, w)
        close(blended, per_style_with_rows(net, lambda p: w @ p)(x))
        assert torch.equal(blended, model.net(x, sf.style_argument(model, blend="mosaic=0.7,la muse=0.3")))
        assert (blended - model.net(x, 0)).abs().max() > 1e-2, "a blend must change the output"
        # Per-sample styles and blends: each sample as if run alone.
        ids = torch.tensor([2, 0])
        mixed = model.net(x, ids)
        for i in range(2):
            close(mixed[i:i + 1], model.net(x[i:i + 1], int(ids[i])))
        rows = torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.2, 0.8]])
        mixed = model.net(x, rows)
        for i in range(2):
            close(mixed[i:i + 1], model.net(x[i:i + 1], rows[i]))
    expect_error("needs a style", lambda: model.net(x))
    expect_error("out of range", lambda: model.net(x, 3))
    expect_error("shape [2]", lambda: model.net(x, torch.tensor([0, 1, 2])))
    expect_error("blend weights must have shape", lambda: model.net(x, torch.ones(2)))
    return model


def test_one_style_equals_per_style():
    torch.manual_seed(3)
    per_style = reference.TransformerNet()
    with torch.no_grad():
        for key, p in per_style.named_parameters():
            if is_norm(key):
                p.add_(torch.randn_like(p) * 0.5)
    per_style.eval()
    cond = sf.TransformerNet(1)
    cond.load_state_dict({k: (v.unsqueeze(0) if is_norm(k) else v)
                          for k, v in per_style.state_dict().items()})
    x = torch.rand(2, 3, 40, 32) * 255
    with torch.no_grad():
        close(cond.eval()(x, 0), per_style(x))


def test_blend_validation(model):
    x = torch.rand(3, 20, 20) * 255
    expect_error("add up to 1, got 0.9", lambda: sf.stylize(model, x, blend={"mosaic": 0.6, "candy": 0.3}))
    expect_error("add up to 1, got 1.1", lambda: sf.stylize(model, x, blend="mosaic=0.8,candy=0.3"))
    expect_error("'candy' must be >= 0, got -0.5", lambda: sf.stylize(model, x, blend={"mosaic": 1.5, "candy": -0.5}))
    expect_error("must be >= 0, got nan", lambda: sf.stylize(model, x, blend={"mosaic": float("nan")}))
    msg = expect_error("unknown style 'udnie'", lambda: sf.stylize(model, x, blend={"udnie": 1.0}))
    assert "available: mosaic, candy, la muse" in msg, msg
    msg = expect_error("unknown style 'Mosaic'", lambda: sf.stylize(model, x, style="Mosaic"))
    assert "available: mosaic, candy, la muse" in msg, msg
    expect_error("either a style or a blend, not both", lambda: sf.stylize(model, x, style="mosaic", blend={"mosaic": 1.0}))
    msg = expect_error("needs a style or a blend", lambda: sf.stylize(model, x))
    assert "mosaic, candy, la muse" in msg, msg
    expect_error("at least one style", lambda: sf.stylize(model, x, blend={}))
    expect_error("appears twice", lambda: sf.parse_blend("mosaic=0.5,mosaic=0.5"))
    expect_error("expected NAME=WEIGHT", lambda: sf.parse_blend("mosaic"))
    expect_error("is not a number", lambda: sf.parse_blend("mosaic=half"))
    expect_error("add up to 1, got 1.000003", lambda: sf.stylize(model, x, blend={"mosaic": 0.5, "candy": 0.500003}))
    # Within 1e-6 of 1 is accepted (decimal text rarely adds up exactly).
    assert sf.stylize(model, x, blend={"mosaic": 0.1, "candy": 0.2, "la muse": 0.7 + 5e-7}).shape == x.shape


def test_stylize_padding(model):
    torch.manual_seed(4)
    for h, w in [(30, 21), (32, 32), (5, 3), (1, 1), (9, 40)]:
        x = torch.rand(3, h, w) * 255
        out = sf.stylize(model, x, style="candy")
        assert out.shape == x.shape, (out.shape, x.shape)
        assert out.min() >= 0 and out.max() <= 255
        # As stylefleet's PadForNetwork: bottom/right, multiple of 4 and >= 8 per side.
        ph, pw = max(8, (h + 3) // 4 * 4) - h, max(8, (w + 3) // 4 * 4) - w
        mode = "reflect" if h > ph and w > pw else "replicate"
        padded = torch.nn.functional.pad(x[None], [0, pw, 0, ph], mode=mode) if ph or pw else x[None]
        with torch.no_grad():
            raw = model.net(padded, 1)[0, :, :h, :w]
        assert torch.equal(out, raw.clamp(0, 255)), (h, w)
    assert sf.pad_for_network(torch.zeros(1, 3, 5, 3)).shape == (1, 3, 8, 8)
    assert sf.pad_for_network(torch.zeros(1, 3, 30, 21)).shape == (1, 3, 32, 24)
    # A batch keeps its batch dimension.
    assert sf.stylize(model, torch.rand(2, 3, 12, 12) * 255, style="mosaic").shape == (2, 3, 12, 12)


def test_preserve_colour(model):
    """The photo's YCbCr chroma is kept (to rounding) wherever no channel was clamped, the
    luma is the stylized image's, and the plain stylization's chroma differs (so the check
    means something); a hand example pins the rule, clamping included."""
    def cb(x):
        x = x.double()
        return -0.168736 * x[0] - 0.331264 * x[1] + 0.5 * x[2]

    def cr(x):
        x = x.double()
        return 0.5 * x[0] - 0.418688 * x[1] - 0.081312 * x[2]

    torch.manual_seed(6)
    photo = (torch.rand(3, 20, 16) * 255).round()
    plain = sf.to_levels(sf.stylize(model, photo, style="mosaic")).float()
    kept = sf.preserve_colour(plain, photo)
    unclamped = (kept.amin(0) > 0) & (kept.amax(0) < 255)
    assert unclamped.sum() > 20 * 16 // 2, unclamped.sum()
    assert (cb(kept) - cb(photo))[unclamped].abs().max() <= 1e-9
    assert (cr(kept) - cr(photo))[unclamped].abs().max() <= 1e-9
    assert (sf.luma(kept) - sf.luma(plain))[unclamped].abs().max() <= 0.5 + 1e-9
    assert ((cb(plain) - cb(photo)).abs() + (cr(plain) - cr(photo)).abs()).mean() > 10
    # stylefleet's WithChromaOf test: luma 124.2 -> 0 and 18.15 -> 250.
    photo2 = torch.tensor([[200.0, 10.0], [100.0, 20.0], [50.0, 30.0]]).view(3, 1, 2)
    styled2 = torch.tensor([[0.0, 250.0], [0.0, 250.0], [0.0, 250.0]]).view(3, 1, 2)
    assert sf.preserve_colour(styled2, photo2).view(3, 2).t().tolist() == [[76, 0, 0], [242, 252, 255]]
    expect_error("shape", lambda: sf.preserve_colour(styled2, torch.zeros(3, 2, 2)))
    # Changes of exactly -22.5 and +41.5 levels: -23 and +42 in every channel, as stylefleet.
    photo3 = torch.tensor([[215.0, 122.0], [111.0, 123.0], [159.0, 144.0]]).view(3, 1, 2)
    styled3 = torch.tensor([[140.0, 174.0], [120.0, 181.0], [112.0, 73.0]]).view(3, 1, 2)
    assert sf.preserve_colour(styled3, photo3).view(3, 2).t().tolist() == [[192, 88, 136], [164, 165, 186]]


def test_levels_and_reading(tmp):
    """Images are written and read as stylefleet does: halves round up (C++ lround; torch's
    round took 2.5 to 2), and only a JPEG's EXIF orientation turns it (a PNG carrying an EXIF
    block was turned by Pillow where stylefleet keeps it as stored)."""
    from PIL import Image
    values = torch.tensor([0.5, 1.5, 2.5, 254.5, -3.0, 300.0, 0.49999997, 127.5])
    assert sf.to_levels(values).tolist() == [1, 2, 3, 255, 0, 255, 0, 128], sf.to_levels(values)
    stored = Image.frombytes("RGB", (4, 2), bytes(range(24)))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: turned 90 degrees clockwise to be upright
    for extension, shape in (("jpg", [3, 4, 2]), ("png", [3, 2, 4])):
        path = os.path.join(tmp, "turned." + extension)
        stored.save(path, exif=exif)
        assert list(sf._read_image(path).shape) == shape, (extension, sf._read_image(path).shape)
        os.remove(path)


def test_per_style_files(tmp):
    torch.manual_seed(5)
    ref = reference.TransformerNet()
    with torch.no_grad():
        for key, p in ref.named_parameters():
            if is_norm(key):
                p.add_(torch.randn_like(p) * 0.5)
    ref.eval()
    x = torch.rand(1, 3, 32, 32) * 255
    # The PyTorch example's own file: an OrderedDict, no metadata.
    plain = os.path.join(tmp, "example.pth")
    torch.save(ref.state_dict(), plain)
    model = sf.load_model(plain)
    assert model.styles == [] and not model.net.conditional
    with torch.no_grad():
        assert torch.equal(model.net(x), ref(x))
    # As stylefleet writes it, with metadata and a style name; old running stats ignored.
    state = dict(ref.state_dict())
    state["stylefleet.style"] = text_tensor("mosaic")
    state["stylefleet.head"] = text_tensor("linear")
    state["stylefleet.checksum"] = torch.tensor(12345)
    state["stylefleet.rng"] = torch.tensor([200, 1, 255], dtype=torch.uint8)
    state["in1.running_mean"] = torch.zeros(32)
    named = os.path.join(tmp, "named.pt")
    torch.save(state, named)
    model = sf.load_model(named)
    assert model.styles == ["mosaic"] and model.metadata["checksum"] == 12345
    with torch.no_grad():
        assert torch.equal(model.net(x), ref(x))
        assert torch.equal(sf.stylize(model, x, style="mosaic"), sf.stylize(model, x))
    expect_error("unknown style 'candy'; available: mosaic", lambda: sf.stylize(model, x, style="candy"))
    expect_error("needs a conditional model", lambda: sf.stylize(model, x, blend={"mosaic": 1.0}))
    expect_error("takes no style argument", lambda: model.net(x, 0))

    def refused(fragment, change):
        bad = dict(state)
        change(bad)
        path = os.path.join(tmp, "bad.pt")
        torch.save(bad, path)
        msg = expect_error(fragment, lambda: sf.load_model(path))
        assert path in msg, msg

    refused("lacks parameter(s) res3.in2.bias", lambda d: d.pop("res3.in2.bias"))
    refused("unexpected key(s) res6.conv1.conv2d.weight", lambda d: d.update({"res6.conv1.conv2d.weight": torch.zeros(1)}))
    refused("'conv2.conv2d.weight' has shape [64, 32, 3, 5], expected [64, 32, 3, 3]",
            lambda d: d.update({"conv2.conv2d.weight": torch.zeros(64, 32, 3, 5)}))
    refused("needs stylefleet.network = 'conditional'", lambda d: d.update({"in1.weight": torch.ones(2, 32)}))
    refused("'in4.bias' holds NaN", lambda d: d["in4.bias"].__setitem__(0, float("nan")))
    refused("head 'tanh'", lambda d: d.update({"stylefleet.head": text_tensor("tanh")}))
    refused("unknown network kind 'hyper'", lambda d: d.update({"stylefleet.network": text_tensor("hyper")}))
    refused("a conditional network file must name its styles", lambda d: d.update({"stylefleet.network": text_tensor("conditional")}))

    net = random_conditional(3, seed=6)
    path = os.path.join(tmp, "rows.pt")
    save_conditional(net, ["a", "b"], path)
    expect_error("'in1.weight' has 3 rows, but 'stylefleet.styles' names 2 styles (a, b)",
                 lambda: sf.load_model(path))
    save_conditional(net, ["a", "b", "a"], path)
    expect_error("names a style twice: ['a']", lambda: sf.load_model(path))
    save_conditional(net, ["a", "", "c"], path)
    expect_error("empty style name", lambda: sf.load_model(path))
    torch.save(torch.zeros(3), path)
    expect_error("not a model file", lambda: sf.load_model(path))
    # A FIFO without a writer blocked the open for ever; a device never ends.
    fifo = os.path.join(tmp, "model.fifo")
    os.mkfifo(fifo)
    expect_error(f"{fifo}: not a regular file", lambda: sf.load_model(fifo))
    expect_error("/dev/zero: not a regular file", lambda: sf.load_model("/dev/zero"))


def run(*args):
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=120)


def test_cli(model_path, tmp):
    from PIL import Image
    torch.manual_seed(7)
    pixels = (torch.rand(22, 30, 3) * 255).to(torch.uint8)
    src = os.path.join(tmp, "in.png")
    Image.frombytes("RGB", (30, 22), bytes(pixels.view(-1).tolist())).save(src)

    r = run(CLI, model_path, "--list")
    assert r.returncode == 0 and r.stdout.splitlines() == STYLES, (r.returncode, r.stdout, r.stderr)
    r = run(CLI, "--help")
    assert r.returncode == 0 and "--blend NAME=W,NAME=W" in r.stdout and "--list" in r.stdout, r.stdout

    model = sf.load_model(model_path)
    image = pixels.permute(2, 0, 1).float()
    for option, kwargs in [(["--style", "la muse"], {"style": "la muse"}),
                           (["--blend", "mosaic=0.25,candy=0.75"], {"blend": {"mosaic": 0.25, "candy": 0.75}})]:
        out = os.path.join(tmp, "out.png")
        r = run(CLI, model_path, src, out, *option)
        assert r.returncode == 0, r.stderr
        with Image.open(out) as img:
            assert img.size == (30, 22) and img.mode == "RGB", (img.size, img.mode)
            written = torch.tensor(list(img.tobytes()), dtype=torch.uint8).view(22, 30, 3)
        expected = sf.to_levels(sf.stylize(model, image, **kwargs)).to(torch.uint8).permute(1, 2, 0)
        assert torch.equal(written, expected), f"{option}: written pixels differ"
        assert written.float().std() > 1.0, "a flat image would hide a wrong network"
        os.remove(out)
    out = os.path.join(tmp, "kept.png")
    r = run(CLI, model_path, src, out, "--style", "candy", "--preserve-colour")
    assert r.returncode == 0, r.stderr
    with Image.open(out) as img:
        written = torch.tensor(list(img.tobytes()), dtype=torch.uint8).view(22, 30, 3)
    expected = sf.preserve_colour(sf.stylize(model, image, style="candy"), image)
    assert torch.equal(written, expected.to(torch.uint8).permute(1, 2, 0)), "--preserve-colour differs"
    os.remove(out)

    for option, message in [(["--style", "udnie"], "unknown style 'udnie'; available: mosaic, candy, la muse"),
                            (["--blend", "mosaic=0.5"], "add up to 1"),
                            ([], "needs a style or a blend")]:
        r = run(CLI, model_path, src, os.path.join(tmp, "never.png"), *option)
        assert r.returncode == 1 and message in r.stderr, (option, r.returncode, r.stderr)
        assert not os.path.exists(os.path.join(tmp, "never.png"))
    r = run(CLI, model_path, src)
    assert r.returncode == 2 and "required unless --list" in r.stderr, r.stderr


def test_checker(model_path, tmp):
    """export_check.py passes on outputs of an independent implementation
    and names the case whose output is off."""
    model = sf.load_model(model_path)
    torch.manual_seed(8)
    x = torch.rand(2, 3, 16, 20) * 255
    data = {"input": x}
    with torch.no_grad():
        data["case.0.style"] = text_tensor("candy")
        data["case.0.output"] = per_style_with_rows(model.net, lambda p: p[1])(x)
        w = torch.tensor([0.7, 0.0, 0.3])
        data["case.1.blend"] = text_tensor("mosaic=0.7,la muse=0.3")
        data["case.1.output"] = per_style_with_rows(model.net, lambda p: w @ p)(x)
    path = os.path.join(tmp, "data.pt")
    torch.save(data, path)
    r = run(CHECKER, model_path, path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "case 0 (style candy): max abs diff" in r.stdout and "case 1 (blend mosaic=0.7,la muse=0.3)" in r.stdout, r.stdout
    assert "one-hot blend of la muse equals style la muse exactly: True" in r.stdout, r.stdout

    for change, message in [(lambda d: d["case.1.output"].__setitem__((0, 0, 0, 0), d["case.1.output"][0, 0, 0, 0] + 0.01), "case 1 (blend"),
                            (lambda d: d.update({"case.0.style": text_tensor("mosaic")}), "case 0 (style mosaic): C++ and PyTorch differ"),
                            (lambda d: d.update({"case.2.style": text_tensor("udnie")}), "case 2: no case.2.output"),
                            (lambda d: d.update({"case.0.blend": text_tensor("candy=1")}), "exactly one of"),
                            (lambda d: d.update({"cases.3.output": x}), "unexpected key 'cases.3.output'")]:
        bad = {k: v.clone() for k, v in data.items()}
        change(bad)
        torch.save(bad, path)
        r = run(CHECKER, model_path, path)
        assert r.returncode != 0 and message in r.stderr, (message, r.stdout, r.stderr)
    torch.save({"input": x}, path)
    r = run(CHECKER, model_path, path)
    assert r.returncode != 0 and "nothing to check" in r.stderr, r.stderr

    # A per-style model (from test_per_style_files): empty style or its own name.
    named = os.path.join(tmp, "named.pt")
    with torch.no_grad():
        expected = sf.load_model(named).net(x)
    torch.save({"input": x, "case.0.style": text_tensor(""), "case.0.output": expected,
                "case.1.style": text_tensor("mosaic"), "case.1.output": expected}, path)
    r = run(CHECKER, named, path)
    assert r.returncode == 0 and "case 0 (style (per-style)): max abs diff 0" in r.stdout, r.stdout + r.stderr

    # The one-hot check itself: a network whose blends are off by a rounding error.
    import export_check as checker

    class Inexact(sf.TransformerNet):
        def forward(self, x, style=None):
            out = super().forward(x, style)
            return out + 1e-4 if torch.is_tensor(style) and style.is_floating_point() else out

    inexact = Inexact(3)
    inexact.load_state_dict(model.net.state_dict())
    with contextlib.redirect_stdout(io.StringIO()):
        assert checker.one_hot_blend_failures(model, x) == []
        failures = checker.one_hot_blend_failures(sf.Model(inexact.eval(), model.styles, {}), x)
    assert len(failures) == 3 and "blend candy=1 differs from style candy by" in failures[1], failures


def test_style_folder_without_model(model_path, tmp):
    # A conditional job's style folder: no model, the network is its sibling.
    job = os.path.join(tmp, "job")
    os.makedirs(os.path.join(job, "mosaic", "previews"))
    expect_error(f"{job}/mosaic: folder holds no model.pt",
                 lambda: sf.load_model(os.path.join(job, "mosaic")))
    os.makedirs(os.path.join(job, "conditional"))
    torch.save(torch.load(model_path), os.path.join(job, "conditional", "model.pt"))
    network = os.path.join(job, "conditional")
    expect_error(f"folder holds no model.pt; if it is a style of the conditional "
                 f"network in {network}, give that folder and the style: {network} --style mosaic",
                 lambda: sf.load_model(os.path.join(job, "mosaic") + "/"))
    assert sf.load_model(network).styles == STYLES


def fake_arbitrary_export(path, seed, **changes):
    """A file as `stylefleet export` writes an arbitrary-style network: random
    convolutions, a predictor reading layers 3 and 1 (in that order) with a random map to
    the norms, random loss-network layers 0..3 and torchvision's input convention."""
    torch.manual_seed(seed)
    vgg = {}
    for layer, cin in enumerate((3, 64, 64, 128)):
        cout = sf._VGG_CHANNELS[layer]
        index = sf._VGG_FEATURE_INDEX[layer]
        vgg[f"features.{index}.weight"] = torch.randn(cout, cin, 3, 3) * (2.0 / (9 * cin)) ** 0.5
        vgg[f"features.{index}.bias"] = torch.zeros(cout)
    vgg.update(input_scale=torch.tensor(1.0, dtype=torch.float64),
               mean=torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64),
               std=torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64))
    predictor = sf.StylePredictor([3, 1], 8, 32, vgg)
    net = sf.TransformerNet(predictor=predictor)
    with torch.no_grad():
        net.deconv3.conv2d.weight.mul_(100.0)
        net.deconv3.conv2d.bias.fill_(128.0)
        # As stylefleet starts a predictor (embeddings of variance 1, scales 1 and shifts 0),
        # then a map to the norms as training might leave it.
        predictor.bottleneck.weight.copy_(torch.randn_like(predictor.bottleneck.weight)
                                          * predictor.summary_size ** 0.5)
        predictor.to_norms.weight.copy_(torch.randn_like(predictor.to_norms.weight) * 3)
        predictor.to_norms.bias.zero_()
        for norm in net.modules():
            if isinstance(norm, sf.PredictedInstanceNorm2d):
                predictor.to_norms.bias[norm.offset:norm.offset + norm.channels] = 1.0
    state = {k: v.detach().clone() for k, v in net.state_dict().items()}
    state.update({"stylefleet.vgg." + k: v for k, v in vgg.items()})
    state["stylefleet.network"] = text_tensor("arbitrary")
    state["stylefleet.styles"] = text_tensor("a\nb")
    state["stylefleet.predictor_layers"] = torch.tensor([3, 1])
    state["stylefleet.style_image_size"] = torch.tensor(32)
    state["stylefleet.loss_network"] = text_tensor("random:5")
    for key, value in changes.items():
        key = "stylefleet." + key[len("stylefleet_"):] if key.startswith("stylefleet_") else key
        if value is None:
            state.pop(key.replace("__", "."))
        else:
            state[key.replace("__", ".")] = value
    torch.save(state, path)
    return net


def test_arbitrary_files(tmp):
    """An arbitrary-style export loads (the norms layout, the predictor's order of layers);
    what stylize takes is checked; hostile files are refused naming the key."""
    path = os.path.join(tmp, "arbitrary.pt")
    fake_arbitrary_export(path, seed=3)
    model = sf.load_model(path)
    assert model.net.arbitrary and model.styles == [] and model.metadata["styles"] == "a\nb"
    assert model.metadata["loss_network"] == "random:5"
    torch.manual_seed(4)
    photo = torch.randint(0, 256, (3, 20, 28)).float()
    paintings = [torch.randint(0, 80, (3, 40, 36)).float(),  # dark noise; a smooth ramp
                 torch.linspace(0, 255, 33).view(1, 1, 33).expand(3, 50, 33).clone()]
    first = sf.stylize(model, photo, style_images=paintings[:1])
    second = sf.stylize(model, photo, style_images=paintings[1:])
    assert first.shape == photo.shape and not torch.equal(first, second)
    # All weight on one image: that image (to float rounding: the images are summarized as
    # one batch, whose convolutions may add in another order than one image's).
    close(sf.stylize(model, photo, style_images=paintings, blend=[1.0, 0.0]), first, rel=1e-5)
    close(sf.stylize(model, photo, style_images=paintings, blend="0,1"), second, rel=1e-5)
    assert (first - second).abs().max() > 1.0
    # Strength 0: the photo's own embedding, whatever the style image.
    own = sf.stylize(model, photo, style_images=paintings[:1], strength=0)
    assert torch.equal(sf.stylize(model, photo, style_images=paintings[1:], strength=0), own)
    assert not torch.equal(own, first)
    # The summary follows the file's order of layers (3 then 1).
    summary = model.net.predictor.summary(torch.rand(1, 3, 32, 32) * 255)
    assert summary.shape == (1, 2 * 128 + 2 * 64), summary.shape
    # Norms: in1's 32 scales then 32 shifts; res1.in2 has 128 scales and no shift.
    norms = torch.zeros(sf.NORM_PARAMETER_COUNT)
    norms[:32] = 2.0
    norms[32:64] = 5.0
    y = model.net.in1(torch.randn(1, 32, 4, 4), norms.expand(1, -1))
    close(y.mean((2, 3)), torch.full((1, 32), 5.0))
    assert model.net.res1.in2.offset == 32 * 2 + 64 * 2 + 128 * 2 + 128 * 2 and not model.net.res1.in2.shifted
    expect_error("at least 32 on each side",
                 lambda: sf.stylize(model, photo, style_images=[torch.zeros(3, 31, 64)]))
    expect_error("give 2 blend weight(s)",
                 lambda: sf.stylize(model, photo, style_images=paintings, blend=[0.5, 0.6]))
    expect_error("strength must be a number from 0 to 1",
                 lambda: sf.stylize(model, photo, style_images=paintings, strength=1.5))
    expect_error("needs at least one style image", lambda: sf.stylize(model, photo))
    expect_error("no named styles", lambda: sf.stylize(model, photo, style="a"))
    cond = sf.load_model(os.path.join(tmp, "cond.pt"))
    expect_error("style images need an arbitrary-style model",
                 lambda: sf.stylize(cond, photo, style="mosaic", style_images=paintings))

    def refused(fragment, **changes):
        bad = os.path.join(tmp, "bad_arbitrary.pt")
        fake_arbitrary_export(bad, seed=3, **changes)
        msg = expect_error(fragment, lambda: sf.load_model(bad))
        assert bad in msg, msg

    refused("write the file with `stylefleet export`); it lacks stylefleet.vgg.features.7.bias",
            stylefleet_vgg__features__7__bias=None)
    refused("'stylefleet.vgg.features.5.weight' is torch.float32 of shape [128, 64, 3, 1]",
            stylefleet_vgg__features__5__weight=torch.zeros(128, 64, 3, 1))
    refused("'stylefleet.vgg.std' must hold 3 finite number(s)",
            stylefleet_vgg__std=torch.tensor([1.0, float("nan"), 1.0]))
    refused("claims 4194304 embedding numbers",
            predictor__bottleneck__weight=torch.zeros(1 << 22, 0))
    refused("'stylefleet.predictor_layers' [1, 1] must hold",
            stylefleet_predictor_layers=torch.tensor([1, 1]))
    refused("'stylefleet.style_image_size' is missing or not from 16 to 4096",
            stylefleet_style_image_size=torch.tensor(8))
    refused("'stylefleet.style_image_size' is missing or not from 16 to 4096",
            stylefleet_style_image_size=torch.tensor(10 ** 6))
    # Finite in float64 is not enough: they run in float32 (a reviewer's NaN images).
    refused("'stylefleet.vgg.features.2.bias' holds NaN or infinite values",
            stylefleet_vgg__features__2__bias=torch.full([64], 1e300, dtype=torch.float64))
    refused("parameter 'predictor.to_norms.bias' holds NaN or infinite values (as float32)",
            predictor__to_norms__bias=torch.full([2560], 1e300, dtype=torch.float64))
    refused("whose inverses are finite in float32",
            stylefleet_vgg__std=torch.tensor([1e-300, 1.0, 1.0], dtype=torch.float64))
    small = os.path.join(tmp, "small_size.pt")
    fake_arbitrary_export(small, seed=3, stylefleet_style_image_size=torch.tensor(16))
    assert sf.load_model(small).net.predictor.style_image_size == 16  # stylefleet trains at 16
    refused("'predictor.to_norms.weight' has shape [2560, 7], expected [2560, 8]",
            predictor__to_norms__weight=torch.zeros(2560, 7))


def main():
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        model = test_conditional_semantics(tmp)
        test_one_style_equals_per_style()
        test_blend_validation(model)
        test_stylize_padding(model)
        test_preserve_colour(model)
        test_levels_and_reading(tmp)
        test_per_style_files(tmp)
        test_cli(os.path.join(tmp, "cond.pt"), tmp)
        test_checker(os.path.join(tmp, "cond.pt"), tmp)
        test_style_folder_without_model(os.path.join(tmp, "cond.pt"), tmp)
        test_arbitrary_files(tmp)
    print("stylefleet_torch_test: all checks passed")


if __name__ == "__main__":
    main()
