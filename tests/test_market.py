"""Statistical tests of the simulated market (hydra_nb.market): regimes, fills, slippage, invariants."""
import math
import numpy as np
import pandas as pd
import pytest

from hydra_nb.market import (DEFAULT_INSTRUMENTS, REGIMES, simulate_daily_bars, sign_hit_rate)

SEEDS = [0, 1, 2, 3, 4, 5]


@pytest.mark.parametrize("symbol", ["ZO", "HE"])
def test_momentum_then_mean_reversion_hit_rates(symbol):
    "Sign-of-yesterday model: clearly > 50% in momentum, clearly < 50% after the switch to mean_reversion."
    hm, hr = [], []
    for s in SEEDS:
        df = simulate_daily_bars(symbol, 500, seed=s, regimes={0: "momentum", 250: "mean_reversion"})
        hm.append(sign_hit_rate(df.close.iloc[:250])); hr.append(sign_hit_rate(df.close.iloc[250:]))
    # theory for an AR(1) with phi = +-0.45: 1/2 +- asin(0.45)/pi = 0.649 / 0.351
    assert min(hm) > 0.56 and max(hr) < 0.44, (hm, hr)
    assert abs(np.mean(hm) - 0.649) < 0.04 and abs(np.mean(hr) - 0.351) < 0.04, (np.mean(hm), np.mean(hr))


def test_calm_vs_volatile_vol_ratio():
    ratios = []
    for s in SEEDS:
        df = simulate_daily_bars("ZO", 500, seed=s, regimes={0: "calm", 250: "volatile"})
        lr = np.diff(np.log(df.close.values))
        ratios.append(lr[250:].std() / lr[:249].std())
        # each regime's realized daily vol is the configured one (daily_vol * vol_scale)
        assert lr[:249].std() == pytest.approx(0.018 * 0.5, rel=0.2)
        assert lr[250:].std() == pytest.approx(0.018 * 2.0, rel=0.2)
    assert np.mean(ratios) == pytest.approx(4.0, rel=0.1), ratios


def test_daily_bars_deterministic_and_seed_dependent():
    a = simulate_daily_bars("HE", 60, seed=7)
    pd.testing.assert_frame_equal(a, simulate_daily_bars("HE", 60, seed=7))
    assert not a.close.equals(simulate_daily_bars("HE", 60, seed=8).close)
    # a longer run starts with the same days
    pd.testing.assert_frame_equal(a, simulate_daily_bars("HE", 300, seed=7).iloc[:60])


def test_volume_around_adv_and_prices_stay_realistic():
    for sym, inst in DEFAULT_INSTRUMENTS.items():
        df = simulate_daily_bars(sym, 2000, seed=1, regimes={0: "momentum"})
        assert df.volume.mean() == pytest.approx(inst.adv, rel=0.1)
        assert df.close.min() > inst.start_price / 4 and df.close.max() < inst.start_price * 4


# ---------------------------------------------------------------- fills
from datetime import datetime, timezone, timedelta
from hydra_nb.market import Market, SimClock, OrderRejected


def _marketable_slippage(sym, sizes, n=200, seed=0, bias=0.0, noise=0.0, mult=1.0):
    """Mean signed slippage (price units, + = cost) vs the arrival mid of fully-filled marketable orders, one every
    30 simulated minutes (the book has refilled), random side; also the mean sigma*P and quoted spread."""
    m = Market(seed=seed, slippage_bias=bias, slippage_noise=noise, slippage_multiplier=mult)
    inst = m.instruments[sym]
    rng = np.random.default_rng(seed)
    out, oid = {}, 0
    for q in sizes:
        rows = []
        for _ in range(n):
            m.step(1800)
            while not m.session_open(sym):
                m.step(1800)
            qt = m.quote(sym)
            buy = rng.random() < 0.5
            oid += 1
            lim = qt.ask + 400 * inst.tick if buy else max(inst.tick, qt.bid - 400 * inst.tick)
            fs = m.submit(oid, sym, "BUY" if buy else "SELL", q, round(lim, 10))
            assert sum(f.quantity for f in fs) == q and all(f.liquidity == "taker" for f in fs)
            avg = fs[-1].avg_price
            rows.append(((avg - qt.mid) if buy else (qt.mid - avg), inst.daily_vol * qt.mid, qt.ask - qt.bid))
        out[q] = np.array(rows).mean(axis=0)
    return inst, out


@pytest.mark.parametrize("sym,sizes", [("ZO", [1, 3, 10, 30, 60, 120, 300]), ("HE", [1, 10, 50, 250, 1250, 5000])])
def test_slippage_close_to_square_root_model(sym, sizes):
    inst, out = _marketable_slippage(sym, sizes)
    x, y, ratios = [], [], []
    for q, (slip, sig_p, spread) in out.items():
        model = spread / 2 + inst.impact_k * sig_p * math.sqrt(q / inst.adv)
        ratios.append(slip / model)
        x.append(sig_p * math.sqrt(q / inst.adv)); y.append(slip - spread / 2)
        print(f"{sym} qty={q:5d} ({q / inst.adv:6.2%} ADV): slippage {slip / inst.tick:6.2f} ticks, "
              f"model {model / inst.tick:6.2f} ticks, actual/model {slip / model:.2f}")
    x, y = np.array(x), np.array(y)
    big = np.array(sizes) / inst.adv >= 0.04
    k_eff = float((x[big] @ y[big]) / (x[big] @ x[big]))
    print(f"{sym}: fitted k_eff (orders >= 4% ADV) = {k_eff:.3f} vs impact_k = {inst.impact_k}")
    slips = [out[q][0] for q in sizes]
    assert all(np.diff(slips) >= -0.05 * inst.tick), slips                  # grows with size
    assert all(0.5 <= r <= 2.0 for r in ratios), ratios                      # close to the model...
    assert all(0.85 <= r <= 1.2 for r, b in zip(ratios, big) if b), ratios # ...and closest for large orders
    assert not np.allclose(ratios, 1.0, atol=0.02)                           # ...but not equal to it
    assert 0.8 * inst.impact_k <= k_eff <= 1.2 * inst.impact_k, k_eff
    # the growth is square-root-like between the two largest sizes (e.g. 4x the size -> ~2x the impact part)
    qa, qb = sizes[-2], sizes[-1]
    growth = (out[qb][0] - out[qb][2] / 2) / (out[qa][0] - out[qa][2] / 2)
    expected = math.sqrt(qb / qa)
    print(f"{sym}: impact growth {qa}->{qb}: {growth:.2f} (sqrt law: {expected:.2f})")
    assert 0.8 * expected <= growth <= 1.25 * expected, (growth, expected)


@pytest.mark.parametrize("bias,noise", [(2.0, 0.0), (1.5, 1.0), (-0.5, 0.0)])
def test_slippage_bias_shifts_by_configured_ticks(bias, noise):
    sizes = [5, 40]
    inst, base = _marketable_slippage("ZO", sizes, n=300, seed=11)
    _, shifted = _marketable_slippage("ZO", sizes, n=300, seed=11, bias=bias, noise=noise)
    for q in sizes:
        d = (shifted[q][0] - base[q][0]) / inst.tick
        print(f"bias {bias:+.1f} noise {noise}: qty {q}: shift {d:+.2f} ticks")
        assert d == pytest.approx(bias, abs=0.25)


@pytest.mark.parametrize("mult", [3.0, 0.5])
def test_slippage_multiplier_scales_the_cost(mult):
    "X times the distance from the mid (what `hydra paper-trade --slippage-bias X` sets); the wide limit never binds here."
    sizes = [5, 40]
    inst, base = _marketable_slippage("ZO", sizes, n=200, seed=11)
    _, scaled = _marketable_slippage("ZO", sizes, n=200, seed=11, mult=mult)
    for q in sizes:
        ratio = scaled[q][0] / base[q][0]
        print(f"multiplier {mult}: qty {q}: cost ratio {ratio:.2f}")
        assert ratio == pytest.approx(mult, rel=0.15) if mult >= 1 else 0 < ratio < 1


def test_limits_never_violated_over_random_orders():
    "Thousands of random orders, modifications, cancels and steps: no buy above its limit, no sell below it, no overfill."
    rng = np.random.default_rng(5)
    m = Market(seed=5)
    limits, qty, filled, nfills = {}, {}, {}, 0

    def check(fills):
        nonlocal nfills
        for f in fills:
            lim = limits[f.order_id]
            if f.action == "BUY":
                assert f.price <= lim + 1e-9, (f, lim)
            else:
                assert f.price >= lim - 1e-9, (f, lim)
            filled[f.order_id] += f.quantity
            assert filled[f.order_id] == f.cum_qty <= qty[f.order_id]
            assert f.remaining == qty[f.order_id] - f.cum_qty
            nfills += 1

    oid = 0
    for it in range(4000):
        r = rng.random()
        if r < 0.6 or not m.open_orders():
            sym = "ZO" if rng.random() < 0.5 else "HE"
            inst = m.instruments[sym]
            qt = m.quote(sym)
            buy = rng.random() < 0.5
            lim = round((round(qt.mid / inst.tick) + int(rng.integers(-12, 13))) * inst.tick, 10)
            oid += 1
            limits[oid], qty[oid], filled[oid] = lim, int(rng.integers(1, 60)), 0
            check(m.submit(oid, sym, "BUY" if buy else "SELL", qty[oid], lim))
        elif r < 0.7:
            o = m.open_orders()[int(rng.integers(len(m.open_orders())))]
            inst = m.instruments[o.symbol]
            newlim = round(o.limit_price + int(rng.integers(-5, 6)) * inst.tick, 10)
            newq = o.filled + int(rng.integers(1, 40))
            limits[o.order_id], qty[o.order_id] = newlim, newq
            check(m.modify(o.order_id, quantity=newq, limit_price=newlim))
        elif r < 0.8:
            o = m.open_orders()[0]
            assert m.cancel(o.order_id) == o.remaining
        else:
            check(m.step(float(rng.choice([1, 10, 60, 600, 3600]))))
        if it % 500 == 0:
            for o in m.open_orders():
                assert 0 <= o.filled < o.quantity and o.status == "Submitted"
    check(m.step(5 * 24 * 3600))
    assert nfills > 2000
    seqs = [f.exec_seq for f in m.executions()]
    assert seqs == list(range(1, len(seqs) + 1)) and len({f.exec_id for f in m.executions()}) == len(seqs)


def test_deterministic_for_a_seed():
    def run(seed):
        m = Market(seed=seed)
        rng = np.random.default_rng(0)
        out = []
        for i in range(300):
            qt = m.quote("ZO")
            out += m.submit(i, "ZO", "BUY" if i % 2 else "SELL", int(rng.integers(1, 20)),
                            round(qt.bid + (rng.integers(-3, 6)) * DEFAULT_INSTRUMENTS["ZO"].tick, 10))
            out += m.step(30)
        return [(f.order_id, f.quantity, f.price, f.time, f.liquidity) for f in out]
    a = run(1)
    assert a == run(1) and a != run(2) and len(a) > 50


def test_daily_bar_is_the_intraday_path():
    "Over one stepped session, the day's bar is exactly the open/high/low/close of the quoted last trades."
    m = Market(seed=4, clock=SimClock("stepped", start=datetime(2026, 2, 4, 14, 30, tzinfo=timezone.utc)))
    lasts, vols = [], []
    while m.session_open("HE"):
        q = m.quote("HE"); lasts.append(q.last); vols.append(q.volume)
        m.step(10)
    q = m.quote("HE"); lasts.append(q.last)
    bar = m.daily_bars("HE", 3).iloc[-1]
    assert (bar.open, bar.high, bar.low, bar.close) == (lasts[0], max(lasts), min(lasts), lasts[-1])
    assert bar.volume == q.volume and np.all(np.diff(vols) >= 0)
    m.step(24 * 3600)
    b2 = m.daily_bars("HE", 3)
    assert b2.iloc[-2].tolist() == bar.tolist() and b2.iloc[-1].open == bar.close


@pytest.mark.parametrize("seed", [0, 9])
def test_market_history_equals_simulate_daily_bars(seed):
    m = Market(seed=seed, history_days=300, regime="mean_reversion")
    for sym in ("ZO", "HE"):
        h = m.daily_bars(sym, 400)
        assert len(h) == 301
        ref = simulate_daily_bars(sym, 300, seed=seed, regimes={0: "mean_reversion"}, start=h.index[0])
        pd.testing.assert_frame_equal(h.iloc[:300], ref.drop(columns="regime"))


def test_halt_blocks_fills_until_resumed():
    m = Market(seed=6)
    qt = m.quote("ZO")
    m.submit(1, "ZO", "BUY", 2, qt.bid)
    m.submit(2, "ZO", "SELL", 2, qt.ask)
    m.halt("ZO")
    with pytest.raises(OrderRejected, match="halted"):
        m.submit(3, "ZO", "BUY", 1, qt.bid)
    with pytest.raises(OrderRejected, match="halted"):
        m.modify(1, limit_price=qt.ask)
    assert m.step(3 * 3600) == []
    m.halt("ZO", False)
    fills = m.step(24 * 3600)
    assert {f.order_id for f in fills} == {1, 2}


def test_resting_fill_rate_follows_taker_flow():
    """A 1-lot joined at the bid waits for the displayed size ahead of it to trade: its median wait is of the order
    of queue / (taker sell rate), and a thicker market (HE) fills it much faster than a thin one (ZO)."""
    waits = {}
    for sym in ("ZO", "HE"):
        m = Market(seed=8)
        w = []
        for i in range(150):
            m.step(3600)
            while not m.session_open(sym, liquid=True):      # the day session: ZO's overnight has no taker flow
                m.step(3600)
            qt = m.quote(sym)
            m.submit(i, sym, "BUY", 1, qt.bid)
            t = 0
            while m.order(i).status == "Submitted" and t < 3600:
                m.step(10); t += 10
            if m.order(i).status == "Submitted":
                m.cancel(i)
            w.append(t)
        waits[sym] = float(np.median(w))
    inst = DEFAULT_INSTRUMENTS
    print("median wait (s):", waits)
    # ZO: ~3 lots ahead, taker sells ~ADV/2 over 17,400 s -> ~0.035 lots/s -> on the order of 100 s
    assert 20 <= waits["ZO"] <= 600
    assert waits["HE"] < waits["ZO"]


@pytest.mark.parametrize("sym,sizes,mult", [("ZO", [1, 3, 10, 30, 120], 1.0), ("HE", [1, 20, 100, 500, 2000], 1.0), ("ZO", [3, 30], 2.5)])
def test_taker_cost_follows_the_documented_ground_truth(sym, sizes, mult):
    "The market notebook's formula (`taker_cost_ticks`: X times half the spread plus the average depth walked) is what a taker pays."
    from hydra_nb.market import taker_cost_ticks
    inst, out = _marketable_slippage(sym, sizes, n=150, seed=3, mult=mult)
    for q in sizes:
        slip, sig_p, spread = out[q]
        truth = taker_cost_ticks(inst, q, price=sig_p / inst.daily_vol, multiplier=mult)
        print(f"{sym} x{mult} qty={q}: measured {slip / inst.tick:.2f} ticks, ground truth {truth:.2f}")
        assert slip / inst.tick == pytest.approx(truth, rel=0.15, abs=0.1), (q, slip / inst.tick, truth)
