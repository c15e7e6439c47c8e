"""StyleNet: AdaIN statistics, ALADIN's all-level conditioning, training, resume, the
local VGG path and the per-batch augmenter."""

import pytest
import torch

from srpose_lib.data.benchmark import BenchmarkData
from srpose_lib.errors import ConfigError
from srpose_lib.models.style_net import StyleNet, StyleNetConfig, adain
from srpose_lib.synth.benchmark import benchmark_config
from srpose_lib.train.style import StyleTrainConfig, load_style_net, stylize, train_style_net


def test_adain_matches_style_statistics_and_keeps_the_content_pattern():
    gen = torch.Generator().manual_seed(0)
    c = torch.randn(2, 4, 8, 8, generator=gen)
    s = 3 * torch.randn(2, 4, 8, 8, generator=gen) + 1.5
    out = adain(c, s)
    torch.testing.assert_close(out.mean((2, 3)), s.mean((2, 3)), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std((2, 3)), s.std((2, 3)), atol=1e-3, rtol=1e-3)
    norm = lambda x: (x - x.mean((2, 3), keepdim=True)) / x.std((2, 3), keepdim=True)  # noqa: E731
    torch.testing.assert_close(norm(out), norm(c), atol=1e-3, rtol=1e-3)


def test_alpha_zero_is_the_autoencoder_and_aladin_conditions_every_level():
    torch.manual_seed(0)
    x, y = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    for aladin in (True, False):
        net = StyleNet(StyleNetConfig(widths=(4, 8, 16), aladin=aladin)).eval()
        torch.testing.assert_close(net(x, y, 0.0), net.decode(net.encode(x)))
        assert (net(x, y, 1.0) - net(x, y, 0.0)).abs().max() > 0  # alpha changes the output
    # change only the style's shallow statistics: the ALADIN output moves, single-level AdaIN does not
    feats = StyleNet(StyleNetConfig(widths=(4, 8, 16)))
    fx, fy = feats.encode(x), feats.encode(y)
    shifted = [fy[0] * 2 + 1] + fy[1:]
    for aladin, moves in ((True, True), (False, False)):
        net = StyleNet(StyleNetConfig(widths=(4, 8, 16), aladin=aladin))
        a = net.transfer_features(fx, fy, 1.0)
        b = net.transfer_features(fx, shifted, 1.0)
        assert (not torch.allclose(a[0], b[0])) == moves
        torch.testing.assert_close(a[-1], b[-1])


@pytest.mark.parametrize("size", [64, 256])
def test_shapes(size):
    net = StyleNet(StyleNetConfig(widths=(4, 8, 16)))
    out = net(torch.rand(1, 3, size, size), torch.rand(1, 3, size, size), torch.tensor([0.3]))
    assert out.shape == (1, 3, size, size) and 0 <= out.min() and out.max() <= 1


def tiny(**kw):
    bench = benchmark_config("hand", num_train=32, num_val=8, num_test=8)
    base = dict(ae_iterations=6, style_iterations=6, batch_size=4, checkpoint_every=3)
    base.update(kw)
    return StyleTrainConfig(bench, StyleNetConfig(widths=(4, 8, 16)), **base)


def test_training_lowers_its_losses_and_resumes_exactly(tmp_path):
    data = BenchmarkData(tmp_path / "cache", show_progress=False)
    cfg = tiny(ae_iterations=30, style_iterations=0, checkpoint_every=10, lr=3e-3)
    res = train_style_net(cfg, tmp_path / "a", data, log=lambda *_: None, show_progress=False)
    rec = [h["reconstruction"] for h in res.history]
    assert rec[-1] < rec[0]
    cfg = tiny()
    ref = train_style_net(cfg, tmp_path / "ref", data, log=lambda *_: None, show_progress=False)

    def stop(it):
        if it == 7:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_style_net(cfg, tmp_path / "run", data, log=lambda *_: None, show_progress=False, on_iteration=stop)
    again = train_style_net(cfg, tmp_path / "run", data, log=lambda *_: None, show_progress=False)
    for k, v in ref.state_dict.items():
        assert torch.equal(v, again.state_dict[k]), k
    net = load_style_net(again)
    assert not net.training and not any(p.requires_grad for p in net.parameters())


def test_local_vgg_weights(tmp_path):
    import torchvision

    features = torchvision.models.vgg19(weights=None).features
    path = tmp_path / "vgg.pth"
    torch.save(features.state_dict(), path)
    net = StyleNet(StyleNetConfig(widths=(1, 1, 1), vgg_weights=str(path)))
    assert torch.equal(net.encoder_levels[0][0].weight, features[0].weight)
    assert not net.encoder_levels[0][0].weight.requires_grad
    assert [f.shape[1] for f in net.encode(torch.rand(1, 3, 32, 32))] == [64, 128, 256]
    with pytest.raises(ConfigError, match="missing.pth"):
        StyleNet(StyleNetConfig(vgg_weights=str(tmp_path / "missing.pth")))


def test_stylize_applies_per_batch_with_its_probability():
    net = StyleNet(StyleNetConfig(widths=(4, 8, 16))).eval()
    x, y = torch.rand(3, 3, 32, 32), torch.rand(1, 3, 32, 32)
    same, applied = stylize(net, x, y, (0.0, 1.0), 0.0, torch.Generator().manual_seed(0))
    assert same is x and not applied
    a, applied = stylize(net, x, y, (1.0, 1.0), 1.0, torch.Generator().manual_seed(0))
    b, _ = stylize(net, x, y, (1.0, 1.0), 1.0, torch.Generator().manual_seed(0))
    assert applied and torch.equal(a, b) and not torch.allclose(a, x)


def test_s2t_and_t2s_share_encodings_without_changing_the_images():
    net = StyleNet(StyleNetConfig(widths=(4, 8, 16))).eval()
    src, tgt = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    calls = []
    encode = net.encode
    net.encode = lambda x: calls.append(x) or encode(x)
    g = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    with torch.no_grad():
        s2t = net(src, tgt, 0.7).clamp(0, 1)
        t2s = net(tgt, src, 0.4).clamp(0, 1)
    calls.clear()
    features = {}
    a, _ = stylize(net, src, tgt, (0.7, 0.7), 1.0, g(), features=features)
    b, _ = stylize(net, tgt, src, (0.4, 0.4), 1.0, g(), features=features)
    assert torch.equal(a, s2t) and torch.equal(b, t2s)  # the same images as the plain forward passes
    assert len(calls) == 2  # two batches, each encoded once
    c, _ = stylize(net, src, tgt, (0.7, 0.7), 1.0, g(), dtype=torch.bfloat16)
    assert c.dtype == torch.float32 and (c - s2t).abs().max() < 0.1  # autocast: close, in fp32
