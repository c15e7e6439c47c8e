"""Heatmap losses: hand-computed values, TLL formulas, gradients and zero weights."""

import math

import pytest
import torch
import torch.nn.functional as F

from srpose_lib.errors import ConfigError, DataError
from srpose_lib.train.losses import JointsKLLoss, JointsMSELoss, build_loss


def test_mse_by_hand():
    pred = torch.tensor([[[[1.0, 0.0], [0.0, 0.0]], [[2.0, 2.0], [2.0, 2.0]]]])
    target = torch.tensor([[[[0.0, 0.0], [0.0, 0.0]], [[1.0, 1.0], [1.0, 1.0]]]])
    # joint 0: 0.5 * mean([1, 0, 0, 0]) = 0.125; joint 1: 0.5 * 1 = 0.5
    # weights [1, 0.5] -> [0.125, 0.25] -> mean 0.1875
    weight = torch.tensor([[1.0, 0.5]])
    assert JointsMSELoss()(pred, target, weight).item() == pytest.approx(0.1875)
    assert JointsMSELoss()(pred, target).item() == pytest.approx((0.125 + 0.5) / 2)
    per_joint = JointsMSELoss(reduction="none")(pred, target, weight.view(1, 2, 1))  # TLL's (B, K, 1)
    assert per_joint.shape == (1, 2) and torch.allclose(per_joint, torch.tensor([[0.125, 0.25]]))


def test_kl_by_hand():
    # logits [0, ln 3] -> softmax [1/4, 3/4]
    pred = torch.tensor([0.0, math.log(3.0)]).view(1, 1, 1, 2).repeat(1, 2, 1, 1)
    # joint 0 target [1, 1] -> q = [1/2, 1/2]: KL = 0.5 ln(0.5/0.25) + 0.5 ln(0.5/0.75) = 0.5 ln(4/3)
    # joint 1 target [2, 0] -> q = [1, 0]:     KL = ln(1 / 0.25) = ln 4
    target = torch.tensor([[[[1.0, 1.0]], [[2.0, 0.0]]]])
    weight = torch.tensor([[1.0, 0.5]])
    expected = (0.5 * math.log(4 / 3) + 0.5 * math.log(4)) / 2
    assert JointsKLLoss()(pred, target, weight).item() == pytest.approx(expected, rel=1e-6)
    none = JointsKLLoss(reduction="none")(pred, target)
    assert torch.allclose(none, torch.tensor([[0.5 * math.log(4 / 3), math.log(4)]]))


def tll_formulas(pred, target, weight, epsilon=0.0):
    """The TLL computations, restated with torch built-ins for comparison."""
    b, k = pred.shape[:2]
    mse = (0.5 * (pred.flatten(2) - target.flatten(2)) ** 2 * weight.view(b, k, 1)).mean()
    gt = target.flatten(2) + epsilon
    gt = gt / gt.sum(-1, keepdim=True)
    kl = F.kl_div(F.log_softmax(pred.flatten(2), -1), gt, reduction="none").sum(-1)
    return mse, (kl * weight.view(b, k)).mean()


@pytest.mark.parametrize("epsilon", [0.0, 1e-3])
def test_match_tll_on_random_maps(epsilon):
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(3, 4, 8, 8, generator=g)
    target = torch.rand(3, 4, 8, 8, generator=g)
    weight = torch.rand(3, 4, generator=g)
    mse, kl = tll_formulas(pred, target, weight, epsilon)
    assert JointsMSELoss()(pred, target, weight).item() == pytest.approx(mse.item(), rel=1e-6)
    assert JointsKLLoss(epsilon=epsilon)(pred, target, weight).item() == pytest.approx(kl.item(), rel=1e-5)


@pytest.mark.parametrize("name", ["mse", "kl"])
def test_gradient_flows(name):
    pred = torch.randn(2, 3, 6, 6, requires_grad=True)
    target = torch.rand(2, 3, 6, 6)
    build_loss(name)(pred, target, torch.ones(2, 3)).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


@pytest.mark.parametrize("name", ["mse", "kl"])
def test_zero_weight_means_zero_contribution(name):
    loss = build_loss(name)
    pred = torch.randn(2, 3, 6, 6, requires_grad=True)
    target = torch.rand(2, 3, 6, 6)
    target[0, 1] = 0.0  # an empty map, as for an invisible joint
    zero = loss(pred, target, torch.zeros(2, 3))
    zero.backward()
    assert zero.item() == 0.0 and torch.isfinite(pred.grad).all() and pred.grad.abs().sum() == 0
    # changing a zero-weight joint's prediction leaves the loss unchanged
    weight = torch.ones(2, 3)
    weight[1, 2] = 0.0
    other = pred.detach().clone()
    other[1, 2] += 5 * torch.randn(6, 6)
    assert loss(other, target, weight).item() == pytest.approx(loss(pred.detach(), target, weight).item())


def test_kl_empty_target_map_is_finite():
    pred = torch.randn(1, 2, 4, 4, requires_grad=True)
    target = torch.zeros(1, 2, 4, 4)
    target[0, 0, 1, 2] = 1.0
    per_joint = JointsKLLoss(reduction="none")(pred, target, torch.ones(1, 2))
    assert torch.isfinite(per_joint).all() and per_joint[0, 1] == 0.0
    per_joint.sum().backward()
    assert torch.isfinite(pred.grad).all() and pred.grad[0, 1].abs().sum() == 0
    # with epsilon the empty map becomes uniform, as in TLL
    uniform = JointsKLLoss(reduction="none", epsilon=1e-3)(pred.detach(), target)
    expected = -(F.log_softmax(pred.detach()[0, 1].flatten(), 0)).mean() - math.log(16)
    assert uniform[0, 1].item() == pytest.approx(expected.item(), rel=1e-5)


def test_build_loss_and_bad_input():
    assert isinstance(build_loss("mse"), JointsMSELoss)
    kl = build_loss("kl", epsilon=0.1)
    assert isinstance(kl, JointsKLLoss) and kl.epsilon == 0.1
    with pytest.raises(ConfigError, match="mse"):
        build_loss("l2")
    with pytest.raises(ConfigError):
        JointsMSELoss(reduction="sum")
    with pytest.raises(DataError):
        JointsMSELoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 5))
    with pytest.raises(DataError):
        JointsKLLoss()(torch.zeros(1, 2, 4, 4), torch.zeros(1, 2, 4, 4), torch.ones(1, 3))
