"""Contract identity and IB's answers about orders that are over, against an UNMODIFIED ib_async client over real
sockets: `[instrument.SYM]` qualification, an ambiguous symbol named with its candidates, IB's 200 named with what was
asked, and 104 / 105 / 161 (not 103) for a modify or cancel of an order that has completed."""
import asyncio, dataclasses, tempfile
import pytest
from ib_async import Future, LimitOrder
from hydra_nb.broker import BrokerError, BrokerGateway, sim_settings
from hydra_nb.config import InstrumentSettings, load_settings
from hydra_nb.gateway_contracts import FutureContract
from hydra_nb.gateway_sim import GatewaySim
from hydra_nb.journal import FillJournal
from hydra_nb.market import SimClock
from exec_rig import rig
from test_gateway_sim import errors_of, front, fut, session, until


def _mini_oats(gw):
    "Another product under the symbol ZO (trading class XZO, multiplier 1000), listed beside the real months."
    zo = front(gw, "ZO")
    return FutureContract(zo.con_id + 7_000_000, "ZO", "CBOT", "USD", 1000.0, zo.tick, zo.expiry, "X" + zo.local_symbol,
                          "Mini Oats", zo.trading_hours, zo.time_zone, zo.liquid_hours, trading_class="XZO", price_magnifier=100.0)


async def _broker(gw, instruments=None):
    d = tempfile.mkdtemp()
    st = load_settings(env={}, cwd=d).replace("paths", state_dir=d)
    if instruments is not None: st = dataclasses.replace(st, instruments=instruments)
    b = BrokerGateway(sim_settings(st, gw.port), journal=FillJournal(d), clock=gw.clock)
    await b.connect()
    return b


async def test_qualify_names_the_product_and_refuses_to_guess(gateway):
    mini = _mini_oats(gateway)
    gateway.list_product(mini)
    b = await _broker(gateway)                                              # the shipped [instrument.ZO]: CBOT, class ZO
    try:
        qc = await b.qualify("ZO")
        assert (qc.con_id, qc.contract.tradingClass) == (front(gateway, "ZO").con_id, "ZO")
        assert qc.contract.secType == "FUT" and qc.contract.exchange == "CBOT"
    finally:
        await b.disconnect()
    b = await _broker(gateway, {"ZO": InstrumentSettings(exchange="CBOT")})    # no trading class: two products answer
    try:
        with pytest.raises(BrokerError) as e:
            await b.qualify("ZO")
        msg = str(e.value)
        assert "ambiguous contract 'ZO': IB lists 2 products" in msg
        assert "trading class XZO, multiplier 1000" in msg and "trading class ZO, multiplier 5000" in msg
        assert "[instrument.ZO]" in msg
        with pytest.raises(BrokerError, match=r"unknown symbol 'ZC'.*asked for FUT USD; IB error 200: No security definition"):
            await b.qualify("ZC")
    finally:
        await b.disconnect()
    b = await _broker(gateway, {"ZO": InstrumentSettings(exchange="CBOT", trading_class="XZO")})
    try:                                                                    # the mini, named: listed, but no book here
        assert (await b.qualify("ZO")).con_id == mini.con_id
    finally:
        await b.disconnect()


async def test_modify_or_cancel_of_a_completed_order_gets_ibs_answer(gateway):
    async with session(gateway) as ib:
        errs = errors_of(ib)
        c, q = fut(gateway, "HE"), gateway.market.quote("HE")
        t = ib.placeOrder(c, LimitOrder("BUY", 1, round(q.ask + 0.25, 3)))            # marketable: fills at once
        await until(lambda: t.orderStatus.status == "Filled", what="fill")
        t.order.lmtPrice = round(q.ask + 0.5, 3)
        ib.client.placeOrder(t.order.orderId, c, t.order)                           # a modify of the filled order (ib_async's
        # placeOrder sends it too, then asserts the trade is not done: what a late reprice meets)
        await until(lambda: any(e[0] == t.order.orderId and e[1] == 104 for e in errs), what="104")
        ib.client.cancelOrder(t.order.orderId, "")
        await until(lambda: any(e[0] == t.order.orderId and e[1] == 161 for e in errs), what="161")
        assert t.orderStatus.status == "Filled" and sum(f.execution.shares for f in t.fills) == 1
        assert not any(e[1] == 103 for e in errs)
        msg161 = next(e[2] for e in errs if e[1] == 161)
        assert msg161.startswith("Cancel attempted when order is not in a cancellable state. Order permId =")
        r = ib.placeOrder(c, LimitOrder("BUY", 1, round(q.bid - 2.5, 3)))             # resting, then cancelled
        await until(lambda: r.orderStatus.status == "Submitted")
        ib.cancelOrder(r.order)
        await until(lambda: r.orderStatus.status == "Cancelled")
        ib.client.placeOrder(r.order.orderId, c, LimitOrder("BUY", 1, round(q.bid - 2.0, 3)))
        await until(lambda: any(e[0] == r.order.orderId and e[1] == 105 for e in errs), what="105")
        assert not any(e[1] == 103 for e in errs)
        ib.client.cancelOrder(99_999, "")
        await until(lambda: any(e[0] == 99_999 and e[1] == 10147 for e in errs), what="10147")
        assert len(gateway.executions()) == 1                                      # nothing traded twice


async def test_broker_reads_104_as_an_order_that_is_over():
    async with rig("sim", scale=60) as r:
        rep = await r.om.route("HE", "BUY", 1, parent_ref="id-104")
        assert rep.status == "filled", rep
        child = next(c for c in r.broker._children.values() if c.ref.startswith("id-104"))
        trade = next(t for t in r.broker.ib.trades() if t.order.orderRef == child.ref)
        trade.order.lmtPrice = trade.order.lmtPrice + 0.25
        r.broker.ib.client.placeOrder(trade.order.orderId, trade.contract, trade.order)   # a late reprice of the filled child
        await until(lambda: child.error and "104" in child.error, what="104 on the child")
        assert child.status == "Filled" and child.filled == 1
        await asyncio.sleep(0.2)
        assert r.journal.fills().quantity.sum() == 1 and len(r.gw.executions()) == 1
