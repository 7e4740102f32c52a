"""Diffusers pipeline families: what each one's call takes beyond the common arguments, and how it reads a prompt.

A family is looked up by the loaded pipeline's class name (`family_of`). Django-free and torch-free: the
pipeline is only read through its attributes. The common call (prompt, seeds, steps, guidance, size) is
generation.pipelines.generate's; a family adds:
- `sequence_length`: the (pipeline default, most) of `max_sequence_length`, for the families whose long
  text encoder (T5 or Gemma) reads a prompt as far as that setting says; None where the CLIP tokenizers'
  fixed 77 tokens are all there is (SD 1.x/2.x, SDXL);
- `reading_tokenizer`: the pipeline attribute of the tokenizer that reads furthest into a prompt. A prompt
  counts as truncated when that one cuts it: SD3's CLIP encoders stop at 77 tokens but its T5 reads on, so
  only what T5 drops reaches no encoder at all;
- `latent_packing`: FLUX packs 2x2 latent patches into one token, so its sides step by twice the VAE's factor;
- `resolution_binning`, `clean_caption`: PixArt and Sana snap a size to the aspect ratios they were trained on
  (and resize the result back), and can rewrite captions. PopArena always passes `clean_caption=False`: the
  encoder reads exactly the prompt recorded on the image.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any

# A T5 encoder has no hard limit; SD3's and FLUX's pipelines refuse more than this, and no family was trained on more.
MOST_SEQUENCE_LENGTH = 512


@dataclass(frozen=True)
class Family:
    key: str
    label: str
    reading_tokenizer: str = "tokenizer"
    sequence_length: tuple[int, int] | None = None
    latent_packing: int = 1
    resolution_binning: bool = False
    clean_caption: bool = False
    # Sana prepends an instruction to every prompt for its Gemma encoder; max_sequence_length counts past it.
    prompt_instruction: bool = False
    # train_generator tunes a UNet (training/): these families only.
    trainable: bool = False
    # What dtype "auto" means on a GPU: half precision, in the format the family's weights hold their range in.
    half_dtype: str = "float16"

    def describe(self, class_name: str) -> str:
        return f"a {self.label} pipeline ({class_name})"


FAMILIES: dict[str, Family] = {
    "StableDiffusionPipeline": Family("sd", "Stable Diffusion 1.x/2.x", trainable=True),
    "StableDiffusionXLPipeline": Family("sdxl", "Stable Diffusion XL", trainable=True),
    "StableDiffusion3Pipeline": Family(
        "sd3", "Stable Diffusion 3", reading_tokenizer="tokenizer_3", sequence_length=(256, MOST_SEQUENCE_LENGTH)
    ),
    "FluxPipeline": Family(
        "flux",
        "FLUX.1",
        reading_tokenizer="tokenizer_2",
        sequence_length=(512, MOST_SEQUENCE_LENGTH),
        latent_packing=2,
        # FLUX's activations overflow float16 (its images come back black); it was trained and is run in bfloat16.
        half_dtype="bfloat16",
    ),
    "PixArtSigmaPipeline": Family(
        "pixart-sigma",
        "PixArt-Sigma",
        sequence_length=(300, MOST_SEQUENCE_LENGTH),
        resolution_binning=True,
        clean_caption=True,
    ),
    "SanaPipeline": Family(
        "sana",
        "Sana",
        sequence_length=(300, MOST_SEQUENCE_LENGTH),
        resolution_binning=True,
        clean_caption=True,
        prompt_instruction=True,
    ),
}
# The settings only some families take, and which.
FAMILY_SETTINGS = {
    "max_sequence_length": lambda family: family.sequence_length is not None,
    "resolution_binning": lambda family: family.resolution_binning,
}


def family_of(pipe: Any) -> Family | None:
    """The family of a loaded pipeline (by its class name), or None for a pipeline class PopArena has no rules for."""
    return FAMILIES.get(type(pipe).__name__)


def describe(pipe: Any) -> str:
    """The pipeline as a person names it: "a FLUX.1 pipeline (FluxPipeline)"."""
    name = type(pipe).__name__
    family = family_of(pipe)
    return family.describe(name) if family is not None else f"a {name}"


def families_taking(setting: str) -> str:
    takes = FAMILY_SETTINGS[setting]
    return ", ".join(family.label for family in FAMILIES.values() if takes(family))


def size_step(pipe: Any, family: Family | None) -> int | None:
    """The step an image side must be a multiple of for `pipe` to make exactly that size; None when unknown."""
    factor = getattr(pipe, "vae_scale_factor", None)
    if not isinstance(factor, int) or factor < 1:
        return None
    denoiser = getattr(pipe, "transformer", None)
    patch = getattr(getattr(denoiser, "config", None), "patch_size", None) if denoiser is not None else None
    patch = patch if isinstance(patch, int) and patch > 0 else 1
    return factor * patch * (family.latent_packing if family is not None else 1)


def _instruction(pipe: Any) -> str:
    """The instruction Sana's pipeline prepends by default (its `complex_human_instruction`), joined as it joins it."""
    parameter = inspect.signature(type(pipe).__call__).parameters.get("complex_human_instruction")
    lines = parameter.default if parameter is not None else None
    return "\n".join(lines) if isinstance(lines, list | tuple) and lines else ""


def is_truncated(pipe: Any, prompt: str, *, max_sequence_length: int | None) -> bool:
    """Whether the tokenizer that reads furthest into `prompt` cuts it, so some of the prompt reaches no encoder."""
    family = family_of(pipe)
    tokenizer = getattr(pipe, family.reading_tokenizer if family is not None else "tokenizer", None)
    if tokenizer is None:
        # SD3 loaded without its T5 (text_encoder_3=None): the CLIP tokenizer is the furthest reader left.
        tokenizer, family = getattr(pipe, "tokenizer", None), None
    if tokenizer is None:
        return False
    if family is not None and family.sequence_length is not None:
        limit = max_sequence_length or family.sequence_length[0]
    else:
        most = getattr(tokenizer, "model_max_length", None)
        if not isinstance(most, int) or most > 100_000:
            return False  # a tokenizer without a real limit (the library's default of about 1e30) cuts nothing
        limit = most
    if family is not None and family.prompt_instruction:
        instruction = _instruction(pipe)
        if instruction:
            # As Sana's pipeline counts: the instruction's tokens, then max_sequence_length - 2 of the prompt's.
            reserved = len(tokenizer.encode(instruction))
            return _length(tokenizer, instruction + prompt) > reserved + limit - 2
    return _length(tokenizer, prompt) > limit


def _length(tokenizer: Any, text: str) -> int:
    # verbose=False: the over-length warning would repeat what `truncated` already records.
    return len(tokenizer(text, truncation=False, verbose=False).input_ids)
