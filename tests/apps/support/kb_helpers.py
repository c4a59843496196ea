"""Helpers of the support tests: small PDFs made with pypdf, and searching a KB's served index."""

from __future__ import annotations

import io
from typing import Any

from django.conf import settings

FAQ_MD = """# Billing

## Refunds
Refunds are paid back to the original card within 5 working days of the return reaching us.

## Invoices
Invoices are emailed on the first day of every month and can be downloaded from the account page.

# Shipping
Parcels ship within 2 days; tracking links arrive by email.
"""


def make_pdf(text: str = "", *, password: str | None = None) -> bytes:
    """A one-page PDF whose page shows `text` (a Type1 font and a content stream), optionally encrypted."""
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject

    writer = PdfWriter()
    page = writer.add_blank_page(width=612, height=792)
    font = DictionaryObject(
        {NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
         NameObject("/BaseFont"): NameObject("/Helvetica")}
    )  # fmt: skip
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})}
    )
    lines = [f"BT /F1 12 Tf 72 {720 - 16 * n} Td ({line}) Tj ET" for n, line in enumerate(text.split("\n"))]
    stream = DecodedStreamObject()
    stream.set_data("\n".join(lines).encode("latin-1"))
    page[NameObject("/Contents")] = writer._add_object(stream)
    if password:
        writer.encrypt(user_password=password, owner_password=password, algorithm="RC4-128")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def served_index(kb: Any) -> Any:
    from ml import api

    kb.refresh_from_db()
    return api.index_load(kb.index_name, kb.index_version, store=settings.MODEL_STORE)


def search_ids(kb: Any, query: str, k: int = 10) -> list[str]:
    return [hit.id for hit in served_index(kb).search(query, k)]
