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


# Tests written against mutation testing (scripts/mutation objectives): what the trainers read beside the loss
# (margin and accuracy), the reference point handed in or averaged across processes, and the boundaries.


def test_paired_and_dpo_losses_report_the_reward_margin_and_the_share_of_pairs_ranked_right():
    # Rewards g = ref - model: winners [0.08, -0.02, 0.08], losers [-0.05, 0.08, -0.02]; the middle pair is wrong.
    margin = sum(A_G_W) / 3 - sum(A_G_L) / 3
    for terms in (
        objectives.popalign_paired_loss(*asymmetric(), beta=2.0, population_size=1),
        objectives.dpo_loss(*asymmetric(), beta=2.0),
    ):
        assert terms.reward_margin == pytest.approx(margin)
        assert terms.accuracy == pytest.approx(2 / 3)


def test_a_population_of_one_is_a_valid_size_for_the_paired_bound():
    beta = 3.0
    expected = sum(softplus(beta * (gw - gl)) for gw, gl in zip(A_G_W, A_G_L, strict=True)) / 3
    terms = objectives.popalign_paired_loss(*asymmetric(), beta=beta, population_size=1)
    assert terms.loss.item() == pytest.approx(expected, rel=1e-12)


def test_a_pair_whose_winner_and_loser_have_the_same_reward_is_not_ranked_right():
    same = torch.tensor([0.2, 0.3], dtype=torch.float64)
    m_w, r_w = torch.tensor([0.1, 0.3], dtype=torch.float64), same  # g_w = [0.1, 0.0]
    m_l, r_l = same, same  # g_l = [0.0, 0.0]: the second pair is a tie
    assert objectives.dpo_loss(m_w, r_w, m_l, r_l, beta=1.0).accuracy == 0.5
    assert objectives.popalign_loss(m_w, r_w, m_l, r_l, beta=1.0).accuracy == 0.5


def global_mean_of(other_half: torch.Tensor):  # type: ignore[no-untyped-def]
    """The mean over this process's tensor and another process's (what training.distributed passes)."""
    return lambda tensor: torch.cat((tensor, other_half.to(tensor.dtype))).mean()


def test_popalign_takes_its_reference_point_over_the_whole_batch_across_processes():
    beta, alpha = 12.0, 0.5
    # The other process's rewards: mean 0.3 for both winners and losers, far from this process's.
    other = torch.tensor([0.2, 0.4], dtype=torch.float64)
    z = alpha * (sum(A_G_W) + 0.6) / 5 + (1 - alpha) * (sum(A_G_L) + 0.6) / 5
    expected = (sum(softplus(beta * (g - z)) for g in A_G_W) + sum(softplus(-beta * (g - z)) for g in A_G_L)) / 6
    terms = objectives.popalign_loss(*asymmetric(), beta=beta, batch_mean=global_mean_of(other))
    assert terms.loss.item() == pytest.approx(expected, rel=1e-12)


def test_popalign_and_kto_use_a_reference_point_handed_in_instead_of_this_batchs():
    beta, z = 12.0, 0.05
    expected = (sum(softplus(beta * (g - z)) for g in A_G_W) + sum(softplus(-beta * (g - z)) for g in A_G_L)) / 6
    handed = torch.tensor(z, dtype=torch.float64)
    terms = objectives.popalign_loss(*asymmetric(), beta=beta, reference_point=handed)
    assert terms.loss.item() == pytest.approx(expected, rel=1e-12)

    # KTO on rewards that are not mirror images ([0.10, 0.02] desirable, [-0.05, 0.04] not), so z matters.
    m, r = [0.10, 0.28, 0.40, 0.26], [0.20, 0.30, 0.35, 0.30]
    g = [b - a for a, b in zip(m, r, strict=True)]
    model, ref = torch.tensor(m, dtype=torch.float64), torch.tensor(r, dtype=torch.float64)
    desirable = torch.tensor([True, True, False, False])
    utility = [
        sigmoid(5.0 * (g[0] - z)),
        sigmoid(5.0 * (g[1] - z)),
        sigmoid(5.0 * (z - g[2])),
        sigmoid(5.0 * (z - g[3])),
    ]
    kto = objectives.kto_loss(model, ref, desirable, beta=5.0, reference_point=handed)
    assert kto.loss.item() == pytest.approx(sum(1 - u for u in utility) / 4, rel=1e-12)


def test_kto_takes_its_mean_reward_across_processes():
    beta = 5.0
    # Desirable and undesirable rewards that are not mirror images ([0.10, 0.02] against [-0.05, 0.04]),
    # so the loss depends on where z sits.
    m, r = [0.10, 0.28, 0.40, 0.26], [0.20, 0.30, 0.35, 0.30]
    g = [b - a for a, b in zip(m, r, strict=True)]
    model, ref = torch.tensor(m, dtype=torch.float64), torch.tensor(r, dtype=torch.float64)
    desirable = torch.tensor([True, True, False, False])
    other = torch.tensor([0.5, 0.3], dtype=torch.float64)  # another process's rewards
    z = (sum(g) + 0.8) / 6
    utility = [
        sigmoid(beta * (g[0] - z)),
        sigmoid(beta * (g[1] - z)),
        sigmoid(beta * (z - g[2])),
        sigmoid(beta * (z - g[3])),
    ]
    terms = objectives.kto_loss(model, ref, desirable, beta=beta, batch_mean=global_mean_of(other))
    assert terms.loss.item() == pytest.approx(sum(1 - u for u in utility) / 4, rel=1e-12)
    # This batch's own mean (0.0275) would give another loss.
    assert objectives.kto_loss(model, ref, desirable, beta=beta).loss.item() != pytest.approx(terms.loss.item())


def test_kto_reports_the_margin_between_desirable_and_undesirable_rewards_and_zero_without_both():
    model = torch.tensor([0.10, 0.30, 0.40, 0.20, 0.30], dtype=torch.float64)
    ref = torch.tensor([0.20, 0.25, 0.35, 0.30, 0.30], dtype=torch.float64)
    desirable = torch.tensor([True, True, False, False, False])
    # g = [0.10, -0.05, -0.05, 0.10, 0.0]; mean 0.02, so z = 0.02.
    terms = objectives.kto_loss(model, ref, desirable, beta=5.0)
    assert terms.reward_margin == pytest.approx((0.10 - 0.05) / 2 - (-0.05 + 0.10 + 0.0) / 3)
    assert terms.accuracy == pytest.approx(3 / 5)  # right: 0.10 > z (desirable); -0.05 and 0.0 < z (not)
    only_desirable = objectives.kto_loss(model[:2], ref[:2], desirable[:2], beta=5.0)
    only_undesirable = objectives.kto_loss(model[2:], ref[2:], desirable[2:], beta=5.0)
    assert (only_desirable.reward_margin, only_undesirable.reward_margin) == (0.0, 0.0)


def test_kto_does_not_count_an_undesirable_image_exactly_at_the_reference_point_as_ranked_right():
    # Rewards [0.0, 0.0, -0.2]: mean negative, z clamped to 0; the first undesirable image sits at z.
    model = torch.tensor([0.3, 0.3, 0.5], dtype=torch.float64)
    ref = torch.tensor([0.3, 0.3, 0.3], dtype=torch.float64)
    desirable = torch.tensor([True, False, False])
    assert objectives.kto_loss(model, ref, desirable, beta=5.0).accuracy == pytest.approx(1 / 3)
