"""The service in this process against the embedded gateway on an accelerated clock (60 simulated seconds per second):
a gateway down at start-up is waited for (and alerted once down long enough), a cycle that fails is retried inside its
session with each attempt's reason recorded, the kill switch thrown from another connection is alerted, and the event loop stays responsive (a 10 ms heartbeat on the loop keeps
ticking within 50 ms) through a whole cycle: the runner's, broker's and journal's SQLite writes do not stall it."""
import asyncio, sqlite3, time
from datetime import date, datetime, timezone

import pytest

from hydra_nb.alerts import Alerter
from hydra_nb.broker import BrokerGateway, sim_settings
from hydra_nb.config import load_settings
from hydra_nb.gateway_sim import GatewaySim
from hydra_nb.journal import FillJournal
from hydra_nb.market import SimClock
from hydra_nb.risk import CircuitBreakerManager
from hydra_nb.runner import PaperTradingRunner
from hydra_nb.service import Service, attempts_of

DAY = date(2026, 10, 19)
START = datetime(2026, 10, 19, 13, 59, 30, tzinfo=timezone.utc)     # 08:59:30 in Chicago, the cycle at 09:00


def settings(tmp_path, port):
    st = load_settings(env={}, cwd=tmp_path).replace("paths", state_dir=tmp_path / "state")
    st = st.replace("orders", patience_seconds=20.0, twap_duration_minutes=10.0, twap_participation_threshold=0.00001)
    st = st.replace("alerts", disconnect_minutes=2.0, min_interval_minutes=0.0).replace("service", retry_minutes=2.0, heartbeat_minutes=5.0)
    return sim_settings(st.replace("risk", max_position=1.0), port)


def service(st, clock, sent, lines):
    j = FillJournal(st.state_dir)
    r = PaperTradingRunner(st, broker=BrokerGateway(st, journal=j, clock=clock, backoff_initial=0.1), journal=j, connect_timeout=30.0)
    a = Alerter(st.alerts, r.conn, send=lambda k, title, body: (sent.append(title), (True, ""))[1], now=r.now)
    return Service(r, a, out=lines.append)


async def until(pred, what, timeout=120.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred(): return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
async def test_gateway_down_at_start_is_waited_for_and_a_failed_cycle_is_retried(tmp_path):
    clock = SimClock(mode="accelerated", start=START, time_scale=60.0)
    async with GatewaySim(port=0, seed=5, clock=clock) as gw:
        gw.faults.refuse_connections(4.0)                                    # 4 simulated minutes: longer than disconnect_minutes
        st, sent, lines = settings(tmp_path, gw.port), [], []
        svc = service(st, clock, sent, lines)
        calls, real = [], svc.runner.broker.daily_bars
        async def flaky(*a, **k):
            calls.append(clock.now())
            if len(calls) == 1: raise RuntimeError("the bars feed broke")
            return await real(*a, **k)
        svc.runner.broker.daily_bars = flaky
        task = asyncio.ensure_future(svc.run(tick_seconds=0.2))
        try:
            await until(lambda: (row := svc.runner.cycle_row(DAY)) is not None and row["status"] == "done", "the day done")
            m = CircuitBreakerManager.from_settings(st.risk, db=st.state_dir / "hydra.db")      # `hydra kill`, as another process does it
            m.kill("operator says stop"); m.close()
            await until(lambda: "kill switch thrown: operator says stop" in sent, "the kill switch alert", 30)
        finally:
            svc.stop("test"); code = await task
        assert code == 0
        att = attempts_of(sqlite3.connect(st.state_dir / "hydra.db", isolation_level=None), DAY)
    assert [(n, s, f) for n, _, s, f in att] == [(1, "failed", "error"), (2, "done", "")], att
    assert att[1][1] == "retry 2/3 after error: RuntimeError: the bars feed broke"
    assert (calls[1] - calls[0]).total_seconds() >= 120                       # retry_minutes later, on the service's clock
    assert sent[0].startswith("hydra started") and sent[-1] == "hydra stopped: test"
    down = [t for t in sent if "down for" in t]
    assert len(down) == 1 and any("back after" in t for t in sent), sent       # once per outage, then recovered
    assert "cycle 2026-10-19 failed (attempt 1): error" in sent
    assert [l for l in lines if l.startswith("cycle 2026-10-19 failed (attempt 1) error: RuntimeError: the bars feed broke")]
    assert [l for l in lines if l.startswith("cycle 2026-10-19 done (attempt 2)")]


@pytest.mark.slow
async def test_the_event_loop_stays_responsive_during_a_cycle(tmp_path):
    clock = SimClock(mode="accelerated", start=START.replace(minute=59, second=59), time_scale=60.0)
    async with GatewaySim(port=0, seed=5, clock=clock) as gw:
        st = settings(tmp_path, gw.port)
        j = FillJournal(st.state_dir)
        r = PaperTradingRunner(st, broker=BrokerGateway(st, journal=j, clock=clock, backoff_initial=0.1), journal=j, connect_timeout=30.0)
        await r.start()
        lags, stop = [], asyncio.Event()
        async def heartbeat():
            while not stop.is_set():
                t = time.perf_counter(); await asyncio.sleep(0.01); lags.append(time.perf_counter() - t - 0.01)
        hb = asyncio.ensure_future(heartbeat())
        try: s = await r.run_cycle(DAY)
        finally:
            stop.set(); await hb; await r.stop()
    assert s["status"] == "done" and s["fills"] > 0, s
    lags.sort()
    worst, p99 = lags[-1], lags[int(0.99 * (len(lags) - 1))]
    print(f"event loop lag over {len(lags)} ticks of one cycle: median {lags[len(lags)//2]*1e3:.2f} ms, p99 {p99*1e3:.2f} ms, max {worst*1e3:.2f} ms")
    assert worst < 0.050, f"the loop stalled {worst*1e3:.1f} ms during a cycle"


@pytest.mark.slow
async def test_an_accelerated_clock_refuses_a_gateway_that_is_not_its_simulator(tmp_path):
    "A gateway on the wall clock (as a real IB Gateway is) under a service on an accelerated clock: exit 1 before any cycle, said in the alert."
    clock = SimClock(mode="accelerated", start=START, time_scale=60.0)
    async with GatewaySim(port=0, seed=5, clock=SimClock(mode="real")) as gw:
        st, sent, lines = settings(tmp_path, gw.port), [], []
        svc = service(st, clock, sent, lines)
        await until(lambda: svc.runner.now() >= datetime(2026, 10, 19, 14, 0, tzinfo=timezone.utc), "the cycle time", 30)
        code = await asyncio.wait_for(svc.run(tick_seconds=0.2), 60)
    assert code == 1
    db = sqlite3.connect(st.state_dir / "hydra.db", isolation_level=None)
    assert db.execute("SELECT COUNT(*) FROM runner_cycles").fetchone()[0] == 0
    assert "it is not the hydra gateway-sim the clock mirrors" in sent[-1] and sent[-1].startswith("hydra stopped: --sim-clock: the gateway's time"), sent
