"""Brand matching on the check path (POST /v1/checks) and the listing re-scan."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from click.testing import CliRunner
from sqlalchemy import select

from api.cli import main
from riskctl.brand_registry import DEFAULT_REGISTRY
from riskctl.config import Settings
from riskctl.listing_enricher import LISTING_SCHEMA
from riskctl.models import Case, Decision
from tests import factories

REGISTERED_GUCCI_IMAGE = "368a367431ea1ab0"


def send(client, headers, event) -> dict[str, Any]:
    r = client.post("/v1/checks", json=event, headers=headers)
    assert r.status_code == 200, r.data
    return r.get_json()


def codes(body) -> set[str]:
    return {r["code"] for r in body["reasons"]}


def features_of(runtime, decision_id: str) -> dict[str, Any]:
    with runtime.sessions() as s:
        return s.get(Decision, decision_id).features


def test_listing_pack_has_ten_brand_rules(runtime):
    rules = [r for r in runtime.policy.current.rules if "listing" in r.kinds]
    assert len(rules) >= 12
    assert len([r for r in rules if "brand" in r.tags]) >= 10


def test_obfuscated_cheap_knockoff_is_blocked_with_its_features(client, runtime, pipeline_headers):
    body = send(
        client,
        pipeline_headers,
        factories.listing(
            shop_id="shop-knockoff",
            title="N1KE Air Max 90 sneakers",
            description="Same as store.",
            category="shoes",
            price=9.0,
            currency="USD",
        ),
    )
    assert body["outcome"] == "block"
    assert {"LST-008", "LST-009", "LST-010", "LST-011"} <= codes(body)
    f = features_of(runtime, body["decision_id"])
    assert f["listing.brand_match"] == "Nike"
    assert f["listing.brand_obfuscated"] is True
    assert f["listing.shop_authorised"] is False
    assert f["listing.price_ratio"] == pytest.approx(9.0 / 120)
    assert f["listing.brand_term"] == "air max"
    assert f["listing.image_distance"] > 8  # the factory's image is nobody's
    assert {s.name for s in LISTING_SCHEMA} <= set(f)


def test_authorised_shop_at_the_reference_price_is_allowed(client, runtime, pipeline_headers):
    body = send(
        client,
        pipeline_headers,
        factories.listing(
            shop_id="shop-nike-official",
            title="Nike Air Max 90",
            description="Official Nike store.",
            brand="Nike",
            category="shoes",
            price=129.0,
            currency="USD",
        ),
    )
    assert body["outcome"] == "allow", body
    f = features_of(runtime, body["decision_id"])
    assert f["listing.brand_match"] == "Nike" and f["listing.shop_authorised"] is True
    assert not {"LST-008", "LST-009", "LST-010"} & codes(body)


def test_registered_image_by_an_unauthorised_shop_is_blocked(client, runtime, pipeline_headers):
    near = f"{int(REGISTERED_GUCCI_IMAGE, 16) ^ 0b101:016x}"  # 2 bits flipped
    body = send(
        client,
        pipeline_headers,
        factories.listing(
            shop_id="shop-7", title="Leather belt", category="accessories", price=300.0, image_hashes=[near]
        ),
    )
    assert body["outcome"] == "block" and {"LST-012", "LST-013"} <= codes(body)
    f = features_of(runtime, body["decision_id"])
    assert f["listing.image_distance"] == 2 and f["listing.image_brand"] == "Gucci"
    assert f["listing.brand_match"] == ""


@pytest.mark.parametrize(
    ("title", "description", "category", "expected"),
    [
        ("Adidas-style trainers", "Comfortable.", "shoes", {"LST-008", "LST-014"}),
        ("Leather tote", "Just like the G u c c i one", "bags", {"LST-009", "LST-015"}),
        ("Nike Adidas Gucci style shoes", "", "shoes", {"LST-018"}),
    ],
)
def test_lookalike_hidden_and_stuffed_brands_are_flagged(
    client, pipeline_headers, title, description, category, expected
):
    body = send(
        client,
        pipeline_headers,
        factories.listing(
            shop_id="shop-9", title=title, description=description or "-", category=category, price=80.0
        ),
    )
    assert expected <= codes(body), body
    assert body["outcome"] in {"review", "block"}


def test_generic_goods_and_compatible_accessories_are_allowed(client, pipeline_headers):
    normal = [
        ("Leather wallet, brown", "accessories", 39.0),
        ("Handmade ceramic mug", "home", 18.0),
        ("Running shoes, breathable mesh", "shoes", 35.0),
        ("Silicone case for iPhone 15", "phones", 12.0),
        ("Replacement filter compatible with Dyson V15 Detect", "appliances", 15.0),
        ("Apple cider vinegar, organic", "grocery", 6.0),
        ("TV channel remote control", "electronics", 9.0),
        ("Polarised sunglasses, UV400", "eyewear", 25.0),
    ]
    for i, (title, category, price) in enumerate(normal):
        body = send(
            client,
            pipeline_headers,
            factories.listing(
                shop_id=f"shop-honest-{i}",
                device_id=f"honest-dev-{i}",
                title=title,
                description="Ships in two days.",
                category=category,
                price=price,
            ),
        )
        assert body["outcome"] == "allow", (title, body)
        assert not {c for c in codes(body) if c >= "LST-008"}, (title, body)


# -- the re-scan -------------------------------------------------------------------------


def _registry_without(tmp_path: Path, brand: str) -> Path:
    doc = yaml.safe_load(DEFAULT_REGISTRY.read_text())
    doc["brands"] = [b for b in doc["brands"] if b["name"] != brand]
    path = tmp_path / "brands-old.yaml"
    path.write_text(yaml.safe_dump(doc, allow_unicode=True))
    return path


@pytest.fixture
def old_registry_app(settings: Settings, tmp_path: Path):
    from api import create_app
    from tests.conftest import migrated

    settings.brand_registry = str(_registry_without(tmp_path, "Dyson"))
    app = create_app(migrated(settings))
    yield app
    app.extensions["riskctl"].close()


def test_rescan_opens_cases_for_listings_a_registry_update_catches(
    old_registry_app, settings: Settings, monkeypatch: pytest.MonkeyPatch
):
    from tests.conftest import make_key

    client = old_registry_app.test_client()
    headers = {"Authorization": f"Bearer {make_key(old_registry_app, 'pipeline')}"}
    knockoffs = [
        factories.listing(
            shop_id="shop-dupes", title=f"D y s o n Airwrap styler #{k}", category="beauty", price=45.0
        )
        for k in range(3)
    ]
    honest = [
        factories.listing(
            shop_id="shop-dyson-official", title="Dyson Airwrap", category="beauty", price=499.0
        ),
        factories.listing(shop_id="shop-3", title="Hair dryer, 2000 W", category="beauty", price=45.0),
    ]
    for ev in (*knockoffs, *honest):
        body = send(client, headers, ev)
        assert body["outcome"] == "allow", body  # Dyson is not registered yet

    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", settings.instance_path)
    monkeypatch.setenv("RISKCTL_REDIS_URL", settings.redis_url)
    if settings.database_url:
        monkeypatch.setenv("RISKCTL_DATABASE_URL", settings.database_url)
    runner = CliRunner()
    old = runner.invoke(
        main,
        ["scan", "listings", "--registry", old_registry_app.extensions["riskctl"].settings.brand_registry],
    )
    assert old.exit_code == 0, old.output
    assert orjson.loads(old.stdout)["findings"] == 0

    first = runner.invoke(main, ["scan", "listings"])  # RISKCTL_BRAND_REGISTRY default: with Dyson
    assert first.exit_code == 0, first.output
    out = orjson.loads(first.stdout)
    assert out["scanned"] == 5 and out["findings"] == 3
    assert out["cases"] == {"opened": 1, "joined": 2, "unchanged": 0, "listed": 0}
    assert {f["shop"] for f in out["listings"]} == {"shop-dupes"}

    again = orjson.loads(runner.invoke(main, ["scan", "listings"]).stdout)
    assert again["cases"] == {"opened": 0, "joined": 0, "unchanged": 3, "listed": 0}

    runtime = old_registry_app.extensions["riskctl"]
    with runtime.sessions() as s:
        cases = s.scalars(select(Case).where(Case.kind == "listing")).all()
    assert [c.subject_id for c in cases] == ["shop-dupes"]
    (case,) = cases
    assert case.queue == "ip" and case.source == "scan:listings.brand"
    findings = case.evidence["findings"]
    assert len(findings) == 3 and {f["brand"] for f in findings} == {"Dyson"}
    assert all("disguised spelling" in f["reasons"] for f in findings)


def test_rescan_refuses_a_broken_registry(tmp_path: Path, settings: Settings, monkeypatch):
    bad = tmp_path / "bad.yaml"
    bad.write_text("brands: []\n")
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", settings.instance_path)
    result = CliRunner().invoke(main, ["scan", "listings", "--registry", str(bad), "--dry-run"])
    assert result.exit_code == 1
    assert "brands" in result.output


def test_a_broken_registry_at_start_refuses_to_start(settings: Settings, tmp_path: Path):
    from api import create_app
    from riskctl.errors import ConfigError
    from tests.conftest import migrated

    bad = tmp_path / "brands.yaml"
    bad.write_text("brands:\n  - name: Nike\n    image_hashes: [not-hex]\n")
    settings.brand_registry = str(bad)
    with pytest.raises(ConfigError, match="image_hashes"):
        create_app(migrated(settings))
