"""Score a labelled file with the active sentiment model: n, accuracy and macro-F1."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.selectors import active_version
from apps.sentiment.services.training import LABELS, TASK, fingerprint, seen_fingerprints


class Command(BaseCommand):
    help = (
        "Evaluate the active sentiment model on a PhraseBank file (sentence@label, latin-1) or a tweets CSV "
        "(text,label with 0 bearish, 1 bullish, 2 neutral). Texts the model trained or validated on (recorded in "
        "its artifact) are left out and counted in excluded_seen, so the numbers are on unseen text only: on "
        "the full local Sentences_50Agree.txt that is exactly the held-out 20 %% evaluation split."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        group = parser.add_mutually_exclusive_group(required=True)
        group.add_argument("--phrasebank", metavar="FILE")
        group.add_argument("--tfns", metavar="FILE")
        parser.add_argument("--backend", default="torch-fp32", choices=["torch-fp32", "onnx-int8"])
        parser.add_argument(
            "--include-seen", action="store_true", help="also score texts the model trained on"
        )
        parser.add_argument("--json", action="store_true", help="print the result as JSON on the last line")

    def handle(self, *args: Any, **opts: Any) -> None:
        from ml import api
        from ml.api import accuracy, macro_f1
        from ml.errors import MLError

        version = active_version(TASK)
        if version is None:
            raise CommandError("no active sentiment model: run `manage.py sentiment_train` first")
        try:
            if opts["phrasebank"]:
                data = api.load_phrasebank(Path(opts["phrasebank"]))
            else:
                data = api.load_tfns(Path(opts["tfns"]))
        except MLError as exc:
            raise CommandError(str(exc)) from None
        seen = set() if opts["include_seen"] else seen_fingerprints(version.artifact_dir)
        keep = [i for i, text in enumerate(data.texts) if fingerprint(text) not in seen]
        texts = [data.texts[i] for i in keep]
        labels = [data.labels[i] for i in keep]
        if not texts:
            raise CommandError("every text in the file was seen in training: nothing to evaluate")
        predicted = [p.label for p in api.classify(version.artifact_dir, texts, backend=opts["backend"])]
        result = {
            "n": len(texts),
            "accuracy": round(accuracy(labels, predicted), 4),
            "macro_f1": round(macro_f1(labels, predicted, LABELS), 4),
            "excluded_seen": len(data.texts) - len(texts),
            "model_version": version.version,
            "backend": opts["backend"],
        }
        if opts["json"]:
            self.stdout.write(json.dumps(result))
        else:
            self.stdout.write(
                f"sentiment v{version.version} on {result['n']} texts: accuracy {result['accuracy']:.4f}, "
                f"macro-F1 {result['macro_f1']:.4f} ({result['excluded_seen']} seen in training left out)"
            )
