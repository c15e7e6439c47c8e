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
