"""Staff forms of the arena: the crowd platform's record of a study (reconciliation); image sets to import."""

from __future__ import annotations

from django import forms

from annotation.importing import MAX_IMPORT_BYTES

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


class PopulationImportForm(forms.Form):
    archive = forms.FileField(
        label="Image sets (zip)",
        help_text=(
            "A zip of images with a metadata.jsonl or metadata.csv (file_name, prompt, generator, optional seed and "
            "set), of Parquet files, or of a datasets save_to_disk folder: the same import as import_populations."
        ),
    )

    def clean_archive(self) -> bytes:
        upload = self.cleaned_data["archive"]
        if upload.size > MAX_IMPORT_BYTES:
            raise forms.ValidationError(
                f"the zip is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB: import it with "
                "manage.py import_populations"
            )
        return bytes(upload.read())
