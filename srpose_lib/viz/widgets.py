"""ipywidgets explorers. Notebooks build them only ``if INTERACTIVE:`` and always after a
static figure of the same view, so a headless run (papermill, CI) loses nothing."""

from __future__ import annotations

from typing import Mapping

import matplotlib.pyplot as plt
import torch

from . import draw_pose, _image


def sample_explorer(splits: Mapping[str, object]):
    """Browse rendered splits: choose a split and an image; toggle the skeleton."""
    import ipywidgets as w
    from IPython.display import display

    names = list(splits)
    choice = w.Dropdown(options=names, description="split")
    index = w.IntSlider(0, 0, len(splits[names[0]]) - 1, description="image", continuous_update=False)
    pose = w.Checkbox(True, description="skeleton")
    out = w.Output()

    def redraw(*_):
        sp = splits[choice.value]
        index.max = len(sp) - 1
        i = index.value
        with out:
            out.clear_output(wait=True)
            fig, ax = plt.subplots(figsize=(3.2, 3.2))
            ax.imshow(_image(sp.images[i]), interpolation="nearest")
            if pose.value:
                draw_pose(ax, sp.keypoints[i], sp.skeleton, sp.visible[i])
            vis = int(sp.visible[i].sum())
            ax.set_title(f"{choice.value} #{i}: seq {int(sp.sequence[i])}, frame {int(sp.frame[i])}, "
                         f"{vis}/{sp.visible.shape[1]} visible", fontsize=8)
            ax.set_axis_off()
            display(fig)
            plt.close(fig)

    for widget in (choice, index, pose):
        widget.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([choice, index, pose]), out])


def prediction_explorer(models: Mapping[str, torch.nn.Module], datasets: Mapping[str, object]):
    """Compare models on test images: prediction (colour) against ground truth (white)."""
    import ipywidgets as w
    from IPython.display import display

    from ..keypoints import argmax_2d

    mnames, dnames = list(models), list(datasets)
    model_w = w.Dropdown(options=mnames, description="model")
    data_w = w.Dropdown(options=dnames, description="test split")
    index = w.IntSlider(0, 0, len(datasets[dnames[0]]) - 1, description="image", continuous_update=False)
    joint = w.Dropdown(options=["(all)"] + list(datasets[dnames[0]].skeleton.joint_names), description="heatmap")
    out = w.Output()

    def redraw(*_):
        ds = datasets[data_w.value]
        index.max = len(ds) - 1
        sample = ds[index.value]
        model = models[model_w.value]
        with torch.no_grad():
            hm = model.eval()(sample["image"][None].to(next(model.parameters()).device))[0].float().cpu()
        xy = argmax_2d(hm)[0] * (ds.image_size / hm.shape[-1])
        with out:
            out.clear_output(wait=True)
            fig, axes = plt.subplots(1, 2, figsize=(6, 3))
            axes[0].imshow(_image(sample["image"]), interpolation="nearest")
            draw_pose(axes[0], sample["keypoints"], ds.skeleton, colour="white", linewidth=0.8, style="--")
            draw_pose(axes[0], xy, ds.skeleton)
            axes[0].set_title(f"{model_w.value} on {data_w.value} #{index.value}", fontsize=8)
            maps = hm.max(0).values if joint.value == "(all)" else hm[ds.skeleton.index(joint.value)]
            axes[1].imshow(maps.numpy(), cmap="magma", interpolation="nearest")
            axes[1].set_title(f"heatmap: {joint.value}", fontsize=8)
            for ax in axes:
                ax.set_axis_off()
            display(fig)
            plt.close(fig)

    for widget in (model_w, data_w, index, joint):
        widget.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([model_w, data_w]), w.HBox([index, joint]), out])


def reconstruction_explorer(net: torch.nn.Module, pairs: Mapping[str, torch.Tensor], skeleton):
    """Browse reconstruction pairs: choose a pair, the driving keypoints (predicted or
    ground truth) and a jitter in pixels, and see what W + G make of them and the loss."""
    import ipywidgets as w
    from IPython.display import display

    from ..adapt.geometric import normal_jitter
    from ..recon.losses import reconstruction_loss
    from .reconstruction import reconstruction_panels

    n = len(pairs["base"])
    index = w.IntSlider(0, 0, n - 1, description="pair", continuous_update=False)
    source = w.Dropdown(options=["predicted", "ground truth"], description="keypoints")
    jitter = w.FloatSlider(0.0, min=0.0, max=8.0, step=0.5, description="jitter px", continuous_update=False)
    out = w.Output()

    def redraw(*_):
        i = index.value
        truth = source.value == "ground truth"
        pb = (pairs["truth_base"] if truth else pairs["p_base"])[i:i + 1]
        pd = (pairs["truth_driving"] if truth else pairs["p_driving"])[i:i + 1]
        if jitter.value > 0:
            pd = normal_jitter(pd, jitter.value, torch.Generator().manual_seed(i))
        with torch.no_grad():
            res = net.eval()(pairs["base"][i:i + 1], pb, pd, pairs["background"][i:i + 1])
            loss = float(reconstruction_loss(res["prediction"], pairs["driving"][i:i + 1]))
        panel = {"base": pairs["base"][i], "driving": pairs["driving"][i], "p_base": pb[0], "p_driving": pd[0],
                 **{k: res[k][0] for k in ("mask", "field", "warped", "occlusion", "prediction")}}
        with out:
            out.clear_output(wait=True)
            fig = reconstruction_panels([panel], skeleton)
            fig.suptitle(f"pair {i}: L_rec {loss:.4f}", fontsize=8)
            display(fig)
            plt.close(fig)

    for widget in (index, source, jitter):
        widget.observe(redraw, names="value")
    redraw()
    return w.VBox([w.HBox([index, source, jitter]), out])
