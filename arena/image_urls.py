"""Image URLs minted per comparison: each side's pictures under addresses made for one comparison, never the files'.

A set's storage name is the same in every comparison that shows it, so serving it let a participant who
saw a set revealed after one vote recognise it by URL in every later comparison, and pass the mapping on
to other sessions. A participant sees instead

    /i/<token>/<side><index>/<mac>.png

`token` is the comparison's (unguessable, and already the participant's for voting), `side` is `l` or `r`,
`index` the picture's place in its set, and `mac` an HMAC of the three keyed by SECRET_KEY
(django.core.signing's salted_hmac under its own salt). So

- the same set has different URLs in two comparisons (different tokens), and the URL never holds the
  storage name, a population, an image id or anything stable across comparisons;
- a URL cannot be made from the token alone (the token also travels in API paths and their logs) and
  cannot be edited to another picture: a changed or invented URL fails the MAC and is refused before any
  query, the same 404 as an unknown token, so the answer tells nothing about which tokens exist;
- nothing is stored to mint one: minting is pure computation, so the payload keeps its one query; rotating
  SECRET_KEY voids every URL at once.

A URL works while its comparison is held (issued, lease not run out) and for COMPARISON_IMAGE_TTL_S
seconds after its vote (the page keeps showing the sets beside the reveal); after a lease ran out unvoted,
or after that time, it is a 404. The holder's session is not checked: images load in crowd platforms'
frames, where the session cookie may not be sent with image requests; the URL itself is the capability,
and it expires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from django.conf import settings
from django.db.models import Max, OuterRef, Subquery
from django.urls import get_script_prefix
from django.utils.crypto import constant_time_compare, salted_hmac

from arena.models import Comparison, ComparisonStatus
from generation.image_files import canonical_png, pad_png, padded_length
from generation.media_io import read_stored, storage_unreachable, unavailable
from generation.models import Image

Side = Literal["l", "r"]
SIDES: tuple[Side, Side] = ("l", "r")
KEY_SALT = "poparena.arena.image_urls"
MAC_LENGTH = 32  # hex digits: 128 bits of the HMAC-SHA256
# The route's first segment, beside its pattern in arena/urls.py; minting writes URLs without reverse() (hot path).
ROUTE_PREFIX = "i/"


def _mac(token: str, side: str, index: int) -> str:
    return salted_hmac(KEY_SALT, f"{token}/{side}{index}", algorithm="sha256").hexdigest()[:MAC_LENGTH]


def mint_image_url(*, token: str, side: Side, index: int) -> str:
    """The URL that shows picture `index` of one side of the comparison under `token`."""
    return f"{get_script_prefix()}{ROUTE_PREFIX}{token}/{side}{index}/{_mac(token, side, index)}.png"


@dataclass(frozen=True)
class ServedImage:
    """A picture a minted URL may show: its storage name (never sent out) and the comparison's two sets."""

    name: str
    population_ids: tuple[int, int]
    longest: tuple[int | None, int | None]  # each set's longest stored picture, if recorded


def find_served_image(*, token: str, side: str, index: int, mac: str, now: datetime) -> ServedImage | None:
    """The picture behind a minted URL while it may be shown; None for a forged URL or one that has expired.

    One query, and none at all for a URL whose MAC does not match.
    """
    if side not in SIDES or not constant_time_compare(mac, _mac(token, side, index)):
        return None
    population = "left_population" if side == "l" else "right_population"
    rows = list(
        Comparison.objects.filter(token=token, **{f"{population}__images__index": index})
        .order_by()
        .annotate(left_longest=_longest("left_population_id"), right_longest=_longest("right_population_id"))
        .values_list(
            "status",
            "lease_until",
            "voted_at",
            f"{population}__images__file",
            "left_population_id",
            "right_population_id",
            "left_longest",
            "right_longest",
        )[:1]
    )
    if not rows:
        return None
    status, lease_until, voted_at, name, left, right, left_longest, right_longest = rows[0]
    if status == ComparisonStatus.VOTED:
        shown = voted_at is not None and now < voted_at + timedelta(seconds=settings.COMPARISON_IMAGE_TTL_S)
    else:
        shown = status == ComparisonStatus.ISSUED and now < lease_until
    if not (shown and name):
        return None
    return ServedImage(name=name, population_ids=(left, right), longest=(left_longest, right_longest))


# --- one length for every picture of a comparison ---------------------------------------------------------------
# A picture's PNG size follows its content (noise compresses badly), and a participant can read sizes before
# voting, so every picture of a comparison is served padded to one length: the comparison's longest stored picture
# plus generation.image_files.PAD_MIN. Image.byte_size holds each stored picture's length, so the longest of both
# sets comes with the query that finds the picture.


def _longest(population_field: str) -> Subquery:
    """The longest stored picture of the comparison's set in `population_field` (None for sets stored unmeasured)."""
    return Subquery(
        Image.objects.filter(population_id=OuterRef(population_field))
        .order_by()
        .values("population_id")
        .annotate(longest=Max("byte_size"))
        .values("longest")[:1]
    )


def stored_png(name: str) -> bytes:
    """The canonical PNG bytes of a stored picture (a file stored before every image was PNG is re-encoded)."""
    data = read_stored(Image._meta.get_field("file").storage, name)
    return data if name.endswith(".png") else canonical_png(data).data


def _measured_longest(population_id: int) -> int:
    """The longest picture of a set stored before Image.byte_size was recorded, read from storage."""
    storage = Image._meta.get_field("file").storage
    names = Image.objects.filter(population_id=population_id).values_list("file", flat=True)
    return max((storage.size(name) if name.endswith(".png") else len(stored_png(name)) for name in names), default=0)


def served_png(image: ServedImage) -> bytes:
    """The picture's bytes as served: its canonical PNG padded to the one length of its comparison's pictures.

    StorageUnavailable (503) when the media storage cannot be reached: the same URL works again once it is back.
    """
    try:
        longest = [
            known if known is not None else _measured_longest(population_id)
            for population_id, known in zip(image.population_ids, image.longest, strict=True)
        ]
        return pad_png(stored_png(image.name), padded_length(longest))
    except Exception as error:
        if storage_unreachable(error):
            raise unavailable(error, "reading a comparison's picture") from None
        raise
