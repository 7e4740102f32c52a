"""Admin for API tokens: list, create (the key is shown once, in a message) and revoke; never the key."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from access.models import ApiToken, Scope
from access.services import clean_scopes, create_api_token, revoke_api_token
from core.errors import ApplicationError


class ApiTokenForm(forms.ModelForm):
    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiToken
        fields = ["name", "user", "scopes", "expires_at"]

    def clean_scopes(self) -> list[str]:
        try:
            return clean_scopes(self.cleaned_data["scopes"])
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from error


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    form = ApiTokenForm
    list_display = [
        "name",
        "user",
        "scope_list",
        "key_hint_display",
        "created_at",
        "last_used_at",
        "expires_at",
        "state",
    ]
    list_filter = ["revoked_at", "created_at"]
    search_fields = ["name", "user__username"]
    readonly_fields = ["key_hint_display", "created_at", "last_used_at", "revoked_at"]
    actions = ["revoke"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        # A token's owner and scopes are fixed once issued: revoke and create a new one instead.
        fixed = ["user", "scopes"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is not None:
            kwargs["form"] = forms.ModelForm
        return super().get_form(request, obj, change=change, **kwargs)

    @admin.display(description="scopes")
    def scope_list(self, token: ApiToken) -> str:
        return ", ".join(token.scopes)

    @admin.display(description="key")
    def key_hint_display(self, token: ApiToken) -> str:
        return f"pa_…{token.key_hint}" if token.key_hint else "-"

    @admin.display(description="state")
    def state(self, token: ApiToken) -> str:
        return token.problem() or "active"

    def save_model(self, request: HttpRequest, obj: ApiToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        data = form.cleaned_data
        issued = create_api_token(
            user=data["user"], name=data["name"], scopes=data["scopes"], expires_at=data.get("expires_at")
        )
        # The admin redirects using obj.pk: point it at the row the service created.
        obj.pk = issued.token.pk
        messages.warning(
            request, f"The key of API token {issued.token.name!r}, shown only now: {issued.key}", extra_tags="api-key"
        )

    @admin.action(description="Revoke the selected API tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(revoke_api_token(token=token) for token in queryset)
        self.message_user(request, f"Revoked {revoked} API token(s).", messages.SUCCESS)
