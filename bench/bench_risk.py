"""RiskGate pre-trade check latency (budget: median <= 10 us, p99 <= 50 us, all checks).

Measures `RiskGate.submit` on an order that passes every check (so every check runs: order fields, tick, band,
quantity and notional caps, contract multiplier, the four breakers, trading state, position cap on the worst case
with working orders on both sides, rate window),
with a no-op sink and no recorder, timing each call with perf_counter_ns; then the same with the breakers on a
state database (the gate re-checks it for changes by other processes once per second of its clock; the fake
clock advances 30 ms per call, so one call in 34 pays that), and in REDUCING (a tripped loss breaker that every
order breaches again: that must not cost a database write per order). Then, separately: with a recorder
(the record dict and its ISO time built per decision), a rejected order, a modify that replaces a working order
(`replaces_quantity`), and a cancel.

Baselines measured in the same run:
  - `bare`: a plain function doing the same comparisons inline on local floats (what the checks cost without
    any object model, attribute access, decision object or breaker bookkeeping);
  - `noop`: the cost of a Python call to a function that does nothing (the timer's and the call's floor).
Usage: .venv/bin/python bench/bench_risk.py [N]
"""
import gc, itertools, math, statistics, sys, tempfile, time
from pathlib import Path
from types import SimpleNamespace as NS

from hydra_nb.risk import CircuitBreakerManager, OrderContext, PreTradeChecks, RiskGate

N = int(sys.argv[1]) if len(sys.argv) > 1 else 50_000


class NoopSink:
    def place_order(self, contract, order): return None
    def modify_order(self, contract, order): return None
    def cancel_order(self, order): return None


class NoopRecorder:
    def record_risk_decision(self, rec): pass


def timed(fn, n=N, warm=2_000):
    "Per-call nanoseconds of fn() over n calls (after warm-up), GC disabled during the loop."
    for _ in range(warm): fn()
    pc = time.perf_counter_ns
    out = [0] * n
    gc.disable()
    try:
        for i in range(n):
            t0 = pc(); fn(); out[i] = pc() - t0
    finally: gc.enable()
    return out


def stats(ns):
    s = sorted(ns)
    return dict(median=s[len(s) // 2] / 1e3, p99=s[int(len(s) * 0.99)] / 1e3, mean=statistics.fmean(s) / 1e3)


def bare_checks(qty, price, ref, tick, mult, pos, equity, daily, peak, other, trade, sign, working,
                max_q=20, max_n=500_000.0, band=0.05, max_pos=0.10, th=(-0.02, -0.05, 0.10, -0.01)):
    "The same comparisons, inline on plain locals."
    ok = 0 < qty < math.inf and qty % 1 == 0 and 0 < price < 1e308
    n = price / tick; ok = ok and abs(n - round(n)) <= 1e-6
    ok = ok and abs(price / ref - 1.0) <= band and qty <= max_q and qty * price * mult <= max_n
    sod = equity - daily
    obs = (daily / sod, equity / peak - 1.0, (other + abs(pos) * ref * mult) / equity, trade / equity)
    ok = ok and obs[0] >= th[0] and obs[1] >= th[1] and obs[2] <= th[2] and obs[3] >= th[3]
    post = pos + sign * (working + qty)
    ok = ok and (other + abs(post) * ref * mult) / equity <= max_pos
    return ok


def noop(): return None


def main():
    contract = NS(symbol="ZO", conId=123, exchange="CBOT", multiplier="50")
    order = NS(action="BUY", totalQuantity=2.0, lmtPrice=400.25, orderType="LMT", orderRef="bench", orderId=11)
    ctx = OrderContext(reference_price=400.0, tick_size=0.25, multiplier=50, position=1, equity=1_000_000.0,
                       daily_pnl=-1_000.0, peak_equity=1_010_000.0, working_buy=1, working_sell=1)   # worst case +4
    # the clock advances 30 ms per call: 33 orders/s, under the 40/s throttle, so every submit passes
    clock = itertools.count(0.0, 0.03).__next__
    gate = RiskGate(NoopSink(), CircuitBreakerManager(), PreTradeChecks(), None, clock)
    d = gate.submit(contract, order, ctx)
    assert d.allowed, d.reasons
    sub = timed(lambda: gate.submit(contract, order, ctx))
    assert gate.submit(contract, order, ctx).allowed       # still passing after N calls

    tmp = tempfile.TemporaryDirectory()
    dgate = RiskGate(NoopSink(), CircuitBreakerManager(db=Path(tmp.name) / "hydra.db"), PreTradeChecks(), None,
                     itertools.count(0.0, 0.03).__next__)
    assert dgate.submit(contract, order, ctx).allowed
    dsub = timed(lambda: dgate.submit(contract, order, ctx))
    # REDUCING on the state DB: a daily-loss breaker tripped and still breached by every order; a reducing SELL passes
    ngate = RiskGate(NoopSink(), CircuitBreakerManager(db=Path(tmp.name) / "reducing.db"), PreTradeChecks(), None,
                     itertools.count(0.0, 0.03).__next__)
    sell = NS(action="SELL", totalQuantity=1.0, lmtPrice=400.25, orderType="LMT", orderRef="bench", orderId=11)
    losing = OrderContext(reference_price=400.0, tick_size=0.25, multiplier=50, position=3, equity=1_000_000.0,
                          daily_pnl=-30_000.0, peak_equity=1_030_000.0, working_sell=1)      # worst case +1
    d = ngate.submit(contract, sell, losing)
    assert d.allowed and str(d.trading_state) == "REDUCING", d
    nsub = timed(lambda: ngate.submit(contract, sell, losing))

    from ib_async import Future, Order            # real ib_async objects (the benchmark may import them; risk does not)
    fut = Future(symbol="ZO", lastTradeDateOrContractMonth="202703", exchange="CBOT", multiplier="50", conId=4242)
    iorder = Order(action="BUY", totalQuantity=2, orderType="LMT", lmtPrice=400.25, orderRef="bench")
    igate = RiskGate(NoopSink(), CircuitBreakerManager(), PreTradeChecks(), None, itertools.count(0.0, 0.03).__next__)
    assert igate.submit(fut, iorder, ctx).allowed
    isub = timed(lambda: igate.submit(fut, iorder, ctx), n=N // 2)

    rgate = RiskGate(NoopSink(), CircuitBreakerManager(), PreTradeChecks(), NoopRecorder(),
                     itertools.count(0.0, 0.03).__next__)
    rec = timed(lambda: rgate.submit(contract, order, ctx), n=N // 2)
    bad = NS(action="BUY", totalQuantity=float("nan"), lmtPrice=400.25, orderType="LMT", orderRef="bad", orderId=0)
    assert not gate.submit(contract, bad, ctx).allowed
    rej = timed(lambda: gate.submit(contract, bad, ctx), n=N // 2)
    mod = NS(**{**vars(order), "totalQuantity": 3.0})
    mctx = OrderContext(reference_price=400.0, tick_size=0.25, multiplier=50, position=1, equity=1_000_000.0,
                        daily_pnl=-1_000.0, peak_equity=1_010_000.0, working_buy=2, replaces_quantity=2)   # 1 - 2 + 2 + 3 = +4
    d = gate.modify(contract, mod, mctx)
    assert d.allowed and d.details["position_after"] == 4, d
    modt = timed(lambda: gate.modify(contract, mod, mctx), n=N // 2)
    canc = timed(lambda: gate.cancel(order), n=N // 2)
    ctor = timed(lambda: OrderContext(400.0, 0.25, 50, 1, 1_000_000.0, -1_000.0, 1_010_000.0), n=N // 2)

    args = (2.0, 400.25, 400.0, 0.25, 50.0, 1, 1_000_000.0, -1_000.0, 1_010_000.0, 0.0, 0.0, 1, 1)
    assert bare_checks(*args)
    bare = timed(lambda: bare_checks(*args))
    nop = timed(noop)

    rows = [("RiskGate.submit, passes all checks (no recorder)", sub),
            ("same, breakers on a state DB (re-sync every 1 s)", dsub),
            ("same, REDUCING on the state DB (breach persists)", nsub),
            ("same, ib_async Future + Order objects", isub),
            ("RiskGate.submit + recorder (record dict, ISO time)", rec),
            ("RiskGate.submit, rejected (nan quantity)", rej),
            ("RiskGate.modify, replaces a working order", modt),
            ("RiskGate.cancel (no recorder)", canc),
            ("OrderContext(...) construction + validation", ctor),
            ("baseline: bare inline comparisons", bare),
            ("baseline: no-op Python call", nop)]
    print(f"RiskGate benchmark, N={N} timed calls each (perf_counter_ns per call, GC off in the loop)")
    print(f"{'':54s} {'median us':>10s} {'p99 us':>8s} {'mean us':>8s}")
    for name, ns in rows:
        s = stats(ns); print(f"{name:54s} {s['median']:10.2f} {s['p99']:8.2f} {s['mean']:8.2f}")
    dgate.breakers.close(); ngate.breakers.close(); tmp.cleanup()
    s, b, z = stats(sub), stats(bare), stats(nop)
    print(f"\nratio submit / bare inline checks (median): {s['median'] / b['median']:.1f}x")
    print(f"ratio submit / no-op call (median):          {s['median'] / z['median']:.1f}x")
    for name, x in (("no DB", s), ("state DB", stats(dsub)), ("REDUCING, state DB", stats(nsub)), ("modify", stats(modt))):
        ok = x["median"] <= 10 and x["p99"] <= 50
        print(f"budget median <= 10 us, p99 <= 50 us ({name}): {'MET' if ok else 'NOT MET'} "
              f"(median {x['median']:.2f} us, p99 {x['p99']:.2f} us)")


if __name__ == "__main__":
    main()
