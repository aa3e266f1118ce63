"""The embedded IB gateway against an UNMODIFIED ib_async 2.1.0 client over real sockets.

Every test built on `session()` (and a few others explicitly) also checks the wire: each distinct message shape the
server sent during the test is decoded by IB's own Python client (ibapi, strictly: no missing and no left-over field)
and by ib_async (`check_message`); the fault tests that only connect and drop do not."""
import asyncio, contextlib, math, time
from datetime import datetime, timedelta, timezone
import pytest
from ib_async import IB, ContFuture, ExecutionFilter, Future, LimitOrder, Order
from hydra_nb.gateway_sim import GatewaySim, ProtocolError, msg_open_order
from hydra_nb.market import SimClock
from wire_check import check_message


# -- helpers -----------------------------------------------------------------------------------------------------
async def connect(gw, cid=1, timeout=10, **kw):
    "An ib_async client; its connect raises if any start-up request (positions, orders, account, executions) times out."
    ib = IB()
    await ib.connectAsync("127.0.0.1", gw.port, clientId=cid, timeout=timeout, raiseSyncErrors=True, **kw)
    return ib


async def connect_when_open(gw, cid, since, closed_for):
    "Connect as soon as the listener is back (polling, not a sleep racing the reopen); it must have stayed closed `closed_for` s after `since`."
    while True:
        try:
            ib = await connect(gw, cid)
            break
        except ConnectionRefusedError:
            assert time.monotonic() - since < closed_for + 10, "the listener never reopened"
            await asyncio.sleep(0.01)
    assert time.monotonic() - since >= closed_for
    return ib


async def until(pred, timeout=10.0, what="condition"):
    t = time.monotonic()
    while not pred():
        if time.monotonic() - t > timeout: raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


def errors_of(ib):
    errs = []
    ib.errorEvent += lambda reqId, code, msg, contract: errs.append((reqId, code, msg))
    return errs


def assert_wire_clean(gw):
    "Every distinct message shape the server sent decodes exactly with ibapi and ib_async."
    seen = set()
    for cid, sv, fields in gw.wire_log:
        key = (sv, fields[0], len(fields), fields[2] if fields[0] in (1, 2) else None)
        if key in seen: continue
        seen.add(key)
        check_message(fields, sv)
    assert seen, "nothing was sent"


@contextlib.asynccontextmanager
async def session(gw, cid=1):
    "A connected client; disconnected at the end, and then every message the server sent is checked with both decoders."
    ib = await connect(gw, cid)
    try:
        yield ib
    finally:
        ib.disconnect()
    assert_wire_clean(gw)


def front(gw, sym):
    return next(c for c in gw.contracts if c.symbol == sym)


def fut(gw, sym):
    "The front month of `sym`, by conId."
    c = front(gw, sym)
    return Future(conId=c.con_id, exchange=c.exchange)


TICK = {"ZO": 0.25, "HE": 0.025}                 # oats in cents per bushel (priceMagnifier 100), hogs in cents per pound


def ticks(px, n, sym):
    "`px` moved by `n` ticks of `sym`."
    return round(px + n * TICK[sym], 4)


# -- connect ----------------------------------------------------------------------------------------------------
async def test_connect_without_timeouts(gateway, caplog):
    ib = await connect(gateway, 1)                                  # raiseSyncErrors: every end marker came
    try:
        assert not [r for r in caplog.records if "timed out" in r.getMessage()]
        assert ib.isConnected() and ib.client.serverVersion() == 176
        assert ib.managedAccounts() == ["DU1234567"]
        assert ib.positions() == [] and ib.openTrades() == [] and ib.fills() == []
        vals = {(v.tag, v.currency): v.value for v in ib.accountValues()}
        assert float(vals[("NetLiquidation", "USD")]) == 1_000_000.0
        assert gateway.clients == [1]
    finally:
        ib.disconnect()
    await until(lambda: gateway.clients == [], what="server to see the close")
    assert_wire_clean(gateway)


async def test_current_time_follows_clock(gateway):
    async with session(gateway) as ib:
        t1 = await ib.reqCurrentTimeAsync()
        gateway.step(3600)
        t2 = await ib.reqCurrentTimeAsync()
        assert t1 == gateway.clock.now().replace(microsecond=0) - (t2 - t1)
        assert (t2 - t1).total_seconds() == 3600


# -- contracts, market data, bars ---------------------------------------------------------------------------------
async def test_qualify_by_month_conid_and_front(gateway):
    async with session(gateway) as ib:
        errs = errors_of(ib)
        zo = [c for c in gateway.contracts if c.symbol == "ZO"]
        [a] = await ib.qualifyContractsAsync(Future("ZO", zo[1].month, exchange="CBOT"))
        assert (a.conId, a.localSymbol, a.multiplier, a.lastTradeDateOrContractMonth) == \
               (zo[1].con_id, zo[1].local_symbol, "5000", zo[1].expiry)
        [b] = await ib.qualifyContractsAsync(Future(conId=zo[2].con_id))
        assert (b.symbol, b.exchange, b.lastTradeDateOrContractMonth) == ("ZO", "CBOT", zo[2].expiry)
        [c] = await ib.qualifyContractsAsync(ContFuture("HE", exchange="CME"))
        assert (c.secType, c.conId) == ("CONTFUT", front(gateway, "HE").con_id)
        details = await ib.reqContractDetailsAsync(Future("ZO", exchange="CBOT"))
        assert [d.contract.conId for d in details] == [x.con_id for x in zo]
        assert details[0].minTick == 0.25 and details[0].priceMagnifier == 100 and details[0].timeZoneId == "America/Chicago"
        assert await ib.qualifyContractsAsync(Future("XX", exchange="CBOT")) == [None]
        await until(lambda: any(e[1] == 200 for e in errs), what="error 200")


async def test_market_data_snapshot_and_streaming(gateway):
    async with session(gateway) as ib:
        c = fut(gateway, "HE")
        [snap] = await ib.reqTickersAsync(c)
        q = gateway.market.quote("HE")
        assert (snap.bid, snap.ask, snap.bidSize, snap.askSize, snap.last, snap.volume) == \
               (q.bid, q.ask, q.bid_size, q.ask_size, q.last, q.volume)
        t = ib.reqMktData(c)
        await until(lambda: t.bid == q.bid and t.ask == q.ask, what="first quote")
        seen = set()
        for _ in range(30):
            gateway.step(10)
            q = gateway.market.quote("HE")
            await until(lambda: (t.bid, t.ask, t.volume) == (q.bid, q.ask, q.volume), what="streamed quote")
            seen.add((q.bid, q.ask))
        assert len(seen) > 1, "the quote never moved"
        ib.cancelMktData(c)


async def test_daily_bars(gateway):
    async with session(gateway) as ib:
        c = fut(gateway, "ZO")
        bars = await ib.reqHistoricalDataAsync(c, "", "10 D", "1 day", "TRADES", True)
        df = gateway.market.daily_bars("ZO", 10)
        assert len(bars) == len(df) > 1
        assert [b.close for b in bars] == list(df["close"])
        assert [b.volume for b in bars] == [float(v) for v in df["volume"]]
        assert str(bars[-1].date).replace("-", "") == df.index[-1].strftime("%Y%m%d")
        end = df.index[-4].date()                                   # bars ending three trading days ago
        end_t = datetime(end.year, end.month, end.day, 23, 59, 59, tzinfo=timezone.utc)
        old = await ib.reqHistoricalDataAsync(c, end_t, "5 D", "1 day", "TRADES", True)
        ref = gateway.market.daily_bars("ZO", 20)
        ref = ref[ref.index.date <= end].iloc[-5:]
        assert [b.date for b in old] == list(ref.index.date) and [b.close for b in old] == list(ref["close"])
        errs = errors_of(ib)
        assert len(await ib.reqHistoricalDataAsync(c, "", "1 D", "5 mins", "TRADES", True)) == 0
        assert any(e[1] == 162 for e in errs)


# -- orders -------------------------------------------------------------------------------------------------------
async def test_place_modify_cancel(gateway):
    async with session(gateway) as ib:
        errs = errors_of(ib)
        c = fut(gateway, "HE")
        q = gateway.market.quote("HE")
        px = ticks(q.bid, -20, "HE")
        tr = ib.placeOrder(c, LimitOrder("BUY", 2, px, orderRef="t-1"))
        await until(lambda: tr.orderStatus.status == "Submitted")
        assert [e.status for e in tr.log] == ["PendingSubmit", "PreSubmitted", "Submitted"]
        so = gateway.orders[(1, tr.order.orderId)]
        assert (so.lmt_price, so.total_qty, so.order_ref, so.status) == (px, 2, "t-1", "Submitted")
        tr.order.lmtPrice = ticks(px, -4, "HE"); tr.order.totalQuantity = 3
        ib.placeOrder(c, tr.order)                          # modify: same orderId
        await until(lambda: tr.orderStatus.remaining == 3 and tr.log[-1].status == "Submitted", what="modify ack")
        assert (so.lmt_price, so.total_qty) == (tr.order.lmtPrice, 3)
        assert gateway.market.order(so.perm_id).quantity == 3
        ib.cancelOrder(tr.order)
        await until(lambda: tr.orderStatus.status == "Cancelled")
        await until(lambda: any(e[1] == 202 for e in errs), what="error 202")
        assert so.status == "Cancelled" and gateway.market.open_orders() == []
        ib.client.cancelOrder(99_999)
        await until(lambda: any(e[1] == 10147 for e in errs), what="error 10147")


async def test_partial_fills_then_filled(gateway):
    async with session(gateway) as ib:
        c = fut(gateway, "ZO")
        q = gateway.market.quote("ZO")
        statuses = []
        tr = ib.placeOrder(c, LimitOrder("BUY", 40, ticks(q.ask, 1, "ZO")))
        tr.statusEvent += lambda t: statuses.append((t.orderStatus.status, t.orderStatus.filled, t.orderStatus.remaining))
        await until(lambda: tr.orderStatus.status == "Submitted" and tr.fills, what="first fills")
        so = gateway.orders[(1, tr.order.orderId)]                  # the gateway's own count of the immediate fills
        await until(lambda: tr.orderStatus.filled == so.filled == sum(f.execution.shares for f in tr.fills),
                    what="every immediate fill and its status to arrive")
        st = tr.orderStatus
        assert 0 < st.filled < 40 and st.remaining == 40 - st.filled
        assert math.isclose(st.avgFillPrice, sum(f.execution.shares * f.execution.price for f in tr.fills) / st.filled)
        tr.order.lmtPrice = ticks(q.ask, 60, "ZO")   # cross much deeper: the rest fills
        ib.placeOrder(c, tr.order)
        await until(lambda: tr.orderStatus.status == "Filled", what="Filled")
        assert tr.orderStatus.filled == 40 and tr.orderStatus.remaining == 0
        assert any(s == "Submitted" and 0 < f < 40 for s, f, r in statuses)
        assert sum(f.execution.shares for f in tr.fills) == 40
        await until(lambda: all(f.commissionReport.execId for f in tr.fills), what="commission reports")
        ours = {e.exec_id: e for e in gateway.executions()}
        assert {f.execution.execId for f in tr.fills} == set(ours)
        assert all(math.isclose(f.commissionReport.commission, ours[f.execution.execId].commission) for f in tr.fills)
        assert tr.fills[-1].execution.time == ours[tr.fills[-1].execution.execId].time


async def test_positions_account_pnl_after_fills(gateway):
    async with session(gateway) as ib:
        c = fut(gateway, "HE")
        for action, n in (("BUY", 3), ("SELL", 1)):
            q = gateway.market.quote("HE")
            px = ticks(q.ask, 10, "HE") if action == "BUY" else ticks(q.bid, -10, "HE")
            tr = ib.placeOrder(c, LimitOrder(action, n, px))
            await until(lambda: tr.orderStatus.status == "Filled", what=f"{action} filled")
        pnl = ib.reqPnL("DU1234567")
        await until(lambda: [p.position for p in ib.positions()] == [2.0], what="position update")
        pos = gateway.ledger.positions[front(gateway, "HE").con_id]
        [p] = ib.positions()
        assert math.isclose(p.avgCost, pos.avg_cost) and p.contract.conId == front(gateway, "HE").con_id
        gateway.step(0)
        v = gateway.ledger.values(gateway._marks())
        await until(lambda: not math.isnan(pnl.realizedPnL), what="pnl")
        assert math.isclose(pnl.realizedPnL, v["RealizedPnL"]) and math.isclose(pnl.unrealizedPnL, v["UnrealizedPnL"])
        vals = {(a.tag, a.currency): float(a.value) for a in ib.accountValues() if a.currency == "USD" and a.tag != "Currency"}
        assert math.isclose(vals[("NetLiquidation", "USD")], round(v["NetLiquidation"], 2), abs_tol=0.011)
        fills = gateway.executions()
        cash = 1_000_000 + gateway.ledger.gross_realized - sum(e.commission for e in fills)
        assert math.isclose(vals[("TotalCashValue", "USD")], round(cash, 2), abs_tol=0.011)
        assert math.isclose(vals[("RealizedPnL", "USD")], sum(e.realized_pnl for e in fills if e.realized_pnl is not None), abs_tol=0.011)
        ps = ib.reqPnLSingle("DU1234567", "", front(gateway, "HE").con_id)
        await until(lambda: ps.position == 2, what="pnl single")
        assert math.isclose(ps.unrealizedPnL, v["UnrealizedPnL"]) and math.isclose(ps.value, 2 * gateway._marks()[pos.contract.con_id] * 400)
        [pf] = ib.portfolio()
        assert pf.position == 2 and math.isclose(pf.averageCost, pos.avg_cost)
        summ = {a.tag: float(a.value) for a in await ib.accountSummaryAsync() if a.currency == "USD" and a.tag != "Currency"}
        assert math.isclose(summ["NetLiquidation"], vals[("NetLiquidation", "USD")], abs_tol=0.011)
        assert math.isclose(vals[("Commissions", "USD")], sum(e.commission for e in fills), abs_tol=0.011)
        assert math.isclose(summ["TotalCashValue"], vals[("TotalCashValue", "USD")], abs_tol=0.011)


async def test_executions_after_reconnect_with_filters(gateway):
    ib = await connect(gateway, 3)
    c = fut(gateway, "ZO")
    q = gateway.market.quote("ZO")
    tr = ib.placeOrder(c, LimitOrder("BUY", 2, round(q.bid, 4)))     # rests at the bid
    await until(lambda: tr.orderStatus.status == "Submitted")
    oid = tr.order.orderId
    ib.disconnect()
    await until(lambda: gateway.clients == [])
    for _ in range(2000):                                           # fills while the client is away
        gateway.step(30)
        if gateway.orders[(3, oid)].status == "Filled": break
    assert gateway.orders[(3, oid)].status == "Filled"
    away = [e.exec_id for e in gateway.executions() if e.order_id == oid]
    async with session(gateway, 3) as ib:
        assert {f.execution.execId for f in ib.fills()} == set(away)
        [tr2] = [t for t in ib.trades() if t.order.permId == tr.order.permId]   # rebuilt from completed orders
        assert tr2.orderStatus.status == "Filled" and {f.execution.execId for f in tr2.fills} == set(away)
        assert ib.client.getReqId() > oid                            # ids only grow
        fs = await ib.reqExecutionsAsync(ExecutionFilter(symbol="ZO", side="BUY", clientId=3))
        assert {f.execution.execId for f in fs} == set(away)
        assert await ib.reqExecutionsAsync(ExecutionFilter(symbol="HE")) == []
        assert await ib.reqExecutionsAsync(ExecutionFilter(side="SELL")) == []
        later = gateway.clock.now().strftime("%Y%m%d %H:%M:%S")
        assert await ib.reqExecutionsAsync(ExecutionFilter(time=later)) == []
        assert await ib.reqExecutionsAsync(ExecutionFilter(clientId=4)) == []


# -- errors ------------------------------------------------------------------------------------------------------
async def test_error_codes_105_200_201(gateway):
    async with session(gateway) as ib:
        errs = errors_of(ib)
        c = fut(gateway, "HE")
        q = gateway.market.quote("HE")
        t1 = ib.placeOrder(c, LimitOrder("BUY", 1, ticks(q.bid, -10, "HE")))
        await until(lambda: t1.orderStatus.status == "Submitted")
        ib.cancelOrder(t1.order)
        await until(lambda: t1.orderStatus.status == "Cancelled")
        ib.client.placeOrder(t1.order.orderId, c, LimitOrder("BUY", 1, ticks(q.bid, -10, "HE")))
        await until(lambda: any(e[1] == 105 and e[0] == t1.order.orderId for e in errs), what="105")   # a modify of a cancelled order
        assert not any(e[1] == 103 for e in errs)
        t2 = ib.placeOrder(Future("XX", "202703", exchange="CBOT"), LimitOrder("BUY", 1, 1.0))
        await until(lambda: any(e[1] == 200 and e[0] == t2.order.orderId for e in errs), what="200")
        for kind in ("MKT", "STP", "STP LMT", "MIDPRICE"):
            t3 = ib.placeOrder(c, Order(action="BUY", totalQuantity=1, orderType=kind, auxPrice=q.ask))
            await until(lambda: t3.orderStatus.status == "Cancelled", what=f"{kind} rejected")
            code, msg = next((e[1], e[2]) for e in errs if e[0] == t3.order.orderId)
            assert code == 201 and "only LMT" in msg and kind in msg
        for bad in (LimitOrder("BUY", 0, q.bid), LimitOrder("BUY", 1.5, q.bid), LimitOrder("BUY", 1, -1.0),
                    LimitOrder("BUY", 1, q.bid, tif="IOC"), LimitOrder("BUY", 1, q.bid, account="U999")):
            t4 = ib.placeOrder(c, bad)
            await until(lambda: t4.orderStatus.status == "Cancelled", what=f"{bad} rejected")
            assert [e[1] for e in errs if e[0] == t4.order.orderId] == [201]
        t5 = ib.placeOrder(c, LimitOrder("BUY", 1, round(q.bid + 0.001, 4)))
        await until(lambda: t5.orderStatus.status == "Cancelled", what="off-tick rejected")
        assert [e[1] for e in errs if e[0] == t5.order.orderId] == [110]
        assert all(not o.done or o.status == "Cancelled" for o in gateway.orders.values())
        assert len(gateway.orders) == 1                              # only the first order was ever accepted


async def test_global_cancel_two_clients(gateway):
    a, b = await connect(gateway, 11), await connect(gateway, 12)
    try:
        q = gateway.market.quote("HE")
        c = fut(gateway, "HE")
        ta = a.placeOrder(c, LimitOrder("BUY", 1, ticks(q.bid, -10, "HE")))
        tb = b.placeOrder(c, LimitOrder("SELL", 1, ticks(q.ask, 10, "HE")))
        await until(lambda: ta.orderStatus.status == tb.orderStatus.status == "Submitted")
        assert a.openTrades() == [ta] and b.openTrades() == [tb]      # each client sees its own
        allo = await a.reqAllOpenOrdersAsync()
        assert sorted(t.order.permId for t in allo) == sorted([ta.order.permId, tb.order.permId])
        assert gateway.clients == [11, 12]
        a.reqGlobalCancel()
        await until(lambda: ta.orderStatus.status == tb.orderStatus.status == "Cancelled", what="global cancel")
    finally:
        a.disconnect(); b.disconnect()
    assert_wire_clean(gateway)


async def test_client_id_in_use_then_fast_reconnect(gateway):
    a = await connect(gateway, 5)
    b = IB()
    with pytest.raises((TimeoutError, asyncio.TimeoutError, ConnectionError)):
        await b.connectAsync("127.0.0.1", gateway.port, clientId=5, timeout=0.5)
    assert any(fields[:4] == [4, 2, -1, 326] for _, _, fields in gateway.wire_log)
    assert a.isConnected() and gateway.clients == [5]
    a.disconnect()
    for _ in range(20):                                             # the id is free as soon as the socket is closed:
        c = await connect(gateway, 5)                               # reconnect at once, without waiting for the server
        assert c.isConnected()
        c.disconnect()
    assert sum(fields[:4] == [4, 2, -1, 326] for _, _, fields in gateway.wire_log) == 1   # only the real conflict


async def test_pacing_violation_100(gateway):
    async with session(gateway) as ib:
        errs = errors_of(ib)
        ib.client.MaxRequests = 0                                   # ib_async's own 45/s throttle off: the gateway paces
        n_sent = len(gateway.wire_log)
        gateway.faults.pacing_limit(20)
        for _ in range(60): ib.client.reqCurrentTime()              # one burst: 20 within the limit, 40 refused
        await until(lambda: sum(e[1] == 100 for e in errs) == gateway.faults.counts["paced"] == 40, what="40 errors 100")
        assert sum(f[0] == 49 for _, _, f in list(gateway.wire_log)[n_sent:]) == 20
        gateway.faults.pacing_limit(None)
        assert await asyncio.wait_for(ib.reqCurrentTimeAsync(), 10)


async def test_connectivity_lost_restored_1100_1102(gateway):
    async with session(gateway) as ib:
        errs = errors_of(ib)
        gateway.faults.connectivity_lost(0.05)
        await until(lambda: [e[1] for e in errs] == [1100, 1102], what="1100 then 1102")
        assert ib.isConnected()


# -- faults -------------------------------------------------------------------------------------------------------
async def test_drop_all_and_drop_random(gateway):
    a, b = await connect(gateway, 1), await connect(gateway, 2)
    assert gateway.faults.drop_all() == 2
    await until(lambda: not a.isConnected() and not b.isConnected(), what="clients to notice")
    a = await connect(gateway, 1)
    gateway.faults.drop_random(1.0)
    a.client.reqCurrentTime()
    await until(lambda: not a.isConnected(), what="random drop")
    gateway.faults.drop_random(0.0)
    a = await connect(gateway, 1)
    assert a.isConnected()
    a.disconnect()
    with pytest.raises(ValueError, match="probability"): gateway.faults.drop_random(1.5)


async def test_refuse_connections_then_accept(gateway):
    t0 = time.monotonic()
    gateway.faults.refuse_connections(2.0)                          # long enough that a loaded machine cannot miss it
    with pytest.raises(ConnectionRefusedError):
        await IB().connectAsync("127.0.0.1", gateway.port, clientId=1, timeout=1)
    ib = await connect_when_open(gateway, 1, t0, 2.0)                # closed at least the whole window
    assert ib.isConnected()
    ib.disconnect()


async def test_nightly_reset_keeps_state_ids_grow(gateway):
    ib = await connect(gateway, 1)
    c = fut(gateway, "HE")
    q = gateway.market.quote("HE")
    tr = ib.placeOrder(c, LimitOrder("BUY", 1, ticks(q.bid, -10, "HE")))
    await until(lambda: tr.orderStatus.status == "Submitted")
    t0 = time.monotonic()
    gateway.faults.nightly_reset(duration=2.0)                      # long enough that a loaded machine cannot miss it
    await until(lambda: not ib.isConnected(), what="reset drops the client")
    with pytest.raises(ConnectionRefusedError):
        await IB().connectAsync("127.0.0.1", gateway.port, clientId=1, timeout=1)
    ib = await connect_when_open(gateway, 1, t0, 2.0)
    try:
        assert ib.client.getReqId() > tr.order.orderId
        assert [t.order.permId for t in ib.openTrades()] == [tr.order.permId]   # the working order survived
    finally:
        ib.disconnect()
    # a scheduled reset fires when the simulated clock passes the time of day
    t = gateway.clock.now() + timedelta(minutes=2)
    gateway.faults.nightly_reset(duration=0.0, at=t.strftime("%H:%M"))
    gateway.step(1)
    n = gateway.faults.counts["resets"]
    gateway.step(180)
    assert gateway.faults.counts["resets"] == n + 1


async def test_latency(gateway):
    async with session(gateway) as ib:
        [s] = list(gateway._sessions)
        assert await ib.reqCurrentTimeAsync()
        assert s._flush_task is None                                # no latency: every reply written at once, none queued
        gateway.faults.set_latency(0.15)
        t0 = time.perf_counter(); await ib.reqCurrentTimeAsync(); slow = time.perf_counter() - t0
        assert slow >= 0.15 and s._flush_task is not None           # with latency: held in the session's queue
        gateway.faults.set_latency(0)


async def test_reject_next_and_halt(gateway):
    async with session(gateway) as ib:
        errs = errors_of(ib)
        c = fut(gateway, "ZO")
        q = gateway.market.quote("ZO")
        gateway.faults.reject_next_order("risk desk says no")
        t1 = ib.placeOrder(c, LimitOrder("BUY", 1, q.bid))
        await until(lambda: t1.orderStatus.status == "Cancelled")
        assert [(e[1], e[2]) for e in errs if e[0] == t1.order.orderId] == [(201, "Order rejected - reason:risk desk says no")]
        t2 = ib.placeOrder(c, LimitOrder("BUY", 1, ticks(q.bid, -4, "ZO")))   # only the next one
        await until(lambda: t2.orderStatus.status == "Submitted")
        gateway.faults.halt("ZO")
        t3 = ib.placeOrder(c, LimitOrder("BUY", 1, q.ask))
        await until(lambda: t3.orderStatus.status == "Cancelled")
        assert [e[1] for e in errs if e[0] == t3.order.orderId] == [201]
        assert "halted" in next(e[2] for e in errs if e[0] == t3.order.orderId)
        gateway.faults.halt("ZO", False)
        with pytest.raises(KeyError): gateway.faults.halt("XX")


# -- versions and clocks --------------------------------------------------------------------------------------------
async def test_server_version_178_round_trip():
    async with GatewaySim(server_version=178, clock=SimClock(mode="stepped"), record_wire=True) as gw:
        ib = await connect(gw)
        try:
            assert ib.client.serverVersion() == 178
            c = fut(gw, "HE")
            q = gw.market.quote("HE")
            tr = ib.placeOrder(c, LimitOrder("BUY", 1, ticks(q.ask, 4, "HE")))
            await until(lambda: tr.orderStatus.status == "Filled")
            fs = await ib.reqExecutionsAsync()
            assert [f.execution.execId for f in fs] == [e.exec_id for e in gw.executions()]
        finally:
            ib.disconnect()
        oo = [f for _, sv, f in gw.wire_log if f[0] == 5]
        assert oo and all(sv == 178 for _, sv, f in gw.wire_log)
        assert len(oo[0]) == len(msg_open_order(gw.orders[(1, tr.order.orderId)], 176)) - 1   # no faProfile from 177
        ex = [f for _, sv, f in gw.wire_log if f[0] == 11]
        assert len(ex[0]) == 32                                     # pendingPriceRevision from 178
        assert_wire_clean(gw)


async def test_accelerated_clock_moves_server_time():
    async with GatewaySim(time_scale=3600, tick_interval=0.02) as gw:
        ib = await connect(gw)
        try:
            r0 = time.monotonic(); t1 = await ib.reqCurrentTimeAsync(); r1 = time.monotonic()
            await asyncio.sleep(0.5)                                # let real time pass (not a synchronization)
            r2 = time.monotonic(); t2 = await ib.reqCurrentTimeAsync(); r3 = time.monotonic()
            d = (t2 - t1).total_seconds()                           # whole seconds: +-1 s each
            assert 1200 <= 3600 * (r2 - r1) - 2 <= d <= 3600 * (r3 - r0) + 2, (t1, t2, r0, r1, r2, r3)   # 0.5 s real at 3600x is 1800 s
        finally:
            ib.disconnect()


async def test_bad_arguments_and_garbage():
    with pytest.raises(ValueError, match="server_version"): GatewaySim(server_version=150)
    with pytest.raises(ValueError, match="time_scale"): GatewaySim(time_scale=0)
    with pytest.raises(ValueError, match="account"): GatewaySim(account="DU 1")
    async with GatewaySim(clock=SimClock(mode="stepped")) as gw:
        r, w = await asyncio.open_connection("127.0.0.1", gw.port)
        w.write(b"GET / HTTP/1.1\r\n\r\n")
        assert await asyncio.wait_for(r.read(), 10) == b""          # not TWS API: dropped
        w.close()
        with pytest.raises(ProtocolError):
            check_message([4, 2, -1, 2104])                         # a short error message fails the check
        ib = await connect(gw)
        errs = errors_of(ib)
        try:
            ib.client.send(9, 8, "not-a-number")                    # malformed request: 320, connection kept
            ib.client.send(7, 3, 1, 0, "", "yesterday", "", "", "", "")
            await until(lambda: [e[1] for e in errs] == [320, 320], what="two 320s")
            assert ib.isConnected() and await ib.reqCurrentTimeAsync()
        finally:
            ib.disconnect()


async def test_random_drops_lose_no_fill_and_duplicate_no_order(gateway):
    """Orders sent under random disconnects (the reply to an accepted order can be lost with the socket): a client
    that resyncs on reconnect (open + completed orders, executions) never re-sends an order the gateway already has
    and ends with exactly the gateway's executions."""
    c = fut(gateway, "HE")
    ib, sent = None, 0
    for i in range(80):
        if ib is None or not ib.isConnected():
            gateway.faults.drop_random(0.0)
            ib = await connect(gateway, 21)
            gateway.faults.drop_random(0.15)
        ref = f"slice-{i // 2}"                                   # every slice is attempted twice
        if any(t.order.orderRef == ref for t in ib.trades()): continue
        q = gateway.market.quote("HE")
        action = "BUY" if i % 4 < 2 else "SELL"
        px = ticks(q.ask, 1, "HE") if action == "BUY" else ticks(q.bid, -1, "HE")
        tr = ib.placeOrder(c, LimitOrder(action, 1, px, orderRef=ref)); sent += 1
        await until(lambda: not ib.isConnected() or tr.orderStatus.status in ("Submitted", "Filled"), what="ack or drop")
        gateway.step(5)
    gateway.faults.drop_random(0.0)
    if ib.isConnected(): ib.disconnect()
    await until(lambda: gateway.clients == [])
    async with session(gateway, 21) as ib:
        assert gateway.faults.counts["dropped"] >= 3
        refs = [o.order_ref for o in gateway.orders.values()]
        assert len(refs) == len(set(refs)) == 40                  # no slice twice, none lost
        assert {f.execution.execId for f in ib.fills()} == {e.exec_id for e in gateway.executions()}
        assert len(gateway.executions()) >= 40


async def test_day_orders_expire_at_the_close_gtc_stays_contfut_not_tradable(gateway):
    async with session(gateway) as ib:
        errs = errors_of(ib)
        [cont] = await ib.qualifyContractsAsync(ContFuture("HE", exchange="CME"))
        t0 = ib.placeOrder(cont, LimitOrder("BUY", 1, 80.0))
        await until(lambda: t0.orderStatus.status == "Cancelled", what="CONTFUT rejected")
        assert [e[1] for e in errs if e[0] == t0.order.orderId] == [201]
        c = fut(gateway, "HE")
        q = gateway.market.quote("HE")
        px = ticks(q.bid, -40, "HE")
        day = ib.placeOrder(c, LimitOrder("BUY", 1, px))
        gtc = ib.placeOrder(c, LimitOrder("BUY", 1, px, tif="GTC"))
        await until(lambda: day.orderStatus.status == gtc.orderStatus.status == "Submitted")
        assert gateway.market.session_open("HE")
        for _ in range(6 * 12):                                     # six hours in 5-minute steps: past the close
            gateway.step(300)
            if not gateway.market.session_open("HE"): break
        assert not gateway.market.session_open("HE")
        await until(lambda: day.orderStatus.status == "Cancelled", what="DAY order expired")
        assert gtc.orderStatus.status == "Submitted" and gateway.orders[(1, gtc.order.orderId)].status == "Submitted"


async def test_executions_are_per_client_unless_master():
    async with GatewaySim(clock=SimClock(mode="stepped"), master_client_id=9, record_wire=True) as gw:
        a, b, m = await connect(gw, 1), await connect(gw, 2), await connect(gw, 9)
        try:
            c = fut(gw, "HE")
            q = gw.market.quote("HE")
            tr = a.placeOrder(c, LimitOrder("BUY", 2, ticks(q.ask, 4, "HE")))
            await until(lambda: tr.orderStatus.status == "Filled")
            ids = {e.exec_id for e in gw.executions()}
            await until(lambda: {f.execution.execId for f in m.fills()} == ids, what="master sees live fills")
            assert b.fills() == [] and await b.reqExecutionsAsync() == []       # not b's orders
            assert {f.execution.execId for f in await a.reqExecutionsAsync()} == ids
            assert {f.execution.execId for f in await m.reqExecutionsAsync()} == ids
            assert await m.reqExecutionsAsync(ExecutionFilter(clientId=2)) == []
        finally:
            for ib in (a, b, m): ib.disconnect()
        assert_wire_clean(gw)
