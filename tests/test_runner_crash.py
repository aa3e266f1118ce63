"""SIGKILL of the runner mid-cycle (mid-TWAP) and a restart that finishes the day without trading anything twice.

The embedded gateway runs in this process (a `GatewayThread`, accelerated clock) and outlives the runner, which is
`tests/runner_client.py` in a separate process on one state directory. Checked against the gateway's own records: every
child order reference is unique (no slice sent twice), no parent filled beyond its quantity, the journal holds exactly
the gateway's executions for the client, the day's targets are done with the parent references decided before the kill,
the cycle counts two attempts and the breakers' period advanced once.
"""
import json, os, queue, signal, subprocess, sys, threading, time
from datetime import date, datetime, timezone
from pathlib import Path
import pytest

from hydra_nb.gateway_sim import GatewayThread
from hydra_nb.journal import FillJournal
from hydra_nb.market import SimClock

CLIENT = Path(__file__).with_name("runner_client.py")
SCALE, WAIT = 60.0, 120.0
DAY = "2026-10-19"


class Runner:
    def __init__(self, gt, state_dir, day=DAY, symbols=""):
        sim_epoch, wall_epoch = gt.call(lambda gw: (gw.clock.time(), time.time()))
        cmd = [sys.executable, str(CLIENT), "--port", str(gt.port), "--state-dir", str(state_dir), "--day", day,
               "--time-scale", str(SCALE), "--sim-epoch", repr(sim_epoch), "--wall-epoch", repr(wall_epoch), "--symbols", symbols]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        self.lines, self.err = queue.Queue(), []
        threading.Thread(target=lambda: [self.lines.put(l.rstrip("\n")) for l in self.p.stdout], daemon=True).start()
        threading.Thread(target=lambda: [self.err.append(l) for l in self.p.stderr], daemon=True).start()

    def expect(self, prefix):
        end = time.monotonic() + WAIT
        while time.monotonic() < end:
            try: line = self.lines.get(timeout=0.5)
            except queue.Empty:
                if self.p.poll() is not None and self.lines.empty():
                    raise AssertionError(f"runner exited ({self.p.returncode}) before {prefix!r}:\n" + "".join(self.err[-30:]))
                continue
            if line.startswith(prefix): return line[len(prefix):].strip()
        raise AssertionError(f"no {prefix!r} within {WAIT} s:\n" + "".join(self.err[-30:]))

    def kill(self):
        if self.p.poll() is None: os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(30)


def wait_until(pred, what):
    end = time.monotonic() + WAIT
    while time.monotonic() < end:
        if (v := pred()): return v
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_runner_killed_mid_cycle_and_restarted(isolated_env):
    state = isolated_env / "state"; state.mkdir()
    clock = SimClock(mode="accelerated", start=datetime(2026, 10, 19, 14, 0, tzinfo=timezone.utc), time_scale=SCALE)
    gt = GatewayThread(port=0, seed=21, clock=clock).start()
    first = second = None
    orders = lambda: gt.call(lambda gw: [(o.order_ref, o.status, o.filled, o.total_qty) for o in gw.orders.values() if o.client_id == 1])
    try:
        first = Runner(gt, state)
        first.expect("READY")
        t = json.loads(first.expect("TARGET"))
        wait_until(lambda: any(r.startswith(t["parent_ref"] + ":") for r, *_ in orders()), "a child of the first target at the gateway")
        first.kill()
        refs_at_kill = [r for r, *_ in orders()]
        with FillJournal(state) as j:
            before = dict(j.conn.execute("SELECT symbol, parent_ref FROM runner_targets WHERE trading_date = ?", (DAY,)).fetchall())
            status = j.conn.execute("SELECT status FROM runner_cycles WHERE trading_date = ?", (DAY,)).fetchone()[0]
        assert status == "running" and t["symbol"] in before
        second = Runner(gt, state)
        s = json.loads(second.expect("DONE"))
        second.p.wait(60)
        assert s["status"] == "done", s
        o = orders()
        refs = [r for r, *_ in o]
        assert len(refs) == len(set(refs)), refs                               # no child order sent twice
        assert set(refs_at_kill) <= set(refs)
        execs = gt.call(lambda gw: [(e.exec_id, e.shares, e.order_ref) for e in gw.executions() if e.client_id == 1])
        with FillJournal(state) as j:
            rows = j.conn.execute("SELECT symbol, parent_ref, quantity, status FROM runner_targets WHERE trading_date = ?", (DAY,)).fetchall()
            attempts, advanced = j.conn.execute("SELECT attempts, period_advanced FROM runner_cycles WHERE trading_date = ?", (DAY,)).fetchone()
            period = j.conn.execute("SELECT value FROM risk_state WHERE key = 'period'").fetchone()
            journal_ids = set(j.fills().exec_id)
        assert journal_ids == {e for e, *_ in execs}
        for sym, ref, qty, st in rows:
            assert st in ("done", "none") and (ref is None or before.get(sym) in (None, ref)), (sym, ref, before)
            if ref: assert sum(q for _, q, r in execs if (r or "").startswith(ref + ":")) <= qty
        assert (attempts, advanced) == (2, 1) and period is not None and json.loads(period[0]) == 1
    finally:
        for r in (first, second):
            if r is not None: r.kill()
        gt.stop()


@pytest.mark.slow
def test_runner_killed_mid_roll_and_restarted_finishes_the_roll_without_a_leg_twice(isolated_env):
    "SIGKILL while the roll's old leg (ZOZ6) works; the restart resumes the same legs: December flat, nothing sent twice."
    from ib_async import IB, LimitOrder, Future
    from hydra_nb.gateway_server import book_of
    state = isolated_env / "state"; state.mkdir()
    day = "2026-11-20"                                                        # ZO's roll window opens (FND 2026-11-30)
    clock = SimClock(mode="accelerated", start=datetime(2026, 11, 20, 14, 40, tzinfo=timezone.utc), time_scale=SCALE)
    gt = GatewayThread(port=0, seed=21, clock=clock).start()
    c = gt.call(lambda gw: next(x for x in gw.contracts if x.local_symbol == "ZOZ6"))
    ask = gt.call(lambda gw: gw.market.quote(book_of(gw, c)).ask)
    ib = IB(); ib.connect("127.0.0.1", gt.port, clientId=9, timeout=10)       # another client of the account holds 3 December
    t = ib.placeOrder(Future(conId=c.con_id, exchange=c.exchange), LimitOrder("BUY", 3, round(ask + 8 * c.tick, 4)))
    end = time.monotonic() + 10
    while t.orderStatus.filled < 3 and time.monotonic() < end: ib.sleep(0.02)
    ib.disconnect()
    orders = lambda: gt.call(lambda gw: [(o.order_ref, o.status, o.filled, o.total_qty) for o in gw.orders.values() if o.client_id == 1])
    first = second = None
    try:
        first = Runner(gt, state, day=day, symbols="ZO")
        first.expect("READY")
        wait_until(lambda: any(r.startswith("R20261120-ZOZ6.OUT:") for r, *_ in orders()), "the roll's old leg at the gateway")
        first.kill()
        refs_at_kill = [r for r, *_ in orders()]
        second = Runner(gt, state, day=day, symbols="ZO")
        s = json.loads(second.expect("DONE"))
        second.p.wait(60)
        assert s["status"] == "done", s
        refs = [r for r, *_ in orders()]
        assert len(refs) == len(set(refs)) and set(refs_at_kill) <= set(refs), refs      # no child order sent twice
        execs = gt.call(lambda gw: [(e.exec_id, e.shares, e.order_ref) for e in gw.executions() if e.client_id == 1])
        held = gt.call(lambda gw: {p.contract.local_symbol: p.qty for p in gw.ledger.positions.values() if p.qty})
        with FillJournal(state) as j:
            rolls = j.conn.execute("SELECT roll_ref, status, position, in_quantity FROM runner_rolls").fetchall()
            target = j.conn.execute("SELECT target FROM runner_targets WHERE trading_date = ? AND symbol = 'ZO'", (day,)).fetchone()[0]
            journal_ids = set(j.fills().exec_id)
        assert rolls == [("R20261120-ZOZ6", "done", 3, 3)], rolls
        for leg in ("R20261120-ZOZ6.OUT:", "R20261120-ZOZ6.IN:"):
            assert sum(q for _, q, r in execs if (r or "").startswith(leg)) == 3, (leg, execs)   # each leg filled once, in full
        assert journal_ids == {e for e, *_ in execs}
        assert held.get("ZOZ6", 0) == 0 and held.get("ZOH7", 0) == target, (held, target)
    finally:
        for r in (first, second):
            if r is not None: r.kill()
        gt.stop()
