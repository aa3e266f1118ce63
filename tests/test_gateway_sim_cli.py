"""`hydra gateway-sim` as a process (flags, signals, debug log, fault flags) and the background-thread runner."""
import os, re, signal, subprocess, sys, time
from pathlib import Path
import pytest
from ib_async import IB, Future, LimitOrder
from hydra_nb.gateway_sim import GatewaySim
from hydra_nb.market import SimClock
from hydra_nb.market import DEFAULT_INSTRUMENTS

HYDRA = Path(sys.executable).parent / "hydra"


def spawn(*args):
    p = subprocess.Popen([str(HYDRA), "gateway-sim", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.search(r"listening on ([\d.]+):(\d+)", line)
    if not m:
        p.kill(); out, err = p.communicate(timeout=5)
        raise AssertionError(f"no banner: {line!r} {err[-2000:]}")
    return p, int(m.group(2))


def finish(p, sig=signal.SIGTERM):
    p.send_signal(sig)
    out, err = p.communicate(timeout=10)
    return p.returncode, out, err


def connect_when_open(port, cid, since, closed_for):
    "Connect as soon as the listener is back (no fixed sleep to race against a loaded machine); it must have stayed closed `closed_for` s after `since`."
    while True:
        try:
            ib = IB(); ib.connect("127.0.0.1", port, clientId=cid, timeout=10)
            break
        except ConnectionRefusedError:
            assert time.monotonic() - since < closed_for + 10, "the listener never reopened"
            time.sleep(0.02)
    assert time.monotonic() - since >= closed_for
    return ib


def sync_until(ib, pred, timeout=10.0):
    t = time.monotonic()
    while not pred():
        assert time.monotonic() - t < timeout, "timed out"
        ib.sleep(0.01)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_process_serves_ib_async_and_stops_on_signal(sig):
    p, port = spawn("--port", "0", "--seed", "7", "--time-scale", "60", "--server-version", "178", "--debug",
                    "--start", "2026-03-02T14:30")
    try:
        ib = IB()
        ib.connect("127.0.0.1", port, clientId=1, timeout=10)
        assert ib.client.serverVersion() == 178
        t1 = ib.reqCurrentTime(); ib.sleep(0.5); t2 = ib.reqCurrentTime()
        assert t1.strftime("%Y-%m-%d %H") == "2026-03-02 14"
        assert (t2 - t1).total_seconds() >= 15                      # 60x accelerated clock
        ib.disconnect()
    finally:
        rc, out, err = finish(p, sig)
    assert rc == 0 and "gateway-sim stopped" in out
    assert "-> [1] 9,1," in err and "<- [1] 61,1" in err         # debug: every message both ways


def test_process_fault_flags():
    t0 = time.monotonic()
    p, port = spawn("--port", "0", "--refuse-for", "2", "--halt", "ZO", "--reject-next", "desk closed",
                    "--latency", "0.01", "--pacing-limit", "200", "--nightly-reset", "23:59")
    try:
        with pytest.raises(ConnectionRefusedError):
            IB().connect("127.0.0.1", port, clientId=2, timeout=1)
        ib = connect_when_open(port, 2, t0, 2.0)
        errs = []
        ib.errorEvent += lambda r, c, m, k: errs.append((r, c, m))
        c = ib.reqContractDetails(Future("ZO", exchange="CBOT"))[0].contract
        [tk] = ib.reqTickers(c)                                  # a price near the market: one 20% away is outside the price band
        px = round(tk.bid - 20 * DEFAULT_INSTRUMENTS["ZO"].tick, 4)
        t1 = ib.placeOrder(c, LimitOrder("BUY", 1, px))
        t2 = ib.placeOrder(c, LimitOrder("BUY", 1, px))
        sync_until(ib, lambda: t1.orderStatus.status == t2.orderStatus.status == "Cancelled")
        msgs = {r: m for r, code, m in errs if code == 201}
        assert "desk closed" in msgs[t1.order.orderId] and "halted" in msgs[t2.order.orderId]
        ib.disconnect()
    finally:
        rc, out, err = finish(p)
    assert rc == 0


def test_process_signals_drop_and_reset():
    p, port = spawn("--port", "0", "--reset-duration", "2")
    try:
        ib = IB(); ib.connect("127.0.0.1", port, clientId=3, timeout=10)
        p.send_signal(signal.SIGUSR1)                          # drop every connection now
        try: sync_until(ib, lambda: not ib.isConnected())
        except ConnectionError: pass
        ib.connect("127.0.0.1", port, clientId=3, timeout=10)
        t0 = time.monotonic()
        p.send_signal(signal.SIGUSR2)                          # nightly reset now: dropped, then refused for 2 s
        try: sync_until(ib, lambda: not ib.isConnected())
        except ConnectionError: pass
        with pytest.raises(ConnectionRefusedError): IB().connect("127.0.0.1", port, clientId=3, timeout=1)
        connect_when_open(port, 3, t0, 2.0).disconnect()
    finally:
        rc, out, err = finish(p)
    assert rc == 0


def test_process_refuses_live_port_and_bad_version():
    for args, text in ((["--port", "4001"], "live IB port"), (["--port", "0", "--server-version", "150"], "server_version")):
        r = subprocess.run([str(HYDRA), "gateway-sim", *args], capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and text in r.stderr, r.stderr


def test_thread_runner_for_sync_callers():
    with GatewaySim.start_in_thread(seed=1, clock=SimClock(mode="stepped")) as h:
        ib = IB()
        ib.connect("127.0.0.1", h.port, clientId=4, timeout=10)
        he = next(c for c in h.gw.contracts if c.symbol == "HE")
        q = h.call(lambda g: g.market.quote("HE"))
        tr = ib.placeOrder(Future(conId=he.con_id, exchange="CME"), LimitOrder("BUY", 1, round(q.bid - 0.25, 3)))
        sync_until(ib, lambda: tr.orderStatus.status == "Submitted")
        assert h.call(lambda g: g.faults.drop_all()) == 1
        try: sync_until(ib, lambda: not ib.isConnected())
        except ConnectionError: pass                           # ib_async's sync API raises the disconnect
        assert not ib.isConnected()
        ib.connect("127.0.0.1", h.port, clientId=4, timeout=10)
        assert [t.order.permId for t in ib.openTrades()] == [tr.order.permId]
        h.call(lambda g: g.step(600))                          # stepping from another thread
        ib.disconnect()
    assert not h.thread.is_alive()
