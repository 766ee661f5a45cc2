"""Statements of reasons (DSA Art. 17) for restrictive enforcement actions.

Built from what the case already records: the decisions' live signals (rule hits with
their policy references, detector scores with the features that drove them) and who
resolved the case. Every field is filled: where the record is thin, the statement says
so in words rather than leaving a blank, because an empty field is a defective notice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from riskctl.errors import ValidationFailed


@dataclass(frozen=True)
class ActionType:
    name: str
    restrictive: bool
    restriction: str  # Art. 17(1) category
    what: str  # plain words for the subject
    target_kind: str  # where a default target comes from: order, review, coupon, listing, shop, account
    reversal: str


ACTIONS: dict[str, ActionType] = {
    a.name: a
    for a in (
        ActionType(
            "cancel_order",
            True,
            "suspension of the provision of the service",
            "the order was cancelled",
            "order",
            "reinstate_order",
        ),
        ActionType(
            "hide_review",
            True,
            "restriction of visibility (content removed from view)",
            "the review was hidden from the product page",
            "review",
            "restore_review",
        ),
        ActionType(
            "revoke_coupon",
            True,
            "restriction of monetary payments (promotional benefit withdrawn)",
            "the coupon or referral reward was revoked",
            "coupon",
            "reissue_coupon",
        ),
        ActionType(
            "take_down_listing",
            True,
            "restriction of visibility (content removed)",
            "the listing was taken down",
            "listing",
            "reinstate_listing",
        ),
        ActionType(
            "warn_seller",
            False,
            "warning (no restriction)",
            "the seller was warned",
            "shop",
            "withdraw_warning",
        ),
        ActionType(
            "restrict_account",
            True,
            "partial suspension of the provision of the service",
            "the account's selling and promotion features were restricted",
            "account",
            "lift_restriction",
        ),
        ActionType(
            "suspend_account",
            True,
            "suspension of the account",
            "the account was suspended",
            "account",
            "reinstate_account",
        ),
    )
}
REVERSALS = {a.reversal: a.name for a in ACTIONS.values()}
ALL_TYPES = frozenset(ACTIONS) | frozenset(REVERSALS)

# Matched on the policy text of the rules that fired: IP takedowns rest on the law as well.
_ILLEGAL_HINTS = ("trademark", "counterfeit", "infring", "copyright", "intellectual property")

REDRESS = (
    "You can appeal this decision through the marketplace's internal complaint-handling system "
    "within six months (reference the statement id). You may also refer the dispute to a certified "
    "out-of-court dispute settlement body (DSA Art. 21) or seek redress before the courts."
)


def action_type(name: str) -> ActionType:
    try:
        return ACTIONS[name]
    except KeyError:
        raise ValidationFailed(f"unknown action {name!r}; one of {', '.join(sorted(ACTIONS))}") from None


def live_hits(signals: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [s for s in signals if s.get("status") == "hit" and s.get("mode", "live") == "live"]


def _fact(sig: dict[str, Any]) -> str:
    text = sig.get("description") or sig.get("code", "signal")
    details = sig.get("details") or {}
    if sig.get("source") == "detector":
        drivers = details.get("drivers") or []
        if drivers:
            text += f" (most unusual: {', '.join(str(d.get('feature')) for d in drivers[:3])})"
    else:
        values = [f"{k}={v}" for k, v in details.items() if not k.startswith("_")][:4]
        if values:
            text += f" ({', '.join(values)})"
    return text


def build(
    *,
    statement_id: str,
    action: str,
    target: str,
    case: dict[str, Any],
    signals: list[dict[str, Any]],
    resolved_by: str | None,
    resolution_note: str | None,
    at: datetime,
) -> dict[str, Any]:
    """The statement's fields; none is ever empty."""
    spec = action_type(action)
    hits = live_hits(signals)
    facts = sorted({_fact(s) for s in hits})
    policies = sorted({s["policy"].strip() for s in hits if (s.get("policy") or "").strip()})
    automated_detection = bool(hits) or case.get("source", "decision") != "manual"
    automated_decision = resolved_by is None
    illegal = any(h in p.lower() for p in policies for h in _ILLEGAL_HINTS) or case.get("queue") == "ip"
    facts_text = (
        f"{case.get('decision_count', 1)} flagged {case.get('kind', 'event')} event(s) of {case.get('subject_id')} "
        f"were reviewed in the {case.get('queue')} queue. "
        + (
            "Signals: " + "; ".join(facts) + "."
            if facts
            else "The case was opened by a batch scan or a report; no rule text applies."
        )
    )
    if resolution_note and resolution_note.strip():
        facts_text += f" Reviewer's note: {resolution_note.strip()[:1000]}"
    body = {
        "statement_id": statement_id,
        "case_id": case["id"],
        "issued_at": at.isoformat(),
        "restriction": {
            "type": spec.restriction,
            "action": action,
            "description": spec.what,
            "scope": f"{spec.target_kind} {target}",
            "duration": "until reversed on appeal" if spec.restrictive else "not applicable",
        },
        "facts_and_circumstances": facts_text,
        "automated_detection": automated_detection,
        "automated_decision": automated_decision,
        "automation_description": (
            (
                "Automated rules and anomaly detectors flagged the activity. "
                if automated_detection
                else "The activity was reported, not detected automatically. "
            )
            + (
                "The decision was taken automatically."
                if automated_decision
                else f"A human reviewer ({resolved_by}) took the decision."
            )
        ),
        "ground": {
            "type": "illegal_content" if illegal else "contractual",
            "reference": "; ".join(policies)
            if policies
            else "Marketplace terms of service: prohibited conduct",
            "explanation": (
                "The content is considered illegal (infringement of intellectual property rights) and incompatible with the terms."
                if illegal
                else "The conduct is incompatible with the marketplace's terms and conditions cited."
            ),
        },
        "redress": REDRESS,
    }
    missing = empty_fields(body)
    if missing:  # a defect in this module, never in the user's input
        raise AssertionError(f"statement of reasons with empty fields: {missing}")
    return body


def empty_fields(body: Any, path: str = "") -> list[str]:
    """Paths of every empty string, list or mapping in a statement (booleans count as filled)."""
    if isinstance(body, dict):
        if not body:
            return [path or "."]
        return [p for k, v in body.items() for p in empty_fields(v, f"{path}.{k}" if path else k)]
    if isinstance(body, list):
        return (
            [path] if not body else [p for i, v in enumerate(body) for p in empty_fields(v, f"{path}[{i}]")]
        )
    if body is None or (isinstance(body, str) and not body.strip()):
        return [path]
    return []
