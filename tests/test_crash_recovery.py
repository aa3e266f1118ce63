"""Crash recovery: a process running a TWAP is killed with SIGKILL mid-way and restarted on the same state directory.

The embedded gateway runs in this process (a `GatewayThread`, accelerated clock), so it outlives the client; the client
is `tests/crash_client.py`, a separate process building the production rig (FillJournal, BrokerGateway, RiskGate,
OrderManager) on the state directory and routing one TWAP under a fixed parent_ref. The test watches the gateway's orders
and kills the client (SIGKILL) once at least two slices are at the gateway but not the last; then it runs the same client
again (same parent_ref, client id and state directory) to completion and checks, against the gateway's own records:
  - every slice was placed exactly once (one gateway order per `parent:slice:`), order refs unique, all orders terminal;
  - the journal's execIds are exactly the gateway's executions for the client, none twice; filled quantities agree;
  - the parent's arrival context in the journal is the one decided before the crash;
  - the persisted peak equity, the start-of-day equity and the circuit breakers' state are as before the restart.
Every wait is on a condition with a generous timeout (no wall-clock bound decides the outcome); the client is killed in a
`finally`.
"""
import json, os, queue, signal, subprocess, sys, threading, time
from collections import Counter
from pathlib import Path
import pytest

from hydra_nb.broker import BrokerGateway, sim_settings
from hydra_nb.config import load_settings
from hydra_nb.gateway_sim import GatewayThread
from hydra_nb.core import slice_of
from hydra_nb.journal import FillJournal
from hydra_nb.market import SimClock
from hydra_nb.risk import CircuitBreakerManager

CLIENT = Path(__file__).with_name("crash_client.py")
SCALE = 60.0                   # simulated seconds per wall second: the 10-minute TWAP takes ~10 wall seconds
PARENT, QTY, SLICES, HORIZON_MIN = "crash-1", 10, 5, 10.0
CLIENT_ID = 1
SEEDED_PEAK = 1_020_000.0      # a peak from "an earlier day", above any equity this run can reach (cash is 1,000,000)
WAIT = 120.0                   # generous: a loaded 2-core CI machine


class Client:
    "A crash_client.py subprocess whose stdout lines arrive on a queue."
    def __init__(self, port, state_dir, gt):
        sim_epoch, wall_epoch = gt.call(lambda gw: (gw.clock.time(), time.time()))
        cmd = [sys.executable, str(CLIENT), "--port", str(port), "--state-dir", str(state_dir), "--parent", PARENT,
               "--qty", str(QTY), "--slices", str(SLICES), "--horizon-min", str(HORIZON_MIN), "--time-scale", str(SCALE),
               "--sim-epoch", repr(sim_epoch), "--wall-epoch", repr(wall_epoch), "--client-id", str(CLIENT_ID)]
        self.p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
        self.lines, self.err = queue.Queue(), []
        threading.Thread(target=self._pump, args=(self.p.stdout, self.lines.put), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.p.stderr, self.err.append), daemon=True).start()

    @staticmethod
    def _pump(f, put):
        for line in f: put(line.rstrip("\n"))

    def expect(self, prefix, timeout=WAIT) -> str:
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            try: line = self.lines.get(timeout=max(0.05, min(left, 1.0)))
            except queue.Empty:
                if self.p.poll() is not None and self.lines.empty():
                    raise AssertionError(f"client exited ({self.p.returncode}) before {prefix!r}:\n" + "\n".join(self.err[-30:]))
                if left <= 0: raise AssertionError(f"no {prefix!r} from the client within {timeout:g} s:\n" + "\n".join(self.err[-30:]))
                continue
            if line.startswith(prefix): return line

    def kill(self):
        if self.p.poll() is None:
            os.kill(self.p.pid, signal.SIGKILL)
        self.p.wait(30)


def gw_orders(gt):
    "The gateway's orders of our client: [(ref, status, filled, total)]."
    return gt.call(lambda gw: [(o.order_ref, o.status, o.filled, o.total_qty)
                               for o in gw.orders.values() if o.client_id == CLIENT_ID])

def gw_execs(gt):
    return gt.call(lambda gw: [(e.exec_id, e.shares, e.order_ref) for e in gw.executions() if e.client_id == CLIENT_ID])

def slices_placed(orders) -> set:
    return {slice_of(r)[0] for r, *_ in orders if slice_of(r) is not None}

def wait_until(pred, what, timeout=WAIT, every=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        v = pred()
        if v: return v
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")

def broker_state(state_dir) -> dict:
    with FillJournal(state_dir) as j:
        return {k: float(v) for k, v in j.conn.execute("SELECT key, value FROM broker_state")}

def breaker_status(state_dir) -> dict:
    with FillJournal(state_dir) as j:
        st = load_settings(env={}, cwd=state_dir)
        return CircuitBreakerManager.from_settings(st.risk, db=j.conn).status()


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", ["slice_working", "between_slices"])
def test_twap_killed_and_restarted(isolated_env, kill_at):
    state = Path(os.environ["HYDRA_STATE_DIR"]); state.mkdir(parents=True, exist_ok=True)
    gt = GatewayThread(port=0, seed=11, clock=SimClock(mode="accelerated", time_scale=SCALE)).start()
    first = second = None
    try:
        # -- persisted state from "earlier": a breaker that tripped and re-armed, a peak equity above today's --------
        st = load_settings(env={}, cwd=state)
        with FillJournal(state) as j:
            BrokerGateway(sim_settings(st, gt.port), journal=j)              # creates the broker's tables, connects nothing
            j.conn.execute("INSERT INTO broker_state VALUES ('peak_equity', ?, '2026-01-02T20:00:00.000000+00:00')",
                           (repr(SEEDED_PEAK),)); j.conn.commit()
            cbm = CircuitBreakerManager.from_settings(st.risk, db=j.conn)
            assert [t.name for t in cbm.check(equity=900_000.0, peak_equity=1_000_000.0).tripped] == ["drawdown"]
            cbm.advance_period(); cbm.advance_period()                       # TRIGGERED -> COOLDOWN -> ACTIVE
            assert not cbm.blocking and cbm.breakers["drawdown"].trip_count == 1
        breakers_before = breaker_status(state)

        # -- run 1: killed mid-way ---------------------------------------------------------------------------------
        first = Client(gt.port, state, gt)
        first.expect("READY")
        if kill_at == "slice_working":                 # the second slice is at the gateway (most likely still working)
            wait_until(lambda: 1 in slices_placed(gw_orders(gt)), "slice 1 at the gateway")
        else:                                          # the second slice finished, the third not yet sent (if we are quick)
            def between():
                o = gw_orders(gt)
                s1 = [x for x in o if slice_of(x[0])[0] == 1]
                return 2 in slices_placed(o) or (s1 and all(x[1] in ("Filled", "Cancelled") for x in s1))
            wait_until(between, "slice 1 done")
        first.kill()
        at_kill = gw_orders(gt)
        placed = slices_placed(at_kill)
        assert 2 <= len(placed) < SLICES and SLICES - 1 not in placed, at_kill
        assert not any(l.startswith("DONE") for l in list(first.lines.queue)), "run 1 finished before the kill"
        if kill_at == "slice_working":                 # give the orphaned order time to fill while nobody listens
            try: wait_until(lambda: all(s in ("Filled", "Cancelled") for _, s, *_ in gw_orders(gt)), "fill while down", 10.0)
            except AssertionError: pass                # not needed: then the restart resumes it (a modify in place)
        with FillJournal(state) as j: missed = {e for e, *_ in gw_execs(gt)} - j.exec_ids()   # fills made while away
        parent_before = _parent(state)
        state_before = broker_state(state)
        assert parent_before is not None and parent_before["quantity"] == QTY

        # -- run 2: the same parent, client id and state directory, to completion ------------------------------------
        second = Client(gt.port, state, gt)
        ready = second.expect("READY")
        assert int(ready.split("adopted=")[1]) >= len(placed) - (1 if kill_at == "between_slices" else 0), (ready, at_kill)
        rep = json.loads(second.expect("DONE", timeout=3 * WAIT)[5:])
        assert second.p.wait(WAIT) == 0, second.err[-30:]

        # -- the gateway's view: every slice once, nothing left working ----------------------------------------------
        orders = gw_orders(gt)
        refs = [r for r, *_ in orders]
        assert len(refs) == len(set(refs)), f"duplicate orderRefs at the gateway: {refs}"
        assert all(r.startswith(PARENT + ":") for r in refs), refs
        per_slice = Counter(slice_of(r)[0] for r in refs)
        assert per_slice == Counter(range(SLICES)), f"gateway orders per slice {dict(per_slice)} (each slice exactly once)"
        assert all(s in ("Filled", "Cancelled") for _, s, *_ in orders), orders
        gw_filled = sum(f for _, _, f, _ in orders)

        # -- the journal: exactly the gateway's executions, once ---------------------------------------------------
        ex = gw_execs(gt)
        assert len({e for e, *_ in ex}) == len(ex), "duplicate execIds at the gateway"
        with FillJournal(state) as j:
            fills = j.fills()
            summary = j.parent_summary(PARENT)
        assert len(fills) == fills.exec_id.nunique(), "an execution journaled twice"
        assert set(fills.exec_id) == {e for e, *_ in ex}, "journal execIds differ from the gateway's executions"
        assert missed <= set(fills.exec_id)                                      # recovered by the resync
        assert fills.quantity.sum() == sum(q for _, q, _ in ex) == gw_filled == summary["filled"] == rep["filled"]
        assert (fills.arrival_mid == parent_before["arrival_mid"]).all()        # every fill carries the decided context
        if rep["status"] == "filled": assert gw_filled == QTY, rep
        else:                                            # a remainder must be reported as such, with every order terminal
            assert rep["status"] == "partial" and 0 < gw_filled < QTY, rep

        print(f"[{kill_at}] at kill: {at_kill}; restart {ready}; report {rep['status']} {rep['filled']:g}; "
              f"gateway orders {orders}; {len(ex)} executions, {len(missed)} made while down")

        # -- persisted state intact ----------------------------------------------------------------------------------
        assert _parent(state) == parent_before, "the parent's arrival context changed across the restart"
        state_after = broker_state(state)
        assert state_before["peak_equity"] == SEEDED_PEAK and state_after["peak_equity"] == SEEDED_PEAK, (state_before, state_after)
        sod = {k: v for k, v in state_before.items() if k.startswith("sod_equity:")}
        assert sod and all(state_after[k] == v for k, v in sod.items()), (state_before, state_after)
        breakers_after = breaker_status(state)
        for k in ("breakers", "period", "halted", "halt_reason"):
            assert breakers_after[k] == breakers_before[k], (k, breakers_before[k], breakers_after[k])
        assert breakers_after["peak_equity"] == SEEDED_PEAK                      # the breakers saw the persisted peak
    finally:
        for c in (first, second):
            if c is not None: c.kill()
        gt.stop()


def _parent(state_dir):
    with FillJournal(state_dir) as j: return j.parent(PARENT)
