"""The baseline: a bare Flask JSON endpoint that parses the body and answers JSON."""

from flask import Flask, request

app = Flask(__name__)


@app.post("/v1/checks")
def bare() -> dict[str, object]:
    body = request.get_json()
    return {"ok": True, "event_id": body.get("event_id"), "outcome": "allow"}
