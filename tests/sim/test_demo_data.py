"""``riskctl demo-data`` (what ``make run`` loads): simulated history through the real check path."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from api.cli import main
from riskctl.config import Settings
from riskctl.db import make_engine, make_sessionmaker
from riskctl.migrate import upgrade
from riskctl.models import Case, Decision


def test_demo_data_leaves_decisions_of_every_kind_and_outcome_and_open_cases(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RISKCTL_ENV", "testing")
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", settings.instance_path)
    monkeypatch.setenv("RISKCTL_REDIS_URL", settings.redis_url)
    if settings.database_url:
        monkeypatch.setenv("RISKCTL_DATABASE_URL", settings.database_url)
    engine = make_engine(settings.effective_database_url)
    try:
        upgrade(engine)
        result = CliRunner().invoke(main, ["demo-data", "--events", "600"], catch_exceptions=False)
        assert result.exit_code == 0, result.output
        with make_sessionmaker(engine)() as session:
            kinds = dict(session.execute(select(Decision.kind, func.count()).group_by(Decision.kind)).all())
            outcomes = dict(
                session.execute(select(Decision.outcome, func.count()).group_by(Decision.outcome)).all()
            )
            cases = session.scalar(select(func.count()).select_from(Case))
        assert set(kinds) == {"order", "review", "coupon_redemption", "listing"}
        assert sum(kinds.values()) >= 500
        assert outcomes.get("allow", 0) > outcomes.get("review", 0) + outcomes.get("block", 0) > 0
        assert outcomes.get("block", 0) > 0
        assert cases and cases > 0
        again = CliRunner().invoke(main, ["demo-data", "--if-empty"], catch_exceptions=False)
        assert "skipped" in again.output
    finally:
        engine.dispose()
