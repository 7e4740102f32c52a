"""Each step's examples: drawn from the run's own generators, then built per objective family and split.

No Django. A step draws its whole effective batch (per-process batch x accumulate x processes) as one sequence,
alike on every process: which pairs or labelled images (`Draws.items`, a random.Random that a resumed run
restores), and per example a noise, a timestep, a preserved caption and a timestep below the trained range
(`Draws.step_generator`, a torch.Generator seeded from the seed and the step, so any process at any step draws
the same without replaying earlier ones). Python's and torch's global generators are neither read nor seeded;
`drawing_from` lends torch's to a generator for code that knows no other (peft's adapter initialisation).

Because the draw is one sequence whatever it is split into, a step of batch b accumulated k times on N
processes sees exactly the examples a step of batch b x k x N sees in one process (`distributed.micro_slices`).
A family's builder turns one slice into a `Batch` on the device: `pairs` (PopAlign, its paired bound, DPO)
denoise each winner and its loser on one noise and timestep; `labelled` (KTO) denoises each image once.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from training import objectives
from training.encoding import EncodedData

if TYPE_CHECKING:
    import torch


@dataclass
class Draws:
    """Where a run's randomness comes from: `items` picks the examples and preserved captions, the step's own
    torch.Generator (from `seed` and the step) draws noise and timesteps, `init` initialises a LoRA."""

    seed: int
    items: random.Random
    init: torch.Generator

    @classmethod
    def from_seed(cls, seed: int) -> Draws:
        import torch

        return cls(seed, random.Random(f"{seed}-0"), torch.Generator().manual_seed(seed))

    def step_generator(self, step: int) -> torch.Generator:
        import torch

        return torch.Generator().manual_seed(self.seed * 1_000_003 + step)


@contextlib.contextmanager
def drawing_from(generator: torch.Generator) -> Iterator[None]:
    """Run code that draws from torch's global CPU generator on `generator`'s stream instead; the global
    generator's state is as it was afterwards, and `generator` has moved on by what was drawn."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.set_rng_state(generator.get_state())
        try:
            yield
        finally:
            generator.set_state(torch.get_rng_state())


@dataclass(frozen=True)
class StepDraw:
    """A step's whole effective batch, on the CPU: the drawn items and, per item, noise, timestep, preserved
    caption index and timestep below the trained range."""

    items: list[tuple[int, int, Any]]
    noise: torch.Tensor
    timesteps: torch.Tensor
    below: torch.Tensor
    held: list[int]


def draw_step(
    pool: list[tuple[int, int, Any]],
    draws: Draws,
    step: int,
    *,
    size: int,
    latent_shape: tuple[int, ...],
    min_timestep: int,
    timesteps: int,
    preserved: list[int],
) -> StepDraw:
    """Draw `size` items from `pool` and their noise, timesteps and preserved captions for step `step`."""
    import torch

    items = [pool[draws.items.randrange(len(pool))] for _ in range(size)]
    generator = draws.step_generator(step)
    noise = torch.randn((size, *latent_shape), generator=generator)
    trained = torch.randint(min_timestep, timesteps, (size,), generator=generator)
    below = torch.randint(0, max(min_timestep, 1), (size,), generator=generator)
    held = [draws.items.choice(preserved) for _ in items] if preserved else [0] * size
    return StepDraw(items, noise, trained, below, held)


@dataclass(frozen=True)
class Batch:
    """One process's share of one micro-batch, on the device.

    What the UNet denoises for the objective: `latents`, `noise`, `timesteps` and `captions` (caption indices),
    for pairs the winners then the losers on the same noise and timesteps. What preservation holds: the first
    `len(held)` of them (the winners, or the images), with `held` (a preserved caption each) and `below` (a
    timestep under the trained range each). `desirable`: KTO's label per image (None for pairs).
    """

    latents: torch.Tensor
    noise: torch.Tensor
    timesteps: torch.Tensor
    captions: torch.Tensor
    held: torch.Tensor
    below: torch.Tensor
    desirable: torch.Tensor | None = None

    @property
    def examples(self) -> int:
        return len(self.held)

    def anchor(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """The examples preservation holds: latents, noise, timesteps and captions of the first `examples`."""
        n = self.examples
        return self.latents[:n], self.noise[:n], self.timesteps[:n], self.captions[:n]

    def loss_inputs(self, model_errors: torch.Tensor, reference_errors: torch.Tensor) -> objectives.LossInputs:
        """The family's loss inputs from per-row errors: (model_w, ref_w, model_l, ref_l) or (model, ref, desirable)."""
        if self.desirable is not None:
            return model_errors, reference_errors, self.desirable
        n = self.examples
        return model_errors[:n], reference_errors[:n], model_errors[n:], reference_errors[n:]


def _common(draw: StepDraw, part: slice, device: str, dtype: torch.dtype) -> dict[str, Any]:
    import torch

    return {
        "noise": draw.noise[part].to(device, dtype),
        "timesteps": draw.timesteps[part].to(device),
        "held": torch.tensor(draw.held[part], device=device),
        "below": draw.below[part].to(device),
    }


def pairs_batch(encoded: EncodedData, draw: StepDraw, part: slice, device: str) -> Batch:
    """Winners then losers, each pair on one noise and timestep (it cancels most of the timestep's variance)."""
    import torch

    chosen = draw.items[part]
    common = _common(draw, part, device, encoded.latents.dtype)
    winners = encoded.latents[[p[0] for p in chosen]]
    losers = encoded.latents[[p[1] for p in chosen]]
    captions = torch.tensor([p[2] for p in chosen], device=device)
    noise, timesteps = common["noise"], common["timesteps"]
    return Batch(
        latents=torch.cat((winners, losers)),
        noise=torch.cat((noise, noise)),
        timesteps=torch.cat((timesteps, timesteps)),
        captions=torch.cat((captions, captions)),
        held=common["held"],
        below=common["below"],
    )


def labelled_batch(encoded: EncodedData, draw: StepDraw, part: slice, device: str) -> Batch:
    """Each image once, with its label."""
    import torch

    chosen = draw.items[part]
    return Batch(
        latents=encoded.latents[[c[0] for c in chosen]],
        captions=torch.tensor([c[1] for c in chosen], device=device),
        desirable=torch.tensor([c[2] for c in chosen], device=device),
        **_common(draw, part, device, encoded.latents.dtype),
    )


@dataclass(frozen=True)
class Family:
    """What a step of an objective family draws from and how it builds a batch of it."""

    pool: Callable[[EncodedData], list[Any]]
    build: Callable[[EncodedData, StepDraw, slice, str], Batch]


FAMILIES: dict[str, Family] = {
    objectives.PAIRS: Family(lambda encoded: encoded.pairs, pairs_batch),
    objectives.LABELLED: Family(lambda encoded: encoded.images, labelled_batch),
}
