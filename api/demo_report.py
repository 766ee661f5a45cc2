"""Scoring a simulated run against its ground truth, and the demo report (text and HTML).

Two levels, per abuse kind (each judged on its own event kind):

- decision level: an event is *flagged* when its outcome is not ``allow``; precision, recall
  and F1 of flagged against the event's ground-truth label;
- case level: a case is a true positive when its subject (or a member it names) is an
  abusive entity of that kind; recall is the share of abusive subjects seen in the traffic
  that ended up in some case.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from fixtures.simulator import ABUSE_KINDS, LEGIT_TAGS, TACTICS, SimEvent

KIND_ABUSE = {kind: abuse for abuse, kind in ABUSE_KINDS.items()}
SUBJECT_FIELD = {
    "order": "buyer_id",
    "review": "reviewer_id",
    "coupon_redemption": "account_id",
    "listing": "shop_id",
}


@dataclass(frozen=True)
class Result:
    """What the service answered for one simulated event."""

    outcome: str  # allow | review | block | error
    score: float
    latency_ms: float
    reasons: tuple[str, ...] = ()
    degraded: bool = False


@dataclass(frozen=True)
class CaseRow:
    id: str
    kind: str
    subject_id: str
    source: str
    first_event_at: datetime | None
    members: tuple[str, ...] = ()


def prf(tp: int, fp: int, fn: int) -> dict[str, float | None]:
    p = tp / (tp + fp) if tp + fp else None
    r = tp / (tp + fn) if tp + fn else None
    f1 = (
        2 * p * r / (p + r)
        if p is not None and r is not None and p + r
        else (0.0 if p is not None and r is not None else None)
    )
    return {"precision": p, "recall": r, "f1": f1}


@dataclass
class Report:
    seed: int
    size: int
    events: int
    eval_events: int
    decision: dict[str, dict[str, Any]] = field(default_factory=dict)
    tactics: dict[str, dict[str, Any]] = field(default_factory=dict)
    legit_tags: dict[str, dict[str, Any]] = field(default_factory=dict)
    cases: dict[str, dict[str, Any]] = field(default_factory=dict)
    queue: dict[str, Any] = field(default_factory=dict)
    money: dict[str, float] = field(default_factory=dict)
    performance: dict[str, float] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step of the run
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def score_run(
    sims: Sequence[SimEvent],
    results: Sequence[Result],
    *,
    entity_labels: dict[str, frozenset[str]],
    cases: Sequence[CaseRow] | None,
    seed: int,
    size: int,
    eval_from: datetime,
    moderators: int,
    capacity_per_moderator: int,
    wall_seconds: float,
) -> Report:
    """Score the evaluation period (events from ``eval_from``) of a run."""
    rep = Report(seed=seed, size=size, events=len(sims), eval_events=0)
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    tactic_counts: dict[str, Counter[str]] = defaultdict(Counter)
    tag_counts: dict[str, Counter[str]] = defaultdict(Counter)
    subjects: dict[str, set[str]] = defaultdict(set)  # abuse kind → abusive subjects seen
    money: defaultdict[str, float] = defaultdict(float)
    outcomes: Counter[str] = Counter()
    for sim, res in zip(sims, results, strict=True):
        if sim.at < eval_from:
            continue
        rep.eval_events += 1
        kind = sim.event["kind"]
        abuse = KIND_ABUSE[kind]
        flagged = res.outcome in ("review", "block")
        positive = sim.truth.abuse == abuse
        outcomes[res.outcome] += 1
        c = counts[abuse]
        c["tp" if flagged and positive else "fp" if flagged else "fn" if positive else "tn"] += 1
        if sim.truth.tactic:
            (tactic_counts if positive else tag_counts)[sim.truth.tactic][
                "flagged" if flagged else "passed"
            ] += 1
        if positive:
            subjects[abuse].add(sim.event[SUBJECT_FIELD[kind]])
        bucket = "abuse" if positive else "legit"
        if res.outcome == "block":
            money[f"blocked_{bucket}"] += sim.truth.money
        elif res.outcome == "review":
            money[f"held_{bucket}"] += sim.truth.money
        else:
            money[f"passed_{bucket}"] += sim.truth.money
    for abuse in ABUSE_KINDS:
        c = counts[abuse]
        rep.decision[abuse] = {
            "events": sum(c.values()),
            "abusive": c["tp"] + c["fn"],
            "flagged": c["tp"] + c["fp"],
            **prf(c["tp"], c["fp"], c["fn"]),
        }
    for tactic in TACTICS:
        t = tactic_counts[tactic]
        n = t["flagged"] + t["passed"]
        rep.tactics[tactic] = {"events": n, "recall": t["flagged"] / n if n else None}
    for tag in LEGIT_TAGS:
        t = tag_counts[tag]
        n = t["flagged"] + t["passed"]
        rep.legit_tags[tag] = {"events": n, "false_positive_rate": t["flagged"] / n if n else None}
    rep.money = {k: round(v, 2) for k, v in sorted(money.items())}
    rep.outcomes = dict(outcomes)
    if cases is not None:
        _score_cases(rep, cases, entity_labels, subjects, eval_from, moderators, capacity_per_moderator)
    else:
        rep.notes.append("case level: not measured (the service's database is not reachable from here)")
    lat = np.array(
        [
            r.latency_ms
            for s, r in zip(sims, results, strict=True)
            if s.at >= eval_from and r.outcome != "error"
        ]
    )
    rep.performance = {
        "p50_ms": round(float(np.percentile(lat, 50)), 2) if len(lat) else math.nan,
        "p99_ms": round(float(np.percentile(lat, 99)), 2) if len(lat) else math.nan,
        "throughput_rps": round(len(results) / wall_seconds, 1) if wall_seconds else math.nan,
        "errors": sum(1 for r in results if r.outcome == "error"),
        "degraded": sum(1 for r in results if r.degraded),
    }
    return rep


def _score_cases(
    rep: Report,
    cases: Sequence[CaseRow],
    entity_labels: dict[str, frozenset[str]],
    subjects: dict[str, set[str]],
    eval_from: datetime,
    moderators: int,
    capacity: int,
) -> None:
    per_day: Counter[str] = Counter()
    caught: dict[str, set[str]] = defaultdict(set)
    tp: Counter[str] = Counter()
    total: Counter[str] = Counter()
    scan_cases = 0
    for case in cases:
        abuse = KIND_ABUSE.get(case.kind)
        if abuse is None:
            continue
        named = {case.subject_id, *case.members}
        hits = {e for e in named if abuse in entity_labels.get(e, ())}
        if case.first_event_at is not None and case.first_event_at < eval_from:
            continue  # a warm-up case
        total[abuse] += 1
        if hits:
            tp[abuse] += 1
            caught[abuse] |= hits
        if case.source == "decision" and case.first_event_at is not None:
            per_day[case.first_event_at.date().isoformat()] += 1
        else:
            scan_cases += 1
    for abuse in ABUSE_KINDS:
        seen = subjects.get(abuse, set())
        found = len(seen & caught[abuse])
        p = tp[abuse] / total[abuse] if total[abuse] else None
        r = found / len(seen) if seen else None
        f1 = 2 * p * r / (p + r) if p and r else (0.0 if p is not None and r is not None else None)
        rep.cases[abuse] = {
            "cases": total[abuse],
            "true_cases": tp[abuse],
            "abusive_subjects": len(seen),
            "subjects_in_a_case": found,
            "precision": p,
            "recall": r,
            "f1": f1,
        }
    cap = moderators * capacity
    days = sorted(per_day)
    rep.queue = {
        "moderators": moderators,
        "capacity_per_moderator_day": capacity,
        "capacity_per_day": cap,
        "per_day": {d: per_day[d] for d in days},
        "scan_cases": scan_cases,
        "peak_day": max(per_day.values()) if per_day else 0,
        "mean_per_day": round(sum(per_day.values()) / len(days), 1) if days else 0.0,
        "moderators_needed_at_peak": math.ceil(max(per_day.values(), default=0) / capacity)
        if capacity
        else None,
    }


# -- text --------------------------------------------------------------------------------------
def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.1%}"


def print_report(rep: Report, console: Any) -> None:
    from rich.table import Table

    console.print(
        f"[bold]riskctl demo[/]: seed {rep.seed}, {rep.events:,} simulated events, "
        f"{rep.eval_events:,} scored after the warm-up"
    )
    t = Table(title="decision level (outcome review/block = flagged)")
    for col in ("abuse kind", "events", "abusive", "flagged", "precision", "recall", "F1"):
        t.add_column(col, justify="left" if col == "abuse kind" else "right")
    for abuse, d in rep.decision.items():
        t.add_row(
            abuse,
            f"{d['events']:,}",
            f"{d['abusive']:,}",
            f"{d['flagged']:,}",
            _pct(d["precision"]),
            _pct(d["recall"]),
            _pct(d["f1"]),
        )
    console.print(t)
    t = Table(title="recall per tactic, false positives on hard legitimate traffic")
    for col in ("traffic", "events", "flagged share"):
        t.add_column(col, justify="left" if col == "traffic" else "right")
    for tactic, d in rep.tactics.items():
        t.add_row(f"{tactic} (abuse)", f"{d['events']:,}", _pct(d["recall"]))
    for tag, d in rep.legit_tags.items():
        t.add_row(f"{tag} (legit)", f"{d['events']:,}", _pct(d["false_positive_rate"]))
    console.print(t)
    if rep.cases:
        t = Table(title="case level (a case is right when it names an abusive entity)")
        for col in (
            "abuse kind",
            "cases",
            "right",
            "abusive subjects",
            "in a case",
            "precision",
            "recall",
            "F1",
        ):
            t.add_column(col, justify="left" if col == "abuse kind" else "right")
        for abuse, d in rep.cases.items():
            t.add_row(
                abuse,
                str(d["cases"]),
                str(d["true_cases"]),
                str(d["abusive_subjects"]),
                str(d["subjects_in_a_case"]),
                _pct(d["precision"]),
                _pct(d["recall"]),
                _pct(d["f1"]),
            )
        console.print(t)
        q = rep.queue
        days = ", ".join(f"{d[5:]}: {n}" for d, n in q["per_day"].items())
        console.print(
            f"queue: {q['mean_per_day']} cases/day on average, peak {q['peak_day']} "
            f"(+{q['scan_cases']} from scans) against {q['capacity_per_day']}/day "
            f"({q['moderators']} moderators x {q['capacity_per_moderator_day']}); "
            f"{q['moderators_needed_at_peak']} moderator(s) cover the peak\n  per day: {days}"
        )
    m = rep.money
    console.print(
        f"money at stake: {m.get('blocked_abuse', 0):,.2f} of abuse blocked, {m.get('held_abuse', 0):,.2f} held "
        f"for review, {m.get('passed_abuse', 0):,.2f} let through; legitimate value blocked "
        f"{m.get('blocked_legit', 0):,.2f}, held {m.get('held_legit', 0):,.2f}"
    )
    p = rep.performance
    console.print(
        f"latency (client side, HTTP): p50 {p['p50_ms']} ms, p99 {p['p99_ms']} ms; throughput "
        f"{p['throughput_rps']} checks/s; errors {p['errors']}, degraded answers {p['degraded']}"
    )
    if rep.phases:
        console.print("time: " + ", ".join(f"{k} {v:.0f}s" for k, v in rep.phases.items()))
    for note in rep.notes:
        console.print(f"note: {note}")


# -- HTML --------------------------------------------------------------------------------------
def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return base64.b64encode(buf.getvalue()).decode()


def charts(sims: Sequence[SimEvent], results: Sequence[Result], eval_from: datetime) -> dict[str, str]:
    """PR curves per abuse kind, outcomes over time, latency histogram: base64 PNGs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve

    out: dict[str, str] = {}
    scored = [
        (s, r) for s, r in zip(sims, results, strict=True) if s.at >= eval_from and r.outcome != "error"
    ]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for abuse, kind in ABUSE_KINDS.items():
        pairs = [(r.score, s.truth.abuse == abuse) for s, r in scored if s.event["kind"] == kind]
        y = np.array([p[1] for p in pairs])
        if not len(y) or y.all() or not y.any():
            continue
        prec, rec, _ = precision_recall_curve(y, np.array([p[0] for p in pairs]))
        ax.plot(rec, prec, label=abuse, drawstyle="steps-post")
    ax.set(
        xlabel="recall",
        ylabel="precision",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
        title="Precision-recall by decision score",
    )
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    out["pr"] = _png(fig)
    plt.close(fig)

    hours: dict[datetime, Counter[str]] = defaultdict(Counter)
    for s, r in scored:
        h = s.at.replace(minute=0, second=0, microsecond=0)
        hours[h][r.outcome] += 1
        if s.truth.abuse:
            hours[h]["abuse"] += 1
    xs = sorted(hours)
    fig, ax = plt.subplots(figsize=(10, 3.8))
    bottom = np.zeros(len(xs))
    for outcome, colour in (("allow", "#9ccc9c"), ("review", "#f0b94a"), ("block", "#d9534f")):
        ys = np.array([hours[x][outcome] for x in xs], dtype=float)
        ax.bar(xs, ys, width=1 / 24, bottom=bottom, color=colour, label=outcome, align="edge")  # type: ignore[arg-type]
        bottom += ys
    ax.plot(xs, [hours[x]["abuse"] for x in xs], color="black", lw=0.8, label="abusive events (truth)")  # type: ignore[arg-type]
    ax.set(ylabel="events per hour", title="Outcomes over time")
    ax.legend(loc="upper left", ncols=4)
    fig.autofmt_xdate()
    out["timeline"] = _png(fig)
    plt.close(fig)

    lat = np.array([r.latency_ms for _s, r in scored])
    fig, ax = plt.subplots(figsize=(6.5, 4))
    if len(lat):
        hi = float(np.percentile(lat, 99.5))
        ax.hist(np.clip(lat, 0, hi), bins=60, color="#4a7fb5")
        for q, style in ((50, "--"), (99, ":")):
            v = float(np.percentile(lat, q))
            ax.axvline(v, color="black", ls=style, lw=1, label=f"p{q} {v:.1f} ms")
        ax.legend()
    ax.set(xlabel="latency per check, ms (client side)", ylabel="checks", title="Latency")
    out["latency"] = _png(fig)
    plt.close(fig)
    return out


def render_html(rep: Report, images: dict[str, str]) -> str:
    e = html.escape

    def table(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> str:
        head = "".join(f"<th>{e(str(h))}</th>" for h in headers)
        body = "".join("<tr>" + "".join(f"<td>{e(str(c))}</td>" for c in row) + "</tr>" for row in rows)
        return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"

    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'><title>riskctl demo report</title>",
        "<style>body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}"
        "table{border-collapse:collapse;margin:0.5rem 0 1.5rem}td,th{border:1px solid #ccc;padding:4px 10px;"
        "text-align:right}td:first-child,th:first-child{text-align:left}th{background:#f3f3f3}"
        "img{max-width:100%;border:1px solid #eee}.grid{display:grid;grid-template-columns:1fr 1fr;gap:1rem}"
        ".kpi{display:inline-block;margin:0 2rem 1rem 0}.kpi b{font-size:1.6rem;display:block}</style></head><body>",
        f"<h1>Does it catch anything?</h1><p>Simulated marketplace, seed {rep.seed}: {rep.events:,} events "
        f"sent through the HTTP API, {rep.eval_events:,} scored after the warm-up period the detectors "
        "trained on.</p>",
    ]
    m, p = rep.money, rep.performance
    kpis = [
        ("abuse money blocked", f"{m.get('blocked_abuse', 0):,.0f}"),
        ("abuse money held for review", f"{m.get('held_abuse', 0):,.0f}"),
        ("legit money blocked", f"{m.get('blocked_legit', 0):,.0f}"),
        ("p50 / p99 latency", f"{p['p50_ms']} / {p['p99_ms']} ms"),
        ("throughput", f"{p['throughput_rps']} checks/s"),
    ]
    parts.append("".join(f"<div class='kpi'><b>{e(v)}</b>{e(k)}</div>" for k, v in kpis))
    parts.append("<h2>Decision level</h2>")
    parts.append(
        table(
            ("abuse kind", "events", "abusive", "flagged", "precision", "recall", "F1"),
            (
                (
                    a,
                    d["events"],
                    d["abusive"],
                    d["flagged"],
                    _pct(d["precision"]),
                    _pct(d["recall"]),
                    _pct(d["f1"]),
                )
                for a, d in rep.decision.items()
            ),
        )
    )
    parts.append(
        table(
            ("traffic", "events", "flagged share"),
            [
                *((f"{t} (abuse)", d["events"], _pct(d["recall"])) for t, d in rep.tactics.items()),
                *(
                    (f"{t} (legit)", d["events"], _pct(d["false_positive_rate"]))
                    for t, d in rep.legit_tags.items()
                ),
            ],
        )
    )
    if rep.cases:
        parts.append("<h2>Case level and queue load</h2>")
        parts.append(
            table(
                (
                    "abuse kind",
                    "cases",
                    "right",
                    "abusive subjects",
                    "in a case",
                    "precision",
                    "recall",
                    "F1",
                ),
                (
                    (
                        a,
                        d["cases"],
                        d["true_cases"],
                        d["abusive_subjects"],
                        d["subjects_in_a_case"],
                        _pct(d["precision"]),
                        _pct(d["recall"]),
                        _pct(d["f1"]),
                    )
                    for a, d in rep.cases.items()
                ),
            )
        )
        q = rep.queue
        parts.append(
            f"<p>Capacity {q['capacity_per_day']} cases/day ({q['moderators']} moderators x "
            f"{q['capacity_per_moderator_day']}); {q['scan_cases']} more cases came from batch scans.</p>"
        )
        parts.append(
            table(
                ("day", "cases opened", "share of capacity"),
                (
                    (d, n, _pct(n / q["capacity_per_day"]) if q["capacity_per_day"] else "n/a")
                    for d, n in q["per_day"].items()
                ),
            )
        )
    parts.append("<h2>Charts</h2><div class='grid'>")
    for key, alt in (("pr", "precision-recall curves"), ("latency", "latency histogram")):
        if key in images:
            parts.append(f"<img alt='{e(alt)}' src='data:image/png;base64,{images[key]}'>")
    parts.append("</div>")
    if "timeline" in images:
        parts.append(f"<img alt='outcomes over time' src='data:image/png;base64,{images['timeline']}'>")
    for note in rep.notes:
        parts.append(f"<p><em>{e(note)}</em></p>")
    parts.append("</body></html>")
    return "\n".join(parts)
