"""Forms of the support dashboard pages; the services validate what matters (the same checks as the API)."""

from __future__ import annotations

from django import forms

from apps.support.models import Document
from apps.support.services import documents as document_services
from apps.support.services import knowledge

TEXT_FORMATS = [(f, label) for f, label in Document.Format.choices if f not in ("pdf", "sitemap")]
UPLOAD_FORMATS = [("", "From the file name"), *[c for c in Document.Format.choices if c[0] != "sitemap"]]


class KnowledgeBaseForm(forms.Form):
    name = forms.CharField(max_length=knowledge.NAME_MAX)
    slug = forms.SlugField(
        max_length=50, required=False, help_text="Names it in URLs; default: from the name."
    )
    description = forms.CharField(
        required=False, max_length=knowledge.DESCRIPTION_MAX, widget=forms.Textarea(attrs={"rows": 2})
    )


class UploadForm(forms.Form):
    file = forms.FileField(
        help_text=".md, .html, .txt, .pdf, or a .csv with question and answer columns; "
        f"at most {document_services.UPLOAD_MAX_BYTES // (1024 * 1024)} MB"
    )
    title = forms.CharField(required=False, max_length=300, help_text="Default: the file name.")
    format = forms.ChoiceField(choices=UPLOAD_FORMATS, required=False)
    visibility = forms.ChoiceField(choices=Document.Visibility.choices)


class PasteForm(forms.Form):
    title = forms.CharField(max_length=300)
    text = forms.CharField(widget=forms.Textarea(attrs={"rows": 6}), strip=False)
    format = forms.ChoiceField(choices=TEXT_FORMATS, initial="markdown")
    visibility = forms.ChoiceField(choices=Document.Visibility.choices)


class UrlForm(forms.Form):
    url = forms.URLField(
        max_length=2000,
        label="URL",
        assume_scheme="https",
        help_text="A page, or a sitemap (each page is added).",
    )
    title = forms.CharField(required=False, max_length=300, help_text="Default: the page's own title.")
    visibility = forms.ChoiceField(choices=Document.Visibility.choices)
    sync_minutes = forms.IntegerField(
        min_value=0,
        max_value=document_services.SYNC_MINUTES_MAX,
        initial=0,
        label="Re-read every (minutes)",
        help_text="0: never; otherwise 15 or more.",
    )
