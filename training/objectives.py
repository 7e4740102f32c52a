"""Preference objectives for diffusion models, on per-image denoising errors. Pure torch, no Django.

Every objective compares the model being tuned with a frozen reference (the base) on the same noised
latents. For image i with noise eps, the trainers' implicit reward is

    g_i = ||eps_ref(x_t,i) - eps||^2 - ||eps_theta(x_t,i) - eps||^2

(the error the reference makes minus the error the model makes, each a mean over the latent's
elements): g rises when the model denoises an image better than the reference does, which is how
these objectives raise an image's likelihood. Callers pass the two errors, not g, so each loss reads
as its source writes it. Winner i and loser i share their noise and timestep (the trainers do that
too; it cancels most of the timestep's variance from g_w - g_l).

- `popalign`: PopAlign's released loss (jacklishufan/PopAlignSDXL main.py, `--loss popalign`): per image
  -log sigmoid(s * beta * (g - z)), s = +1 for a winner and -1 for a loser, with a detached reference
  point z = alpha * mean(g over winners) + (1 - alpha) * mean(g over losers), alpha 0.5.
- `popalign-paired`: the paper's per-sample bound of Bradley-Terry over two populations of N:
  -log sigmoid(N * beta * (g_w - g_l)) per winner/loser sample pair.
- `dpo`: Diffusion-DPO (SalesforceAIResearch/DiffusionDPO): -log sigmoid(-beta/2 * ((m_w - m_l) - (r_w - r_l)))
  with m, r the model's and reference's errors; that is -log sigmoid(beta/2 * (g_w - g_l)).
- `kto`: Diffusion-KTO with its sigmoid utility: desirable images 1 - sigmoid(beta * (g - z)),
  undesirable ones 1 - sigmoid(beta * (z - g)), z the batch's detached mean reward clamped at 0.

`OBJECTIVES` maps each name to its family (what a batch holds: winner/loser `pairs`, or `labelled` images),
its loss and, for the two whose reference point z is a batch statistic, how z is computed: with gradient
accumulation the trainer computes z over the whole effective batch first and hands it to every micro-batch's
loss, so accumulating k batches of b trains as one batch of b x k.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

# A tensor -> its mean over the whole batch (training.distributed.global_mean across processes).
BatchMean = Callable[["torch.Tensor"], "torch.Tensor"]

POPALIGN = "popalign"
POPALIGN_PAIRED = "popalign-paired"
DPO = "dpo"
KTO = "kto"
# What a batch holds: each winner matched with a loser of the same caption (sharing noise and timestep), or
# images each labelled desirable or not.
PAIRS = "pairs"
LABELLED = "labelled"
# PopAlign's released code weighs winners' and losers' means equally in the reference point.
POPALIGN_ALPHA = 0.5


@dataclass(frozen=True)
class LossTerms:
    """One batch's loss and what a person watching training wants to see beside it."""

    loss: torch.Tensor
    reward_margin: float  # mean g over winners minus mean g over losers: rises as preferences are learned
    accuracy: float  # share of winner/loser pairs (or labelled images) the implicit reward already ranks right


def implicit_reward(model_error: torch.Tensor, reference_error: torch.Tensor) -> torch.Tensor:
    """g = reference error - model error, per image."""
    return reference_error - model_error


def popalign_reference_point(
    model_w: torch.Tensor,
    ref_w: torch.Tensor,
    model_l: torch.Tensor,
    ref_l: torch.Tensor,
    *,
    alpha: float = POPALIGN_ALPHA,
    batch_mean: BatchMean | None = None,
) -> torch.Tensor:
    """PopAlign's z: alpha * mean(g over winners) + (1 - alpha) * mean(g over losers), detached."""
    mean = batch_mean or _mean
    g_w, g_l = implicit_reward(model_w, ref_w), implicit_reward(model_l, ref_l)
    return (alpha * mean(g_w) + (1 - alpha) * mean(g_l)).detach()


def popalign_loss(
    model_w: torch.Tensor,
    ref_w: torch.Tensor,
    model_l: torch.Tensor,
    ref_l: torch.Tensor,
    *,
    beta: float,
    alpha: float = POPALIGN_ALPHA,
    batch_mean: BatchMean | None = None,
    reference_point: torch.Tensor | None = None,
) -> LossTerms:
    """`batch_mean`: the mean over the whole global batch when it is split over processes (the reference point
    is a batch statistic); default the tensor's own mean. `reference_point`: z computed beforehand over a
    larger batch (gradient accumulation); default z of this batch."""
    import torch
    import torch.nn.functional as F  # noqa: N812 (the conventional name)

    g_w, g_l = implicit_reward(model_w, ref_w), implicit_reward(model_l, ref_l)
    if reference_point is None:
        z = popalign_reference_point(model_w, ref_w, model_l, ref_l, alpha=alpha, batch_mean=batch_mean)
    else:
        z = reference_point.detach()
    per_image = torch.cat((-F.logsigmoid(beta * (g_w - z)), -F.logsigmoid(-beta * (g_l - z))))
    return LossTerms(per_image.mean(), _margin(g_w, g_l), _accuracy(g_w, g_l))


def popalign_paired_loss(
    model_w: torch.Tensor,
    ref_w: torch.Tensor,
    model_l: torch.Tensor,
    ref_l: torch.Tensor,
    *,
    beta: float,
    population_size: int,
) -> LossTerms:
    import torch.nn.functional as F  # noqa: N812

    if population_size < 1:
        raise ValueError(f"population_size must be at least 1, got {population_size}")
    g_w, g_l = implicit_reward(model_w, ref_w), implicit_reward(model_l, ref_l)
    loss = -F.logsigmoid(population_size * beta * (g_w - g_l)).mean()
    return LossTerms(loss, _margin(g_w, g_l), _accuracy(g_w, g_l))


def dpo_loss(
    model_w: torch.Tensor, ref_w: torch.Tensor, model_l: torch.Tensor, ref_l: torch.Tensor, *, beta: float
) -> LossTerms:
    import torch.nn.functional as F  # noqa: N812

    model_diff = model_w - model_l
    ref_diff = ref_w - ref_l
    loss = -F.logsigmoid(-0.5 * beta * (model_diff - ref_diff)).mean()
    g_w, g_l = implicit_reward(model_w, ref_w), implicit_reward(model_l, ref_l)
    return LossTerms(loss, _margin(g_w, g_l), _accuracy(g_w, g_l))


def kto_reference_point(
    model: torch.Tensor, ref: torch.Tensor, desirable: torch.Tensor, *, batch_mean: BatchMean | None = None
) -> torch.Tensor:
    """Diffusion-KTO's z: the batch's mean reward clamped at 0, detached."""
    return (batch_mean or _mean)(implicit_reward(model, ref)).clamp(min=0).detach()


def kto_loss(
    model: torch.Tensor,
    ref: torch.Tensor,
    desirable: torch.Tensor,
    *,
    beta: float,
    batch_mean: BatchMean | None = None,
    reference_point: torch.Tensor | None = None,
) -> LossTerms:
    """`desirable` is a bool tensor per image (True: from a population that won); `batch_mean` and
    `reference_point` as in popalign_loss."""
    import torch

    g = implicit_reward(model, ref)
    if reference_point is None:
        z = kto_reference_point(model, ref, desirable, batch_mean=batch_mean)
    else:
        z = reference_point.detach()
    utility = torch.where(desirable, torch.sigmoid(beta * (g - z)), torch.sigmoid(beta * (z - g)))
    loss = (1 - utility).mean()
    wins, losses = g[desirable].detach(), g[~desirable].detach()
    margin = float(wins.mean() - losses.mean()) if len(wins) and len(losses) else 0.0
    right = torch.where(desirable, g > z, g < z).float().mean()
    return LossTerms(loss, margin, float(right))


@dataclass(frozen=True)
class LossSettings:
    """What a loss takes beside the errors: the preference strength, the populations' size N (popalign-paired),
    the batch mean across processes, and a reference point computed beforehand (None: from this batch)."""

    beta: float
    population_size: int = 1
    batch_mean: BatchMean | None = None
    reference_point: torch.Tensor | None = None


# A family's loss inputs: (model_w, ref_w, model_l, ref_l) for pairs, (model, ref, desirable) for labelled.
LossInputs = tuple["torch.Tensor", ...]


@dataclass(frozen=True)
class Objective:
    family: str
    loss: Callable[[LossInputs, LossSettings], LossTerms]
    # z as a batch statistic, from the same inputs (None: the loss has no reference point).
    reference_point: Callable[[LossInputs, BatchMean | None], torch.Tensor] | None = None


OBJECTIVES: dict[str, Objective] = {
    POPALIGN: Objective(
        PAIRS,
        lambda e, s: popalign_loss(*e, beta=s.beta, batch_mean=s.batch_mean, reference_point=s.reference_point),
        lambda e, mean: popalign_reference_point(*e, batch_mean=mean),
    ),
    POPALIGN_PAIRED: Objective(
        PAIRS, lambda e, s: popalign_paired_loss(*e, beta=s.beta, population_size=s.population_size)
    ),
    DPO: Objective(PAIRS, lambda e, s: dpo_loss(*e, beta=s.beta)),
    KTO: Objective(
        LABELLED,
        lambda e, s: kto_loss(*e, beta=s.beta, batch_mean=s.batch_mean, reference_point=s.reference_point),
        lambda e, mean: kto_reference_point(*e, batch_mean=mean),
    ),
}
# Objectives that need each winner matched with a loser of the same caption (shared noise, paired rows).
PAIRED = frozenset(name for name, objective in OBJECTIVES.items() if objective.family == PAIRS)


def _mean(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.mean()


def _margin(g_w: torch.Tensor, g_l: torch.Tensor) -> float:
    return float((g_w.mean() - g_l.mean()).detach())


def _accuracy(g_w: torch.Tensor, g_l: torch.Tensor) -> float:
    return float((g_w > g_l).float().mean())
