"""Notebook 05, exercises 1-3: frozen W + G, a tenfold λ_rec, why the base keypoints come from the teacher.

The +rec runs train on a W + G that fails notebook 04's diagnostics at smoke scale, so the stages are
built with ``require_diagnostics=False`` (as ``-p REQUIRE_DIAGNOSTICS False`` does in notebook 05)."""

from __future__ import annotations

from _common import cfg, expect, finite, setup
from srpose_lib.adapt import geometric as gm
from srpose_lib.adapt.train import load_teacher
from srpose_lib.eval.evaluate import evaluate_pck


def _pck(data, stages, c) -> float:
    pc = c.pretrain
    test = data.dataset(pc.benchmark, pc.data, "target", "test")
    return evaluate_pck(load_teacher(stages.adapted(c), "cpu"), test, 64).groups["All"]


def exercise_1(data, stages) -> dict:
    """(1) ``rec.finetune_lr_mult=0`` freezes W + G (eval mode, no optimiser): L_rec can then only fall
    by moving the student's driving keypoints, so the whole reconstruction signal goes to the pose net;
    with fine-tuning W + G also adapt to the target images and L_rec falls further without the keypoints
    moving. Compare L_rec per epoch and the PCK."""
    out = {}
    for name, mult in (("finetuned", cfg("rec").rec.finetune_lr_mult), ("frozen", 0.0)):
        c = cfg("rec", **{"rec.finetune_lr_mult": mult})
        hist = stages.adapted(c).history
        out[name] = {"loss_rec": [h["loss_rec"] for h in hist], "pck": _pck(data, stages, c)}
        assert finite(*out[name]["loss_rec"], out[name]["pck"])
    expect(out["frozen"]["loss_rec"][-1] >= out["finetuned"]["loss_rec"][-1], "a frozen W + G ends with a higher L_rec")
    return out


def exercise_2(data, stages) -> dict:
    """(2) λ_rec × 10: the keypoint-gradient ratio of λ·L_rec to the pseudo-label loss grows about tenfold
    (it is linear in λ at the same weights); once it approaches 1 the reconstruction term dominates the
    keypoint signal, and with a W + G whose signal is weak (notebook 04's diagnostics) the PCK suffers."""
    out = {}
    for w in (1.0, 10.0):
        c = cfg("rec", **{"rec.weight": w})
        hist = stages.adapted(c).history
        ratios = [h["grad_ratio"] for h in hist if h.get("grad_ratio") is not None]
        assert ratios, "no gradient ratio was measured"
        out[w] = {"grad_ratio": ratios[-1], "pck": _pck(data, stages, c)}
    assert out[10.0]["grad_ratio"] > 2 * out[1.0]["grad_ratio"], out
    return out


def exercise_3(data, stages) -> dict:
    """(3) If the base keypoints carried gradient too, L_rec could be lowered by moving *both* keypoint
    sets together: when base and driving keypoints agree, W's warp is the identity and G only has to
    copy the base image. The degenerate answer "the subject did not move" is then nearly as good as the
    true motion, and nothing in L_rec pulls the keypoints to the right place. Measured with notebook 04's
    diagnostics: L_rec with p_driving := p_base (static) against L_rec with the predicted keypoints.
    The teacher's fixed base keypoints anchor one side, so only the driving side can move."""
    c = cfg("generator")
    result = stages.generator(c)
    pc = c.pretrain
    val = data.split(pc.benchmark, "target", "val")
    pairs = gm.diagnostic_pairs(val, stages.pose_model(c.predictor), c,
                                pc.benchmark.image_size / pc.data.target.heatmap_size, "cpu")
    d = gm.diagnose(gm.load_reconstructor(result, "cpu"), pairs, c)
    out = {"loss_predicted": d["loss_predicted"], "loss_static": d["loss_static"], "loss_identity": d["loss_identity"]}
    assert finite(*out.values())
    assert d["loss_static"] < 1.5 * d["loss_predicted"], out  # the degenerate solution is competitive
    return out


def main(cache_dir=None) -> dict:
    data, stages = setup(cache_dir, require_diagnostics=False)
    return {"1": exercise_1(data, stages), "2": exercise_2(data, stages), "3": exercise_3(data, stages)}


if __name__ == "__main__":
    for k, v in main().items():
        print(k, v)
