"""Regressions for what schemathesis found once every operation ran with an admin key."""

from __future__ import annotations

import pytest

from tests.cases.conftest import add_case
from tests.conftest import make_key


@pytest.fixture
def admin(app):
    return {"Authorization": f"Bearer {make_key(app, 'admin')}"}


def test_a_repeated_non_ascii_brand_name_is_a_409_not_a_500(client, app):
    holder = {"Authorization": f"Bearer {make_key(app, 'rights_holder')}"}
    # SQL lower() folds ASCII only: the duplicate check missed "Ölmark" and the unique index threw
    first = client.post("/v1/brands", json={"name": "Ölmark"}, headers=holder)
    assert first.status_code == 201, first.get_data(as_text=True)
    again = client.post("/v1/brands", json={"name": "Ölmark"}, headers=holder)
    assert again.status_code == 409
    assert again.mimetype == "application/problem+json"


def test_a_huge_list_offset_is_a_422_not_a_500(client, admin):
    resp = client.get("/v1/lists?offset=3288454622836316002799407071232", headers=admin)
    assert resp.status_code == 422
    assert resp.mimetype == "application/problem+json"


def test_a_whole_number_written_as_a_float_is_an_integer(client, app, admin):
    case_id = add_case(app.extensions["riskctl"].sessions)
    resp = client.post(f"/v1/cases/{case_id}/claim", json={"ttl_seconds": 600.0}, headers=admin)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    resp = client.post(f"/v1/cases/{case_id}/release", json={}, headers=admin)
    assert resp.status_code == 200
    resp = client.post(f"/v1/cases/{case_id}/claim", json={"ttl_seconds": 600.5}, headers=admin)
    assert resp.status_code == 422


@pytest.mark.parametrize("blank", ["\r", " \t\n", "\x1c", "\u3000"])
def test_a_blank_note_is_refused_by_the_schema_too(client, app, admin, blank):
    import re

    from api.openapi import build_spec

    pattern = build_spec()["components"]["schemas"]["NoteIn"]["properties"]["body"]["pattern"]
    assert re.search(pattern, blank) is None  # the published schema already says no
    case_id = add_case(app.extensions["riskctl"].sessions)
    resp = client.post(f"/v1/cases/{case_id}/notes", json={"body": blank}, headers=admin)
    assert resp.status_code == 422
    assert (
        client.post(f"/v1/cases/{case_id}/notes", json={"body": f"{blank}ok"}, headers=admin).status_code
        == 201
    )
