"""Each preference loss against a value computed by hand on small tensors."""

from __future__ import annotations

import math

import pytest
import torch

from training import objectives


def softplus(x: float) -> float:
    # -log sigmoid(x) = log(1 + e^-x)
    return math.log1p(math.exp(-x))


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# Two pairs: errors of the tuned model (m) and the reference (r) on winners (w) and losers (l).
M_W, R_W = [0.10, 0.30], [0.20, 0.25]
M_L, R_L = [0.40, 0.20], [0.35, 0.30]
G_W = [r - m for m, r in zip(M_W, R_W, strict=True)]  # [0.10, -0.05]
G_L = [r - m for m, r in zip(M_L, R_L, strict=True)]  # [-0.05, 0.10]


def tensors() -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(v, dtype=torch.float64) for v in (M_W, R_W, M_L, R_L))


def test_popalign_loss_uses_a_detached_reference_point_between_winners_and_losers():
    beta = 10.0
    z = 0.5 * sum(G_W) / 2 + 0.5 * sum(G_L) / 2
    expected = (sum(softplus(beta * (g - z)) for g in G_W) + sum(softplus(-beta * (g - z)) for g in G_L)) / 4
    terms = objectives.popalign_loss(*tensors(), beta=beta)
    assert terms.loss.item() == pytest.approx(expected, rel=1e-12)
    assert terms.reward_margin == pytest.approx(sum(G_W) / 2 - sum(G_L) / 2)
    assert terms.accuracy == 0.5  # pair 1: 0.10 > -0.05; pair 2: -0.05 < 0.10


def test_popalign_loss_gradient_does_not_flow_through_the_reference_point():
    m_w, r_w, m_l, r_l = (t.clone().requires_grad_(i in (0, 2)) for i, t in enumerate(tensors()))
    beta = 10.0
    objectives.popalign_loss(m_w, r_w, m_l, r_l, beta=beta).loss.backward()
    z = 0.5 * sum(G_W) / 2 + 0.5 * sum(G_L) / 2
    # d/dm_w of softplus(beta * (r - m - z)) / 4 with z held fixed = beta * sigmoid(-beta (g - z)) / 4
    expected = [beta * sigmoid(-beta * (g - z)) / 4 for g in G_W]
    assert m_w.grad.tolist() == pytest.approx(expected, rel=1e-9)


def test_popalign_paired_loss_is_the_paper_bound_with_n_times_beta():
    beta, n = 2.0, 6
    expected = sum(softplus(n * beta * (gw - gl)) for gw, gl in zip(G_W, G_L, strict=True)) / 2
    terms = objectives.popalign_paired_loss(*tensors(), beta=beta, population_size=n)
    assert terms.loss.item() == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="population_size"):
        objectives.popalign_paired_loss(*tensors(), beta=beta, population_size=0)


def test_dpo_loss_is_diffusion_dpo_with_its_half_beta():
    beta = 8.0
    expected = (
        sum(softplus(-0.5 * beta * ((mw - ml) - (rw - rl))) for mw, rw, ml, rl in zip(M_W, R_W, M_L, R_L, strict=True))
        / 2
    )
    assert objectives.dpo_loss(*tensors(), beta=beta).loss.item() == pytest.approx(expected, rel=1e-12)


def test_kto_loss_has_a_sigmoid_utility_around_the_clamped_mean_reward():
    beta = 5.0
    model = torch.tensor([0.10, 0.30, 0.40, 0.20], dtype=torch.float64)
    ref = torch.tensor([0.20, 0.25, 0.35, 0.30], dtype=torch.float64)
    desirable = torch.tensor([True, True, False, False])
    g = [0.10, -0.05, -0.05, 0.10]
    z = max(0.0, sum(g) / 4)
    expected = (
        (1 - sigmoid(beta * (g[0] - z)))
        + (1 - sigmoid(beta * (g[1] - z)))
        + (1 - sigmoid(beta * (z - g[2])))
        + (1 - sigmoid(beta * (z - g[3])))
    ) / 4
    assert objectives.kto_loss(model, ref, desirable, beta=beta).loss.item() == pytest.approx(expected, rel=1e-12)


def test_a_model_equal_to_its_reference_sits_at_log_2_for_the_sigmoid_losses():
    same = torch.tensor([0.2, 0.3], dtype=torch.float64)
    for terms in (
        objectives.popalign_loss(same, same, same, same, beta=100.0),
        objectives.popalign_paired_loss(same, same, same, same, beta=100.0, population_size=4),
        objectives.dpo_loss(same, same, same, same, beta=100.0),
    ):
        assert terms.loss.item() == pytest.approx(math.log(2))


# Pairs that are not mirror images of each other and whose winners and losers have different mean
# rewards, so a sign flip or a reference point that drops one side changes the loss.
A_M_W, A_R_W = [0.12, 0.31, 0.07], [0.20, 0.29, 0.15]
A_M_L, A_R_L = [0.40, 0.22, 0.33], [0.35, 0.30, 0.31]
A_G_W = [r - m for m, r in zip(A_M_W, A_R_W, strict=True)]  # [0.08, -0.02, 0.08]
A_G_L = [r - m for m, r in zip(A_M_L, A_R_L, strict=True)]  # [-0.05, 0.08, -0.02]


def asymmetric() -> tuple[torch.Tensor, ...]:
    return tuple(torch.tensor(v, dtype=torch.float64) for v in (A_M_W, A_R_W, A_M_L, A_R_L))


@pytest.mark.parametrize("alpha", [0.5, 0.3, 0.9])
def test_popalign_reference_point_weighs_winners_by_alpha_and_losers_by_the_rest(alpha):
    beta = 12.0
    z = alpha * sum(A_G_W) / 3 + (1 - alpha) * sum(A_G_L) / 3
    expected = (sum(softplus(beta * (g - z)) for g in A_G_W) + sum(softplus(-beta * (g - z)) for g in A_G_L)) / 6
    terms = objectives.popalign_loss(*asymmetric(), beta=beta, alpha=alpha)
    assert terms.loss.item() == pytest.approx(expected, rel=1e-12)
    # Winners ahead of the reference point lower the loss below log 2; losers ahead of it raise it.
    assert terms.loss.item() < math.log(2)
    assert terms.reward_margin == pytest.approx(sum(A_G_W) / 3 - sum(A_G_L) / 3)
    assert terms.accuracy == pytest.approx(2 / 3)  # 0.08 > -0.05, -0.02 < 0.08, 0.08 > -0.02


def test_popalign_and_dpo_fall_as_winners_gain_on_losers_and_rise_when_the_labels_are_swapped():
    beta = 12.0
    m_w, r_w, m_l, r_l = asymmetric()
    right = objectives.popalign_loss(m_w, r_w, m_l, r_l, beta=beta).loss.item()
    swapped = objectives.popalign_loss(m_l, r_l, m_w, r_w, beta=beta).loss.item()
    assert right < math.log(2) < swapped
    gap = [gw - gl for gw, gl in zip(A_G_W, A_G_L, strict=True)]  # [0.13, -0.10, 0.10]
    dpo = sum(softplus(0.5 * beta * d) for d in gap) / 3
    assert objectives.dpo_loss(m_w, r_w, m_l, r_l, beta=beta).loss.item() == pytest.approx(dpo, rel=1e-12)
    assert objectives.dpo_loss(m_w, r_w, m_l, r_l, beta=beta).loss.item() < math.log(2)
    assert objectives.dpo_loss(m_l, r_l, m_w, r_w, beta=beta).loss.item() > math.log(2)
    paired = sum(softplus(4 * beta * d) for d in gap) / 3
    terms = objectives.popalign_paired_loss(m_w, r_w, m_l, r_l, beta=beta, population_size=4)
    assert terms.loss.item() == pytest.approx(paired, rel=1e-12)


def test_kto_clamps_a_negative_mean_reward_at_zero():
    beta = 5.0
    # Every image denoised worse than by the reference: mean reward -0.0625, clamped to z = 0.
    model = torch.tensor([0.30, 0.25, 0.40, 0.35], dtype=torch.float64)
    ref = torch.tensor([0.20, 0.25, 0.30, 0.30], dtype=torch.float64)
    desirable = torch.tensor([True, True, False, False])
    g = [-0.10, 0.0, -0.10, -0.05]
    z = 0.0
    expected = (
        (1 - sigmoid(beta * (g[0] - z)))
        + (1 - sigmoid(beta * (g[1] - z)))
        + (1 - sigmoid(beta * (z - g[2])))
        + (1 - sigmoid(beta * (z - g[3])))
    ) / 4
    terms = objectives.kto_loss(model, ref, desirable, beta=beta)
    assert terms.loss.item() == pytest.approx(expected, rel=1e-12)
    assert terms.accuracy == pytest.approx(2 / 4)  # only the two undesirable images sit below z
