"""A simulated crowd: a population metric votes through the same issue and vote services as people.

Each simulated participant asks `issue_comparison` for its next comparison (so the campaign's
quota, pair sampling, votes wanted per pair and exactly-once voting apply as they do to people),
looks up both populations' stored measures, and votes for the side the judge (metrics.judges)
prefers on each judged criterion, flipped with probability `noise`; where a judge prefers neither
side (equal values, or a value not measured) it votes `tie`, and where the prompt names the judge's
attribute ("a red circle" for `discrepancy:colour`: a one-colour set is what was asked) it abstains
with a `tie` as well (metrics.judges.Judge.speaks_to). Each criterion may have a judge of its own
(`diversity=discrepancy:colour`, `quality=faithfulness`), all answered in the same comparison, as a
person answers every question of one screen; the vote service asks every criterion of a campaign at
once, so the criteria no judge speaks to are answered `tie`. This is how PopAlign made its own training
data (a classifier chose the winner).

Simulated participants are marked `simulated` and their votes never count (arena.models.
VoteQuerySet.counted): not on leaderboards, not in quality reports or the metrics' agreement with
the crowd, and in an export only when it is asked for (`export_preferences --include-simulated`).
Gold checks and repeats are not issued to them: those score a participant, and a simulated one is
known by construction.

Randomness is two seeded streams, one for issuing (pairs and sides) and one for the noise (drawn once per
decided vote, criteria in the order judged), so the same seed on the same database casts the same votes,
and changing the noise does not change which comparisons are issued.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone

from annotation.measuring import checked_attribute_specs
from annotation.models import Campaign, Participant
from annotation.selectors import get_campaign
from annotation.services import get_simulated_participants
from arena.issuing import NothingReady, issue_comparison
from arena.models import Comparison
from arena.quota import QuotaReached
from arena.voting import VoteInput, cast_votes
from core.errors import ApplicationError, Conflict
from metrics.judges import SET_MEASURES, Judge, parse_judge
from metrics.selectors import measures_by_population
from metrics.services import set_spec_for

DEFAULT_PARTICIPANTS = 10
# The vote service asks every criterion; those the judge does not speak to get this answer.
OTHER_CRITERIA_CHOICE = "tie"
QUOTA_REACHED = QuotaReached.code


class SimulationError(ApplicationError):
    code = "simulation_invalid"


@dataclass(frozen=True)
class SimulationPlan:
    """A checked request: everything `simulate_votes` needs, nothing stored yet.

    `judges`: (criterion key, judge) in the order given; each criterion judged once.
    """

    campaign: Campaign
    judges: tuple[tuple[str, Judge], ...]
    comparisons: int
    noise: float
    seed: int
    participants: int

    @property
    def criterion(self) -> str:
        """The (first) judged criterion."""
        return self.judges[0][0]

    @property
    def judge(self) -> Judge:
        """The (first) criterion's judge."""
        return self.judges[0][1]

    @property
    def judged_by(self) -> str:
        """`diversity=discrepancy:colour, quality=faithfulness`: the crowd's judges as the command takes them."""
        return ", ".join(f"{key}={judge.name}" for key, judge in self.judges)

    def crowd(self) -> dict[str, Any]:
        """What names this crowd; kept on each of its participants (Participant.entry_params).

        A one-criterion crowd keeps the shape it always had, so a run of it continues with its participants.
        """
        named: dict[str, Any] = {"campaign": self.campaign.slug}
        if len(self.judges) == 1:
            named.update(criterion=self.criterion, judge=self.judge.name)
        else:
            named["judges"] = {key: judge.name for key, judge in self.judges}
        return {**named, "noise": self.noise, "seed": self.seed}


@dataclass
class CriterionTally:
    """What one criterion's judge did."""

    # Its answers, by side as displayed: left, right, tie.
    choices: Counter[str] = field(default_factory=Counter)
    # Votes the noise turned to the side the judge did not prefer.
    flipped: int = 0
    # Comparisons where the judge preferred neither side (voted tie).
    undecided: int = 0
    # Of those, comparisons whose prompt names the judge's attribute (the judge abstained).
    abstained: int = 0


@dataclass
class SimulationReport:
    plan: SimulationPlan
    voted: int = 0
    # Per judged criterion, in the plan's order.
    criteria: dict[str, CriterionTally] = field(default_factory=dict)
    # Participants that could take no more, by why: quota_reached, nothing_ready.
    exhausted: Counter[str] = field(default_factory=Counter)

    def __post_init__(self) -> None:
        for key, _ in self.plan.judges:
            self.criteria.setdefault(key, CriterionTally())

    # The first judged criterion's tallies (the one-criterion form's figures).
    @property
    def choices(self) -> Counter[str]:
        return self.criteria[self.plan.criterion].choices

    @property
    def flipped(self) -> int:
        return self.criteria[self.plan.criterion].flipped

    @property
    def undecided(self) -> int:
        return self.criteria[self.plan.criterion].undecided

    @property
    def abstained(self) -> int:
        return self.criteria[self.plan.criterion].abstained

    @property
    def complete(self) -> bool:
        return self.voted >= self.plan.comparisons

    def stop_reason(self) -> str:
        if self.complete:
            return f"{self.plan.comparisons} comparisons voted, as asked"
        quota = self.plan.campaign.participant_quota
        parts = []
        if self.exhausted[QUOTA_REACHED]:
            parts.append(f"{self.exhausted[QUOTA_REACHED]} reached the campaign's quota of {quota} comparisons")
        if self.exhausted[NothingReady.code]:
            parts.append(
                f"{self.exhausted[NothingReady.code]} had nothing left to vote on (every pair they may see is "
                "seen or has its votes, or generation is behind)"
            )
        return (
            f"nothing more can be issued to the {self.plan.participants} simulated participants: "
            + "; ".join(parts)
            + " (--participants adds more)"
        )


def judged_choice(preferred: str | None, noise: float, rng: random.Random) -> tuple[str, bool]:
    """The vote for the side the judge prefers, flipped with probability `noise`: (choice, flipped).

    No preference is a tie, never flipped (there is no other side to flip to). One draw per decided
    vote, so a seed gives the same flips whatever the judge preferred.
    """
    if preferred is None:
        return "tie", False
    if rng.random() < noise:
        return ("right" if preferred == "left" else "left"), True
    return preferred, False


def judge_assignments(texts: Sequence[str], criterion: str | None) -> list[tuple[str, str]]:
    """(criterion, MEASURE[:ATTRIBUTE]) for each `--judge`: `CRITERION=MEASURE[:ATTRIBUTE]` each, or one bare
    `MEASURE[:ATTRIBUTE]` with `--criterion`. SimulationError saying what is wrong."""
    if not texts:
        raise SimulationError(
            "--judge is required: CRITERION=MEASURE[:ATTRIBUTE], or MEASURE[:ATTRIBUTE] with --criterion"
        )
    if criterion is not None:
        if len(texts) != 1:
            raise SimulationError(
                "--criterion takes one --judge MEASURE[:ATTRIBUTE]; to judge several criteria, leave --criterion out "
                "and give each as --judge CRITERION=MEASURE[:ATTRIBUTE]"
            )
        key, sign, measure = texts[0].partition("=")
        if sign and key != criterion:
            raise SimulationError(f"--judge {texts[0]!r} names criterion {key!r}, but --criterion is {criterion!r}")
        return [(criterion, measure if sign else texts[0])]
    assigned: list[tuple[str, str]] = []
    for text in texts:
        key, sign, measure = text.partition("=")
        if not sign or not key or not measure:
            raise SimulationError(
                f"--judge {text!r}: say which criterion it judges, CRITERION=MEASURE[:ATTRIBUTE] "
                "(or give --criterion KEY with one --judge)"
            )
        if any(key == earlier for earlier, _ in assigned):
            raise SimulationError(f"--judge: criterion {key!r} is judged twice; give each criterion one judge")
        assigned.append((key, measure))
    return assigned


def plan_simulation(
    *,
    campaign_slug: str,
    comparisons: int,
    criterion: str | None = None,
    judge: str | Sequence[str] = (),
    noise: float = 0.0,
    seed: int | None = None,
    participants: int = DEFAULT_PARTICIPANTS,
) -> SimulationPlan:
    """Check a request, naming what is wrong (NotFound or SimulationError); stores nothing.

    `judge`: one `MEASURE[:ATTRIBUTE]` for `criterion`, or `CRITERION=MEASURE[:ATTRIBUTE]` texts, one per
    criterion judged. Without a seed one is drawn, and the report says which, so the run can be repeated.
    """
    texts = [judge] if isinstance(judge, str) else list(judge)
    assigned = judge_assignments(texts, criterion)
    campaign = get_campaign(slug=campaign_slug)
    asked = [c.key for c in campaign.criteria.all()]
    for key, _ in assigned:
        if key not in asked:
            raise SimulationError(
                f"unknown criterion {key!r} (campaign {campaign.slug!r} asks: {', '.join(asked) or 'nothing'})"
            )
    specs = checked_attribute_specs(campaign)
    judges = tuple((key, _checked_judge(campaign, specs, text)) for key, text in assigned)
    if isinstance(comparisons, bool) or comparisons < 1:
        raise SimulationError(f"--comparisons must be at least 1, not {comparisons}")
    if not 0.0 <= noise <= 1.0:  # also refuses NaN
        raise SimulationError(f"--noise must be a probability from 0 to 1, not {noise}")
    if participants < 1:
        raise SimulationError(f"--participants must be at least 1, not {participants}")
    if not campaign.is_open:
        raise SimulationError(f"campaign {campaign.slug!r} is {campaign.status}, not open: nothing can be issued")
    return SimulationPlan(
        campaign=campaign,
        judges=judges,
        comparisons=comparisons,
        noise=noise,
        seed=random.SystemRandom().randrange(2**31) if seed is None else seed,
        participants=participants,
    )


def _checked_judge(campaign: Campaign, specs: Sequence[Any], text: str) -> Judge:
    """One judge, checked against what the campaign measures."""
    try:
        parsed = parse_judge(text, [spec.name for spec in specs])
    except ValueError as exc:
        raise SimulationError(f"--judge {text!r}: {exc}") from None
    if parsed.measure in SET_MEASURES:
        backend = set_spec_for(specs)
        if backend is None:
            raise SimulationError(
                f"--judge {text!r}: campaign {campaign.slug!r} measures no attribute, so no set measure is "
                "computed for it (see its metrics_attributes)"
            )
        if parsed.measure == "clip_score" and backend.backend != "clip":
            raise SimulationError(
                f"--judge {text!r}: clip_score needs a CLIP attribute, and campaign {campaign.slug!r} has none"
            )
    return parsed


def simulated_ballot(
    judges: Sequence[tuple[str, Judge]],
    caption: str,
    left: Mapping[str, Any],
    right: Mapping[str, Any],
    classes: Mapping[str, Sequence[str]],
    noise: float,
    rng: random.Random,
    report: SimulationReport,
) -> list[VoteInput]:
    """Each judged criterion's vote on one comparison, counted in `report`; one noise draw per decided vote."""
    votes = []
    for key, judge in judges:
        speaks = judge.speaks_to(caption, classes.get(judge.attribute, ()))
        preferred = judge.prefers(left, right) if speaks else None
        choice, flipped = judged_choice(preferred, noise, rng)
        tally = report.criteria[key]
        tally.choices[choice] += 1
        tally.flipped += flipped
        tally.undecided += preferred is None
        tally.abstained += not speaks
        votes.append(VoteInput(key, choice))
    return votes


def simulate_votes(*, plan: SimulationPlan, progress: Callable[[int], None] | None = None) -> SimulationReport:
    """Vote `plan.comparisons` comparisons as a simulated crowd, or as many as can be issued; report what it did.

    Participants take turns, one comparison each, so a quota spreads the work over all of them.
    Each issue and each vote is its own transaction, as a person's are: an interrupted run keeps
    what it voted, and the same crowd run again continues where it stopped.
    """
    campaign = plan.campaign
    report = SimulationReport(plan=plan)
    crowd = get_simulated_participants(crowd=plan.crowd(), count=plan.participants)
    judged = {key for key, _ in plan.judges}
    others = [c.key for c in campaign.criteria.all() if c.key not in judged]
    specs = checked_attribute_specs(campaign)
    issue_rng = random.Random(f"{plan.seed}:issue")
    noise_rng = random.Random(f"{plan.seed}:noise")
    measured: dict[int, dict[str, Any]] = {}
    classes: dict[str, Sequence[str]] = {spec.name: spec.classes for spec in specs}
    # Comparisons are issued on the campaign's prompts: their captions, read once (a prompt taken out of the
    # campaign while a comparison on it was held is read from the comparison).
    captions = dict(campaign.prompts.values_list("pk", "caption"))
    # A simulated participant looks exactly as long as the floor on dwell time asks: honest for a
    # judge that reads stored numbers, and the rule for people is applied to it unchanged.
    dwell = timedelta(milliseconds=settings.VOTE_MIN_DWELL_MS)
    active = list(crowd)
    while active and not report.complete:
        for participant in list(active):
            if report.complete:
                break
            comparison = _next(campaign, participant, issue_rng, report)
            if comparison is None:
                active.remove(participant)
                continue
            pair = [comparison.left_population_id, comparison.right_population_id]
            missing = [pk for pk in pair if pk not in measured]
            if missing:
                measured.update(measures_by_population(missing, attributes=specs))
            caption = captions.get(comparison.prompt_id) or comparison.prompt.caption
            ballot = simulated_ballot(
                plan.judges, caption, measured[pair[0]], measured[pair[1]], classes, plan.noise, noise_rng, report
            )
            votes = [*ballot, *(VoteInput(key, OTHER_CRITERIA_CHOICE) for key in others)]
            # The vote lands when the simulated look ends: never before the floor, never before now.
            at = max(timezone.now(), comparison.issued_at + dwell)
            cast_votes(
                token=comparison.token,
                participant=participant,
                votes=votes,
                dwell_ms=settings.VOTE_MIN_DWELL_MS,
                now=at,
            )
            report.voted += 1
            if progress is not None:
                progress(1)
    return report


def _next(
    campaign: Campaign, participant: Participant, rng: random.Random, report: SimulationReport
) -> Comparison | None:
    """The participant's next comparison from the issue service; None (counted in the report) when it has none."""
    try:
        return issue_comparison(campaign=campaign, participant=participant, rng=rng)
    except NothingReady:
        report.exhausted[NothingReady.code] += 1
    except Conflict as exc:
        if exc.code != QUOTA_REACHED:
            raise
        report.exhausted[QUOTA_REACHED] += 1
    return None
