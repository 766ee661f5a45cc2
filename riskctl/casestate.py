"""The case workflow as an explicit state machine; an illegal move is a 409.

    open ──claim──▶ claimed ──resolve──▶ resolved ──appeal──▶ appealed ──▶ appeal_upheld
      ▲               │  (confirmed_abuse | false_positive │                 appeal_rejected
      └──release/expiry┘    | needs_info)                  │
      └────────────reopen (needs_info) ◀───────────────────┘

Only a ``confirmed_abuse`` resolution can be appealed (the subject was acted against).
"""

from __future__ import annotations

import enum

from riskctl.errors import Conflict


class CaseStatus(enum.StrEnum):
    OPEN = "open"
    CLAIMED = "claimed"
    RESOLVED = "resolved"
    APPEALED = "appealed"
    APPEAL_UPHELD = "appeal_upheld"
    APPEAL_REJECTED = "appeal_rejected"


class Resolution(enum.StrEnum):
    CONFIRMED_ABUSE = "confirmed_abuse"
    FALSE_POSITIVE = "false_positive"
    NEEDS_INFO = "needs_info"


class Move(enum.StrEnum):
    CLAIM = "claim"
    RELEASE = "release"
    EXPIRE = "expire"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    APPEAL = "appeal"
    UPHOLD_APPEAL = "uphold_appeal"
    REJECT_APPEAL = "reject_appeal"


_MOVES: dict[tuple[CaseStatus, Move], CaseStatus] = {
    (CaseStatus.OPEN, Move.CLAIM): CaseStatus.CLAIMED,
    (CaseStatus.CLAIMED, Move.RELEASE): CaseStatus.OPEN,
    (CaseStatus.CLAIMED, Move.EXPIRE): CaseStatus.OPEN,
    (CaseStatus.CLAIMED, Move.RESOLVE): CaseStatus.RESOLVED,
    (CaseStatus.RESOLVED, Move.REOPEN): CaseStatus.OPEN,
    (CaseStatus.RESOLVED, Move.APPEAL): CaseStatus.APPEALED,
    (CaseStatus.APPEALED, Move.UPHOLD_APPEAL): CaseStatus.APPEAL_UPHELD,
    (CaseStatus.APPEALED, Move.REJECT_APPEAL): CaseStatus.APPEAL_REJECTED,
}


def legal_moves(status: CaseStatus, resolution: Resolution | None = None) -> list[Move]:
    return [m for (s, m) in _MOVES if s is status and _allowed(s, m, resolution)]


def _allowed(status: CaseStatus, move: Move, resolution: Resolution | None) -> bool:
    if move is Move.REOPEN:
        return resolution is Resolution.NEEDS_INFO
    if move is Move.APPEAL:
        return resolution is Resolution.CONFIRMED_ABUSE
    return True


def transition(status: CaseStatus, move: Move, resolution: Resolution | None = None) -> CaseStatus:
    """The status after ``move``, or :class:`Conflict` naming what is allowed instead."""
    target = _MOVES.get((status, move))
    if target is None or not _allowed(status, move, resolution):
        allowed = ", ".join(m.value for m in legal_moves(status, resolution)) or "none"
        raise Conflict(f"cannot {move.value} a case that is {status.value}; allowed: {allowed}")
    return target


def label_of(status: CaseStatus, resolution: Resolution | None) -> bool | None:
    """What a case says about its events: abuse (True), legitimate (False) or unknown.

    An upheld appeal overturns a confirmed-abuse resolution; a rejected one confirms it.
    """
    if status is CaseStatus.APPEAL_UPHELD:
        return False
    if status in (CaseStatus.RESOLVED, CaseStatus.APPEALED, CaseStatus.APPEAL_REJECTED):
        if resolution is Resolution.CONFIRMED_ABUSE:
            return True
        if resolution is Resolution.FALSE_POSITIVE:
            return False
    return None
