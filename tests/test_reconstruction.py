"""Geometric reconstruction: coordinates, region transforms, masks, W and G, losses, the
keypoint mechanism, gradient routing, pairs and the generator pre-training stage."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from srpose_lib.adapt import geometric as G
from srpose_lib.errors import ConfigError
from srpose_lib.keypoints import normalized_to_pixel, pixel_to_normalized
from srpose_lib.models.reconstruction import ReconConfig, Reconstructor
from srpose_lib.presets import recon_config
from srpose_lib.recon import geometry as geo
from srpose_lib.recon.losses import (RecLossConfig, build_perceptual, equivariance_loss, pyramid,
                                     reconstruction_loss)
from srpose_lib.recon.refine import oracle_inpainting, refine_driving_keypoints
from srpose_lib.skeletons import BODY16, HAND21
from srpose_lib.synth.benchmark import benchmark_config, render_split


# ----------------------------------------------------------------------------- coordinates


def test_pixel_normalised_round_trip_and_identity_grid():
    xy = torch.rand(3, 7, 2) * 63
    assert torch.allclose(normalized_to_pixel(pixel_to_normalized(xy, 64), 64), xy, atol=1e-5)
    img = torch.rand(2, 3, 16, 16)
    grid = geo.coordinate_grid(16, 16)[None].expand(2, -1, -1, -1)
    assert torch.allclose(geo.sample(img, grid), img, atol=1e-5)  # the identity grid is exact
    shifted = grid.clone()
    shifted[..., 0] += 2.0 / 15  # one pixel in normalised units
    assert torch.allclose(geo.sample(img, shifted)[..., :-1], img[..., 1:], atol=1e-5)


def test_heatmap_cell_maps_to_image_pixel_stride_times_j():
    from srpose_lib.data.heatmaps import gaussian_targets

    xy = torch.tensor([[[20.0, 36.0]]])  # pixels of a 64 px image, on the stride-2 grid
    hm, _ = gaussian_targets(xy, torch.ones(1, 1), 64, 32, 1.0)
    assert torch.allclose(G.soft_keypoints(hm, "mse", stride=2.0), xy, atol=1e-4)
    assert torch.allclose(G.soft_keypoints(hm * 10, "kl", stride=2.0), xy, atol=1e-3)


# ----------------------------------------------------------------------------- transforms


def _keypoints(B, K, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(B, K, 2, generator=g) * 1.6 - 0.8


@pytest.mark.parametrize("skeleton", [HAND21, BODY16], ids=["hand21", "body16"])
def test_bone_transforms_map_driving_endpoints_onto_base_endpoints(skeleton):
    pb, pd = _keypoints(4, skeleton.num_joints, 0), _keypoints(4, skeleton.num_joints, 1)
    T = geo.region_transforms(pb, pd, skeleton)
    for e, (parent, child) in enumerate(skeleton.bones):
        for j in (parent, child):
            mapped = (T[:, 1 + e, :, :2] @ pd[:, j, :, None])[..., 0] + T[:, 1 + e, :, 2]
            assert torch.allclose(mapped, pb[:, j], atol=1e-5)


def test_identity_keypoints_give_the_identity_field_for_any_mask():
    p = _keypoints(3, 21)
    T = geo.region_transforms(p, p, HAND21, background="global")
    masks = torch.softmax(torch.randn(3, 21, 12, 12), 1)
    D = geo.displacement_field(masks, T)
    assert torch.allclose(D, geo.coordinate_grid(12, 12).expand_as(D), atol=1e-5)


def test_transform_gradcheck_zero_length_bone_and_group_formula():
    pb = _keypoints(2, 21, 2).double().requires_grad_(True)
    pd = _keypoints(2, 21, 3).double().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: geo.region_transforms(a, b, HAND21, min_bone=0.01), (pb, pd))
    collapsed = pd.detach().clone()
    collapsed[:, 2] = collapsed[:, 1]  # a zero-length bone
    assert torch.isfinite(geo.region_transforms(pb.detach(), collapsed, HAND21, min_bone=2 / 63)).all()
    # the point-set similarity of two points is the bone formula: the complex ratio v_b / v_d
    d, b = torch.tensor([[0.0, 0.0], [1.0, 0.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    A = geo.similarity(d, b)[:, :2]
    assert torch.allclose(A, torch.tensor([[0.0, -2.0], [2.0, 0.0]]), atol=1e-6)


def test_crop_motion_background_matches_the_rendered_background():
    from srpose_lib.synth.benchmark import Renderer, sample_scene_table

    cfg = benchmark_config("hand", image_size=64, num_train=64)
    table = sample_scene_table(cfg, "target", "train")
    out = Renderer(cfg, "target").render(table, torch.arange(64), layers=True)

    class Split:
        boxes, sequence = out["boxes"], out["sequence"]

    drv = torch.arange(0, 64, 8) + 5
    base = drv - 4
    m = G.crop_motion(Split, drv, base, 64)
    field = geo.displacement_field(torch.ones(len(drv), 1, 64, 64), geo.pixel_affine_to_normalised(m, 64)[:, None])
    warped = geo.sample(out["background"][base], field)
    inner = (slice(None), slice(None), slice(8, 56), slice(8, 56))
    err = (warped - out["background"][drv])[inner].abs().mean()
    still = (out["background"][base] - out["background"][drv])[inner].abs().mean()
    assert err < 0.2 * still, (err, still)


def test_masks_sum_to_one():
    p = _keypoints(2, 16)
    masks = geo.analytic_masks(p, BODY16, 20, 20, 0.12)
    assert torch.allclose(masks.sum(1), torch.ones(2, 20, 20), atol=1e-5)
    net = Reconstructor(recon_config("smoke", 32), BODY16)
    out = net(torch.rand(2, 3, 32, 32), torch.rand(2, 16, 2) * 31, torch.rand(2, 16, 2) * 31)
    assert torch.allclose(out["mask"].sum(1), torch.ones(2, 32, 32), atol=1e-5)
    assert ((out["occlusion"] >= 0) & (out["occlusion"] <= 1)).all()


# ----------------------------------------------------------------------------- W and G


@pytest.mark.parametrize("skeleton", [HAND21, BODY16], ids=["hand21", "body16"])
@pytest.mark.parametrize("arch", ["johnson", "unet"])
def test_w_and_g_shapes_and_a_training_step(skeleton, arch):
    cfg = dataclasses.replace(recon_config("quick", 64), g_arch=arch)
    net = Reconstructor(cfg, skeleton)
    B, K = 2, skeleton.num_joints
    out = net(torch.rand(B, 3, 64, 64), torch.rand(B, K, 2) * 63, torch.rand(B, K, 2) * 63)
    R = 1 + len(skeleton.bones)
    assert out["mask"].shape == (B, R, 64, 64) and out["occlusion"].shape == (B, 1, 64, 64)
    assert out["field"].shape == (B, 64, 64, 2) and out["transforms"].shape == (B, R, 2, 3)
    assert out["prediction"].shape == (B, 3, 64, 64)
    reconstruction_loss(out["prediction"], torch.rand(B, 3, 64, 64)).backward()
    assert all(p.grad is not None for p in net.parameters() if p.requires_grad)


def test_full_size_configuration_follows_the_supplementary():
    cfg = recon_config("full", 256)
    assert (cfg.w_size, cfg.w_blocks, cfg.g_down, cfg.g_res_blocks, cfg.norm) == (64, 5, 2, 6, "batch")
    net = Reconstructor(cfg, HAND21)
    assert len(net.warping.hourglass.down) == 5 and len(net.generator.res) == 6
    with torch.no_grad():
        out = net.eval()(torch.rand(1, 3, 256, 256), torch.rand(1, 21, 2) * 255, torch.rand(1, 21, 2) * 255)
    assert out["prediction"].shape == (1, 3, 256, 256) and out["mask"].shape == (1, 21, 256, 256)


def test_reconstruction_loss_falls_in_twenty_steps():
    torch.manual_seed(0)
    net = Reconstructor(recon_config("smoke", 32), HAND21)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    smooth = torch.nn.functional.interpolate(torch.rand(4, 3, 8, 8), size=36, mode="bilinear", align_corners=True)
    base, drv = smooth[..., 2:34, 2:34], smooth[..., 2:34, :32]  # the driving image moved 2 px right
    p = torch.rand(4, 21, 2) * 25 + 3
    losses = []
    for _ in range(20):
        loss = reconstruction_loss(net(base, p, p + torch.tensor([2.0, 0.0]))["prediction"], drv)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0], losses


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="motion_model"):
        ReconConfig(motion_model="tps")
    with pytest.raises(ConfigError, match="w_size"):
        ReconConfig(w_size=20, w_blocks=3)
    with pytest.raises(ConfigError, match="scales"):
        RecLossConfig(scales=(1.0, 0.0))


# ----------------------------------------------------------------------------- losses


def test_pyramid_ssim_and_normalisation():
    x = torch.rand(2, 3, 32, 32)
    assert [p.shape[-1] for p in pyramid(x, (1.0, 0.5, 0.25))] == [32, 16, 8]
    assert reconstruction_loss(x, x, RecLossConfig(ssim_alpha=0.85)).item() < 1e-6
    # a global exposure / white-balance change costs nothing with normalisation, a lot without
    brighter = (x * torch.tensor([1.2, 1.0, 0.9]).view(1, 3, 1, 1) + 0.05)
    assert reconstruction_loss(brighter, x).item() < 1e-4
    assert reconstruction_loss(brighter, x, RecLossConfig(normalise=False)).item() > 0.05


def test_perceptual_path_is_skipped_without_weights_and_uses_a_local_file(tmp_path):
    assert build_perceptual(RecLossConfig()) is None
    with pytest.raises(ConfigError, match="missing.pth"):
        build_perceptual(RecLossConfig(vgg_weights=str(tmp_path / "missing.pth")))
    import torchvision

    path = tmp_path / "vgg.pth"
    torch.save(torchvision.models.vgg19(weights=None).features.state_dict(), path)
    perceptual = build_perceptual(RecLossConfig(vgg_weights=str(path)))
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(perceptual(x, x), torch.zeros(2))
    assert (perceptual(x, torch.rand(2, 3, 32, 32)) > 0).all()


def test_equivariance_loss_is_zero_for_an_equivariant_oracle_and_sees_the_direction():
    from srpose_lib.data.transforms import affine_matrix

    S = 32
    centres = torch.tensor([[[10.0, 12.0], [20.0, 18.0]]])
    ys, xs = torch.meshgrid(torch.arange(S).float(), torch.arange(S).float(), indexing="ij")
    images = torch.stack([torch.exp(-((xs - c[0]) ** 2 + (ys - c[1]) ** 2) / 4) for c in centres[0]])[None]

    def blobs(img):  # an equivariant keypoint detector: the intensity centroid of each channel
        w = img[:, :2] / img[:, :2].sum((2, 3), keepdim=True)
        return torch.stack([(w * xs).sum((2, 3)), (w * ys).sum((2, 3))], -1)

    ident = affine_matrix(torch.zeros(1), torch.ones(1), torch.zeros(1, 2), torch.zeros(1, dtype=torch.bool), S)
    assert equivariance_loss(blobs, images, blobs(images), ident) < 1e-6
    shift = affine_matrix(torch.zeros(1), torch.ones(1), torch.tensor([[3.0, 0.0]]), torch.zeros(1, dtype=torch.bool), S)
    assert equivariance_loss(blobs, images, blobs(images), shift) < 0.01
    lazy = lambda img: blobs(images)  # noqa: E731  a detector that ignores its input
    assert equivariance_loss(lazy, images, blobs(images), shift) > 0.04


# ----------------------------------------------------------------------------- mechanism


@pytest.mark.parametrize("task", ["hand", "body"])
def test_reconstruction_gradient_pulls_noisy_driving_keypoints_back(task):
    """Benchmark pairs (consecutive source frames), analytic masks and oracle inpainting:
    Adam on 2.5 px-noisy driving keypoints through L_rec cuts their mean error by >= 40%."""
    split = render_split(benchmark_config(task, image_size=64, num_train=128), "source", "train")
    base_idx = torch.arange(16) * 8 + 2
    drv_idx = base_idx + 1
    base = split.images[base_idx].float() / 255
    drv = split.images[drv_idx].float() / 255
    pb, truth = split.keypoints[base_idx].float(), split.keypoints[drv_idx].float()
    bg = G.crop_motion(split, drv_idx, base_idx, 64)
    C = oracle_inpainting(base, drv, pb, truth, split.skeleton, bg)
    noisy = truth + 2.5 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(0))
    refined, _ = refine_driving_keypoints(base, drv, pb, noisy, split.skeleton, C, bg, steps=200, lr=0.1)
    before = (noisy - truth).norm(dim=-1).mean()
    after = (refined - truth).norm(dim=-1).mean()
    assert after < 0.6 * before, (before.item(), after.item())


# ----------------------------------------------------------------------------- pairs and routing


def test_pair_table_gives_partners_from_the_same_sequence_within_the_gap():
    split = render_split(benchmark_config("body", image_size=32, num_train=40), "target", "train")
    table = G.PairTable(split, max_gap=2)
    idx = torch.arange(len(split))
    for seed in range(3):
        partner = table.partners(idx, torch.Generator().manual_seed(seed))
        assert (partner >= 0).all()
        assert torch.equal(split.sequence[partner], split.sequence[idx])
        gap = (split.frame[partner] - split.frame[idx]).abs()
        assert ((gap >= 1) & (gap <= 2)).all()


def test_single_images_get_a_synthetic_pair_with_its_warp():
    split = render_split(benchmark_config("hand", image_size=32, num_train=16), "target", "train")
    split.sequence = torch.arange(len(split))  # every image its own sequence: no real partners
    table = G.PairTable(split, max_gap=2)
    kp = split.keypoints.float()
    b = G.pair_batch(split, table, torch.arange(4), G.PairConfig(), torch.Generator().manual_seed(0), "cpu", kp)
    assert b["synthetic"].all()
    from srpose_lib.data.transforms import warp_images, warp_keypoints

    assert torch.allclose(b["base"], warp_images(b["driving"], b["affine"], padding_mode="border"))
    assert torch.allclose(b["p_base"], warp_keypoints(kp[:4], b["affine"]))
    assert torch.equal(b["background"], b["affine"])


def _tiny_geometric_config():
    from srpose_lib import presets

    return presets.config_for("rec", "smoke", "hand")


def test_gradient_routing_driving_keypoints_carry_gradient_base_keypoints_do_not():
    from srpose_lib.models import build_pose_net

    cfg = _tiny_geometric_config()
    pcfg = cfg.pretrain
    split = render_split(dataclasses.replace(pcfg.benchmark, num_train=32), "target", "train")
    student = build_pose_net(pcfg.model, 21)
    teacher = build_pose_net(pcfg.model, 21)
    net = Reconstructor(cfg.generator.net, HAND21)
    term = G.RecTerm(cfg, net, split, pose_lr=1e-3, device="cpu")
    loss, heat = term.loss(student, teacher, torch.arange(4), torch.Generator().manual_seed(0))
    heat.retain_grad()
    loss.backward()
    assert heat.grad is not None and heat.grad.abs().sum() > 0  # driving keypoints -> student heatmaps
    assert all(p.grad is None for p in teacher.parameters())  # base keypoints: the teacher, detached
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_equivariance_term_adds_to_the_reconstruction_loss():
    from srpose_lib.models import build_pose_net

    cfg = _tiny_geometric_config()
    pcfg = cfg.pretrain
    split = render_split(dataclasses.replace(pcfg.benchmark, num_train=32), "target", "train")
    torch.manual_seed(0)
    student, teacher = build_pose_net(pcfg.model, 21), build_pose_net(pcfg.model, 21)
    net = Reconstructor(cfg.generator.net, HAND21)
    with_eq = dataclasses.replace(cfg, rec=dataclasses.replace(cfg.rec, equivariance=10.0))
    plain, _ = G.RecTerm(cfg, net, split, 1e-3, "cpu").loss(student, teacher, torch.arange(4), torch.Generator().manual_seed(0))
    more, _ = G.RecTerm(with_eq, net, split, 1e-3, "cpu").loss(student, teacher, torch.arange(4), torch.Generator().manual_seed(0))
    assert torch.isfinite(more) and more > plain


def test_grad_toward_truth_probe_measures_only_when_asked_and_uses_the_pairs_ground_truth(monkeypatch):
    """The +rec instrument: with ``probe`` set, L_rec's gradient at the student's driving keypoints
    is compared with (ground truth - prediction) of exactly the images the keypoints belong to."""
    from srpose_lib.eval import instruments as ins
    from srpose_lib.models import build_pose_net

    cfg = _tiny_geometric_config()
    pcfg = cfg.pretrain
    split = render_split(dataclasses.replace(pcfg.benchmark, num_train=32), "target", "train")
    torch.manual_seed(0)
    student, teacher = build_pose_net(pcfg.model, 21), build_pose_net(pcfg.model, 21)
    term = G.RecTerm(cfg, Reconstructor(cfg.generator.net, HAND21), split, 1e-3, "cpu")
    term.loss(student, teacher, torch.arange(4), torch.Generator().manual_seed(0))
    assert term.last_probe is None  # not asked
    seen, real = {}, ins.grad_toward_gt

    def spy(pred, grad, gt, skeleton, px_per_unit=1.0):
        seen.update(pred=pred, gt=gt)
        return real(pred, grad, gt, skeleton, px_per_unit)

    monkeypatch.setattr(ins, "grad_toward_gt", spy)
    term.probe = True
    term.loss(student, teacher, torch.arange(4), torch.Generator().manual_seed(0))
    out = term.last_probe
    assert out is not None and 0.0 <= out["all"] <= 1.0 and set(out) >= {"all", "err_lt_2px", "err_gt_5px"}
    n = cfg.rec.batch_size if cfg.rec.batch_size < 4 else 4
    torch.testing.assert_close(seen["gt"][:n], split.keypoints[:n].float())  # the driving images' own truth
    assert seen["pred"].shape == seen["gt"].shape == (2 * n, 21, 2)


def test_the_reconstruction_term_is_an_optional_part_of_the_adaptation_config():
    from srpose_lib import presets

    cfg = _tiny_geometric_config()
    base = presets.config_for("baseline", "smoke", "hand")
    assert cfg.rec is not None and cfg.generator is not None and base.rec is None and base.generator is None
    assert dataclasses.replace(cfg, method="baseline", rec=None, generator=None) == base  # +rec adds only these
    with pytest.raises(ConfigError, match="unknown adaptation method"):
        dataclasses.replace(cfg, method="recon")
    with pytest.raises(ConfigError, match="needs reconstruction term"):
        dataclasses.replace(cfg, rec=None)
    with pytest.raises(ConfigError, match="takes no reconstruction term"):
        dataclasses.replace(base, rec=cfg.rec, generator=cfg.generator)
    with pytest.raises(ConfigError, match="trains with strategy 'm2d'"):
        dataclasses.replace(cfg, pseudo=presets.config_for("pseudo", "smoke", "hand").pseudo)


# ----------------------------------------------------------------------------- stages


def test_generator_pretraining_records_diagnostics_resumes_and_gates(tmp_path):
    from srpose_lib import presets
    from srpose_lib.data.benchmark import BenchmarkData
    from srpose_lib.errors import TrainingError
    from srpose_lib.models import build_pose_net
    from srpose_lib.train.cache import get_or_train

    cfg = presets.config_for("generator", "smoke", "hand")
    data = BenchmarkData(tmp_path / "cache", show_progress=False)
    pose = build_pose_net(cfg.pretrain.model, 21)

    class Stop(Exception):
        pass

    def interrupt(epoch, it):
        if epoch == 1:
            raise Stop

    kw = dict(data=data, predictor=pose, log=lambda *a: None, show_progress=False)
    with pytest.raises(Stop):
        get_or_train("generator", cfg, G.train_generator, tmp_path / "cache", on_iteration=interrupt, **kw)
    resumed = get_or_train("generator", cfg, G.train_generator, tmp_path / "cache", **kw)
    fresh = get_or_train("generator", cfg, G.train_generator, tmp_path / "other", **kw)
    assert [h["epoch"] for h in resumed.history] == [0, 1, 2]  # epoch 0: before training
    for k, v in fresh.state_dict.items():
        assert torch.equal(v, resumed.state_dict[k]), k
    last = resumed.history[-1]
    assert set(last) >= {"loss_predicted", "loss_identity", "ratio", "loss_jitter", "monotone", "passes", "loss_truth"}
    assert len(last["loss_jitter"]) == len(cfg.jitters) and last["ratio"] > 0
    geometric = presets.config_for("rec", "smoke", "hand")
    failing = dataclasses.replace(resumed, metrics={**resumed.metrics, "passes": False})
    with pytest.raises(TrainingError, match="fails its diagnostics"):
        G.check_diagnostics(failing, geometric)
    warnings = []
    assert G.check_diagnostics(failing, geometric, strict=False, log=warnings.append) is False
    assert len(warnings) == 1 and warnings[0].startswith("WARNING") and "identity warp" in warnings[0]
    passing = dataclasses.replace(resumed, metrics={**resumed.metrics, "passes": True})
    assert G.check_diagnostics(passing, geometric) is True


def test_method_config_sets_epochs_and_seed_for_every_method():
    from srpose_lib import presets

    for m in ("baseline", "pseudo", "rec", "pseudo_rec"):
        cfg = presets.method_config(m, "smoke", "body", epochs=3, seed=5)
        assert (cfg.train.epochs, cfg.seed) == (3, 5)
        assert (cfg.rec is not None) == (m in ("rec", "pseudo_rec"))
    with pytest.raises(ConfigError, match="unknown adaptation method"):
        presets.method_config("recon", "smoke", "body")


def test_reconstruction_figures():
    from srpose_lib.viz import reconstruction as rviz

    S = 32
    p = {"base": torch.rand(3, S, S), "driving": torch.rand(3, S, S), "p_base": torch.rand(21, 2) * 31,
         "p_driving": torch.rand(21, 2) * 31, "mask": torch.softmax(torch.randn(21, S, S), 0),
         "field": geo.coordinate_grid(S, S), "warped": torch.rand(3, S, S), "occlusion": torch.rand(1, S, S),
         "prediction": torch.rand(3, S, S)}
    fig = rviz.reconstruction_panels([p, p], HAND21)
    assert len(fig.axes) == 16
    trace = [(0, 1.0, torch.rand(21, 2) * 31), (10, 0.5, torch.rand(21, 2) * 31)]
    assert len(rviz.refinement_figure(p["driving"], p["p_driving"], trace, HAND21).axes) == 2
    fig = rviz.jitter_curves({"hand": [1.0, 1.1, 1.2, 1.4]}, (1.0, 2.0, 4.0), {"hand": 1.3})
    assert len(fig.axes[0].lines) == 2
    assert rviz.region_image(p["mask"], HAND21).shape == (S, S, 3)


def test_stages_gate_refuses_or_warns_and_never_blocks_a_finished_run(tmp_path, monkeypatch):
    """The diagnostics gate is a policy of :class:`Stages`, outside the hashed config: strict
    refuses to train +rec on a failing W + G, lenient warns and trains, and a run already in
    the cache loads whatever the policy."""
    from srpose_lib import presets
    from srpose_lib.data.benchmark import BenchmarkData
    from srpose_lib.errors import TrainingError
    from srpose_lib.pipeline import Stages
    from srpose_lib.train.cache import TrainResult, run_dir

    cfg = presets.config_for("rec", "smoke", "hand")
    failing = TrainResult("generator", cfg.generator, {}, history=[{"monotone": False}],
                          metrics={"passes": False, "ratio": 1.2})
    trained = []
    monkeypatch.setattr(Stages, "generator", lambda self, c, force=False: failing)
    monkeypatch.setattr(Stages, "supervised", lambda self, c, force=False: None)
    monkeypatch.setattr(Stages, "style_net_model", lambda self, c: None)
    monkeypatch.setattr(Stages, "lifting_model", lambda self, c: None)
    monkeypatch.setattr(Stages, "_get", lambda self, stage, c, fn, force, **kw: trained.append(stage) or stage)
    monkeypatch.setattr(G, "load_reconstructor", lambda result, device: None)
    data = BenchmarkData(tmp_path / "cache")
    strict = Stages(tmp_path / "cache", data, log=lambda *a: None)
    assert strict.refuses(cfg) and not strict.refuses(presets.config_for("baseline", "smoke", "hand"))
    with pytest.raises(TrainingError, match="fails its diagnostics"):
        strict.adapted(cfg)
    assert trained == []
    logged = []
    lenient = Stages(tmp_path / "cache", data, log=logged.append, require_diagnostics=False)
    assert not lenient.refuses(cfg) and lenient.adapted(cfg) == "rec" and trained == ["rec"]
    assert any(line.startswith("WARNING") for line in logged)
    assert lenient.diagnostics_pass(cfg) is False and lenient.diagnostics_pass(presets.config_for("baseline", "smoke", "hand")) is None
    folder = run_dir("rec", cfg, tmp_path / "cache", data.fingerprint(cfg))
    folder.mkdir(parents=True)
    (folder / "final.pt").write_bytes(b"")
    assert not strict.refuses(cfg) and strict.refuses(cfg, force=True)
    assert strict.adapted(cfg) == "rec"  # strict, but finished
