"""The Flask layer: ``create_app`` is the one place where the parts are built and wired."""

from __future__ import annotations

from typing import Any

from flask import Flask

from riskctl.config import Settings


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    from api import cases, checks, complaints, exports, health, lists, openapi, problems, reputation
    from api.auth import CookieSessionInterface
    from api.observability import configure_logging
    from api.observability import init_app as init_observability
    from api.runtime import build_runtime

    settings = settings or Settings.from_env(**overrides)
    configure_logging(settings.log_level)

    app = Flask(__name__, instance_path=str(settings.instance))
    app.session_interface = CookieSessionInterface()  # Flask's signed cookie, without its per-request cost
    app.config.update(
        SECRET_KEY=settings.secret_key,
        MAX_CONTENT_LENGTH=settings.max_body_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_body_bytes,
        JSON_SORT_KEYS=False,
        TESTING=settings.env == "testing",
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    runtime = build_runtime(settings)
    app.extensions["riskctl"] = runtime

    @app.before_request
    def _rules_fresh() -> None:
        runtime.policy.maybe_reload()

    problems.init_app(app)
    init_observability(app)
    app.register_blueprint(checks.bp)
    app.register_blueprint(lists.bp)
    app.register_blueprint(exports.bp)
    app.register_blueprint(cases.bp)
    app.register_blueprint(reputation.bp)
    app.register_blueprint(complaints.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(openapi.bp)
    from api import ui

    ui.init_app(app)  # the moderator UI at /ui (and / redirecting there)
    return app
