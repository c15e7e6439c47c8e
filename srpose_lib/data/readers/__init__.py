"""Readers of the real datasets' official raw layouts, and the registry of those datasets.

Each reader module (``rhd``, ``h3d``, ``freihand``, ``mvhand``; ``surreal``, ``human36m``,
``lsp``, ``pw3d``) turns an official release into ordered :class:`RawSample` lists per split,
already mapped to Hand21 or Body16 (``files`` loads the releases' file formats, ``smpl``
holds SMPL's joints and their maps); ``data_scripts/<script>.py`` writes them into the
prepared format (:mod:`srpose_lib.data.prepared`), which is what training reads.

Folders under ``DATA_DIR`` (the convention every script follows):

* ``DATA_DIR/downloads/``          archives as downloaded (resumable ``.part`` files)
* ``DATA_DIR/raw/<name>/``         the official release, unpacked (``DATASETS[name]["raw_layout"]``)
* ``DATA_DIR/prepared/<name>/``    the prepared crops and annotations

:data:`DATASETS` maps a dataset name to a plain dict:

``name``, ``title``, ``skeleton`` (``hand21``/``body16``), ``role`` (``source`` = synthetic,
``target`` = real, or ``real`` when the paper's use is unverified), ``licence``, ``size``,
``homepage``, ``downloads`` (list of ``{"url", "filename", "size", "md5", "sha256"}``, empty
when nothing can be fetched automatically, then ``manual_reason`` says why), ``manual``
(what to fetch by hand and where to put it), ``raw_layout`` (paths, relative to ``DATA_DIR/raw/<name>``, that must exist),
``expected_counts`` (prepared samples per split, ``None`` when unknown), ``counts_verified``,
``script`` (``python -m data_scripts.<script>``), ``reader`` (module under this package).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["DATASETS", "RawSample", "dataset_info", "project", "tll_split", "check_every"]


@dataclass
class RawSample:
    """One sample of a raw dataset, in full-image pixels, already in the target skeleton.

    ``image``: path of the source image relative to the dataset's raw folder.
    ``keypoints2d`` (K, 2) full-image pixels; ``visible`` (K,) bool; ``keypoints3d`` (K, 3)
    camera metres or ``None``; ``intrinsics`` (3, 3) of the full image or ``None``;
    ``box`` (x0, y0, side) to force a crop box, ``"full"`` for the whole (square) image,
    or ``None`` for the 1.5x box of the visible keypoints;
    ``flip`` mirrors the crop (all hands are made to look like left hands, as the baselines
    do with RHD); ``image_size`` (W, H) when known without decoding the image;
    ``annotation``: the annotation file the keypoints were read from (named in errors).
    """

    name: str
    image: str
    keypoints2d: np.ndarray
    visible: np.ndarray
    keypoints3d: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    subject: int = -1
    sequence: int = -1
    frame: int = -1
    view: int = -1
    box: tuple[float, float, float] | str | None = None
    flip: bool = False
    image_size: tuple[int, int] | None = None
    extra: dict = field(default_factory=dict)
    annotation: str = ""


def check_every(every, dataset: str) -> int:
    """``every`` (keep one frame or image in N) as a positive int, or a DataError: 0 or a
    negative step used to be taken as 1 without a word."""
    from ...errors import DataError

    if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
        raise DataError(f"{dataset}: every must be a whole number >= 1 (keep one frame in N), got {every!r}",
                        "pass --every 1 to keep every frame, or a larger N to keep one in N")
    return int(every)


def project(xyz: np.ndarray, K: np.ndarray) -> np.ndarray:
    """Pinhole projection of camera points ``xyz`` (..., K, 3) with intrinsics ``K``
    (..., 3, 3), batched (FreiHAND's ``projectPoints``; Human3.6M's and 3DPW's cameras).
    Points at depth 0 give inf/NaN, without a warning."""
    uv = np.einsum("...ij,...kj->...ki", K, xyz)
    with np.errstate(divide="ignore", invalid="ignore"):
        return uv[..., :2] / uv[..., 2:]


def tll_split(n: int, seed: int = 42, cap: int = 3200) -> tuple[list[int], list[int]]:
    """The baselines' split of ``n`` samples (TLL's H3D, FreiHAND and SURREAL readers):
    ``random.seed(seed); random.shuffle(samples)``, test = the first
    ``min(int(0.2 n), cap)``, train = the rest. Returns (train, test) index lists, each in
    shuffled order, exactly as TLL orders them (Python's ``random`` permutation depends
    only on the seed and the length, so it is reproduced exactly). No replacement."""
    import random

    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = min(int(n * 0.2), cap)
    return order[k:], order[:k]


# ============================================================================ hand datasets

_FREIBURG_LICENCE = ("research only, no commercial use; cite the paper "
                     "(terms on the dataset page)")

HAND_DATASETS: dict[str, dict] = {
    "rhd": {
        "name": "rhd",
        "title": "Rendered Hand Pose (RHD)",
        "skeleton": "hand21",
        "role": "source",
        "licence": "research only, no commercial use; cite Zimmermann & Brox, ICCV 2017",
        "size": "RHD_v1-1.zip, about 11 GB (unverified)",
        "homepage": "https://lmb.informatik.uni-freiburg.de/resources/datasets/RenderedHandposeDataset.en.html",
        "downloads": [{"url": "https://lmb.informatik.uni-freiburg.de/data/RenderedHandpose/RHD_v1-1.zip",
                       "filename": "RHD_v1-1.zip", "size": None, "md5": None, "sha256": None}],
        "manual": ("download RHD_v1-1.zip from the RHD page (or let `--download` fetch it) and "
                   "unpack it into DATA_DIR/raw/rhd/ so that "
                   "DATA_DIR/raw/rhd/RHD_published_v2/training/anno_training.pickle exists"),
        "raw_layout": ["RHD_published_v2/training/anno_training.pickle",
                       "RHD_published_v2/training/color",
                       "RHD_published_v2/evaluation/anno_evaluation.pickle",
                       "RHD_published_v2/evaluation/color"],
        "raw_counts": {"RHD_published_v2/training/color": 41258,
                       "RHD_published_v2/evaluation/color": 2728},
        "expected_counts": None,  # post-filter hand counts are not documented anywhere
        "counts_verified": False,
        "script": "rhd",
        "reader": "rhd",
    },
    "h3d": {
        "name": "h3d",
        "title": "Hand-3D-Studio (H3D)",
        "skeleton": "hand21",
        "role": "target",
        "licence": "by request from the authors (Zhao et al., ICASSP 2020); research use, "
                   "exact terms unverified",
        "size": "unverified",
        "homepage": "https://www.yangangwang.com/papers/ZHAO-H3S-2020-02.html",
        "downloads": [],
        "manual_reason": "the studio release is by request from the authors and TLL's H3D_crop.tar link is dead",
        "manual": ("request Hand-3D-Studio from the authors (see the homepage). srpose reads "
                   "(a) TLL's H3D_crop release if you still have it: unpack H3D_crop.tar into "
                   "DATA_DIR/raw/h3d/ so that DATA_DIR/raw/h3d/H3D_crop/annotation.json and "
                   "part1..part5/ exist; or (b) the studio images with an annotation.json you "
                   "write in the same format (a JSON list of {name, keypoint2d 21x2 px, "
                   "keypoint3d 21x3, intrinsic_matrix 3x3, without_object 0/1} with optional "
                   "subject/sequence/frame/view ids, name relative to DATA_DIR/raw/h3d/H3D/) at "
                   "DATA_DIR/raw/h3d/H3D/annotation.json; see srpose_lib/data/readers/h3d.py"),
        "raw_layout": ["H3D_crop/annotation.json | H3D/annotation.json"],
        "raw_counts": {},
        "expected_counts": None,
        "counts_verified": False,
        "script": "h3d",
        "reader": "h3d",
    },
    "freihand": {
        "name": "freihand",
        "title": "FreiHAND",
        "skeleton": "hand21",
        "role": "real",  # TLL/UniFrame use it only as the source of FreiHand->RHD
        "licence": _FREIBURG_LICENCE + " (FreiHAND's exact terms unverified)",
        "size": "FreiHAND_pub_v2.zip, several GB (unverified)",
        "homepage": "https://lmb.informatik.uni-freiburg.de/projects/freihand/",
        "downloads": [{"url": "https://lmb.informatik.uni-freiburg.de/data/freihand/FreiHAND_pub_v2.zip",
                       "filename": "FreiHAND_pub_v2.zip", "size": None, "md5": None, "sha256": None}],
        "manual": ("download FreiHAND_pub_v2.zip from the FreiHAND page (or let `--download` "
                   "fetch it) and unpack it into DATA_DIR/raw/freihand/ so that "
                   "DATA_DIR/raw/freihand/training_xyz.json and training/rgb/ exist"),
        "raw_layout": ["training_K.json", "training_xyz.json", "training/rgb"],
        "raw_counts": {"training/rgb": 130240},
        "expected_counts": {"train": 127040, "test": 3200},  # task 'all' (TLL's default)
        "counts_verified": False,  # computed from TLL's rule, not from a run on the data
        "script": "freihand",
        "reader": "freihand",
    },
    "mvhand": {
        "name": "mvhand",
        "title": "MVHand (multiviewDataset, Yu et al., BMVC 2021)",
        "skeleton": "hand21",
        "role": "target",
        "licence": "the toolkit repository is MIT; the data's terms are unverified (cite "
                   "Yu, Yang, Chen & Yao, BMVC 2021)",
        "size": "unverified (4 sequences x 4 views of 640x480 RGB-D)",
        "homepage": "https://github.com/ShichengChen/multiviewDataset",
        "downloads": [],
        "manual_reason": "a Dropbox shared folder with too many files for an automatic zip download",
        "manual": ("download the four sequence folders (7-14-1-2, 9-10-1-2, 9-17-1-2, 9-25-1-2) "
                   "from the Dropbox link in github.com/ShichengChen/multiviewDataset "
                   "(https://www.dropbox.com/sh/zp2ruks8w8gegm8/AAAHEaFT70bHKJBh33e5DjfSa?dl=0) "
                   "into DATA_DIR/raw/mvhand/, so that e.g. "
                   "DATA_DIR/raw/mvhand/7-14-1-2/calib.pkl, .../rgb/00000_0.jpg and "
                   ".../mlresults/7-14-1-2-joints.npy exist (depth/, mask/ and the MANO "
                   "parameters are not needed)"),
        "raw_layout": ["<sequence>/calib.pkl", "<sequence>/rgb", "<sequence>/mlresults/<sequence>-joints.npy"],
        "raw_counts": {},
        "expected_counts": None,
        "counts_verified": False,
        "script": "mvhand",
        "reader": "mvhand",
    },
}

# ============================================================================ body datasets

BODY_DATASETS: dict[str, dict] = {
    "surreal": {
        "name": "surreal",
        "title": "SURREAL (Varol et al., CVPR 2017)",
        "skeleton": "body16",
        "role": "source",
        "licence": "non-commercial scientific research only; no reproduction or redistribution "
                   "(SURREAL licence, accepted to get the download credentials); cite the paper",
        "size": "SURREAL_v1.tar.gz, 86 GB with depth/segmentation; the .mp4 (3.3 GB) and "
                "_info.mat (3.8 GB) files are all srpose needs",
        "homepage": "https://www.di.ens.fr/willow/research/surreal/data/",
        "downloads": [],
        "manual_reason": "the files need the personal credentials SURREAL sends once you accept its licence",
        "manual": ("accept the licence on https://www.di.ens.fr/willow/research/surreal/data/ to get "
                   "credentials, then download SURREAL_v1.tar.gz, or only the *.mp4 and *_info.mat "
                   "files with github.com/gulvarol/surreal's download/download_surreal.sh (edit its "
                   "modality loop to '.mp4' '_info.mat'), into DATA_DIR/raw/surreal/ so that "
                   "DATA_DIR/raw/surreal/cmu/train/run0/<sequence>/<sequence>_c0001.mp4 and "
                   "..._c0001_info.mat exist (SURREAL/data/cmu/ below it, as the script writes "
                   "it, is found too). Decoding the videos needs PyAV (`pip install av==18.1.0`)"),
        "raw_layout": ["cmu/{train,val,test}/run{0,1,2}/<sequence>/<sequence>_c%04d.mp4",
                       "cmu/{train,val,test}/run{0,1,2}/<sequence>/<sequence>_c%04d_info.mat"],
        # clips in SURREAL's download lists (files_cmu_{val,test}.mp4.txt); train's list not checked
        "raw_counts": {"cmu/val": 507, "cmu/test": 12528},
        "expected_counts": None,  # depend on srpose's frame step and the clips' lengths
        "counts_verified": False,
        "script": "surreal",
        "reader": "surreal",
    },
    "human36m": {
        "name": "human36m",
        "title": "Human3.6M (Ionescu et al., TPAMI 2014; G. Moon's JSON release)",
        "skeleton": "body16",
        "role": "target",
        "licence": "academic, non-commercial research only; registration required; no "
                   "redistribution (Human3.6M licence)",
        "size": "unverified (images of 7 subjects, 4 cameras, tens of GB)",
        "homepage": "http://vision.imar.ro/human3.6m/",
        "downloads": [],
        "manual_reason": "Human3.6M requires a registered account, and the JSON release the "
                         "baselines read is shared by its author, not on a public address",
        "manual": ("register at http://vision.imar.ro/human3.6m/ (the licence covers any copy), "
                   "then get G. Moon's parsed release (annotations + images; linked from "
                   "github.com/mks0601/3DMPPE_POSENET_RELEASE) and put it in DATA_DIR/raw/human36m/ "
                   "so that DATA_DIR/raw/human36m/annotations/Human36M_subject1_data.json, "
                   "..._camera.json and ..._joint_3d.json exist for subjects 1, 5, 6, 7, 8, 9 and 11, "
                   "and DATA_DIR/raw/human36m/images/s_01_act_02_subact_01_ca_01/... holds the "
                   "images the data.json files name"),
        "raw_layout": ["annotations/Human36M_subject{1,5,6,7,8,9,11}_{data,camera,joint_3d}.json",
                       "images/<file_name>"],
        "raw_counts": {},
        "expected_counts": None,  # train depends on the release's image lists; test is min(3200, S9+S11)
        "counts_verified": False,
        "script": "human36m",
        "reader": "human36m",
    },
    "lsp": {
        "name": "lsp",
        "title": "LSP — Leeds Sports Pose (Johnson & Everingham, BMVC 2010)",
        "skeleton": "body16",
        "role": "target",
        "licence": "research use; cite Johnson & Everingham, BMVC 2010 (exact terms on the LSP page, "
                   "unverified); the images come from Flickr",
        "size": "lsp_dataset.zip, about 35 MB (unverified); 2,000 images",
        "homepage": "http://sam.johnson.io/research/lsp.html",
        "downloads": [{"url": "http://sam.johnson.io/research/lsp_dataset.zip",
                       "filename": "lsp_dataset.zip", "size": None, "md5": None, "sha256": None}],
        "manual": ("download lsp_dataset.zip from the LSP page (or let `--download` fetch it) and "
                   "unpack it into DATA_DIR/raw/lsp/ so that DATA_DIR/raw/lsp/joints.mat and "
                   "DATA_DIR/raw/lsp/images/im0001.jpg exist"),
        "raw_layout": ["joints.mat", "images/im%04d.jpg"],
        "raw_counts": {"images": 2000},
        "expected_counts": {"train": 2000, "test": 2000},
        "counts_verified": False,  # the release's 2,000 images under TLL's rule, not a run on the data
        "script": "lsp",
        "reader": "lsp",
    },
    "pw3d": {
        "name": "pw3d",
        "title": "3DPW — 3D Poses in the Wild (von Marcard et al., ECCV 2018)",
        "skeleton": "body16",
        "role": "target",
        "licence": "non-commercial scientific research only (3DPW licence, accepted on the "
                   "download page); cite the paper",
        "size": "imageFiles.zip + sequenceFiles.zip, sizes unverified; 60 sequences",
        "homepage": "https://virtualhumans.mpi-inf.mpg.de/3DPW/",
        "downloads": [],
        "manual_reason": "the download links are given once you accept 3DPW's licence",
        "manual": ("accept the licence on https://virtualhumans.mpi-inf.mpg.de/3DPW/, download "
                   "imageFiles.zip and sequenceFiles.zip and unpack both into DATA_DIR/raw/pw3d/ so "
                   "that DATA_DIR/raw/pw3d/sequenceFiles/train/<sequence>.pkl (and validation/, test/) "
                   "and DATA_DIR/raw/pw3d/imageFiles/<sequence>/image_00000.jpg exist"),
        "raw_layout": ["sequenceFiles/{train,validation,test}/<sequence>.pkl",
                       "imageFiles/<sequence>/image_%05d.jpg"],
        "raw_counts": {},
        "expected_counts": None,
        "counts_verified": False,
        "script": "pw3d",
        "reader": "pw3d",
    },
}

# ============================================================================ registry

DATASETS: dict[str, dict] = {**HAND_DATASETS, **BODY_DATASETS}


def dataset_info(name: str) -> dict:
    """The registry entry of ``name`` (a :class:`~srpose_lib.errors.ConfigError` naming the
    registered datasets when unknown)."""
    from ...errors import ConfigError, did_you_mean

    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}", did_you_mean(name, DATASETS)) from None
