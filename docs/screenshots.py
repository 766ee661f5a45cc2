"""Retake the README's UI screenshots from a `make run` instance (after `riskctl dev-setup`).

    RISKCTL_INSTANCE_PATH=instance .venv/bin/python docs/screenshots.py

Serves the app on a free loopback port in-process, logs in as the demo senior moderator
with Debian's Chromium (Playwright) and writes docs/ui-queue.png, docs/ui-case.png and
docs/ui-dashboard.png.
"""

from __future__ import annotations

import threading
from pathlib import Path

from playwright.sync_api import sync_playwright
from werkzeug.serving import make_server

from api import create_app
from fixtures.demo_users import read_demo_users

DOCS = Path(__file__).resolve().parent
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def main() -> None:
    app = create_app()
    runtime = app.extensions["riskctl"]
    users = {u: p for u, _, p in read_demo_users(runtime.settings.instance / "demo_users")}
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
            page = browser.new_page(base_url=base, viewport={"width": 1360, "height": 860})
            page.goto("/ui/login")
            page.fill("input[name=username]", "senior")
            page.fill("input[name=password]", users["senior"])
            page.click("button[type=submit]")
            page.wait_for_selector("[data-testid=whoami]")
            page.goto("/ui/queue/orders")
            page.screenshot(path=str(DOCS / "ui-queue.png"))
            page.click("table.cases tbody tr[data-case-id] a")
            page.wait_for_selector("[data-testid=case-status]")
            page.keyboard.press("c")
            page.wait_for_selector("[data-testid=case-status]:text-is('claimed')")
            page.screenshot(path=str(DOCS / "ui-case.png"))
            page.keyboard.press("r")  # leave the demo case as it was
            page.wait_for_selector("[data-testid=case-status]:text-is('open')")
            page.goto("/ui/dashboard")
            page.wait_for_selector("#dashboard[data-ready='1']")
            page.screenshot(path=str(DOCS / "ui-dashboard.png"))
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
        runtime.close()


if __name__ == "__main__":
    main()
