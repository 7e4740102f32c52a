"""The built-in offline generators of the embedded default: stand-ins, not real models.

They run without a model hub. `builtin:shapes` is the tiny prompt-following model trained
by the project on captioned shapes, whose data deliberately skews unspecified colours, so
its population-level bias is known; `builtin:tiny-random` is a random-weight pipeline
built from config for fast tests. The generation service builds and loads both through
the same `from_pretrained` path as real models.
"""

from __future__ import annotations

from generation.services import GeneratorSpec

SHAPE_COLOURS = ("red", "orange", "yellow", "green", "blue", "purple", "white", "black")

# 8 DPM-Solver++ steps instead of the 20 Euler steps the model was trained to be sampled with: fewer UNet
# passes, and as legible by bench/demo_sampler.py's reading (faithfulness to named attributes and the red
# share on open-colour prompts within a point or two; figures: BENCHMARKS.md, "Demo sampler").
SHAPES_SAMPLER = {"steps": 8, "guidance_scale": 4.0, "scheduler": "DPMSolverMultistepScheduler"}

DEMO_GENERATORS: tuple[GeneratorSpec, ...] = (
    GeneratorSpec(
        name="base",
        display_name="Base (shapes toy model)",
        description=(
            "The prompt as given. The training data draws an unspecified colour as red most of the time, "
            "so the skew shows."
        ),
        source="builtin:shapes",
        settings={**SHAPES_SAMPLER, "width": 32, "height": 32},
        is_offline_standin=True,
    ),
    GeneratorSpec(
        name="diverse-prompting",
        display_name="Diverse prompting (shapes toy model)",
        description="PopAlign's identity-augmentation baseline: the template inserts a colour drawn uniformly.",
        source="builtin:shapes",
        settings={
            **SHAPES_SAMPLER,
            "width": 32,
            "height": 32,
            "augment": {"colour": list(SHAPE_COLOURS)},
        },
        is_offline_standin=True,
    ),
    GeneratorSpec(
        name="biased-prompting",
        display_name="Biased prompting (shapes toy model)",
        description="Pins an unspecified colour to red: a deliberately narrow population.",
        source="builtin:shapes",
        settings={**SHAPES_SAMPLER, "width": 32, "height": 32, "augment": {"colour": ["red"]}},
        is_offline_standin=True,
    ),
    GeneratorSpec(
        name="random-weights",
        display_name="Random weights (noise stand-in)",
        description=(
            "A tiny random-weight Stable Diffusion pipeline built from config: colour noise that ignores the prompt."
        ),
        source="builtin:tiny-random",
        settings={
            "steps": 2,
            "guidance_scale": 0.0,
            # The same size as the shapes model: a size must never tell the sides apart.
            "width": 32,
            "height": 32,
            "init_seed": 3,
            "palette": [0.4, 0.1, -0.3],
        },
        is_offline_standin=True,
        # Its images are colour noise already: a degraded copy of them is no plainly worse side.
        gold_source=False,
    ),
)
