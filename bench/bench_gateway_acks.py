"""Order acknowledgements per second from the embedded IB gateway to ONE unmodified ib_async client.

The gateway runs as its own process (`hydra gateway-sim`, as in deployment), the client in this one.
Figures:
  baseline   raw-socket round trip (reqCurrentTime -> currentTime, no ib_async): median / p99 latency
  sequential ib_async placeOrder -> orderStatus Submitted, one at a time: median / p99 latency, acks/s
  pipelined  ib_async places N orders back to back, time until all are Submitted: acks/s (budget >= 2,000/s)
  raw pipe   the same N orders as raw frames without ib_async: the gateway's own capacity
Ratio printed: sequential ack latency / raw round trip (the cost of ib_async plus the order path).
ib_async paces its own requests to 45/s by default (IB's documented limit); the benchmark sets
`ib.client.MaxRequests = 0` so that it measures the gateway, not that throttle.
Usage: .venv/bin/python bench/bench_gateway_acks.py [--n 2000] [--repeats 3]
"""
import argparse, asyncio, logging, re, struct, subprocess, sys, time
from pathlib import Path
import numpy as np

HYDRA = Path(sys.executable).parent / "hydra"
BUDGET = 2000.0
START = "2026-01-05T15:00"   # Monday 09:00 Chicago, in real time from there: the sessions are open whatever the wall clock says
                             # (an order placed while its market is closed is held PreSubmitted with warning 399, as at IB)


def start_gateway():
    p = subprocess.Popen([str(HYDRA), "gateway-sim", "--port", "0", "--seed", "1", "--start", START], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True)
    m = re.search(r":(\d+) ", p.stdout.readline())
    if not m: p.kill(); raise SystemExit("gateway-sim did not start")
    return p, int(m.group(1))


async def raw_round_trips(port, n):
    from hydra_nb.gateway_sim import API_PREFIX, Out, decode_frames, encode_message
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(API_PREFIX + struct.pack(">I", 9) + b"v157..178")
    w.write(encode_message([Out.START_API, 2, 99, ""]))
    buf, got = bytearray(), []
    while not any(f[0] == "15" for f in got):
        buf += await r.read(65536); got += decode_frames(buf)
    lat, req = [], encode_message([Out.REQ_CURRENT_TIME, 1])
    for _ in range(n):
        t0 = time.perf_counter(); w.write(req)
        while True:
            fr = decode_frames(buf)
            if any(f[0] == "49" for f in fr): break
            buf += await r.read(65536)
        lat.append(time.perf_counter() - t0)
    w.close()
    return np.array(lat)


async def raw_pipelined_acks(port, n, con_id, px):
    "The gateway's own capacity: raw placeOrder frames back to back, count orderStatus Submitted (no ib_async)."
    from hydra_nb.gateway_sim import API_PREFIX, Out, decode_frames, encode_message
    r, w = await asyncio.open_connection("127.0.0.1", port)
    w.write(API_PREFIX + struct.pack(">I", 9) + b"v157..178")
    w.write(encode_message([Out.START_API, 2, 98, ""]))
    buf, got, first = bytearray(), [], None
    while first is None:
        buf += await r.read(65536)
        for f in decode_frames(buf):
            if f[0] == "9": first = int(f[2])
    msgs = b"".join(encode_message([Out.PLACE_ORDER, first + i, con_id, "", "FUT", "", 0.0, "", "", "CME", "", "USD", "", "",
                                    "", "", "BUY", 1, "LMT", px, "", "DAY", "", "", "", 0, "", 1, 0] + [""] * 100)
                    for i in range(n))
    t0 = time.perf_counter(); w.write(msgs); acks = 0
    while acks < n:
        buf += await r.read(1 << 20)
        acks += sum(1 for f in decode_frames(buf) if f[0] == "3" and f[2] == "Submitted")
    dt = time.perf_counter() - t0
    w.write(encode_message([Out.REQ_GLOBAL_CANCEL, 1])); await asyncio.sleep(0.3); w.close()
    return n / dt


async def ib_async_acks(port, n_seq, n_pipe):
    from ib_async import IB, Future, LimitOrder
    from ib_async import ContFuture
    ib = IB()
    ib.client.MaxRequests = 0         # ib_async paces itself to 45 requests/s by default (IB's limit); off, to measure the gateway
    await ib.connectAsync("127.0.0.1", port, clientId=1, timeout=5)
    [cd] = await ib.reqContractDetailsAsync(ContFuture("HE", exchange="CME"))
    c = Future(conId=cd.contract.conId, exchange="CME")
    [t] = await ib.reqTickersAsync(c)
    px = round(t.bid - 80 * 0.025, 3)                      # far from the market: rests, never fills
    lat = []
    for _ in range(n_seq):
        t0 = time.perf_counter()
        tr = ib.placeOrder(c, LimitOrder("BUY", 1, px))
        ev = asyncio.Event()
        tr.statusEvent += lambda trade: ev.set() if trade.orderStatus.status == "Submitted" else None
        if tr.orderStatus.status != "Submitted": await ev.wait()
        lat.append(time.perf_counter() - t0)
    done = asyncio.Event(); left = [n_pipe]
    def on_status(trade):
        if trade.orderStatus.status == "Submitted" and not getattr(trade, "_counted", False):
            trade._counted = True; left[0] -= 1
            if left[0] == 0: done.set()
    t0 = time.perf_counter()
    for _ in range(n_pipe):
        tr = ib.placeOrder(c, LimitOrder("BUY", 1, px)); tr.statusEvent += on_status
    await asyncio.wait_for(done.wait(), 120)
    pipe_s = time.perf_counter() - t0
    ib.reqGlobalCancel(); await asyncio.sleep(0.5)
    ib.disconnect()
    return np.array(lat), n_pipe / pipe_s, cd.contract.conId, px


def ms(a, q): return float(np.percentile(a, q)) * 1e3


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--n", type=int, default=2000); ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    logging.getLogger("ib_async").setLevel(logging.CRITICAL)
    rows = []
    for i in range(a.repeats):
        p, port = start_gateway()
        try:
            raw = asyncio.run(raw_round_trips(port, a.n))
            seq, pipe, con_id, px = asyncio.run(ib_async_acks(port, a.n // 4, a.n))
            rawp = asyncio.run(raw_pipelined_acks(port, a.n, con_id, px))
        finally:
            p.terminate(); p.wait(10)
        rows.append((np.median(raw), np.percentile(raw, 99), np.median(seq), np.percentile(seq, 99), 1 / np.mean(seq), pipe, rawp))
        print(f"run {i + 1}: raw rtt median {ms(raw, 50):.3f} ms p99 {ms(raw, 99):.3f} ms | ib_async ack median "
              f"{ms(seq, 50):.3f} ms p99 {ms(seq, 99):.3f} ms ({1 / np.mean(seq):,.0f}/s sequential) | pipelined {pipe:,.0f} acks/s | raw pipelined {rawp:,.0f} acks/s")
    r = np.median(np.array(rows), axis=0)
    print(f"\nmedian of {a.repeats} runs ({a.n} orders pipelined, {a.n // 4} sequential, gateway in its own process):")
    print(f"  baseline raw-socket round trip : median {r[0] * 1e3:.3f} ms, p99 {r[1] * 1e3:.3f} ms ({1 / r[0]:,.0f} round trips/s)")
    print(f"  ib_async place -> Submitted    : median {r[2] * 1e3:.3f} ms, p99 {r[3] * 1e3:.3f} ms ({r[4]:,.0f} acks/s sequential)")
    print(f"  ib_async pipelined             : {r[5]:,.0f} order acks/s (budget >= {BUDGET:,.0f}/s: {'OK' if r[5] >= BUDGET else 'MISSED'})")
    print(f"  raw-socket pipelined (gateway capacity, no ib_async): {r[6]:,.0f} order acks/s")
    print(f"  ratio ack latency / raw round trip = {r[2] / r[0]:.2f}; ib_async pipelined / raw pipelined = {r[5] / r[6]:.2f}")


if __name__ == "__main__":
    main()
