"""Body readers on fixtures written in each official release's on-disk format: SURREAL
(``_info.mat`` + an H.264 ``.mp4``), Human3.6M (G. Moon's ``Human36M_subject{N}_*.json`` +
images), LSP (``joints.mat`` + images) and 3DPW (a Python-2 latin1 pickle + images).

Every fixture shows one asymmetric person: the **left wrist raised** above the head, the
right arm down. Each image is black with a red dot at the joint that should land in a
known Body16 slot and green dots at the other joints, so a prepared crop shows whether that
joint landed where its keypoint says, and in the slot it should.

What "left" means per dataset (see the readers): Human3.6M, LSP and 3DPW name the person's
own left (a real camera: a person facing it shows the left wrist on the image's right).
SURREAL's camera is a reflection, so TLL's map crosses SMPL's left into Body16's right:
SMPL's L-wrist is stored as ``r_wrist``, and in the image it is where a real person's right
wrist would be."""

from __future__ import annotations

import json
import pickle
import random
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from srpose_lib.data.crops import crop_keypoints
from srpose_lib.data.prepared import load_prepared, prepared_dir
from srpose_lib.data.readers import DATASETS, human36m, lsp, pw3d, smpl, surreal, tll_split
from srpose_lib.data.real import REAL_TASKS
from srpose_lib.errors import DataError
from srpose_lib.skeletons import BODY16
from test_readers_hands import CROP, dot_image, prepare, project, red_peak

R_WRIST, L_WRIST = BODY16.index("r_wrist"), BODY16.index("l_wrist")
SMPL_L_WRIST = smpl.NAMES.index("l_wrist")


# ----------------------------------------------------------------------------- the person


def smpl24_body(t: int = 0) -> np.ndarray:
    """SMPL-24 joints in metres of a person standing upright (up = +y), facing +z, its
    left side at +x (a right-handed body: ``smpl.chirality`` > 0). The left arm is raised
    (the left wrist is the highest joint), the right arm hangs; ``t`` lifts it a little."""
    j = {
        "pelvis": (0.0, 0.95, 0.0), "l_hip": (0.09, 0.9, 0.0), "r_hip": (-0.09, 0.9, 0.0),
        "spine1": (0.0, 1.05, 0.0), "l_knee": (0.1, 0.5, 0.02), "r_knee": (-0.1, 0.5, 0.02),
        "spine2": (0.0, 1.15, 0.0), "l_ankle": (0.1, 0.08, 0.0), "r_ankle": (-0.1, 0.08, 0.0),
        "spine3": (0.0, 1.25, 0.0), "l_foot": (0.11, 0.02, 0.12), "r_foot": (-0.11, 0.02, 0.12),
        "neck": (0.0, 1.5, 0.0), "l_collar": (0.07, 1.42, 0.0), "r_collar": (-0.07, 1.42, 0.0),
        "head": (0.0, 1.65, 0.02), "l_shoulder": (0.18, 1.42, 0.0), "r_shoulder": (-0.18, 1.42, 0.0),
        "l_elbow": (0.3, 1.62, 0.0), "r_elbow": (-0.2, 1.15, 0.0), "l_wrist": (0.36, 1.85, 0.0),
        "r_wrist": (-0.22, 0.9, 0.05), "l_hand": (0.38, 1.93, 0.0), "r_hand": (-0.23, 0.82, 0.05),
    }
    out = np.array([j[n] for n in smpl.NAMES])
    out[smpl.NAMES.index("l_wrist"), 1] += 0.02 * t
    return out


# H36M-17 (Moon) joints taken from the SMPL body
H36M_FROM_SMPL = {0: "pelvis", 1: "r_hip", 2: "r_knee", 3: "r_ankle", 4: "l_hip", 5: "l_knee", 6: "l_ankle",
                  7: "spine2", 8: "neck", 11: "l_shoulder", 12: "l_elbow", 13: "l_wrist", 14: "r_shoulder",
                  15: "r_elbow", 16: "r_wrist"}
H36M_L_WRIST = 13
# LSP-14 joints taken from the SMPL body (13: head top = head)
LSP_FROM_SMPL = ("r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "r_wrist", "r_elbow", "r_shoulder",
                 "l_shoulder", "l_elbow", "l_wrist", "neck", "head")
LSP_L_WRIST = 11


def h36m17(body: np.ndarray) -> np.ndarray:
    j = np.zeros((17, 3))
    for k, name in H36M_FROM_SMPL.items():
        j[k] = body[smpl.NAMES.index(name)]
    head = body[smpl.NAMES.index("head")]
    j[9] = head + (0.0, -0.05, 0.08)  # nose
    j[10] = head + (0.0, 0.1, 0.0)  # head
    return j


def facing_camera(distance: float, height: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """A real camera (rotation with det +1) ``distance`` m in front of the person, looking
    at it: ``x_cam = R X + t``; image x grows towards the person's left."""
    R = np.diag([1.0, -1.0, -1.0])
    C = np.array([0.0, height, distance])
    return R, -R @ C


def intrinsics(f: float, W: int, H: int) -> np.ndarray:
    return np.array([[f, 0.0, W / 2], [0.0, f, H / 2], [0.0, 0.0, 1.0]])


def save_image(path: Path, size, kp: np.ndarray, red: int, radius=None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(dot_image(size, kp[red], np.delete(kp, red, 0), radius)).save(path, quality=95)


def assert_dot_at(crop: torch.Tensor, keypoint, tol: float = 1.5) -> None:
    x, y = red_peak(crop)
    assert abs(x - float(keypoint[0])) <= tol and abs(y - float(keypoint[1])) <= tol, ((x, y), keypoint)


def assert_geometry(sp, i: int, tol: float = 0.05) -> None:
    """The crop's 3D keypoints project through the crop intrinsics onto its 2D keypoints."""
    uv = project(sp.keypoints3d[i].double().numpy(), sp.intrinsics[i].double().numpy())
    assert np.allclose(uv, sp.keypoints[i].numpy(), atol=tol)


# ----------------------------------------------------------------------------- SURREAL


def _surreal_world(body: np.ndarray, shift: float) -> np.ndarray:
    """The body in SURREAL's world (up = -Y; a proper rotation), facing the camera at
    +X, ``shift`` m along Z."""
    M = np.array([[0.0, 0.0, 1.0], [0.0, -1.0, 0.0], [1.0, 0.0, 0.0]])  # det +1
    return body @ M.T + (0.0, 0.0, -1.93 + shift)


CAM_LOC = np.array([6.745622, -0.983883, -1.929299])  # the repository sample's camLoc


def _surreal_clip(T: int) -> tuple[np.ndarray, np.ndarray]:
    """joints2D (2, 24, T) (whole pixels, as SURREAL stores them) and joints3D (3, 24, T)."""
    world = np.stack([_surreal_world(smpl24_body(t), 0.03 * t) for t in range(T)])
    cam = surreal.world_to_camera(world, CAM_LOC)
    j2 = np.round(project(cam, surreal.INTRINSICS))
    return j2.transpose(2, 1, 0).astype(np.float32), world.transpose(2, 1, 0).astype(np.float32)


def write_mp4(path: Path, frames: list[np.ndarray]) -> None:
    """An H.264 video as SURREAL's (PyAV; MPEG-4 part 2 where the wheel lacks libx264)."""
    av = pytest.importorskip("av")
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=30)
        stream.width, stream.height = surreal.IMAGE_SIZE
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"} if codec == "libx264" else {}
        if codec == "mpeg4":
            stream.bit_rate = 4_000_000
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


# clips per folder: (run, sequence, clip number, frames)
SURREAL_CLIPS = {
    "train": [(0, "01_01", 1, 20), (0, "01_01", 2, 20), (1, "02_03", 1, 20), (2, "ung_104_46", 4, 20)],
    "val": [(0, "107_02", 3, 20)],
    "test": [(0, "05_01", 1, 20), (1, "05_01", 2, 20), (2, "06_02", 1, 20)],
}


def write_surreal(raw: Path, videos: bool = True, clips=SURREAL_CLIPS) -> None:
    """cmu/<split>/run<k>/<seq>/<seq>_c%04d{.mp4,_info.mat} for the clips above."""
    for split, items in clips.items():
        for run, seq, c, T in items:
            folder = raw / "cmu" / split / f"run{run}" / seq
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{seq}_c{c:04d}"
            j2, j3 = _surreal_clip(T)
            if T == 1:  # MATLAB drops a trailing singleton dimension (scipy would keep it)
                j2, j3 = j2[..., 0], j3[..., 0]
            info = {"joints2D": j2, "joints3D": j3, "camLoc": CAM_LOC.reshape(3, 1).astype(np.float32),
                    "sequence": name, "clipNo": np.uint8(c), "source": "cmu", "stride": np.uint8(50),
                    "camDist": np.float32(7.69), "gender": np.ones((T, 1), np.uint8),
                    "zrot": np.zeros((T, 1), np.float32), "pose": np.zeros((72, T), np.float32),
                    "shape": np.zeros((10, T), np.float32)}
            scipy.io.savemat(folder / f"{name}_info.mat", info)
            if videos:
                kp = j2.reshape(2, 24, T).transpose(2, 1, 0)
                write_mp4(folder / f"{name}.mp4",
                          [dot_image(surreal.IMAGE_SIZE, kp[t, SMPL_L_WRIST],
                                     np.delete(kp[t], SMPL_L_WRIST, 0), radius=2) for t in range(T)])


def test_surreal_cross_camera_and_split(tmp_path):
    write_surreal(tmp_path, videos=False)
    splits = surreal.read(tmp_path)
    # per folder, every 10th frame: train 4 clips x 2, val 2, test 3 x 2; TLL's rule per folder
    canonical = {k: [f"cmu/{k}/run{r}/{s}/{s}_c{c:04d}.mp4#{f:04d}" for r, s, c, T in v for f in range(0, T, 10)]
                 for k, v in SURREAL_CLIPS.items()}
    train, _ = tll_split(8)
    _, test = tll_split(6)
    assert [s.name for s in splits["train"]] == [canonical["train"][i] for i in sorted(train)]
    assert [s.name for s in splits["test"]] == [canonical["test"][i] for i in sorted(test)]
    assert [s.name for s in splits["val"]] == canonical["val"]
    assert (len(splits["train"]), len(splits["val"]), len(splits["test"])) == (7, 2, 1)
    s = splits["train"][0]
    assert s.visible.all() and s.image_size == (320, 240) and np.allclose(s.intrinsics, surreal.INTRINSICS)
    assert s.image == s.name.split("#")[0] and (s.subject, s.view) == (-1, -1)
    assert sorted({(x.sequence, x.frame) for x in splits["val"]}) == [(0, 0), (0, 10)]
    # TLL's cross: SMPL's L-wrist (the raised one) is stored as Body16's r_wrist
    info = tmp_path / "cmu" / "train" / "run0" / "01_01" / "01_01_c0001_info.mat"
    j2, j3, cam_loc = surreal.load_clip(info)
    first = next(x for x in splits["train"] if x.image.endswith("01_01_c0001.mp4") and x.frame == 0)
    assert np.array_equal(first.keypoints2d[R_WRIST], j2[0, SMPL_L_WRIST])
    assert int(first.keypoints2d[:, 1].argmin()) == R_WRIST  # the highest joint of the image
    # ...and SURREAL's camera mirrors: the body is right-handed in the world, left-handed
    # in camera coordinates, so its L-wrist looks like a right wrist in the image
    cam = surreal.world_to_camera(j3, cam_loc)
    assert (smpl.chirality(j3) > 0).all() and (smpl.chirality(cam) < 0).all()
    assert np.linalg.det(surreal.WORLD_TO_CAMERA) == pytest.approx(-1.0)
    # 3D = camera coordinates; the released whole-pixel joints2D are within 0.5 px of them
    assert np.abs(project(first.keypoints3d, surreal.INTRINSICS) - first.keypoints2d).max() <= 0.5 + 1e-4
    assert np.allclose(first.keypoints3d, smpl.to_body16(cam[0], crossed=True))


def test_surreal_one_frame_clip_every_and_the_download_scripts_layout(tmp_path):
    clips = {"train": [(0, "01_01", 1, 1)], "val": [(0, "02_01", 1, 7)], "test": [(0, "03_01", 1, 1)]}
    root = tmp_path / "SURREAL" / "data"  # where download_surreal.sh's wget -m puts cmu/
    write_surreal(root, videos=False, clips=clips)
    assert surreal.find_root(tmp_path) == root
    mat = scipy.io.loadmat(root / "cmu" / "train" / "run0" / "01_01" / "01_01_c0001_info.mat")
    assert mat["joints2D"].shape == (2, 24)  # MATLAB's format drops the trailing 1
    splits = surreal.read(tmp_path, every=3)
    assert [s.frame for s in splits["val"]] == [0, 3, 6] and len(splits["train"]) == 1


def test_surreal_prepared_round_trip_and_pairs(tmp_path):
    write_surreal(tmp_path / "raw" / "surreal")
    assert prepare("surreal", tmp_path, "--every", "5") == 0
    sp = load_prepared(tmp_path, "surreal", "train")
    meta = json.loads((prepared_dir(tmp_path, "surreal") / "meta.json").read_text())
    n = 4 * 4  # 4 clips x frames 0, 5, 10, 15
    assert meta["splits"] == {"train": n - int(0.2 * n), "val": 4, "test": int(0.2 * 12)}
    for i in (0, len(sp) - 1):
        assert_dot_at(sp.images[i], sp.keypoints[i, R_WRIST])  # the red L-wrist is in the r_wrist slot
        assert_geometry(sp, i, tol=0.5 * CROP / float(sp.boxes[i, 2]) + 1e-3)
    assert bool(sp.visible.all()) and not bool(sp.flipped.any())
    # the 1.5x box of the 16 keypoints, inside the 320 x 240 frame
    x0, y0, side = sp.boxes[0].tolist()
    assert x0 >= 0 and y0 >= 0 and x0 + side <= 320 and y0 + side <= 240
    # consecutive kept frames of a clip are pairs, never across clips
    pairs = sp.pairs(max_gap=1)
    assert len(pairs) > 0 and bool((sp.sequence[pairs[:, 0]] == sp.sequence[pairs[:, 1]]).all())
    assert bool(((sp.frame[pairs[:, 0]] - sp.frame[pairs[:, 1]]).abs() == 5).any())


def test_surreal_bad_video_stops_the_prepare_and_a_rerun_resumes(tmp_path, capsys):
    raw = tmp_path / "raw" / "surreal"
    write_surreal(raw)
    video = raw / "cmu" / "train" / "run1" / "02_03" / "02_03_c0001.mp4"
    good = video.read_bytes()
    video.write_bytes(good[: len(good) // 3])
    assert prepare("surreal", tmp_path) == 2
    err = capsys.readouterr().err
    assert "02_03_c0001.mp4" in err and ("could not be decoded" in err or "has no frames" in err
                                          or "frames but its" in err) and "fix:" in err
    assert not (prepared_dir(tmp_path, "surreal") / "meta.json").exists()
    with pytest.raises(DataError, match="interrupted"):
        load_prepared(tmp_path, "surreal", "train")
    video.write_bytes(good)
    assert prepare("surreal", tmp_path) == 0
    meta = json.loads((prepared_dir(tmp_path, "surreal") / "meta.json").read_text())
    assert meta["source"]["crops_reused"] >= 2 and meta["splits"] == {"train": 7, "val": 2, "test": 1}


def test_surreal_interrupted_prepare_decodes_only_what_is_left(tmp_path, monkeypatch, capsys):
    write_surreal(tmp_path / "raw" / "surreal")
    real = surreal.decode_video
    calls = []

    def flaky(path, fix=surreal.FIX):
        calls.append(Path(path).name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(path, fix)

    monkeypatch.setattr(surreal, "decode_video", flaky)
    assert prepare("surreal", tmp_path) == 130
    assert "data_scripts.surreal" in capsys.readouterr().err
    assert len(calls) == 3
    assert prepare("surreal", tmp_path) == 0
    # each video is decoded once (samples come clip by clip); the rerun skips the two clips
    # whose crops are on disk and decodes the rest, the interrupted one included
    videos = [Path(s.image).name for split in surreal.read(tmp_path / "raw" / "surreal").values() for s in split]
    runs = [v for i, v in enumerate(videos) if i == 0 or videos[i - 1] != v]
    assert calls[3:] == runs[2:] and calls[2] == runs[2]


def test_surreal_bad_files(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="SURREAL not found") as e:
        surreal.read(tmp_path / "raw" / "surreal")
    assert "data_scripts.surreal --check" in e.value.fix
    write_surreal(tmp_path, videos=False)
    info = tmp_path / "cmu" / "val" / "run0" / "107_02" / "107_02_c0003_info.mat"
    mat = scipy.io.loadmat(info)
    scipy.io.savemat(info, {**{k: v for k, v in mat.items() if not k.startswith("__")},
                            "joints2D": mat["joints2D"][:, :23]})
    with pytest.raises(DataError, match=r"joints2D has shape \(2, 23, 20\), expected \(2, 24, N\)"):
        surreal.read(tmp_path)
    info.write_bytes(info.read_bytes()[:300])
    with pytest.raises(DataError, match="107_02_c0003_info.mat could not be read"):
        surreal.read(tmp_path)
    # verify: a clip without its video is missing
    report = surreal.verify(tmp_path)
    assert any(m.endswith("01_01_c0001.mp4") for m in report["missing"])
    # no PyAV: a clear error before any annotation is read
    monkeypatch.setitem(__import__("sys").modules, "av", None)
    with pytest.raises(DataError, match="PyAV") as e:
        surreal.require_video_backend()
    assert e.value.fix == "pip install av==18.1.0"


# ----------------------------------------------------------------------------- Human3.6M

H36M_SIZE = (96, 96)
H36M_FRAMES = 7  # per camera: the list of 2 cameras x 7 frames keeps i = 0, 5, 10


def write_human36m(raw: Path, subjects=(1, 5, 6, 7, 8, 9, 11)) -> dict:
    """annotations/Human36M_subject{N}_{data,camera,joint_3d}.json + images/ (G. Moon's
    format) for one action (2), one subaction (1), two cameras and 7 frames per subject."""
    K = intrinsics(150.0, *H36M_SIZE)
    R, t = facing_camera(4.0)
    rot = np.array([[np.cos(0.3), 0, np.sin(0.3)], [0, 1, 0], [-np.sin(0.3), 0, np.cos(0.3)]])
    cams = {1: (R, t), 2: (R @ rot, t)}  # camera 2 turned a little about the vertical axis
    (raw / "annotations").mkdir(parents=True, exist_ok=True)
    out = {"K": K, "cams": cams, "world": {}}
    for subj in subjects:
        images, joints = [], {"2": {"1": {}}}
        for f in range(H36M_FRAMES):
            world = h36m17(smpl24_body(f)) * 1000.0  # mm
            joints["2"]["1"][str(f)] = world.tolist()
            out["world"][(subj, f)] = world
        for c, (Rc, tc) in cams.items():
            for f in range(H36M_FRAMES):
                video = f"s_{subj:02d}_act_02_subact_01_ca_{c:02d}"
                name = f"{video}/{video}_{f + 1:06d}.jpg"
                images.append({"id": len(images), "file_name": name, "width": H36M_SIZE[0],
                               "height": H36M_SIZE[1], "subject": subj, "action_name": "Directions",
                               "action_idx": 2, "subaction_idx": 1, "cam_idx": c, "frame_idx": f})
                kp = project((out["world"][(subj, f)] / 1000.0) @ Rc.T + tc, K)
                save_image(raw / "images" / name, H36M_SIZE, kp, H36M_L_WRIST)
        cameras = {str(c): {"R": Rc.tolist(), "t": (tc * 1000.0).tolist(), "f": [K[0, 0], K[1, 1]],
                            "c": [K[0, 2], K[1, 2]]} for c, (Rc, tc) in cams.items()}
        prefix = raw / "annotations" / f"Human36M_subject{subj}"
        Path(f"{prefix}_data.json").write_text(json.dumps({"images": images, "annotations": []}))
        Path(f"{prefix}_camera.json").write_text(json.dumps(cameras))
        Path(f"{prefix}_joint_3d.json").write_text(json.dumps(joints))
    return out


def test_human36m_every_5th_remap_projection_and_split(tmp_path):
    fx = write_human36m(tmp_path)
    splits = human36m.read(tmp_path)
    # TLL's every-5th rule is on the list index: camera 1 frames 0 and 5, camera 2 frame 3
    kept = [(s.view, s.frame) for s in splits["train"] if s.subject == 1]
    assert kept == [(1, 0), (1, 5), (2, 3)]
    assert len(splits["train"]) == 5 * 3 and {s.subject for s in splits["train"]} == {1, 5, 6, 7, 8}
    assert len(splits["test"]) == 6 and {s.subject for s in splits["test"]} == {9, 11}
    s = next(s for s in splits["train"] if s.subject == 5 and s.view == 1 and s.frame == 5)
    world = fx["world"][(5, 5)] / 1000.0
    R, t = fx["cams"][1]
    cam17 = world @ R.T + t
    assert np.allclose(s.keypoints3d, human36m.to_body16(cam17)) and np.allclose(s.intrinsics, fx["K"])
    assert np.allclose(s.keypoints2d, project(s.keypoints3d, fx["K"]))
    # remap: H36M's L-wrist is Body16's l_wrist; a real camera facing the person shows it
    # raised (the highest joint) on the image's right
    assert np.allclose(s.keypoints3d[L_WRIST], cam17[H36M_L_WRIST])
    assert int(s.keypoints2d[:, 1].argmin()) == L_WRIST and s.keypoints2d[L_WRIST, 0] > s.keypoints2d[R_WRIST, 0]
    th, rs, ls = (BODY16.index(n) for n in ("thorax", "r_shoulder", "l_shoulder"))
    assert np.allclose(s.keypoints3d[th], (s.keypoints3d[rs] + s.keypoints3d[ls]) / 2)
    assert s.visible.all() and s.sequence == 201 and s.image_size == H36M_SIZE
    assert s.image.startswith("images/s_05_act_02_subact_01_ca_01/")


def test_human36m_test_split_is_drawn_without_replacement(tmp_path):
    write_human36m(tmp_path)
    full = human36m.read(tmp_path, test_size=0)["test"]
    some = human36m.read(tmp_path, test_size=4)["test"]
    names = [s.name for s in full]
    keep = sorted(random.Random(42).sample(range(len(full)), 4))
    assert [s.name for s in some] == [names[i] for i in keep] and len({s.name for s in some}) == 4
    assert len(human36m.read(tmp_path, test_size=3200)["test"]) == len(full) == 6  # min(3200, all)


def test_human36m_prepared_round_trip_and_pairs(tmp_path):
    write_human36m(tmp_path / "raw" / "human36m")
    assert prepare("human36m", tmp_path) == 0
    sp = load_prepared(tmp_path, "human36m", "train")
    assert len(sp) == 15 and len(load_prepared(tmp_path, "human36m", "test")) == 6
    for i in range(3):
        assert_dot_at(sp.images[i], sp.keypoints[i, L_WRIST])
        assert_geometry(sp, i)
    raw_kp = project(sp.keypoints3d[0].double().numpy(), intrinsics(150.0, *H36M_SIZE))
    assert np.allclose(crop_keypoints(raw_kp, sp.boxes[0].double().numpy(), CROP), sp.keypoints[0].numpy(), atol=1e-3)
    assert sp.subject[:3].tolist() == [1, 1, 1] and sp.view[:3].tolist() == [1, 1, 2]
    pairs = sp.pairs(max_gap=1)  # camera 1's frames 0 and 5 of each subject, both orders
    assert len(pairs) == 5 * 2 and bool((sp.view[pairs[:, 0]] == 1).all())


def test_human36m_bad_files(tmp_path, capsys):
    with pytest.raises(DataError, match="Human3.6M not found") as e:
        human36m.read(tmp_path / "raw" / "human36m")
    assert "data_scripts.human36m --check" in e.value.fix
    raw = tmp_path / "raw" / "human36m"
    write_human36m(raw)
    joints = raw / "annotations" / "Human36M_subject9_joint_3d.json"
    data = json.loads(joints.read_text())
    data["2"]["1"]["5"] = data["2"]["1"]["5"][:16]
    joints.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"subject9_joint_3d.json: action 2, subaction 1, frame 5 has shape "
                                        r"\(16, 3\), expected \(17, 3\)"):
        human36m.read(raw)
    joints.write_text(joints.read_text()[:-30])
    with pytest.raises(DataError, match="Human36M_subject9_joint_3d.json could not be read"):
        human36m.read(raw)
    (raw / "annotations" / "Human36M_subject11_camera.json").unlink()
    assert prepare("human36m", tmp_path) == 2
    err = capsys.readouterr().err
    assert "incomplete" in err and "Human36M_subject11_camera.json" in err
    assert not prepared_dir(tmp_path, "human36m").exists()


def test_human36m_nan_joint_is_never_visible(tmp_path, capsys):
    raw = tmp_path / "raw" / "human36m"
    write_human36m(raw)
    joints = raw / "annotations" / "Human36M_subject1_joint_3d.json"
    data = json.loads(joints.read_text())
    data["2"]["1"]["0"][16][2] = float("nan")  # frame 0's R-wrist (H36M-17 joint 16)
    joints.write_text(json.dumps(data))
    assert prepare("human36m", tmp_path, "--non-finite", "error") == 2
    err = capsys.readouterr().err
    assert f"in {joints}" in err and "train sample 'images/s_01_act_02_subact_01_ca_01/" in err
    assert "joint 10 (r_wrist)" in err and "(1 such joints in 1 samples)" in err
    assert prepare("human36m", tmp_path) == 0
    assert "1 visible joints in 1 samples have a non-finite position" in capsys.readouterr().err
    sp = load_prepared(tmp_path, "human36m", "train")
    assert not sp.visible[0, BODY16.index("r_wrist")] and int(sp.visible.sum()) == 15 * 16 - 1
    with pytest.raises(DataError, match="every must be a whole number >= 1"):
        human36m.read(raw, every=-3)


# ----------------------------------------------------------------------------- LSP

LSP_SIZES = [(80, 120), (120, 80), (90, 90), (70, 110), (100, 100)]


def write_lsp(raw: Path, sizes=LSP_SIZES) -> np.ndarray:
    """joints.mat ('joints' 3 x 14 x N: x, y, flag) + images/im%04d.jpg (W x H as given)."""
    joints = np.zeros((3, 14, len(sizes)))
    for i, (W, H) in enumerate(sizes):
        R, t = facing_camera(4.5)
        body = smpl24_body(i)
        X = np.array([body[smpl.NAMES.index(n)] for n in LSP_FROM_SMPL]) @ R.T + t
        kp = project(X, intrinsics(0.5 * min(W, H) * 2.2, W, H))
        joints[:2, :, i] = kp.T
        joints[2, :, i] = 0.0
        joints[2, i % 14, i] = 1.0  # one flagged joint per image (flag 1 = occluded for TLL)
        save_image(raw / lsp.image_name(i), (W, H), kp, LSP_L_WRIST)
    scipy.io.savemat(raw / "joints.mat", {"joints": joints})
    return joints.transpose(2, 1, 0)


def test_lsp_remap_visibility_and_split(tmp_path):
    joints = write_lsp(tmp_path)
    splits = lsp.read(tmp_path)
    names = [lsp.image_name(i) for i in range(5)]
    assert [s.name for s in splits["train"]] == [s.name for s in splits["test"]] == names
    s = splits["train"][0]
    assert np.allclose(s.keypoints2d[L_WRIST], joints[0, LSP_L_WRIST, :2])  # LSP's L-wrist -> l_wrist
    assert s.keypoints2d[L_WRIST, 0] > s.keypoints2d[R_WRIST, 0]  # the person's left: the image's right
    assert np.allclose(s.keypoints2d[BODY16.index("head_top")], joints[0, 13, :2])
    pelvis, thorax = BODY16.index("pelvis"), BODY16.index("thorax")
    # TLL: visible = 1 - flag; pelvis and thorax (fake: the head top) never visible
    assert not s.visible[[pelvis, thorax]].any() and s.visible.sum() == 13  # joint 0 (r_ankle) flagged
    assert not s.visible[BODY16.index("r_ankle")]
    flag = lsp.read(tmp_path, visibility="flag")["train"][0]
    assert flag.visible.tolist() == [True] + [False] * 15  # only the flagged r_ankle
    assert (s.subject, s.sequence, s.frame, s.view, s.box) == (-1, -1, -1, -1, "full")
    assert lsp.read(tmp_path, crop="box")["train"][0].box is None
    assert DATASETS["lsp"]["expected_counts"] == {"train": 2000, "test": 2000}


def test_lsp_prepared_crops_are_tlls_resize_pad(tmp_path):
    write_lsp(tmp_path / "raw" / "lsp")
    assert prepare("lsp", tmp_path) == 0
    sp = load_prepared(tmp_path, "lsp", "test")
    assert len(sp) == 5 and len(load_prepared(tmp_path, "lsp", "train")) == 5
    joints = lsp.load_joints(tmp_path / "raw" / "lsp")[:, list(lsp.TO_BODY16), :2]
    for i, (W, H) in enumerate(LSP_SIZES):
        side = max(W, H)
        assert sp.boxes[i].tolist() == [(W - side) / 2, (H - side) / 2, side]
        # ResizePad: scale the longer side to the crop, pad the shorter one evenly
        s = CROP / side
        resize_pad = joints[i] * s + [(CROP - W * s) / 2, (CROP - H * s) / 2]
        assert np.abs(sp.keypoints[i].numpy() - resize_pad).max() < 0.5
        assert_dot_at(sp.images[i], sp.keypoints[i, L_WRIST])
    assert torch.isnan(sp.keypoints3d).all() and (sp.sequence == -1).all() and len(sp.pairs()) == 0
    # the padding is black: the first row of a landscape image's crop
    assert int(sp.images[1][:, 0].max()) < 20
    assert prepare("lsp", tmp_path, "--crop", "box", "--force") == 0
    box = load_prepared(tmp_path, "lsp", "train")
    assert box.boxes[0, 2] < max(LSP_SIZES[0]) and box.keypoints[0, :, 0].min() >= 0


def test_lsp_download_unpacks_the_official_layout(tmp_path, monkeypatch, capsys):
    src = tmp_path / "src"
    write_lsp(src)
    archive = tmp_path / "lsp_dataset.zip"
    with zipfile.ZipFile(archive, "w") as zf:  # joints.mat and images/ at the top, as the release
        for p in sorted(src.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(src).as_posix())
    monkeypatch.setitem(DATASETS["lsp"], "downloads", [
        {"url": archive.as_uri(), "filename": "lsp_dataset.zip", "size": None, "md5": None, "sha256": None}])
    data = tmp_path / "data"
    assert prepare("lsp", data, "--download") == 0
    assert "no published checksum" in capsys.readouterr().out
    assert (data / "raw" / "lsp" / "joints.mat").is_file() and len(load_prepared(data, "lsp", "train")) == 5


def test_lsp_bad_files(tmp_path, capsys):
    with pytest.raises(DataError, match="LSP not found"):
        lsp.read(tmp_path / "raw" / "lsp")
    raw = tmp_path / "raw" / "lsp"
    write_lsp(raw)
    joints = scipy.io.loadmat(raw / "joints.mat")["joints"]
    scipy.io.savemat(raw / "joints.mat", {"joints": joints[:, :13]})
    with pytest.raises(DataError, match=r"'joints' has shape \(3, 13, 5\), expected \(3, 14, N\)"):
        lsp.read(raw)
    scipy.io.savemat(raw / "joints.mat", {"joints": joints.transpose(1, 0, 2)})
    with pytest.raises(DataError, match="LSP extended"):
        lsp.read(raw)
    scipy.io.savemat(raw / "joints.mat", {"joints": joints})
    (raw / "joints.mat").write_bytes((raw / "joints.mat").read_bytes()[:200])
    with pytest.raises(DataError, match="joints.mat could not be read"):
        lsp.read(raw)
    scipy.io.savemat(raw / "joints.mat", {"joints": joints})
    (raw / "images" / "im0003.jpg").write_bytes(b"not a jpeg")
    assert prepare("lsp", tmp_path) == 2
    assert "im0003.jpg could not be" in capsys.readouterr().err
    assert not (prepared_dir(tmp_path, "lsp") / "meta.json").exists()


# ----------------------------------------------------------------------------- 3DPW


class Py2Pickler(pickle._Pickler):
    """Writes what Python 2's cPickle wrote: ``str`` and byte strings as 8-bit strings
    (SHORT_BINSTRING / BINSTRING) and numpy's reconstructor under ``numpy.core``, so that
    Python 3 reads the file only with ``encoding='latin1'`` (3DPW's sequence files)."""

    dispatch = dict(pickle._Pickler.dispatch)

    def _string(self, data: bytes, obj):
        n = len(data)
        head = pickle.SHORT_BINSTRING + bytes([n]) if n < 256 else pickle.BINSTRING + struct.pack("<i", n)
        self.write(head + data)
        self.memoize(obj)

    def save_bytes(self, obj):
        self._string(obj, obj)

    def save_str(self, obj):
        self._string(obj.encode("latin1"), obj)

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", "").replace("numpy._core", "numpy.core")
        self.write(pickle.GLOBAL + f"{module}\n{name or obj.__qualname__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = save_str


PW3D_SIZE = (64, 96)  # portrait, as some 3DPW sequences are (1080 x 1920)


def write_pw3d(raw: Path, n: int = 4) -> dict:
    """sequenceFiles/{train,validation,test}/<seq>.pkl + imageFiles/<seq>/image_%05d.jpg:
    a two-actor train sequence (actor 1 walks out of the image at frame 3, frame 2's camera
    pose is not valid for actor 0), a one-actor validation and test sequence."""
    K = intrinsics(60.0, *PW3D_SIZE)
    plan = {"train": {"courtyard_hug_00": 2}, "validation": {"outdoors_fencing_01": 1},
            "test": {"downtown_walking_00": 1}}
    out = {"K": K}
    for folder, seqs in plan.items():
        (raw / "sequenceFiles" / folder).mkdir(parents=True, exist_ok=True)
        for name, actors in seqs.items():
            poses, joints = [], [[] for _ in range(actors)]
            for f in range(n):
                R, t = facing_camera(4.0 + 0.1 * f)
                P = np.eye(4)
                P[:3, :3], P[:3, 3] = R, t
                poses.append(P)
                kps = []
                for a in range(actors):
                    world = smpl24_body(f) + (0.9 * a + (3.0 if a and f == 3 else 0.0), 0.0, -0.5 * a)
                    joints[a].append(world.reshape(72))
                    kps.append(project(world @ R.T + t, K))
                red = np.concatenate([k[[SMPL_L_WRIST]] for k in kps])
                green = np.concatenate([np.delete(k, SMPL_L_WRIST, 0) for k in kps])
                path = raw / "imageFiles" / name / f"image_{f:05d}.jpg"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(dot_image(PW3D_SIZE, red, green)).save(path, quality=95)
            valid = [np.ones(n) for _ in range(actors)]
            if actors == 2:
                valid[0][2] = 0
            seq = {"sequence": name, "betas": [np.zeros(10)] * actors, "gender": ["m"] * actors,
                   "poses": [np.zeros((n, 72))] * actors, "trans": [np.zeros((n, 3))] * actors,
                   "jointPositions": [np.stack(j) for j in joints], "cam_poses": np.stack(poses),
                   "campose_valid": valid, "cam_intrinsics": K, "img_frame_ids": np.arange(n) * 2,
                   "poses2d": [np.zeros((n, 3, 18))] * actors}
            with open(raw / "sequenceFiles" / folder / f"{name}.pkl", "wb") as fh:
                Py2Pickler(fh, protocol=2).dump(seq)
            out[name] = seq
    return out


def test_pw3d_python2_pickle_projection_and_anatomical_map(tmp_path):
    fx = write_pw3d(tmp_path)
    pkl = tmp_path / "sequenceFiles" / "train" / "courtyard_hug_00.pkl"
    with pytest.raises(UnicodeDecodeError):  # a Python-2 pickle: plain pickle.load fails
        pickle.loads(pkl.read_bytes())
    splits = pw3d.read(tmp_path)
    train = splits["train"]
    # actor 0: frames 0, 1, 3 (2's camera pose is not valid); actor 1: 0, 1, 2 (out of view at 3)
    assert [(s.frame, s.subject) for s in train] == [(0, 0), (0, 1), (1, 0), (1, 1), (2, 1), (3, 0)]
    assert len(splits["val"]) == 4 and len(splits["test"]) == 4
    s = train[2]
    seq = fx["courtyard_hug_00"]
    P = seq["cam_poses"][1]
    cam = seq["jointPositions"][0][1].reshape(24, 3) @ P[:3, :3].T + P[:3, 3]
    assert np.allclose(s.keypoints3d, smpl.to_body16(cam, crossed=False))
    assert np.allclose(s.keypoints2d, project(s.keypoints3d, fx["K"])) and np.allclose(s.intrinsics, fx["K"])
    # no cross: SMPL's L-wrist is Body16's l_wrist, raised, on the image's right
    assert np.allclose(s.keypoints3d[L_WRIST], cam[SMPL_L_WRIST])
    assert int(s.keypoints2d[:, 1].argmin()) == L_WRIST and s.keypoints2d[L_WRIST, 0] > s.keypoints2d[R_WRIST, 0]
    assert (smpl.chirality(cam) > 0) and np.linalg.det(P[:3, :3]) > 0  # a real camera: no mirror
    crossed = pw3d.read(tmp_path, tll_cross=True)["train"][2]
    assert np.allclose(crossed.keypoints2d[R_WRIST], s.keypoints2d[L_WRIST])
    # visibility: joints outside the 64 x 96 image are not visible
    inside = ((s.keypoints2d >= 0) & (s.keypoints2d <= np.array(PW3D_SIZE) - 1)).all(1)
    assert np.array_equal(s.visible, inside) and s.image_size == PW3D_SIZE
    assert (s.sequence, s.view, s.image, s.name) == (0, -1, "imageFiles/courtyard_hug_00/image_00001.jpg",
                                                     "imageFiles/courtyard_hug_00/image_00001.jpg#0")


def test_pw3d_prepared_round_trip_and_pairs(tmp_path):
    write_pw3d(tmp_path / "raw" / "pw3d")
    assert prepare("pw3d", tmp_path) == 0
    sp = load_prepared(tmp_path, "pw3d", "test")
    assert len(sp) == 4 and len(load_prepared(tmp_path, "pw3d", "val")) == 4
    for i in range(len(sp)):
        assert_dot_at(sp.images[i], sp.keypoints[i, L_WRIST])
        assert_geometry(sp, i)
    train = load_prepared(tmp_path, "pw3d", "train")
    pairs = train.pairs(max_gap=1)  # per actor: 0-1, 1-3 (actor 0), 0-1, 1-2 (actor 1), both orders
    assert len(pairs) == 8 and bool((train.subject[pairs[:, 0]] == train.subject[pairs[:, 1]]).all())


def test_pw3d_bad_files(tmp_path, capsys):
    with pytest.raises(DataError, match="3DPW not found"):
        pw3d.read(tmp_path / "raw" / "pw3d")
    raw = tmp_path / "raw" / "pw3d"
    write_pw3d(raw)
    pkl = raw / "sequenceFiles" / "test" / "downtown_walking_00.pkl"
    seq = pickle.loads(pkl.read_bytes(), encoding="latin1")
    seq["jointPositions"] = [seq["jointPositions"][0][:, :69]]
    pkl.write_bytes(pickle.dumps(seq))
    with pytest.raises(DataError, match=r"jointPositions\[0\] has shape \(4, 69\), expected \(4, 72\)"):
        pw3d.read(raw)
    pkl.write_bytes(pkl.read_bytes()[:100])
    with pytest.raises(DataError, match="downtown_walking_00.pkl could not be read"):
        pw3d.read(raw)
    assert prepare("pw3d", tmp_path) == 2
    assert "probably truncated" in capsys.readouterr().err
    write_pw3d(raw)
    (raw / "imageFiles" / "outdoors_fencing_01" / "image_00002.jpg").unlink()
    assert prepare("pw3d", tmp_path) == 2
    err = capsys.readouterr().err
    assert "incomplete" in err and "image_00002.jpg" in err
    assert not (prepared_dir(tmp_path, "pw3d") / "meta.json").exists()


def test_pw3d_unzipped_into_folders_of_their_own_name(tmp_path):
    write_pw3d(tmp_path / "tmp")
    for name in ("sequenceFiles", "imageFiles"):
        (tmp_path / "raw" / name).mkdir(parents=True)
        (tmp_path / "tmp" / name).rename(tmp_path / "raw" / name / name)
    splits = pw3d.read(tmp_path / "raw")
    assert len(splits["train"]) == 6 and pw3d.verify(tmp_path / "raw")["missing"] == []
    assert splits["train"][0].image.startswith("imageFiles/imageFiles/courtyard_hug_00/")


# ----------------------------------------------------------------------------- registry


def test_body_registry_entries_are_complete():
    for name in ("surreal", "human36m", "lsp", "pw3d"):
        info = DATASETS[name]
        assert info["skeleton"] == "body16" and info["script"] == name and info["reader"] == name
        assert info["licence"] and info["size"] and info["homepage"].startswith("http") and info["raw_layout"]
        assert info["downloads"] or info["manual_reason"]
        assert info["counts_verified"] is False
    assert DATASETS["surreal"]["role"] == "source" and DATASETS["lsp"]["downloads"][0]["url"] == \
        "http://sam.johnson.io/research/lsp_dataset.zip"
    # every dataset a real-data task names is registered, with a script
    for source, target, skeleton in REAL_TASKS.values():
        assert DATASETS[source]["skeleton"] == DATASETS[target]["skeleton"] == skeleton
    assert set(DATASETS) == {"rhd", "h3d", "freihand", "mvhand", "surreal", "human36m", "lsp", "pw3d"}
