"""Benchmark of the simulated market (hydra_nb.market): cost of submit/cancel/quote/step and of simulate_daily_bars.

Prints medians and p99 per call, and each figure as a ratio against a baseline measured in the same run: the bare
bookkeeping any order store does (create a small record, insert it into a dict and a sorted price list).
Run: .venv/bin/python bench/bench_market.py
"""
import bisect, gc, time
from dataclasses import dataclass
import numpy as np
from hydra_nb.market import Market, simulate_daily_bars


def per_call(fn, n, warm=200):
    for _ in range(warm): fn()
    gc.collect(); gc.disable()
    ts = np.empty(n)
    pc = time.perf_counter_ns
    try:
        for i in range(n):
            t0 = pc(); fn(); ts[i] = pc() - t0
    finally:
        gc.enable()
    return np.median(ts) / 1e3, np.percentile(ts, 99) / 1e3


@dataclass
class _Rec:
    oid: int; sym: str; action: str; qty: int; px: float


def main():
    # baseline: bare order-store bookkeeping
    store, levels, ctr = {}, [], iter(range(10**9))
    def base():
        i = next(ctr); store[i] = _Rec(i, "ZO", "BUY", 1, 3.5); bisect.insort(levels, i % 50)
    base_med, base_p99 = per_call(base, 20000)
    print(f"baseline (record + dict + sorted insert): median {base_med:.2f} us, p99 {base_p99:.2f} us")

    rows = []
    m = Market(seed=0)
    q = m.quote("ZO"); tick = m.instruments["ZO"].tick
    ids = iter(range(1, 10**9))
    far = round(q.bid - 20 * tick, 10)
    rows.append(("submit, non-marketable 1-lot (ZO)", *per_call(lambda: m.submit(next(ids), "ZO", "BUY", 1, far), 20000)))
    print(f"  resting orders now: {len(m.open_orders())}")
    def sub_cancel():
        i = next(ids); m.submit(i, "ZO", "SELL", 1, round(q.ask + 20 * tick, 10)); m.cancel(i)
    rows.append(("submit + cancel, 1-lot (ZO)", *per_call(sub_cancel, 10000)))
    rows.append(("quote (ZO)", *per_call(lambda: m.quote("ZO"), 20000)))
    def take(n):
        m2 = Market(seed=1)   # 1,700 x 5 s from 09:00 Chicago: all inside the session
        def f():
            qq = m2.quote("HE"); m2.submit(next(ids), "HE", "BUY", n, round(qq.ask + 50 * 0.025, 10)); m2.step(5)
        return f
    rows.append(("quote + marketable 1-lot (HE) + step(5)", *per_call(take(1), 1500)))
    rows.append(("quote + marketable 200-lot (HE) + step(5)", *per_call(take(200), 1500)))
    # stepping with orders resting near the touch (they get screened and partly filled)
    m3 = Market(seed=2)
    q3 = m3.quote("ZO")
    for i in range(1000):
        m3.submit(("n", i), "ZO", "BUY" if i % 2 else "SELL", 1, round((q3.bid - i % 5 * tick) if i % 2 else (q3.ask + i % 5 * tick), 10))
    # 1,000 steps of 10 s from 09:00 Chicago stay inside the session (which closes at 13:20)
    rows.append(("step(10) in session, 1,000 resting orders near the touch", *per_call(lambda: m3.step(10), 1000, warm=20)))
    m5 = Market(seed=4); q5 = m5.quote("ZO")
    for i in range(20000): m5.submit(i, "ZO", "BUY", 1, round(q5.bid - (40 + i % 50) * tick, 10))
    rows.append(("step(10) in session, 20,000 resting orders far from market", *per_call(lambda: m5.step(10), 1000, warm=20)))
    m6 = Market(seed=5)
    rows.append(("step(10) in session, no orders", *per_call(lambda: m6.step(10), 1000, warm=20)))
    m4 = Market(seed=3)
    rows.append(("step(1 day), no orders", *per_call(lambda: m4.step(86400), 300, warm=10)))
    rows.append(("simulate_daily_bars(ZO, 250 days)", *per_call(lambda: simulate_daily_bars("ZO", 250, seed=4), 20, warm=2)))
    rows.append(("simulate_daily_bars(ZO, 2,500 days)", *per_call(lambda: simulate_daily_bars("ZO", 2500, seed=4), 5, warm=1)))

    print(f"{'operation':58s} {'median':>12s} {'p99':>12s} {'ratio vs baseline (median)':>28s}")
    for name, med, p99 in rows:
        print(f"{name:58s} {med:9.2f} us {p99:9.2f} us {med / base_med:20.1f}x")
    sub = rows[0][1]
    print(f"\nnon-marketable submit median {sub:.2f} us -> the market alone could acknowledge ~{1e6 / sub:,.0f} orders/s "
          f"(gateway budget: >= 2,000 acks/s end to end)")


if __name__ == "__main__":
    main()
