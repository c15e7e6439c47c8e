"""CC-SSL's mechanics (adapt/ccssl.py): the curriculum, the consistency checks of its labels
and an exact resume."""

import pytest
import torch

from srpose_lib.adapt.ccssl import (CCSSLConfig, block_match, consistent_labels, keep_mask, kept_share,
                                    load_ccssl, temporal_consistency, train_ccssl)
from srpose_lib.data.benchmark import BenchmarkData
from srpose_lib.presets import config_for
from srpose_lib.train.supervised import train_supervised


def quiet(*_):
    pass


def test_the_kept_share_grows_over_rounds_to_its_cap():
    cfg = CCSSLConfig()  # the authors' curriculum: 20, 40, 60, 80, 80, 80 %
    shares = [kept_share(cfg, r) for r in range(cfg.rounds)]
    assert shares == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8])
    conf = torch.rand(50, 21, generator=torch.Generator().manual_seed(0))
    kept = [float(keep_mask(conf, s)[0].float().mean()) for s in shares]
    assert all(a < b for a, b in zip(kept[:4], kept[1:4]))  # strictly growing until the cap
    assert kept == pytest.approx(shares, abs=0.01)
    mask, thresh = keep_mask(conf, 0.2)
    assert (conf[mask] > thresh).all() and (conf[~mask] <= thresh).all()  # the most confident are kept


def _blob(size, x, y, sigma):
    xs = torch.arange(size, dtype=torch.float32)
    return torch.exp(-((xs[None] - x) ** 2 + (xs[:, None] - y) ** 2) / (2 * sigma**2))


class _Probe(torch.nn.Module):
    """A stand-in pose net with two keypoints on 64 px images (32 px maps): keypoint 0
    follows the image content (a bright blob: equivariant); keypoint 1 always peaks at the
    same cell whatever the view (not equivariant). Both maps have the same shape."""

    def forward(self, x):
        spot = torch.nn.functional.avg_pool2d(x[:, :1], 2) * 20.0
        fixed = (_blob(32, 28, 4, 1.0) * 20.0).expand_as(spot)
        return torch.cat([spot, fixed], 1)


def test_labels_obey_the_invariance_check():
    images = _blob(64, 43, 31, 2.0).expand(8, 3, 64, 64).clone()  # a bright blob off the centre
    cfg = CCSSLConfig(views=5, view_rotation=30.0, view_scale=0.25, view_color_jitter=0.25, label_batch_size=8)
    coords, conf = consistent_labels(_Probe(), images, cfg, "kl", torch.Generator().manual_seed(0), "cpu")
    assert (conf[:, 0] > 1.5 * conf[:, 1]).all()  # the keypoint whose views agree is far more confident
    kept, _ = keep_mask(conf, 0.55)  # a little over half (the threshold itself is dropped)
    assert kept[:, 0].all() and not kept[:, 1].any()  # ... so it is the one the curriculum keeps
    assert ((coords[:, 0] - torch.tensor([43.0, 31.0])).abs() <= 2).all()  # on the blob
    one_view = CCSSLConfig(views=1, label_batch_size=8)
    _, conf1 = consistent_labels(_Probe(), images, one_view, "kl", torch.Generator().manual_seed(0), "cpu")
    assert not (conf1[:, 0] > 1.5 * conf1[:, 1]).any()  # one view cannot tell them apart


def test_temporal_check_carries_a_confident_label_along_the_motion():
    gen = torch.Generator().manual_seed(1)
    base = (torch.rand(1, 3, 64, 64, generator=gen) * 255).to(torch.uint8)
    shifted = torch.roll(base, shifts=(2, 3), dims=(2, 3))  # the content moves 3 px right, 2 down
    pts = torch.tensor([[[20.0, 30.0], [40.0, 25.0]]])
    assert torch.equal(block_match(base, shifted, pts, window=7, radius=4), pts + torch.tensor([3.0, 2.0]))

    class Split:
        images = torch.cat([base, shifted])

    coords = torch.tensor([[[20.0, 30.0], [40.0, 25.0]], [[5.0, 5.0], [43.0, 27.0]]])
    conf = torch.tensor([[0.9, 0.9], [0.1, 0.89]])
    prev = torch.tensor([-1, 0])
    out, out_conf, changed = temporal_consistency(Split(), coords, conf, CCSSLConfig(flow_window=28, flow_max_px=16),
                                                  prev)
    assert changed == 1
    assert torch.equal(out[1, 0], torch.tensor([23.0, 32.0])) and out_conf[1, 0] == pytest.approx(0.81)
    assert torch.equal(out[1, 1], coords[1, 1])  # confident enough: its own label stays


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("ccssl")
    data = BenchmarkData(root / "cache", show_progress=False)
    pre = config_for("source_only", "smoke", "hand", epochs=1, iters_per_epoch=2, num_train=32, num_val=16,
                     num_test=16)
    return data, pre, train_supervised(pre, root / "pre", data, log=quiet, show_progress=False)


def test_ccssl_resumes_after_an_interruption_and_its_rounds_keep_more(setup, tmp_path):
    data, pre, pretrained = setup
    cfg = CCSSLConfig(pretrain=pre, rounds=2, epochs_per_round=1, iters_per_epoch=2, batch_size=4, keep_step=0.3,
                      target_weight=1.0, eval_batch_size=16, label_batch_size=16)
    ref = train_ccssl(cfg, tmp_path / "ref", data, pretrained, log=quiet, show_progress=False)

    def stop(epoch, it):
        if (epoch, it) == (1, 1):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_ccssl(cfg, tmp_path / "run", data, pretrained, log=quiet, show_progress=False, on_iteration=stop)
    lines = []
    res = train_ccssl(cfg, tmp_path / "run", data, pretrained, log=lines.append, show_progress=False)
    assert any("resuming after epoch 1/2" in line for line in lines)
    for k, v in ref.state_dict.items():
        assert torch.equal(v, res.state_dict[k]), k
    shares = [h["kept_share"] for h in res.history]
    assert shares[0] < shares[1] and shares == [h["kept_share"] for h in ref.history]
    assert not load_ccssl(res).training
