"""Staff forms of the arena: the crowd platform's record of a study, uploaded for reconciliation."""

from __future__ import annotations

from django import forms

MAX_RECORD_BYTES = 50 * 1024 * 1024


class PlatformRecordForm(forms.Form):
    record = forms.FileField(
        label="Platform record (CSV)",
        help_text="Prolific: Submissions > Export (CSV). MTurk: Manage > Results > Download CSV.",
    )

    def clean_record(self) -> bytes:
        upload = self.cleaned_data["record"]
        if upload.size > MAX_RECORD_BYTES:
            raise forms.ValidationError(f"the file is larger than {MAX_RECORD_BYTES // (1024 * 1024)} MB")
        return bytes(upload.read())
