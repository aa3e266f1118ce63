"""Exchange holidays and early closes over real sockets, seen by an UNMODIFIED ib_async client: Thanksgiving 2026.

Thursday 2026-11-26 CBOT (ZO) and CME (HE) are closed all day; Friday 2026-11-27 their day sessions close early
(ZO 12:00, HE 12:05 US/Central; pandas_market_calendars' CBOT_Agriculture and CMEGlobex_Livestock). The gateway lists
`20261126:CLOSED`, holds an order placed on the holiday (399, PreSubmitted), serves no daily bar for it; the runner runs
Wednesday and Friday and no cycle on Thursday, and the gate's continuity runs through."""
import asyncio, contextlib
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo
from ib_async import IB, Future, LimitOrder
from hydra_nb.broker import BrokerGateway, TradingSession, sim_settings
from hydra_nb.config import SYMBOL_CALENDARS, load_settings
from hydra_nb.gate import check_days, evaluate_gate
from hydra_nb.gateway_sim import GatewaySim
from hydra_nb.journal import FillJournal
from hydra_nb.market import DEFAULT_INSTRUMENTS, SimClock
from hydra_nb.runner import PaperTradingRunner, cycles_frame
from test_gateway_sessions import crossing, fut, statuses, until

CT = ZoneInfo("America/Chicago")


def nov(day, h, mi=0): return datetime(2026, 11, day, h, mi, tzinfo=CT)


@contextlib.asynccontextmanager
async def client_at(start):
    async with GatewaySim(port=0, seed=3, clock=SimClock("stepped", start=start)) as gw:
        ib = IB()
        await ib.connectAsync("127.0.0.1", gw.port, clientId=1, timeout=10, raiseSyncErrors=True)
        errs = []
        ib.errorEvent += lambda reqId, code, msg, contract: errs.append((reqId, code, msg))
        try: yield gw, ib, errs
        finally: ib.disconnect()


def test_the_simulators_instruments_use_the_runners_calendars():
    "The runner and the gate read config.SYMBOL_CALENDARS without importing the simulator: the two must not drift."
    assert {k: i.calendar for k, i in DEFAULT_INSTRUMENTS.items()} == SYMBOL_CALENDARS


async def test_contract_details_list_thanksgiving_closed_and_the_early_close():
    async with client_at(nov(25, 14)) as (gw, ib, errs):                   # Wednesday afternoon
        for sym, early in (("ZO", "1200"), ("HE", "1205")):
            [cd, *_] = await ib.reqContractDetailsAsync(Future(symbol=sym, exchange=gw.market.instruments[sym].exchange))
            assert "20261126:CLOSED" in cd.tradingHours.split(";") and "20261126:CLOSED" in cd.liquidHours.split(";"), cd.tradingHours
            assert f"20261127:0830-20261127:{early}" in cd.liquidHours.split(";"), cd.liquidHours
            s = TradingSession.from_ib(cd.liquidHours, cd.timeZoneId)     # what the runner's session check reads
            assert s.why_not(nov(26, 9), 60) and "closed" in s.why_not(nov(26, 9), 60)
            assert s.why_not(nov(27, 9), 40 * 60) is None
            assert "session closes at 12:0" in s.why_not(nov(27, 11, 50), 40 * 60)


async def test_an_order_placed_on_thanksgiving_gets_399_and_waits():
    async with client_at(nov(26, 10)) as (gw, ib, errs):                   # Thursday 10:00: a holiday, not a session
        assert not gw.market.session_open("HE")
        t = ib.placeOrder(fut(gw, "HE"), LimitOrder("BUY", 1, crossing(gw, "HE", "BUY")))
        await until(lambda: t.orderStatus.status == "PreSubmitted", what="PreSubmitted")
        [(rid, code, msg)] = [e for e in errs if e[0] == t.order.orderId]
        assert code == 399 and msg.endswith("until 2026-11-27 08:30:00 US/Central"), msg
        gw.step(3 * 3600); await asyncio.sleep(0.05)                       # 13:00 Thursday: still held
        assert t.orderStatus.status == "PreSubmitted" and t.orderStatus.filled == 0
        gw.step(20 * 3600); await until(lambda: t.orderStatus.filled == 1, what="fill on Friday")   # Friday 09:00
        assert statuses(t)[-2:] == ["Submitted", "Filled"]


async def test_daily_bars_skip_thanksgiving():
    async with client_at(nov(30, 14)) as (gw, ib, errs):                   # the Monday after
        bars = await ib.reqHistoricalDataAsync(fut(gw, "ZO"), "", "10 D", "1 day", "TRADES", useRTH=True)
        days = [str(b.date) for b in bars]
        assert "2026-11-26" not in days and days[-3:] == ["2026-11-25", "2026-11-27", "2026-11-30"], days
        old = await ib.reqHistoricalDataAsync(fut(gw, "HE"), "20261127 23:59:59 US/Central", "3 D", "1 day", "TRADES", useRTH=True)
        assert [str(b.date) for b in old] == ["2026-11-24", "2026-11-25", "2026-11-27"]


async def test_the_runner_steps_across_thanksgiving_week(tmp_path):
    "Wed, Fri (an early close: every order over before 12:00), Mon: no cycle and no row on Thursday; the gate's run holds."
    st = load_settings(env={}, cwd=tmp_path).replace("paths", state_dir=Path(tmp_path))
    st = st.replace("orders", patience_seconds=6.0, twap_duration_minutes=3.0).replace("risk", max_position=1.0)
    start = nov(25, 8, 45).astimezone(timezone.utc)
    async with GatewaySim(port=0, seed=5, clock=SimClock(mode="accelerated", start=start, time_scale=60)) as gw:
        st = sim_settings(st, gw.port)
        r = PaperTradingRunner(st, broker=BrokerGateway(st, journal=FillJournal(tmp_path), clock=gw.clock, backoff_initial=0.05))
        await r.start()
        try:
            out = await r.run_days(3, settle=0.1)
            assert [s["trading_date"] for s in out] == ["2026-11-25", "2026-11-27", "2026-11-30"], out
            assert all(s["status"] == "done" for s in out), [(s["trading_date"], s.get("failure"), s.get("reason")) for s in out]
            assert r.cycle_row(date(2026, 11, 26)) is None
            fri = [o for o in gw.orders.values() if o.order_ref.startswith("D20261127-")]
            assert fri, "Friday traded nothing"
            for sym in {o.order_ref.split("-")[1].split(":")[0] for o in fri}:
                early = nov(27, 12, 0 if sym == "ZO" else 5)
                done = [e.time for e in gw.executions() if e.order_ref.startswith(f"D20261127-{sym}")]
                assert all(t <= early for t in done), (sym, done)
            again = await r.run_cycle(date(2026, 11, 26))                 # the cron fires on weekdays: the runner says why not
            assert again["status"] == "skipped" and again["skipped"].startswith("market holiday"), again
        finally:
            await r.stop()
    with FillJournal(tmp_path) as j: cyc = cycles_frame(j.conn)
    assert check_days(cyc.assign(failure=cyc.failure.fillna("")), need=3).value == 3.0   # Wed-Fri-Mon: one unbroken run
    assert evaluate_gate(tmp_path, min_days=3)["days"].passed


async def test_a_short_rehearsal_across_thanksgiving_runs_trading_days(tmp_path):
    from hydra_nb.rehearsal import Scenario, rehearse
    sc = Scenario(days=4, regime_switch_day=None, disconnects=0, start=nov(23, 8, 45).astimezone(timezone.utc))
    res = await rehearse(sc, state_dir=tmp_path, progress=False)
    assert [s["trading_date"] for s in res.summaries] == ["2026-11-23", "2026-11-24", "2026-11-25", "2026-11-27"]
    assert all(s["status"] == "done" for s in res.summaries), [(s["trading_date"], s.get("failure"), s.get("reason")) for s in res.summaries]
    assert res.gate["days"].value == 4.0, res.gate["days"]


async def test_on_the_early_close_a_cycle_that_would_outlast_the_session_routes_nothing_there(tmp_path):
    "Friday 11:57 with a 4-minute horizon: ZO closes at 12:00 (recorded market_closed, no ZO order), HE at 12:05 (it trades)."
    from datetime import time as dtime
    st = load_settings(env={}, cwd=tmp_path).replace("paths", state_dir=Path(tmp_path)).replace("risk", max_position=1.0)
    st = st.replace("orders", patience_seconds=6.0, twap_duration_minutes=3.0).replace("schedule", daily_cycle_time=dtime(11, 57))
    async with GatewaySim(port=0, seed=5, clock=SimClock(mode="accelerated", start=nov(27, 11, 50).astimezone(timezone.utc), time_scale=60)) as gw:
        st = sim_settings(st, gw.port)
        r = PaperTradingRunner(st, broker=BrokerGateway(st, journal=FillJournal(tmp_path), clock=gw.clock, backoff_initial=0.05))
        await r.start()
        try:
            [s] = await r.run_days(1, settle=0.1)
            assert s["trading_date"] == "2026-11-27" and s["failure"] == "market_closed", s
            assert "ZO: ZO's orders needs 4.0 min but the session closes at 12:00 CST" in s["reason"] and "HE" not in s["closed"], s["reason"]
            assert not [o for o in gw.orders.values() if o.order_ref.startswith("D20261127-ZO")]
            assert "HE" in s["targets"]
        finally:
            await r.stop()
