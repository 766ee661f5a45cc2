"""The authorization matrix, written out independently of riskctl/roles.py: a change to who
may do what has to change this table too."""

from __future__ import annotations

import pytest

from riskctl.roles import PERMISSIONS, Permission, Role, can

Y, N = True, False
# permission:                  viewer mod  senior analyst compliance admin rights_holder
MATRIX: dict[str, tuple[bool, ...]] = {
    "case_view":                (Y,    Y,   Y,     Y,      Y,         Y,    N),
    "case_claim":               (N,    Y,   Y,     N,      Y,         Y,    N),
    "case_resolve":             (N,    Y,   Y,     N,      Y,         Y,    N),
    "case_bulk_resolve":        (N,    N,   Y,     N,      N,         Y,    N),
    "case_appeal":              (N,    N,   Y,     N,      Y,         Y,    N),
    "case_appeal_decide":       (N,    N,   Y,     N,      N,         Y,    N),
    "case_note":                (N,    Y,   Y,     Y,      Y,         Y,    N),
    "action_execute":           (N,    Y,   Y,     N,      Y,         Y,    N),
    "rules_edit":               (N,    N,   N,     Y,      N,         Y,    N),
    "rules_backtest":           (N,    N,   N,     Y,      N,         Y,    N),
    "lists_edit":               (N,    N,   N,     Y,      N,         Y,    N),
    "users_manage":             (N,    N,   N,     N,      N,         Y,    N),
    "audit_view":               (N,    N,   Y,     N,      Y,         Y,    N),
    "dashboard_view":           (Y,    Y,   Y,     Y,      Y,         Y,    N),
    "complaints_work":          (N,    N,   N,     N,      Y,         Y,    N),
    "complaints_file":          (N,    N,   N,     N,      N,         Y,    Y),
}  # fmt: skip
ROLES = ("viewer", "moderator", "senior_moderator", "analyst", "compliance", "admin", "rights_holder")


def test_the_matrix_covers_every_role_and_permission():
    assert set(MATRIX) == {p.value for p in Permission}
    assert set(ROLES) == {r.value for r in Role} == {r.value for r in PERMISSIONS}


@pytest.mark.parametrize("perm", sorted(MATRIX))
@pytest.mark.parametrize("role", ROLES)
def test_can_matches_the_matrix(role, perm):
    expected = MATRIX[perm][ROLES.index(role)]
    assert can(role, perm) is expected
    assert can(Role(role), Permission(perm)) is expected


def test_moderators_resolve_single_cases_but_not_in_bulk():
    assert can(Role.MODERATOR, Permission.CASE_RESOLVE)
    assert not can(Role.MODERATOR, Permission.CASE_BULK_RESOLVE)
    assert can(Role.SENIOR_MODERATOR, Permission.CASE_BULK_RESOLVE)
    assert can(Role.SENIOR_MODERATOR, Permission.CASE_APPEAL_DECIDE)


@pytest.mark.parametrize(
    "role, perm", [("pipeline", "case_view"), ("root", "case_view"), (None, "case_view"), ("admin", "fly")]
)
def test_unknown_roles_and_permissions_hold_nothing(role, perm):
    assert can(role, perm) is False
