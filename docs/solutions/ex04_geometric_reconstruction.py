"""Notebook 04, exercises 1-4: FOMM's translation motion, a source-trained predictor, an unbounded W,
the U-Net reading of G. Each trains W + G once more (smoke: seconds) and reads notebook 04's two
diagnostics from the run's last history record: L_rec with the predicted keypoints over L_rec with the
identity warp (the ratio; must be below ``max_ratio``) and the jitter curve (L_rec as the driving
keypoints are jittered by 0, 1, 2, 4 px; must rise monotonically)."""

from __future__ import annotations

from _common import TASK, cfg, expect, finite, setup
from srpose_lib.adapt import geometric as gm


def diagnostics(result) -> dict:
    d = result.history[-1]
    curve = [d["loss_predicted"]] + list(d["loss_jitter"])
    assert finite(*curve, d["loss_identity"], d["ratio"])
    return {"ratio": d["ratio"], "jitter_curve": curve, "passes": bool(d["passes"]),
            "rise_0_to_4px": curve[-1] - curve[0]}


def exercise_1(stages) -> dict:
    """(1) ``motion_model="translation"`` (FOMM's zeroth order: each region only shifts) cannot rotate or
    scale a finger, so a keypoint displacement explains fewer pixels: the jitter curve is flatter (L_rec is
    less sensitive to where the keypoints are), i.e. a weaker keypoint signal than bone similarities."""
    ref = stages.generator(cfg("generator"))
    trans_cfg = cfg("generator", motion_model="translation")
    assert trans_cfg.net.motion_model == "translation"
    out = {"bone_similarity": diagnostics(ref), "translation": diagnostics(stages.generator(trans_cfg))}
    expect(out["translation"]["rise_0_to_4px"] < out["bone_similarity"]["rise_0_to_4px"],
           "translation-only motion gives a flatter jitter curve")
    return out


def exercise_2(stages) -> dict:
    """(2) Pre-trained with the source-trained model's keypoints (``predictor=config_for("pretrain", ...)``),
    W + G learn from keypoints that are often wrong on target images; they learn to rely less on them
    (inpaint from the base image instead), so the ratio to the identity warp rises towards 1 and the
    diagnostics tend to fail — why notebook 04 uses the adapted Baseline teacher as the predictor."""
    pre = cfg("pretrain")
    c = cfg("generator", predictor=pre)
    assert c.predictor == pre
    out = {"baseline_teacher": diagnostics(stages.generator(cfg("generator"))),
           "source_trained": diagnostics(stages.generator(c))}
    expect(out["source_trained"]["ratio"] > out["baseline_teacher"]["ratio"],
           "source-trained keypoints give a worse ratio to the identity warp")
    return out


def exercise_3(stages) -> dict:
    """(3) ``mask_range=0`` removes the bound on W's mask logits around the bone prior: W is free to give
    a region any pixels, and the regions stop following the bones (one region grows over the image, the
    others vanish); the warp then no longer depends on each keypoint, and the jitter curve flattens."""
    c = cfg("generator", mask_range=0.0)
    assert c.net.mask_range == 0.0
    result = stages.generator(c)
    net = gm.load_reconstructor(result, "cpu")
    return {"unbounded": diagnostics(result), "parameters": sum(p.numel() for p in net.parameters())}


def exercise_4(stages) -> dict:
    """(4) ``g_arch="unet"``: G with skip connections from the warped base image's features. It copies
    detail through the skips (sharper reconstructions, lower L_rec) but can also bypass the warp, which
    weakens the dependence of L_rec on the keypoints the method needs."""
    c = cfg("generator", g_arch="unet")
    assert c.net.g_arch == "unet"
    out = {"johnson": diagnostics(stages.generator(cfg("generator"))), "unet": diagnostics(stages.generator(c))}
    expect(out["unet"]["jitter_curve"][0] < out["johnson"]["jitter_curve"][0], "the U-Net reconstructs with a lower L_rec")
    return out


def main(cache_dir=None) -> dict:
    _, stages = setup(cache_dir)
    return {"1": exercise_1(stages), "2": exercise_2(stages), "3": exercise_3(stages), "4": exercise_4(stages)}


if __name__ == "__main__":
    for k, v in main().items():
        print(k, v)
