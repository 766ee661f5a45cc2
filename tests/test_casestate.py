"""Every legal and illegal move of the case state machine."""

from __future__ import annotations

import itertools

import pytest

from riskctl.casestate import CaseStatus, Move, Resolution, label_of, legal_moves, transition
from riskctl.errors import Conflict

LEGAL = {
    (CaseStatus.OPEN, Move.CLAIM, None): CaseStatus.CLAIMED,
    (CaseStatus.CLAIMED, Move.RELEASE, None): CaseStatus.OPEN,
    (CaseStatus.CLAIMED, Move.EXPIRE, None): CaseStatus.OPEN,
    (CaseStatus.CLAIMED, Move.RESOLVE, None): CaseStatus.RESOLVED,
    (CaseStatus.RESOLVED, Move.REOPEN, Resolution.NEEDS_INFO): CaseStatus.OPEN,
    (CaseStatus.RESOLVED, Move.APPEAL, Resolution.CONFIRMED_ABUSE): CaseStatus.APPEALED,
    (CaseStatus.APPEALED, Move.UPHOLD_APPEAL, None): CaseStatus.APPEAL_UPHELD,
    (CaseStatus.APPEALED, Move.REJECT_APPEAL, None): CaseStatus.APPEAL_REJECTED,
}


@pytest.mark.parametrize(("status", "move", "resolution"), list(LEGAL))
def test_legal_moves(status, move, resolution):
    assert transition(status, move, resolution) is LEGAL[(status, move, resolution)]
    assert move in legal_moves(status, resolution)


ALL = [
    (s, m, r)
    for s, m, r in itertools.product(CaseStatus, Move, [None, *Resolution])
    if (s, m, r) not in LEGAL and (s, m, None) not in LEGAL  # moves legal whatever the resolution
]


@pytest.mark.parametrize(("status", "move", "resolution"), ALL)
def test_illegal_moves_are_conflicts(status, move, resolution):
    with pytest.raises(Conflict) as info:
        transition(status, move, resolution)
    assert info.value.status == 409
    assert f"cannot {move.value}" in info.value.detail


def test_labels():
    assert label_of(CaseStatus.RESOLVED, Resolution.CONFIRMED_ABUSE) is True
    assert label_of(CaseStatus.RESOLVED, Resolution.FALSE_POSITIVE) is False
    assert label_of(CaseStatus.RESOLVED, Resolution.NEEDS_INFO) is None
    assert label_of(CaseStatus.APPEAL_UPHELD, Resolution.CONFIRMED_ABUSE) is False
    assert label_of(CaseStatus.APPEAL_REJECTED, Resolution.CONFIRMED_ABUSE) is True
    assert label_of(CaseStatus.OPEN, None) is None
