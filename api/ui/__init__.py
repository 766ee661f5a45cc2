"""The moderator UI: server-rendered Jinja pages, htmx for partial updates, no SPA.

Security is wired here, once, for every page of the blueprint:

* login (Flask-Login, session cookie ``HttpOnly``, ``SameSite=Lax``, ``Secure`` in production)
  is required on every route but the login page; each view also names the permission it
  needs (:func:`api.ui.access.needs`), checked with :func:`riskctl.roles.can`;
* CSRF (Flask-WTF) on every state-changing request: forms carry the token as a hidden field,
  htmx sends it in the ``X-CSRFToken`` header (``hx-headers`` on ``<body>``);
* a Content-Security-Policy without ``unsafe-inline``: all JavaScript is in static files;
* Jinja autoescaping on everything; user text is never marked safe.
"""

from __future__ import annotations

from flask import Flask, Response, redirect, request, url_for
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()
login_manager = LoginManager()

# No inline script or style, no eval, no plugins, no framing, forms post only to us.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'self'"
)


def init_app(app: Flask) -> None:
    from api.ui import access, views
    from api.ui import complaints as _complaints  # noqa: F401 - importing it nests its pages in views.bp

    production = app.extensions["riskctl"].settings.production
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=production,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=production,
        # CSRF is checked by the UI blueprint only: the /v1 API authenticates with bearer
        # keys, which a browser never sends on its own, so it has nothing to forge.
        WTF_CSRF_CHECK_DEFAULT=False,
        WTF_CSRF_HEADERS=["X-CSRFToken"],
        WTF_CSRF_TIME_LIMIT=8 * 3600,
        WTF_CSRF_SSL_STRICT=production,
    )
    csrf.init_app(app)
    login_manager.init_app(app)
    login_manager.login_view = "ui.login"
    login_manager.login_message = "Please log in."
    login_manager.session_protection = "strong"
    login_manager.user_loader(access.load_user)
    app.register_blueprint(views.bp)

    @app.get("/")
    def root() -> Response:
        return redirect(url_for("ui.index"))  # type: ignore[return-value]

    root.public = True  # type: ignore[attr-defined]

    @app.after_request
    def _security_headers(response: Response) -> Response:
        if request.blueprint == "ui" or request.path.startswith("/static/") or request.path == "/":
            response.headers.setdefault("Content-Security-Policy", CSP)
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault("X-Frame-Options", "DENY")
            if request.blueprint == "ui":
                response.headers.setdefault("Cache-Control", "no-store")
        return response
