"""The audit log is append-only and hash-chained: editing, deleting or reordering rows is
caught by ``verify`` and by ``riskctl audit verify``, which names the first bad row."""

from __future__ import annotations

import itertools

from click.testing import CliRunner
from sqlalchemy import select, text

from api.cli import main
from riskctl import audit, casework
from riskctl.models import AuditEntry


def _fill(engine, n=5):
    with engine.begin() as conn:
        for i in range(n):
            audit.append(conn, f"user{i}", "case.claim", f"case:c{i}", {"i": i, "note": "naïve ✓"})


def test_an_untouched_log_verifies(engine, sessions, make_case):
    _fill(engine)
    case_id = make_case()
    casework.claim(sessions, case_id, "alice")
    casework.resolve(sessions, case_id, "alice", "confirmed_abuse", actions=["suspend_account"])
    report = audit.verify(engine)
    assert report.ok and report.rows == 5 + 3  # claim, resolve, action.enqueue
    with engine.connect() as conn:
        rows = conn.execute(select(AuditEntry).order_by(AuditEntry.seq)).all()
    assert rows[0].prev_hash == audit.GENESIS
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(rows))


def test_an_edited_row_is_caught(engine):
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'mallory' WHERE seq = 3"))
    report = audit.verify(engine)
    assert not report.ok and report.first_bad_seq == 3 and "edited" in report.problem


def test_an_edited_detail_is_caught(engine):
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(text("""UPDATE audit_log SET detail = '{"i": 2, "note": "naive"}' WHERE seq = 2"""))
    assert audit.verify(engine).first_bad_seq == 2


def test_a_rehashed_edit_still_breaks_the_chain(engine):
    """Even recomputing the edited row's own hash does not help: the next row points at the old one."""
    _fill(engine)
    with engine.begin() as conn:
        row = conn.execute(select(AuditEntry).where(AuditEntry.seq == 2)).one()
        forged = audit.row_hash(
            row.seq, row.at, "mallory", row.action, row.subject, row.detail, row.prev_hash
        )
        conn.execute(text("UPDATE audit_log SET actor = 'mallory', hash = :h WHERE seq = 2"), {"h": forged})
    report = audit.verify(engine)
    assert report.first_bad_seq == 3 and "prev_hash" in report.problem


def test_a_deleted_row_is_caught(engine):
    _fill(engine)
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE seq = 2"))
    report = audit.verify(engine)
    assert not report.ok and report.first_bad_seq == 3 and "missing" in report.problem


def test_reordered_rows_are_caught(engine):
    _fill(engine)
    with engine.begin() as conn:  # swap the contents of rows 2 and 4, keeping the sequence dense
        conn.execute(text("UPDATE audit_log SET seq = -2 WHERE seq = 2"))
        conn.execute(text("UPDATE audit_log SET seq = 2 WHERE seq = 4"))
        conn.execute(text("UPDATE audit_log SET seq = 4 WHERE seq = -2"))
    report = audit.verify(engine)
    assert not report.ok and report.first_bad_seq == 2


def test_cli_verify_names_the_first_bad_row(engine, monkeypatch, tmp_path):
    _fill(engine)
    monkeypatch.setenv("RISKCTL_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RISKCTL_INSTANCE_PATH", str(tmp_path / "instance"))
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify"])
    assert ok.exit_code == 0 and "intact: 5 rows" in ok.output
    with engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET action = 'case.release' WHERE seq = 4"))
    bad = runner.invoke(main, ["audit", "verify"])
    assert bad.exit_code == 1
    assert "broken at row 4" in bad.output


def test_rule_pack_key_and_list_changes_are_audited(app, runtime, tmp_path):
    from tests.conftest import make_key

    key = make_key(app, "analyst")
    prefix = key.split("_")[1]
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}
    r = client.post(
        "/v1/lists",
        json={"list": "block", "entity_type": "device", "value": "dev-raw-123", "reason": "farm"},
        headers=headers,
    )
    assert r.status_code == 201
    assert client.delete(f"/v1/lists/{r.get_json()['id']}", headers=headers).status_code == 204
    runtime.policy.on_change("v-old", "v-new")  # what a reload of a new pack version calls
    from riskctl.apikeys import revoke_key

    assert revoke_key(runtime.sessions, prefix)
    with runtime.engine.connect() as conn:
        rows = conn.execute(
            select(AuditEntry.action, AuditEntry.subject, AuditEntry.detail).order_by(AuditEntry.seq)
        ).all()
    assert [(a, s) for a, s, _ in rows] == [
        ("apikey.create", f"apikey:{prefix}"),
        ("list.add", "list:block:device"),
        ("list.remove", "list:block:device"),
        ("rulepack.live", "rulepack:v-new"),
        ("apikey.revoke", f"apikey:{prefix}"),
    ]
    assert "dev-raw-123" not in str(rows)  # the device is masked, as in the list itself
    assert audit.verify(runtime.engine).ok


def test_concurrent_appenders_keep_one_chain(engine):
    import threading

    def writer(n):
        for i in range(15):
            with engine.begin() as conn:
                audit.append(conn, f"w{n}", "case.note", f"case:{n}", {"i": i})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = audit.verify(engine)
    assert report.ok and report.rows == 60
