"""Builds the tiny offline models: a byte-level CLIP tokenizer and a small Stable Diffusion component set.

Also tokenizers for the transformer families' long text encoders (a character-level T5, a byte-level Gemma),
which tests and benchmarks use to build SD3, FLUX, PixArt and Sana pipelines from config with nothing downloaded.

The same builders make the random-weight `builtin:tiny-random` stand-ins (`generation.pipelines`), the
components that `train_demo_model` trains into `builtin:shapes` (`generation.shapes_model`) and the
tiny CLIP of the metrics tests (`metrics.classifiers`). Weights are drawn from torch's global
generator in a fixed order (VAE, UNet, text encoder), so a caller that seeds torch first gets the
same weights every time; keep that order, or the committed shapes model no longer reproduces.

torch, diffusers and transformers are imported inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import json
import string
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from transformers import CLIPTextConfig, CLIPTokenizer, GemmaTokenizer, T5Tokenizer

MAX_TOKENS = 77
# The characters the character-level T5 tokenizer has pieces for; anything else reads as <unk>.
T5_CHARACTERS = string.ascii_letters + string.digits + string.punctuation


def _bytes_to_unicode() -> list[str]:
    # GPT-2/CLIP's reversible byte-to-printable-character table, so every byte is one vocabulary symbol.
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), 256))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def write_byte_tokenizer(folder: Path, *, max_length: int = MAX_TOKENS) -> CLIPTokenizer:
    """Write and load a CLIP tokenizer whose tokens are single bytes: every prompt gets distinct ids.

    256 byte symbols, the same with `</w>`, two specials, no merges: nothing is downloaded.
    """
    from transformers import CLIPTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    chars = _bytes_to_unicode()
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}), encoding="utf-8")
    # A header-only merges file: words split into byte tokens, so different prompts still get different ids.
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    # Without model_max_length the pipeline would pad to the library default of about 1e30 tokens.
    return CLIPTokenizer.from_pretrained(str(folder), model_max_length=max_length)


def char_t5_tokenizer(*, max_length: int = 512) -> T5Tokenizer:
    """A T5 tokenizer whose pieces are single characters: a word is "▁" plus its first character, then one
    piece per character, then `</s>`. Built in memory (the pipeline's save_pretrained writes it): nothing is
    downloaded. For the T5 encoders of tiny SD3, FLUX and PixArt pipelines and of GPU benchmarks."""
    from transformers import T5Tokenizer

    vocab = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("▁", -2.0)]
    vocab += [(c, -3.0) for c in T5_CHARACTERS] + [("▁" + c, -3.5) for c in T5_CHARACTERS]
    return T5Tokenizer(vocab=vocab, extra_ids=0, model_max_length=max_length)


def byte_gemma_tokenizer() -> GemmaTokenizer:
    """A Gemma tokenizer that reads every byte as one token (byte fallback, no merges), for Sana's Gemma encoder."""
    from transformers import GemmaTokenizer

    vocab = {"<pad>": 0, "<eos>": 1, "<bos>": 2, "<unk>": 3, "<mask>": 4}
    vocab.update({f"<0x{byte:02X}>": 5 + byte for byte in range(256)})
    return GemmaTokenizer(vocab=vocab, merges=[], model_max_length=8192)


def text_config(tokenizer: CLIPTokenizer, *, hidden: int, layers: int) -> CLIPTextConfig:
    """A small CLIP text transformer's configuration for `tokenizer` (four heads, MLP twice the width)."""
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=MAX_TOKENS,
        # Must match the tokenizer, or the pooled (end-of-text) embedding is read from the wrong position.
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


class Components(NamedTuple):
    vae: Any
    unet: Any
    text_encoder: Any
    scheduler: Any


def build_components(
    tokenizer: CLIPTokenizer,
    *,
    image_size: int,
    vae_channels: Sequence[int],
    unet_channels: Sequence[int],
    text_hidden: int,
    text_layers: int,
) -> Components:
    """Fresh VAE, UNet, text encoder and sampling scheduler, initialised from torch's global generator.

    The VAE downsamples by 2 per block after the first; the UNet's first block is plain and the
    rest cross-attend to the text encoder's hidden states.
    """
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    factor = 2 ** (len(vae_channels) - 1)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=list(vae_channels),
        layers_per_block=1,
        norm_num_groups=8,
        sample_size=image_size,
        down_block_types=["DownEncoderBlock2D"] * len(vae_channels),
        up_block_types=["UpDecoderBlock2D"] * len(vae_channels),
    )
    attended = len(unet_channels) - 1
    unet = UNet2DConditionModel(
        sample_size=image_size // factor,
        in_channels=4,
        out_channels=4,
        block_out_channels=tuple(unet_channels),
        layers_per_block=1,
        norm_num_groups=8,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * attended,
        up_block_types=("CrossAttnUpBlock2D",) * attended + ("UpBlock2D",),
        cross_attention_dim=text_hidden,
        attention_head_dim=8,
    )
    text_encoder = CLIPTextModel(text_config(tokenizer, hidden=text_hidden, layers=text_layers))
    # sd-turbo's Euler settings, so few-step sampling behaves as on the real model; trailing spacing
    # starts sampling from pure noise at t=999.
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        timestep_spacing="trailing",
        prediction_type="epsilon",
        steps_offset=1,
    )
    return Components(vae, unet, text_encoder, scheduler)


def offline_pipeline(components: Components, tokenizer: CLIPTokenizer) -> Any:
    """The components as a StableDiffusionPipeline without a safety checker: an offline model draws shapes or noise."""
    from diffusers import StableDiffusionPipeline

    return StableDiffusionPipeline(
        vae=components.vae,
        text_encoder=components.text_encoder,
        tokenizer=tokenizer,
        unet=components.unet,
        scheduler=components.scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
