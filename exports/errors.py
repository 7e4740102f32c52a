"""The exports app's refusals.

A refusal about an option names it the way the web form and the API do (`criterion`, `ties: drop`); the
`export_preferences` command renders the same error with its own flags (`--criterion`, `--ties drop`), so a
web user never reads a command-line flag and a shell user never reads a field name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from core.errors import ApplicationError, Conflict

# Where a message names its option(s); rendered by `OptionNaming.render`.
OPTION = "{option}"

# (option, value) -> how that option is written for this audience.
Namer = Callable[[str, "str | None"], str]


def field_name(option: str, value: str | None) -> str:
    """`min_votes`, `ties: drop`: the option as the form and the API name it."""
    return option if value is None else f"{option}: {value}"


class OptionNaming:
    """A message whose `{option}` marks where the option(s) it is about are named, by field or by flag."""

    template: str
    options: tuple[str, ...]
    value: str | None

    def _name_options(self, message: str, option: str | Sequence[str] | None, value: str | None) -> str:
        self.template = message
        self.options = () if option is None else (option,) if isinstance(option, str) else tuple(option)
        self.value = value
        return self.render(field_name)

    @property
    def option(self) -> str | None:
        """The (first) option this refusal is about; None when it is about no option."""
        return self.options[0] if self.options else None

    def render(self, name: Namer) -> str:
        if not self.options:
            return self.template
        return self.template.replace(OPTION, ", ".join(name(o, self.value) for o in self.options))


class ExportError(OptionNaming, ApplicationError):
    code = "export_invalid"

    def __init__(
        self,
        message: str,
        *,
        option: str | Sequence[str] | None = None,
        value: str | None = None,
        code: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(self._name_options(message, option, value), code=code, status=status)


class TargetConflict(OptionNaming, Conflict):
    """The folder an export would be written to is taken."""

    def __init__(self, message: str, *, option: str | Sequence[str] | None = None, value: str | None = None) -> None:
        super().__init__(self._name_options(message, option, value))
