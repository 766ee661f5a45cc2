"""A seeded UI database: users of each role and real cases opened through POST /v1/checks."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flask import Flask

from riskctl.apikeys import create_key
from riskctl.roles import Role
from riskctl.users import create_user
from tests import factories

PASSWORD = "correct horse battery"
USERS = {
    "mod": Role.MODERATOR,
    "mod2": Role.MODERATOR,
    "senior": Role.SENIOR_MODERATOR,
    "analyst": Role.ANALYST,
    "viewer": Role.VIEWER,
    "admin": Role.ADMIN,
    "compliance": Role.COMPLIANCE,
    "holder": Role.RIGHTS_HOLDER,
    "locked": Role.MODERATOR,  # the rate-limit test locks this one out
}

# Classic XSS payloads; each one, if it ever ran, would set window.__xss or open a dialog.
XSS = [
    "<script>window.__xss=1;alert('xss-script')</script>",
    "<img src=x onerror=\"window.__xss=1;alert('xss-img')\">",
    '"><svg onload="window.__xss=1;alert(\'xss-svg\')">',
    "javascript:window.__xss=1;alert('xss-js-url')",
    "<a href=\"javascript:window.__xss=1;alert('xss-href')\">click</a>",
    "'><body onload=window.__xss=1;alert('xss-body')>",
    "<iframe src=\"javascript:parent.__xss=1;alert('xss-iframe')\"></iframe>",
    "<details open ontoggle=\"window.__xss=1;alert('xss-details')\">",
    "</textarea><script>window.__xss=1</script>",
    "<math><mtext><table><mglyph><style><img src=x onerror=window.__xss=1>",
    "{{ 7*7 }}<input autofocus onfocus=\"window.__xss=1;alert('xss-focus')\">",
    '<object data="javascript:window.__xss=1"></object>',
    "<style>@import 'javascript:window.__xss=1';</style><b onmouseover=window.__xss=1>hover</b>",
    '" hx-get="/ui/logout" hx-trigger="load" x="',
    '<div hx-post="/ui/logout" hx-trigger="load">htmx-inject</div>',
]

XSS_PER_EVENT = 5


@dataclass
class Seeded:
    users: dict[str, Role]
    password: str
    events: list[dict[str, Any]] = field(default_factory=list)
    outcomes: list[str] = field(default_factory=list)


def _check(client: Any, headers: dict[str, str], event: dict[str, Any]) -> str:
    r = client.post("/v1/checks", json=event, headers=headers)
    assert r.status_code == 200, r.get_data(as_text=True)
    return str(r.get_json()["outcome"])


def seed(app: Flask, *, xss: bool = True) -> Seeded:
    runtime = app.extensions["riskctl"]
    for name, role in USERS.items():
        create_user(runtime.sessions, name, PASSWORD, role)
    headers = {"Authorization": f"Bearer {create_key(runtime.sessions, 'ui-seed', ['pipeline'])}"}
    client = app.test_client()
    out = Seeded(dict(USERS), PASSWORD)

    def send(ev: dict[str, Any]) -> None:
        out.events.append(ev)
        out.outcomes.append(_check(client, headers, ev))

    # orders: buyers placing many orders from one device (one case each, several decisions)
    for ring in ("ring-a", "ring-b"):
        for i in range(4):
            send(
                factories.order(
                    buyer_id=f"{ring}-buyer",
                    shop_id=f"{ring}-shop",
                    device_id=f"{ring}-device",
                    occurred_at=f"2026-11-21T09:{i * 5:02d}:00Z",
                )
            )
    # coupons: a farm of new accounts on one phone (one case per flagged account)
    for i in range(5):
        send(
            factories.coupon(
                account_id=f"farm-{i}",
                device_id="farm-phone",
                new_user_only=True,
                occurred_at=f"2026-11-21T10:{i:02d}:00Z",
            )
        )
    if xss:
        # Five payloads per event keeps the pages few (and the browser test quick) while every
        # payload still lands in a review's text and in a listing's title and description.
        for i in range(0, len(XSS), XSS_PER_EVENT):
            chunk = " ".join(XSS[i : i + XSS_PER_EVENT])
            # a link and no purchase: REV-009 + REV-002 put it in the review queue
            send(
                factories.review(
                    reviewer_id=f"xss-reviewer-{i}",
                    order_id=None,
                    rating=5,
                    text=f"{chunk} see https://spam.example/{i}",
                )
            )
            # a replica listing by a day-old seller: LST-001 + LST-007 put it in the IP queue
            send(
                factories.listing(
                    shop_id=f"xss-shop-{i}",
                    title=f"{chunk} replica AAA",
                    brand="Gucci",
                    description=chunk,
                    seller_created_at="2026-11-20T12:30:00Z",
                )
            )
    return out
