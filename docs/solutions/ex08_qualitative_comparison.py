"""Notebook 08, exercises 1-3: CC-SSL without its temporal check, RegDA without the source
disparity term, Fig A's images picked by ours' own errors."""

from __future__ import annotations

import torch

from _common import MODE, TASK, cfg, expect, finite, setup
from srpose_lib.eval.compare import per_image_error
from srpose_lib.eval.evaluate import evaluate_pck, predict_heatmaps
from srpose_lib.keypoints import argmax_2d, heatmap_to_image


def _target_test(data, c):
    c = getattr(c, "pretrain", c)  # adaptation configs carry their source model's config
    return data.dataset(c.benchmark, c.data, "target", "test")


def exercise_1(data, stages) -> dict:
    """(1) CC-SSL with ``temporal=False``: no label is carried over from the previous frame (its
    log's "carried by the temporal check" count is 0 in every round); with the check on, labels
    whose confidence fell below 0.9 x the predecessor's are carried. The PCK moves little at quick
    scale (one seed: read it with the seed-study command before believing a difference)."""
    out = {}
    for temporal in (True, False):
        c = cfg("ccssl", temporal=temporal)
        res = stages.comparison(c)
        carried = sum(r["temporal_changed"] for r in res.history if r.get("temporal_changed") is not None)
        pck = evaluate_pck(stages.comparison_model(c), _target_test(data, c), 64).all
        out[f"temporal={temporal}"] = {"carried": carried, "pck": pck}
    assert out["temporal=False"]["carried"] == 0, out  # the check is really off
    assert finite(*(v["pck"] for v in out.values())), out
    return out


def exercise_2(data, stages) -> dict:
    """(2) RegDA with margin 0: step A is then the plain source loss, the adversarial head gets no
    source signal and learns only from the max step on target (ground false), so its disparity on
    source is no longer held small; the main head's source loss itself is unchanged in kind."""
    out = {}
    for margin in (4.0, 0.0):
        c = cfg("regda", **{"train.margin": margin})
        res = stages.comparison(c)
        out[f"margin={margin}"] = {"loss_src": res.history[-1]["loss_src"],
                                   "pck": evaluate_pck(stages.comparison_model(c), _target_test(data, c), 64).all}
    assert cfg("regda", **{"train.margin": 0.0}) != cfg("regda")  # a different run, trained anew
    assert finite(*(v[k] for v in out.values() for k in ("loss_src", "pck"))), out
    return out


def exercise_3(data, stages, rows: int = 4) -> dict:
    """(3) Fig A's images by the largest error of ours instead of the spread between systems: these
    are the hardest images for ours — at quick scale mostly strong self-occlusion, small or
    foreshortened figures and cluttered backgrounds; the spread rule instead shows where systems
    *disagree*, which is what a comparison figure is for."""
    from srpose_lib.adapt.train import load_teacher

    model = load_teacher(stages.adapted(cfg("pseudo_rec")), "cpu")
    test = _target_test(data, cfg("source_only"))  # the same target test split for every system
    batch = test.get_batch(torch.arange(len(test)))
    hm = predict_heatmaps(model, batch["image"])
    pred = heatmap_to_image(argmax_2d(hm)[0], test.image_size / hm.shape[-1])
    err = per_image_error(pred, batch["keypoints"], batch["weights"] > 0)
    worst = torch.argsort(torch.nan_to_num(err, nan=-1.0), descending=True)[:rows]
    median = float(err.nanmedian())
    assert all(float(err[i]) >= median for i in worst), (err[worst], median)
    expect(float(err[worst].mean()) > 2 * median, "the worst images are far harder than the typical one")
    return {"images": worst.tolist(), "errors_px": [round(float(err[i]), 2) for i in worst], "median_px": median}


def main(cache_dir=None) -> dict:
    data, stages = setup(cache_dir, require_diagnostics=False)
    return {"1": exercise_1(data, stages), "2": exercise_2(data, stages), "3": exercise_3(data, stages)}


if __name__ == "__main__":
    print(f"mode {MODE}, task {TASK}")
    for k, v in main().items():
        print(k, v)
