"""The seed's integration tests of the execution path, BrokerGateway -> RiskGate -> OrderManager -> FillJournal, over a
real socket: against the embedded IB gateway always, and against a real IB Gateway (paper) when IB_GATEWAY_HOST is set."""
import asyncio, math
from datetime import datetime, timedelta, timezone
import numpy as np
import pytest
from hydra_nb.broker import BrokerGateway
from hydra_nb.config import UnsafeConfigError, load_settings
from hydra_nb.journal import FillJournal, FillRecord
from hydra_nb.reconcile import SlippageReconciler
from exec_rig import REAL_IB, rig

# "sim-delayed": the embedded gateway as a paper account without a live subscription (IB's free delayed data only)
TARGETS = ["sim", "sim-delayed", pytest.param("ib", marks=pytest.mark.skipif(
    not REAL_IB, reason="IB_GATEWAY_HOST is not set: no real IB Gateway to test against (the embedded gateway is tested)"))]


def rig_for(target, **kw):
    if target != "sim-delayed": return rig(target, **kw)
    return rig("sim", gw_kw=dict(market_data="delayed", delayed_lag=60), **kw)


def pytest_report_header():
    return f"real IB Gateway: {REAL_IB or 'not set (IB_GATEWAY_HOST), skipped'}"


@pytest.mark.parametrize("target", TARGETS)
async def test_full_pipeline_paper_order_flow(target):
    async with rig_for(target) as r:
        assert r.broker.is_paper and r.broker.client_id == 1
        rep = await r.om.route("ZO", "BUY", 2, parent_ref="it-flow")
        assert rep.status == "filled" and rep.filled == 2, rep
        fills = r.journal.fills()
        assert fills.quantity.sum() == 2 and fills.order_ref.str.startswith("it-flow:").all()
        assert fills.arrival_mid.notna().all() and fills.predicted_slippage.notna().all()
        if target == "sim-delayed": assert set(fills.market_data_type) == {"delayed"}, fills.market_data_type
        decisions = r.journal.risk_decisions()
        assert decisions.allowed.all() and len(decisions) >= 1
        assert set(r.journal.order_events().status) >= {"Submitted", "Filled"}
        if r.gw is not None:
            assert set(fills.exec_id) == r.gateway_exec_ids()           # the journal's execIds are the gateway's
            assert r.gateway_refs() == sorted(set(r.gateway_refs()))
            await asyncio.sleep(0.2)                                     # commission reports trail the executions
            assert r.journal.fills().commission.notna().all()


@pytest.mark.parametrize("target", TARGETS)
async def test_full_pipeline_risk_blocked(target):
    async with rig_for(target) as r:
        eq = r.broker.account().equity
        day = r.broker.now().astimezone(__import__("zoneinfo").ZoneInfo(r.settings.schedule.timezone)).date().isoformat()
        r.broker._state(f"sod_equity:{day}", eq / 0.95)                  # today so far: -5% against the -2% breaker
        assert math.isclose(r.broker.account().daily_return, -0.05, rel_tol=1e-9)
        rep = await r.om.route("ZO", "BUY", 1, parent_ref="it-blocked")
        assert rep.status == "rejected" and rep.filled == 0, rep
        assert any("daily_loss" in x or "REDUCING" in x for x in rep.reasons), rep.reasons
        assert len(r.journal.fills()) == 0 and len(r.journal.order_events()) == 0
        d = r.journal.risk_decisions()
        assert len(d) == 1 and not d.allowed.iloc[0] and "daily_loss" in str(d.details.iloc[0]["tripped"])
        if r.gw is not None: assert r.gateway_refs() == []           # the gateway never saw an order


def test_reconciler_integration(tmp_path):
    "20 fills with known predicted and actual slippage: the reconciler's bias, RMSE and correlation are those numbers."
    rng = np.random.default_rng(3)
    pred = rng.uniform(0.001, 0.01, 20)
    act = 1.5 * pred + rng.normal(0, 0.001, 20)
    t0 = datetime(2026, 1, 5, 15, tzinfo=timezone.utc)
    with FillJournal(tmp_path) as j:
        for i in range(20):
            j.record_fill(FillRecord(f"x{i}", t0 + timedelta(minutes=i), "ZO", "BUY", 1, 3.5 + act[i], arrival_mid=3.5,
                                     spread=0.005, adv=1200, daily_vol=0.06, predicted_slippage=pred[i]))
        rep = SlippageReconciler(j, n_boot=200).reconcile()
    assert rep.n == 20
    assert math.isclose(rep.bias, float(np.mean(act - pred)), rel_tol=1e-6, abs_tol=1e-12)
    assert math.isclose(rep.rmse, float(np.sqrt(np.mean((act - pred) ** 2))), rel_tol=1e-6)
    assert math.isclose(rep.correlation, float(np.corrcoef(pred, act)[0, 1]), rel_tol=1e-6)


async def test_port_safety(tmp_path):
    st = load_settings(env={}, cwd=tmp_path)
    assert BrokerGateway(st, port=4002).is_paper is True
    assert BrokerGateway(st, port=4001).is_paper is False
    with pytest.raises(UnsafeConfigError, match="LIVE port"):                   # paper mode, live port: before any socket
        await BrokerGateway(st, port=4001).connect()
    live = st.replace("trading", mode="live")
    b = BrokerGateway(live, port=4001)
    with pytest.raises(UnsafeConfigError, match="HYDRA_LIVE_CONFIRMED"):        # live without the confirmation
        await b.connect()
    assert not b.is_connected()
    with pytest.raises(UnsafeConfigError, match="PAPER port"):
        await BrokerGateway(live, port=4002).connect()


async def test_bad_input_gets_a_clear_error_and_sends_nothing():
    "NaN/inf/zero/negative quantity, unknown symbol, no market data, a price band breach, a closed market: named, nothing sent."
    import dataclasses
    from hydra_nb.broker import BrokerError
    async with rig(scale=60, risk=dict(price_band=0.0001)) as r:        # a 1 bp band: every price the manager picks is outside
        for q, msg in ((float("nan"), "finite"), (float("inf"), "finite"), (0, "> 0"), (-3, "> 0")):
            with pytest.raises(ValueError, match=msg): await r.om.route("ZO", "BUY", q)
        with pytest.raises(BrokerError, match="unknown symbol 'XYZ'"): await r.om.route("XYZ", "BUY", 1)
        band = await r.om.route("HE", "BUY", 1, parent_ref="bad-band")
        assert band.status == "rejected" and any("the band is 0.01%" in x for x in band.reasons), band.reasons
        real_quote = r.gw.market.quote
        r.gw.market.quote = lambda sym: dataclasses.replace(real_quote(sym), bid=float("nan"), ask=float("nan")) if sym == "ZO" else real_quote(sym)
        r.broker.settings = r.broker.settings.replace("ib", request_timeout=1.0)
        r.broker._tickers.clear()
        with pytest.raises(BrokerError, match="no market data for ZO"): await r.om.route("ZO", "BUY", 1)
        r.gw.market.quote = real_quote
        r.gw.clock.advance(6 * 3600)                                      # 21:00 UTC: after the HE day session
        closed = await r.om.route("HE", "BUY", 1, parent_ref="bad-closed")
        assert closed.status == "refused" and "the market is closed" in closed.reasons[0], closed.reasons
        assert r.gateway_refs() == [] and len(r.journal.fills()) == 0         # nothing reached the gateway
