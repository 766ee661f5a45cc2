"""Configuration: code defaults, RISKCTL_* overrides, and refusals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from riskctl.config import DEV_SECRET, SETTINGS, Settings
from riskctl.errors import ConfigError

README = Path(__file__).resolve().parent.parent / "README.md"


def test_defaults_are_usable_in_development():
    s = Settings.from_env({})
    assert s.env == "development"
    assert s.port == 8000
    assert s.effective_database_url.startswith("sqlite:///")
    assert s.max_body_bytes == 65536


def test_environment_overrides_defaults():
    s = Settings.from_env(
        {
            "RISKCTL_PORT": "9001",
            "RISKCTL_VELOCITY_WINDOWS": "5m,1h",
            "RISKCTL_DEGRADED_FALLBACK": "order=review",
            "RISKCTL_DEMO_DATA": "false",
        }
    )
    assert (s.port, s.velocity_windows, s.degraded_fallback, s.demo_data) == (
        9001,
        ("5m", "1h"),
        {"order": "review"},
        False,
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RISKCTL_PORT": "eighty"}, "RISKCTL_PORT"),
        ({"RISKCTL_VELOCITY_WINDOWS": "10 minutes"}, "RISKCTL_VELOCITY_WINDOWS"),
        ({"RISKCTL_DEGRADED_FALLBACK": "order=maybe"}, "RISKCTL_DEGRADED_FALLBACK"),
        ({"RISKCTL_DEGRADED_FALLBACK": "refund=allow"}, "RISKCTL_DEGRADED_FALLBACK"),
        ({"RISKCTL_ENV": "staging"}, "RISKCTL_ENV"),
        ({"RISKCTL_MAX_BODY_BYTES": "10"}, "RISKCTL_MAX_BODY_BYTES"),
    ],
)
def test_bad_values_are_refused_with_the_variable_named(env, message):
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_production_refuses_the_development_secret():
    with pytest.raises(ConfigError, match="development secret"):
        Settings.from_env({"RISKCTL_ENV": "production"})
    with pytest.raises(ConfigError):
        Settings.from_env({"RISKCTL_ENV": "production", "RISKCTL_SECRET_KEY": "short"})
    ok = Settings.from_env({"RISKCTL_ENV": "production", "RISKCTL_SECRET_KEY": "x" * 40})
    assert ok.production and ok.secret_key != DEV_SECRET


def test_every_setting_is_in_the_readme_table():
    readme = README.read_text()
    documented = set(re.findall(r"`(RISKCTL_[A-Z_]+)`", readme))
    declared = {s.env for s in SETTINGS}
    assert declared <= documented, f"missing from README: {sorted(declared - documented)}"


def test_the_metrics_dir_is_on_tmpfs_unless_set(tmp_path):
    default = Settings(instance_path=str(tmp_path / "a"))
    other = Settings(instance_path=str(tmp_path / "b"))
    if Path("/dev/shm").is_dir():
        assert default.effective_metrics_dir.parent == Path("/dev/shm")
        # one directory per instance: two services on one machine never share their values
        assert default.effective_metrics_dir != other.effective_metrics_dir
    else:
        assert default.effective_metrics_dir == tmp_path / "a" / "prometheus"
    chosen = Settings(instance_path=str(tmp_path / "a"), metrics_dir=str(tmp_path / "m"))
    assert chosen.effective_metrics_dir == tmp_path / "m"
