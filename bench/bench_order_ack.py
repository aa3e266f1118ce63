"""Order acknowledged (place -> status Submitted): through OrderManager/RiskGate/BrokerGateway vs raw `ib_async` placeOrder.

Both paths talk to ONE embedded IB gateway (`hydra gateway-sim`, its own process, as in deployment) in one run:
  hydra  client 1: `await om._place(qc, side, qty, ref, price, rej, snap)`, what the order manager does once a stage's
         price is decided on a quote (the same quote gives the raw path its price): OrderContext with the account and
         working orders, RiskGate checks and the risk decision recorded, BrokerGateway -> ib_async), until
         the returned ChildOrder's status is "Submitted" (`child.wait(timeout, until=...)`, event-driven);
  raw    client 9: `ib.placeOrder(contract, LimitOrder(...))` until `trade.orderStatus.status == "Submitted"`
         (trade.statusEvent, event-driven); it subscribes to the same market data as hydra (a trading client needs quotes,
         and the quote stream on a connection delays that connection's acknowledgements).
Interleaved: each round alternates hydra/raw order by order (the first path alternates between rounds to cancel drift),
one order at a time, each waiting for its own ack (that wait is what is measured). Limits are BUY 10-20 ticks below the bid
(inside the 5% risk price band) so every order rests; each round's orders are cancelled at its end (hydra's through the
gate), then the round waits out the gate's 1 s throttle window; within a round orders are spaced 30 ms (about 25/s per path,
as a client under IB's 50 messages/s must be), so neither path meets the gate's or ib_async's pacing. Risk limits are generous so nothing is rejected; any rejection aborts the run.
Printed: n, median and p90 (microseconds) per path, the ratio of medians hydra / raw, and the budget (<= 1.15): PASS/FAIL
(exit status 1 on FAIL).
Usage: .venv/bin/python bench/bench_order_ack.py [--n 300] [--round 20] [--symbol ZO] [--time-scale 1] [--seed 1]
"""
import argparse, asyncio, logging, re, subprocess, sys, tempfile, time
from datetime import datetime, timezone
from pathlib import Path
import numpy as np

HYDRA = Path(sys.executable).parent / "hydra"
BUDGET = 1.15
START = "2026-01-05T15:00"          # Monday 09:00 Chicago: ZO and HE day sessions open


def start_gateway(seed, time_scale):
    p = subprocess.Popen([str(HYDRA), "gateway-sim", "--port", "0", "--seed", str(seed), "--start", START,
                          "--time-scale", str(time_scale)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    m = re.search(r":(\d+) ", p.stdout.readline())
    if not m: p.kill(); raise SystemExit("gateway-sim did not start")
    return p, int(m.group(1))


async def build_hydra(port, state_dir, time_scale):
    "The production rig on client 1: FillJournal, BrokerGateway, RiskGate (the broker's write-behind recorder), OrderManager."
    from hydra_nb.broker import BrokerGateway, sim_settings
    from hydra_nb.config import load_settings
    from hydra_nb.journal import FillJournal
    from hydra_nb.market import SimClock
    from hydra_nb.orders import OrderManager
    from hydra_nb.risk import CircuitBreakerManager, RiskGate
    st = load_settings(env={}, cwd=state_dir)
    st = st.replace("risk", max_position=1.0, max_order_quantity=50, max_orders_per_second=49.0)
    st = sim_settings(st, port)
    # the gateway's clock, mirrored here (same start, same scale); the broker uses it for timestamps and sessions
    clock = SimClock(mode="accelerated", start=datetime.fromisoformat(START).replace(tzinfo=timezone.utc), time_scale=time_scale)
    j = FillJournal(state_dir)
    b = BrokerGateway(st, journal=j, clock=clock, client_id=1)
    await b.connect()
    gate = RiskGate(b, CircuitBreakerManager.from_settings(st.risk, db=j.conn), st.risk, recorder=b.recorder)
    om = OrderManager(gate, b)
    return om, b, j


async def bench(port, n, per_round, symbol, time_scale, state_dir):
    from ib_async import IB, Future, LimitOrder
    from hydra_nb.core import child_ref
    om, b, j = await build_hydra(port, state_dir, time_scale)
    qc = await b.qualify(symbol)
    snap = await b.snapshot(qc)
    b.account()                                               # account stream present before the first order
    ib = IB()                                                 # raw: ib_async as shipped (its default pacing, like hydra's)
    await ib.connectAsync("127.0.0.1", port, clientId=9, timeout=10)
    c = qc.contract
    raw_c = Future(conId=c.conId, symbol=c.symbol, exchange=c.exchange, currency=c.currency,
                   lastTradeDateOrContractMonth=c.lastTradeDateOrContractMonth, multiplier=c.multiplier,
                   localSymbol=c.localSymbol, tradingClass=c.tradingClass)
    ib.reqMktData(raw_c, "", False, False)                    # the raw client streams the same quotes hydra's does: same load
    tick = qc.tick_size
    rng = np.random.default_rng(1)
    lat = {"hydra": [], "raw": []}

    async def one_hydra(i, price, snap):
        rej = []
        t0 = time.perf_counter()
        child = await om._place(qc, "BUY", 1, child_ref(f"bench{i}", 0, 0), price, rej, snap)
        if child is None: raise SystemExit(f"hydra order {i} not sent: {rej}")
        ok = await child.wait(10.0, until=lambda ch: ch.status == "Submitted")
        dt = time.perf_counter() - t0
        if not ok: raise SystemExit(f"hydra order {i}: no Submitted within 10 s (status {child.status}, {child.error})")
        lat["hydra"].append(dt)
        return child

    async def one_raw(i, price):
        ev = asyncio.Event()
        def on_status(tr):
            if tr.orderStatus.status == "Submitted": ev.set()
        t0 = time.perf_counter()
        tr = ib.placeOrder(raw_c, LimitOrder("BUY", 1, price, orderRef=f"raw{i}", tif="DAY"))
        tr.statusEvent += on_status
        if tr.orderStatus.status != "Submitted": await asyncio.wait_for(ev.wait(), 10.0)
        lat["raw"].append(time.perf_counter() - t0)
        return tr

    i, r = 0, 0
    while i < n:
        k = min(per_round, n - i)
        snap = await b.snapshot(qc)
        kids, trades = [], []
        for m in range(k):
            price = round(round((snap.bid - int(rng.integers(10, 21)) * tick) / tick) * tick, 10)
            first, second = (one_hydra, one_raw) if (r + m) % 2 == 0 else (one_raw, one_hydra)
            for f in (first, second):
                x = await (f(i + m, price, snap) if f is one_hydra else f(i + m, price))
                (kids if f is one_hydra else trades).append(x)
            await asyncio.sleep(0.03)                         # ~25 orders/s per path: under IB's 50 msgs/s, as a client must be
        i += k; r += 1
        for ch in kids: om.gate.cancel(om._as_order(ch), qc.contract)
        for tr in trades: ib.cancelOrder(tr.order)
        end = time.monotonic() + 10
        while time.monotonic() < end and not (all(ch.done for ch in kids) and all(t.isDone() for t in trades)):
            await asyncio.sleep(0.02)
        await asyncio.sleep(1.05)                             # the gate's and ib_async's 1 s windows empty again
    rejected = j.risk_decisions(allowed=False)
    ib.disconnect(); await b.disconnect(); j.close()
    if len(rejected): raise SystemExit(f"{len(rejected)} risk rejections: {rejected.reasons.tolist()[:3]}")
    return np.array(lat["hydra"]), np.array(lat["raw"])


def us(a, q): return float(np.percentile(a, q)) * 1e6


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=300, help="orders per path")
    ap.add_argument("--round", type=int, default=20, help="orders per path per round (then cancel and wait out the throttle)")
    ap.add_argument("--symbol", default="ZO")
    ap.add_argument("--time-scale", type=float, default=1.0, help="gateway clock speed (1 = real time from 2026-01-05 15:00 UTC)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    if not 1 <= a.round <= 24: raise SystemExit("--round must be in 1..24 (2 gate calls per order within the 49/s throttle)")
    logging.getLogger("ib_async").setLevel(logging.CRITICAL)
    logging.getLogger("hydra_nb").setLevel(logging.WARNING)
    p, port = start_gateway(a.seed, a.time_scale)
    try:
        with tempfile.TemporaryDirectory() as d:
            hy, raw = asyncio.run(bench(port, a.n, a.round, a.symbol.upper(), a.time_scale, d))
    finally:
        p.terminate(); p.wait(10)
    ratio = np.median(hy) / np.median(raw)
    print(f"order ack (place -> Submitted), {a.symbol.upper()} BUY 1 limit 10-20 ticks below the bid, gateway-sim in its own process "
          f"(clock x{a.time_scale:g}), interleaved rounds of {a.round}")
    print(f"  raw ib_async placeOrder (client 9)        : n {len(raw)}, median {us(raw, 50):8.1f} us, p90 {us(raw, 90):8.1f} us")
    print(f"  OrderManager/RiskGate/BrokerGateway (c. 1): n {len(hy)}, median {us(hy, 50):8.1f} us, p90 {us(hy, 90):8.1f} us")
    ok = ratio <= BUDGET
    print(f"  ratio of medians hydra / raw = {ratio:.3f} (budget <= {BUDGET:.2f}): {'PASS' if ok else 'FAIL'}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
