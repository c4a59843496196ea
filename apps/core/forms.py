import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from django import forms
from django.utils import timezone
from django.utils.html import escape
from rest_framework import serializers

from apps.core.errors import ServiceError
from apps.core.models import PromptLabel
from ml.api import check_template
from ml.errors import MLError

PARAM_PREFIX = "params-"  # a parameter's field is "params-<name>": no parameter name clashes with "kind"


class JobStartForm(forms.Form):
    """A job of one kind: the kind (hidden: the page's kind chooser picks it) and a field per parameter.

    The fields are built from the kind's schema (`JobKind.params_serializer`), which stays the one judge of
    the values: the form only reads what a browser sends (a checkbox, a number, a date and time in UTC), and
    `job_create` validates `params()`, its errors coming back next to their fields (`add_service_error`).
    """

    kind = forms.ChoiceField(choices=[], widget=forms.HiddenInput)

    def __init__(self, data: Mapping[str, Any] | None = None, *, kind: str | None = None) -> None:
        from apps.core.job_registry import all_kinds

        super().__init__(data, label_suffix="")
        kinds = {k.name: k for k in all_kinds()}
        self.fields["kind"].choices = [(k.name, k.label) for k in kinds.values()]  # type: ignore[attr-defined]
        chosen = self.data.get("kind") if self.is_bound else kind
        if not self.is_bound and chosen not in kinds:
            chosen = next(iter(kinds), None)
        self.job_kind = kinds.get(chosen or "")
        self.initial["kind"] = chosen
        if self.job_kind is not None:
            schema = self.job_kind.params_serializer()().fields
            self.fields.update({PARAM_PREFIX + name: _form_field(name, f) for name, f in schema.items()})

    def param_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name.startswith(PARAM_PREFIX)]

    def params(self) -> dict[str, Any]:
        """Every parameter as the form read it, empty optional ones left out (their default applies)."""
        values = {}
        for name, value in self.cleaned_data.items():
            if name.startswith(PARAM_PREFIX) and value not in (None, ""):
                plain = value.isoformat() if isinstance(value, datetime) else value
                values[name.removeprefix(PARAM_PREFIX)] = plain
        return values

    def add_service_error(self, error: ServiceError) -> None:
        """The service's message next to the parameter it names, or above the form (the kind, a permission)."""
        name = PARAM_PREFIX + (error.field or "")
        self.add_error(name if name in self.fields else None, error.message)


class _UTCDateTimeField(forms.DateTimeField):
    """A datetime-local input read and shown in UTC, whatever the server's TIME_ZONE (as the API's times)."""

    def to_python(self, value: Any) -> datetime | None:
        with timezone.override(UTC):
            return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        with timezone.override(UTC):
            return super().prepare_value(value)


def _number(field: serializers.Field) -> tuple[forms.Field, str]:
    integer = isinstance(field, serializers.IntegerField)
    low, high = field.min_value, field.max_value  # type: ignore[attr-defined]
    attrs = {"step": "1" if integer else "any"}
    attrs |= {key: str(v) for key, v in (("min", low), ("max", high)) if v is not None}
    form_field = (forms.IntegerField if integer else forms.FloatField)(widget=forms.NumberInput(attrs=attrs))
    shown = [f"{v:,}" if integer else f"{v:g}" for v in (low, high)]
    note = f"{shown[0]} to {shown[1]}" if None not in (low, high) else ""
    return form_field, note


def _choice(field: serializers.Field) -> tuple[forms.Field, str]:
    choices = list(field.choices.items())  # type: ignore[attr-defined]
    if getattr(field, "allow_blank", False) or field.allow_null:
        choices.insert(0, ("", "(none)"))
    return forms.ChoiceField(choices=choices), ""


def _datetime(field: serializers.Field) -> tuple[forms.Field, str]:
    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    return _UTCDateTimeField(widget=widget), "a date and time in UTC"


_Build = Callable[[serializers.Field], tuple[forms.Field, str]]  # a form field and a note on what it accepts
# The form field for each type of schema field, the first match winning (RegexField is a CharField).
_FIELDS: tuple[tuple[type[serializers.Field], _Build], ...] = (
    (serializers.BooleanField, lambda field: (forms.BooleanField(), "")),
    (serializers.ChoiceField, _choice),
    (serializers.IntegerField, _number),
    (serializers.FloatField, _number),
    (serializers.DateTimeField, _datetime),
)


def _form_field(name: str, field: serializers.Field) -> forms.Field:
    """The form field for one parameter: its type's input, its default, its help and what it accepts."""
    build = next((build for kind, build in _FIELDS if isinstance(field, kind)), None)
    form_field, note = build(field) if build else (forms.CharField(), "")
    default = None if field.default is serializers.empty else field.default
    form_field.initial = default() if callable(default) else default
    form_field.label = name
    form_field.required = field.required and not isinstance(form_field, forms.BooleanField)
    form_field.help_text = escape("; ".join(filter(None, (str(field.help_text or ""), note))))
    return form_field


class PromptTemplateForm(forms.Form):
    name = forms.SlugField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}))


class PromptEditForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 14}))
    note = forms.CharField(max_length=200, required=False)


class _TemplateValueField(forms.CharField):
    """Text as typed; a value in [ ] or { } is JSON, for lists and nested data."""

    def to_python(self, value: Any) -> Any:  # the text, or the list or dict a JSON value holds
        text = super().to_python(value) or ""
        if (text[:1], text[-1:]) not in (("[", "]"), ("{", "}")):
            return text
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(
                f"not valid JSON: {exc.msg} at line {exc.lineno} (a value in [ ] or {{ }} is read as JSON)"
            ) from None


class PromptPreviewForm(forms.Form):
    """One field per variable a version's body uses, in the order the body first uses them."""

    prefix = "var"  # field names cannot collide with the CSRF token's, whatever the variables are called
    help_text = (
        "Values are text. Give a list or nested data as JSON: a value in [ ] or { } is read as JSON, "
        'e.g. ["first", "second"] or [{"text": "…"}]. An empty field leaves its variable undefined.'
    )

    def __init__(self, data: Mapping[str, object] | None = None, *, body: str, number: int) -> None:
        super().__init__(data, auto_id=f"id_v{number}_%s")  # unique ids: one form per version on the page
        for name in _variables_in_order(body):
            self.fields[name] = _TemplateValueField(
                label=name, required=False, widget=forms.Textarea(attrs={"rows": 2})
            )

    def variables(self) -> dict[str, object]:
        """The filled fields' values (call after is_valid)."""
        return {name: value for name, value in self.cleaned_data.items() if value != ""}


def _variables_in_order(body: str) -> list[str]:
    try:
        names = check_template(body)
    except MLError:
        return []  # a stored body that no longer parses: the preview shows why
    return sorted(names, key=lambda name: (_first_use(name, body), name))


def _first_use(name: str, body: str) -> int:
    """Where `name` first appears as a word (ordering only: a word in the text may come first)."""
    found = re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", body)
    return found.start() if found else len(body)


class PromptLabelForm(forms.Form):
    label = forms.ChoiceField(choices=PromptLabel.Name.choices)
    version = forms.IntegerField(min_value=1)
    split_version = forms.IntegerField(min_value=1, required=False)
    split_percent = forms.IntegerField(min_value=0, max_value=100, required=False, initial=0)
