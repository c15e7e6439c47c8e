"""Notebook 00, exercises 1-3: the target domain's background, occluded joints, motion between frames."""

from __future__ import annotations

import torch

from _common import MODE, finite, setup
from srpose_lib import presets
from srpose_lib.synth.benchmark import render_split
from srpose_lib.synth.domains import domain_preset


def background_std(split) -> float:
    """The notebook's statistic: std of the top image row, averaged (0 for a flat background)."""
    x = split.images.float() / 255
    return float(x[..., 0, :].std(-1).mean())


def exercise_1(data) -> dict:
    """(1) Render the target domain with a plain background: the background statistic drops to the
    source's level, and the other target effects (noise, texture, light) remain."""
    bench = presets.benchmark_for(MODE, "hand")
    plain = presets.benchmark_for(MODE, "hand", target=domain_preset("hand", "target", background="plain"))
    stats = {"source": background_std(data.split(bench, "source", "val")),
             "target": background_std(data.split(bench, "target", "val")),
             "target_plain": background_std(render_split(plain, "target", "val"))}
    assert stats["target_plain"] < 0.5 * stats["target"], stats  # the clutter was most of the background signal
    assert stats["target_plain"] >= stats["source"], stats  # noise and light still vary the plain target background
    return stats


def exercise_2(data) -> dict:
    """(2) The most often occluded target hand joints are finger joints (PIP, DIP, tip: hidden behind
    the palm and the other fingers in grasps); the wrist is the most visible."""
    split = data.split(presets.benchmark_for(MODE, "hand"), "target", "train")
    rate = split.visible.float().mean(0)
    names = split.skeleton.joint_names
    order = rate.argsort().tolist()
    least = [names[j] for j in order[:3]]
    assert rate.min() < rate.mean() < 1.0
    assert all(n.endswith(("pip", "dip", "tip")) for n in least), least
    assert rate[split.skeleton.index("wrist")] > rate.median()
    return {"least_visible": least, "visible_rate": {names[j]: round(float(rate[j]), 2) for j in order[:3]},
            "most_visible": names[order[-1]]}


def exercise_3(data) -> dict:
    """(3) Keypoint motion between consecutive frames of a target sequence: a few pixels, far less
    than the image size (what makes base/driving pairs useful for reconstruction)."""
    split = data.split(presets.benchmark_for(MODE, "hand"), "target", "val")
    pairs = split.pairs(max_gap=1)
    step = (split.keypoints[pairs[:, 1]] - split.keypoints[pairs[:, 0]]).norm(dim=-1)
    out = {"mean_px": float(step.mean()), "median_px": float(step.median()), "image_px": split.image_size}
    assert finite(out["mean_px"]) and 0 < out["median_px"] < 0.15 * split.image_size, out
    return out


def main(cache_dir=None) -> dict:
    data, _ = setup(cache_dir)
    return {"1": exercise_1(data), "2": exercise_2(data), "3": exercise_3(data)}


if __name__ == "__main__":
    for k, v in main().items():
        print(k, v)
