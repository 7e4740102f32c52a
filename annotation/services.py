"""Writes for campaigns: creating one, its criteria, prompts and generators, the researcher role, the demo seed."""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from django.apps import apps
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.backends.base import SessionBase
from django.db import transaction
from django.utils import timezone

from annotation import demo
from annotation.models import DEFAULT_POPULATION_SIZE, Campaign, Criterion, Participant
from annotation.permissions import RESEARCHER_GROUP, RESEARCHER_MODEL_PERMISSIONS, ROLE_CACHE_KEY
from core.errors import ApplicationError, NotFound
from core.models import sync_object
from generation.models import Generator, Prompt
from generation.offline import DEMO_GENERATORS
from generation.prompt_files import PromptRow
from generation.services import DemandSpec, import_prompts, sync_demand, sync_generator

# Ready populations kept waiting per (generator, prompt): refill below LOW, up to HIGH.
QUEUE_LOW_WATERMARK = 1
QUEUE_HIGH_WATERMARK = 2


@dataclass
class SeedReport:
    """What a seeding run did, per kind of row: created / updated / unchanged counts."""

    counts: dict[str, Counter[str]] = field(default_factory=dict)

    def add(self, kind: str, outcome: str) -> None:
        self.counts.setdefault(kind, Counter())[outcome] += 1

    @property
    def changed(self) -> bool:
        return any(c["created"] or c["updated"] for c in self.counts.values())

    def lines(self) -> list[str]:
        return [
            f"{kind}: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(counter.items()))
            for kind, counter in self.counts.items()
        ]


@transaction.atomic
def sync_criteria(*, campaign: Campaign, criteria: Sequence[tuple[str, str]], report: SeedReport) -> None:
    """Make the campaign's criteria the given (key, question) pairs, in order; never drops one."""
    for position, (key, question) in enumerate(criteria):
        _, outcome = sync_object(
            Criterion, lookup={"campaign": campaign, "key": key}, values={"question": question, "position": position}
        )
        report.add("criteria", outcome)


@transaction.atomic
@transaction.atomic
def add_prompts_to_campaign(*, campaign: Campaign, rows: Iterable[PromptRow]) -> Counter[str]:
    """Import prompt rows and attach them to the campaign, all or none; counts created, existing and added.

    An open campaign's generation demand grows with it, so the new prompts get image sets too.
    """
    prompts, counts = import_prompts(rows=rows)
    already = set(campaign.prompts.values_list("pk", flat=True))
    new = [p for p in prompts if p.pk not in already]
    campaign.prompts.add(*new)
    counts["added to campaign"] = len(new)
    if new and campaign.status == Campaign.Status.OPEN:
        sync_campaign_demand(campaign=campaign)
    return counts


def _attach(manager, objects: Iterable, kind: str, report: SeedReport) -> None:  # type: ignore[no-untyped-def]
    existing = set(manager.values_list("pk", flat=True))
    for obj in objects:
        report.add(kind, "unchanged" if obj.pk in existing else "created")
        if obj.pk not in existing:
            manager.add(obj)


def demand_owner(campaign: Campaign) -> str:
    return f"campaign:{campaign.slug}"


@transaction.atomic
def sync_campaign_demand(*, campaign: Campaign) -> Counter[str]:
    """Tell the generation queue what an open campaign needs; a campaign not open needs nothing.

    Each population serves at most `votes_per_pair` comparisons, so a pair's votes come from
    several independent samples of each generator rather than one set shown again and again.
    """
    demands: list[DemandSpec] = []
    if campaign.status == Campaign.Status.OPEN:
        generators = list(campaign.generators.filter(is_active=True))
        demands = [
            DemandSpec(
                generator=generator,
                prompt=prompt,
                size=campaign.population_size,
                low_watermark=QUEUE_LOW_WATERMARK,
                high_watermark=QUEUE_HIGH_WATERMARK,
                max_uses=campaign.votes_per_pair,
            )
            for prompt in campaign.prompts.all()
            for generator in generators
        ]
    return sync_demand(owner=demand_owner(campaign), demands=demands)


@transaction.atomic
def set_campaign_status(*, campaign: Campaign, status: str) -> Campaign:
    """Open, pause or close a campaign, and start or stop its generation queues with it."""
    if status not in Campaign.Status.values:
        raise ApplicationError(f"unknown campaign status {status!r} (use one of {', '.join(Campaign.Status.values)})")
    if status == Campaign.Status.OPEN:
        if campaign.generators.filter(is_active=True).count() < 2:
            raise ApplicationError(f"campaign {campaign.slug!r} needs at least two active generators to be opened")
        if not campaign.prompts.exists():
            raise ApplicationError(f"campaign {campaign.slug!r} needs at least one prompt to be opened")
        if not campaign.criteria.exists():
            raise ApplicationError(f"campaign {campaign.slug!r} needs at least one criterion to be opened")
        _check_same_image_size(campaign)
    campaign.status = status
    campaign.save(update_fields=["status", "updated_at"])
    sync_campaign_demand(campaign=campaign)
    return campaign


@dataclass(frozen=True)
class NewCampaign:
    """Everything the staff form asks for a new campaign; validated by the form before it gets here."""

    slug: str
    title: str
    generators: Sequence[Generator]
    criteria: Sequence[tuple[str, str]]
    prompts: Sequence[PromptRow]
    population_size: int = DEFAULT_POPULATION_SIZE
    votes_per_pair: int = 5
    sampling_policy: str = Campaign.SamplingPolicy.BALANCED
    gold_rate: float = 0.0
    repeat_rate: float = 0.0
    access: str = Campaign.Access.PUBLIC
    participant_quota: int | None = None
    completion_code: str = ""
    completion_code_flagged: str = ""
    instructions: str = ""


@transaction.atomic
def create_campaign(*, spec: NewCampaign, owner_id: int | None, open_now: bool = False) -> Campaign:
    """Create a campaign with its generators, criteria and prompts, all or nothing; optionally open it.

    When opening is refused (say, fewer than two generators), the ApplicationError rolls the whole
    creation back, so a failed attempt leaves no half-made campaign or orphan prompts behind.
    """
    if Campaign.objects.filter(slug=spec.slug).exists():
        raise ApplicationError(f"a campaign with slug {spec.slug!r} already exists", code="slug_taken", status=409)
    campaign = Campaign.objects.create(
        slug=spec.slug,
        title=spec.title,
        instructions=spec.instructions,
        population_size=spec.population_size,
        votes_per_pair=spec.votes_per_pair,
        sampling_policy=spec.sampling_policy,
        gold_rate=spec.gold_rate,
        repeat_rate=spec.repeat_rate,
        access=spec.access,
        participant_quota=spec.participant_quota,
        completion_code=spec.completion_code,
        completion_code_flagged=spec.completion_code_flagged,
        owner_id=owner_id,
    )
    campaign.generators.set(spec.generators)
    sync_criteria(campaign=campaign, criteria=spec.criteria, report=SeedReport())
    add_prompts_to_campaign(campaign=campaign, rows=spec.prompts)
    if open_now:
        set_campaign_status(campaign=campaign, status=Campaign.Status.OPEN)
    return campaign


@transaction.atomic
def ensure_researcher_group() -> Group:
    """The "researcher" group with exactly the admin permissions researchers need; safe to call again."""
    group, _ = Group.objects.get_or_create(name=RESEARCHER_GROUP)
    wanted = []
    for app_label, model_name, actions in RESEARCHER_MODEL_PERMISSIONS:
        content_type = ContentType.objects.get_for_model(apps.get_model(app_label, model_name))
        for action in actions:
            # get_or_create: right after the first migrate, auth may not have made the rows yet.
            permission, _ = Permission.objects.get_or_create(
                content_type=content_type,
                codename=f"{action}_{model_name}",
                defaults={"name": f"Can {action} {model_name}"},
            )
            wanted.append(permission)
    group.permissions.set(wanted)
    return group


@transaction.atomic
def grant_researcher_role(*, user: User) -> None:
    """Make `user` a researcher: in the group, and staff so that the login and the admin let them in."""
    user.groups.add(ensure_researcher_group())
    if not user.is_staff:
        user.is_staff = True
        user.save(update_fields=["is_staff"])
    # A cached answer from before the grant would be stale.
    user.__dict__.pop(ROLE_CACHE_KEY, None)


def _check_same_image_size(campaign: Campaign) -> None:
    """Refuse to open a campaign whose generators make images of different sizes: a size would reveal a side."""
    sizes: dict[tuple[object, object], list[str]] = {}
    for generator in campaign.generators.filter(is_active=True):
        settings_ = generator.settings if isinstance(generator.settings, dict) else {}
        sizes.setdefault((settings_.get("width"), settings_.get("height")), []).append(generator.name)
    if len(sizes) > 1:
        listed = "; ".join(f"{w}x{h}: {', '.join(names)}" for (w, h), names in sizes.items())
        raise ApplicationError(
            f"campaign {campaign.slug!r} mixes image sizes ({listed}); participants could tell the sides apart "
            "by size, so give every generator the same width and height"
        )


@transaction.atomic
def seed_demo_campaign() -> SeedReport:
    """Create or bring up to date the `demo` campaign; a second run writes nothing."""
    report = SeedReport()
    generators = []
    for spec in DEMO_GENERATORS:
        generator, outcome = sync_generator(spec=spec)
        generators.append(generator)
        report.add("generators", outcome)
    campaign, outcome = sync_object(
        Campaign,
        lookup={"slug": demo.DEMO_SLUG},
        values={
            "title": demo.DEMO_TITLE,
            "instructions": demo.DEMO_INSTRUCTIONS,
            "access": Campaign.Access.PUBLIC,
            "metrics_attributes": demo.DEMO_METRICS,
        },
    )
    if outcome == "created":
        # Only a new demo opens itself; a researcher who paused it keeps it paused.
        campaign.status = Campaign.Status.OPEN
        campaign.save(update_fields=["status"])
    report.add("campaign", outcome)
    sync_criteria(campaign=campaign, criteria=demo.DEMO_CRITERIA, report=report)
    prompts = [Prompt.objects.get_or_create(caption=r.caption, category=r.category)[0] for r in demo.DEMO_PROMPTS]
    _attach(campaign.prompts, prompts, "campaign prompts", report)
    _attach(campaign.generators, generators, "campaign generators", report)
    for outcome, count in sync_campaign_demand(campaign=campaign).items():
        if count:
            report.counts.setdefault("generation queues", Counter())[outcome] += count
    return report


# --- participants -----------------------------------------------------------------------------------------

PARTICIPANT_SESSION_KEY = "poparena.participant"
LAST_SEEN_PRECISION = timedelta(minutes=1)
PROLIFIC_PARAMS = ("PROLIFIC_PID", "STUDY_ID", "SESSION_ID")
MTURK_PARAMS = ("workerId", "assignmentId", "hitId", "turkSubmitTo")
# What MTurk sends as assignmentId while a worker only previews the HIT (before accepting it).
MTURK_PREVIEW_ASSIGNMENT = "ASSIGNMENT_ID_NOT_AVAILABLE"


def is_mturk_preview(params: dict[str, str]) -> bool:
    """A worker previewing a HIT: show the task read-only, create nothing."""
    return params.get("assignmentId") == MTURK_PREVIEW_ASSIGNMENT


def hash_external_id(provider: str, external_id: str) -> str:
    """Keyed hash of a crowd worker's id: stable for resuming, useless to anyone without the key."""
    key = settings.PARTICIPANT_HASH_KEY.encode()
    return hmac.new(key, f"{provider}:{external_id}".encode(), hashlib.sha256).hexdigest()


def _crowd_identity(params: dict[str, str]) -> tuple[str, str, dict[str, str]] | None:
    """(kind, raw external id, entry parameters to keep) from crowd entry parameters, if any."""
    if params.get("PROLIFIC_PID"):
        kept = {k: params[k] for k in ("STUDY_ID", "SESSION_ID") if params.get(k)}
        return Participant.Kind.PROLIFIC, params["PROLIFIC_PID"], kept
    worker = params.get("workerId")
    if worker and not is_mturk_preview(params):
        kept = {k: params[k] for k in ("assignmentId", "hitId", "turkSubmitTo") if params.get(k)}
        return Participant.Kind.MTURK, worker, kept
    return None


def _crowd_participant(kind: str, raw_id: str, kept: dict[str, str]) -> Participant:
    participant, created = Participant.objects.get_or_create(
        kind=kind, external_id_hash=hash_external_id(kind, raw_id), defaults={"entry_params": kept}
    )
    merged = {**participant.entry_params, **kept}
    if not created and merged != participant.entry_params:
        participant.entry_params = merged
        participant.save(update_fields=["entry_params", "updated_at"])
    return participant


def _user_participant(user_pk: int, session_participant: Participant | None) -> Participant:
    participant = Participant.objects.filter(user_id=user_pk).first()
    if participant is not None:
        return participant
    anonymous = session_participant
    if anonymous is not None and anonymous.kind == Participant.Kind.ANONYMOUS and anonymous.user_id is None:
        # The votes cast before logging in stay with the person who cast them.
        anonymous.kind = Participant.Kind.USER
        anonymous.user_id = user_pk
        anonymous.save(update_fields=["kind", "user", "updated_at"])
        return anonymous
    return Participant.objects.create(kind=Participant.Kind.USER, user_id=user_pk)


@transaction.atomic
def resolve_participant(
    *, session: SessionBase, user: AbstractBaseUser | AnonymousUser, entry_params: dict[str, str] | None = None
) -> Participant:
    """The participant behind a request: a crowd worker, a logged-in user, or the browser session.

    Created on first sight and remembered in the session; the same crowd id always resolves to
    the same participant (re-entry resumes), and an anonymous session that logs in is linked.
    """
    session_pk = session.get(PARTICIPANT_SESSION_KEY)
    session_participant = Participant.objects.filter(pk=session_pk).first() if isinstance(session_pk, int) else None
    crowd = _crowd_identity(entry_params or {})
    if crowd is not None:
        participant = _crowd_participant(*crowd)
    elif user.is_authenticated:
        participant = _user_participant(user.pk, session_participant)
    elif session_participant is not None and session_participant.kind != Participant.Kind.USER:
        participant = session_participant
    else:
        participant = Participant.objects.create(kind=Participant.Kind.ANONYMOUS)
    if session_pk != participant.pk:
        session[PARTICIPANT_SESSION_KEY] = participant.pk
    now = timezone.now()
    # A write per request would be the busiest row in the database; a minute's precision is enough.
    if participant.last_seen_at is None or now - participant.last_seen_at > LAST_SEEN_PRECISION:
        participant.last_seen_at = now
        Participant.objects.filter(pk=participant.pk).update(last_seen_at=now)
    return participant


# --- access -----------------------------------------------------------------------------------------------

INVITES_SESSION_KEY = "poparena.invites"


def admit_to_campaign(*, campaign: Campaign, session: SessionBase, invite: str | None = None) -> None:
    """Let this visitor in, or raise NotFound as if the campaign did not exist.

    Drafts are invisible; invite-only campaigns need their secret link once per session.
    """
    hidden = NotFound(f"no campaign with slug {campaign.slug!r}")
    if campaign.status == Campaign.Status.DRAFT:
        raise hidden
    if campaign.access != Campaign.Access.INVITE:
        return
    granted = list(session.get(INVITES_SESSION_KEY, []))
    if campaign.slug in granted:
        return
    if invite and hmac.compare_digest(invite, campaign.invite_token):
        session[INVITES_SESSION_KEY] = [*granted, campaign.slug]
        return
    raise hidden


@transaction.atomic
def apply_quality_flags(*, flags: dict[int, list[str]]) -> int:
    """Mark participants flagged by quality control (participant id -> reasons); their votes stay, marked."""
    changed = 0
    for participant_id, reasons in flags.items():
        changed += Participant.objects.filter(pk=participant_id, is_flagged=False).update(
            is_flagged=True, flag_reason="; ".join(reasons)
        )
    return changed
