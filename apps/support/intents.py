"""Intent detection's pure rules (no ORM, no Django): the fixed comparison split, the recipe key, and routing
a detected intent to a canned answer or to a person.

The comparison split. A text of a labelled intent file is held out when sha256(HOLDOUT_SALT + normalised
text) falls in the first HOLDOUT_PERCENT %: a fixed-seed split by text, the same whichever file the text
comes from, so no version of the intent model ever trained on a held-out text and two versions are always
compared on texts neither has seen. Test files are never used to choose anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

HOLDOUT_PERCENT = 10
HOLDOUT_SALT = "contexta-support-intent-holdout:"


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def held_out(text: str) -> bool:
    """True for the HOLDOUT_PERCENT % of texts kept out of training to compare versions on."""
    digest = hashlib.sha256((HOLDOUT_SALT + normalise(text)).encode("utf-8")).hexdigest()
    return int(digest[:8], 16) % 100 < HOLDOUT_PERCENT


def split_holdout(
    texts: Sequence[str], labels: Sequence[str]
) -> tuple[tuple[list[str], list[str]], tuple[list[str], list[str]]]:
    """((training texts, labels), (held-out texts, labels)) by `held_out`."""
    train: tuple[list[str], list[str]] = ([], [])
    held: tuple[list[str], list[str]] = ([], [])
    for text, label in zip(texts, labels, strict=True):
        side = held if held_out(text) else train
        side[0].append(text)
        side[1].append(label)
    return train, held


def recipe_key(file_sha256: str, recipe: Mapping[str, Any]) -> str:
    """What identifies a trained model: the training file's content and every recipe value that shapes it."""
    canonical = json.dumps({"file": file_sha256, **recipe}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:24]


# --- routing a detected intent ----------------------------------------------------------------------------
class Action(StrEnum):
    CANNED = "canned"  # reply with the route's answer
    HANDOFF = "handoff"  # always a person (lost cards, disputes, anything a wrong answer would hurt)


# A wrong canned answer misleads a customer; a needless hand-off costs an agent a minute: a canned answer
# needs more confidence than a hand-off does.
MIN_CONFIDENCE = {Action.CANNED: 0.85, Action.HANDOFF: 0.5}


@dataclass(frozen=True)
class IntentRoute:
    intent: str
    action: Action
    answer: str = ""
    min_confidence: float | None = None  # None: MIN_CONFIDENCE[action]

    def __post_init__(self) -> None:
        if self.action not in tuple(Action):
            raise ValueError(f"action must be one of {', '.join(Action)}, got {self.action!r}")
        if self.action == Action.CANNED and not self.answer.strip():
            raise ValueError(f"intent {self.intent!r}: a canned route needs an answer")
        if self.min_confidence is not None and not 0.0 <= self.min_confidence <= 1.0:
            raise ValueError(f"min_confidence must be between 0 and 1, got {self.min_confidence}")

    @property
    def threshold(self) -> float:
        return MIN_CONFIDENCE[Action(self.action)] if self.min_confidence is None else self.min_confidence


@dataclass(frozen=True)
class IntentDecision:
    intent: str
    confidence: float
    action: Action
    answer: str = ""


def route_intent(intent: str, confidence: float, routes: Iterable[IntentRoute]) -> IntentDecision | None:
    """The route for a detected intent when it is confident enough; None: answer as usual (retrieval)."""
    route = next((r for r in routes if r.intent == intent), None)
    if route is None or confidence < route.threshold:
        return None
    return IntentDecision(intent, confidence, Action(route.action), route.answer)
