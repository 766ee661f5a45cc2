"""Users: argon2id hashes, authentication that audits every attempt, rehash on login, CLI."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from sqlalchemy import select, update

from api.cli import main
from riskctl import audit
from riskctl.errors import Conflict, ValidationFailed
from riskctl.models import AuditEntry, User
from riskctl.roles import Role
from riskctl.users import authenticate, create_user, get_user


def _audit_actions(engine):
    with engine.connect() as conn:
        return [a for (a,) in conn.execute(select(AuditEntry.action).order_by(AuditEntry.seq))]


def test_create_and_authenticate(engine, sessions):
    uid = create_user(sessions, "Alice", "correct horse battery", "moderator")
    with sessions() as s:
        stored = s.get(User, uid).password_hash
    assert stored.startswith("$argon2id$") and "correct horse" not in stored
    info = authenticate(sessions, "alice", "correct horse battery")
    assert info is not None and (info.id, info.username, info.role, info.active) == (
        uid,
        "alice",
        Role.MODERATOR,
        True,
    )
    assert get_user(sessions, uid) == info
    assert get_user(sessions, "usr_nope") is None
    assert authenticate(sessions, "alice", "wrong horse battery") is None
    assert authenticate(sessions, "nobody", "correct horse battery") is None
    assert _audit_actions(engine) == ["user.create", "login", "login.failed", "login.failed"]
    assert audit.verify(engine).ok


def test_an_inactive_user_cannot_log_in(sessions):
    uid = create_user(sessions, "bob", "correct horse battery", Role.SENIOR_MODERATOR)
    with sessions.begin() as s:
        s.execute(update(User).where(User.id == uid).values(active=False))
    assert authenticate(sessions, "bob", "correct horse battery") is None
    assert get_user(sessions, uid).active is False


def test_an_old_hash_is_upgraded_on_login(sessions):
    uid = create_user(sessions, "carol", "correct horse battery", "analyst")
    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("correct horse battery")
    with sessions.begin() as s:
        s.execute(update(User).where(User.id == uid).values(password_hash=weak))
    assert authenticate(sessions, "carol", "correct horse battery") is not None
    with sessions() as s:
        upgraded = s.get(User, uid).password_hash
    assert upgraded != weak and not PasswordHasher().check_needs_rehash(upgraded)
    assert authenticate(sessions, "carol", "correct horse battery") is not None


@pytest.mark.parametrize(
    "username, password, role, error",
    [
        ("a", "correct horse battery", "moderator", ValidationFailed),
        ("has space", "correct horse battery", "moderator", ValidationFailed),
        ("dave", "short", "moderator", ValidationFailed),
        ("dave", "correct horse battery", "king", ValidationFailed),
    ],
)
def test_bad_users_are_refused(sessions, username, password, role, error):
    with pytest.raises(error):
        create_user(sessions, username, password, role)


def test_usernames_are_unique(sessions):
    create_user(sessions, "erin", "correct horse battery", "viewer")
    with pytest.raises(Conflict):
        create_user(sessions, "ERIN", "another long password", "admin")


def test_cli_creates_users_from_stdin(engine, sessions, monkeypatch, tmp_path):
    monkeypatch.setenv("RISKCTL_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", str(tmp_path / "instance"))
    runner = CliRunner()
    r = runner.invoke(
        main,
        ["users", "create", "frank", "--role", "senior_moderator", "--password-stdin"],
        input="a long passphrase\n",
    )
    assert r.exit_code == 0, r.output
    assert r.output.strip().startswith("usr_")
    assert authenticate(sessions, "frank", "a long passphrase").role is Role.SENIOR_MODERATOR
    r = runner.invoke(
        main,
        ["users", "create", "frank", "--role", "moderator", "--password-stdin"],
        input="a long passphrase\n",
    )
    assert r.exit_code == 1 and "already exists" in r.output
    r = runner.invoke(
        main, ["users", "create", "gina", "--role", "pope", "--password-stdin"], input="a long passphrase\n"
    )
    assert r.exit_code == 2
    listed = runner.invoke(main, ["users", "list"])
    assert "frank\tsenior_moderator\tactive" in listed.output
