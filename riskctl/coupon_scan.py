"""Coupon farms and referral rings in the stored coupon redemptions (``riskctl scan coupons``).

The scan rebuilds, offline, the entity-link graph the check keeps online
(:mod:`detectors.linkgraph`): accounts joined by a shared device, card, address or /24 network,
transitively. Over the stored redemptions of a period it reports

The link types are the check's (``RISKCTL_COUPON_LINK_TYPES``: device, card, address by
default; ``ip24`` can be added).

* **coupon farms**: a link cluster in which ``min_accounts`` or more distinct accounts
  redeemed the same campaign (one finding per cluster and campaign);
* **referral rings**: a referrer of whose invitees ``min_invitees`` or more sit in one link
  cluster (they share devices, cards, addresses or networks with each other).

Each finding opens (or joins) one case in the coupon queue with its members and evidence,
through :func:`riskctl.scans.record_findings`. A finding's key is derived from its members,
so scanning the same data again changes nothing; its subject is the campaign and the farm's
first redeeming account (or the referrer), so a farm that grows joins its open case. Stored payloads carry device, IP, card and
address as keyed hashes; the scan works on those tokens and never sees raw values.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, select

from detectors.linkgraph import DEFAULT_LINK_TYPES, LinkGraph, Node, Redemption
from riskctl.models import EventRecord
from riskctl.scans import Finding

KIND = "coupon_redemption"
MAX_MEMBERS = 500  # members listed in one finding's evidence


@dataclass(frozen=True, slots=True)
class StoredRedemption:
    redemption: Redemption
    event_id: str
    discount: float


def redemption_from_payload(payload: dict[str, Any], at_ms: int) -> Redemption:
    """A :class:`Redemption` from a stored (redacted) coupon_redemption payload."""
    return Redemption(
        account=payload["account_id"],
        campaign=payload["campaign_id"],
        at_ms=at_ms,
        links={
            "device": payload.get("device_id"),
            "payment": payload.get("payment_fingerprint"),
            "address": payload.get("shipping_address_hash"),
            "ip24": payload.get("ip24"),
        },
        referrer=payload.get("referrer_id"),
        device=payload.get("device_id"),
    )


def load_redemptions(
    engine: Engine, *, since: datetime | None = None, until: datetime | None = None, chunk: int = 5000
) -> Iterator[StoredRedemption]:
    """Stored coupon redemptions in [since, until), oldest first (as the check saw them)."""
    query = select(EventRecord.event_id, EventRecord.occurred_at, EventRecord.payload).where(
        EventRecord.kind == KIND
    )
    if since is not None:
        query = query.where(EventRecord.occurred_at >= since)
    if until is not None:
        query = query.where(EventRecord.occurred_at < until)
    query = query.order_by(EventRecord.occurred_at, EventRecord.id)
    with engine.connect() as conn:
        for row in conn.execution_options(yield_per=chunk).execute(query):
            at = row.occurred_at if row.occurred_at.tzinfo else row.occurred_at.replace(tzinfo=UTC)
            at_ms = int(at.timestamp() * 1000)
            payload = row.payload
            yield StoredRedemption(
                redemption_from_payload(payload, at_ms),
                row.event_id,
                float(payload.get("discount_amount") or 0.0),
            )


@dataclass
class CouponScanReport:
    redemptions: int = 0
    accounts: int = 0
    clusters: int = 0  # link clusters with two or more accounts
    largest_cluster: int = 0
    findings: list[Finding] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        farms = sum(1 for f in self.findings if f.detector == "coupons.farm")
        return {
            "redemptions": self.redemptions,
            "accounts": self.accounts,
            "clusters": self.clusters,
            "largest_cluster": self.largest_cluster,
            "farms": farms,
            "referral_rings": len(self.findings) - farms,
        }


def _digest(parts: Iterable[str]) -> str:
    return hashlib.blake2b("\x1f".join(parts).encode(), digest_size=8).hexdigest()


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def _subject(prefix: str, *parts: str) -> str:
    readable = ":".join((prefix, *parts))
    return readable if len(readable) <= 128 else f"{prefix}:{_digest(parts)}"


def scan_redemptions(
    rows: Iterable[StoredRedemption],
    *,
    min_accounts: int = 5,
    min_invitees: int = 3,
    link_types: Sequence[str] = DEFAULT_LINK_TYPES,
) -> CouponScanReport:
    """Build the link graph over ``rows`` (oldest first) and report farms and rings."""
    graph = LinkGraph(tuple(link_types))
    report = CouponScanReport()
    # per campaign and account: first redemption (ms, event id), redemptions, discount
    first: dict[tuple[str, str], tuple[int, str]] = {}
    count: Counter[tuple[str, str]] = Counter()
    money: defaultdict[tuple[str, str], float] = defaultdict(float)
    entity_accounts: dict[Node, set[str]] = defaultdict(set)
    for row in rows:
        r = row.redemption
        graph.add(r)
        report.redemptions += 1
        ck = (r.campaign, r.account)
        first.setdefault(ck, (r.at_ms, row.event_id))
        count[ck] += 1
        money[ck] += row.discount
        for kind in graph.link_types:
            value = r.links.get(kind)
            if value is not None:
                entity_accounts[(kind, value)].add(r.account)

    components = graph.components()
    report.accounts = sum(len(m) for m in components.values())
    sizes = [len(m) for m in components.values()]
    report.clusters = sum(1 for s in sizes if s >= 2)
    report.largest_cluster = max(sizes, default=0)
    root_of = {acct: root for root, members in components.items() for acct in members}

    # shared entities per cluster: how many devices, cards... join two or more of its accounts
    shared: dict[Node, Counter[str]] = defaultdict(Counter)
    for (kind, _), accts in entity_accounts.items():
        if len(accts) >= 2:
            shared[root_of[next(iter(accts))]][kind] += 1

    by_cluster_campaign: dict[tuple[Node, str], list[str]] = defaultdict(list)
    for campaign, account in first:
        by_cluster_campaign[(root_of[account], campaign)].append(account)
    farms = [(key, accts) for key, accts in by_cluster_campaign.items() if len(accts) >= min_accounts]
    for (root, campaign), accounts in sorted(farms, key=lambda kv: (kv[0][1], min(kv[1]))):
        accounts.sort(key=lambda a: first[(campaign, a)])
        opener = accounts[0]
        members = tuple(sorted(accounts))
        n = len(members)
        redemptions = sum(count[(campaign, a)] for a in members)
        discount = round(sum(money[(campaign, a)] for a in members), 2)
        times = [first[(campaign, a)][0] for a in members]
        report.findings.append(
            Finding(
                detector="coupons.farm",
                key=f"coupon-farm:{campaign}:{n}:{_digest(members)}",
                kind=KIND,
                subject_id=_subject("coupon-farm", campaign, opener),
                title=f"Coupon farm: {n} linked accounts redeemed campaign {campaign}",
                score=float(min(100, 50 + 5 * (n - min_accounts + 2))),
                evidence={
                    "campaign": campaign,
                    "accounts": n,
                    "redemptions": redemptions,
                    "discount": discount,
                    "cluster_accounts": len(components[root]),
                    "shared_entities": dict(sorted(shared[root].items())),
                    "first_at": _iso(min(times)),
                    "last_at": _iso(max(times)),
                    "truncated": n > MAX_MEMBERS,
                },
                money=discount,
                members=members[:MAX_MEMBERS],
            )
        )

    invitees: dict[str, list[str]] = defaultdict(list)
    for account, (referrer, _) in graph.referral.items():
        invitees[referrer].append(account)
    for referrer in sorted(invitees):
        groups: dict[Node, list[str]] = defaultdict(list)
        for account in invitees[referrer]:
            groups[root_of[account]].append(account)
        root, group = max(groups.items(), key=lambda kv: (len(kv[1]), sorted(kv[1])))
        if len(group) < min_invitees:
            continue
        members = tuple(sorted(group))
        depth = max(graph.depth(a, 0)[0] for a in members)
        report.findings.append(
            Finding(
                detector="coupons.referral_ring",
                key=f"referral-ring:{referrer}:{len(members)}:{_digest(members)}",
                kind=KIND,
                subject_id=_subject("referral-ring", referrer),
                title=f"Referral ring: {len(members)} linked invitees of {referrer}",
                score=float(min(100, 50 + 10 * (len(members) - min_invitees + 1))),
                evidence={
                    "referrer": referrer,
                    "invitees": len(invitees[referrer]),
                    "linked_invitees": len(members),
                    "referrer_in_cluster": root_of.get(referrer) == root,
                    "max_depth": depth,
                    "shared_entities": dict(sorted(shared[root].items())),
                },
                members=(referrer, *members[:MAX_MEMBERS]),
            )
        )
    return report


def scan_stored(
    engine: Engine,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    min_accounts: int = 5,
    min_invitees: int = 3,
    link_types: Sequence[str] = DEFAULT_LINK_TYPES,
) -> CouponScanReport:
    return scan_redemptions(
        load_redemptions(engine, since=since, until=until),
        min_accounts=min_accounts,
        min_invitees=min_invitees,
        link_types=link_types,
    )
