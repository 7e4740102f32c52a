"""Tiny random-weight SD3, FLUX, PixArt-Sigma and Sana pipelines, built from config and saved as a hub folder.

Shaped after diffusers' own fast tests (`get_dummy_components` in tests/pipelines/stable_diffusion_3, flux,
pixart_sigma, sana), with tokenizers built offline instead of downloaded (generation.tiny_models): the CLIP
byte tokenizer, a T5 tokenizer whose pieces are single characters (a word is "▁" plus its first character,
then one piece per character, then `</s>`), and a Gemma tokenizer that reads every byte as one token. The
VAEs of SD3, FLUX and PixArt downsample by 8 as the released models do, so the size rules are real.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from generation.tiny_models import byte_gemma_tokenizer, char_t5_tokenizer, text_config, write_byte_tokenizer

FAMILY_NAMES = ("sd3", "flux", "pixart-sigma", "sana")
MOST_TOKENS = 512


def _t5_encoder(tokenizer: Any, width: int = 32) -> Any:
    from transformers import T5Config, T5EncoderModel

    return T5EncoderModel(
        T5Config(
            vocab_size=len(tokenizer),
            d_model=width,
            d_kv=8,
            d_ff=2 * width,
            num_layers=1,
            num_heads=4,
            relative_attention_num_buckets=8,
            is_encoder_decoder=False,
            use_cache=False,
        )
    )


def _vae(latent_channels: int = 4) -> Any:
    from diffusers import AutoencoderKL

    # Four blocks: a downsampling factor of 8, as in the released SD3, FLUX and PixArt VAEs.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=(8, 8, 8, 8),
        down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4,
        layers_per_block=1,
        latent_channels=latent_channels,
        norm_num_groups=4,
        sample_size=32,
        use_quant_conv=False,
        use_post_quant_conv=False,
        shift_factor=0.0609,
        scaling_factor=1.5035,
    )


def _clip(folder: Path, projection: bool) -> tuple[Any, Any]:
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    tokenizer = write_byte_tokenizer(folder)
    config = text_config(tokenizer, hidden=32, layers=1)
    config.projection_dim = 32
    return (CLIPTextModelWithProjection if projection else CLIPTextModel)(config), tokenizer


def _sd3(scratch: Path) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

    text_encoder, tokenizer = _clip(scratch / "clip", projection=True)
    text_encoder_2, tokenizer_2 = _clip(scratch / "clip-2", projection=True)
    tokenizer_3 = char_t5_tokenizer(max_length=MOST_TOKENS)
    return StableDiffusion3Pipeline(
        transformer=SD3Transformer2DModel(
            sample_size=4,
            patch_size=2,
            in_channels=4,
            num_layers=1,
            attention_head_dim=8,
            num_attention_heads=4,
            caption_projection_dim=32,
            joint_attention_dim=32,
            pooled_projection_dim=64,
            out_channels=4,
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_vae(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=text_encoder_2,
        tokenizer_2=tokenizer_2,
        text_encoder_3=_t5_encoder(tokenizer_3),
        tokenizer_3=tokenizer_3,
    )


def _flux(scratch: Path) -> Any:
    from diffusers import FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel

    text_encoder, tokenizer = _clip(scratch / "clip", projection=False)
    tokenizer_2 = char_t5_tokenizer(max_length=MOST_TOKENS)
    return FluxPipeline(
        # 4 latent channels packed 2x2 into 16 per token, as FLUX packs its 16 into 64.
        transformer=FluxTransformer2DModel(
            patch_size=1,
            in_channels=16,
            num_layers=1,
            num_single_layers=1,
            attention_head_dim=16,
            num_attention_heads=2,
            joint_attention_dim=32,
            pooled_projection_dim=32,
            axes_dims_rope=[4, 4, 8],
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(),
        vae=_vae(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        text_encoder_2=_t5_encoder(tokenizer_2),
        tokenizer_2=tokenizer_2,
    )


def _pixart_sigma(scratch: Path) -> Any:
    from diffusers import DPMSolverMultistepScheduler, PixArtSigmaPipeline, PixArtTransformer2DModel

    tokenizer = char_t5_tokenizer(max_length=MOST_TOKENS)
    return PixArtSigmaPipeline(
        transformer=PixArtTransformer2DModel(
            # 32: the sample size PixArt's pipeline snaps sizes to its 256 px aspect-ratio bins for.
            sample_size=32,
            num_layers=1,
            patch_size=2,
            attention_head_dim=8,
            num_attention_heads=3,
            caption_channels=32,
            in_channels=4,
            cross_attention_dim=24,
            out_channels=8,
            attention_bias=True,
            activation_fn="gelu-approximate",
            num_embeds_ada_norm=1000,
            norm_type="ada_norm_single",
            norm_elementwise_affine=False,
            norm_eps=1e-6,
        ),
        vae=_vae(),
        scheduler=DPMSolverMultistepScheduler(),
        text_encoder=_t5_encoder(tokenizer),
        tokenizer=tokenizer,
    )


def _sana(scratch: Path) -> Any:
    from diffusers import AutoencoderDC, FlowMatchEulerDiscreteScheduler, SanaPipeline, SanaTransformer2DModel
    from transformers import Gemma2Config, Gemma2Model

    tokenizer = byte_gemma_tokenizer()
    return SanaPipeline(
        transformer=SanaTransformer2DModel(
            patch_size=1,
            in_channels=4,
            out_channels=4,
            num_layers=1,
            num_attention_heads=2,
            attention_head_dim=4,
            num_cross_attention_heads=2,
            cross_attention_head_dim=4,
            cross_attention_dim=8,
            caption_channels=8,
            sample_size=32,
        ),
        # A two-block DC-AE: a factor of 2 where the released one has 32, so a test image stays a few tokens.
        vae=AutoencoderDC(
            in_channels=3,
            latent_channels=4,
            attention_head_dim=2,
            encoder_block_types=("ResBlock", "EfficientViTBlock"),
            decoder_block_types=("ResBlock", "EfficientViTBlock"),
            encoder_block_out_channels=(8, 8),
            decoder_block_out_channels=(8, 8),
            encoder_qkv_multiscales=((), (5,)),
            decoder_qkv_multiscales=((), (5,)),
            encoder_layers_per_block=(1, 1),
            decoder_layers_per_block=[1, 1],
            downsample_block_type="conv",
            upsample_block_type="interpolate",
            decoder_norm_types="rms_norm",
            decoder_act_fns="silu",
            scaling_factor=0.41407,
        ),
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
        text_encoder=Gemma2Model(
            Gemma2Config(
                head_dim=16,
                hidden_size=8,
                intermediate_size=16,
                max_position_embeddings=8192,
                num_attention_heads=2,
                num_hidden_layers=1,
                num_key_value_heads=2,
                vocab_size=len(tokenizer),
                attn_implementation="eager",
            )
        ),
        tokenizer=tokenizer,
    )


BUILDERS: dict[str, Callable[[Path], Any]] = {
    "sd3": _sd3,
    "flux": _flux,
    "pixart-sigma": _pixart_sigma,
    "sana": _sana,
}


def save_tiny_pipeline(family: str, folder: Path, *, seed: int = 0) -> Path:
    """Build the tiny `family` pipeline from config with torch seeded by `seed` and save it to `folder`."""
    import torch

    torch.manual_seed(seed)
    pipeline = BUILDERS[family](folder.parent / f".{folder.name}-tokenizers")
    pipeline.save_pretrained(str(folder))
    return folder
