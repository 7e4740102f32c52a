"""The preference data as the UNet reads it: every distinct image encoded once by the frozen VAE, every caption once.

No Django. The encoders stay frozen, so a run encodes its data once before the first step and indexes it after;
under torchrun once over all its processes, each encoding its share (training.distributed.gather_shards).
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from generation.image_files import pixels_to_tensor
from training import distributed
from training.readers import PreferenceData

if TYPE_CHECKING:
    import torch

# Images per VAE call (and captions per text-encoder call) while encoding; under torchrun each process encodes
# whole batches of this size (training.distributed.gather_shards).
ENCODE_BATCH = 16


class EncodedData:
    """Latents of every distinct image (the latent distribution's mean) and embeddings of every distinct caption.

    `pairs`: (winner, loser, caption) indices per winner/loser pair; `images`: (image, caption, desirable) per
    labelled image (`labelled`: the KTO family reads those instead of pairs); `preserved`: the caption index of
    each caption held to the reference (TrainingConfig.held_captions), embedded with the rest, indexed apart.
    `encoded`: how many images and captions each process encoded (under torchrun each its share, summing to the
    distinct ones; one process: all of them).
    """

    def __init__(
        self,
        pipe: Any,
        data: PreferenceData,
        device: str,
        dtype: torch.dtype,
        *,
        labelled: bool,
        preserve: tuple[str, ...] = (),
    ) -> None:
        blobs: dict[bytes, int] = {}
        captions: dict[str, int] = {}

        def index(blob: bytes, caption: str) -> tuple[int, int]:
            return blobs.setdefault(blob, len(blobs)), captions.setdefault(caption, len(captions))

        self.pairs: list[tuple[int, int, int]] = []
        self.images: list[tuple[int, int, bool]] = []
        if labelled:
            self.images = [(*index(i.image, i.caption), i.desirable) for i in data.labelled_images()]
        else:
            for pair in data.pairs:
                winner, caption = index(pair.winner, pair.caption)
                self.pairs.append((winner, index(pair.loser, pair.caption)[0], caption))
        self.preserved = [captions.setdefault(caption, len(captions)) for caption in preserve]
        images, image_counts = distributed.gather_shards(
            list(blobs), lambda part: {"latents": encode_images(pipe.vae, part, device, dtype)}, ENCODE_BATCH
        )
        self.latents = images["latents"].to(device)
        text, caption_counts = distributed.gather_shards(
            list(captions), lambda part: encode_captions(pipe, list(part), device, dtype), ENCODE_BATCH
        )
        self.text = {key: value.to(device) for key, value in text.items()}
        self.encoded = {"images": image_counts, "captions": caption_counts}


def encode_images(vae: Any, blobs: Sequence[bytes], device: str, dtype: torch.dtype) -> torch.Tensor:
    """The VAE's latents (its distribution's mean, shifted and scaled as the UNet reads them) of each image."""
    import torch
    from PIL import Image

    shift = getattr(vae.config, "shift_factor", None) or 0.0
    latents = []
    with torch.no_grad():
        for start in range(0, len(blobs), ENCODE_BATCH):
            pictures = [Image.open(io.BytesIO(b)).convert("RGB") for b in blobs[start : start + ENCODE_BATCH]]
            batch = pixels_to_tensor(pictures).to(device, vae.dtype)
            latents.append(((vae.encode(batch).latent_dist.mean - shift) * vae.config.scaling_factor).to(dtype))
    return torch.cat(latents)


def encode_captions(pipe: Any, captions: list[str], device: str, dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Per caption: the UNet's encoder_hidden_states (and SDXL's pooled embeddings), no guidance; ENCODE_BATCH
    captions per call."""
    import torch

    parts: list[dict[str, torch.Tensor]] = []
    for start in range(0, len(captions), ENCODE_BATCH):
        with torch.no_grad():
            encoded = pipe.encode_prompt(captions[start : start + ENCODE_BATCH], device, 1, False)
        if hasattr(pipe, "text_encoder_2"):
            # SDXL: encode_prompt gives (embeds, negative, pooled, negative pooled).
            embeds, _, pooled, _ = encoded
            parts.append({"embeds": embeds.to(dtype), "pooled": pooled.to(dtype)})
        else:
            parts.append({"embeds": encoded[0].to(dtype)})
    return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}


def unet_kwargs(text: dict[str, Any], index: torch.Tensor, height: int, width: int) -> dict[str, Any]:
    """The UNet's conditioning for the captions `index` points at (SDXL: with its pooled embeddings and sizes)."""
    import torch

    kwargs: dict[str, Any] = {"encoder_hidden_states": text["embeds"][index]}
    if "pooled" in text:
        # SDXL's micro-conditioning: original size, crop (0, 0) and target size, all the training size.
        time_ids = torch.tensor([[height, width, 0, 0, height, width]], dtype=text["pooled"].dtype)
        kwargs["added_cond_kwargs"] = {
            "text_embeds": text["pooled"][index],
            "time_ids": time_ids.to(text["pooled"].device).repeat(len(index), 1),
        }
    return kwargs
