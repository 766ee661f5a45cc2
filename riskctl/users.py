"""People who log in to the UI: argon2id password hashes, a role each, and logins audited."""

from __future__ import annotations

import re
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from riskctl import audit
from riskctl.errors import Conflict, ValidationFailed
from riskctl.ids import new_id
from riskctl.models import User, utcnow
from riskctl.roles import Role

_HASHER = PasswordHasher()  # argon2id with the library's current recommended parameters
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,63}$")
MIN_PASSWORD = 10
# Verified against when the username is unknown, so a miss costs what a hit costs.
_DUMMY_HASH = _HASHER.hash("riskctl-no-such-user-dummy-password")


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: str
    username: str
    role: Role
    active: bool


def _info(u: User) -> UserInfo:
    return UserInfo(u.id, u.username, Role(u.role), u.active)


def create_user(sessions: sessionmaker[Session], username: str, password: str, role: Role | str) -> str:
    """Create a user and return its id."""
    username = username.strip().lower()
    if not USERNAME.match(username):
        raise ValidationFailed("username: 2-64 characters of a-z, 0-9, '.', '_', '-'")
    if len(password) < MIN_PASSWORD:
        raise ValidationFailed(f"password: at least {MIN_PASSWORD} characters")
    try:
        role = Role(role)
    except ValueError:
        raise ValidationFailed(f"role must be one of {', '.join(Role)}") from None
    user_id = new_id("usr")
    with sessions.begin() as session:
        if session.scalar(select(User.id).where(User.username == username)) is not None:
            raise Conflict(f"user {username!r} already exists")
        session.add(
            User(id=user_id, username=username, password_hash=_HASHER.hash(password), role=role.value)
        )
        session.flush()
        audit.append(
            session.connection(),
            "cli",
            "user.create",
            f"user:{user_id}",
            {"username": username, "role": role.value},
        )
    return user_id


def authenticate(sessions: sessionmaker[Session], username: str, password: str) -> UserInfo | None:
    """The user when the password is right and the account active; None otherwise.

    Unknown usernames still cost one argon2 verification, so timing does not tell which
    usernames exist. A hash made with older parameters is upgraded on a good login.
    """
    username = (username or "").strip().lower()
    with sessions() as session:
        user = session.scalar(select(User).where(User.username == username))
    stored = user.password_hash if user is not None else _DUMMY_HASH
    try:
        _HASHER.verify(stored, password or "")
        good = user is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        good = False
    with sessions.begin() as session:
        conn = session.connection()
        if not good or user is None or not user.active:
            reason = "unknown user" if user is None else ("inactive" if good else "bad password")
            audit.append(
                conn,
                username[:100] or "-",
                "login.failed",
                f"user:{user.id if user else '-'}",
                {"reason": reason},
            )
            return None
        values: dict[str, object] = {"last_login_at": utcnow()}
        if _HASHER.check_needs_rehash(stored):
            values["password_hash"] = _HASHER.hash(password)
        session.execute(update(User).where(User.id == user.id).values(**values))
        audit.append(conn, user.username, "login", f"user:{user.id}", {})
    return _info(user)


def get_user(sessions: sessionmaker[Session], user_id: str) -> UserInfo | None:
    with sessions() as session:
        user = session.get(User, user_id)
        return _info(user) if user is not None else None


def get_user_by_name(sessions: sessionmaker[Session], username: str) -> UserInfo | None:
    with sessions() as session:
        user = session.scalar(select(User).where(User.username == username.strip().lower()))
        return _info(user) if user is not None else None


def list_users(sessions: sessionmaker[Session]) -> list[UserInfo]:
    with sessions() as session:
        return [_info(u) for u in session.scalars(select(User).order_by(User.username))]


def set_active(sessions: sessionmaker[Session], username: str, active: bool, actor: str = "cli") -> bool:
    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.username == username.strip().lower()))
        if user is None:
            return False
        user.active = active
        session.flush()
        audit.append(
            session.connection(),
            actor,
            "user.activate" if active else "user.deactivate",
            f"user:{user.id}",
            {},
        )
        return True
