"""Strikes and the seller ladder.

An upheld complaint or a confirmed-abuse case gives the shop a strike. Strikes decay
(``weight * 2^(-age / half_life)``), and the shop's step on the ladder follows what is left,
rounded (a strike counts in full for about one half-life):

    0 good standing → 1 warning → 2 listing removal → 3 selling restriction → 4 suspension

Each step up emits an outbox action with a statement of reasons (on the case that caused
the strike); each step down -- after decay, an upheld appeal (its strike is reversed) or a
remediation -- is a *reinstatement*: the reversal of the action the step had imposed.
Thresholds and actions are configurable (:class:`Ladder`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from riskctl import audit, casework, outbox, statements
from riskctl.errors import NotFound
from riskctl.models import OutboxAction, SellerStanding, Strike, utcnow
from riskctl.reputation import decay


@dataclass(frozen=True)
class Step:
    name: str
    threshold: float  # active strikes (decayed) at which the shop is on this step
    action: str  # an action of riskctl.statements.ACTIONS


DEFAULT_STEPS = (
    Step("warning", 1.0, "warn_seller"),
    Step("listing_removal", 2.0, "take_down_listing"),
    Step("selling_restriction", 3.0, "restrict_account"),
    Step("suspension", 4.0, "suspend_account"),
)


@dataclass(frozen=True)
class Ladder:
    steps: tuple[Step, ...] = DEFAULT_STEPS
    half_life_days: float = 180.0

    def __post_init__(self) -> None:
        ts = [s.threshold for s in self.steps]
        if ts != sorted(ts) or len(set(ts)) != len(ts) or not ts or ts[0] <= 0:
            raise ValueError("ladder thresholds must be positive and strictly increasing")
        for s in self.steps:
            statements.action_type(s.action)

    def level_for(self, active: float) -> int:
        # Strikes count rounded: one strike counts in full while more than half of it is
        # left (one half-life), so a second strike a day after the first still makes two.
        counted = math.floor(active + 0.5)
        return sum(1 for s in self.steps if counted >= s.threshold)

    def name(self, level: int) -> str:
        return "good_standing" if level == 0 else self.steps[level - 1].name


def add(conn: Connection, shop_id: str, reason: str, ref: str, *, weight: float = 1.0, now: datetime) -> int:
    return int(
        conn.execute(
            insert(Strike).returning(Strike.id),
            {"shop_id": shop_id, "reason": reason, "ref": ref, "weight": weight, "at": now},
        ).scalar_one()
    )


def reverse(conn: Connection, ref: str, *, actor: str, now: datetime) -> list[str]:
    """Take back the strikes recorded under ``ref`` (an upheld appeal); returns the shops."""
    rows = conn.execute(
        select(Strike.id, Strike.shop_id).where(Strike.ref == ref, Strike.reversed_at.is_(None))
    ).all()
    for r in rows:
        conn.execute(update(Strike).where(Strike.id == r.id).values(reversed_at=now))
        audit.append(conn, actor, "strike.reverse", f"shop:{r.shop_id}", {"strike": r.id, "ref": ref})
    return sorted({r.shop_id for r in rows})


def active(conn: Connection, shop_id: str, ladder: Ladder, now: datetime) -> float:
    hl = ladder.half_life_days * 86400.0
    rows = conn.execute(
        select(Strike.weight, Strike.at).where(Strike.shop_id == shop_id, Strike.reversed_at.is_(None))
    ).all()
    return sum(w * decay((now - at).total_seconds(), hl) for w, at in rows)


def standing(conn: Connection, shop_id: str) -> int:
    level = conn.execute(
        select(SellerStanding.level).where(SellerStanding.shop_id == shop_id)
    ).scalar_one_or_none()
    return level or 0


def evaluate(
    conn: Connection,
    shop_id: str,
    ladder: Ladder,
    *,
    actor: str,
    now: datetime | None = None,
    case_id: str | None = None,
    why: str = "",
) -> tuple[int, int]:
    """Move the shop to the step its active strikes call for; returns (old, new) level.

    Up: the new step's action with a statement of reasons, on ``case_id`` (the case behind
    the newest strike). Down: every step left is reinstated (its action reversed).
    """
    now = now or utcnow()
    old = standing(conn, shop_id)
    strikes_now = active(conn, shop_id, ladder, now)
    new = ladder.level_for(strikes_now)
    if new == old:
        return old, new
    if (
        old == 0
        and conn.execute(select(SellerStanding.shop_id).where(SellerStanding.shop_id == shop_id)).first()
        is None
    ):
        conn.execute(insert(SellerStanding), {"shop_id": shop_id, "level": new, "updated_at": now})
    else:
        conn.execute(
            update(SellerStanding).where(SellerStanding.shop_id == shop_id).values(level=new, updated_at=now)
        )
    detail = {"from": ladder.name(old), "to": ladder.name(new), "active_strikes": round(strikes_now, 4)}
    if new > old:
        step = ladder.steps[new - 1]
        if case_id is None:
            case_id = _latest_case(conn, shop_id)
        if case_id is not None:
            row = casework._load(conn, case_id)
            note = (
                f"Seller ladder: the shop {shop_id} reached step {new} ({step.name}) with "
                f"{strikes_now:.2f} active strikes (upheld infringement complaints and confirmed abuse, "
                f"decaying with a half-life of {ladder.half_life_days:g} days). {why}".strip()
            )
            ids = casework._emit_actions(
                conn,
                row,
                actor,
                [casework.ActionRequest(step.action, shop_id, {"ladder_step": step.name, "level": new})],
                note,
                now,
            )
            detail["actions"] = ids
        audit.append(conn, actor, "seller.step_up", f"shop:{shop_id}", detail)
    else:
        reversed_ids = []
        for level in range(old, new, -1):
            spec = statements.action_type(ladder.steps[level - 1].action)
            original = conn.execute(
                select(OutboxAction.id, OutboxAction.case_id)
                .where(
                    OutboxAction.type == spec.name,
                    OutboxAction.target == shop_id,
                    OutboxAction.reverses.is_(None),
                )
                .order_by(OutboxAction.created_at.desc())
                .limit(1)
            ).first()
            if original is None:
                continue
            done = conn.execute(select(OutboxAction.id).where(OutboxAction.reverses == original.id)).first()
            if done is not None:
                continue
            reversed_ids.append(
                outbox.enqueue(
                    conn,
                    case_id=original.case_id,
                    type=spec.reversal,
                    target=shop_id,
                    actor=actor,
                    payload={"reason": why or "strikes decayed", "ladder_step": ladder.name(new)},
                    reverses=original.id,
                    now=now,
                )
            )
        detail["actions"] = reversed_ids
        audit.append(conn, actor, "seller.reinstate", f"shop:{shop_id}", detail)
    return old, new


def remediate(
    conn: Connection, shop_id: str, ladder: Ladder, *, actor: str, now: datetime | None = None, note: str = ""
) -> tuple[int, int]:
    """The seller fixed what was wrong: its strikes are cleared and it is reinstated."""
    now = now or utcnow()
    rows = (
        conn.execute(select(Strike.id).where(Strike.shop_id == shop_id, Strike.reversed_at.is_(None)))
        .scalars()
        .all()
    )
    if not rows and standing(conn, shop_id) == 0:
        raise NotFound(f"shop {shop_id!r} has no active strikes")
    conn.execute(update(Strike).where(Strike.id.in_(rows)).values(reversed_at=now))
    audit.append(
        conn, actor, "strike.remediate", f"shop:{shop_id}", {"strikes": list(rows), "note": note[:500]}
    )
    return evaluate(conn, shop_id, ladder, actor=actor, now=now, why=f"remediation: {note}".strip())


def _latest_case(conn: Connection, shop_id: str) -> str | None:
    from riskctl.models import Case

    return conn.execute(
        select(Case.id)
        .where((Case.shop_id == shop_id) | (Case.subject_id == shop_id))
        .order_by(Case.opened_at.desc())
        .limit(1)
    ).scalar_one_or_none()


def tick(
    conn: Connection, ladder: Ladder, *, actor: str = "scheduler", now: datetime | None = None
) -> list[tuple[str, int, int]]:
    """Re-evaluate every shop above good standing (strikes decay): the ones that moved."""
    now = now or utcnow()
    moved = []
    shops: Sequence[Any] = (
        conn.execute(select(SellerStanding.shop_id).where(SellerStanding.level > 0)).scalars().all()
    )
    for shop in shops:
        old, new = evaluate(conn, shop, ladder, actor=actor, now=now, why="strikes decayed")
        if old != new:
            moved.append((shop, old, new))
    return moved
