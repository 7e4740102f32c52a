"""Loading and running text-to-image pipelines: the Django-free core that the generation worker adapts rows to."""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import math
import os
import re
import shutil
import tempfile
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast, get_args

from generation.families import (
    FAMILIES,
    FAMILY_SETTINGS,
    MOST_SEQUENCE_LENGTH,
    describe,
    families_taking,
    family_of,
    is_truncated,
    size_step,
)
from generation.image_files import encode_canonical
from generation.tiny_models import Components, build_components, offline_pipeline, write_byte_tokenizer

if TYPE_CHECKING:
    import torch
    from diffusers import DiffusionPipeline
    from PIL import Image

DType = Literal["auto", "float32", "float16", "bfloat16"]
# Memory options for a model larger than the GPU: diffusers' model offload (a component on the GPU while it runs)
# or sequential offload (a layer at a time: slowest, least memory).
Offload = Literal["model", "sequential"]

BUILTIN_PREFIX = "builtin:"
TINY_RANDOM = "tiny-random"
MAX_STEPS = 200
# Larger than any current model's native size; a typo like 51200 should fail fast, not allocate the GPU away.
MAX_SIDE = 4096
# Keys of a generator's settings that the worker interprets itself (prompt augmentation), not the pipeline.
PASSTHROUGH_SETTINGS = frozenset({"augment"})
# Bump when build_tiny_pipeline's architecture changes, so cached folders built by an older layout are not reused.
_TINY_LAYOUT_VERSION = 1
# One element of a cache key: JSON-like scalars and the palette tuple.
KeyPart = str | int | float | bool | tuple[float, ...] | None
_DEVICE_RE = re.compile(r"^(?P<type>cpu|mps|cuda)(?::(?P<index>\d+))?$")


class PipelineError(ValueError):
    """A pipeline could not be configured, loaded or run; the message is meant for an operator to read."""


def _fail_setting(name: str, requirement: str, value: object) -> PipelineError:
    return PipelineError(f"setting {name!r} must be {requirement}, got {value!r}")


def _is_int(value: object) -> bool:
    # bool is an int subclass, but `"steps": true` in JSON is a mistake, not 1 step.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(cast(float, value))


@dataclass(frozen=True)
class PipelineSpec:
    """Everything needed to load a pipeline and call it; built from a generator's source and JSON settings."""

    source: str
    steps: int = 4
    guidance_scale: float = 0.0
    width: int = 64
    height: int = 64
    scheduler: str | None = None
    dtype: DType = "auto"
    lora: str | None = None
    lora_scale: float = 1.0
    compile: bool = False
    channels_last: bool = True
    init_seed: int = 0
    palette: tuple[float, float, float] | None = None
    # Transformer families only (generation.families): how far the long text encoder reads; snapping to trained sizes.
    max_sequence_length: int | None = None
    resolution_binning: bool | None = None
    offload: Offload | None = None
    vae_tiling: bool = False

    def __post_init__(self) -> None:
        # Validation lives here rather than in from_settings so a spec built in code is checked the same way.
        if not isinstance(self.source, str) or not self.source.strip():
            raise PipelineError(f"the source must be a hub id, a folder or builtin:NAME, got {self.source!r}")
        if not _is_int(self.steps) or not 1 <= self.steps <= MAX_STEPS:
            raise _fail_setting("steps", f"an integer from 1 to {MAX_STEPS}", self.steps)
        if not _is_number(self.guidance_scale) or self.guidance_scale < 0:
            raise _fail_setting("guidance_scale", "a number >= 0", self.guidance_scale)
        for side in ("width", "height"):
            value = getattr(self, side)
            if not _is_int(value) or value <= 0 or value % 8 or value > MAX_SIDE:
                # Latents are image/8 in SD and SDXL, so other sizes fail deep inside the UNet.
                raise _fail_setting(side, f"a positive multiple of 8 up to {MAX_SIDE}", value)
        if self.scheduler is not None and (not isinstance(self.scheduler, str) or not self.scheduler.isidentifier()):
            raise _fail_setting(
                "scheduler", 'a diffusers scheduler class name like "EulerDiscreteScheduler"', self.scheduler
            )
        if self.dtype not in get_args(DType):
            raise _fail_setting("dtype", "one of " + ", ".join(get_args(DType)), self.dtype)
        if self.lora is not None and (not isinstance(self.lora, str) or not self.lora.strip()):
            raise _fail_setting("lora", "a LoRA file, folder or hub id", self.lora)
        if not _is_number(self.lora_scale):
            raise _fail_setting("lora_scale", "a number", self.lora_scale)
        if self.max_sequence_length is not None and (
            not _is_int(self.max_sequence_length) or not 1 <= self.max_sequence_length <= MOST_SEQUENCE_LENGTH
        ):
            raise _fail_setting(
                "max_sequence_length", f"an integer from 1 to {MOST_SEQUENCE_LENGTH} (tokens)", self.max_sequence_length
            )
        if self.resolution_binning is not None and not isinstance(self.resolution_binning, bool):
            raise _fail_setting("resolution_binning", "true or false", self.resolution_binning)
        if self.offload is not None and self.offload not in get_args(Offload):
            raise _fail_setting("offload", "one of " + ", ".join(get_args(Offload)) + " (or absent)", self.offload)
        for flag in ("compile", "channels_last", "vae_tiling"):
            if not isinstance(getattr(self, flag), bool):
                raise _fail_setting(flag, "true or false", getattr(self, flag))
        if not _is_int(self.init_seed) or not 0 <= self.init_seed < 2**63:
            raise _fail_setting("init_seed", "an integer from 0 to 2**63 - 1", self.init_seed)
        if self.palette is not None:
            palette = self.palette
            if not isinstance(palette, list | tuple) or len(palette) != 3 or not all(map(_is_number, palette)):
                raise _fail_setting("palette", "three numbers (an RGB offset in [-1, 1] units)", palette)
            # JSON gives lists and ints; a normalised tuple of floats keeps `key` hashable and stable.
            object.__setattr__(self, "palette", tuple(float(c) for c in palette))
        object.__setattr__(self, "guidance_scale", float(self.guidance_scale))
        object.__setattr__(self, "lora_scale", float(self.lora_scale))

    @classmethod
    def from_settings(cls, source: str, settings: Mapping[str, Any] | None) -> PipelineSpec:
        """Validate a generator's JSON settings; PipelineError names the first bad or unknown setting."""
        if settings is None:
            settings = {}
        if not isinstance(settings, Mapping):
            raise PipelineError(f"settings must be a JSON object, got {type(settings).__name__}")
        known = {f.name for f in fields(cls)} - {"source"}
        unknown = sorted(set(settings) - known - PASSTHROUGH_SETTINGS)
        if unknown:
            allowed = ", ".join(sorted(known | PASSTHROUGH_SETTINGS))
            raise PipelineError(f"unknown setting {unknown[0]!r} (allowed: {allowed})")
        return cls(source=source, **{k: v for k, v in settings.items() if k in known})

    @property
    def is_builtin(self) -> bool:
        return self.source.startswith(BUILTIN_PREFIX)

    @property
    def key(self) -> tuple[KeyPart, ...]:
        """What identifies a loaded pipeline; per-call settings (steps, size, guidance) are left out."""
        # The init seed and palette only shape built-in stand-ins; ignoring them elsewhere lets two
        # generators that share a real model share one resident copy.
        builtin = (self.init_seed, self.palette) if self.is_builtin else (None, None)
        return (
            self.source,
            self.dtype,
            self.scheduler,
            self.lora,
            self.lora_scale,
            *builtin,
            self.compile,
            self.channels_last,
            self.offload,
            self.vae_tiling,
        )


@contextlib.contextmanager
def _quiet_progress_bars() -> Iterator[None]:
    # Loading and saving draw tqdm bars per component; in a worker's log they are noise, one per model switch.
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    silenced = []
    for lib in (diffusers_logging, transformers_logging):
        if lib.is_progress_bar_enabled():
            lib.disable_progress_bar()
            silenced.append(lib)
    try:
        yield
    finally:
        for lib in silenced:
            lib.enable_progress_bar()


# --- built-in offline models ---------------------------------------------------------------------------------


def _save_tiny_pipeline(folder: Path, init_seed: int, palette: tuple[float, float, float] | None) -> None:
    import torch

    torch.manual_seed(init_seed)
    tokenizer = write_byte_tokenizer(folder / "tokenizer")
    # Four VAE blocks give SD's real downsampling factor of 8, so the size rules match real models.
    vae, unet, text_encoder, scheduler = build_components(
        tokenizer, image_size=64, vae_channels=(16, 32, 32, 32), unet_channels=(32, 64), text_hidden=32, text_layers=2
    )
    if palette is not None:
        # The decoder's last bias shifts every output pixel, giving each stand-in a recognisable colour cast.
        with torch.no_grad():
            conv_out: Any = cast(Any, vae).decoder.conv_out
            conv_out.bias.add_(torch.tensor(palette, dtype=conv_out.bias.dtype))
    pipeline = offline_pipeline(Components(vae, unet, text_encoder, scheduler), tokenizer)
    cast(Any, pipeline).save_pretrained(str(folder))


def build_tiny_pipeline(folder: Path, *, init_seed: int = 0, palette: tuple[float, float, float] | None = None) -> Path:
    """Build and save a tiny random-weight Stable Diffusion pipeline at `folder`, unless one is already there."""
    folder = Path(folder)
    if (folder / "model_index.json").is_file():
        return folder
    if folder.exists():
        raise PipelineError(f"{folder} exists but holds no model_index.json; remove it to rebuild the tiny model")
    folder.parent.mkdir(parents=True, exist_ok=True)
    # Built beside the target and renamed into place, so a concurrent reader sees a whole pipeline or none.
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".tmp", dir=folder.parent))
    try:
        # mkdtemp makes the folder private; a worker running as another user may read the shared cache.
        tmp.chmod(0o755)
        with _quiet_progress_bars():
            _save_tiny_pipeline(tmp, init_seed, palette)
        try:
            os.rename(tmp, folder)
        except OSError:
            # Another process finished the same build first; its copy is as good as ours.
            if not (folder / "model_index.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def tiny_random_folder(cache_dir: Path, spec: PipelineSpec) -> Path:
    """Where the tiny-random stand-in for `spec` is cached: one folder per init seed and palette."""
    identity = json.dumps({"palette": spec.palette, "layout": _TINY_LAYOUT_VERSION})
    digest = hashlib.sha256(identity.encode()).hexdigest()[:12]
    return Path(cache_dir) / f"{TINY_RANDOM}-{spec.init_seed}-{digest}"


def _build_tiny_random(cache_dir: Path, spec: PipelineSpec) -> Path:
    return build_tiny_pipeline(tiny_random_folder(cache_dir, spec), init_seed=spec.init_seed, palette=spec.palette)


# Offline models by name after "builtin:". Each builder gets the cache folder and the spec and returns
# a saved diffusers pipeline folder, so built-ins load through the same from_pretrained path as real models.
SHAPES = "shapes"
# The demo's prompt-following toy model: trained by `manage.py train_demo_model`, committed with its recipe.
SHAPES_FOLDER = Path(__file__).resolve().parent / "builtin" / SHAPES


def _committed_shapes_model(cache_dir: Path, spec: PipelineSpec) -> Path:
    if not (SHAPES_FOLDER / "model_index.json").is_file():
        raise PipelineError(
            f"the built-in shapes model is missing from {SHAPES_FOLDER}; "
            "rebuild it with `python manage.py train_demo_model`"
        )
    return SHAPES_FOLDER


BUILTIN_BUILDERS: dict[str, Callable[[Path, PipelineSpec], Path]] = {
    TINY_RANDOM: _build_tiny_random,
    SHAPES: _committed_shapes_model,
}


def resolve_source(spec: PipelineSpec, cache_dir: Path) -> str:
    """What to pass to from_pretrained: a built-in's cached folder (built if missing), else the source as given."""
    if not spec.is_builtin:
        return spec.source
    name = spec.source.removeprefix(BUILTIN_PREFIX)
    builder = BUILTIN_BUILDERS.get(name)
    if builder is None:
        known = ", ".join(BUILTIN_PREFIX + n for n in sorted(BUILTIN_BUILDERS))
        raise PipelineError(f"unknown built-in model {spec.source!r} (known: {known})")
    return str(builder(Path(cache_dir), spec))


# --- loading ------------------------------------------------------------------------------------------------


def use_cpu_threads(threads: int = 0) -> int:
    """Give torch `threads` CPU threads (0: every core but one, at least one); returns how many.

    torch's default takes every core; a worker sharing a small machine with the web server then
    fights it for the cores, and both slow down (the web server's requests most).
    """
    import torch

    if threads < 0:
        raise PipelineError(f"threads must be 0 (automatic) or more, got {threads}")
    chosen = threads or max(1, (os.cpu_count() or 1) - 1)
    torch.set_num_threads(chosen)
    return chosen


def resolve_device(device: str) -> str:
    """Check that `device` ("cpu", "cuda", "cuda:N", "mps") exists here; return it normalised."""
    import torch

    match = _DEVICE_RE.match(device.strip().lower()) if isinstance(device, str) else None
    if match is None:
        raise PipelineError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps")
    kind, index = match["type"], match["index"]
    if kind == "cpu":
        if index not in (None, "0"):
            raise PipelineError(f"unknown device {device!r}: use cpu, cuda, cuda:N or mps")
        return "cpu"
    if kind == "mps":
        if not torch.backends.mps.is_available():
            raise PipelineError(f"device {device!r} is not available: this machine has no usable Apple MPS backend")
        return "mps"
    if not torch.cuda.is_available():
        raise PipelineError(f"device {device!r} is not available: torch sees no CUDA GPU on this machine")
    count = torch.cuda.device_count()
    if index is not None and int(index) >= count:
        raise PipelineError(f"device {device!r} is not available: this machine has {count} CUDA GPU(s)")
    # "cuda" and "cuda:0" are usually one GPU; naming it by index keeps it to one cache entry.
    return f"cuda:{index if index is not None else torch.cuda.current_device()}"


def _torch_dtype(dtype: str, device: str, pipeline_class: str | None = None) -> torch.dtype:
    import torch

    if dtype == "auto":
        if not device.startswith("cuda"):
            # On CPUs many kernels lack fp16 or are slower.
            return torch.float32
        # Half precision halves memory and doubles speed on GPUs; FLUX overflows fp16 (black images), so bf16 there.
        family = FAMILIES.get(pipeline_class or "")
        return cast("torch.dtype", getattr(torch, family.half_dtype if family is not None else "float16"))
    return cast("torch.dtype", getattr(torch, dtype))


def _pipeline_class(source: str) -> str | None:
    """The pipeline class a folder or cached hub id declares in its model_index.json, read before loading it."""
    try:
        if looks_like_path(source):
            index = json.loads((Path(source).expanduser() / "model_index.json").read_text(encoding="utf-8"))
        else:
            from diffusers import DiffusionPipeline

            index = DiffusionPipeline.load_config(source)
    except (OSError, ValueError):
        return None  # from_pretrained meets the same problem and says it in full
    name = index.get("_class_name") if isinstance(index, dict) else None
    return name if isinstance(name, str) else None


def _short(exc: BaseException) -> str:
    # str(KeyError) is only the quoted key, which reads as nothing to an operator.
    text = f"missing key {exc.args[0]!r}" if isinstance(exc, KeyError) and exc.args else str(exc).strip()
    text = text or type(exc).__name__
    first = text.splitlines()[0]
    return first if len(first) <= 300 else first[:297] + "..."


def looks_like_path(source: str) -> bool:
    # Hub ids are "owner/name"; anything absolute, relative-dotted or home-based is meant as a folder.
    return source.startswith(("/", "./", "../", "~", "\\")) or os.path.isabs(source) or Path(source).exists()


def _swap_scheduler(pipeline: DiffusionPipeline, name: str) -> None:
    import diffusers

    pipe: Any = pipeline  # components are dynamic attributes that the type checker cannot see

    cls = getattr(diffusers, name, None)
    if not isinstance(cls, type) or not issubclass(cls, diffusers.SchedulerMixin):
        compatible = sorted(c.__name__ for c in getattr(pipe.scheduler, "compatibles", []))
        hint = f" (compatible: {', '.join(compatible)})" if compatible else ""
        raise PipelineError(f"unknown scheduler {name!r}{hint}")
    # from_config keeps the model's trained beta schedule and prediction type while changing the sampler.
    pipe.scheduler = cls.from_config(pipe.scheduler.config)


def _load_lora(pipeline: DiffusionPipeline, lora: str, scale: float) -> None:
    pipe: Any = pipeline
    if not hasattr(pipe, "load_lora_weights"):
        raise PipelineError(f"cannot load LoRA {lora!r}: {type(pipe).__name__} does not support LoRA")
    try:
        pipe.load_lora_weights(lora, adapter_name="lora")
        # Fusing folds the LoRA into the base weights: no extra matmuls per step, and it compiles like the base.
        pipe.fuse_lora(lora_scale=scale)
    except (OSError, ValueError, RuntimeError, KeyError, ImportError) as exc:
        raise PipelineError(f"cannot load LoRA {lora!r}: {_short(exc)}") from exc


def import_pipeline_libraries() -> None:
    """Import torch and diffusers' pipeline classes: the seconds-long part of a process's first load_pipeline.

    A worker with nothing to do yet calls it, so that its first pipeline loads sooner. Call it from the thread
    that loads pipelines: diffusers' lazy modules are not safe to import from two threads at once.
    """
    import torch  # noqa: F401
    from diffusers import DiffusionPipeline  # noqa: F401


def load_pipeline(spec: PipelineSpec, *, device: str, cache_dir: Path) -> DiffusionPipeline:
    """Load the pipeline `spec` names onto `device`; PipelineError says why when it cannot."""
    device = resolve_device(device)
    source = resolve_source(spec, cache_dir)
    if looks_like_path(source):
        folder = Path(source).expanduser()
        if not folder.is_dir():
            raise PipelineError(f"cannot load pipeline {spec.source!r}: folder {str(folder)!r} does not exist")
        if not (folder / "model_index.json").is_file():
            reason = f"{str(folder)!r} is not a diffusers pipeline (no model_index.json)"
            raise PipelineError(f"cannot load pipeline {spec.source!r}: {reason}")
        source = str(folder)

    import torch
    from diffusers import DiffusionPipeline

    if spec.offload is not None and not device.startswith("cuda"):
        raise PipelineError(
            f"setting 'offload' moves a model's weights between the CPU and a GPU as it runs; it needs a cuda "
            f"device, not {device!r}"
        )
    # Which half precision "auto" means depends on the family, read from model_index.json before loading (GPU only).
    family_class = _pipeline_class(source) if spec.dtype == "auto" and device.startswith("cuda") else None
    dtype = _torch_dtype(spec.dtype, device, family_class)
    try:
        with _quiet_progress_bars():
            pipe: Any = DiffusionPipeline.from_pretrained(source, dtype=dtype)
    except (OSError, ValueError, RuntimeError, KeyError, TypeError, ImportError, AttributeError) as exc:
        # OSError covers hub ids that are unknown or not cached offline; the others, folders that are
        # pipelines of an unsupported shape. Either way the worker should fail the job, not crash.
        raise PipelineError(f"cannot load pipeline {spec.source!r}: {_short(exc)}") from exc

    if getattr(pipe, "safety_checker", None) is not None:
        # SD's checker blacks out false positives too; the arena judges every image exactly as generated.
        pipe.safety_checker = None
    if spec.scheduler is not None:
        _swap_scheduler(pipe, spec.scheduler)
    if spec.lora is not None:
        _load_lora(pipe, spec.lora, spec.lora_scale)
    check_settings(pipe, spec)
    if spec.vae_tiling:
        vae: Any = getattr(pipe, "vae", None)
        if not hasattr(vae, "enable_tiling"):
            raise PipelineError(f"setting 'vae_tiling': {describe(pipe)} has no VAE that decodes in tiles")
        # Decoding in tiles bounds the VAE's memory at large sizes (it is the peak of a 1024 px SDXL or FLUX call).
        vae.enable_tiling()
    if spec.offload == "model":
        pipe.enable_model_cpu_offload(device=device)
    elif spec.offload == "sequential":
        pipe.enable_sequential_cpu_offload(device=device)
    else:
        pipe.to(device)
    # SD and SDXL denoise with a UNet; SD3 and Flux with a transformer under another attribute name.
    denoiser: Any = getattr(pipe, "unet", None) or getattr(pipe, "transformer", None)
    if device.startswith("cuda") and denoiser is not None:
        if spec.channels_last:
            # Convolutions run faster in NHWC on tensor cores; a no-op for a transformer's linear layers.
            denoiser.to(memory_format=torch.channels_last)
        if spec.compile:
            # In-place compile keeps pipe.unet a UNet (config, dtype, LoRA hooks); compilation happens on first call.
            denoiser.compile()
    pipe.set_progress_bar_config(disable=True)
    return cast("DiffusionPipeline", pipe)


def pipeline_bytes(pipe: DiffusionPipeline) -> int:
    """Bytes held by the pipeline's parameters and buffers: what it costs to keep it resident."""
    import torch

    total = 0
    for component in cast(Any, pipe).components.values():
        if isinstance(component, torch.nn.Module):
            tensors = [*component.parameters(), *component.buffers()]
            total += sum(t.numel() * t.element_size() for t in tensors)
    return total


# --- resident cache -----------------------------------------------------------------------------------------


@dataclass
class _Resident:
    pipe: DiffusionPipeline
    nbytes: int


class ResidentPipelineCache:
    """Loaded pipelines kept resident up to a memory budget, least recently used evicted first."""

    def __init__(self, *, cache_dir: Path, budget_bytes: int) -> None:
        if budget_bytes < 0:
            raise ValueError(f"budget_bytes must be >= 0, got {budget_bytes}")
        self.cache_dir = Path(cache_dir)
        self.budget_bytes = budget_bytes
        self.loads = 0
        self.hits = 0
        self.evictions = 0
        self._entries: OrderedDict[tuple[KeyPart, ...], _Resident] = OrderedDict()
        # Sizes of pipelines seen before, so a reload can make room first instead of briefly holding both.
        self._known_bytes: dict[tuple[KeyPart, ...], int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, item: tuple[PipelineSpec, str]) -> bool:
        spec, device = item
        return self._cache_key(spec, device) in self._entries

    @property
    def resident_bytes(self) -> int:
        return sum(entry.nbytes for entry in self._entries.values())

    def _cache_key(self, spec: PipelineSpec, device: str) -> tuple[KeyPart, ...]:
        return (*spec.key, resolve_device(device))

    def get(self, spec: PipelineSpec, device: str) -> DiffusionPipeline:
        """The resident pipeline for `spec` on `device`, loading it (and evicting others) on a miss."""
        key = self._cache_key(spec, device)
        entry = self._entries.get(key)
        if entry is not None:
            self._entries.move_to_end(key)
            self.hits += 1
            return entry.pipe
        known = self._known_bytes.get(key)
        if known is not None:
            self._evict_until(self.budget_bytes - known)
        pipe = load_pipeline(spec, device=str(key[-1]), cache_dir=self.cache_dir)
        self.loads += 1
        nbytes = pipeline_bytes(pipe)
        self._known_bytes[key] = nbytes
        self._entries[key] = _Resident(pipe, nbytes)
        # The pipeline just asked for stays even when it alone exceeds the budget: the caller needs it now.
        self._evict_until(self.budget_bytes, keep=key)
        return pipe

    def clear(self) -> None:
        while self._entries:
            self._evict_oldest()

    def _evict_until(self, limit: int, keep: tuple[KeyPart, ...] | None = None) -> None:
        while self._entries and self.resident_bytes > limit:
            if next(iter(self._entries)) == keep:
                break
            self._evict_oldest()

    def _evict_oldest(self) -> None:
        # Keep no reference to the evicted pipeline, or emptying the CUDA cache below could not free it.
        key = self._entries.popitem(last=False)[0]
        self.evictions += 1
        device = str(key[-1])
        if device.startswith("cuda"):
            import torch

            # Freed tensors stay in torch's caching allocator until emptied; another model needs that memory.
            gc.collect()
            torch.cuda.empty_cache()


# --- generation ---------------------------------------------------------------------------------------------


@dataclass
class GeneratedImage:
    """One generated image with what reproduces it: the exact prompt text and the seed."""

    image: Image.Image
    seed: int
    prompt: str
    truncated: bool
    width: int
    height: int
    # What a hosted API was asked and answered (generation.providers); None for a local pipeline.
    provenance: dict[str, Any] | None = None


def encode_png(generated: GeneratedImage) -> bytes:
    """The image as the worker hands it to the store: already its canonical PNG (generation.image_files)."""
    return encode_canonical(generated.image)


def check_settings(pipe: DiffusionPipeline, spec: PipelineSpec) -> None:
    """PipelineError naming a setting that `pipe`'s family does not take, or a size it cannot make exactly."""
    family = family_of(pipe)
    for setting, takes in FAMILY_SETTINGS.items():
        if getattr(spec, setting) is not None and (family is None or not takes(family)):
            raise PipelineError(
                f"setting {setting!r} does not apply to {describe(pipe)}: only {families_taking(setting)} "
                "pipelines take it"
            )
    binning = spec.resolution_binning
    if binning is None:
        binning = family is not None and family.resolution_binning
    # With binning the pipeline makes a trained size and resizes the image to the one asked for.
    step = None if binning else size_step(pipe, family)
    if step is not None and (spec.width % step or spec.height % step):
        raise PipelineError(
            f"{describe(pipe)} makes images in steps of {step} pixels: width {spec.width} and height {spec.height} "
            f"must both be multiples of {step} (it would otherwise make a smaller image than the campaign shows)"
        )


def _family_arguments(pipe: DiffusionPipeline, spec: PipelineSpec) -> dict[str, Any]:
    """What a family's call takes beyond the common arguments (generation.families)."""
    family = family_of(pipe)
    arguments: dict[str, Any] = {}
    if family is None:
        return arguments
    if spec.max_sequence_length is not None:
        arguments["max_sequence_length"] = spec.max_sequence_length
    if spec.resolution_binning is not None:
        arguments["use_resolution_binning"] = spec.resolution_binning
    if family.clean_caption:
        # The encoder reads exactly the prompt recorded on the image (and without bs4/ftfy the pipeline warns per call).
        arguments["clean_caption"] = False
    return arguments


def generate(pipe: DiffusionPipeline, spec: PipelineSpec, prompts: list[str], seeds: list[int]) -> list[GeneratedImage]:
    """Generate one image per (prompt, seed) pair in a single batched pipeline call."""
    if len(prompts) != len(seeds):
        raise PipelineError(f"got {len(prompts)} prompts but {len(seeds)} seeds; they must pair up")
    if not prompts:
        return []

    import torch

    check_settings(pipe, spec)
    # One CPU generator per image: image i depends only on seed i (not on its batch neighbours), and CPU
    # random streams are the same on every machine while CUDA's differ from them.
    generators = [torch.Generator("cpu").manual_seed(seed) for seed in seeds]
    try:
        output = cast(Any, pipe)(
            prompt=list(prompts),
            generator=generators,
            num_inference_steps=spec.steps,
            guidance_scale=spec.guidance_scale,
            width=spec.width,
            height=spec.height,
            output_type="pil",
            **_family_arguments(pipe, spec),
        )
    except torch.cuda.OutOfMemoryError as exc:
        # Release the failed batch's activations so a retry with a smaller batch can fit.
        with contextlib.suppress(RuntimeError):
            torch.cuda.empty_cache()
        raise PipelineError(
            f"out of GPU memory generating {len(prompts)} images at {spec.width}x{spec.height} "
            f"from {spec.source!r}; try a smaller batch or size"
        ) from exc
    except (RuntimeError, ValueError) as exc:
        raise PipelineError(f"generation with {spec.source!r} failed: {_short(exc)}") from exc

    images = list(output.images)
    if len(images) != len(prompts):
        raise PipelineError(f"{spec.source!r} returned {len(images)} images for {len(prompts)} prompts")
    return [
        GeneratedImage(
            image=image,
            seed=seed,
            prompt=prompt,
            truncated=is_truncated(pipe, prompt, max_sequence_length=spec.max_sequence_length),
            width=image.width,
            height=image.height,
        )
        for image, seed, prompt in zip(images, seeds, prompts, strict=True)
    ]
