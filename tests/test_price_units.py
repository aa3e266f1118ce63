"""Price units (issue 18, item 1): the same contract quoted in dollars (priceMagnifier 1, tick 0.0025, start 3.50) and in
cents as IB quotes CBOT grains (priceMagnifier 100, tick 0.25, start 350) must give the same money everywhere: notional,
risk decisions, target sizing, P&L, shortfall, and the same slippage in ticks and in bps.

Two levels: the pure functions under hypothesis, then one end-to-end run through the embedded gateway and ib_async on
both listings (same seed, stepped clock, the same orders in ticks), comparing the journal's and the account's money."""
import asyncio, math, tempfile
from dataclasses import replace
from datetime import datetime, timezone
from types import SimpleNamespace as NS

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from hydra_nb.config import RiskSettings, load_settings
from hydra_nb.market import DEFAULT_INSTRUMENTS, Market, PriceProcess, SimClock
from hydra_nb.risk import CircuitBreakerManager, OrderContext, PreTradeChecks, RiskGate
from hydra_nb.runner import order_cap, target_position
from hydra_nb.slippage import actual_slippage, implementation_shortfall

CENTS = DEFAULT_INSTRUMENTS["ZO"]                                   # as IB lists oats: cents/bu, magnifier 100
DOLLARS = replace(CENTS, tick=0.0025, start_price=3.50, price_magnifier=1.0)
QUOTES = [(DOLLARS.tick, DOLLARS.price_magnifier), (CENTS.tick, CENTS.price_magnifier)]
MULT = 5000.0


def test_the_two_listings_are_the_same_contract():
    assert CENTS.price_magnifier == 100 and CENTS.tick == 0.25 and CENTS.start_price == 350.0
    assert math.isclose(CENTS.tick_value, DOLLARS.tick_value) and math.isclose(CENTS.tick_value, 12.5)
    assert math.isclose(CENTS.start_price * CENTS.point_value, DOLLARS.start_price * DOLLARS.point_value)


@pytest.mark.parametrize("seed", [0, 3, 11])
def test_the_price_process_follows_the_same_tick_path(seed):
    a, b = PriceProcess(DOLLARS, seed=seed), PriceProcess(CENTS, seed=seed)
    assert [a.bar(d) for d in range(120)] == [b.bar(d) for d in range(120)]
    ma, mb = Market({"ZO": DOLLARS}, seed=seed), Market({"ZO": CENTS}, seed=seed)
    for _ in range(40):
        qa, qb = ma.quote("ZO"), mb.quote("ZO")
        assert (round(qa.bid / DOLLARS.tick), round(qa.ask / DOLLARS.tick), qa.bid_size, qa.ask_size) == \
               (round(qb.bid / CENTS.tick), round(qb.ask / CENTS.tick), qb.bid_size, qb.ask_size)
        ma.step(600); mb.step(600)


class _Sink:
    def place_order(self, contract, order): return "placed"
    def modify_order(self, contract, order): return "modified"
    def cancel_order(self, order): return "cancelled"


class _Clock:
    t = 0.0
    def __call__(self): self.t += 1.0; return self.t


def _gate(max_position):
    checks = PreTradeChecks(max_position=max_position, max_orders_per_second=40)
    return RiskGate(_Sink(), CircuitBreakerManager(max_position=max_position), checks, None, _Clock())


SCEN = dict(ref_ticks=st.integers(600, 2400), off=st.integers(-40, 40), qty=st.integers(1, 30), pos=st.integers(-20, 20),
            equity=st.floats(5e4, 5e6), max_position=st.floats(0.05, 1.0), other=st.floats(0, 2e6),
            buy=st.booleans(), fills=st.lists(st.tuples(st.integers(1, 5), st.integers(-6, 10)), min_size=0, max_size=6),
            end_off=st.integers(-30, 30), signal=st.floats(-1, 1))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(**SCEN)
def test_pure_functions_agree_under_both_quotings(ref_ticks, off, qty, pos, equity, max_position, other, buy, fills,
                                                   end_off, signal):
    side = "BUY" if buy else "SELL"
    out = []
    for tick, mag in QUOTES:
        ref = round(ref_ticks * tick, 10)
        px = round((ref_ticks + off) * tick, 10)
        ctx = OrderContext(reference_price=ref, tick_size=tick, multiplier=MULT, price_magnifier=mag, position=pos,
                           equity=equity, other_gross_notional=other)
        d = _gate(max_position).submit(NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="5000"),
                                       NS(action=side, totalQuantity=qty, lmtPrice=px, orderType="LMT", orderRef="p:0:0", orderId=0), ctx)
        det = d.details
        tgt = target_position(signal, 20, ref, MULT, equity, max_position, 2, mag)
        cap = order_cap(RiskSettings(max_order_quantity=100), ref, MULT, mag)
        n = sum(q for q, _ in fills)
        fq = [q for q, _ in fills][: max(0, len(fills))]
        fp = [round((ref_ticks + (o if buy else -o)) * tick, 10) for _, o in fills]
        total_q = max(qty, n)
        sf = implementation_shortfall(side, total_q, ref, fp, fq, end_price=round((ref_ticks + end_off) * tick, 10),
                                      fees=2.25 * n, multiplier=MULT, price_magnifier=mag)
        slip_t = [actual_slippage(side, p, ref, "ticks", tick_size=tick) for p in fp]
        slip_b = [actual_slippage(side, p, ref, "bps") for p in fp]
        out.append(dict(allowed=d.allowed, n_reasons=len(d.reasons), state=d.trading_state, notional=det["notional"],
                        exposure=det["exposure_after"], target=tgt, cap=cap, sf=(sf.trading_cost, sf.opportunity_cost, sf.total,
                        sf.total_bps), slip_t=slip_t, slip_b=slip_b,
                        breakers=d.breakers.observed if d.breakers is not None else None))
    a, b = out
    assert (a["allowed"], a["n_reasons"], a["state"], a["target"], a["cap"]) == (b["allowed"], b["n_reasons"], b["state"], b["target"], b["cap"])
    for k in ("notional", "exposure"):
        assert (a[k] is None) == (b[k] is None) and (a[k] is None or math.isclose(a[k], b[k], rel_tol=1e-9)), (k, a[k], b[k])
    np.testing.assert_allclose(a["sf"], b["sf"], rtol=1e-9, atol=1e-7)
    np.testing.assert_allclose(a["slip_t"], b["slip_t"], rtol=0, atol=1e-9)       # whole ticks, the same count
    np.testing.assert_allclose(a["slip_b"], b["slip_b"], rtol=1e-9, atol=1e-9)
    if a["breakers"] is not None:
        for k in a["breakers"]: assert math.isclose(a["breakers"][k], b["breakers"][k], rel_tol=1e-9, abs_tol=1e-12), k


def test_the_magnifier_matters():
    "Dropping the magnifier on the cents listing makes the notional 100x and sizes 0 contracts: the bug this fixes."
    assert target_position(1, 20, 350.0, MULT, 500_000, 1.0, 2, 100) == 14
    assert target_position(1, 20, 350.0, MULT, 500_000, 1.0, 2) == 0
    ctx = lambda mag: OrderContext(reference_price=350.0, tick_size=0.25, multiplier=MULT, price_magnifier=mag, equity=1e6)
    order = NS(action="BUY", totalQuantity=2, lmtPrice=350.0, orderType="LMT", orderRef="p:0:0", orderId=0)
    zo = NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="5000")
    assert math.isclose(_gate(1.0).submit(zo, order, ctx(100)).details["notional"], 35_000.0)
    assert not _gate(1.0).submit(zo, order, ctx(1)).allowed


# ---- end to end: the embedded gateway and ib_async, both listings --------------------------------------------------

START = datetime(2026, 1, 5, 15, 0, tzinfo=timezone.utc)          # Monday 09:00 Chicago: the day session is open
PLAN = [("BUY", 6, 3), ("SELL", 4, -3), ("SELL", 5, -3), ("BUY", 3, 3)]  # (side, contracts, limit ticks through the touch)


async def _session(inst):
    from ib_async import LimitOrder
    from hydra_nb.broker import BrokerGateway, sim_settings
    from hydra_nb.core import child_ref
    from hydra_nb.gateway_sim import GatewaySim
    from hydra_nb.journal import FillJournal
    d = tempfile.mkdtemp()
    stt = load_settings(env={}, cwd=d).replace("risk", max_position=1.0, max_order_quantity=50)
    clock = SimClock("stepped", start=START)
    async with GatewaySim(port=0, seed=5, market=Market({"ZO": inst}, seed=5, clock=clock), clock=clock,
                          initial_cash=1_000_000.0) as gw:
        j = FillJournal(d)
        b = BrokerGateway(sim_settings(stt, gw.port), journal=j, clock=clock)
        await b.connect()
        gate = RiskGate(b, CircuitBreakerManager.from_settings(stt.risk, db=j.conn), stt.risk, recorder=b.recorder)
        qc = await b.qualify("ZO")
        out = dict(tick=qc.tick_size, magnifier=qc.price_magnifier, decisions=[], accounts=[])
        for k, (side, qty, through) in enumerate(PLAN):
            snap = await b.snapshot(qc)
            ref = f"u{k}"
            b.register_parent(parent_ref=ref, time=snap.time, symbol="ZO", side=side, quantity=qty, arrival_mid=snap.mid,
                              spread=snap.spread, adv=snap.adv, daily_vol=snap.daily_vol, tick_size=qc.tick_size,
                              multiplier=qc.multiplier, price_magnifier=qc.price_magnifier)
            touch = snap.ask if side == "BUY" else snap.bid
            px = round(round(touch / qc.tick_size + through) * qc.tick_size, 10)
            a = b.account()
            ctx = OrderContext(reference_price=snap.mid, tick_size=qc.tick_size, multiplier=qc.multiplier,
                               price_magnifier=qc.price_magnifier, position=int(round(a.positions.get(qc.con_id, 0))),
                               equity=a.equity, daily_pnl=a.daily_pnl, peak_equity=a.peak_equity)
            dec = gate.submit(qc.contract, LimitOrder(side, qty, px, orderRef=child_ref(ref, 0, 0), tif="DAY"), ctx)
            assert dec.allowed, dec.reasons
            assert await dec.result.wait(10), dec.result
            out["decisions"].append((dec.details["notional"], dec.details["exposure_after"],
                                     round(snap.mid / qc.tick_size * 2)))
            await asyncio.sleep(0.3)                                # commission report, account and portfolio updates
            a = b.account()
            out["accounts"].append((a.equity, a.positions.get(qc.con_id, 0.0), a.market_values.get(qc.con_id, 0.0)))
            clock.advance(120)
        out["fills"] = j.fills()
        out["summaries"] = [b.parent_summary(f"u{k}") for k in range(len(PLAN))]
        out["ledger"] = gw.ledger.values(gw._marks())
        pos = [p for p in gw.ledger.positions.values() if p.qty]
        out["avg_cost"] = pos[0].avg_cost if pos else 0.0
        await b.disconnect(); j.close()
    return out


def test_end_to_end_money_is_the_same_under_both_listings():
    a, c = asyncio.run(_session(DOLLARS)), asyncio.run(_session(CENTS))
    assert (a["tick"], a["magnifier"], c["tick"], c["magnifier"]) == (0.0025, 1.0, 0.25, 100.0)   # read from CONTRACT_DATA
    fa, fc = a["fills"], c["fills"]
    assert len(fa) == len(fc) > 0
    np.testing.assert_array_equal(np.rint(fa.price / 0.0025), np.rint(fc.price / 0.25))      # the same ticks
    np.testing.assert_array_equal(fa.quantity, fc.quantity)
    np.testing.assert_allclose(fa.actual_slippage / 0.0025, fc.actual_slippage / 0.25, atol=1e-9)   # slippage in ticks
    np.testing.assert_allclose(fa.actual_slippage / fa.arrival_mid, fc.actual_slippage / fc.arrival_mid, rtol=1e-9)  # and bps
    np.testing.assert_allclose(fa.commission, fc.commission)
    np.testing.assert_allclose(fa.realized_pnl.fillna(0), fc.realized_pnl.fillna(0), rtol=1e-9, atol=1e-6)   # IB's realizedPNL
    for (na, ea, ma), (nc, ec, mc) in zip(a["decisions"], c["decisions"]):
        assert ma == mc and math.isclose(na, nc, rel_tol=1e-9) and (ea is None) == (ec is None)
        assert ea is None or math.isclose(ea, ec, rel_tol=1e-9, abs_tol=1e-12)
    for x, y in zip(a["accounts"], c["accounts"]):                  # NetLiquidation, position, portfolio market value
        np.testing.assert_allclose(x, y, rtol=1e-9, atol=1e-6)
    for x, y in zip(a["summaries"], c["summaries"]):
        for k in ("trading_cost", "opportunity_cost", "fees", "total", "total_bps"):
            assert math.isclose(getattr(x["shortfall"], k), getattr(y["shortfall"], k), rel_tol=1e-9, abs_tol=1e-6), k
        assert (x["slippage_bps"] is None) == (y["slippage_bps"] is None)
        if x["slippage_bps"] is not None: assert math.isclose(x["slippage_bps"], y["slippage_bps"], rel_tol=1e-9, abs_tol=1e-9)
    for k in ("NetLiquidation", "RealizedPnL", "UnrealizedPnL", "InitMarginReq", "Commissions"):
        assert math.isclose(a["ledger"][k], c["ledger"][k], rel_tol=1e-9, abs_tol=1e-6), k
    assert math.isclose(a["avg_cost"], c["avg_cost"], rel_tol=1e-9)
    # and the money is dollars, not 100x: 6 contracts of oats at ~3.50 USD/bu are ~105,000 USD
    assert 50_000 < c["decisions"][0][0] < 200_000, c["decisions"][0]
