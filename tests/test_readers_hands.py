"""Hand readers on fixtures written in each official release's on-disk format: RHD (pickle +
PNG colour/mask/depth), H3D (TLL's H3D_crop annotation.json + parts, and the studio layout),
FreiHAND (training_*.json + rgb JPEGs) and MVHand (calib.pkl, mlresults joints, rgb JPEGs).

Every fixture image is black with one red dot at the thumb tip, so a prepared crop shows
whether the thumb tip landed where its keypoint says (and in the thumb-tip slot)."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from srpose_lib.data.crops import crop_keypoints
from srpose_lib.data.datasets import KeypointDataset, TargetConfig
from srpose_lib.data.prepared import load_prepared, prepared_dir
from srpose_lib.data.readers import DATASETS, freihand, h3d, mvhand, rhd, tll_split
from srpose_lib.errors import DataError
from srpose_lib.skeletons import HAND21

CROP = 64
THUMB_TIP = HAND21.index("thumb_tip")  # 4


# ----------------------------------------------------------------------------- fixtures


def hand21_3d(centre, size=0.08, rng=None) -> np.ndarray:
    """An asymmetric open hand (Hand21 order, metres): fingers fan upwards from the wrist,
    the thumb far to the image left (its tip is the leftmost joint)."""
    rng = rng or np.random.default_rng(0)
    cx, cy, cz = centre
    pts = [(cx, cy + 0.5 * size, cz)]
    for f, angle in enumerate(np.deg2rad([-75, -25, -5, 15, 35])):
        reach = size * (0.7 if f == 0 else 1.0)
        for j in range(1, 5):
            r = reach * (0.25 + 0.22 * j) * (1.5 if f == 0 else 1.0)
            pts.append((cx + r * np.sin(angle), cy - r * np.cos(angle) * (0.4 if f == 0 else 1.0),
                        cz + 0.005 * rng.standard_normal()))
    return np.asarray(pts)


def project(X, K):
    uv = X @ np.asarray(K).T
    return uv[..., :2] / uv[..., 2:]


def dot_image(size, points_red=(), points_green=(), radius=None) -> np.ndarray:
    """Black, green dots at ``points_green``, red dots at ``points_red`` (dots grow with the
    image so that they survive downscaling to the crop and JPEG's chroma subsampling;
    ``radius`` sets their half-size in pixels instead)."""
    W, H = size
    r = max(1, W // 200) if radius is None else int(radius)
    img = np.zeros((H, W, 3), np.uint8)
    for pts, ch in ((points_green, 1), (points_red, 0)):
        for x, y in np.round(np.asarray(pts, float).reshape(-1, 2)).astype(int):
            if 0 <= x < W and 0 <= y < H:
                img[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1] = 0
                img[max(0, y - r):y + r + 1, max(0, x - r):x + r + 1, ch] = 255
    return img


def red_peak(crop: torch.Tensor) -> tuple[float, float]:
    """(x, y) of the red dot in a crop (red minus green and blue, lightly smoothed)."""
    score = (2 * crop[0].float() - crop[1].float() - crop[2].float())[None, None]
    score = torch.nn.functional.avg_pool2d(score, 3, 1, 1, count_include_pad=False)[0, 0]
    y, x = divmod(int(score.argmax()), score.shape[1])
    return float(x), float(y)


RHD_K = np.array([[320.0, 0.0, 160.0], [0.0, 320.0, 160.0], [0.0, 0.0, 1.0]])


def _rhd_hand(centre, size, right=False, rng=None):
    X = hand21_3d(centre, size, rng)
    if right:  # a right hand: the mirror image, thumb to the image right
        X = X.copy()
        X[:, 0] = 2 * centre[0] - X[:, 0]
    return X


def write_rhd(raw: Path) -> dict:
    """RHD_published_v2 with 3 training and 1 evaluation images (see the asserts)."""
    root = raw / "RHD_published_v2"
    rng = np.random.default_rng(1)
    scenes = {
        "training": [
            # 0: a big left hand (kept) and a tiny right hand (box too small)
            dict(left=_rhd_hand((-0.1, 0.0, 0.5), 0.08, rng=rng), right=_rhd_hand((0.2, 0.2, 0.6), 0.01, True, rng),
                 lvis=21, rvis=21),
            # 1: a big right hand (kept, flipped) and a left hand with only 10 visible joints
            dict(left=_rhd_hand((-0.15, -0.1, 0.5), 0.07, rng=rng), right=_rhd_hand((0.1, 0.05, 0.5), 0.09, True, rng),
                 lvis=10, rvis=21),
            # 2: two big hands on top of each other (both fail the overlap test)
            dict(left=_rhd_hand((0.0, 0.0, 0.5), 0.08, rng=rng), right=_rhd_hand((0.01, 0.0, 0.5), 0.08, True, rng),
                 lvis=21, rvis=21),
        ],
        "evaluation": [
            dict(left=_rhd_hand((0.0, 0.02, 0.45), 0.07, rng=rng), right=_rhd_hand((0.25, 0.25, 0.6), 0.01, True, rng),
                 lvis=20, rvis=21),
        ],
    }
    for s, items in scenes.items():
        anno = {}
        for folder in ("color", "mask", "depth"):
            (root / s / folder).mkdir(parents=True, exist_ok=True)
        for i, sc in enumerate(items):
            xyz = np.zeros((42, 3))
            uv_vis = np.zeros((42, 3))
            for hand, offset in (("left", 0), ("right", 21)):
                X = sc[hand]
                idx = [offset + j for j in rhd.LEFT_INDEX]  # Hand21 slot j -> RHD joint
                xyz[idx] = X
                uv_vis[idx, :2] = project(X, RHD_K)
                vis = np.zeros(21)
                vis[: sc["lvis" if hand == "left" else "rvis"]] = 1
                uv_vis[idx, 2] = vis
            anno[i] = {"xyz": xyz.astype(np.float32), "uv_vis": uv_vis.astype(np.float32),
                       "K": RHD_K.astype(np.float32)}
            thumbs = [uv_vis[rhd.LEFT_INDEX[THUMB_TIP], :2], uv_vis[rhd.RIGHT_INDEX[THUMB_TIP], :2]]
            others = np.concatenate([uv_vis[:42, :2][[k for k in range(42) if k not in
                                                      (rhd.LEFT_INDEX[THUMB_TIP], rhd.RIGHT_INDEX[THUMB_TIP])]]])
            Image.fromarray(dot_image((320, 320), thumbs, others)).save(root / s / "color" / f"{i:05d}.png")
            Image.fromarray(np.zeros((320, 320), np.uint8)).save(root / s / "mask" / f"{i:05d}.png")
            Image.fromarray(np.zeros((320, 320, 3), np.uint8)).save(root / s / "depth" / f"{i:05d}.png")
        with open(root / s / f"anno_{s}.pickle", "wb") as f:
            pickle.dump(anno, f, protocol=2)
    return scenes


def write_h3d(raw: Path, n: int = 10, layout: str = "crop") -> list[dict]:
    folder = raw / ("H3D_crop" if layout == "crop" else "H3D")
    rng = np.random.default_rng(2)
    size = (96, 96) if layout == "crop" else (400, 300)
    K = np.array([[150.0, 0.0, size[0] / 2], [0.0, 150.0, size[1] / 2], [0.0, 0.0, 1.0]])
    samples = []
    for i in range(n):
        X = hand21_3d((0.01 * rng.standard_normal(), 0.0, 0.45), 0.08, rng)
        kp = project(X, K)
        part = f"part{1 + i % 5}"
        name = f"{part}/{i:04d}_cam{i % 3}.jpg"
        (folder / part).mkdir(parents=True, exist_ok=True)
        Image.fromarray(dot_image(size, kp[THUMB_TIP], np.delete(kp, THUMB_TIP, 0))).save(folder / name, quality=95)
        samples.append({"name": name, "keypoint2d": kp.tolist(), "keypoint3d": (X * 1000).tolist(),  # mm
                        "intrinsic_matrix": K.tolist(), "without_object": 0 if i % 4 == 3 else 1})
    (folder / "annotation.json").write_text(json.dumps(samples))
    return samples


FREI_K = np.array([[240.0, 0.0, 112.0], [0.0, 240.0, 112.0], [0.0, 0.0, 1.0]])


def write_freihand(raw: Path, n: int = 3) -> np.ndarray:
    rng = np.random.default_rng(3)
    # FreiHAND shows right hands: the mirror image of hand21_3d's, thumb to the image right
    xyz = np.stack([_rhd_hand((0.01 * i, 0.0, 0.5), 0.07, right=True, rng=rng) for i in range(n)])
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "training_K.json").write_text(json.dumps([FREI_K.tolist()] * n))
    (raw / "training_xyz.json").write_text(json.dumps(xyz.tolist()))
    (raw / "training_mano.json").write_text(json.dumps([[[0.0] * 61]] * n))
    (raw / "training" / "rgb").mkdir(parents=True)
    for v in range(4):
        for i in range(n):
            kp = project(xyz[i], FREI_K)
            Image.fromarray(dot_image((224, 224), kp[THUMB_TIP], np.delete(kp, THUMB_TIP, 0))).save(
                raw / "training" / "rgb" / f"{i + n * v:08d}.jpg", quality=95)
    return xyz


def _pose_about(centre_mm, angle_deg):
    """A camera -> world pose: the root camera rotated about the vertical axis through the hand."""
    a = np.deg2rad(angle_deg)
    R = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    c = np.asarray(centre_mm, float)
    P = np.eye(4)
    P[:3, :3] = R
    P[:3, 3] = c - R @ c
    return P


def write_mvhand(raw: Path, n_frames: int = 5, seq: str = "7-14-1-2") -> dict:
    folder = raw / seq
    (folder / "rgb").mkdir(parents=True)
    (folder / "mlresults").mkdir()
    centre = (0.0, 0.0, 500.0)
    poses = {s: _pose_about(centre, a) for s, a in zip(mvhand.SERIALS, (0.0, 20.0, -20.0, 35.0))}
    with open(folder / "calib.pkl", "wb") as f:
        pickle.dump(poses, f)
    rng = np.random.default_rng(4)
    # a right hand (the toolkit fits MANO_RIGHT), thumb to the image right, in mm
    world21 = np.stack([_rhd_hand((0.005 * t, 0.0, 0.5), 0.08, right=True, rng=rng) * 1000
                        for t in range(n_frames)])
    toolkit = np.empty_like(world21)
    toolkit[:, mvhand.TO_HAND21] = world21  # Hand21 slot j holds toolkit joint TO_HAND21[j]
    homo = np.concatenate([toolkit, np.ones((n_frames, 21, 1))], -1)
    np.save(folder / "mlresults" / f"{seq}-joints.npy", homo.reshape(n_frames, 84))
    for t in range(n_frames):
        for v, s in enumerate(mvhand.SERIALS):
            cam = (homo[t] @ np.linalg.inv(poses[s]).T)[:, :3]
            kp = project(cam, mvhand.intrinsic_matrix(s))  # toolkit order
            thumb_tip = kp[20]
            Image.fromarray(dot_image((640, 480), thumb_tip, kp[:20])).save(
                folder / "rgb" / f"{t:05d}_{v}.jpg", quality=95)
    return {"poses": poses, "world21": world21}


def prepare(script_name: str, data_dir: Path, *extra) -> int:
    import importlib

    module = importlib.import_module(f"data_scripts.{script_name}")
    from data_scripts.common import run

    return run(module.SCRIPT, ["--data-dir", str(data_dir), "--crop-size", str(CROP), *extra],
               show_progress=False)


# ----------------------------------------------------------------------------- RHD


def test_rhd_remap_filter_and_flip(tmp_path):
    scenes = write_rhd(tmp_path / "raw" / "rhd")
    splits = rhd.read(tmp_path / "raw" / "rhd")
    train, test = splits["train"], splits["test"]
    # filter: image 0 left only (right too small), image 1 right only (left: 10 visible),
    # image 2 nothing (the hands overlap), evaluation image 0 left only
    assert [s.name for s in train] == ["training/color/00000.png#left", "training/color/00001.png#right"]
    assert [s.name for s in test] == ["evaluation/color/00000.png#left"]
    # remap: the thumb tip (RHD joint 4 of a hand: wrist, thumb tip ... mcp) is Hand21 slot 4
    left = scenes["training"][0]["left"]
    assert np.allclose(train[0].keypoints3d, left)
    assert np.allclose(train[0].keypoints2d[THUMB_TIP], project(left[THUMB_TIP], RHD_K), atol=1e-3)
    assert train[0].keypoints2d[THUMB_TIP, 0] == train[0].keypoints2d[:, 0].min()  # leftmost
    assert train[0].flip is False and train[1].flip is True
    assert test[0].visible.sum() == 20 and not test[0].visible[20]
    # the box is TLL's integer 1.5x box, inside the 320 x 320 image
    x0, y0, side = train[0].box
    assert float(x0).is_integer() and x0 >= 0 and x0 + side <= 320 and side > 65


def test_rhd_tll_filter_arithmetic():
    kp = np.array([[100.0, 100.0], [143.0, 120.0]] + [[120.0, 110.0]] * 19)
    vis = np.ones(21)
    far = kp + 150
    # w = 43 -> side round(64.5) = 64 (banker's rounding) -> right - left = 63: too small
    assert rhd.keep_hand(kp, vis, far)[0] is False
    kp2 = kp.copy()
    kp2[1, 0] = 145.0  # w = 45 -> side 68 -> 67 > 64
    keep, box = rhd.keep_hand(kp2, vis, far)
    assert keep and box[2] == 68
    assert rhd.keep_hand(kp2, np.r_[np.ones(16), np.zeros(5)], far)[0] is False  # 16 visible: not > 16
    # the other hand's (unscaled) keypoint box: the same box covers 21 % of the 1.5x box (kept),
    # a larger one more than 30 % (dropped)
    assert rhd.keep_hand(kp2, vis, kp2)[0] is True
    big = np.array([[90.0, 80.0], [170.0, 160.0]] + [[120.0, 110.0]] * 19)
    assert rhd.keep_hand(kp2, vis, big)[0] is False


def test_rhd_prepared_round_trip(tmp_path):
    write_rhd(tmp_path / "raw" / "rhd")
    assert prepare("rhd", tmp_path) == 0
    sp = load_prepared(tmp_path, "rhd", "train")
    assert len(sp) == 2 and sp.images.shape == (2, 3, CROP, CROP)
    assert sp.flipped.tolist() == [False, True]
    imgs = sp.images[torch.tensor([0, 1])]
    for i in range(2):
        # the red thumb-tip dot sits at the thumb-tip keypoint, also in the flipped crop
        x, y = red_peak(imgs[i])
        kx, ky = sp.keypoints[i, THUMB_TIP].tolist()
        assert abs(x - kx) <= 1.5 and abs(y - ky) <= 1.5
        # 3D through the crop intrinsics gives the crop keypoints (flip included)
        assert np.allclose(project(sp.keypoints3d[i].double().numpy(), sp.intrinsics[i].double().numpy()),
                           sp.keypoints[i].numpy(), atol=0.05)
    # the flipped right hand now looks left: its thumb tip is its leftmost joint
    assert int(sp.keypoints[1, :, 0].argmin()) == THUMB_TIP
    # unflipped, the stored box maps the frame keypoints to the crop keypoints
    raw_kp = project(sp.keypoints3d[0].double().numpy(), RHD_K)
    assert np.allclose(crop_keypoints(raw_kp, sp.boxes[0].double().numpy(), CROP), sp.keypoints[0].numpy(), atol=0.05)
    # through KeypointDataset: a heatmap peak at the keypoint
    ds = KeypointDataset(sp, HAND21, TargetConfig(heatmap_size=16, sigma=1.0, label="visible"))
    hm = ds.get_batch(torch.tensor([1]))["heatmaps"][0, THUMB_TIP]
    py, px = divmod(int(hm.argmax()), 16)
    assert abs(px - sp.keypoints[1, THUMB_TIP, 0] / 4) <= 1 and abs(py - sp.keypoints[1, THUMB_TIP, 1] / 4) <= 1
    assert len(load_prepared(tmp_path, "rhd", "test")) == 1


def test_rhd_truncated_pickle_and_missing_folder(tmp_path):
    with pytest.raises(DataError, match="RHD not found"):
        rhd.read(tmp_path / "raw" / "rhd")
    write_rhd(tmp_path / "raw" / "rhd")
    path = tmp_path / "raw" / "rhd" / "RHD_published_v2" / "training" / "anno_training.pickle"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="anno_training.pickle could not be read") as e:
        rhd.read(tmp_path / "raw" / "rhd")
    assert "RHD_v1-1.zip" in e.value.fix
    assert prepare("rhd", tmp_path) == 2
    assert not (prepared_dir(tmp_path, "rhd") / "meta.json").exists()


def test_rhd_wrong_array_shape(tmp_path):
    write_rhd(tmp_path / "raw" / "rhd")
    path = tmp_path / "raw" / "rhd" / "RHD_published_v2" / "evaluation" / "anno_evaluation.pickle"
    anno = pickle.loads(path.read_bytes())
    anno[0]["uv_vis"] = anno[0]["uv_vis"][:21]
    path.write_bytes(pickle.dumps(anno))
    with pytest.raises(DataError, match=r"uv_vis \(21, 3\)") as e:
        rhd.read(tmp_path / "raw" / "rhd")
    assert f"RHD annotation file {path}: sample 0" in e.value.message  # names the pickle


def test_rhd_nan_keypoint_is_prepared_invisible_not_a_crash(tmp_path, capsys):
    """A NaN in uv_vis used to stop RHD's filter (``round(nan)`` in the TLL box); now the
    boxes use the finite keypoints and the joint is prepared invisible, with a warning."""
    write_rhd(tmp_path / "raw" / "rhd")
    path = tmp_path / "raw" / "rhd" / "RHD_published_v2" / "training" / "anno_training.pickle"
    anno = pickle.loads(path.read_bytes())
    anno[0]["uv_vis"][rhd.LEFT_INDEX[THUMB_TIP], 0] = np.nan  # the kept left hand of image 0
    anno[1]["uv_vis"][:21, :2] = np.nan  # image 1's left hand (dropped anyway): no finite keypoint
    path.write_bytes(pickle.dumps(anno))
    train = rhd.read(tmp_path / "raw" / "rhd")["train"]
    assert [s.name for s in train] == ["training/color/00000.png#left", "training/color/00001.png#right"]
    assert np.isfinite(train[0].box).all() and train[0].annotation == str(path)
    assert prepare("rhd", tmp_path) == 0
    err = capsys.readouterr().err
    assert "warning: rhd: 1 visible joints in 1 samples" in err and "joint 4 (thumb_tip)" in err and str(path) in err
    sp = load_prepared(tmp_path, "rhd", "train")
    assert not sp.visible[0, THUMB_TIP] and sp.visible[0].sum() == 20 and sp.visible[1].all()
    assert prepare("rhd", tmp_path, "--force", "--non-finite", "error") == 2
    err = capsys.readouterr().err
    assert "train sample 'training/color/00000.png#left', joint 4 (thumb_tip) at (nan," in err and str(path) in err


def test_bad_image_stops_the_prepare_and_a_rerun_resumes(tmp_path, capsys):
    write_rhd(tmp_path / "raw" / "rhd")
    color = tmp_path / "raw" / "rhd" / "RHD_published_v2" / "training" / "color" / "00001.png"
    good = color.read_bytes()
    color.write_bytes(good[:60])  # a truncated PNG
    assert prepare("rhd", tmp_path) == 2
    err = capsys.readouterr().err
    assert "00001.png could not be decoded" in err and "fix:" in err
    with pytest.raises(DataError, match="interrupted"):
        load_prepared(tmp_path, "rhd", "train")
    color.write_bytes(good)
    assert prepare("rhd", tmp_path) == 0
    meta = json.loads((prepared_dir(tmp_path, "rhd") / "meta.json").read_text())
    assert meta["source"]["crops_reused"] == 1 and meta["source"]["crops_written"] == 2
    assert meta["splits"] == {"train": 2, "test": 1}


# ----------------------------------------------------------------------------- H3D


def test_h3d_crop_layout_split_and_units(tmp_path):
    samples = write_h3d(tmp_path / "raw" / "h3d", n=10)
    splits = h3d.read(tmp_path / "raw" / "h3d")
    # TLL: filter 'noobject', random.seed(42); random.shuffle; test = first min(int(0.2 N), 3200)
    expected = [s["name"] for s in samples if s["without_object"] == 1]
    random.seed(42)
    random.shuffle(expected)
    k = min(int(len(expected) * 0.2), 3200)
    assert [s.name for s in splits["test"]] == expected[:k]
    assert [s.name for s in splits["train"]] == expected[k:]
    assert len(splits["train"]) + len(splits["test"]) == 8 and k == 1
    assert all(s.visible.all() and s.box == "full" and not s.flip for s in splits["train"])
    # keypoint3d was written in mm: stored in metres
    z = splits["train"][0].keypoints3d[:, 2]
    assert 0.3 < z.mean() < 0.6
    assert len(h3d.read(tmp_path / "raw" / "h3d", task="all")["test"]) == 2
    assert prepare("h3d", tmp_path) == 0
    sp = load_prepared(tmp_path, "h3d", "train")
    assert len(sp) == 7
    # crops are the whole (square) H3D_crop image: keypoints scale by 64 / 96
    first = next(s for s in samples if s["name"] == sp.names[0])
    assert np.allclose(sp.keypoints[0].numpy(), (np.array(first["keypoint2d"]) + 0.5) * CROP / 96 - 0.5, atol=1e-3)
    assert sp.boxes[0].tolist() == [0.0, 0.0, 96.0]
    x, y = red_peak(sp.images[0])
    assert abs(x - sp.keypoints[0, THUMB_TIP, 0]) <= 1.5 and abs(y - sp.keypoints[0, THUMB_TIP, 1]) <= 1.5


def test_h3d_studio_layout_is_cropped_around_the_hand(tmp_path):
    write_h3d(tmp_path / "raw" / "h3d", n=5, layout="full")
    assert prepare("h3d", tmp_path, "--task", "all") == 0
    sp = load_prepared(tmp_path, "h3d", "train")
    assert len(sp) == 4 and sp.boxes[:, 2].max() < 300  # a 1.5x box, not the whole frame
    kp = sp.keypoints
    assert kp.min() >= 0 and kp.max() <= CROP - 1
    x, y = red_peak(sp.images[0])
    assert abs(x - kp[0, THUMB_TIP, 0]) <= 1.5 and abs(y - kp[0, THUMB_TIP, 1]) <= 1.5


def test_h3d_truncated_json_and_missing_folder(tmp_path):
    with pytest.raises(DataError, match="H3D not found") as e:
        h3d.read(tmp_path / "raw" / "h3d")
    assert "check" in e.value.fix
    write_h3d(tmp_path / "raw" / "h3d", n=4)
    path = tmp_path / "raw" / "h3d" / "H3D_crop" / "annotation.json"
    path.write_text(path.read_text()[:-40])
    with pytest.raises(DataError, match="annotation.json could not be read"):
        h3d.read(tmp_path / "raw" / "h3d")


# ----------------------------------------------------------------------------- FreiHAND


def test_freihand_versions_split_and_flip(tmp_path):
    xyz = write_freihand(tmp_path / "raw" / "freihand", n=3)
    splits = freihand.read(tmp_path / "raw" / "freihand")
    # TLL: gs + auto + sample + hom, each id -> id + n * [gs, hom, sample, auto].index(version)
    names = [f"training/rgb/{i + 3 * off:08d}.jpg" for off in (0, 3, 2, 1) for i in range(3)]
    random.seed(42)
    random.shuffle(names)
    assert [s.name for s in splits["test"]] == names[:2] and [s.name for s in splits["train"]] == names[2:]
    assert all(s.flip for s in splits["train"] + splits["test"])
    s0 = splits["train"][0]
    assert np.allclose(s0.keypoints2d, project(xyz[s0.extra["id"]], FREI_K))
    assert prepare("freihand", tmp_path) == 0
    sp = load_prepared(tmp_path, "freihand", "train")
    assert len(sp) == 10 and bool(sp.flipped.all())
    x, y = red_peak(sp.images[3])
    assert abs(x - sp.keypoints[3, THUMB_TIP, 0]) <= 1.5 and abs(y - sp.keypoints[3, THUMB_TIP, 1]) <= 1.5
    # all FreiHAND hands are right hands: flipped, the thumb tip is the leftmost joint
    assert int(sp.keypoints[3, :, 0].argmin()) == THUMB_TIP


def test_freihand_split_sizes_of_the_release():
    train, test = tll_split(4 * 32560)
    assert (len(train), len(test)) == (127040, 3200) == (DATASETS["freihand"]["expected_counts"]["train"],
                                                        DATASETS["freihand"]["expected_counts"]["test"])
    assert len(set(train) | set(test)) == 4 * 32560  # a permutation: no sampling with replacement


def test_freihand_truncated_json(tmp_path):
    write_freihand(tmp_path / "raw" / "freihand", n=2)
    path = tmp_path / "raw" / "freihand" / "training_xyz.json"
    path.write_text(path.read_text()[:50])
    with pytest.raises(DataError, match="training_xyz.json could not be read"):
        freihand.read(tmp_path / "raw" / "freihand")
    (tmp_path / "raw" / "freihand" / "training_xyz.json").write_text(json.dumps([[[0.0, 0.0, 1.0]] * 20]))
    with pytest.raises(DataError, match=r"shape \(1, 20, 3\)"):
        freihand.read(tmp_path / "raw" / "freihand")


# ----------------------------------------------------------------------------- MVHand


def test_mvhand_projection_remap_views_and_split(tmp_path):
    fx = write_mvhand(tmp_path / "raw" / "mvhand", n_frames=5)
    splits = mvhand.read(tmp_path / "raw" / "mvhand")
    allv = splits["train"] + splits["test"]
    assert len(allv) == 20 and len(splits["test"]) == 4  # 5 instants, test = int(0.2 * 5) = 1 instant
    assert len({s.frame for s in splits["test"]}) == 1 and sorted(s.view for s in splits["test"]) == [0, 1, 2, 3]
    # view 0 is the root camera (identity pose): camera coordinates = world, in metres
    s = next(s for s in allv if s.view == 0 and s.frame == 2)
    assert np.allclose(s.keypoints3d, fx["world21"][2] / 1000)
    # remap: the toolkit's thumb (17-20) lands in Hand21 1-4: the right hand's thumb tip is
    # its rightmost joint in the frame
    assert int(np.argmax(s.keypoints2d[:, 0])) == THUMB_TIP
    # other views: inv(pose) @ world, projected with that serial's intrinsics
    s3 = next(s for s in allv if s.view == 3 and s.frame == 2)
    pose = fx["poses"][mvhand.SERIALS[3]]
    cam = (np.c_[fx["world21"][2], np.ones(21)] @ np.linalg.inv(pose).T)[:, :3] / 1000
    assert np.allclose(s3.keypoints3d, cam)
    assert np.allclose(s3.keypoints2d, project(cam, mvhand.intrinsic_matrix(mvhand.SERIALS[3])))
    assert s3.visible.all() and s3.flip and s3.image == "7-14-1-2/rgb/00002_3.jpg"

    assert prepare("mvhand", tmp_path) == 0
    sp = load_prepared(tmp_path, "mvhand", "train")
    assert len(sp) == 16
    i = next(i for i in range(16) if sp.view[i] == 3)
    x, y = red_peak(sp.images[i])
    assert abs(x - sp.keypoints[i, THUMB_TIP, 0]) <= 1.5 and abs(y - sp.keypoints[i, THUMB_TIP, 1]) <= 1.5
    # flipped like RHD's left hands: the thumb tip is now the leftmost joint of every crop
    assert bool((sp.keypoints[:, :, 0].argmin(1) == THUMB_TIP).all())
    # pairs: consecutive frames of a view, and the other views of an instant, within the split
    pairs = sp.pairs(max_gap=1)
    same_view = pairs[sp.view[pairs[:, 0]] == sp.view[pairs[:, 1]]]
    other_view = pairs[sp.view[pairs[:, 0]] != sp.view[pairs[:, 1]]]
    assert len(same_view) == 2 * 4 * 3 and bool((sp.frame[other_view[:, 0]] == sp.frame[other_view[:, 1]]).all())
    assert len(other_view) == 4 * 12  # 4 instants x 4 views x 3 others


def test_mvhand_every_and_no_flip(tmp_path):
    write_mvhand(tmp_path / "raw" / "mvhand", n_frames=5)
    splits = mvhand.read(tmp_path / "raw" / "mvhand", every=2, flip=False)
    frames = sorted({s.frame for s in splits["train"] + splits["test"]})
    assert frames == [0, 2, 4] and not any(s.flip for s in splits["train"])


def test_mvhand_bad_files(tmp_path):
    with pytest.raises(DataError, match="MVHand not found"):
        mvhand.read(tmp_path / "raw" / "mvhand")
    write_mvhand(tmp_path / "raw" / "mvhand", n_frames=2)
    seq = tmp_path / "raw" / "mvhand" / "7-14-1-2"
    np.save(seq / "mlresults" / "7-14-1-2-joints.npy", np.zeros((2, 80)))
    with pytest.raises(DataError, match=r"shape \(2, 80\), expected \(N, 84\)"):
        mvhand.read(tmp_path / "raw" / "mvhand")
    (seq / "calib.pkl").write_bytes((seq / "calib.pkl").read_bytes()[:30])
    with pytest.raises(DataError, match="calib.pkl could not be read"):
        mvhand.read(tmp_path / "raw" / "mvhand")
