"""Admin for API tokens: list, create (the key is shown once, in a message) and revoke; never the key.

Everyone but superusers creates, sees and revokes only their own tokens, with the scopes their role
allows (access.services says which); the service checks it again, so a forged form changes nothing.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from access.hooks import LIMIT_KINDS
from access.models import ApiToken, Scope
from access.services import (
    allowed_scopes,
    check_token_request,
    clean_worker_limits,
    create_api_token,
    revoke_api_token,
)
from core.errors import ApplicationError

SUPERUSER_HELP = (
    "As a superuser you may create a token for any user, with any scope (say, a worker token for a service "
    "account). Everyone else creates tokens only for themselves, with the scopes their role allows."
)
OWN_HELP = (
    "Tokens are yours: you create them only for yourself, with the scopes your role allows "
    "(superusers may create them for others)."
)


class ApiTokenForm(forms.ModelForm):
    """The add form; `requested_by` narrows the owner and scopes to what that user may ask for."""

    scopes = forms.MultipleChoiceField(choices=Scope.choices, widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = ApiToken
        fields = ["name", "user", "scopes", "expires_at"]

    requested_by: Any = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        requester = self.requested_by
        if requester is not None and not requester.is_superuser:
            scopes = self.fields["scopes"]
            assert isinstance(scopes, forms.MultipleChoiceField)
            scopes.choices = [(value, label) for value, label in Scope.choices if value in allowed_scopes(requester)]
            scopes.help_text = OWN_HELP
        elif "user" in self.fields:
            self.fields["user"].help_text = SUPERUSER_HELP
        for kind_name, kind in sorted(LIMIT_KINDS.items()):
            self.fields[f"limit_{kind_name}"] = forms.TypedMultipleChoiceField(
                choices=kind.choices(),
                coerce=int,
                required=False,
                label=f"Only these {kind_name}",
                help_text=f"Worker tokens: claim and fill only the work of these {kind_name}; none: any.",
            )

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        requester = self.requested_by
        if "scopes" not in data or requester is None:
            return data
        owner = data.get("user") if requester.is_superuser else requester
        if owner is None:
            return data
        try:
            data["scopes"] = check_token_request(requested_by=requester, user=owner, scopes=data["scopes"])
            data["worker_limits"] = clean_worker_limits(
                scopes=data["scopes"], limits={name: data.get(f"limit_{name}") or [] for name in LIMIT_KINDS}
            )
        except ApplicationError as error:
            raise forms.ValidationError(error.message) from error
        data["user"] = self.instance.user = owner
        return data


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

    def get_queryset(self, request: HttpRequest) -> QuerySet[ApiToken]:
        tokens = super().get_queryset(request)
        return tokens if request.user.is_superuser else tokens.filter(user_id=request.user.pk)

    def get_readonly_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> list[str]:
        # A token's owner, scopes and limits are fixed once issued: revoke and create a new one instead.
        fixed = ["user", "scopes", "worker_limits"] if obj is not None else []
        return [*fixed, *self.readonly_fields]

    def get_fields(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        fields = list(super().get_fields(request, obj))
        # Only a superuser picks the owner; for everyone else it is themselves (set in the form's clean).
        return fields if obj is not None or request.user.is_superuser else [f for f in fields if f != "user"]

    def get_form(self, request: HttpRequest, obj: ApiToken | None = None, change: bool = False, **kwargs: Any) -> Any:
        if obj is not None:
            kwargs["form"] = forms.ModelForm
            return super().get_form(request, obj, change=change, **kwargs)
        # Named here, not taken from the fieldsets: the limit fields are the form's own (made per kind in __init__).
        owner = ["user"] if request.user.is_superuser else []
        kwargs["fields"] = ["name", *owner, "scopes", "expires_at"]
        form = super().get_form(request, obj, change=change, **kwargs)
        return type(form.__name__, (form,), {"requested_by": request.user})

    def get_fieldsets(self, request: HttpRequest, obj: ApiToken | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None:
            # The limit fields are made by the form (one per kind the apps register), so list them here.
            limits = [f"limit_{name}" for name in sorted(LIMIT_KINDS)]
            fieldsets = [(None, {"fields": [*fieldsets[0][1]["fields"], *limits]})]
        return fieldsets

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
            user=data["user"],
            name=data["name"],
            scopes=data["scopes"],
            expires_at=data.get("expires_at"),
            requested_by=request.user,
            worker_limits=data.get("worker_limits"),
        )
        # The admin logs and redirects using obj: make it the row the service created.
        obj.pk, obj.user, obj.scopes = issued.token.pk, issued.token.user, issued.token.scopes
        messages.warning(
            request, f"The key of API token {issued.token.name!r}, shown only now: {issued.key}", extra_tags="api-key"
        )

    @admin.action(description="Revoke the selected API tokens")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        revoked = sum(revoke_api_token(token=token) for token in queryset)
        self.message_user(request, f"Revoked {revoked} API token(s).", messages.SUCCESS)
