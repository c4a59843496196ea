import json

from django import forms

from apps.core.models import PromptLabel


class JobStartForm(forms.Form):
    kind = forms.ChoiceField(choices=[])
    params = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}),
        initial='{"dataset": "tfns", "method": "lora", "epochs": 1, "max_examples": 400}',
        help_text="JSON object of parameters for the job kind.",
    )

    def __init__(self, *args: object, **kwargs: object) -> None:
        from apps.core.job_registry import all_kinds

        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fields["kind"].choices = [(k.name, k.label) for k in all_kinds()]  # type: ignore[attr-defined]

    def clean_params(self) -> dict[str, object]:
        return _json_object(self.cleaned_data["params"])


def _json_object(raw: str) -> dict[str, object]:
    try:
        value = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise forms.ValidationError(f"not valid JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(value, dict):
        raise forms.ValidationError('must be a JSON object, like {"name": "value"}')
    return value


class PromptTemplateForm(forms.Form):
    name = forms.SlugField(max_length=100)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 12}))


class PromptEditForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 14}))
    note = forms.CharField(max_length=200, required=False)


class PromptPreviewForm(forms.Form):
    variables = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), initial="{}")

    def clean_variables(self) -> dict[str, object]:
        return _json_object(self.cleaned_data["variables"])


class PromptLabelForm(forms.Form):
    label = forms.ChoiceField(choices=PromptLabel.Name.choices)
    version = forms.IntegerField(min_value=1)
    split_version = forms.IntegerField(min_value=1, required=False)
    split_percent = forms.IntegerField(min_value=0, max_value=100, required=False, initial=0)
