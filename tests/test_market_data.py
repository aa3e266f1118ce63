"""Market data permissions over real sockets with unmodified ib_async: an account without a live subscription (IB's 354,
10089, 10167, delayed tick types, marketDataType 3, 162 for bars), the broker's auto fallback, the runner on delayed data
(paper trades and records it, live refuses), and `hydra smoke-test` against a delayed-only account."""
import asyncio, tempfile
from datetime import date
import pytest
from ib_async import IB, Future
from hydra_nb.broker import BrokerError
from hydra_nb.gateway_sim import GatewaySim
from hydra_nb.market import SimClock
from exec_rig import make_parts, rig
from test_runner import running, gw_refs
from test_cli import run


async def ib_on(gw, client_id=7):
    ib, errors = IB(), []
    ib.errorEvent += lambda rid, code, msg, contract: errors.append((rid, code, msg))
    await ib.connectAsync("127.0.0.1", gw.port, clientId=client_id, timeout=5)
    c = gw.contracts[0]
    [k] = await ib.qualifyContractsAsync(Future(conId=c.con_id, exchange=c.exchange))
    return ib, k, errors


async def until(pred, seconds=3.0):
    for _ in range(int(seconds / 0.02)):
        if pred(): return True
        await asyncio.sleep(0.02)
    return pred()


async def test_no_market_data_is_354_and_bars_are_162():
    async with GatewaySim(port=0, seed=2, clock=SimClock(mode="stepped"), market_data="none") as gw:
        ib, k, errors = await ib_on(gw)
        try:
            tk = ib.reqMktData(k, "", False, False)
            assert await until(lambda: any(e[1] == 354 for e in errors)), errors
            assert "Requested market data is not subscribed" in next(e[2] for e in errors if e[1] == 354)
            assert tk.bid != tk.bid or tk.bid <= 0                       # no quote (ib_async's empty price is nan)
            bars = await ib.reqHistoricalDataAsync(k, "", "30 D", "1 day", "TRADES", True)
            assert list(bars) == []
            e162 = [e for e in errors if e[1] == 162]
            assert e162 and e162[0][2].startswith("Historical Market Data Service error message:No market data permissions for"), errors
        finally: ib.disconnect()


async def test_delayed_only_is_10089_then_10167_and_delayed_ticks_after_type_3():
    async with GatewaySim(port=0, seed=2, clock=SimClock(mode="stepped"), market_data="delayed", delayed_lag=120) as gw:
        ib, k, errors = await ib_on(gw)
        try:
            live = ib.reqMktData(k, "", False, False)
            assert await until(lambda: any(e[1] == 10089 for e in errors)), errors
            assert "Delayed market data is available" in next(e[2] for e in errors if e[1] == 10089)
            ib.cancelMktData(k)
            ib.reqMarketDataType(3)
            tk = ib.reqMktData(k, "", False, False)
            assert await until(lambda: tk.marketDataType == 3 and tk.bid > 0 and tk.ask > 0), (tk, errors)
            assert any(e[1] == 10167 and e[2] == "Requested market data is not subscribed. Displaying delayed market data." for e in errors)
            assert tk.bid == gw._md_quote(k.symbol, 3).bid                # ib_async maps tick 66 onto ticker.bid
            for _ in range(40):                                           # the market moves: delayed ticks stream, late
                gw.step(30); await asyncio.sleep(0.02)
            assert await until(lambda: any(t.tickType in (66, 67, 68, 74) for t in tk.ticks) or tk.bid == gw._md_quote(k.symbol, 3).bid)
            assert tk.bid == gw._md_quote(k.symbol, 3).bid
            bars = await ib.reqHistoricalDataAsync(k, "", "30 D", "1 day", "TRADES", True)
            assert len(bars) > 6                                          # delayed-only accounts still get daily bars here
        finally: ib.disconnect()


async def test_auto_falls_back_to_delayed_once_per_contract_and_live_refuses():
    async with rig(gw_kw=dict(market_data="delayed", delayed_lag=60)) as r:
        snap = await r.broker.snapshot("HE")
        assert snap.market_data_type == "delayed" and snap.bid > 0 and snap.ask >= snap.bid
        await r.broker.snapshot("HE"); await r.broker.snapshot("ZO")
        fell = [e for e in r.broker.events if e[1] == "market_data_delayed"]
        assert len(fell) == 2 and "10089" in fell[0][2], fell                   # once per contract, not per tick
        for mode, client in (("live", 8), ("delayed", 9)):                       # a broker told `live` gets IB's refusal
            j, b, _, _ = await make_parts(r.settings.replace("ib", market_data_type=mode), r.gw.port, r.gw.clock,
                                          tempfile.mkdtemp(), client_id=client)
            try:
                if mode == "live":
                    with pytest.raises(BrokerError, match="IB error 10089"): await b.snapshot("HE", timeout=3)
                else: assert (await b.snapshot("HE")).market_data_type == "delayed" and not any(e[1] == "market_data_delayed" for e in b.events)
            finally: await b.disconnect(); j.close()


async def test_refused_bars_give_a_no_market_data_cycle_naming_162(tmp_path):
    async with running(tmp_path, 3) as (gw, r):
        gw.set_market_data("none")
        s = await r.run_cycle()
        assert s["status"] == "failed" and s["failure"] == "no_market_data", s
        assert "IB error 162" in s["reason"] and "No market data permissions" in s["reason"], s["reason"]
        assert r.cycle_row(date(2026, 10, 19))["failure"] == "no_market_data" and gw_refs(gw) == []


async def test_paper_trades_on_delayed_data_and_records_it(tmp_path):
    async with running(tmp_path, 3) as (gw, r):
        gw.set_market_data("delayed", delayed_lag=60)
        s = await r.run_cycle()
        assert s["status"] == "done", s
        assert s["market_data_type"] == "delayed" and set(s["market_data"].values()) == {"delayed"}, s
        assert r.cycle_row(date(2026, 10, 19))["summary"]["market_data_type"] == "delayed"
        assert r.cycles().iloc[0].market_data_type == "delayed"
        fills = r.journal.fills()
        assert len(fills) > 0 and set(fills.market_data_type) == {"delayed"}, fills
        assert set(r.journal.parents().market_data_type) == {"delayed"}


async def test_live_mode_refuses_to_route_on_delayed_data(tmp_path):
    "The decision over a real gateway: the runner connected (paper port), then told it trades live; delayed quotes: no orders."
    async with running(tmp_path, 3) as (gw, r):
        gw.set_market_data("delayed", delayed_lag=60)
        r.settings = r.settings.replace("trading", mode="live")
        s = await r.run_cycle()
        assert s["status"] == "failed" and s["failure"] == "no_market_data", s
        assert "live trading does not route on delayed market data" in s["reason"], s["reason"]
        assert gw_refs(gw) == [] and len(r.journal.fills()) == 0


def test_smoke_test_uses_the_cli_client_and_passes_on_delayed_data(isolated_env):
    r = run("smoke-test", "--sim", "--sim-market-data", "delayed", "--symbol", "HE")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert "client 3," in lines[2] and "(delayed data)" in lines[3], lines             # [ib] cli_client_id = 3
    assert lines[-1] == "PASS" and "Traceback" not in r.stderr
