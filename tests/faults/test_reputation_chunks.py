"""The reputation batch commits in chunks (SQLite's one write lock is never held for a whole
run, see test_sqlite_writers.py) and still folds every decision exactly once."""

from __future__ import annotations

from sqlalchemy import func, select

from riskctl.models import ReputationEvent
from tests import factories


def test_chunks_fold_every_decision_once_within_the_batch(client, runtime, pipeline_headers):
    store = runtime.extras["reputation"]
    for i in range(7):
        ev = factories.order(buyer_id=f"buyer-chunk-{i}", shop_id="shop-chunk")
        assert client.post("/v1/checks", json=ev, headers=pipeline_headers).status_code == 200
    assert store.ingest(batch=3, chunk=2)["decisions"] == 3  # the batch caps a run
    assert store.ingest(chunk=2)["decisions"] == 4  # two full chunks, then the rest
    assert store.ingest(chunk=2)["decisions"] == 0
    with runtime.engine.connect() as conn:
        refs = conn.execute(
            select(ReputationEvent.ref, func.count())
            .where(ReputationEvent.ref.like("decision:%"), ReputationEvent.subject_type == "buyer")
            .group_by(ReputationEvent.ref)
        ).all()
    assert len(refs) == 7 and {n for _, n in refs} == {1}
