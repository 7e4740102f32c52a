"""Image sets made elsewhere into a campaign: every row checked against it first, then stored whole or not at all.

generation.importing reads the rows (an ImageFolder, Parquet, a save_to_disk folder, a zip of one); this is the
campaign-aware part. Every N rows (the campaign's population_size) of one generator and prompt become one ready
population of an `imported` generator, the images re-encoded as every stored image is. Checked before anything is
written, each problem named by its row: the prompt is one of the campaign's (by caption), each set has N images,
every image decodes, is not blank and has the campaign's one image size, and the generator is not a model the
workers run. Images already imported (their canonical content hash) add nothing.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import connection, transaction

from annotation.models import Campaign
from annotation.services import check_generator_sizes, sync_campaign_demand
from core.errors import ApplicationError
from generation.image_files import BadImage, canonical_png, is_blank_file
from generation.importing import ImportFileError, ImportRead, ImportRow, read_import_zip
from generation.models import Generator, Image, Prompt
from generation.services import ImageInput, ImportedSet, configured_image_size, store_imported_sets

# Image.seed is required; an import that names no seed stores this, and the image's provenance says "seed": null.
NO_SEED = 0
# The largest zip the staff page and the API take; larger imports go through `manage.py import_populations`,
# which reads a folder without holding it in memory.
MAX_IMPORT_BYTES = 512 * 1024 * 1024
# Problems listed in full in the refusal; beyond this many, a count.
MAX_LISTED_PROBLEMS = 200


class ImportRefused(ApplicationError):
    """The import has bad rows: each is named, and nothing was stored."""

    code = "import_refused"

    def __init__(self, problems: Sequence[str]) -> None:
        listed = list(problems[:MAX_LISTED_PROBLEMS])
        if len(problems) > len(listed):
            listed.append(f"... and {len(problems) - len(listed)} more")
        super().__init__(
            f"the import was refused and nothing was stored; {len(problems)} problem(s):\n" + "\n".join(listed)
        )
        self.problems = list(problems)


@dataclass(frozen=True)
class ImportResult:
    rows: int
    populations: int
    images: int
    already_imported: int  # sets whose images were all imported before
    new_generators: tuple[str, ...]

    def lines(self) -> list[str]:
        lines = [f"{self.rows} image(s) read: {self.populations} new set(s) of {self.images} image(s) stored"]
        if self.already_imported:
            lines.append(f"{self.already_imported} set(s) were imported before and added nothing")
        if self.new_generators:
            lines.append(f"new imported generator(s): {', '.join(self.new_generators)}")
        return lines


@dataclass
class _Checked:
    row: ImportRow
    data: bytes  # canonical PNG
    width: int
    height: int
    sha256: str


def _caption_key(caption: str) -> str:
    return " ".join(caption.split())


class _Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.items.append(f"{where}: {message}")


@transaction.atomic
def import_populations(*, campaign: Campaign, read: ImportRead) -> ImportResult:
    """Store the rows `read` as the campaign's image sets, all or none; ImportRefused names every bad row."""
    if connection.vendor == "postgresql":
        # Two imports into one campaign at once would both find the same sets new.
        Campaign.objects.select_for_update().filter(pk=campaign.pk).first()
    problems = _Problems()
    for problem in read.problems:
        problems.add(problem.where, problem.message)
    if not read.rows and not read.problems:
        raise ImportRefused(["the import holds no rows"])

    prompts = _campaign_prompts(campaign)
    n = campaign.population_size
    expected_size = _campaign_image_size(campaign)
    generators = {g.name: g for g in Generator.objects.filter(name__in={row.generator for row in read.rows})}

    checked: list[_Checked] = []
    for row in read.rows:
        before = len(problems.items)
        prompt = prompts.get(_caption_key(row.prompt))
        if prompt is None:
            problems.add(row.where, f"prompt {row.prompt!r} is not one of campaign {campaign.slug!r}'s prompts")
        elif isinstance(prompt, list):
            problems.add(row.where, f"prompt {row.prompt!r} matches {len(prompt)} of the campaign's prompts")
        _check_generator(row, generators, problems)
        try:
            canonical = canonical_png(row.data)
            blank = is_blank_file(canonical.data)
        except BadImage as exc:
            problems.add(row.where, f"{row.file_name or 'the image'} is not an image the arena stores: {exc}")
            continue
        if blank:
            problems.add(row.where, f"{row.file_name or 'the image'} is blank (every pixel one colour)")
        if len(problems.items) == before:
            checked.append(_Checked(row, canonical.data, canonical.width, canonical.height, _sha256(canonical.data)))

    # One image size per campaign: its generators' size, or else the size most of the import has.
    sizes = Counter((c.width, c.height) for c in checked)
    if expected_size is None:
        for generator in generators.values():
            if generator.backend == Generator.Backend.IMPORTED and configured_image_size(generator):
                expected_size = configured_image_size(generator)
                break
    if expected_size is None and sizes:
        expected_size = sizes.most_common(1)[0][0]
    keep = []
    for c in checked:
        if (c.width, c.height) != expected_size:
            assert expected_size is not None
            problems.add(
                c.row.where,
                f"{c.row.file_name or 'the image'} is {c.width}x{c.height}; campaign {campaign.slug!r} shows "
                f"{expected_size[0]}x{expected_size[1]} images (participants could tell sides apart by size)",
            )
        else:
            keep.append(c)

    sets = _group(keep, prompts, n, problems)
    new_sets, already = _new_sets(sets, problems)
    if problems.items:
        raise ImportRefused(problems.items)

    created: list[str] = []
    assert expected_size is not None or not new_sets
    for name in sorted({generator for generator, _, _ in new_sets}):
        if name not in generators:
            assert expected_size is not None
            generators[name] = Generator.objects.create(
                name=name,
                backend=Generator.Backend.IMPORTED,
                source=f"imported:{name}",
                description="Image sets imported from elsewhere (import_populations).",
                settings={"width": expected_size[0], "height": expected_size[1]},
                gold_source=True,
            )
            created.append(name)
    used = {generators[name] for name, _, _ in new_sets} | {generators[name] for name, _, _ in already}
    campaign.generators.add(*used)
    check_generator_sizes(slug=campaign.slug, generators=campaign.generators.filter(is_active=True))
    sync_campaign_demand(campaign=campaign)
    # Last: files are written here, and nothing after it can roll the rows back and leave them behind.
    stored = store_imported_sets(
        sets=[
            ImportedSet(
                generator=generators[name],
                prompt=prompt,
                images=[
                    ImageInput(
                        index=index,
                        data=c.data,
                        extension="png",
                        seed=c.row.seed if c.row.seed is not None else NO_SEED,
                        prompt=c.row.prompt,
                        truncated=False,
                        width=c.width,
                        height=c.height,
                        provenance=c.row.provenance,
                    )
                    for index, c in enumerate(members)
                ],
            )
            for (name, prompt, _), members in new_sets.items()
        ]
    )
    return ImportResult(
        rows=len(read.rows),
        populations=len(stored),
        images=sum(population.size for population in stored),
        already_imported=len(already),
        new_generators=tuple(created),
    )


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _campaign_prompts(campaign: Campaign) -> dict[str, Prompt | list[Prompt]]:
    """The campaign's prompts by caption; a caption two of its prompts share maps to both (ambiguous)."""
    found: dict[str, Prompt | list[Prompt]] = {}
    for prompt in campaign.prompts.all():
        key = _caption_key(prompt.caption)
        seen = found.get(key)
        if seen is None:
            found[key] = prompt
        else:
            found[key] = [*(seen if isinstance(seen, list) else [seen]), prompt]
    return found


def _campaign_image_size(campaign: Campaign) -> tuple[int, int] | None:
    sizes = {configured_image_size(g) for g in campaign.generators.filter(is_active=True)} - {None}
    return next(iter(sizes)) if len(sizes) == 1 else None


def _check_generator(row: ImportRow, generators: dict[str, Generator], problems: _Problems) -> None:
    try:
        validate_slug(row.generator)
    except ValidationError:
        problems.add(
            row.where,
            f"generator {row.generator!r} is not a name the arena takes (letters, digits, - and _ only, "
            "e.g. sdxl-turbo)",
        )
        return
    if len(row.generator) > 64:
        problems.add(row.where, f"generator {row.generator!r} is longer than 64 characters")
        return
    existing = generators.get(row.generator)
    if existing is not None and existing.backend != Generator.Backend.IMPORTED:
        problems.add(
            row.where,
            f"generator {row.generator!r} is already a {existing.get_backend_display()} the workers run; "
            "imported images need a generator of their own (give them another name)",
        )


SetKey = tuple[str, Prompt, str]


def _group(
    checked: Sequence[_Checked], prompts: dict[str, Prompt | list[Prompt]], n: int, problems: _Problems
) -> dict[SetKey, list[_Checked]]:
    """Rows into sets of N: by their `set` label, or else every N rows of one generator and prompt in order."""
    labelled: dict[SetKey, list[_Checked]] = defaultdict(list)
    unlabelled: dict[tuple[str, Prompt], list[_Checked]] = defaultdict(list)
    for c in checked:
        prompt = prompts[_caption_key(c.row.prompt)]
        assert isinstance(prompt, Prompt)
        if c.row.set is not None:
            labelled[(c.row.generator, prompt, f"set {c.row.set}")].append(c)
        else:
            unlabelled[(c.row.generator, prompt)].append(c)
    sets: dict[SetKey, list[_Checked]] = {}
    for (generator, prompt, label), members in labelled.items():
        if len(members) != n:
            for c in members:
                problems.add(
                    c.row.where,
                    f"{label} of generator {generator!r} for prompt {prompt.caption!r} has {len(members)} image(s); "
                    f"the campaign's sets have {n}",
                )
        else:
            sets[(generator, prompt, label)] = members
    for (generator, prompt), members in unlabelled.items():
        whole = len(members) - len(members) % n
        for start in range(0, whole, n):
            sets[(generator, prompt, f"images {start + 1}-{start + n}")] = members[start : start + n]
        for c in members[whole:]:
            problems.add(
                c.row.where,
                f"generator {generator!r} has {len(members)} image(s) without a set for prompt {prompt.caption!r}: "
                f"not a whole number of sets of {n} (this image is left over; add a `set` column or complete the set)",
            )
    return sets


def _new_sets(
    sets: dict[SetKey, list[_Checked]], problems: _Problems
) -> tuple[dict[SetKey, list[_Checked]], list[SetKey]]:
    """The sets not imported before, and those that were (the same images, in order, for that generator and prompt).

    An image already in another set of its generator (or twice in this import) is a problem: a set either comes
    again whole or is new.
    """
    hashes = {c.sha256 for members in sets.values() for c in members}
    stored: dict[tuple[str, str], tuple[int, int, int, int]] = {}  # (generator, sha) -> population, prompt, index, size
    for generator, sha, population, prompt_id, index, size in Image.objects.filter(sha256__in=hashes).values_list(
        "population__generator__name",
        "sha256",
        "population_id",
        "population__prompt_id",
        "index",
        "population__size",
    ):
        stored[(generator, sha)] = (population, prompt_id, index, size)
    new: dict[SetKey, list[_Checked]] = {}
    already: list[SetKey] = []
    seen: dict[tuple[str, str], str] = {}
    for key, members in sets.items():
        generator, prompt, _ = key
        found = [stored.get((generator, c.sha256)) for c in members]
        if all(f is not None for f in found):
            places = {(f[0], f[1], f[3]) for f in found if f is not None}
            indexes = [f[2] for f in found if f is not None]
            whole = len(places) == 1 and next(iter(places))[1:] == (prompt.pk, len(members))
            if whole and indexes == list(range(len(members))):
                already.append(key)
                continue
        duplicate = False
        for c, f in zip(members, found, strict=True):
            if f is not None:
                problems.add(c.row.where, f"this image is already in set {f[0]} of generator {generator!r}")
                duplicate = True
            elif (generator, c.sha256) in seen:
                problems.add(c.row.where, f"the same image as {seen[(generator, c.sha256)]}")
                duplicate = True
            else:
                seen[(generator, c.sha256)] = c.row.where
        if not duplicate:
            new[key] = members
    return new, already


def import_populations_zip(*, campaign: Campaign, data: bytes | IO[bytes]) -> ImportResult:
    """import_populations of a zip upload (the staff page's and the API's: its bytes, or a seekable file); a zip
    that cannot be read is ImportRefused too."""
    try:
        read = read_import_zip(data)
    except ImportFileError as exc:
        raise ImportRefused([str(exc)]) from None
    return import_populations(campaign=campaign, read=read)
