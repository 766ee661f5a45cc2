"""Review/block decisions open or join cases in the same transaction; resolved cases are labels."""

from __future__ import annotations

from sqlalchemy import select, update

from riskctl.labels import stored_labels
from riskctl.models import Case, CaseDecision
from tests import factories


def _post(client, headers, event):
    r = client.post("/v1/checks", json=event, headers=headers)
    assert r.status_code == 200
    return r.get_json()


def test_flagged_decisions_open_then_join_one_case_per_subject(client, runtime, pipeline_headers):
    for i in range(5):
        body = _post(
            client,
            pipeline_headers,
            factories.order(
                buyer_id="ring-x",
                shop_id="s-x",
                device_id="ring-dev",
                occurred_at=f"2026-11-21T09:{i * 5:02d}:00Z",
            ),
        )
    assert body["outcome"] in {"review", "block"}
    _post(client, pipeline_headers, factories.order(buyer_id="calm", shop_id="s-y"))  # allowed: no case
    with runtime.sessions() as s:
        cases = s.scalars(select(Case)).all()
        links = s.scalars(select(CaseDecision)).all()
    assert len(cases) == 1
    case = cases[0]
    assert (case.queue, case.subject_id, case.status, case.shop_id) == ("orders", "ring-x", "open", "s-x")
    assert case.decision_count == len(links) >= 2
    assert 0 < case.priority <= 100
    assert case.sla_due_at > case.opened_at
    assert body["decision_id"] in {link.decision_id for link in links}


def test_resolved_cases_become_labels(client, runtime, pipeline_headers):
    ids = []
    for i in range(4):
        ev = factories.coupon(
            account_id=f"farm-{i}",
            device_id="farm-phone",
            new_user_only=True,
            occurred_at=f"2026-11-21T10:0{i}:00Z",
        )
        ids.append(ev["event_id"])
        _post(client, pipeline_headers, ev)
    # accounts after the first on the same phone are flagged, each opening its own case
    assert stored_labels(runtime.engine) == {}
    with runtime.sessions.begin() as s:
        s.execute(update(Case).values(status="resolved", resolution="confirmed_abuse"))
    labels = stored_labels(runtime.engine)
    assert labels and all(labels.values())
    assert set(labels) <= set(ids)


def test_routing_and_sla_come_from_configuration(tmp_path, redis_url):
    import pytest

    from api import create_app
    from riskctl.config import ConfigError, Settings
    from tests.conftest import fresh_database_url, make_key, migrated

    with pytest.raises(ConfigError, match="unknown queue"):
        Settings.from_env({"RISKCTL_CASE_ROUTING": "order=nowhere"})
    with pytest.raises(ConfigError, match="unknown event kind"):
        Settings.from_env({"RISKCTL_CASE_ROUTING": "refund=orders"})
    settings = Settings.from_env(
        {
            "RISKCTL_CASE_ROUTING": "order=reviews",
            "RISKCTL_CASE_SLA_HOURS": "reviews=2",
            "RISKCTL_ENV": "testing",
            "RISKCTL_INSTANCE_PATH": str(tmp_path / "inst"),
            "RISKCTL_REDIS_URL": redis_url,
            "RISKCTL_DATABASE_URL": fresh_database_url(tmp_path),
        }
    )
    app = create_app(migrated(settings))
    try:
        client = app.test_client()
        headers = {"Authorization": f"Bearer {make_key(app, 'pipeline')}"}
        for i in range(5):
            body = _post(
                client,
                headers,
                factories.order(
                    buyer_id="routed",
                    shop_id="s-r",
                    device_id="routed-dev",
                    occurred_at=f"2026-11-21T09:{i:02d}:00Z",
                ),
            )
        assert body["outcome"] in {"review", "block"}
        with app.extensions["riskctl"].sessions() as s:
            case = s.scalars(select(Case)).one()
        assert case.queue == "reviews" and case.kind == "order"
        assert abs((case.sla_due_at - case.opened_at).total_seconds() - 2 * 3600) < 1
    finally:
        app.extensions["riskctl"].close()
