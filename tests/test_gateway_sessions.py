"""Exchange sessions on the embedded IB gateway, seen by an UNMODIFIED ib_async client over a real socket.

CBOT oats (ZO) trade 19:00-07:45 (overnight, opening the evening before its trading day) and 08:30-13:20 US/Central;
CME lean hogs (HE) 08:30-13:05. An order placed while its market is closed gets IB's warning 399 naming the time it
will be placed and stays PreSubmitted until the session opens; then Submitted, and it can fill. Every clock here is
stepped or accelerated from an explicit start, in January (CST, UTC-6), so nothing depends on the wall clock."""
import asyncio, contextlib, time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo
from ib_async import IB, Future, LimitOrder
from hydra_nb.broker import TradingSession
from hydra_nb.gateway_sim import GatewaySim
from hydra_nb.market import SimClock
from wire_check import check_message
from hydra_nb.market import DEFAULT_INSTRUMENTS

CT = ZoneInfo("America/Chicago")


def ct(day, h, mi=0):
    "A January 2026 time in Chicago (Jan 4 is a Sunday, Jan 5 a Monday)."
    return datetime(2026, 1, day, h, mi, tzinfo=CT)


async def until(pred, timeout=10.0, what="condition"):
    t = time.monotonic()
    while not pred():
        if time.monotonic() - t > timeout: raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


@contextlib.asynccontextmanager
async def gateway_at(start, **kw):
    "A stepped gateway whose clock starts at `start`, and a connected client; every message shape sent is checked by both decoders at the end."
    async with GatewaySim(port=0, seed=3, clock=kw.pop("clock", None) or SimClock("stepped", start=start), record_wire=True, **kw) as gw:
        ib = IB()
        await ib.connectAsync("127.0.0.1", gw.port, clientId=1, timeout=10, raiseSyncErrors=True)
        errs = []
        ib.errorEvent += lambda reqId, code, msg, contract: errs.append((reqId, code, msg))
        try:
            yield gw, ib, errs
        finally:
            ib.disconnect()
        seen = set()
        for cid, sv, fields in gw.wire_log:
            key = (sv, fields[0], len(fields))
            if key not in seen: seen.add(key); check_message(fields, sv)


def fut(gw, sym):
    c = next(c for c in gw.contracts if c.symbol == sym)
    return Future(conId=c.con_id, exchange=c.exchange)


def crossing(gw, sym, action, n=4):
    "A limit `n` ticks through the far touch."
    q, tick = gw.market.quote(sym), gw.market.instruments[sym].tick
    return round(q.ask + n * tick if action == "BUY" else q.bid - n * tick, 4)


def statuses(trade):
    "The trade's statuses in order, repeats folded (ib_async logs each fill under the status of the moment)."
    out = []
    for e in trade.log:
        if not out or out[-1] != e.status: out.append(e.status)
    return out


async def test_between_zo_sessions_399_presubmitted_then_submitted_at_0830_and_fills():
    async with gateway_at(ct(6, 8, 0)) as (gw, ib, errs):                # Tuesday 08:00: the overnight closed at 07:45
        assert not gw.market.session_open("ZO")
        t = ib.placeOrder(fut(gw, "ZO"), LimitOrder("BUY", 1, crossing(gw, "ZO", "BUY")))
        await until(lambda: t.orderStatus.status == "PreSubmitted", what="PreSubmitted")
        [(rid, code, msg)] = [e for e in errs if e[0] == t.order.orderId]
        assert (rid, code) == (t.order.orderId, 399)
        assert msg.startswith("Order Message:\nBUY 1 ZO MAR'26\n")
        assert msg.endswith("Warning: your order will not be placed at the exchange until 2026-01-06 08:30:00 US/Central")
        assert [e.errorCode for e in t.log if e.errorCode] == [399]      # ib_async keeps the warning on the trade ...
        assert statuses(t) == ["PendingSubmit", "ValidationError", "PreSubmitted"]   # ... and the status that follows
        gw.step(29 * 60)                                                 # 08:29: still held, nothing filled
        await asyncio.sleep(0.05)
        assert t.orderStatus.status == "PreSubmitted" and t.fills == []
        gw.step(60)                                                      # 08:30: the day session opens
        await until(lambda: t.orderStatus.status == "Filled", what="filled at the open")
        assert statuses(t)[-3:] == ["PreSubmitted", "Submitted", "Filled"]
        assert t.fills[0].execution.time == ct(6, 8, 30).astimezone(timezone.utc)


async def test_held_order_rests_after_the_open_and_fills_later():
    async with gateway_at(ct(6, 8, 0)) as (gw, ib, errs):
        q = gw.market.quote("HE")
        t = ib.placeOrder(fut(gw, "HE"), LimitOrder("SELL", 1, q.ask))  # not marketable: it will rest
        await until(lambda: t.orderStatus.status == "PreSubmitted")
        assert [c for _, c, _ in errs] == [399]
        gw.step(31 * 60)
        await until(lambda: t.orderStatus.status == "Submitted", what="Submitted at 08:30")
        for _ in range(12 * 30):                                         # up to 3 hours, 30 s at a time
            if t.orderStatus.status == "Filled": break
            gw.step(30); await asyncio.sleep(0)
        await until(lambda: t.orderStatus.status == "Filled", what="a fill in the day session")


async def test_zo_overnight_accepts_orders_at_2000_he_is_closed():
    async with gateway_at(ct(6, 20, 0)) as (gw, ib, errs):               # Tuesday 20:00: Wednesday's ZO overnight session
        assert gw.market.session_open("ZO") and not gw.market.session_open("ZO", liquid=True)
        zo = ib.placeOrder(fut(gw, "ZO"), LimitOrder("BUY", 2, crossing(gw, "ZO", "BUY")))
        zo_rest = ib.placeOrder(fut(gw, "ZO"), LimitOrder("BUY", 1, gw.market.quote("ZO").bid))
        he = ib.placeOrder(fut(gw, "HE"), LimitOrder("SELL", 1, crossing(gw, "HE", "SELL")))
        await until(lambda: zo.orderStatus.status == "Filled" and zo_rest.orderStatus.status == "Submitted"
                    and he.orderStatus.status == "PreSubmitted", what="ZO traded, HE held")
        assert statuses(zo) == ["PendingSubmit", "PreSubmitted", "Submitted", "Filled"]
        assert [(r, c) for r, c, _ in errs] == [(he.order.orderId, 399)]
        assert errs[0][2].endswith("until 2026-01-07 08:30:00 US/Central")
        assert {f.execution.time for f in zo.fills} == {ct(6, 20).astimezone(timezone.utc)}
        gw.step(12 * 3600 + 31 * 60)                                     # Wednesday 08:31
        await until(lambda: he.orderStatus.status == "Filled", what="HE at its open")
        assert statuses(he)[-3:] == ["PreSubmitted", "Submitted", "Filled"]


async def test_sunday_evening_zo_opens_for_monday_weekend_closed():
    async with gateway_at(ct(4, 18, 0)) as (gw, ib, errs):               # Sunday 18:00: nothing trades yet
        t = ib.placeOrder(fut(gw, "ZO"), LimitOrder("BUY", 1, crossing(gw, "ZO", "BUY")))
        await until(lambda: t.orderStatus.status == "PreSubmitted")
        assert errs[-1][1] == 399 and errs[-1][2].endswith("until 2026-01-04 19:00:00 US/Central")
        gw.step(90 * 60)                                                 # Sunday 19:30: Monday's overnight session
        await until(lambda: t.orderStatus.status == "Filled", what="filled at the Sunday-evening open")
        assert t.fills[0].execution.time == ct(4, 19).astimezone(timezone.utc)
        he = ib.placeOrder(fut(gw, "HE"), LimitOrder("BUY", 1, crossing(gw, "HE", "BUY")))
        await until(lambda: he.orderStatus.status == "PreSubmitted")
        assert errs[-1][1] == 399 and errs[-1][2].endswith("until 2026-01-05 08:30:00 US/Central")


async def test_day_order_from_the_overnight_lives_through_the_day_session():
    async with gateway_at(ct(6, 20, 0)) as (gw, ib, errs):
        px = round(gw.market.quote("ZO").bid - 30 * DEFAULT_INSTRUMENTS["ZO"].tick, 4)
        day = ib.placeOrder(fut(gw, "ZO"), LimitOrder("BUY", 1, px))
        await until(lambda: day.orderStatus.status == "Submitted")
        gw.step(12 * 3600)                                               # Wednesday 08:00: the overnight closed at 07:45
        await asyncio.sleep(0.05)
        assert day.orderStatus.status == "Submitted"                     # the trading day is not over
        while gw.clock.now() < ct(7, 13, 15):                            # through the day session, 5 minutes at a time
            gw.step(300); await asyncio.sleep(0.002)
            assert day.orderStatus.status in ("Submitted", "Filled")     # never expired before the day's close
        gw.step(600)                                                     # 13:25: the trading day is over
        await until(lambda: day.orderStatus.status in ("Cancelled", "Filled"), what="DAY order ended at the close")


async def test_contract_details_trading_and_liquid_hours_exact():
    async with gateway_at(ct(5, 10, 0)) as (gw, ib, errs):               # Monday 10:00
        [d] = await ib.reqContractDetailsAsync(fut(gw, "ZO"))
        assert d.timeZoneId == "America/Chicago"
        assert d.tradingHours == ("20260104:1900-20260105:0745;20260105:0830-20260105:1320;"
                                  "20260105:1900-20260106:0745;20260106:0830-20260106:1320;"
                                  "20260106:1900-20260107:0745;20260107:0830-20260107:1320")
        assert d.liquidHours == "20260105:0830-20260105:1320;20260106:0830-20260106:1320;20260107:0830-20260107:1320"
        [h] = await ib.reqContractDetailsAsync(fut(gw, "HE"))
        assert h.tradingHours == h.liquidHours == "20260105:0830-20260105:1305;20260106:0830-20260106:1305;20260107:0830-20260107:1305"
        s = TradingSession.from_ib(d.liquidHours, d.timeZoneId)          # what the execution path reads: the day session
        assert s.hours_text() == "08:30-13:20 America/Chicago"
        assert s.is_open(ct(5, 10).astimezone(timezone.utc)) and not s.is_open(ct(5, 20).astimezone(timezone.utc))


async def test_accelerated_clock_held_order_released_at_the_open():
    "The real-time case in fast motion: a marketable HE limit placed at night is held (399), then released and filled at 08:30."
    clock = SimClock("accelerated", start=ct(6, 8, 29).replace(second=50), time_scale=2.0)
    async with gateway_at(None, clock=clock, tick_interval=0.01) as (gw, ib, errs):
        t = ib.placeOrder(fut(gw, "HE"), LimitOrder("BUY", 1, crossing(gw, "HE", "BUY")))
        await until(lambda: t.orderStatus.status == "PreSubmitted")
        assert [c for _, c, _ in errs] == [399]
        await until(lambda: t.orderStatus.status == "Filled", timeout=15, what="released by the running clock")
        assert statuses(t)[-3:] == ["PreSubmitted", "Submitted", "Filled"]
