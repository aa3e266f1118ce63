"""`hydra paper-trade` as a service, in a real subprocess, against the embedded gateway (a `GatewayThread` in this process,
accelerated clock; the service's clock mirrors it with `--sim-clock`), alerts going through apprise's json:// to a loopback
HTTP receiver.

- `hydra gateway-sim` as a process, killed (SIGKILL) and started again on its port before the cycle: a disconnected
  alert, a recovered alert, and the day's cycle runs;
- a late start catches up the day's cycle; the gateway going down mid-day (a restart: every connection cut, connects
  refused for a while, its orders kept, as IB's servers keep them) gives a `disconnected` alert, its return a `recovered`
  alert, and the day still completes; a heartbeat is printed and everything is in the rotating log file;
- SIGTERM mid-TWAP stops with exit 0, the working children cancelled, the day marked `stopped`; a restart resumes the
  day and finishes it with no child order sent twice and the journal equal to the gateway's executions.
"""
import json, os, queue, re, signal, subprocess, sys, threading, time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pytest

from hydra_nb.gateway_sim import GatewayThread
from hydra_nb.journal import FillJournal
from hydra_nb.market import SimClock

HYDRA = Path(sys.executable).parent / "hydra"
SCALE, WAIT, DAY = 60.0, 150.0, "2026-10-19"


class Receiver:
    "A loopback HTTP server keeping every JSON body POSTed to it (apprise's json:// target)."
    def __init__(self):
        self.got, outer = [], self
        class H(BaseHTTPRequestHandler):
            def do_POST(self):
                outer.got.append(json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0)))))
                self.send_response(200); self.end_headers()
            def log_message(self, *a): pass
        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.srv.server_address[1]
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
    def titles(self): return [g["title"] for g in self.got]
    def close(self): self.srv.shutdown(); self.srv.server_close()


def settings_file(d:Path, port:int, hook:int) -> Path:
    p = d / "settings.ini"
    p.write_text(f"""[ib]
port = {port}
paper_ports = {port}
connect_timeout = 30
reconnect_max_delay = 2
[risk]
max_position = 1.0
[orders]
patience_seconds = 20
twap_duration_minutes = 10
twap_participation_threshold = 0.00001
[paths]
state_dir = {d / 'state'}
[alerts]
urls = json://127.0.0.1:{hook}/hydra
disconnect_minutes = 2
min_interval_minutes = 0
[service]
heartbeat_minutes = 5
retry_minutes = 2
""")
    return p


class Service:
    "`hydra paper-trade --sim-clock ...` in a subprocess, its stdout lines queued."
    def __init__(self, gt, ini):
        s, w = gt.call(lambda gw: (gw.clock.time(), time.time()))
        self.p = subprocess.Popen([str(HYDRA), "paper-trade", "--settings", str(ini), "--sim-clock", f"{s!r},{w!r},{SCALE}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "HYDRA_STATE_DIR": str(ini.parent / "state")})
        self.lines, self.out, self.err = queue.Queue(), [], []
        threading.Thread(target=lambda: [(self.lines.put(l.rstrip("\n")), self.out.append(l)) for l in self.p.stdout], daemon=True).start()
        threading.Thread(target=lambda: [self.err.append(l) for l in self.p.stderr], daemon=True).start()

    def expect(self, needle):
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            try: line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.p.poll() is not None and self.lines.empty():
                    raise AssertionError(f"paper-trade exited ({self.p.returncode}) before {needle!r}:\n{''.join(self.out[-20:])}{''.join(self.err[-30:])}")
                continue
            if line.startswith(needle): return line
        raise AssertionError(f"no {needle!r} within {WAIT} s:\n{''.join(self.out[-20:])}{''.join(self.err[-30:])}")

    def term(self) -> int:
        if self.p.poll() is None: self.p.send_signal(signal.SIGTERM)
        return self.p.wait(60)

    def kill(self):
        if self.p.poll() is None: self.p.kill(); self.p.wait(30)


def wait_until(pred, what, timeout=WAIT):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if (v := pred()): return v
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def rig(tmp_path):
    hook = Receiver()
    started = []
    def gateway(start):
        clock = SimClock(mode="accelerated", start=start, time_scale=SCALE)
        gt = GatewayThread(port=0, seed=21, clock=clock).start(); started.append(gt)
        return gt, settings_file(tmp_path, gt.port, hook.port)
    procs = []
    yield hook, gateway, procs
    for p in procs: p.kill()
    for gt in started: gt.stop()
    hook.close()


def orders_of(gt):
    return gt.call(lambda gw: [(o.order_ref, o.status, o.filled, o.total_qty) for o in gw.orders.values() if o.client_id == 1])


@pytest.mark.slow
def test_late_start_catches_up_and_a_gateway_restart_is_alerted(rig, tmp_path):
    hook, gateway, procs = rig
    gt, ini = gateway(datetime(2026, 10, 19, 14, 40, tzinfo=timezone.utc))     # 09:40 in Chicago: 40 min after the cycle time
    svc = Service(gt, ini); procs.append(svc)
    assert "catch-up: started" in svc.expect(f"cycle {DAY} attempt 1:")
    svc.expect("heartbeat ")
    wait_until(lambda: any(r.startswith("D20261019-") for r, *_ in orders_of(gt)), "a child order at the gateway")
    gt.call(lambda gw: gw.faults.nightly_reset(6.0))                             # 6 s wall = 6 simulated minutes down
    wait_until(lambda: any("down for" in t for t in hook.titles()), "the disconnected alert", 60)
    wait_until(lambda: any("back after" in t for t in hook.titles()), "the recovered alert", 60)
    line = svc.expect(f"cycle {DAY} done")
    assert svc.term() == 0
    t = hook.titles()
    assert t[0].startswith("hydra started") and t[-1] == "hydra stopped: SIGTERM", t
    assert [x for x in t if "down for" in x][0].startswith(f"gateway 127.0.0.1:{gt.port} down for")
    refs = [r for r, *_ in orders_of(gt)]
    assert len(refs) == len(set(refs)) and refs, refs                                       # no child sent twice
    log = (tmp_path / "state" / "logs" / "hydra.log").read_text()
    assert "catch-up: started" in log and "dropped" in log and "ALERT disconnected" in log
    with FillJournal(tmp_path / "state") as j:
        status, = j.conn.execute("SELECT status FROM runner_cycles WHERE trading_date = ?", (DAY,)).fetchone()
        whys = [w for w, in j.conn.execute("SELECT why FROM service_attempts WHERE trading_date = ? ORDER BY attempt", (DAY,))]
    assert status == "done" and whys[0].startswith("catch-up"), (status, whys, line)


@pytest.mark.slow
def test_sigterm_mid_twap_then_restart_sends_nothing_twice(rig, tmp_path):
    hook, gateway, procs = rig
    gt, ini = gateway(datetime(2026, 10, 19, 13, 59, tzinfo=timezone.utc))
    first = Service(gt, ini); procs.append(first)
    wait_until(lambda: any(r.startswith("D20261019-") for r, *_ in orders_of(gt)), "a child order at the gateway")
    t0 = time.monotonic()
    assert first.term() == 0 and time.monotonic() - t0 < 30, "".join(first.err[-30:])
    assert any("stopped (SIGTERM) during the cycle" in l for l in first.out), first.out
    at_stop = orders_of(gt)
    assert at_stop and all(s in ("Cancelled", "Filled") or f >= q for _, s, f, q in at_stop), at_stop   # nothing left working
    with FillJournal(tmp_path / "state") as j:
        st, fail = j.conn.execute("SELECT status, failure FROM runner_cycles WHERE trading_date = ?", (DAY,)).fetchone()
    assert (st, fail) == ("failed", "stopped")
    second = Service(gt, ini); procs.append(second)
    assert "resume: attempt 1 did not finish" in second.expect(f"cycle {DAY} attempt 2:")
    second.expect(f"cycle {DAY} done")
    assert second.term() == 0
    refs = [r for r, *_ in orders_of(gt)]
    assert len(refs) == len(set(refs)), refs
    assert {r for r, *_ in at_stop} < set(refs)                                 # the restart sent the remaining TWAP slices
    execs = gt.call(lambda gw: [e.exec_id for e in gw.executions() if e.client_id == 1])
    with FillJournal(tmp_path / "state") as j:
        assert set(j.fills().exec_id) == set(execs)
        rows = j.conn.execute("SELECT symbol, parent_ref, quantity, status FROM runner_targets WHERE trading_date = ?", (DAY,)).fetchall()
    fills = gt.call(lambda gw: [(e.order_ref, e.shares) for e in gw.executions() if e.client_id == 1])
    for sym, ref, qty, s in rows:
        assert s in ("done", "none")
        if ref: assert sum(q for r, q in fills if (r or "").startswith(ref + ":")) <= qty      # no parent filled beyond its quantity
    assert [t for t in hook.titles() if t.startswith("hydra stopped")] == ["hydra stopped: SIGTERM"] * 2
    assert f"cycle {DAY} stopped (attempt 1): working orders cancelled" in hook.titles(), hook.titles()    # the stopped cycle reached a person


def spawn_gateway(port:int, start:datetime, *extra):
    "`hydra gateway-sim` as a process; returns it, its port and the wall time its clock read `start`."
    p = subprocess.Popen([str(HYDRA), "gateway-sim", "--port", str(port), "--seed", "21", "--time-scale", str(SCALE),
                          "--start", start.strftime("%Y-%m-%dT%H:%M:%S"), *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    wall = time.time()
    m = re.search(r"listening on [\d.]+:(\d+)", line)
    if not m:
        p.kill(); raise AssertionError(f"no banner: {line!r} {p.stderr.read()[-2000:]}")
    return p, int(m.group(1)), wall


@pytest.mark.slow
def test_gateway_process_killed_and_restarted_before_the_cycle(tmp_path):
    "`hydra gateway-sim` killed (SIGKILL) and started again on its port: disconnected, then recovered, and the day's cycle runs."
    hook, procs, gws = Receiver(), [], []
    try:
        t0 = datetime(2026, 10, 19, 13, 52, tzinfo=timezone.utc)                 # 08:52 in Chicago; the cycle at 09:00
        gw, port, w0 = spawn_gateway(0, t0); gws.append(gw)
        ini = settings_file(tmp_path, port, hook.port)
        svc = subprocess.Popen([str(HYDRA), "paper-trade", "--settings", str(ini), "--sim-clock", f"{t0.timestamp()!r},{w0!r},{SCALE}"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, "HYDRA_STATE_DIR": str(tmp_path / "state")})
        procs.append(svc)
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in svc.stdout], daemon=True).start()
        def expect(needle, timeout=WAIT):
            end = time.monotonic() + timeout
            while time.monotonic() < end:
                try: l = lines.get(timeout=0.5)
                except queue.Empty: continue
                if l.startswith(needle): return l
            raise AssertionError(f"no line starting {needle!r}")
        assert "| connected |" in expect("heartbeat ")
        gw.kill(); gw.wait(10)
        wait_until(lambda: any("down for" in t for t in hook.titles()), "the disconnected alert", 60)
        later = t0 + (time.time() - w0) * SCALE * timedelta(seconds=1)
        gw2, _, _ = spawn_gateway(port, later, "--start-order-id", "100000"); gws.append(gw2)      # ids only grow
        wait_until(lambda: any("back after" in t for t in hook.titles()), "the recovered alert", 60)
        assert expect("cycle 2026-10-19 done")
        svc.send_signal(signal.SIGTERM)
        assert svc.wait(60) == 0
        t = hook.titles()
        assert [x.split(" down for")[0] for x in t if "down for" in x] == [f"gateway 127.0.0.1:{port}"] and t[-1] == "hydra stopped: SIGTERM", t
    finally:
        for p in procs + gws:
            if p.poll() is None: p.kill(); p.wait(10)
        hook.close()
