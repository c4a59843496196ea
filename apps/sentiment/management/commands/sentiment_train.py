"""Train a sentiment model version as a job, in this process, with a progress bar; print its metrics."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from apps.core.errors import ServiceError
from apps.core.models import JobStatus, TrainingJob
from apps.core.services import jobs as job_services
from apps.sentiment.services.training import DEFAULTS

# The on/off training options: --NAME / --no-NAME.
SWITCHES = {
    "class_weights": "weight the loss by inverse class frequency (a soup has one ingredient of each)",
    "soup": "average the weights of a class-weighted and an unweighted fine-tune, if that validates no worse than "
    "the better one alone (twice the training time, one model's inference cost)",
    "class_bias": "fit a bias per class on the validation split, so decisions follow the class frequencies",
}


class Command(BaseCommand):
    help = (
        "Fine-tune MiniLM on finance sentiment (PhraseBank and/or tweets) as a job row, run here through the "
        "same job runner the workers use (no worker needed), with a progress bar here and on the dashboard's Jobs page. The version is registered and made active only if "
        "it beats the active one on the fixed evaluation split. With neither file given, both default files "
        "under DATA_DIR are used. --tfns alone trains a model free of PhraseBank's non-commercial licence."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--phrasebank", metavar="FILE", help="Financial PhraseBank file (sentence@label)")
        parser.add_argument(
            "--tfns", metavar="FILE", help="tweets CSV (text,label) to train on, e.g. sent_train.csv"
        )
        parser.add_argument(
            "--tfns-eval",
            metavar="FILE",
            help="tweets CSV to evaluate on (default: sent_valid.csv next to --tfns)",
        )
        parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
        parser.add_argument("--learning-rate", type=float, default=DEFAULTS["learning_rate"])
        parser.add_argument("--max-length", type=int, default=DEFAULTS["max_length"])
        parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
        parser.add_argument(
            "--max-steps", type=int, default=0, help="stop each fine-tune after this many steps (0: no cap)"
        )
        parser.add_argument(
            "--max-examples", type=int, default=0, help="train on a stratified sample (0: all)"
        )
        for name, help_text in SWITCHES.items():
            parser.add_argument(
                f"--{name.replace('_', '-')}",
                action=argparse.BooleanOptionalAction,
                default=DEFAULTS[name],
                help=f"{help_text} (default: {'on' if DEFAULTS[name] else 'off'})",
            )
        parser.add_argument(
            "--label-smoothing",
            type=float,
            default=DEFAULTS["label_smoothing"],
            help="spread this share of each target over all classes, for noisy labels (default: 0)",
        )
        parser.add_argument("--promote", choices=["if_better", "always", "never"], default="if_better")
        parser.add_argument("--json", action="store_true", help="print a JSON summary as the last line")

    def handle(self, *args: Any, **opts: Any) -> None:
        params = {
            "phrasebank": opts["phrasebank"] or "",
            "tfns": opts["tfns"] or "",
            "tfns_eval": opts["tfns_eval"] or "",
            "epochs": opts["epochs"],
            "learning_rate": opts["learning_rate"],
            "max_length": opts["max_length"],
            "batch_size": opts["batch_size"],
            "max_steps": opts["max_steps"],
            "max_examples": opts["max_examples"],
            "class_weights": opts["class_weights"],
            "class_bias": opts["class_bias"],
            "soup": opts["soup"],
            "label_smoothing": opts["label_smoothing"],
            "promote": opts["promote"],
        }
        try:
            job = job_services.job_create_local(kind="sentiment_train", params=params, trusted=True)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        self.stderr.write(f"job #{job.pk}: training a sentiment model ({json.dumps(job.params)})")
        started = time.monotonic()
        try:
            job = job_services.job_run_local(job=job)
        except ServiceError as exc:
            raise CommandError(exc.message) from None
        if job.status != JobStatus.SUCCEEDED:
            raise CommandError(f"job #{job.pk} {job.status}: {job.error}")
        self._print(job, round(time.monotonic() - started, 1), opts["json"])

    def _print(self, job: TrainingJob, seconds: float, as_json: bool) -> None:
        m, r = job.metrics, job.result
        for name, values in (m.get("eval") or {}).items():
            old = ((m.get("active_eval") or {}).get(name) or {}).get("accuracy")
            self.stdout.write(
                f"  {name:<20} n={values['n']:<5} accuracy={values['accuracy']:.4f} "
                f"macro_f1={values['macro_f1']:.4f}"
                + (f"  (active version: accuracy {old:.4f})" if old else "")
            )
        if r.get("active"):
            state = "active"
        elif job.params.get("promote") == "never":
            state = "registered, not promoted (--promote never)"
        else:
            state = "registered, not promoted (did not beat the active version)"
        self.stdout.write(f"sentiment v{r.get('version')} {state}; {seconds} s")
        if as_json:
            summary = {
                "job_id": job.pk,
                "status": job.status,
                "version": r.get("version"),
                "active": r.get("active"),
                "seconds": seconds,
                "metrics": m,
            }
            self.stdout.write(json.dumps(summary))
