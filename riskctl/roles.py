"""Who may do what: people's roles and the permissions each one holds.

People (moderators, compliance staff, analysts) log in to the UI with a role; machines use
API keys with scopes. Both are checked against the same matrix through :func:`can`, so a
route and a button never disagree about who may press them.
"""

from __future__ import annotations

import enum


class Role(enum.StrEnum):
    VIEWER = "viewer"
    MODERATOR = "moderator"
    SENIOR_MODERATOR = "senior_moderator"
    ANALYST = "analyst"
    COMPLIANCE = "compliance"
    ADMIN = "admin"
    RIGHTS_HOLDER = "rights_holder"


class Permission(enum.StrEnum):
    CASE_VIEW = "case_view"
    CASE_CLAIM = "case_claim"
    CASE_RESOLVE = "case_resolve"
    CASE_BULK_RESOLVE = "case_bulk_resolve"
    CASE_APPEAL = "case_appeal"
    CASE_APPEAL_DECIDE = "case_appeal_decide"
    CASE_NOTE = "case_note"
    ACTION_EXECUTE = "action_execute"
    RULES_EDIT = "rules_edit"
    RULES_BACKTEST = "rules_backtest"
    LISTS_EDIT = "lists_edit"
    USERS_MANAGE = "users_manage"
    AUDIT_VIEW = "audit_view"
    DASHBOARD_VIEW = "dashboard_view"
    COMPLAINTS_WORK = "complaints_work"
    COMPLAINTS_FILE = "complaints_file"


P = Permission
_MODERATOR = frozenset(
    {P.CASE_VIEW, P.CASE_CLAIM, P.CASE_RESOLVE, P.CASE_NOTE, P.ACTION_EXECUTE, P.DASHBOARD_VIEW}
)

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({P.CASE_VIEW, P.DASHBOARD_VIEW}),
    Role.MODERATOR: _MODERATOR,
    # Bulk resolution and appeal decisions need a second, more senior pair of eyes.
    Role.SENIOR_MODERATOR: _MODERATOR
    | {P.CASE_BULK_RESOLVE, P.CASE_APPEAL, P.CASE_APPEAL_DECIDE, P.AUDIT_VIEW},
    # Analysts read cases (their labels train detectors) but do not act on them.
    Role.ANALYST: frozenset(
        {P.CASE_VIEW, P.CASE_NOTE, P.RULES_EDIT, P.RULES_BACKTEST, P.LISTS_EDIT, P.DASHBOARD_VIEW}
    ),
    Role.COMPLIANCE: frozenset(
        {
            P.CASE_VIEW,
            P.CASE_CLAIM,
            P.CASE_RESOLVE,
            P.CASE_NOTE,
            P.CASE_APPEAL,
            P.ACTION_EXECUTE,
            P.COMPLAINTS_WORK,
            P.AUDIT_VIEW,
            P.DASHBOARD_VIEW,
        }
    ),
    Role.ADMIN: frozenset(Permission),
    # Outside parties: they file complaints about their own brands and nothing else.
    Role.RIGHTS_HOLDER: frozenset({P.COMPLAINTS_FILE}),
}


def can(role: Role | str | None, perm: Permission | str) -> bool:
    """True when ``role`` holds ``perm``; an unknown role or permission holds nothing."""
    try:
        r = Role(role) if role is not None else None
        p = Permission(perm)
    except ValueError:
        return False
    return r is not None and p in PERMISSIONS[r]
