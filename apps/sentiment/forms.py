import json
from typing import Any

from django import forms

from apps.sentiment.models import AlertRule, Entity, Topic
from apps.sentiment.services.delivery import SECRET_MASK, channels_keep_secrets, channels_masked

CHANNELS_HELP = (
    'JSON list. Examples: {"type": "email", "to": ["ops@example.com"]}, '
    '{"type": "webhook", "url": "https://…", "secret": "…"}, {"type": "slack", "url": "https://hooks.slack.com/…"}. '
    f'Saved webhook secrets show as "{SECRET_MASK}": leave it to keep the secret, or type a new one. '
    "The dashboard notification is always on."
)


class AlertRuleForm(forms.Form):
    name = forms.CharField(max_length=200)
    enabled = forms.BooleanField(required=False, initial=True)
    entity = forms.ModelChoiceField(
        queryset=Entity.objects.filter(active=True), required=False, empty_label="(every active entity)"
    )
    topic = forms.ModelChoiceField(queryset=Topic.objects.all(), required=False, empty_label="(no topic)")
    condition = forms.ChoiceField(choices=AlertRule.Condition.choices)
    threshold = forms.FloatField(min_value=0.1, initial=3.0, help_text="z-score; 3 is a common start")
    window_minutes = forms.IntegerField(
        min_value=1, max_value=7 * 24 * 60, initial=60, help_text="rounded up to hours"
    )
    min_count = forms.IntegerField(
        min_value=1, initial=5, help_text="items in the window before anything fires"
    )
    cooldown_minutes = forms.IntegerField(min_value=0, initial=240, help_text="quiet time after a resolution")
    severity = forms.ChoiceField(choices=AlertRule.Severity.choices, initial=AlertRule.Severity.WARNING)
    channels = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 4}), initial="[]", help_text=CHANNELS_HELP
    )

    def __init__(self, *args: Any, rule: AlertRule | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stored_channels: list[dict[str, Any]] = list(rule.channels) if rule else []

    @classmethod
    def for_rule(cls, rule: AlertRule) -> "AlertRuleForm":
        """The editor for a saved rule: its secrets are masked (they are write-only)."""
        initial: dict[str, Any] = {f: getattr(rule, f) for f in cls.base_fields if f != "channels"}
        initial["channels"] = json.dumps(channels_masked(rule.channels), indent=1, ensure_ascii=False)
        return cls(initial=initial, rule=rule)

    def clean_channels(self) -> list[Any]:
        raw = self.cleaned_data.get("channels") or "[]"
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
        if not isinstance(value, list):
            raise forms.ValidationError("a JSON list of channel objects, like [] or [{...}]")
        return list(channels_keep_secrets(channels=value, stored=self.stored_channels))

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("entity") and data.get("topic"):
            self.add_error("topic", "Choose an entity or a topic (or neither, for every entity), not both.")
        return data

    def backtest_params(self) -> dict[str, Any]:
        keys = (
            "condition",
            "threshold",
            "window_minutes",
            "min_count",
            "cooldown_minutes",
            "entity",
            "topic",
        )
        return {k: self.cleaned_data[k] for k in keys}


class CsvUploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV with a header row: a text or title column; optional published_at, url, language, id"
    )
    encoding = forms.ChoiceField(choices=[("utf-8", "UTF-8"), ("latin-1", "Latin-1")], initial="utf-8")
    source = forms.CharField(max_length=200, required=False, help_text="source name (default: upload:<you>)")


class FeedForm(forms.Form):
    name = forms.CharField(max_length=200, help_text="how the source is shown, e.g. reuters-markets")
    url = forms.URLField(
        max_length=1000, assume_scheme="https", help_text="an RSS or Atom feed (http or https)"
    )
    poll_minutes = forms.IntegerField(
        min_value=1, max_value=1440, initial=10, help_text="minutes between polls"
    )
