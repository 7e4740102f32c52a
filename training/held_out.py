"""What training cost: base and tuned sampled on the captions training held out, read by the campaign's backends.

The held-out captions are those of the export's campaign that the export holds no row of, with any caption named
by --preserve that the export lacks: what the preference was not asked about (on the demo, the captions that name
a colour). Both generators sample each of them `samples` times on the same seeds (training.evaluation), and the
campaign's metrics backends read the images (the shapes reader on the demo, CLIP on real models): faithfulness per
attribute and the attribute shares, with 95% intervals over draws, and the CLIP score where the campaign has a
CLIP. A faithfulness that falls by more than 5 points is a warning. Without a campaign in this database that
measures attributes, or without held-out captions, the report says why it was skipped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from generation.pipelines import PipelineSpec
from metrics.classifiers import load_backend
from metrics.config import AttributeSpec
from metrics.services import set_spec_for
from training import evaluation
from training.evaluation import Evaluation

DEFAULT_SAMPLES = 32


@dataclass(frozen=True)
class HeldOutReport:
    captions: tuple[str, ...] = ()
    samples: int = 0
    base: Evaluation | None = None
    tuned: Evaluation | None = None
    drops: list[tuple[str, float, float]] = field(default_factory=list)
    skipped: str = ""

    def warnings(self) -> list[str]:
        return [
            f"{what} fell by {100 * (before - after):.1f} points on the held-out captions ({before:.3f} -> {after:.3f})"
            for what, before, after in self.drops
        ]

    def as_dict(self) -> dict[str, Any]:
        if self.base is None or self.tuned is None:
            return {"skipped": self.skipped}
        return {
            "captions": list(self.captions),
            "samples_per_caption": self.samples,
            "image_seeds": "training.evaluation.image_seed over draws "
            f"{evaluation.FIRST_DRAW}..{evaluation.FIRST_DRAW + self.samples - 1}, the same for both",
            "base": self.base.as_dict(),
            "tuned": self.tuned.as_dict(),
            "warnings": self.warnings(),
        }

    def lines(self) -> list[str]:
        """The report as the command prints it: one line per figure, base -> tuned."""
        base, tuned = self.base, self.tuned
        if base is None or tuned is None:
            return [f"No evaluation: {self.skipped}."]
        out = [
            f"Base and tuned on {len(self.captions)} held-out caption(s), {self.samples} samples each "
            "(95% intervals over draws):"
        ]
        if base.faithfulness and tuned.faithfulness:
            out.append(f"  faithfulness            {base.faithfulness} -> {tuned.faithfulness}")
        for name, before in base.faithfulness_by_attribute.items():
            after = tuned.faithfulness_by_attribute.get(name)
            out.append(f"  {name + ' faithfulness':<23} {before} -> {after}")
        for name, shares in base.shares.items():
            for value, before in shares.items():
                out.append(f"  {name} share {value!r:<12} {before} -> {tuned.shares[name][value]}")
        if base.clip_score and tuned.clip_score:
            out.append(f"  CLIP score              {base.clip_score} -> {tuned.clip_score}")
        return out


def evaluate_held_out(
    *,
    base_pipe: Callable[[], Any],
    tuned_pipe: Any,
    spec: PipelineSpec,
    template: str,
    augment: dict[str, list[str]] | None,
    captions: Sequence[str],
    attributes: Sequence[AttributeSpec],
    samples: int,
    device: str,
) -> HeldOutReport:
    """Sample the tuned pipeline and then the base (`base_pipe` loads it) on `captions` and compare them."""
    draw_numbers = evaluation.draws(samples)

    def labels(attribute: AttributeSpec, images: Sequence[Any]) -> list[str | None]:
        backend = load_backend(attribute.backend, attribute.source or attribute.model, device=device)
        return backend.labels(images, attribute)

    scorer = None
    set_spec = set_spec_for(attributes)
    if set_spec is not None and set_spec.backend == "clip":
        clip = load_backend("clip", set_spec.source or set_spec.model, device=device)

        def scorer(image: Any, caption: str) -> float | None:
            return clip.clip_score([image], caption)

    def read(pipe: Any) -> Evaluation:
        made = evaluation.sample_images(pipe, spec, captions, draw_numbers, template=template, augment=augment)
        return evaluation.evaluate(made, attributes, labels, clip_score=scorer)

    tuned = read(tuned_pipe)
    base = read(base_pipe())
    return HeldOutReport(tuple(captions), samples, base, tuned, evaluation.faithfulness_drops(base, tuned))
