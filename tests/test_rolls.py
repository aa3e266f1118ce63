"""Futures rolls over real sockets: the runner moves a month held in its roll window into the month to trade.

ZO (CBOT oats) is physically delivered: December 2026's first notice day is Monday 2026-11-30, so with the shipped rule
(5 business days before FND, Thanksgiving no business day) its roll window opens on Friday 2026-11-20 and its hard stop is
Friday 2026-11-27. The account holds ZOZ6 (bought by another client of the same account); the runner trades ZO only.
Checked against the gateway's own records: the position moved, each leg sent and journaled once, nothing else."""
import asyncio, contextlib, json, sys, time
from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo
import pytest
from ib_async import IB, Future, LimitOrder

from hydra_nb.broker import BrokerGateway, sim_settings
from hydra_nb.config import load_settings
from hydra_nb.gateway_server import book_of
from hydra_nb.gateway_sim import GatewaySim, GatewayThread
from hydra_nb.journal import FillJournal
from hydra_nb.market import SimClock
from hydra_nb.runner import PaperTradingRunner

CT = ZoneInfo("America/Chicago")
FAST = dict(patience_seconds=6.0, twap_duration_minutes=3.0)


def nov(day, h, mi=0): return datetime(2026, 11, day, h, mi, tzinfo=CT).astimezone(timezone.utc)


def month(gw, local):
    return next(c for c in gw.contracts if c.local_symbol == local)


async def hold(gw, local, qty, client_id=9):
    "Another client of the account buys `qty` of month `local` through the far touch (the position the runner finds)."
    c = month(gw, local)
    ib = IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=client_id, timeout=10)
    try:
        q = gw.market.quote(book_of(gw, c))
        t = ib.placeOrder(Future(conId=c.con_id, exchange=c.exchange), LimitOrder("BUY", qty, round(q.ask + 8 * c.tick, 4)))
        end = time.monotonic() + 10
        while t.orderStatus.filled < qty:
            assert time.monotonic() < end, "the position was not bought"
            await asyncio.sleep(0.01)
    finally:
        ib.disconnect()


def ledger(gw):
    return {p.contract.local_symbol: p.qty for p in gw.ledger.positions.values() if p.qty}


@contextlib.asynccontextmanager
async def zo_runner(d, start, seed=11, schedule=None, **risk):
    st = load_settings(env={}, cwd=d).replace("paths", state_dir=Path(d)).replace("orders", **FAST)
    st = st.replace("risk", max_position=1.0, **risk).replace("trading", symbols=["ZO"])
    if schedule: st = st.replace("schedule", daily_cycle_time=schedule)
    async with GatewaySim(port=0, seed=seed, clock=SimClock(mode="accelerated", start=start, time_scale=60)) as gw:
        st = sim_settings(st, gw.port)
        r = PaperTradingRunner(st, broker=BrokerGateway(st, journal=FillJournal(d), clock=gw.clock, backoff_initial=0.05))
        events = []
        r.listeners.append(lambda kind, p: events.append((kind, p)))
        yield gw, r, events
        await r.stop()


def leg_fills(r, ref):
    return r.conn.execute("SELECT COALESCE(SUM(quantity), 0) FROM journal_fills WHERE order_ref LIKE ?", (ref + ":%",)).fetchone()[0]


def assert_rolled_once(gw, r, day, held):
    "One roll of ZOZ6 into ZOH7 on `day`, done; each leg sent once and journaled once; the symbol's target held in March."
    [row] = r.rolls(day).values()
    assert (row["from_local"], row["to_local"], row["position"], row["status"]) == ("ZOZ6", "ZOH7", held, "done"), row
    for leg in (row["out_ref"], row["in_ref"]):
        assert leg_fills(r, leg) == held, (leg, leg_fills(r, leg))          # each leg filled in full, no more (with the execId check below: once)
    refs = [o.order_ref for o in gw.orders.values() if o.client_id == 1]
    assert len(refs) == len(set(refs)), refs                               # no child order sent twice
    gw_ids = {e.exec_id for e in gw.executions() if e.client_id == 1}
    assert set(r.journal.fills().exec_id) == gw_ids                        # no fill lost, none invented
    t = r.targets(day)["ZO"]
    assert t["position_before"] == held                                    # the symbol's position, across months
    assert ledger(gw).get("ZOZ6", 0) == 0 and ledger(gw).get("ZOH7", 0) == t["target"], (ledger(gw), t)


async def test_the_roll_day_moves_the_december_position_into_march(tmp_path):
    async with zo_runner(tmp_path, nov(20, 8, 45)) as (gw, r, events):
        await hold(gw, "ZOZ6", 3)
        await r.start()
        [s] = await r.run_days(1, settle=0.1)
        assert s["status"] == "done" and s["months"] == {"ZO": "ZOH7"}, s
        assert_rolled_once(gw, r, date(2026, 11, 20), 3)
        assert [p["status"] for k, p in events if k == "roll"] == ["done"] and not [k for k, _ in events if k == "roll_failed"]
        assert s["rolls"]["ZO"][0]["kind"] == "roll"
        again = await r.run_cycle(date(2026, 11, 20))                       # a rerun of the day: nothing more
        assert again.get("skipped") == "already done" and len(r.rolls()) == 1


async def test_a_roll_interrupted_by_a_drop_finishes_without_a_leg_twice(tmp_path):
    async with zo_runner(tmp_path, nov(20, 8, 45)) as (gw, r, events):
        await hold(gw, "ZOZ6", 4)
        await r.start()

        async def drop_when_the_old_leg_works():
            while not any(o.order_ref.startswith("R20261120-ZOZ6.OUT:") for o in gw.orders.values()): await asyncio.sleep(0.002)
            gw.faults.drop_all()
        dropper = asyncio.create_task(drop_when_the_old_leg_works())
        [s] = await r.run_days(1, settle=0.1)
        await asyncio.wait_for(dropper, 1)
        assert s["status"] == "done", s
        assert r.broker.counts["reconnects"] >= 1, r.broker.counts
        assert_rolled_once(gw, r, date(2026, 11, 20), 4)


async def test_a_roll_refused_by_risk_fails_with_its_reason_and_the_next_day_finishes_it(tmp_path):
    async with zo_runner(tmp_path, nov(20, 8, 45)) as (gw, r, events):
        await hold(gw, "ZOZ6", 2)
        await r.start()
        r.gate.kill("operator test")                                       # HALTED: only cancels pass
        [s] = await r.run_days(1, settle=0.1)
        [row] = r.rolls(date(2026, 11, 20)).values()
        assert row["status"] == "failed" and "old leg ZOZ6 filled 0 of 2" in row["reason"] and "HALTED" in row["reason"], row
        assert s["failure"] == "rejected" and "the roll into ZOH7 did not finish" in s["reason"], s
        assert not [o for o in gw.orders.values() if o.client_id == 1]      # refused by the gate: nothing reached IB
        assert [p["roll_ref"] for k, p in events if k == "roll_failed"] == ["R20261120-ZOZ6"]
        assert ledger(gw) == {"ZOZ6": 2}
        r.gate.resume()
        [s2] = await r.run_days(1, settle=0.1)                             # Monday 2026-11-23, still before the hard stop
        assert s2["trading_date"] == "2026-11-23" and s2["status"] == "done", s2
        assert_rolled_once(gw, r, date(2026, 11, 23), 2)


async def test_on_the_hard_stop_day_the_roll_closes_december_and_tells_the_operator(tmp_path):
    async with zo_runner(tmp_path, nov(27, 8, 45)) as (gw, r, events):          # Friday 2026-11-27: one business day before FND
        await hold(gw, "ZOZ6", 2)
        await r.start()
        [s] = await r.run_days(1, settle=0.1)
        assert s["status"] == "done", s
        [row] = r.rolls(date(2026, 11, 27)).values()
        assert row["kind"] == "hard_stop" and row["status"] == "done", row
        [(kind, p)] = [e for e in events if e[0] == "roll_hard_stop"]
        assert p["ok"] and "one business day before first notice" in p["message"], p
        assert ledger(gw).get("ZOZ6", 0) == 0


async def test_a_market_closed_on_the_roll_day_rolls_nothing_and_the_next_session_does(tmp_path):
    from datetime import time as dtime
    async with zo_runner(tmp_path, nov(20, 13, 0), schedule=dtime(14, 0)) as (gw, r, events):   # 14:00: after ZO's 13:20 close
        await hold(gw, "ZOZ6", 2)
        await r.start()
        [s] = await r.run_days(1, settle=0.1)
        assert s["failure"] == "market_closed" and not r.rolls(), s
        assert not [o for o in gw.orders.values() if o.client_id == 1]


async def test_a_rehearsal_across_zos_december_roll(tmp_path):
    "2026-11-18 to 2026-11-25: ZO trades December, then March from its roll date; at the end nothing is left in December."
    from hydra_nb.rehearsal import Scenario, rehearse, rolls_line
    sc = Scenario(days=6, regime_switch_day=None, disconnects=1, start=nov(18, 8, 45))
    res = await rehearse(sc, state_dir=tmp_path, progress=False)
    assert all(s["status"] == "done" for s in res.summaries), [(s["trading_date"], s.get("failure"), s.get("reason")) for s in res.summaries]
    months = {s["trading_date"]: s["months"]["ZO"] for s in res.summaries}
    assert months == {"2026-11-18": "ZOZ6", "2026-11-19": "ZOZ6", "2026-11-20": "ZOH7", "2026-11-23": "ZOH7",
                      "2026-11-24": "ZOH7", "2026-11-25": "ZOH7"}, months
    with FillJournal(tmp_path) as j:
        last = j.conn.execute("SELECT target FROM runner_targets WHERE symbol = 'ZO' ORDER BY trading_date DESC LIMIT 1").fetchone()[0]
        journaled = j.conn.execute("SELECT COUNT(*) FROM journal_fills").fetchone()[0]
        rolls = j.conn.execute("SELECT from_local, to_local, status FROM runner_rolls").fetchall() if j.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE name = 'runner_rolls'").fetchone() else []
    assert journaled == res.counts["executions"], (journaled, res.counts["executions"])   # every execution at the gateway journaled once
    assert all(st == "done" for *_, st in rolls), rolls
    held = res.counts["positions"]                                         # the gateway's ledger at the end
    assert "ZOZ6" not in held and held.get("ZOH7", 0) == last, (held, last)
    line = rolls_line(tmp_path)
    assert all(f"{a} -> {b}" in line for a, b, _ in rolls) if rolls else line.endswith("none needed (no month held into its roll window)"), line
    assert res.gate["days"].value == 6.0 and res.gate["errors"].passed, (res.gate["days"], res.gate["errors"])


async def test_a_position_larger_than_one_order_rolls_in_pairs_within_the_cap(tmp_path):
    "max_order_quantity 2 and 5 contracts held: three pairs (2, 2, 1), each decided before its legs, none over the cap."
    async with zo_runner(tmp_path, nov(20, 8, 45), max_order_quantity=2) as (gw, r, events):
        await hold(gw, "ZOZ6", 5)
        await r.start()
        [s] = await r.run_days(1, settle=0.1)
        assert s["status"] == "done", s
        rows = r.rolls(date(2026, 11, 20))
        assert [(k, v["position"], v["status"]) for k, v in rows.items()] == [
            ("R20261120-ZOZ6", 2, "done"), ("R20261120-ZOZ6.1", 2, "done"), ("R20261120-ZOZ6.2", 1, "done")], rows
        assert max(o.total_qty for o in gw.orders.values() if o.client_id == 1) <= 2
        assert ledger(gw).get("ZOZ6", 0) == 0 and ledger(gw).get("ZOH7", 0) == r.targets(date(2026, 11, 20))["ZO"]["target"]


async def test_a_strategy_that_fails_on_the_roll_day_does_not_keep_the_month_from_rolling(tmp_path):
    "The rolls run before any model: the day is the strategy's error, no target is traded, and December still moves to March."
    async with zo_runner(tmp_path, nov(20, 8, 45)) as (gw, r, events):
        await hold(gw, "ZOZ6", 3)
        await r.start()
        async def broken(sym, bars): raise RuntimeError("the user's model blew up")
        r.think = broken
        [s] = await r.run_days(1, settle=0.1)
        assert s["failure"] == "error" and "the user's model blew up" in s["reason"], s
        [row] = r.rolls(date(2026, 11, 20)).values()
        assert row["status"] == "done" and ledger(gw) == {"ZOH7": 3}, (row, ledger(gw))
        assert not [o for o in gw.orders.values() if o.client_id == 1 and o.order_ref.startswith("D")]    # no target traded
