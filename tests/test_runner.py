"""The runner over a real socket: the seed's `runner_daily_cycle` on the embedded gateway, a cycle keyed by its trading
date (rerun, restart with a decided target, a closed market, no connection), and the rehearsal's own counts."""
import asyncio, contextlib, json
from datetime import date, datetime, timezone
from pathlib import Path
import pytest

from hydra_nb.broker import BrokerGateway, sim_settings
from hydra_nb.config import load_settings
from hydra_nb.gateway_sim import GatewaySim
from hydra_nb.journal import FillJournal
from hydra_nb.market import SimClock
from hydra_nb.runner import PaperTradingRunner, parent_ref_for

MONDAY_0900_CT = datetime(2026, 10, 19, 14, 0, tzinfo=timezone.utc)
FAST = dict(patience_seconds=6.0, twap_duration_minutes=3.0)


def settings(d, orders=None, **risk):
    st = load_settings(env={}, cwd=d).replace("paths", state_dir=Path(d)).replace("orders", **{**FAST, **(orders or {})})
    return st.replace("risk", max_position=1.0, **risk)


async def runner_on(gw, d, orders=None, **risk):
    st = sim_settings(settings(d, orders, **risk), gw.port)
    b = BrokerGateway(st, journal=FillJournal(d), clock=gw.clock, backoff_initial=0.05)
    r = PaperTradingRunner(st, broker=b)
    await r.start()
    return r


def gw_refs(gw, client_id=1):
    return [o.order_ref for o in gw.orders.values() if o.client_id == client_id]


@contextlib.asynccontextmanager
async def running(d, seed, start=MONDAY_0900_CT, **kw):
    "A started runner on an embedded gateway (accelerated clock from `start`): yields (gateway, runner); stops both."
    async with GatewaySim(port=0, seed=seed, clock=SimClock(mode="accelerated", start=start, time_scale=60)) as gw:
        r = await runner_on(gw, d, **kw)
        try: yield gw, r
        finally: await r.stop()


async def test_runner_daily_cycle_over_the_embedded_gateway(tmp_path):
    "Connection checked, account read into the breakers, one agent cycle per symbol, targets routed, fills journaled."
    async with running(tmp_path, 3) as (gw, r):
        s = await r.run_cycle()
        day = date(2026, 10, 19)
        assert s["status"] == "done" and s["trading_date"] == str(day), s
        assert s["equity"] == pytest.approx(1_000_000, rel=1e-3) and s["trading_state"] == "ACTIVE"
        assert set(s["agent"]) == {"ZO", "HE"} and all(a["champion"] == 1 for a in s["agent"].values())
        agent_rows = r.conn.execute("SELECT name, COUNT(*) FROM agent_cycles GROUP BY name").fetchall()
        assert dict(agent_rows) == {"HE": 1, "ZO": 1}
        t = r.targets(day)
        traded = [sym for sym, row in t.items() if row["quantity"]]
        assert traded, t
        for sym in traded:
            assert t[sym]["status"] == "done" and t[sym]["parent_ref"] == parent_ref_for(day, sym)
            assert abs(t[sym]["target"]) <= 6                     # [runner] max_contracts
        fills = r.journal.fills()
        gw_execs = {e.exec_id for e in gw.executions() if e.client_id == 1}
        assert set(fills.exec_id) == gw_execs and s["fills"] == len(fills) > 0
        assert r.cycles().iloc[0].status == "done"
        # the breakers' period advanced once for the day, and a second run of the day trades nothing
        period = r.breakers.period
        n_orders = len(gw_refs(gw))
        again = await r.run_cycle(day)
        assert again["skipped"] == "already done" and len(gw_refs(gw)) == n_orders and r.breakers.period == period


async def test_a_restart_finishes_a_decided_target_without_trading_it_twice(tmp_path):
    "The first process decided and started the day's orders, then died; the next one routes the same parents to the end."
    clock = SimClock(mode="accelerated", start=MONDAY_0900_CT, time_scale=60)
    day = date(2026, 10, 19)
    async with GatewaySim(port=0, seed=4, clock=clock) as gw:
        twap = dict(twap_participation_threshold=0.002)          # ZO's target is sliced: there is a mid-way to stop in
        r1 = await runner_on(gw, tmp_path, twap)
        plan = asyncio.get_running_loop().create_future()
        r1.listeners.append(lambda kind, p: plan.done() or kind != "target" or not p["quantity"] or plan.set_result(p))
        task = asyncio.create_task(r1.run_cycle())
        first = await asyncio.wait_for(plan, 60)
        for _ in range(3000):                            # its first child is at the gateway
            if any(r.startswith(first["parent_ref"] + ":") for r in gw_refs(gw)): break
            await asyncio.sleep(0.005)
        task.cancel()                                    # the cycle is stopped mid-way (a kill is tests/test_runner_crash.py)
        with pytest.raises(asyncio.CancelledError): await task
        r1.broker.ib.disconnect(); r1.close(); r1.journal.close()
        with FillJournal(tmp_path) as j:
            rows = dict(j.conn.execute("SELECT symbol, status FROM runner_targets").fetchall())
        assert "routing" in rows.values(), rows
        r2 = await runner_on(gw, tmp_path, twap)
        try:
            s = await r2.run_cycle(day)
            assert s["status"] == "done", s
            t = r2.targets(day)
            assert t[first["symbol"]]["parent_ref"] == first["parent_ref"] and t[first["symbol"]]["status"] == "done"
            refs = gw_refs(gw)
            assert len(refs) == len(set(refs)), refs                 # no child order sent twice
            await asyncio.sleep(0.2)
            for sym, row in t.items():                               # each parent filled at most its quantity
                if row["quantity"]:
                    filled = sum(e.shares for e in gw.executions() if (e.order_ref or "").startswith(row["parent_ref"] + ":"))
                    assert filled <= row["quantity"], (sym, filled, row)
            rows2 = r2.conn.execute("SELECT attempts FROM runner_cycles WHERE trading_date = ?", (str(day),)).fetchone()
            assert rows2[0] == 2
        finally:
            await r2.stop()


async def test_two_callers_of_one_day_run_one_cycle(tmp_path):
    "The panel's button and the scheduler (or a cell) at once: the second waits for the first and finds the day done."
    async with running(tmp_path, 6) as (gw, r):
        a, b = await asyncio.gather(r.run_cycle(), r.run_cycle())
        assert a["status"] == "done" and b.get("skipped") == "already done", (a, b)
        assert r.cycle_row(date(2026, 10, 19))["attempts"] == 1
        refs = gw_refs(gw); assert len(refs) == len(set(refs))


async def test_a_closed_market_is_recorded_and_the_next_cycle_runs(tmp_path):
    "At 14:00 Chicago both ZO and HE are closed: the cycle fails as market_closed, decides nothing, and the next day trades."
    async with running(tmp_path, 5, start=datetime(2026, 10, 19, 19, 0, tzinfo=timezone.utc)) as (gw, r):
        s = await r.run_cycle()
        assert s["status"] == "failed" and s["failure"] == "market_closed", s
        assert "ZO" in s["reason"] and "HE" in s["reason"] and r.targets(date(2026, 10, 19)) == {}
        assert gw_refs(gw) == []
        out = await r.run_days(1, settle=0.1)              # the next cycle: Tuesday 09:00
        assert out[0]["trading_date"] == "2026-10-20" and out[0]["status"] == "done", out[0]


async def test_no_connection_fails_the_cycle_with_its_reason(tmp_path):
    st = load_settings(env={}, cwd=tmp_path).replace("paths", state_dir=Path(tmp_path))
    st = sim_settings(st, 1).replace("ib", connect_timeout=1.0)          # nothing listens on port 1
    r = PaperTradingRunner(st, clock=SimClock(mode="accelerated", start=MONDAY_0900_CT, time_scale=60))
    try:
        s = await r.run_cycle()
        assert s["status"] == "failed" and s["failure"] == "no_connection" and "127.0.0.1:1" in s["reason"], s
        assert r.cycle_row(date(2026, 10, 19))["attempts"] == 1
    finally:
        r.close(); r.journal.close()


def test_the_published_liquid_hours_agree_with_the_simulators_instruments():
    "`hydra status` checks the schedule against config.LIQUID_HOURS without importing the simulator: the two must not drift."
    from hydra_nb.config import LIQUID_HOURS
    from hydra_nb.market import DEFAULT_INSTRUMENTS
    sim = {k: sorted((x.open, x.close, i.time_zone) for x in i.sessions if x.liquid) for k, i in DEFAULT_INSTRUMENTS.items()}
    assert {k: sorted(v) for k, v in LIQUID_HOURS.items()} == sim
