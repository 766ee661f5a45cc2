"""Counters of what a check costs in round trips: Redis commands sent and database commits.

They are Prometheus counters (summed over gunicorn workers like every other metric), so a
benchmark or an operator can read "Redis round trips per check" and "commits per check"
from ``/metrics`` instead of trusting a claim.
"""

from __future__ import annotations

from prometheus_client import Counter

REDIS_ROUNDTRIPS = Counter(
    "riskctl_redis_roundtrips_total", "Requests sent to Redis (a pipeline counts once)"
)
DB_COMMITS = Counter("riskctl_db_commits_total", "Database transactions committed")
