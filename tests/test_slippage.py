"""Slippage model: vectorized paths agree with the scalar path; bad input is refused by name."""
import math
import numpy as np
import pandas as pd
import pytest
from hydra_nb.slippage import (estimate_slippage, actual_slippage, convert_slippage, implementation_shortfall,
                               side_sign, DEFAULT_IMPACT_COEFFICIENT)


def test_vectorized_equals_scalar_random():
    rng = np.random.default_rng(7)
    n = 500
    q, v = rng.integers(0, 5000, n).astype(float), rng.uniform(0, 1e5, n)
    s, sig, k = rng.uniform(0, 1, n), rng.uniform(0, 10, n), rng.uniform(0, 2, n)
    vec = estimate_slippage(q, v, s, sig, k)
    ref = [s[i] / 2 + k[i] * sig[i] * math.sqrt(q[i] / max(v[i], 1)) for i in range(n)]
    np.testing.assert_allclose(vec, ref, rtol=1e-12)
    ser = estimate_slippage(pd.Series(q), pd.Series(v), s, sig, k)
    assert isinstance(ser, pd.Series) and ser.name == "predicted_slippage"
    np.testing.assert_allclose(ser.to_numpy(), ref, rtol=1e-12)


def test_default_k_and_monotone_in_size():
    assert DEFAULT_IMPACT_COEFFICIENT == 0.1
    sizes = np.array([0, 1, 10, 100, 1000.0])
    est = estimate_slippage(sizes, 1e4, 0.5, 3.0)
    assert est[0] == pytest.approx(0.25) and np.all(np.diff(est) > 0)


@pytest.mark.parametrize("bad,name", [
    (dict(order_size=np.nan), "order_size must be finite"),
    (dict(order_size=-3), "order_size must be >= 0"),
    (dict(daily_volume=-1.0), "daily_volume must be >= 0"),
    (dict(spread=np.inf), "spread must be finite"),
    (dict(daily_volatility=-0.1), "daily_volatility must be >= 0"),
    (dict(impact_coefficient=np.nan), "impact_coefficient must be finite"),
    (dict(order_size=np.array([1.0, np.nan])), "order_size must be finite"),
    (dict(spread=pd.Series([0.1, -0.1])), "spread must be >= 0"),
])
def test_bad_inputs_name_the_argument(bad, name):
    kw = dict(order_size=10, daily_volume=1e4, spread=0.25, daily_volatility=2.0, impact_coefficient=0.1)
    kw.update(bad)
    with pytest.raises(ValueError, match=name):
        estimate_slippage(**kw)


def test_signed_slippage_units():
    sides = np.array(["BUY", "SELL", "BOT", "SLD"])
    fills = np.array([100.5, 99.75, 99.75, 100.25])
    mid = np.full(4, 100.0)
    px = actual_slippage(sides, fills, mid)
    np.testing.assert_allclose(px, [0.5, 0.25, -0.25, -0.25])
    np.testing.assert_allclose(actual_slippage(sides, fills, mid, units="ticks", tick_size=0.25), [2, 1, -1, -1])
    np.testing.assert_allclose(actual_slippage(sides, fills, mid, units="bps"), px / 100 * 1e4)
    assert convert_slippage(0.5, "ticks", tick_size=0.125) == 4.0
    with pytest.raises(ValueError, match="tick_size must be > 0"):
        convert_slippage(0.5, "ticks", tick_size=0)
    with pytest.raises(ValueError, match="side must be BUY or SELL"):
        side_sign(["BUY", ""])


def test_shortfall_sell_partial_fill_market_fell():
    # sell 8 at arrival mid 50: 3 filled at 49.9, the rest abandoned at 49.0 -> both parts are costs
    sf = implementation_shortfall("SELL", 8, 50.0, [49.9], [3], end_price=49.0, fees=2.5, multiplier=10)
    assert sf.trading_cost == pytest.approx(3 * 0.1 * 10)
    assert sf.opportunity_cost == pytest.approx(5 * 1.0 * 10)
    assert sf.total == pytest.approx(3 + 50 + 2.5)
    with pytest.raises(ValueError, match="fees must be finite"):
        implementation_shortfall("SELL", 8, 50.0, [49.9], [3], end_price=49.0, fees=float("nan"))
