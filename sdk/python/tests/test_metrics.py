"""``GET /metrics`` of the real server, read by the official Prometheus client
parser, and its JSON log lines.

The server writes the OpenMetrics text format (what Prometheus asks for
first), so the test parses it with ``prometheus_client``'s OpenMetrics parser,
which also refuses anything that breaks the format (a missing ``# EOF``, a
sample outside its family, a bad label).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from server import POLICIES, Human, PliuzServer, running

TOKEN = "metrics-token-for-the-python-test"
CONFIG = f'log_format = "json"\n\n[metrics]\ntoken = "{TOKEN}"\n' + POLICIES


@pytest.fixture
def metrics_server(tmp_path: Path) -> Iterator[PliuzServer]:
    with running(tmp_path, CONFIG) as srv:
        yield srv


def scrape(server: PliuzServer) -> dict[str, list[Sample]]:
    """Samples by family name, through the official parser."""
    r = httpx.get(
        f"{server.base_url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    # The parser has no annotations upstream.
    families = text_string_to_metric_families(r.text)  # type: ignore[no-untyped-call]
    return {f.name: list(f.samples) for f in families}


def value(families: dict[str, list[Sample]], family: str, name: str, **labels: str) -> float:
    """The value of one sample; 0 when the series does not exist (yet)."""
    for s in families.get(family, []):
        if s.name == name and s.labels == labels:
            return float(s.value)
    return 0.0


def create(server: PliuzServer, amount_cents: int) -> dict[str, object]:
    r = httpx.post(
        f"{server.base_url}/api/v1/approvals",
        headers={"Authorization": f"Bearer {server.agent_key}"},
        json={
            "tool_name": "issue_refund",
            "tool_args": {"order_id": "A-1", "amount_cents": amount_cents},
        },
        timeout=10,
    )
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_metrics_need_the_token(metrics_server: PliuzServer) -> None:
    for headers in ({}, {"Authorization": "Bearer not-the-metrics-token"}):
        r = httpx.get(f"{metrics_server.base_url}/metrics", headers=headers, timeout=10)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "unauthorized"


def test_counters_and_gauges_move_as_requests_are_created_and_decided(
    metrics_server: PliuzServer,
) -> None:
    before = scrape(metrics_server)
    ids = [str(create(metrics_server, 5000)["id"]) for _ in range(3)]
    assert create(metrics_server, 500)["status"] == "approved"  # by the policy's condition
    human = Human(metrics_server)
    human.decide_ok(ids[0], "approve")
    human.decide_ok(ids[1], "reject", reason="not this one")
    after = scrape(metrics_server)

    def moved(family: str, name: str, **labels: str) -> float:
        return value(after, family, name, **labels) - value(before, family, name, **labels)

    assert moved("pliuz_approvals_created", "pliuz_approvals_created_total", policy="refunds") == 4
    decided = ("pliuz_approvals_decided", "pliuz_approvals_decided_total")
    assert moved(*decided, policy="refunds", outcome="approved") == 2
    assert moved(*decided, policy="refunds", outcome="rejected") == 1
    ttd = "pliuz_approval_time_to_decision_seconds"
    assert moved(ttd, f"{ttd}_count", policy="refunds") == 3
    live = "pliuz_approvals"
    assert value(after, live, live, status="pending", policy="refunds") == 1
    assert value(after, live, live, status="approved", policy="refunds") == 2
    http = "pliuz_http_request_duration_seconds"
    created = {"method": "POST", "route": "/api/v1/approvals", "status": "201"}
    assert moved(http, f"{http}_count", **created) == 4
    decisions = {"method": "POST", "route": "/api/v1/approvals/{id}/decision", "status": "200"}
    assert moved(http, f"{http}_count", **decisions) == 2
    # Route labels are templates: no request id ever becomes a label value.
    routes = {s.labels.get("route", "") for s in after[http]}
    assert not any(i in r for r in routes for i in ids), routes
    assert value(after, "pliuz_audit_log_entries", "pliuz_audit_log_entries") > value(
        before, "pliuz_audit_log_entries", "pliuz_audit_log_entries"
    )


def test_log_lines_are_json_without_secrets(metrics_server: PliuzServer) -> None:
    create(metrics_server, 5000)
    metrics_server.stop()
    lines = [line for line in metrics_server.log.read_text().splitlines() if line.strip()]
    assert lines
    records = [json.loads(line) for line in lines]
    assert all(isinstance(r["level"], str) and isinstance(r["fields"], dict) for r in records)
    assert any(r["fields"].get("message") == "pliuz is serving" for r in records)
    text = "\n".join(lines)
    for secret in (metrics_server.agent_key, metrics_server.user_token, TOKEN):
        assert secret not in text
