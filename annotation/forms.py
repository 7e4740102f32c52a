"""Forms of the staff pages: validating a new campaign (criteria lines, prompt text and files)."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator, validate_slug

from annotation.models import DEFAULT_POPULATION_SIZE, Campaign, QuestionKind, QuestionnaireTiming
from annotation.questionnaire import QuestionSpec
from annotation.services import NewCampaign
from generation.models import MAX_POPULATION_SIZE, Generator
from generation.prompt_files import PromptFileError, PromptRow, parse_prompt_file

MAX_PROMPT_FILE_BYTES = 5 * 1024 * 1024
CRITERIA_HELP = "One per line: key: question, e.g. “quality: Which set looks better?”"


def parse_criteria(text: str) -> list[tuple[str, str]]:
    """(key, question) pairs from "key: question" lines; every problem names its line."""
    criteria: list[tuple[str, str]] = []
    errors: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, question = line.partition(":")
        key, question = key.strip(), " ".join(question.split())
        if not sep or not question:
            errors.append(f"line {number}: write it as key: question")
            continue
        try:
            validate_slug(key)
        except forms.ValidationError:
            errors.append(f"line {number}: the key {key!r} may only hold letters, digits, - and _")
            continue
        if len(key) > 64 or len(question) > 500:
            errors.append(f"line {number}: keys hold at most 64 characters, questions 500")
        elif key in {k for k, _ in criteria}:
            errors.append(f"line {number}: the key {key!r} is used twice")
        else:
            criteria.append((key, question))
    if errors:
        raise forms.ValidationError(errors)
    if not criteria:
        raise forms.ValidationError("give at least one criterion")
    return criteria


def parse_pasted_prompts(text: str) -> list[PromptRow]:
    """One caption per line, checked by the same reader as prompt files (so the same limits and messages)."""
    # Blank lines stay as blank JSON lines so that the reader's line numbers match the text box.
    lines = [json.dumps({"caption": line}) if line.strip() else "" for line in text.splitlines()]
    return parse_prompt_file("\n".join(lines).encode(), "pasted prompts.jsonl")


class CampaignForm(forms.Form):
    title = forms.CharField(max_length=200)
    slug = forms.SlugField(max_length=64, help_text="The campaign's address: /c/SLUG/.")
    generators = forms.ModelMultipleChoiceField(
        queryset=Generator.objects.filter(is_active=True).order_by("name"),
        widget=forms.CheckboxSelectMultiple,
        help_text="At least two, all making images of the same size, before the campaign can open.",
    )
    population_size = forms.IntegerField(
        label="N (images per side)",
        initial=DEFAULT_POPULATION_SIZE,
        validators=[MinValueValidator(1), MaxValueValidator(MAX_POPULATION_SIZE)],
    )
    criteria = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text=CRITERIA_HELP)
    votes_per_pair = forms.IntegerField(initial=5, validators=[MinValueValidator(1)])
    sampling_policy = forms.ChoiceField(
        choices=Campaign.SamplingPolicy.choices, initial=Campaign.SamplingPolicy.BALANCED
    )
    gold_rate = forms.FloatField(initial=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)])
    repeat_rate = forms.FloatField(initial=0.0, validators=[MinValueValidator(0.0), MaxValueValidator(0.5)])
    access = forms.ChoiceField(choices=Campaign.Access.choices, initial=Campaign.Access.PUBLIC)
    prolific_study_id = forms.CharField(
        max_length=64,
        required=False,
        help_text="Prolific: the study's STUDY_ID; only its arrivals are admitted, and it opens only with one.",
    )
    participant_quota = forms.IntegerField(
        required=False, validators=[MinValueValidator(1)], help_text="Comparisons per participant; empty: no limit."
    )
    completion_code = forms.CharField(max_length=64, required=False, help_text="Prolific: the study's code.")
    completion_code_flagged = forms.CharField(
        max_length=64, required=False, help_text="Given instead to participants flagged by quality control."
    )
    instructions = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    prompts_text = forms.CharField(
        label="Prompts (pasted)", widget=forms.Textarea(attrs={"rows": 4}), required=False, help_text="One per line."
    )
    prompts_file = forms.FileField(
        label="Prompts (file)", required=False, help_text="CSV with a caption column (and category), or JSONL."
    )
    open_now = forms.BooleanField(label="Open it now", required=False)

    def clean_slug(self) -> str:
        slug: str = self.cleaned_data["slug"]
        if Campaign.objects.filter(slug=slug).exists():
            raise forms.ValidationError(f"a campaign with slug {slug!r} already exists")
        return slug

    def clean_criteria(self) -> list[tuple[str, str]]:
        return parse_criteria(self.cleaned_data["criteria"])

    def clean_prompts_text(self) -> list[PromptRow]:
        text: str = self.cleaned_data["prompts_text"]
        if not text.strip():
            return []
        try:
            return parse_pasted_prompts(text)
        except PromptFileError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean_prompts_file(self) -> list[PromptRow]:
        upload = self.cleaned_data["prompts_file"]
        if upload is None:
            return []
        if upload.size > MAX_PROMPT_FILE_BYTES:
            raise forms.ValidationError(f"{upload.name}: larger than {MAX_PROMPT_FILE_BYTES // (1024 * 1024)} MB")
        try:
            return parse_prompt_file(upload.read(), upload.name)
        except PromptFileError as exc:
            raise forms.ValidationError(str(exc)) from None

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if "prompts_text" in cleaned and "prompts_file" in cleaned:
            rows = list(dict.fromkeys([*cleaned["prompts_text"], *cleaned["prompts_file"]]))
            if not rows:
                raise forms.ValidationError("paste prompts or upload a prompt file")
            cleaned["prompts"] = rows
        return cleaned

    def to_spec(self) -> NewCampaign:
        data = self.cleaned_data
        return NewCampaign(
            slug=data["slug"],
            title=data["title"],
            generators=list(data["generators"]),
            criteria=data["criteria"],
            prompts=data["prompts"],
            population_size=data["population_size"],
            votes_per_pair=data["votes_per_pair"],
            sampling_policy=data["sampling_policy"],
            gold_rate=data["gold_rate"],
            repeat_rate=data["repeat_rate"],
            access=data["access"],
            prolific_study_id=data["prolific_study_id"],
            participant_quota=data["participant_quota"],
            completion_code=data["completion_code"],
            completion_code_flagged=data["completion_code_flagged"],
            instructions=data["instructions"],
        )


# --- consent and questionnaire (staff) --------------------------------------------------------------------------


class ParticipationSettingsForm(forms.Form):
    consent_text = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 6}),
        help_text="Markdown, shown before the first comparison; a change makes a new version. Empty: no consent step.",
    )
    questionnaire_timing = forms.ChoiceField(choices=QuestionnaireTiming.choices)
    min_group_size = forms.IntegerField(
        label="k (smallest group shown)",
        validators=[MinValueValidator(2), MaxValueValidator(1000)],
        help_text="A group of participants (one answer to one question) smaller than this is never shown or exported.",
    )


class QuestionForm(forms.Form):
    key = forms.SlugField(max_length=64, help_text="Stable identifier: groups and exports use it.")
    text = forms.CharField(max_length=500)
    kind = forms.ChoiceField(choices=QuestionKind.choices)
    choices = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="Choice questions: one option per line."
    )
    min_value = forms.FloatField(required=False)
    max_value = forms.FloatField(required=False)
    required = forms.BooleanField(required=False, initial=True)
    sensitive = forms.BooleanField(required=False, help_text='Always offers "prefer not to say".')
    position = forms.IntegerField(initial=0, min_value=0, max_value=1000)
    prolific_column = forms.CharField(
        max_length=100, required=False, help_text="The column of Prolific's export that answers it (e.g. Sex, Age)."
    )

    @staticmethod
    def spec_of(data: dict[str, Any]) -> QuestionSpec:
        """The question the form's cleaned data describes."""
        options = tuple(line.strip() for line in data["choices"].splitlines() if line.strip())
        return QuestionSpec(
            key=data["key"],
            text=data["text"],
            kind=data["kind"],
            choices=options,
            min_value=data["min_value"],
            max_value=data["max_value"],
            required=data["required"],
            sensitive=data["sensitive"],
            position=data["position"],
            prolific_column=data["prolific_column"],
        )


class WithdrawalRequestForm(forms.Form):
    hashed_id = forms.CharField(
        max_length=64, required=False, help_text="The participant's hashed crowd id (as the staff pages show it)."
    )
    worker_id = forms.CharField(
        max_length=64,
        required=False,
        help_text="Or their Prolific or MTurk worker id, hashed here and never stored.",
    )
    note = forms.CharField(max_length=500, help_text="The request this acts on (date, channel), for the record.")
