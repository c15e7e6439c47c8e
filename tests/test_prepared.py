"""The shared crop helpers and the prepared format (writer, reader, errors, pairs)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from srpose_lib.data.crops import (crop_image, crop_intrinsics, crop_keypoints, flip_crop,
                                   scale_box, uncrop_keypoints)
from srpose_lib.data.datasets import KeypointDataset, TargetConfig
from srpose_lib.data.prepared import (PreparedWriter, check_prepared, load_prepared,
                                      prepared_dir)
from srpose_lib.errors import DataError
from srpose_lib.skeletons import HAND21


def project(X, K):
    uvw = X @ K.T
    return uvw[..., :2] / uvw[..., 2:]


# ----------------------------------------------------------------------------- crops


def test_scale_box_follows_tll():
    kp = np.array([[10.0, 20.0], [50.0, 40.0], [30.0, 25.0]])
    # w = 40, h = 20 -> side 60, centre (30, 30) -> left = upper = 0
    assert scale_box(kp, None, 1.5, (320, 320)).tolist() == [0.0, 0.0, 60.0]
    # near the right/bottom edge: shifted back inside
    kp2 = kp + [280.0, 290.0]
    x0, y0, side = scale_box(kp2, None, 1.5, (320, 320))
    assert side == 60 and x0 + side == 320 and y0 + side == 320
    # a box larger than the image is capped at the shorter side
    big = np.array([[0.0, 0.0], [300.0, 100.0]])
    assert scale_box(big, None, 1.5, (320, 240)).tolist() == [30.0, 0.0, 240.0]
    # no image size: no clamping, negative corners allowed
    assert scale_box(kp, None, 1.5, None).tolist() == [0.0, 0.0, 60.0]
    assert scale_box(kp - 100, None, 1.5, None).tolist() == [-100.0, -100.0, 60.0]
    # invalid keypoints do not count; batched form gives one box per sample
    valid = np.array([True, True, False])
    far = kp.copy()
    far[2] = [300.0, 300.0]
    assert scale_box(far, valid, 1.5, (320, 320)).tolist() == [0.0, 0.0, 60.0]
    assert scale_box(np.stack([kp, kp2]), None, 1.5, (320, 320)).shape == (2, 3)
    with pytest.raises(DataError, match="no valid keypoint"):
        scale_box(kp, np.zeros(3, bool))


def test_crop_intrinsics_agree_with_crop_keypoints():
    g = torch.Generator().manual_seed(0)
    X = torch.rand(4, 21, 3, generator=g, dtype=torch.float64) * torch.tensor([0.2, 0.2, 0.1]) + torch.tensor([0.0, 0.0, 0.5])
    K = torch.tensor([[500.0, 0.0, 160.0], [0.0, 480.0, 120.0], [0.0, 0.0, 1.0]], dtype=torch.float64).expand(4, 3, 3)
    boxes = torch.tensor([[10.0, 20.0, 100.0], [-5.0, 0.0, 300.0], [100.0, 50.0, 40.0], [0.0, 0.0, 256.0]],
                         dtype=torch.float64)
    direct = torch.stack([project(X[i], K[i]) for i in range(4)])
    via_crop = torch.stack([project(X[i], crop_intrinsics(K, boxes, 64)[i]) for i in range(4)])
    assert torch.allclose(crop_keypoints(direct, boxes, 64), via_crop, atol=1e-9)
    assert torch.allclose(uncrop_keypoints(via_crop, boxes, 64), direct, atol=1e-9)
    # numpy, single sample
    Kn, bn = K[0].numpy(), boxes[0].numpy()
    assert np.allclose(crop_intrinsics(Kn, bn, 64), crop_intrinsics(K, boxes, 64)[0].numpy())


@pytest.mark.parametrize("box,size", [
    ((40.0, 30.0, 100.0), 64),     # downscale < 2x: plain bilinear
    ((-30.0, -20.0, 300.0), 64),   # downscale > 2x (block average) and partly outside the image
    ((100.0, 80.0, 32.0), 64),     # upscale
    ((17.3, 9.6, 150.7), 48),      # fractional box
])
def test_crop_image_puts_a_bright_pixel_at_its_keypoint(box, size):
    H, W = 240, 320
    rng = np.random.default_rng(1)
    for _ in range(3):
        x0, y0, side = box
        # a pixel well inside both the image and the box
        X = int(rng.integers(max(2, int(x0) + 3), min(W - 2, int(x0 + side) - 3)))
        Y = int(rng.integers(max(2, int(y0) + 3), min(H - 2, int(y0 + side) - 3)))
        img = torch.zeros(3, H, W, dtype=torch.uint8)
        img[:, Y, X] = 255
        crop = crop_image(img, box, size)
        assert crop.shape == (3, size, size) and crop.dtype == torch.uint8
        flat = crop.float().sum(0)
        peak = divmod(int(flat.argmax()), size)
        expect = crop_keypoints(np.array([[X, Y]], dtype=float), np.array(box), size)[0]
        assert flat.max() > 0
        assert abs(peak[1] - expect[0]) <= 1.0 and abs(peak[0] - expect[1]) <= 1.0


def test_crop_image_pads_with_zeros_outside_the_image():
    img = torch.full((3, 50, 50), 200, dtype=torch.uint8)
    crop = crop_image(img, (-50.0, 0.0, 100.0), 20)  # left half of the box is outside
    assert crop[:, :, :8].max() == 0  # left of the image
    assert crop[:, 12:, :].max() == 0  # below it
    assert crop[:, :8, 12:].min() >= 199


def test_flip_crop_keeps_projection_consistent():
    K = np.array([[300.0, 0.0, 20.0], [0.0, 300.0, 40.0], [0.0, 0.0, 1.0]])
    X = np.array([[0.01, 0.02, 0.5], [-0.03, 0.01, 0.6]])
    kp = project(X, K)
    img = torch.arange(3 * 64 * 64, dtype=torch.int64).remainder(256).to(torch.uint8).view(3, 64, 64)
    fimg, fkp, fX, fK = flip_crop(img, kp, X, K, 64)
    assert np.allclose(project(fX, fK), fkp)
    assert np.allclose(fkp[:, 0], 63 - kp[:, 0])
    assert torch.equal(fimg[:, :, 0], img[:, :, 63])


# ----------------------------------------------------------------------------- writer/reader


def _hand(rng, centre=(100.0, 90.0), spread=30.0):
    kp = np.asarray(centre) + rng.uniform(-spread, spread, size=(21, 2))
    return kp


def _image_with_dots(kp, H=200, W=240):
    img = torch.zeros(3, H, W, dtype=torch.uint8)
    for x, y in np.round(kp).astype(int):
        img[:, max(0, y - 1):y + 2, max(0, x - 1):x + 2] = 255
    return img


def _write(tmp_path, n_train=4, n_test=2, finish=True, **kw):
    rng = np.random.default_rng(0)
    w = PreparedWriter(tmp_path, "toy", "hand21", crop_size=64, **kw)
    K = np.array([[400.0, 0.0, 120.0], [0.0, 400.0, 100.0], [0.0, 0.0, 1.0]])
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(n):
            X = np.concatenate([rng.uniform(-0.03, 0.03, (21, 2)), rng.uniform(0.45, 0.55, (21, 1))], 1)
            kp = project(X, K)
            vis = np.ones(21, bool)
            vis[3] = False
            w.add(split, _image_with_dots(kp), kp, vis, keypoints3d=X, intrinsics_full=K,
                  subject=0, sequence=i // 2, frame=i % 2, view=0, source_image=f"raw/{split}{i}.png")
    if finish:
        w.finish({"note": "toy"})
    return w


def test_round_trip_through_keypoint_dataset(tmp_path):
    _write(tmp_path)
    meta = json.loads((prepared_dir(tmp_path, "toy") / "meta.json").read_text())
    assert meta["complete"] is True and meta["splits"] == {"train": 4, "test": 2}
    assert meta["format"] == 1 and meta["skeleton"] == "hand21" and meta["source"] == {"note": "toy"}
    sp = load_prepared(tmp_path, "toy", "train")
    assert len(sp) == 4 and sp.domain == "real" and sp.task == "toy" and sp.split == "train"
    assert sp.images.shape == (4, 3, 64, 64) and sp.images.dim() == 4 and sp.images.dtype == torch.uint8
    assert sp.keypoints.shape == (4, 21, 2) and sp.visible.dtype == torch.bool
    assert not bool(sp.visible[:, 3].any()) and bool(sp.visible[:, 0].all())
    assert sp.names[1] == "raw/train1.png" and sp.source_images[1] == "raw/train1.png"
    # 3D and crop intrinsics project onto the crop keypoints
    reproj = torch.stack([project(sp.keypoints3d[i].double(), sp.intrinsics[i].double()) for i in range(4)])
    assert torch.allclose(reproj, sp.keypoints.double(), atol=1e-3)
    # the crop shows the dots where the keypoints are
    img = sp.images[torch.tensor([2])]
    assert img.shape == (1, 3, 64, 64)
    x, y = sp.keypoints[2, 0].round().long().tolist()
    assert img[0, :, y, x].float().mean() > 100
    # through KeypointDataset: the heatmap peak sits at the keypoint
    ds = KeypointDataset(sp, HAND21, TargetConfig(heatmap_size=16, sigma=1.0, label="visible"))
    batch = ds.get_batch(torch.tensor([0, 1]))
    hm = batch["heatmaps"]
    assert hm.shape == (2, 21, 16, 16)
    assert float(batch["weights"].flatten()[3]) == 0.0  # invisible joint 3 of sample 0
    peak = divmod(int(hm[1, 0].argmax()), 16)
    kp = sp.keypoints[1, 0] / 4.0
    assert abs(peak[1] - kp[0]) <= 1 and abs(peak[0] - kp[1]) <= 1
    assert len(ds) == 4


def test_pairs_temporal_and_multiview(tmp_path):
    w = PreparedWriter(tmp_path, "mv", "hand21", crop_size=32)
    kp = _hand(np.random.default_rng(0))
    img = _image_with_dots(kp)
    layout = [  # (sequence, frame, view)
        (0, 0, 0), (0, 0, 1), (0, 1, 0), (0, 1, 1), (0, 5, 0), (1, 0, 0), (-1, -1, -1),
    ]
    for s, f, v in layout:
        w.add("test", img, kp, np.ones(21, bool), sequence=s, frame=f, view=v, subject=0,
              image_size=(240, 200))
    w.finish({})
    sp = load_prepared(tmp_path, "mv", "test")
    got = {tuple(p) for p in sp.pairs(max_gap=1).tolist()}
    expected = {(0, 2), (2, 0), (2, 4), (4, 2), (1, 3), (3, 1),  # view 0 frames 0,1,5 / view 1 frames 0,1
                (0, 1), (1, 0), (2, 3), (3, 2)}  # other views of one instant
    assert got == expected
    got2 = {tuple(p) for p in sp.pairs(max_gap=2).tolist()}
    assert got2 == expected | {(0, 4), (4, 0)}


def test_missing_folder_names_the_script(tmp_path):
    with pytest.raises(DataError, match="prepared nothing not found") as e:
        load_prepared(tmp_path, "nothing", "train")
    assert "python -m data_scripts.nothing --data-dir" in e.value.fix
    rep = check_prepared(tmp_path, "nothing")
    assert rep["present"] is False and rep["complete"] is False and "data_scripts" in rep["problem"]


def test_interrupted_prepare_is_refused_then_resumed(tmp_path):
    w = _write(tmp_path, finish=False)
    assert w.written == 6
    with pytest.raises(DataError, match="interrupted") as e:
        load_prepared(tmp_path, "toy", "train")
    assert "data_scripts.toy" in e.value.fix and "resumes" in e.value.fix
    rep = check_prepared(tmp_path, "toy")
    assert rep["present"] and not rep["complete"] and "interrupted" in rep["problem"]
    # the next run finds the crops on disk and does not decode or write them again
    w2 = PreparedWriter(tmp_path, "toy", "hand21", crop_size=64)
    assert w2.has("train", 0) and not w2.has("train", 4)

    def never():
        raise AssertionError("decoded an image whose crop exists")

    rng = np.random.default_rng(0)
    K = np.array([[400.0, 0.0, 120.0], [0.0, 400.0, 100.0], [0.0, 0.0, 1.0]])
    decoded = []
    for split, n in (("train", 4), ("test", 2)):
        for i in range(n):
            X = np.concatenate([rng.uniform(-0.03, 0.03, (21, 2)), rng.uniform(0.45, 0.55, (21, 1))], 1)
            kp = project(X, K)
            # test sample 1 now comes from another source image: its old crop must not be reused
            src = f"raw/{split}{i}.png" if (split, i) != ("test", 1) else "raw/other.png"
            vis = np.ones(21, bool)
            vis[3] = False
            load = never if src != "raw/other.png" else (lambda kp=kp: decoded.append(1) or _image_with_dots(kp))
            w2.add(split, load, kp, vis, keypoints3d=X, intrinsics_full=K, source_image=src,
                   image_size=(240, 200))
    w2.finish({})
    assert w2.written == 1 and w2.reused == 5 and decoded == [1]
    assert len(load_prepared(tmp_path, "toy", "test")) == 2
    assert check_prepared(tmp_path, "toy")["splits"] == {"train": 4, "test": 2}


def test_force_rewrites_and_drops_stale_crops(tmp_path):
    _write(tmp_path, n_train=4)
    _write(tmp_path, n_train=2, overwrite=True)
    files = sorted(p.name for p in (prepared_dir(tmp_path, "toy") / "images" / "train").iterdir())
    assert files == ["0000000.jpg", "0000001.jpg"]
    assert len(load_prepared(tmp_path, "toy", "train")) == 2


def test_truncated_annotations_are_refused(tmp_path):
    _write(tmp_path)
    path = prepared_dir(tmp_path, "toy") / "annotations.npz"
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="annotations.npz could not be read") as e:
        load_prepared(tmp_path, "toy", "train")
    assert "--force" in e.value.fix
    assert check_prepared(tmp_path, "toy")["complete"] is False


def test_wrong_array_shape_names_the_array(tmp_path):
    _write(tmp_path)
    path = prepared_dir(tmp_path, "toy") / "annotations.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["keypoints2d"] = arrays["keypoints2d"][:, :20]
    np.savez(path, **arrays)
    with pytest.raises(DataError, match="'keypoints2d' has shape"):
        load_prepared(tmp_path, "toy", "train")


def test_bad_meta_and_unknown_split(tmp_path):
    _write(tmp_path)
    meta_path = prepared_dir(tmp_path, "toy") / "meta.json"
    meta = json.loads(meta_path.read_text())
    with pytest.raises(DataError, match="no split 'val'"):
        load_prepared(tmp_path, "toy", "val")
    meta_path.write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(DataError, match="format 99"):
        load_prepared(tmp_path, "toy", "train")
    meta_path.write_text(json.dumps(meta)[:30])
    with pytest.raises(DataError, match="meta.json could not be read"):
        load_prepared(tmp_path, "toy", "train")


def test_image_that_fails_to_decode(tmp_path):
    _write(tmp_path)
    bad = prepared_dir(tmp_path, "toy") / "images" / "train" / "0000001.jpg"
    bad.write_bytes(bad.read_bytes()[:40])
    sp = load_prepared(tmp_path, "toy", "train")
    assert sp.images[0].shape == (3, 64, 64)
    with pytest.raises(DataError, match="0000001.jpg could not be read") as e:
        sp.images[torch.tensor([0, 1])]
    assert "--force" in e.value.fix


def test_writer_rejects_a_wrong_joint_count(tmp_path):
    w = PreparedWriter(tmp_path, "toy", "hand21", crop_size=32)
    with pytest.raises(DataError, match="21 joints"):
        w.add("train", torch.zeros(3, 10, 10, dtype=torch.uint8), np.zeros((16, 2)), np.ones(16, bool))


def test_disk_full_names_the_file_and_a_rerun_resumes(tmp_path, monkeypatch):
    """ENOSPC while writing a crop: a DataError naming the file, the disk and the command,
    no half-written file, the folder left incomplete, and the next run picks up."""
    import errno

    from srpose_lib.data import prepared as P

    real = P._write_bytes_atomic
    calls = []

    def full_after_three(path, data):
        calls.append(path)
        if len(calls) == 4:
            with P._atomic_file(path, "wb") as handle:  # the temp file must not survive
                handle.write(data[:10])
                raise OSError(errno.ENOSPC, "No space left on device")
        real(path, data)

    monkeypatch.setattr(P, "_write_bytes_atomic", full_after_three)
    with pytest.raises(DataError, match="no space left") as e:
        _write(tmp_path)
    assert str(calls[3]) in e.value.message and "data_scripts.toy" in e.value.fix and "resumes" in e.value.fix
    folder = prepared_dir(tmp_path, "toy")
    assert not list(folder.rglob("*.tmp")) and not calls[3].exists()
    assert check_prepared(tmp_path, "toy")["complete"] is False
    monkeypatch.setattr(P, "_write_bytes_atomic", real)
    w = _write(tmp_path)
    assert w.reused == 3 and w.written == 3
    assert len(load_prepared(tmp_path, "toy", "train")) == 4


# ----------------------------------------------------------------------------- no input may destroy data


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kw", [{"crop_size": 0}, {"crop_size": -4}, {"crop_size": 2.5}, {"crop_scale": 0.0},
                                {"crop_scale": float("nan")}, {"jpeg_quality": 0}])
def test_bad_writer_settings_are_refused_before_the_folder_is_touched(tmp_path, kw):
    _write(tmp_path)
    folder = prepared_dir(tmp_path, "toy")
    before = _snapshot(folder)
    with pytest.raises(DataError, match=f"{next(iter(kw))} must be a number") as e:
        PreparedWriter(tmp_path, "toy", "hand21", overwrite=True, **{"crop_size": 64, **kw})
    assert e.value.fix.startswith("use e.g.")
    assert _snapshot(folder) == before and len(load_prepared(tmp_path, "toy", "train")) == 4


def test_a_new_build_goes_beside_the_finished_folder_until_finish(tmp_path):
    from srpose_lib.data.prepared import staging_dir

    _write(tmp_path)
    folder = prepared_dir(tmp_path, "toy")
    before = _snapshot(folder)
    w = _write(tmp_path, n_train=2, finish=False, overwrite=True)
    assert w.staged and w.path == staging_dir(tmp_path, "toy")
    assert _snapshot(folder) == before and len(load_prepared(tmp_path, "toy", "train")) == 4
    w.finish({})
    assert not staging_dir(tmp_path, "toy").exists() and len(load_prepared(tmp_path, "toy", "train")) == 2


def test_a_swap_cut_between_its_renames_is_completed(tmp_path):
    """A crash after the finished folder was moved aside and before the new one took its
    name: the next reader puts the complete new build (else the old folder) in place."""
    import os

    from srpose_lib.data.prepared import _old_dir, staging_dir

    _write(tmp_path)
    w = _write(tmp_path, n_train=2, finish=False, overwrite=True)
    w._finish({})  # the staged build is complete ...
    os.replace(prepared_dir(tmp_path, "toy"), _old_dir(tmp_path, "toy"))  # ... and the first rename done
    assert len(load_prepared(tmp_path, "toy", "train")) == 2
    assert not staging_dir(tmp_path, "toy").exists() and not _old_dir(tmp_path, "toy").exists()
    # only the old folder aside (the new build unfinished): it goes back
    _write(tmp_path, n_train=3, finish=False, overwrite=True)
    os.replace(prepared_dir(tmp_path, "toy"), _old_dir(tmp_path, "toy"))
    assert len(load_prepared(tmp_path, "toy", "train")) == 2


def test_writer_refuses_a_visible_joint_without_a_finite_position(tmp_path):
    rng = np.random.default_rng(0)
    kp = _hand(rng)
    kp[7, 1] = np.nan
    w = PreparedWriter(tmp_path, "toy", "hand21", crop_size=32)
    with pytest.raises(DataError, match=r"'s1': joint 7 \(index_dip\) is marked visible but its position"):
        w.add("train", _image_with_dots(np.nan_to_num(kp)), kp, np.ones(21, bool), name="s1")
    vis = np.ones(21, bool)
    vis[7] = False
    assert w.add("train", _image_with_dots(np.nan_to_num(kp)), kp, vis, name="s1") == 0  # invisible: fine


def test_load_prepared_treats_old_visible_nan_joints_as_invisible(tmp_path, capsys):
    _write(tmp_path)
    path = prepared_dir(tmp_path, "toy") / "annotations.npz"
    with np.load(path) as z:
        arrays = {k: z[k] for k in z.files}
    arrays["keypoints2d"][1, 5] = np.nan  # as a prepare before the check stored it: visible
    assert arrays["visible"][1, 5]
    np.savez(path, **arrays)
    sp = load_prepared(tmp_path, "toy", "train")
    assert not sp.visible[1, 5] and int(sp.visible.sum()) == 4 * 20 - 1
    err = capsys.readouterr().err
    assert "1 joints in 1 samples are marked visible with non-finite coordinates" in err and "--force" in err


def test_16_bit_and_pillow_only_images_decode_to_8_bit(tmp_path):
    from PIL import Image

    from srpose_lib.data.prepared import decode_image_file

    grey = (np.arange(48 * 64).reshape(48, 64) % 256).astype(np.uint16)
    Image.fromarray(grey * 257).save(tmp_path / "g16.png")
    img = decode_image_file(tmp_path / "g16.png")
    assert img.dtype == torch.uint8 and img.shape == (3, 48, 64)
    assert torch.equal(img[1], torch.from_numpy(grey.astype(np.uint8)))
    rgb = (np.arange(48 * 64 * 3).reshape(48, 64, 3) % 251).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x.bmp")  # torchvision does not read BMP; Pillow does
    assert torch.equal(decode_image_file(tmp_path / "x.bmp"), torch.from_numpy(rgb).permute(2, 0, 1))
