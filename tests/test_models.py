"""The pose predictor f_kp (SimpleBaseline) and its backbones: shapes, init, weights loading."""

import dataclasses
import os

import pytest
import torch
import torchvision
from torch import nn

from srpose_lib.config import stable_hash, to_dict
from srpose_lib.errors import ConfigError
from srpose_lib.models import (
    ARCHS,
    ModelConfig,
    PoseNet,
    build_backbone,
    build_pose_net,
    get_parameter_groups,
    model_summary,
)
from srpose_lib.models.backbones import imagenet_weights
from srpose_lib.models.pose_net import IMAGENET_MEAN

TINY = ModelConfig(arch="resnet_tiny")


def _resnet18_state(seed: int = 123) -> dict:
    torch.manual_seed(seed)
    return torchvision.models.resnet18(weights=None).state_dict()  # includes fc.* keys


# ---- shapes ---------------------------------------------------------------------------------


def test_resnet18_256px_gives_64px_heatmaps():
    net = build_pose_net(ModelConfig(arch="resnet18"), 21).eval()
    with torch.no_grad():
        out = net(torch.rand(1, 3, 256, 256))
    assert out.shape == (1, 21, 64, 64)
    assert net.stride == 4 and net.num_keypoints == 21


@pytest.mark.parametrize("k", [21, 16])
def test_tiny_64px_gives_32px_heatmaps(k):
    net = build_pose_net(TINY, k)
    out = net(torch.rand(2, 3, 64, 64))
    assert out.shape == (2, k, 32, 32)
    assert net.stride == 2 and net.config is TINY


@pytest.mark.parametrize("arch", ["resnet50", "resnet101"])
def test_bottleneck_resnets_channels_and_stride(arch):
    backbone, channels, stride = build_backbone(ModelConfig(arch=arch))
    assert (channels, stride) == (2048, 32)
    net = PoseNet(ModelConfig(arch=arch), 16).eval()
    assert net.stride == 4
    with torch.no_grad():
        assert net.backbone(torch.rand(1, 3, 64, 64)).shape == (1, 2048, 2, 2)
        assert net(torch.rand(1, 3, 64, 64)).shape == (1, 16, 16, 16)


def test_tiny_stride_follows_config():
    cfg = dataclasses.replace(TINY, tiny_widths=(8, 16), tiny_blocks=(2, 1), tiny_stem_stride=4,
                              deconv_channels=(32, 16))
    net = build_pose_net(cfg, 5)
    assert net.stride == 2  # 4 * 2 / 2**2
    assert len(net.backbone.layer1) == 2
    assert net(torch.rand(1, 3, 32, 48)).shape == (1, 5, 16, 24)


def test_channels_last_same_output():
    torch.manual_seed(0)
    plain = build_pose_net(TINY, 4).eval()
    fast = build_pose_net(dataclasses.replace(TINY, channels_last=True), 4).eval()
    fast.load_state_dict(plain.state_dict())
    assert fast.backbone.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(x), fast(x)
    assert b.is_contiguous()
    assert torch.allclose(a, b, atol=1e-5)


# ---- init and normalisation -------------------------------------------------------------------


def test_decoder_init_as_simplebaseline():
    torch.manual_seed(0)
    net = build_pose_net(ModelConfig(arch="resnet_tiny"), 21)
    deconvs = [m for m in net.upsampling if isinstance(m, nn.ConvTranspose2d)]
    bns = [m for m in net.upsampling if isinstance(m, nn.BatchNorm2d)]
    assert len(deconvs) == len(bns) == 3
    for m in deconvs:
        assert m.bias is None and m.kernel_size == (4, 4) and m.stride == (2, 2)
        assert abs(m.weight.std().item() - 0.001) < 1e-4
        assert abs(m.weight.mean().item()) < 1e-4
    for m in bns:
        assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
    assert net.head.kernel_size == (1, 1)
    assert abs(net.head.weight.std().item() - 0.001) < 2e-4
    assert torch.all(net.head.bias == 0)
    # the backbone keeps torchvision's (much larger) init
    assert net.backbone.conv1.weight.std().item() > 0.01


def test_normalisation_applied_before_backbone():
    net = build_pose_net(TINY, 3).eval()
    seen = {}
    net.backbone.register_forward_pre_hook(lambda m, args: seen.update(x=args[0]))
    image = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1).expand(2, 3, 64, 64)
    with torch.no_grad():
        net(image)
    assert seen["x"].abs().max().item() < 1e-6
    with torch.no_grad():
        net(torch.ones(1, 3, 64, 64))  # white -> (1 - mean) / std, about 2.2 to 2.6
    assert seen["x"].min().item() > 2.0
    assert "mean" not in net.state_dict()  # a constant, not a checkpoint entry


# ---- weights loading ----------------------------------------------------------------------------


def test_local_state_dict_loads_exactly(tmp_path):
    state = _resnet18_state()
    path = tmp_path / "r18.pth"
    torch.save(state, path)
    net = build_pose_net(ModelConfig(arch="resnet18", pretrained=str(path)), 21)
    assert torch.equal(net.backbone.conv1.weight, state["conv1.weight"])
    assert torch.equal(net.backbone.layer4[1].bn2.running_var, state["layer4.1.bn2.running_var"])
    default = build_pose_net(ModelConfig(arch="resnet18"), 21)
    assert not torch.equal(default.backbone.conv1.weight, state["conv1.weight"])


@pytest.mark.parametrize("wrap", ["module", "state_dict"])
def test_local_state_dict_wrapped_forms(tmp_path, wrap):
    state = _resnet18_state(7)
    if wrap == "module":
        obj = {f"module.{k}": v for k, v in state.items()}
    else:
        obj = {"state_dict": state, "epoch": 3}
    path = tmp_path / f"{wrap}.pth"
    torch.save(obj, path)
    backbone, _, _ = build_backbone(ModelConfig(arch="resnet18", pretrained=str(path)))
    assert torch.equal(backbone.conv1.weight, state["conv1.weight"])


def test_tiny_loads_backbone_of_saved_pose_net(tmp_path):
    torch.manual_seed(3)
    trained = build_pose_net(TINY, 21)
    path = tmp_path / "posenet.pth"
    torch.save(trained.state_dict(), path)
    net = build_pose_net(dataclasses.replace(TINY, pretrained=str(path)), 16)
    assert torch.equal(net.backbone.layer4[0].conv2.weight, trained.backbone.layer4[0].conv2.weight)


def test_missing_weights_file(tmp_path):
    path = tmp_path / "nope.pth"
    with pytest.raises(ConfigError, match="not found") as err:
        build_backbone(ModelConfig(arch="resnet18", pretrained=str(path)))
    assert str(path) in str(err.value)


def test_mismatched_weights_file(tmp_path):
    path = tmp_path / "r18.pth"
    torch.save(_resnet18_state(), path)
    with pytest.raises(ConfigError, match="do not match") as err:
        build_backbone(ModelConfig(arch="resnet50", pretrained=str(path)))
    msg = str(err.value)
    assert str(path) in msg and "layer1.0.conv3.weight" in msg and "shape" in msg
    with pytest.raises(ConfigError, match="unexpected .*shape"):
        build_backbone(dataclasses.replace(TINY, pretrained=str(path)))
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ConfigError, match=r"missing \(\d+\): bn1.weight"):
        build_backbone(ModelConfig(arch="resnet18", pretrained=str(path)))


def test_imagenet_via_torchvision_weights_api_offline(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    weights = torchvision.models.ResNet18_Weights.IMAGENET1K_V1
    assert imagenet_weights("resnet18") == weights
    state = _resnet18_state(11)
    target = tmp_path / "hub" / "checkpoints" / os.path.basename(weights.url)
    target.parent.mkdir(parents=True)
    torch.save(state, target)
    net = build_pose_net(ModelConfig(arch="resnet18", pretrained="imagenet"), 21)
    assert torch.equal(net.backbone.conv1.weight, state["conv1.weight"])
    assert torch.equal(net.backbone.layer3[0].downsample[0].weight, state["layer3.0.downsample.0.weight"])


# ---- config errors -------------------------------------------------------------------------------


def test_unknown_arch_lists_valid_names():
    with pytest.raises(ConfigError) as err:
        ModelConfig(arch="resnet152")
    for name in ARCHS:
        assert name in str(err.value)
    assert err.value.fix


def test_bad_configs():
    with pytest.raises(ConfigError, match="no ImageNet weights"):
        ModelConfig(arch="resnet_tiny", pretrained="imagenet")
    with pytest.raises(ConfigError, match="imagenet"):
        ModelConfig(pretrained="imagnet")
    with pytest.raises(ConfigError, match="same length"):
        ModelConfig(arch="resnet_tiny", tiny_widths=(8, 16), tiny_blocks=(1,))
    with pytest.raises(ConfigError, match="positive ints"):
        ModelConfig(deconv_channels=(256, 0))
    with pytest.raises(ConfigError, match="larger than the image"):
        build_pose_net(dataclasses.replace(TINY, tiny_widths=(8,), tiny_blocks=(1,)), 3)
    with pytest.raises(ConfigError, match="num_keypoints"):
        build_pose_net(TINY, 0)


def test_config_is_json_friendly():
    cfg = ModelConfig(arch="resnet_tiny", deconv_channels=[64, 64, 64])  # lists become tuples
    assert cfg.deconv_channels == (64, 64, 64)
    d = to_dict(cfg)
    assert d["deconv_channels"] == [64, 64, 64]
    assert ModelConfig(**d) == cfg
    assert stable_hash(to_dict(cfg)) != stable_hash(to_dict(TINY))


# ---- optimiser groups and summary --------------------------------------------------------------


def test_parameter_groups():
    net = build_pose_net(TINY, 21)
    groups = get_parameter_groups(net, 1e-3, backbone_lr_mult=0.1)
    assert [g["lr"] for g in groups] == pytest.approx([1e-4, 1e-3])
    grouped = [p for g in groups for p in g["params"]]
    assert len(grouped) == len(list(net.parameters()))
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in net.backbone.parameters()}
    assert any(p is net.head.weight for p in groups[1]["params"])
    opt = torch.optim.Adam(groups)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    assert [g["lr"] for g in get_parameter_groups(net, 0.01)] == [0.01, 0.01]


def test_model_summary():
    net = build_pose_net(TINY, 21)
    net.train()
    small = model_summary(net, 64)
    assert small["params"] == sum(p.numel() for p in net.parameters())
    assert small["output_shape"] == (21, 32, 32)
    assert small["mflops"] > 0
    assert net.training  # mode restored
    wide = build_pose_net(dataclasses.replace(TINY, tiny_widths=(32, 64, 128, 256)), 21)
    assert model_summary(wide, 64)["mflops"] > small["mflops"]
    assert model_summary(net, (64, 128))["mflops"] == pytest.approx(2 * small["mflops"])


def test_model_summary_flops_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ConvTranspose2d(4, 2, 4, 2, 1),
                        nn.Flatten(), nn.Linear(2 * 16 * 16, 10))
    # conv: 8*8 px * 4 out * 3*3*3; deconv: 8*8 px * 4 in * 2 out * 16; linear: 512 * 10
    macs = 64 * 4 * 27 + 64 * 4 * 2 * 16 + 512 * 10
    assert model_summary(net, 8)["mflops"] == pytest.approx(2 * macs / 1e6)


def test_imagenet_missing_file_names_the_fix(tmp_path, monkeypatch):
    """No network: the download torchvision would start is replaced by a failure."""
    import urllib.error

    def offline(url, dst, *args, **kwargs):
        raise urllib.error.URLError("offline")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    with pytest.raises(ConfigError, match="could not load ImageNet weights") as err:
        build_backbone(ModelConfig(arch="resnet34", pretrained="imagenet"))
    url = torchvision.models.ResNet34_Weights.IMAGENET1K_V1.url
    assert url in str(err.value) and str(tmp_path / "hub" / "checkpoints") in str(err.value)
