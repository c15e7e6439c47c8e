"""Figures draw what they are given; the PCK table reports differences correctly."""

import matplotlib

matplotlib.use("Agg")

import torch  # noqa: E402

from srpose_lib import viz  # noqa: E402
from srpose_lib.skeletons import BODY16, HAND21  # noqa: E402


def test_draw_pose_draws_every_bone_and_marks_occluded_joints():
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    kp = torch.rand(16, 2) * 50
    vis = torch.ones(16)
    vis[[3, 7]] = 0
    viz.draw_pose(ax, kp, BODY16, vis)
    assert len(ax.lines) == len(BODY16.bones) == 15
    filled, hollow = ax.collections
    assert len(filled.get_offsets()) == 14 and len(hollow.get_offsets()) == 2
    plt.close(fig)


def test_bone_colours_follow_fingers_and_sides():
    hand = viz.bone_colours(HAND21)
    assert len(set(hand)) == 5  # one colour per finger
    body = dict(zip(BODY16.bones, viz.bone_colours(BODY16)))
    assert body[(14, 15)] != body[(11, 10)]  # left and right forearms differ


def test_pck_table_shows_differences_to_the_reference():
    rows = {"Baseline": {"MCP": 80.0, "All": 70.0}, "+rec": {"MCP": 81.5, "All": 69.0}}
    table = viz.pck_table(rows, reference="Baseline")
    lines = table.splitlines()
    assert lines[0] == "| | MCP | All |"
    assert lines[2] == "| Baseline | 80.0 | 70.0 |"
    assert lines[3] == "| +rec | 81.5 (+1.5) | 69.0 (-1.0) |"


def test_figures_have_one_panel_per_item():
    images = torch.randint(0, 255, (5, 3, 32, 32), dtype=torch.uint8)
    fig = viz.show_samples(images, torch.rand(5, 21, 2) * 30, HAND21, ncols=3)
    assert sum(ax.has_data() for ax in fig.axes) == 5
    hist = {"a": [{"epoch": 1, "loss": 2.0, "val_pck": 10.0}, {"epoch": 2, "loss": 1.0, "val_pck": 20.0}]}
    fig = viz.training_curves(hist)
    assert [len(ax.lines) for ax in fig.axes] == [1, 1]
    fig = viz.pck_bars({"x": {"A": 1.0, "B": 2.0}, "y": {"A": 3.0, "B": 4.0}})
    assert len(fig.axes[0].patches) == 4


def test_explorers_follow_their_controls():
    from srpose_lib.data.datasets import KeypointDataset, TargetConfig
    from srpose_lib.models import ModelConfig, build_pose_net
    from srpose_lib.synth.benchmark import benchmark_config, render_split
    from srpose_lib.viz.widgets import prediction_explorer, sample_explorer

    cfg = benchmark_config("body", num_val=6, num_train=4, num_test=4)
    a, b = render_split(cfg, "source", "val"), render_split(cfg, "target", "test")
    box = sample_explorer({"a": a, "b": b})
    choice, index, _ = box.children[0].children
    assert index.max == len(a) - 1
    choice.value = "b"  # redraws for the other split and adapts the slider
    assert index.max == len(b) - 1
    model = build_pose_net(ModelConfig(arch="resnet_tiny", deconv_channels=(8, 8, 8), tiny_widths=(4, 4, 4, 4)), 16)
    ds = KeypointDataset(b, b.skeleton, TargetConfig(32, 1.0))
    box = prediction_explorer({"m": model}, {"t": ds})
    index, joint = box.children[1].children
    joint.value = "l_wrist"
    index.value = 2
    assert index.max == len(ds) - 1



class _Split:
    """The attributes of a split that the figures read."""

    def __init__(self, n, skeleton=HAND21):
        self.images = torch.randint(0, 255, (n, 3, 16, 16), dtype=torch.uint8)
        self.keypoints = torch.rand(n, skeleton.num_joints, 2) * 15
        self.visible = torch.ones(n, skeleton.num_joints, dtype=torch.bool)
        self.skeleton = skeleton

    def __len__(self):
        return len(self.images)


def test_dataset_samples_spread_over_splits_of_any_length():
    fig = viz.dataset_samples({"source: rhd": _Split(30), "target: h3d": _Split(3)}, n=5)
    assert len(fig.axes) == 10 and sum(ax.has_data() for ax in fig.axes) == 5 + 3
    assert fig.axes[0].get_ylabel() == "source: rhd\n(30 images)" and "3 images" in fig.axes[5].get_ylabel()
    assert len(fig.axes[0].lines) == len(HAND21.bones)


def test_comparison_grid_and_its_selection_rule():
    from srpose_lib.eval.compare import per_image_error, pick_by_spread
    from srpose_lib.skeletons import HAND21
    from srpose_lib.viz import comparison_grid

    gt = torch.rand(6, 21, 2) * 60
    valid = torch.ones(6, 21, dtype=torch.bool)
    preds = {"a": gt.clone(), "b": gt + torch.arange(6.0)[:, None, None]}  # b is off by i px on image i
    err = {k: per_image_error(v, gt, valid) for k, v in preds.items()}
    assert torch.allclose(err["b"], torch.arange(6.0) * 2**0.5)
    assert pick_by_spread(err, 2).tolist() == [5, 4]  # the largest spread between the systems first
    assert pick_by_spread(err, 2, pool=3, seed=1).tolist() == pick_by_spread(err, 2, pool=3, seed=1).tolist()
    tips = HAND21.groups["Fin"]
    fig = comparison_grid(torch.rand(2, 3, 64, 64), gt[[5, 4]], {k: v[[5, 4]] for k, v in preds.items()}, HAND21,
                          tips, threshold_px=3.2)
    assert len(fig.axes) == 2 * 3 and fig.axes[0].get_title() == "ground truth"
    texts = [t.get_text() for ax in fig.axes for t in ax.texts]
    assert texts == ["5/5", "0/5", "5/5", "0/5"]  # endpoint hits: a exact, b 5-7 px off
    import matplotlib.pyplot as plt

    plt.close(fig)
