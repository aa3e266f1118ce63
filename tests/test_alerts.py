"""Alerts end to end: apprise's json:// to a local HTTP receiver on 127.0.0.1 (no network beyond the loopback)."""
import asyncio, json, sqlite3, threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from hydra_nb.alerts import Alerter
from hydra_nb.config import AlertsSettings


class Receiver:
    "A loopback HTTP server that keeps every JSON body POSTed to it."
    def __init__(self):
        self.got, outer = [], self
        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", 0))
                outer.got.append((self.path, json.loads(self.rfile.read(n))))
                self.send_response(200); self.end_headers()
            def log_message(self, *a): pass
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
    def close(self): self.srv.shutdown(); self.srv.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_apprise_json_reaches_a_local_receiver(receiver, tmp_path):
    conn = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    a = Alerter(AlertsSettings(urls=f"json://127.0.0.1:{receiver.port}/hydra", min_interval_minutes=30), conn)
    async def go():
        assert a.alert("cycle_failed", "2026-12-07", body="ConnectionError: x", trading_date="2026-12-07", attempts=1, failure="no_connection")
        assert not a.alert("cycle_failed", "2026-12-07", trading_date="2026-12-07", attempts=2, failure="no_connection")   # rate-limited
        assert a.alert("roll_hard_stop", "ZO", symbol="ZO", message="ZOZ6 closed, but not rolled")
        await a.drain()
    asyncio.run(go())
    assert [p for p, _ in receiver.got] == ["/hydra", "/hydra"]
    (_, first), (_, second) = receiver.got
    assert first["title"] == "cycle 2026-12-07 failed (attempt 1): no_connection" and first["message"] == "ConnectionError: x"
    assert first["type"] == "failure" and second["title"] == "roll hard stop: ZO: ZOZ6 closed, but not rolled"
    assert conn.execute("SELECT kind, sent, error FROM alerts ORDER BY id").fetchall() == [
        ("cycle_failed", 1, ""), ("cycle_failed", 0, "rate-limited"), ("roll_hard_stop", 1, "")]


def test_an_unreachable_receiver_is_recorded_not_raised(tmp_path):
    conn = sqlite3.connect(tmp_path / "a.db", isolation_level=None)
    a = Alerter(AlertsSettings(urls="json://127.0.0.1:9/nobody"), conn)     # port 9 (discard): nothing listens
    async def go():
        a.alert("process_start", detail="test"); await a.drain(20)
    asyncio.run(go())
    kind, sent, err = conn.execute("SELECT kind, sent, error FROM alerts").fetchone()
    assert (kind, sent) == ("process_start", 0) and "could not deliver" in err
