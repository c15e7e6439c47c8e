"""Notebook 02, exercises 1-3: classic AdaIN vs ALADIN, the style weight, the s2t probability."""

from __future__ import annotations

import torch

from _common import MODE, TASK, cfg, expect, finite, setup
from srpose_lib import presets
from srpose_lib.eval.evaluate import evaluate_pck
from srpose_lib.train.style import load_style_net
from srpose_lib.train.supervised import load_model


def _images(data, domain: str, n: int = 16) -> torch.Tensor:
    return data.split(presets.benchmark_for(MODE, TASK), domain, "val").images[:n].float() / 255


def stat_gap(net, a: torch.Tensor, b: torch.Tensor) -> float:
    """The notebook's measure: mean |Δ mean| + |Δ std| of the encoder features, over the levels."""
    with torch.no_grad():
        fa, fb = net.encode(a), net.encode(b)
    return sum(float((x.mean((2, 3)) - y.mean((2, 3))).abs().mean() + (x.std((2, 3)) - y.std((2, 3))).abs().mean())
               for x, y in zip(fa, fb)) / len(fa)


def exercise_1(data, stages) -> dict:
    """(1) ``aladin=False``: classic AdaIN matches the statistics only at the bottleneck, ALADIN at every
    encoder level. So after restyling, ALADIN's images are closer to the target's statistics at all levels
    (the measure below averages over levels); AdaIN's keep more of the source's fine-level statistics."""
    src, tgt = _images(data, "source"), _images(data, "target")
    out = {}
    for name, c in (("aladin", cfg("style_net")), ("adain", cfg("style_net", aladin=False))):
        assert c.net.aladin == (name == "aladin")
        net = load_style_net(stages.style_net(c), "cpu")
        with torch.no_grad():
            restyled = net(src, tgt, 1.0)
        out[name] = {"before": stat_gap(net, src, tgt), "after": stat_gap(net, restyled, tgt)}
        assert finite(*out[name].values()), out
    expect(out["aladin"]["after"] / out["aladin"]["before"] < out["adain"]["after"] / out["adain"]["before"],
           "ALADIN closes more of the statistics gap than AdaIN")
    return out


def exercise_2(data, stages) -> dict:
    """(2) A larger ``style_weight`` trades content for style: the style loss ends lower and the content
    loss higher (object outlines blur, limbs take the target's texture); too large and the keypoints'
    image evidence is damaged, which is what the pose network then learns from."""
    out = {}
    for w in (cfg("style_net").style_weight, 10 * cfg("style_net").style_weight):
        hist = stages.style_net(cfg("style_net", style_weight=w)).history
        last = [h for h in hist if "style" in h][-1]
        out[w] = {"content": last["content"], "style": last["style"]}
        assert finite(*out[w].values())
    lo, hi = sorted(out)
    expect(out[hi]["style"] < out[lo]["style"] and out[hi]["content"] > out[lo]["content"],
           "a larger style weight lowers the style loss and raises the content loss")
    return out


def exercise_3(data, stages) -> dict:
    """(3) ``style_aug.s2t_prob=1.0`` restyles every source batch: the network never sees a clean source
    image. Target PCK of the pre-trained model, default probability vs 1.0 (one seed; differences of a
    point are noise at quick scale)."""
    out = {}
    for p in (cfg("pretrain").style_aug.s2t_prob, 1.0):
        c = cfg("pretrain", **{"style_aug.s2t_prob": p})
        assert c.style_aug.s2t_prob == p
        test = data.dataset(c.benchmark, c.data, "target", "test")
        out[p] = evaluate_pck(load_model(stages.supervised(c), "cpu"), test, 64).groups["All"]
    assert len(out) == 2 and finite(*out.values())
    return out


def main(cache_dir=None) -> dict:
    data, stages = setup(cache_dir)
    return {"1": exercise_1(data, stages), "2": exercise_2(data, stages), "3": exercise_3(data, stages)}


if __name__ == "__main__":
    for k, v in main().items():
        print(k, v)
