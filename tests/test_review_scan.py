"""Malicious reviews end to end: ``riskctl scan reviews`` over stored events opens cases,
``riskctl train reviews`` makes a text model the service scores with, ``riskctl eval reviews``
and ``riskctl eval yelpchi`` measure quality."""

from __future__ import annotations

import csv
import gzip
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from api import create_app
from api.cli import main
from riskctl.casestate import CaseStatus, Resolution
from riskctl.config import Settings
from riskctl.models import Case
from riskctl.review_text import moderator_texts
from tests import factories
from tests.conftest import migrated

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "yelpchi_ugfraud"
START = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)

WORDS = [
    "fabric",
    "stitching",
    "zipper",
    "colour",
    "lighter",
    "expected",
    "battery",
    "lasts",
    "charger",
    "cable",
    "sturdy",
    "handle",
    "wobbly",
    "lid",
    "leaks",
    "seal",
    "tight",
    "smell",
    "faint",
    "strap",
    "adjustable",
    "buckle",
    "scratched",
    "screen",
    "bright",
    "instructions",
    "unclear",
    "assembly",
    "took",
    "hour",
    "shipping",
    "slow",
    "courier",
    "friendly",
    "refund",
    "quick",
    "sizing",
    "runs",
    "small",
    "medium",
    "fits",
    "snug",
    "warm",
    "winter",
    "thin",
    "summer",
    "pocket",
    "deep",
    "noisy",
    "motor",
    "quiet",
    "fan",
]
FARM_TEXT = "Absolutely the best purchase ever!!! Five stars, highly recommend this amazing shop to everyone"


def _iso(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _honest_text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(14, 24))).capitalize() + "."


def _check(runtime: Any, event: dict[str, Any]) -> None:
    runtime.checks.check(orjson.dumps(event))


def honest_traffic(runtime: Any, rng: random.Random) -> list[str]:
    """80 buyers order, then review what they bought over ten days; some reviews are 1-star."""
    buyers = [f"buyer-{i:03d}" for i in range(80)]
    for i, buyer in enumerate(buyers):
        shop = f"shop-{i % 4}"
        product = f"prod-{i % 4}-{i % 3}"
        order_id = f"ord-{buyer}"
        at = START + timedelta(hours=3 * i)
        _check(
            runtime,
            factories.order(
                buyer_id=buyer,
                shop_id=shop,
                order_id=order_id,
                items=[{"product_id": product, "quantity": 1, "unit_price": 20.0}],
                occurred_at=_iso(at),
                device_id=f"dev-{buyer}",
            ),
        )
        rating = 1 if i % 7 == 3 else rng.choice([4, 5, 5])
        _check(
            runtime,
            factories.review(
                reviewer_id=buyer,
                shop_id=shop,
                product_id=product,
                order_id=order_id,
                rating=rating,
                text=_honest_text(rng),
                occurred_at=_iso(at + timedelta(days=2, minutes=rng.randint(0, 300))),
                device_id=f"dev-{buyer}",
            ),
        )
    return buyers


def farm_traffic(runtime: Any) -> list[str]:
    """Eight fresh accounts, no purchases, paste one 5-star text onto three shops within an hour."""
    accounts = [f"farm-{i}" for i in range(8)]
    at = START + timedelta(days=12)
    for i, account in enumerate(accounts):
        for j, shop in enumerate(("shop-boost", "shop-boost2", "shop-boost3")):
            _check(
                runtime,
                factories.review(
                    reviewer_id=account,
                    shop_id=shop,
                    product_id=f"{shop}-item",
                    order_id=None,
                    rating=5,
                    text=FARM_TEXT + ("!" * i),
                    occurred_at=_iso(at + timedelta(minutes=2 * i + j)),
                    device_id=f"dev-{account}",
                ),
            )
    return accounts


def _cli_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> CliRunner:
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", settings.instance_path)
    monkeypatch.setenv("RISKCTL_REDIS_URL", settings.redis_url)
    if settings.database_url:
        monkeypatch.setenv("RISKCTL_DATABASE_URL", settings.database_url)
    return CliRunner()


def _scan(runner: CliRunner) -> dict[str, Any]:
    result = runner.invoke(main, ["scan", "reviews", "--json"])
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


def _scan_cases(runtime: Any) -> list[Case]:
    with runtime.sessions() as session:
        return list(session.scalars(select(Case).where(Case.source.like("scan:reviews.%"))))


def test_scan_opens_cases_on_a_review_farm_and_stays_quiet_on_honest_reviews(
    app: Any, runtime: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(7)
    runner = _cli_env(monkeypatch, settings)
    buyers = honest_traffic(runtime, rng)

    quiet = _scan(runner)
    assert quiet["reviews"] == 80 and quiet["orders"] == 80
    assert quiet["findings"] == 0 and quiet["cases"]["opened"] == 0
    assert _scan_cases(runtime) == []

    farm = farm_traffic(runtime)
    loud = _scan(runner)
    assert loud["reviews"] == 104
    assert set(loud["by_detector"]) == {"reviews.duplicates", "reviews.burst", "reviews.collusion"}
    assert loud["cases"]["opened"] == loud["findings"] >= 3
    cases = _scan_cases(runtime)
    assert {c.kind for c in cases} == {"review"} and {c.queue for c in cases} == {"reviews"}
    members = {m for c in cases for f in c.evidence["findings"] for m in f["members"]}
    assert members == set(farm)
    assert not members & set(buyers)
    dup = next(c for c in cases if c.source == "scan:reviews.duplicates")
    finding = dup.evidence["findings"][0]
    assert finding["accounts"] == 8 and finding["reviews"] == 24
    assert finding["without_purchase"] == 24 and finding["ratings"] == {"5": 24}
    assert finding["sample_text"].startswith("Absolutely the best purchase")
    assert len(finding["event_ids"]) == 24 and dup.max_score >= 90

    # idempotent: the same data changes nothing
    again = _scan(runner)
    assert again["cases"] == {"opened": 0, "joined": 0, "unchanged": loud["findings"], "listed": 0}
    assert len(_scan_cases(runtime)) == len(cases)

    # a moderator's conclusion sticks: a resolved finding is not reopened, and it labels the texts
    with runtime.engine.begin() as conn:
        conn.execute(
            update(Case)
            .where(Case.id == dup.id)
            .values(status=CaseStatus.RESOLVED.value, resolution=Resolution.CONFIRMED_ABUSE.value)
        )
    after = _scan(runner)
    assert after["concluded"] == 1 and after["cases"]["opened"] == 0
    labelled = moderator_texts(runtime.engine)
    assert labelled.positives == 24 and set(labelled.groups) == set(farm)


def test_honest_one_star_reviews_of_a_well_liked_product_open_no_case(
    app: Any, runtime: Any, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(11)
    runner = _cli_env(monkeypatch, settings)
    for i in range(30):
        buyer = f"fan-{i}"
        at = START + timedelta(hours=5 * i)
        _check(
            runtime,
            factories.order(
                buyer_id=buyer,
                order_id=f"o-{buyer}",
                shop_id="shop-loved",
                items=[{"product_id": "prod-loved", "quantity": 1, "unit_price": 9.0}],
                occurred_at=_iso(at),
            ),
        )
        _check(
            runtime,
            factories.review(
                reviewer_id=buyer,
                order_id=f"o-{buyer}",
                shop_id="shop-loved",
                product_id="prod-loved",
                rating=1 if i % 6 == 0 else 5,
                text=_honest_text(rng),
                occurred_at=_iso(at + timedelta(days=1)),
            ),
        )
    out = _scan(runner)
    assert out["reviews"] == 30 and out["findings"] == 0 and _scan_cases(runtime) == []


def _labelled_rows(rng: random.Random, n: int, signal: bool = True) -> list[dict[str, str]]:
    rows = []
    spam_words = [
        "amazing",
        "best",
        "ever",
        "buy",
        "now",
        "perfect",
        "highly",
        "recommend",
        "five",
        "stars",
        "love",
    ]
    for i in range(n):
        abusive = i % 3 == 0
        words = [rng.choice(WORDS) for _ in range(rng.randint(8, 14))]
        if abusive:
            words += rng.sample(spam_words, 4)
            rng.shuffle(words)
        label = abusive if signal else rng.random() < 1 / 3
        rows.append({"body": " ".join(words), "is_fake": "1" if label else "0", "author": f"a{i // 2}"})
    return rows


def _write_csv(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def test_train_reviews_writes_a_model_the_service_scores_review_checks_with(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _cli_env(monkeypatch, settings)
    labels = _write_csv(tmp_path / "labels.csv", _labelled_rows(random.Random(3), 120))
    result = runner.invoke(
        main, ["train", "reviews", "--labels", str(labels), "--text-col", "body", "--label-col", "is_fake"]
    )
    assert result.exit_code == 0, result.output
    assert "120 texts (40 abusive" in result.stdout
    pointer = Path(settings.instance_path) / "models" / "review-text" / "current"
    model_file = pointer.parent / pointer.read_text().strip()
    assert model_file.is_file()

    app = create_app(migrated(settings))
    try:
        runtime = app.extensions["riskctl"]
        assert runtime.extras["review_text"].status() == model_file.stem
        scores, statuses = {}, {}
        for name, text in (
            ("spam", "amazing best ever buy now five stars highly recommend"),
            ("plain", "zipper sturdy but the strap buckle scratched after a week"),
        ):
            checked = runtime.checks.check(orjson.dumps(factories.review(text=text)))
            decision = runtime.checks.get_decision(checked.decision_id)
            assert decision["features"]["review.text_model"] == model_file.stem
            scores[name] = decision["features"]["review.text_score"]
            rev014 = next(s for s in decision["signals"] if s["code"] == "REV-014")
            assert rev014["mode"] == "shadow"
            statuses[name] = rev014["status"]
        assert scores["spam"] > 0.9 > 0.5 > scores["plain"]
        # the shadow rule reads the score: recorded, never changing the outcome
        assert statuses == {"spam": "hit", "plain": "no_hit"}
    finally:
        app.extensions["riskctl"].close()

    bad = runner.invoke(main, ["train", "reviews", "--labels", str(labels), "--text-col", "nope"])
    assert bad.exit_code != 0 and "no column 'nope'" in bad.output
    # no CSV and no resolved review cases: nothing to learn from, said plainly
    empty = runner.invoke(main, ["train", "reviews"])
    assert empty.exit_code != 0 and "moderator outcomes" in empty.output


def test_eval_reviews_reports_grouped_cv_auc_and_ap(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _cli_env(monkeypatch, settings)
    real = _write_csv(tmp_path / "real.csv", _labelled_rows(random.Random(5), 180))
    noise = _write_csv(tmp_path / "noise.csv", _labelled_rows(random.Random(5), 180, signal=False))
    args = ["eval", "reviews", "--text-col", "body", "--label-col", "is_fake", "--group-col", "author"]
    out = runner.invoke(main, [*args, "--csv", str(real), "--folds", "3", "--json"])
    assert out.exit_code == 0, out.output
    data = orjson.loads(out.stdout)
    assert data["rows"] == 180 and data["groups"] == 90 and data["folds"] == 3
    assert data["auc"] > 0.9 and data["ap"] > 0.8 > data["prevalence"] + 0.4
    assert len(data["per_fold"]) == 3
    # labels unrelated to the text: the same evaluation finds nothing
    control = orjson.loads(runner.invoke(main, [*args, "--csv", str(noise), "--folds", "3", "--json"]).stdout)
    assert control["auc"] < 0.75
    text = runner.invoke(main, [*args, "--csv", str(real), "--folds", "3"])
    assert text.exit_code == 0 and "ROC AUC" in text.stdout and "average precision" in text.stdout


def _subsample_yelpchi(src: Path, dst: Path, n_products: int = 12) -> int:
    """The real file's reviews of a few products (and their priors), in the shipped format."""
    with gzip.open(src / "metadata.gz", "rt") as fh:
        rows = [line.split() for line in fh if line.strip()]
    products = sorted({r[1] for r in rows}, key=int)[::17][:n_products]
    keep = [r for r in rows if r[1] in set(products)]
    pairs = {(r[0], r[1]) for r in keep}
    users = {r[0] for r in keep}
    dst.mkdir(parents=True)
    with gzip.open(dst / "metadata.gz", "wt") as fh:
        fh.writelines(" ".join(r) + "\n" for r in keep)
    for name, key in (
        ("speagle_priors_review.csv.gz", lambda f: (f[0], f[1]) in pairs),
        ("speagle_priors_user.csv.gz", lambda f: f[0] in users),
    ):
        with gzip.open(src / name, "rt") as fh, gzip.open(dst / name, "wt") as out:
            out.write(fh.readline())
            out.writelines(line for line in fh if key(line.rstrip("\n").split(",")))
    return len(keep)


@pytest.mark.skipif(not (DATA / "metadata.gz").is_file(), reason="real YelpChi data absent (../shared/data)")
def test_eval_yelpchi_on_a_subsample_of_the_real_file_writes_a_plot(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = _cli_env(monkeypatch, settings)
    n = _subsample_yelpchi(DATA, tmp_path / "yelpchi")
    out = runner.invoke(main, ["eval", "yelpchi", "--data", str(tmp_path / "yelpchi"), "--json"])
    assert out.exit_code == 0, out.output
    data = orjson.loads(out.stdout)
    assert data["data"]["reviews"] == n > 500
    for level in ("review", "user"):
        for name in ("riskctl", "speagle_prior"):
            assert 0.0 < data[level][name]["auc"] < 1.0 and data[level][name]["coverage"] == 1.0
    png = Path(settings.instance_path) / "eval" / "yelpchi_pr.png"
    assert data["png"] == str(png.resolve())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = runner.invoke(
        main, ["eval", "yelpchi", "--data", str(tmp_path / "yelpchi"), "--out", str(tmp_path / "pr.png")]
    )
    assert text.exit_code == 0 and "speagle_prior" in text.stdout and "pr.png" in text.stdout
    assert (tmp_path / "pr.png").stat().st_size > 10_000


def test_a_formulaic_text_spread_over_weeks_by_verified_buyers_is_not_a_finding() -> None:
    from detectors.reviews import Review, ReviewScorer
    from riskctl.review_scan import StoredReviews, build_findings

    text = "Good product, fast delivery, well packed and exactly as described by the seller"
    t0 = START.timestamp()

    def stored(gap_hours: float) -> tuple[StoredReviews, list[tuple[str, str]]]:
        reviews = [
            Review(f"r{i}", f"buyer-{i}", "prod-1", "shop-1", 5, text, t0 + i * gap_hours * 3600)
            for i in range(4)
        ]
        return StoredReviews(reviews, {r.review_id: f"evt-{r.review_id}" for r in reviews}), [
            (r.reviewer_id, r.product_id) for r in reviews
        ]

    spread, bought = stored(gap_hours=24 * 9)
    found = build_findings(spread, ReviewScorer().analyse(spread.reviews, purchases=bought))
    assert [f.evidence["corroboration"] for f in found if f.detector == "reviews.duplicates"] == [[]]

    together, bought = stored(gap_hours=2)
    found = build_findings(together, ReviewScorer().analyse(together.reviews, purchases=bought))
    dup = [f for f in found if f.detector == "reviews.duplicates"]
    assert dup[0].evidence["corroboration"] == ["4 of its 4 accounts posted within 24 hours"]


def test_a_broken_text_model_file_leaves_the_score_unavailable(tmp_path: Path) -> None:
    from riskctl.events import parse_event
    from riskctl.review_text import ReviewTextEnricher, TextModelStore

    folder = tmp_path / "models" / "review-text"
    folder.mkdir(parents=True)
    (folder / "bad.model").write_bytes(b"not a model")
    (folder / "current").write_text("bad.model\n")
    store = TextModelStore(tmp_path / "models")
    assert store.current() is None and store.status() == "failed"
    event = parse_event(orjson.dumps(factories.review()))
    assert ReviewTextEnricher(store).features(event) == {"review.text_score": None, "review.text_model": ""}


def test_a_chance_ring_of_verified_regulars_is_not_a_finding_but_an_unverified_one_is() -> None:
    from detectors.reviews import Review, ReviewScorer
    from riskctl.review_scan import StoredReviews, build_findings

    rng = random.Random(2)
    t0 = START.timestamp()
    day = 86400.0
    reviews = [
        Review(
            f"bg{i}", f"u{i % 900}", f"p{i}", f"s{rng.randrange(100)}", 4, "", t0 + rng.random() * 60 * day
        )
        for i in range(1500)
    ]
    reviews += [
        Review(f"ring{a}{s}", f"regular-{a}", f"p-{s}", s, 5, "", t0 + (20 * a + 3 * k) * day)
        for a in range(3)
        for k, s in enumerate(("sx", "sy", "sz"))
    ]
    stored = StoredReviews(reviews, {r.review_id: f"evt-{r.review_id}" for r in reviews})
    bought = [(r.reviewer_id, r.shop_id) for r in reviews]
    for purchases, corroborated in ((bought, False), (bought[:-9], True)):
        report = ReviewScorer().analyse(reviews, purchases=purchases)
        rings = [f for f in build_findings(stored, report) if f.detector == "reviews.collusion"]
        assert [f.members for f in rings] == [("regular-0", "regular-1", "regular-2")]
        assert bool(rings[0].evidence["corroboration"]) is corroborated
