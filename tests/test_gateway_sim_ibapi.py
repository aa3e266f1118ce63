"""The embedded IB gateway against IB's own Python client (ibapi, from ibapi-stable 10.50) over real sockets.

IB's client is synchronous and threaded, so the gateway runs in its own thread (`GatewaySim.start_in_thread`)."""
import threading, time
from decimal import Decimal
import pytest
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.execution import ExecutionFilter
from ibapi.order import Order
from ibapi.order_cancel import OrderCancel
from ibapi.wrapper import EWrapper
from hydra_nb.gateway_sim import GatewaySim
from hydra_nb.market import SimClock
from wire_check import check_message

RECORDED = ["nextValidId", "managedAccounts", "currentTime", "contractDetails", "contractDetailsEnd", "tickPrice",
            "tickSize", "tickSnapshotEnd", "historicalData", "historicalDataEnd", "openOrder", "orderStatus",
            "openOrderEnd", "execDetails", "execDetailsEnd", "commissionAndFeesReport", "position", "positionEnd",
            "accountSummary", "accountSummaryEnd", "updateAccountValue", "updatePortfolio", "accountDownloadEnd",
            "pnl", "marketDataType", "tickReqParams", "completedOrdersEnd", "connectionClosed"]


class App(EWrapper, EClient):
    def __init__(self):
        EClient.__init__(self, self)
        self.calls, self.lock = [], threading.Lock()

    def error(self, reqId, errorTime, errorCode, errorString, advancedOrderRejectJson=""):
        with self.lock: self.calls.append(("error", (reqId, errorCode, errorString)))

    def of(self, name):
        with self.lock: return [a for n, a in self.calls if n == name]

    def wait(self, pred, timeout=10.0, what="condition"):
        t = time.monotonic()
        while not pred():
            if time.monotonic() - t > timeout: raise AssertionError(f"timed out waiting for {what}; calls: {[n for n, _ in self.calls][-15:]}")
            time.sleep(0.002)


def _rec(name):
    def f(self, *a):
        with self.lock: self.calls.append((name, a))
    return f

for _n in RECORDED: setattr(App, _n, _rec(_n))


def start_app(port, cid=1):
    app = App()
    app.connect("127.0.0.1", port, cid)
    th = threading.Thread(target=app.run, daemon=True); th.start()
    app.wait(lambda: app.of("nextValidId") and app.of("managedAccounts"), what="nextValidId + managedAccounts")
    return app, th


def start_app_when_open(port, cid, since, closed_for):
    "Connect as soon as the listener is back (polling, not a sleep racing the gateway's thread); it stayed closed `closed_for` s after `since`."
    while True:
        app = App(); app.connect("127.0.0.1", port, cid)
        if app.isConnected(): break
        assert time.monotonic() - since < closed_for + 10, "the listener never reopened"
        time.sleep(0.01)
    assert time.monotonic() - since >= closed_for
    th = threading.Thread(target=app.run, daemon=True); th.start()
    app.wait(lambda: app.of("nextValidId") and app.of("managedAccounts"), what="nextValidId + managedAccounts")
    return app, th


def stop_app(app, th):
    app.disconnect(); th.join(3)


def fut(con_id=0, symbol="", month="", exchange="", sec_type="FUT"):
    c = Contract()
    c.conId, c.symbol, c.secType, c.lastTradeDateOrContractMonth, c.exchange, c.currency = con_id, symbol, sec_type, month, exchange, "USD" if symbol else ""
    return c


def lmt(action, qty, price, kind="LMT"):
    o = Order()
    o.action, o.totalQuantity, o.orderType, o.lmtPrice = action, Decimal(qty), kind, price
    if kind != "LMT": o.auxPrice = price
    return o


@pytest.fixture(params=[176, 178])
def gw_thread(request):
    h = GatewaySim.start_in_thread(server_version=request.param, seed=3, clock=SimClock(mode="stepped"), record_wire=True)
    yield h
    h.stop()
    assert not h.thread.is_alive()


def test_ibapi_connect_contracts_market_data_bars(gw_thread):
    gw = gw_thread.gw
    app, th = start_app(gw_thread.port, 7)
    try:
        assert app.serverVersion() == gw.server_version
        assert app.of("managedAccounts") == [("DU1234567",)]
        app.wait(lambda: {a[1] for a in app.of("error")} >= {2104, 2106, 2158}, what="farm notices")
        app.reqCurrentTime()
        app.wait(lambda: app.of("currentTime"), what="currentTime")
        assert app.of("currentTime")[0][0] == int(gw.clock.now().timestamp())
        zo = [c for c in gw.contracts if c.symbol == "ZO"]
        app.reqContractDetails(1, fut(symbol="ZO", month=zo[1].month, exchange="CBOT"))
        app.reqContractDetails(2, fut(con_id=zo[2].con_id))
        app.reqContractDetails(3, fut(symbol="HE", exchange="CME", sec_type="CONTFUT"))
        app.reqContractDetails(4, fut(symbol="NOPE", exchange="CBOT"))
        app.wait(lambda: len(app.of("contractDetailsEnd")) == 3 and any(e[1] == 200 for e in app.of("error")), what="details")
        cds = {r: cd for r, cd in app.of("contractDetails")}
        assert cds[1].contract.conId == zo[1].con_id and cds[1].minTick == 0.25 and cds[1].contract.multiplier == "5000" and cds[1].priceMagnifier == 100
        assert cds[2].contract.lastTradeDateOrContractMonth == zo[2].expiry
        assert cds[3].contract.secType == "CONTFUT"
        assert [e[0] for e in app.of("error") if e[1] == 200] == [4]
        he = next(c for c in gw.contracts if c.symbol == "HE")
        app.reqMktData(10, fut(con_id=he.con_id, exchange="CME"), "", True, False, [])
        app.wait(lambda: app.of("tickSnapshotEnd"), what="snapshot")
        q = gw_thread.call(lambda g: g.market.quote("HE"))
        prices = {t: p for r, t, p, _ in app.of("tickPrice")}
        assert (prices[1], prices[2], prices[4]) == (q.bid, q.ask, q.last)
        sizes = {t: s for r, t, s in app.of("tickSize")}
        assert (sizes[0], sizes[3], sizes[8]) == (Decimal(q.bid_size), Decimal(q.ask_size), Decimal(q.volume))
        app.reqHistoricalData(11, fut(con_id=he.con_id, exchange="CME"), "", "5 D", "1 day", "TRADES", 1, 1, False, [])
        app.wait(lambda: app.of("historicalDataEnd"), what="bars")
        df = gw_thread.call(lambda g: g.market.daily_bars("HE", 5))
        assert [b.close for _, b in app.of("historicalData")] == list(df["close"])
    finally:
        stop_app(app, th)
    for _, sv, f in gw.wire_log: check_message(f, sv)


def test_ibapi_orders_executions_positions_account(gw_thread):
    gw = gw_thread.gw
    app, th = start_app(gw_thread.port, 8)
    try:
        he = next(c for c in gw.contracts if c.symbol == "HE")
        c = fut(con_id=he.con_id, exchange="CME")
        q = gw_thread.call(lambda g: g.market.quote("HE"))
        oid = app.of("nextValidId")[-1][0]
        app.placeOrder(oid, c, lmt("BUY", 2, round(q.bid - 0.5, 3)))
        app.wait(lambda: [a[1] for a in app.of("orderStatus") if a[0] == oid] == ["PreSubmitted", "Submitted"], what="acks")
        assert [a[3].status for a in app.of("openOrder") if a[0] == oid] == ["PreSubmitted", "Submitted"]
        assert app.of("openOrder")[0][2].lmtPrice == round(q.bid - 0.5, 3)
        app.placeOrder(oid, c, lmt("BUY", 3, round(q.bid - 0.25, 3)))           # modify
        app.wait(lambda: gw.orders[(8, oid)].total_qty == 3, what="modify")
        app.cancelOrder(oid, OrderCancel())
        app.wait(lambda: any(e[:2] == (oid, 202) for e in app.of("error")), what="202")
        assert [a[1] for a in app.of("orderStatus") if a[0] == oid][-1] == "Cancelled"
        app.placeOrder(oid, c, lmt("BUY", 1, q.bid))                              # a modify of a cancelled order: 105
        app.wait(lambda: any(e[:2] == (oid, 105) for e in app.of("error")), what="105")
        app.placeOrder(oid + 1, c, lmt("BUY", 1, q.ask, kind="STP"))
        app.wait(lambda: any(e[:2] == (oid + 1, 201) for e in app.of("error")), what="201")
        app.placeOrder(oid + 2, c, lmt("BUY", 4, round(q.ask + 0.25, 3)))        # marketable: fills now
        app.wait(lambda: any(a[0] == oid + 2 and a[1] == "Filled" for a in app.of("orderStatus")), what="Filled")
        app.wait(lambda: len(app.of("commissionAndFeesReport")) == len(app.of("execDetails")) > 0, what="commissions")
        live = [a[2].execId for a in app.of("execDetails")]
        assert live == [e.exec_id for e in gw.executions()]
        assert all(a[0] == -1 for a in app.of("execDetails"))
        n = len(app.of("execDetails"))
        f = ExecutionFilter(); f.symbol = "HE"
        app.reqExecutions(42, f)
        app.wait(lambda: app.of("execDetailsEnd"), what="execDetailsEnd")
        assert [a[2].execId for a in app.of("execDetails")[n:]] == live and {a[0] for a in app.of("execDetails")[n:]} == {42}
        app.reqPositions()
        app.wait(lambda: app.of("positionEnd"), what="positions")
        [(acct, pc, pos, avg)] = app.of("position")
        assert (acct, pc.conId, pos) == ("DU1234567", he.con_id, Decimal(4))
        app.reqAccountSummary(5, "All", "NetLiquidation,TotalCashValue,RealizedPnL,UnrealizedPnL")
        app.wait(lambda: app.of("accountSummaryEnd"), what="summary")
        tags = {a[2]: float(a[3]) for a in app.of("accountSummary")}
        assert set(tags) == {"NetLiquidation", "TotalCashValue", "RealizedPnL", "UnrealizedPnL"}
        assert abs(tags["NetLiquidation"] - tags["TotalCashValue"] - tags["UnrealizedPnL"]) < 0.02
        app.reqAccountUpdates(True, "DU1234567")
        app.wait(lambda: app.of("accountDownloadEnd"), what="account download")
        assert [a[1] for a in app.of("updatePortfolio")] == [Decimal(4)]
        app.reqPnL(6, "DU1234567", "")
        app.wait(lambda: app.of("pnl"), what="pnl")
        app.reqOpenOrders()
        app.reqCompletedOrders(False)
        app.wait(lambda: app.of("openOrderEnd") and app.of("completedOrdersEnd"), what="end markers")
    finally:
        stop_app(app, th)
    for _, sv, f in gw.wire_log: check_message(f, sv)


def test_ibapi_client_id_in_use(gw_thread):
    a, ta = start_app(gw_thread.port, 9)
    try:
        b = App(); b.connect("127.0.0.1", gw_thread.port, 9)
        tb = threading.Thread(target=b.run, daemon=True); tb.start()
        b.wait(lambda: any(e[1] == 326 for e in b.of("error")), what="326")
        tb.join(3)
        assert not b.isConnected() and a.isConnected()
    finally:
        stop_app(a, ta)


def test_ibapi_partial_fills_reconnect_two_clients_errors_and_faults(gw_thread):
    gw = gw_thread.gw
    a, ta = start_app(gw_thread.port, 21)
    b, tb = start_app(gw_thread.port, 22)                         # two clients at once
    try:
        assert sorted(gw.clients) == [21, 22]
        zo = next(c for c in gw.contracts if c.symbol == "ZO")
        c = fut(con_id=zo.con_id, exchange="CBOT")
        q = gw_thread.call(lambda g: g.market.quote("ZO"))
        oid = a.of("nextValidId")[-1][0]
        a.placeOrder(oid, c, lmt("BUY", 40, round(q.ask + 0.25, 4)))         # walks the book, rest rests
        a.wait(lambda: any(s[0] == oid and s[1] == "Submitted" and s[2] > 0 for s in a.of("orderStatus")), what="partial")
        part = [s for s in a.of("orderStatus") if s[0] == oid and s[2] > 0][0]
        assert 0 < part[2] < 40 and part[3] == 40 - part[2] and part[4] > 0     # filled, remaining, avgFillPrice
        assert not b.of("execDetails")                                         # fills go to the owner only
        stop_app(a, ta)                                                        # client 21 goes away ...
        a.wait(lambda: 21 not in gw.clients, what="server sees the close")
        a2 = App(); a2.connect("127.0.0.1", gw_thread.port, 21); ta2 = threading.Thread(target=a2.run, daemon=True)
        ta2.start(); a2.wait(lambda: a2.of("nextValidId"), what="reconnect")
        assert a2.of("nextValidId")[0][0] > oid                                # ids only grow
        a2.reqExecutions(7, ExecutionFilter())                                 # ... and finds its fills
        a2.wait(lambda: a2.of("execDetailsEnd"), what="executions after reconnect")
        assert [x[2].execId for x in a2.of("execDetails")] == [e.exec_id for e in gw.executions()]
        a2.reqOpenOrders()
        a2.wait(lambda: a2.of("openOrderEnd"), what="open orders")
        assert [x[0] for x in a2.of("openOrder")] == [oid]
        gw_thread.call(lambda g: g.faults.pacing_limit(10))
        for _ in range(30): b.reqCurrentTime()
        b.wait(lambda: any(e[1] == 100 for e in b.of("error")), what="100")
        gw_thread.call(lambda g: g.faults.pacing_limit(None))
        gw_thread.call(lambda g: g.faults.connectivity_lost(0.05))
        b.wait(lambda: [e[1] for e in b.of("error") if e[1] in (1100, 1102)] == [1100, 1102], what="1100/1102")
        gw_thread.call(lambda g: g.faults.set_latency(0.1))
        n = len(b.of("currentTime")); t0 = time.perf_counter(); b.reqCurrentTime()
        b.wait(lambda: len(b.of("currentTime")) > n, what="slow time")
        assert time.perf_counter() - t0 >= 0.1
        gw_thread.call(lambda g: g.faults.set_latency(0))
        gw_thread.call(lambda g: g.faults.reject_next_order("no"))
        b.placeOrder(b.of("nextValidId")[-1][0] + 50, c, lmt("BUY", 1, q.bid))
        b.wait(lambda: any(e[1] == 201 and e[2].endswith("no") for e in b.of("error")), what="rejected")
        assert gw_thread.call(lambda g: g.faults.drop_all()) == 2
        a2.wait(lambda: a2.of("connectionClosed") and b.of("connectionClosed"), what="drops noticed")
        t0 = time.monotonic()
        gw_thread.call(lambda g: g.faults.refuse_connections(2.0))      # long enough that a loaded machine cannot miss it
        r = App(); r.connect("127.0.0.1", gw_thread.port, 23)
        assert not r.isConnected() and any(e[1] == 502 for e in r.of("error"))   # ibapi: couldn't connect
        ok, tok = start_app_when_open(gw_thread.port, 23, t0, 2.0); stop_app(ok, tok)
        ta2.join(3)
    finally:
        for app, th in ((a, ta), (b, tb)):
            if app.isConnected(): stop_app(app, th)
    for _, sv, f in gw.wire_log: check_message(f, sv)
