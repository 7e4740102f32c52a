"""Writes for campaigns: creating one, its criteria, prompts and generators, the researcher role, the demo seed."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.apps import apps
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Group, Permission, User
from django.contrib.contenttypes.models import ContentType
from django.contrib.sessions.backends.base import SessionBase
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import transaction
from django.utils import timezone

from annotation import crowd, demo
from annotation.crowd import CrowdEntry
from annotation.demand import demand_owner
from annotation.models import DEFAULT_POPULATION_SIZE, Campaign, Criterion, CrowdAssignment, Participant
from annotation.permissions import RESEARCHER_GROUP, RESEARCHER_MODEL_PERMISSIONS, ROLE_CACHE_KEY
from annotation.selectors import visible_prompts
from core.errors import ApplicationError, Conflict, Forbidden, NotFound
from core.models import sync_object
from generation.models import Generator, Prompt
from generation.offline import DEMO_GENERATORS
from generation.prompt_files import PromptRow
from generation.services import DemandSpec, configured_image_size, import_prompts, sync_demand, sync_generator

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
    # A campaign's new captions are its owner's own prompt rows: a caption another study already has is
    # not that study's row, so its image sets (made per prompt row) never reach this campaign.
    prompts, counts = import_prompts(rows=rows, owner_id=campaign.owner_id)
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


@transaction.atomic
def sync_campaign_demand(*, campaign: Campaign) -> Counter[str]:
    """Tell the generation queue what an open campaign needs; a campaign not open needs nothing.

    Each population serves at most `votes_per_pair` comparisons, so a pair's votes come from
    several independent samples of each generator rather than one set shown again and again.
    """
    demands: list[DemandSpec] = []
    if campaign.status == Campaign.Status.OPEN:
        # Imported sets are all there will be: no worker is ever asked to make more of them.
        generators = list(campaign.generators.filter(is_active=True).exclude(backend=Generator.Backend.IMPORTED))
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
def add_generator_to_campaign(*, campaign: Campaign, generator: Generator) -> Counter[str]:
    """Put a generator into a campaign and, when the campaign is open, queue its populations.

    Refused when its images would differ in size from the other generators' (a size reveals a side).
    """
    campaign.generators.add(generator)
    _check_same_image_size(campaign)
    return sync_campaign_demand(campaign=campaign)


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
        check_crowd_setup(campaign)
    campaign.status = status
    campaign.save(update_fields=["status", "updated_at"])
    sync_campaign_demand(campaign=campaign)
    return campaign


def check_crowd_setup(campaign: Campaign) -> None:
    """Refuse, naming the first missing field, a crowd campaign that lacks what its platform needs to run.

    Crowd URL parameters are not authenticated: anyone can type a PROLIFIC_PID. A Prolific campaign's
    study id is what ties arrivals to the study the researcher pays for (admission refuses any other
    STUDY_ID); without it any invented id with any study would be admitted. Participants are handed
    back at the quota: Prolific with the completion code, MTurk by posting the assignment to one of
    MTURK_SUBMIT_ORIGINS, so without a quota (or, on Prolific, a code) nobody could ever complete.
    Called when a campaign opens; a form or the admin saving an open campaign can call it too.
    """
    missing = ""
    if campaign.access == Campaign.Access.PROLIFIC and not campaign.prolific_study_id.strip():
        missing = "its prolific_study_id (the STUDY_ID Prolific sends; only arrivals from that study are admitted)"
    elif campaign.access in (Campaign.Access.PROLIFIC, Campaign.Access.MTURK) and campaign.participant_quota is None:
        missing = "a participant_quota (comparisons per participant before the hand-back to the platform)"
    elif campaign.access == Campaign.Access.PROLIFIC and not campaign.completion_code.strip():
        missing = "a completion_code (the study's code on Prolific, which participants are sent back with)"
    elif campaign.access == Campaign.Access.MTURK and not settings.MTURK_SUBMIT_ORIGINS:
        missing = (
            "a site to hand assignments back to: the setting MTURK_SUBMIT_ORIGINS is empty "
            "(MTurk's production https://www.mturk.com or sandbox https://workersandbox.mturk.com)"
        )
    if missing:
        platform = "Prolific" if campaign.access == Campaign.Access.PROLIFIC else "MTurk"
        raise ApplicationError(
            f"the {platform} campaign {campaign.slug!r} needs {missing} to be opened",
            code="crowd_setup_incomplete",
        )


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
    prolific_study_id: str = ""
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
        raise Conflict(f"a campaign with slug {spec.slug!r} already exists", code="slug_taken")
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
        prolific_study_id=spec.prolific_study_id,
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


SLUG_MAX_LENGTH = 64  # Campaign.slug's max_length


@transaction.atomic
def rename_campaign(*, campaign: Campaign, slug: str) -> Campaign:
    """Give a draft campaign a new slug; refused, naming the slug, once the campaign has left draft.

    Everything the campaign owns (exports, session grants, crowd admissions, generation demand) is
    keyed by its primary key, so nothing is lost or handed over by a rename; the freeze keeps the
    links that participants and crowd platforms hold pointing at the campaign.
    """
    try:
        validate_slug(slug)
    except ValidationError:
        raise ApplicationError(f"slug {slug!r}: use letters, digits, - and _ only", code="invalid") from None
    if len(slug) > SLUG_MAX_LENGTH:
        raise ApplicationError(f"slug {slug!r}: at most 64 characters", code="invalid")
    if slug == campaign.slug:
        return campaign
    if campaign.slug_is_frozen():
        raise ApplicationError(
            f"slug: campaign {campaign.slug!r} has left draft, so its slug cannot change", code="slug_frozen"
        )
    if Campaign.objects.filter(slug=slug).exclude(pk=campaign.pk).exists():
        raise Conflict(f"slug: a campaign with slug {slug!r} already exists", code="slug_taken")
    campaign.slug = slug
    campaign.save(update_fields=["slug", "updated_at"])
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
    check_generator_sizes(slug=campaign.slug, generators=campaign.generators.filter(is_active=True))


def check_generator_sizes(*, slug: str, generators: Iterable[Generator]) -> None:
    """ApplicationError naming each size and its generators when the active `generators` make several sizes."""
    sizes: dict[tuple[int, int] | None, list[str]] = {}
    for generator in generators:
        if generator.is_active:
            sizes.setdefault(configured_image_size(generator), []).append(generator.name)
    if len(sizes) > 1:
        listed = "; ".join(
            f"{f'{size[0]}x{size[1]}' if size else 'no width and height set'}: {', '.join(names)}"
            for size, names in sizes.items()
        )
        raise ApplicationError(
            f"campaign {slug!r} mixes image sizes ({listed}); participants could tell the sides apart "
            "by size, so give every generator the same width and height"
        )


def check_campaign_members(
    *, campaign: Campaign, slug: str, generators: Iterable[Generator], prompts: Iterable[Prompt], user: Any
) -> None:
    """What the admin's campaign form checks before saving: one image size; only prompts `user` may use here.

    A researcher uses the prompts of campaigns they manage and shared ones (annotation.selectors.visible_prompts);
    prompts the campaign already has stay. `slug` is the one being saved (a new campaign has none yet).
    """
    check_generator_sizes(slug=slug, generators=generators)
    wanted = {prompt.pk for prompt in prompts}
    allowed = set(visible_prompts(user).filter(pk__in=wanted).values_list("pk", flat=True))
    if campaign.pk is not None:
        allowed |= set(campaign.prompts.filter(pk__in=wanted).values_list("pk", flat=True))
    if wanted - allowed:
        raise Forbidden(
            f"prompt(s) {', '.join(map(str, sorted(wanted - allowed)))} belong to campaigns you do not manage "
            "and are not shared; add the caption as a new prompt instead",
            code="prompt_not_yours",
        )


@transaction.atomic
def update_campaign_members(
    *, campaign: Campaign, generators: Iterable[Generator], prompts: Iterable[Prompt], user: Any
) -> Counter[str]:
    """Make the campaign's generators and prompts these, after check_campaign_members; the demand follows."""
    generators, prompts = list(generators), list(prompts)
    check_campaign_members(campaign=campaign, slug=campaign.slug, generators=generators, prompts=prompts, user=user)
    campaign.generators.set(generators)
    campaign.prompts.set(prompts)
    return sync_campaign_demand(campaign=campaign)


@transaction.atomic
def seed_demo_campaign() -> SeedReport:
    """Create the `demo` campaign and what it needs, only what is missing; an existing campaign is left as it is.

    scripts/demo runs this at every start, so it must never undo what someone did to a live demo: its
    access, criteria and questions, prompts, generators and status stay as they were made (an invite-only
    demo is not made public again, a removed generator is not put back). The offline generators
    themselves are the code's and are kept in step with it.
    """
    report = SeedReport()
    generators = []
    for spec in DEMO_GENERATORS:
        generator, outcome = sync_generator(spec=spec)
        generators.append(generator)
        report.add("generators", outcome)
    if Campaign.objects.filter(slug=demo.DEMO_SLUG).exists():
        report.add("campaign", "unchanged")
        return report
    campaign = Campaign.objects.create(
        slug=demo.DEMO_SLUG,
        title=demo.DEMO_TITLE,
        instructions=demo.DEMO_INSTRUCTIONS,
        access=Campaign.Access.PUBLIC,
        metrics_attributes=demo.DEMO_METRICS,
        status=Campaign.Status.OPEN,
    )
    report.add("campaign", "created")
    sync_criteria(campaign=campaign, criteria=demo.DEMO_CRITERIA, report=report)
    prompts = [
        Prompt.objects.get_or_create(caption=r.caption, category=r.category, owner=None)[0] for r in demo.DEMO_PROMPTS
    ]
    _attach(campaign.prompts, prompts, "campaign prompts", report)
    _attach(campaign.generators, generators, "campaign generators", report)
    for outcome, count in sync_campaign_demand(campaign=campaign).items():
        if count:
            report.counts.setdefault("generation queues", Counter())[outcome] += count
    return report


# --- participants -----------------------------------------------------------------------------------------

PARTICIPANT_SESSION_KEY = "poparena.participant"
# Per campaign primary key (a string: sessions are JSON), the crowd arrival this session was admitted with:
# {participant, assignment, ...}. Never per slug: a slug can pass to a new campaign, a key cannot. The key was
# renamed from "poparena.crowd", which was per slug, so that no admission stored under a slug is read as a key.
CROWD_SESSION_KEY = "poparena.crowd_by_campaign"
LAST_SEEN_PRECISION = timedelta(minutes=1)


class AlreadyTookPart(Forbidden):
    """A crowd worker who completed the campaign on one assignment arrived on another."""

    def __init__(self, campaign: Campaign) -> None:
        super().__init__(
            f"You have already taken part in {campaign.title!r} on another assignment, and each person takes part "
            "once. Please return this assignment (MTurk) or this study place (Prolific) so someone else can take it.",
            code="already_taken_part",
        )


def hash_external_id(provider: str, external_id: str) -> str:
    """Keyed hash of a crowd worker's id: stable for resuming, useless to anyone without the key."""
    key = settings.PARTICIPANT_HASH_KEY.encode()
    return hmac.new(key, f"{provider}:{external_id}".encode(), hashlib.sha256).hexdigest()


def assignment_hash(entry: CrowdEntry) -> str:
    """Keyed hash of the arrival's assignment (MTurk assignmentId, Prolific SESSION_ID)."""
    return hash_external_id(f"{entry.provider}-assignment", entry.assignment)


def _kept_entry_params(entry: CrowdEntry) -> dict[str, str]:
    """What a participant row keeps of an arrival; see Participant.entry_params for why these, and how."""
    if entry.provider == crowd.PROLIFIC:
        return {"STUDY_ID": entry.study, "SESSION_ID": assignment_hash(entry)}
    kept = {"assignmentId": assignment_hash(entry), "hitId": hash_external_id("mturk-hit", entry.study)}
    if entry.submit_to:
        kept["turkSubmitTo"] = entry.submit_to
    return kept


@transaction.atomic
def enter_crowd(
    *, campaign: Campaign, session: SessionBase, entry: CrowdEntry, quota_reached: Callable[[Participant], bool]
) -> Participant:
    """Admit a crowd arrival to `campaign` in this session; the same worker id is always the same participant.

    The worker does the campaign's work on one assignment (CrowdAssignment). A new assignment takes
    over while the quota is not reached; once it is, the worker has taken part and AlreadyTookPart is
    raised, so a second HIT or Prolific session of the same study is never handed a completion
    without its work. The raw MTurk assignment id, which the hand-back form must post to MTurk, is
    kept in the session only; the database keeps it hashed.
    `quota_reached(participant)` is decided by the caller, which owns the votes.
    """
    participant, created = Participant.objects.get_or_create(
        kind=entry.provider,
        external_id_hash=hash_external_id(entry.provider, entry.worker),
        defaults={"entry_params": _kept_entry_params(entry)},
    )
    merged = {**participant.entry_params, **_kept_entry_params(entry)}
    if not created and merged != participant.entry_params:
        participant.entry_params = merged
        participant.save(update_fields=["entry_params", "updated_at"])
    wanted = assignment_hash(entry)
    current = CrowdAssignment.objects.select_for_update().filter(campaign=campaign, participant=participant).first()
    if current is None:
        CrowdAssignment.objects.create(campaign=campaign, participant=participant, assignment_hash=wanted)
    elif current.assignment_hash != wanted:
        if quota_reached(participant):
            raise AlreadyTookPart(campaign)
        current.assignment_hash = wanted
        current.save(update_fields=["assignment_hash", "updated_at"])
    admissions = dict(session.get(CROWD_SESSION_KEY, {}))
    admissions[str(campaign.pk)] = {
        "participant": participant.pk,
        "assignment": wanted,
        "assignment_id": entry.assignment if entry.provider == crowd.MTURK else "",
        "submit_to": entry.submit_to,
    }
    session[CROWD_SESSION_KEY] = admissions
    session[PARTICIPANT_SESSION_KEY] = participant.pk
    return participant


def get_crowd_admission(*, campaign: Campaign, session: SessionBase) -> dict[str, Any] | None:
    """The crowd arrival this session was admitted to `campaign` with, if any."""
    admission = session.get(CROWD_SESSION_KEY, {}).get(str(campaign.pk))
    return admission if isinstance(admission, dict) and isinstance(admission.get("participant"), int) else None


def holds_current_assignment(*, campaign: Campaign, participant: Participant, admission: dict[str, Any]) -> bool:
    """Whether the session's assignment is still the one the worker does this campaign on."""
    return CrowdAssignment.objects.filter(
        campaign=campaign, participant=participant, assignment_hash=admission.get("assignment")
    ).exists()


def _user_participant(user_pk: int, session_participant: Participant | None) -> Participant:
    anonymous = session_participant
    if anonymous is not None and anonymous.kind == Participant.Kind.ANONYMOUS and anonymous.user_id is None:
        # The votes cast before logging in stay with the person who cast them.
        anonymous.kind = Participant.Kind.USER
        anonymous.user_id = user_pk
        anonymous.save(update_fields=["kind", "user", "updated_at"])
        return anonymous
    return Participant.objects.create(kind=Participant.Kind.USER, user_id=user_pk)


def _participant(pk: int) -> Participant | None:
    """The participant with this key, or None. Read on every vote: the ORM's filter().first() (it orders the
    table to take the first row) cost twice the CPU of this raw read of the same row."""
    rows = Participant.objects.raw(f"SELECT * FROM {Participant._meta.db_table} WHERE id = %s", [pk])
    return next(iter(rows), None)


def find_participant(*, session: SessionBase, user: AbstractBaseUser | AnonymousUser) -> Participant | None:
    """The participant a request already has, creating nothing: for requests that only act on what it holds.

    A session that arrived from a crowd platform stays that worker even when someone is logged in,
    so its tokens stay its own (crowd arrivals are admitted by `enter_crowd`).
    """
    session_pk = session.get(PARTICIPANT_SESSION_KEY)
    session_participant = _participant(session_pk) if isinstance(session_pk, int) else None
    if session_participant is not None and session_participant.kind in (crowd.PROLIFIC, crowd.MTURK):
        return session_participant
    if user.is_authenticated:
        linked = Participant.objects.filter(user_id=user.pk).first()
        if linked is not None:
            return linked
    if session_participant is not None and session_participant.kind != Participant.Kind.USER:
        return session_participant
    return None


@transaction.atomic
def resolve_participant(*, session: SessionBase, user: AbstractBaseUser | AnonymousUser) -> Participant:
    """The participant behind a request (see `find_participant`), created on first sight and kept in the session.

    An anonymous session that logs in is linked to the user, so its earlier votes stay theirs.
    """
    session_pk = session.get(PARTICIPANT_SESSION_KEY)
    participant = find_participant(session=session, user=user)
    if user.is_authenticated and (participant is None or participant.kind == Participant.Kind.ANONYMOUS):
        participant = _user_participant(user.pk, participant)
    elif participant is None:
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

# The primary keys of the invite-only campaigns this session opened with their secret link; per key, not slug,
# so that a grant never opens a new campaign later given the same slug (the old per-slug "poparena.invites"
# is no longer read: its visitors open their link once more).
INVITES_SESSION_KEY = "poparena.invited_campaigns"


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
    if campaign.pk in granted:
        return
    if invite and hmac.compare_digest(invite, campaign.invite_token):
        session[INVITES_SESSION_KEY] = [*granted, campaign.pk]
        return
    raise hidden


class CrowdOnly(Forbidden):
    """Someone without the crowd platform's entry asked to vote in a Prolific or MTurk campaign."""

    HOW = {
        crowd.PROLIFIC: "It is run on Prolific: open it from the study's page on Prolific, whose link carries your "
        "Prolific ID, study and session.",
        crowd.MTURK: "It is run on Amazon Mechanical Turk: find its HIT on MTurk and accept it; the task opens there.",
    }

    def __init__(self, campaign: Campaign, detail: str = "") -> None:
        super().__init__(
            f"{campaign.title!r} takes answers only from its crowd platform. {self.HOW[campaign.access]}"
            + (f" ({detail})" if detail else ""),
            code="crowd_only",
        )


def crowd_provider(campaign: Campaign) -> str | None:
    """The crowd platform a campaign admits voters from, or None for public and invite campaigns."""
    return campaign.access if campaign.access in (crowd.PROLIFIC, crowd.MTURK) else None


def crowd_entry_for(*, campaign: Campaign, params: dict[str, str]) -> CrowdEntry | None:
    """The crowd arrival in `params` that `campaign` takes, None when there is none; CrowdOnly when it is wrong.

    A crowd campaign takes only a complete entry of its own platform (and its STUDY_ID where one is
    set); a public or invite campaign takes either platform's complete entry, so a worker sent there
    is still paid through the completion step.
    """
    provider = crowd_provider(campaign)
    if provider is None:
        return crowd.parse_any_entry(params)
    entry = crowd.parse_entry(provider, params)
    if entry is None:
        given = [name for name in crowd.REQUIRED_PARAMS[provider] if params.get(name)]
        missing = crowd.missing_params(provider, params)
        if given and missing:
            raise CrowdOnly(campaign, f"the link lacks {', '.join(missing)}")
        return None
    if provider == crowd.PROLIFIC and campaign.prolific_study_id and entry.study != campaign.prolific_study_id:
        raise CrowdOnly(campaign, "the link is for another Prolific study")
    return entry


# --- simulated participants -------------------------------------------------------------------------------


@transaction.atomic
def get_simulated_participants(*, crowd: Mapping[str, Any], count: int) -> list[Participant]:
    """The first `count` participants of one simulated crowd, made on first use, marked `simulated`.

    `crowd` describes it (campaign, judge, noise, seed: JSON values) and is kept in each one's
    entry_params with its index. Their identity is a hash of that description, so running the same
    crowd again continues with the same participants (their quotas and the pairs they have seen carry
    over, as a returning person's do), while another judge, noise or seed is another crowd.
    """
    participants = []
    for index in range(count):
        params = {**crowd, "index": index}
        identity = hash_external_id(Participant.Kind.SIMULATED, json.dumps(params, sort_keys=True))
        participant, _ = Participant.objects.get_or_create(
            kind=Participant.Kind.SIMULATED, external_id_hash=identity, defaults={"entry_params": params}
        )
        participants.append(participant)
    return participants
