"""The staff export form: the same options as the command, checked before the export service runs."""

from __future__ import annotations

from typing import Any

from django import forms

from annotation.models import Campaign
from exports.options import ExportOptions
from exports.rows import TIES_DROP, TIES_SOFT
from exports.writers import FORMATS


class ExportForm(forms.Form):
    format = forms.ChoiceField(choices=[(name, f"{name}: {spec.description}") for name, spec in FORMATS.items()])
    criterion = forms.ChoiceField(required=False, help_text="Required by single-criterion formats.")
    ties = forms.ChoiceField(
        required=False,
        choices=[("", "the format's default"), (TIES_DROP, "drop tied pairs"), (TIES_SOFT, "keep ties as 0.5/0.5")],
    )
    min_votes = forms.IntegerField(required=False, min_value=1, help_text="Leave out pairs with fewer votes.")
    min_margin = forms.IntegerField(
        required=False, min_value=0, help_text="Leave out decided pairs won by fewer votes than this."
    )
    validation_fraction = forms.FloatField(
        required=False, min_value=0.0, max_value=0.99, help_text="Share of captions held out for validation."
    )
    skip_missing = forms.BooleanField(required=False, help_text="Leave out pairs whose image files are gone.")
    include_flagged = forms.BooleanField(required=False, help_text="Keep votes of flagged participants.")
    include_simulated = forms.BooleanField(
        required=False, help_text="Keep votes of a simulated crowd (a metric's votes, from simulate_votes)."
    )
    not_worse_on = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Keep a decided pair only where its winner did not lose on these criteria too.",
    )
    generators = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text="Keep only pairs whose two sides both come from the ticked generators (none ticked: every one).",
    )

    def __init__(self, *args: Any, campaign: Campaign, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        keys = list(campaign.criteria.order_by("position", "pk").values_list("key", flat=True))
        field = self.fields["criterion"]
        assert isinstance(field, forms.ChoiceField)
        field.choices = [("", "all criteria")] + [(key, key) for key in keys]
        guards = self.fields["not_worse_on"]
        assert isinstance(guards, forms.MultipleChoiceField)
        guards.choices = [(key, key) for key in keys]
        generators = self.fields["generators"]
        assert isinstance(generators, forms.MultipleChoiceField)
        generators.choices = [
            (name, name) for name in campaign.generators.order_by("name").values_list("name", flat=True)
        ]

    def options(self) -> ExportOptions:
        data = self.cleaned_data
        return ExportOptions(
            format=data["format"],
            criterion=data["criterion"] or None,
            ties=data["ties"] or None,
            min_votes=data["min_votes"],
            min_margin=data["min_margin"],
            validation_fraction=data["validation_fraction"] or 0.0,
            skip_missing=data["skip_missing"],
            include_flagged=data["include_flagged"],
            include_simulated=data["include_simulated"],
            not_worse_on=tuple(data["not_worse_on"]),
            generators=tuple(data["generators"]),
        )
