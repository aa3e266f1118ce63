"""The embedded IB gateway under hostile and absurd input (issue 11: items 1 to 5).

Each case is bounded (loopback, a few seconds at most) and checks three things: the IB error code the input earns,
that the server is still alive and serves a FRESH unmodified ib_async client promptly (connect, qualify, an order
acknowledged), and, where the input could cost memory, that the process's peak memory grew by less than a stated
bound. Raw frames are used where ib_async would refuse to send the input."""
import asyncio, logging, resource, socket, struct, time
from datetime import datetime, timezone
import pytest
from ib_async import IB, Future, LimitOrder
from hydra_nb.gateway_sim import API_PREFIX, GatewaySim, Out, decode_frames, encode_message
from hydra_nb.market import SimClock

START = datetime(2026, 1, 5, 15, 0, tzinfo=timezone.utc)          # Monday 09:00 Chicago: both day sessions open
PROMPT = 2.0                                                       # seconds a fresh client may take to be served
MEMORY_BOUND_MB = 64                                               # peak RSS growth allowed across one hostile case


@pytest.fixture
async def gw():
    async with GatewaySim(port=0, seed=5, clock=SimClock("stepped", start=START)) as g:
        yield g


def rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024   # Linux: kilobytes


async def until(pred, timeout=PROMPT, what="condition"):
    t = time.monotonic()
    while not pred():
        if time.monotonic() - t > timeout: raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.002)


def fut(g, sym):
    c = next(c for c in g.contracts if c.symbol == sym)
    return Future(conId=c.con_id, exchange=c.exchange)


async def client(g, cid):
    ib = IB()
    await ib.connectAsync("127.0.0.1", g.port, clientId=cid, timeout=PROMPT, raiseSyncErrors=True)
    errs = []
    ib.errorEvent += lambda reqId, code, msg, contract: errs.append((reqId, code, msg))
    return ib, errs


async def assert_alive(g, cid=90):
    "A fresh ib_async client connects, qualifies a contract and gets an order acknowledged, each within PROMPT."
    t0 = time.monotonic()
    ib, errs = await client(g, cid)
    try:
        [c] = await asyncio.wait_for(ib.qualifyContractsAsync(fut(g, "HE")), PROMPT)
        q = g.market.quote("HE")
        t = ib.placeOrder(c, LimitOrder("BUY", 1, round(q.bid - 10 * 0.025, 3)))
        await until(lambda: t.orderStatus.status == "Submitted", what="a fresh client's order acknowledged")
        assert not errs, errs
    finally:
        ib.disconnect()
    assert time.monotonic() - t0 < 3 * PROMPT


class Raw:
    "A raw TWS API connection (handshake + startApi) that sends any frame and collects the decoded replies."
    async def open(self, port, cid):
        self.r, self.w = await asyncio.open_connection("127.0.0.1", port)
        self.w.write(API_PREFIX + struct.pack(">I", 9) + b"v157..178")
        self.w.write(encode_message([Out.START_API, 2, cid, ""]))
        self.buf, self.got = bytearray(), []
        await self.wait(lambda: any(f[0] == "9" for f in self.got))
        return self

    def send(self, fields): self.w.write(encode_message(fields))

    async def wait(self, pred, timeout=PROMPT):
        t = time.monotonic()
        while not pred():
            left = timeout - (time.monotonic() - t)
            if left <= 0: raise AssertionError(f"timed out; got {[f[:4] for f in self.got[-5:]]}")
            try: data = await asyncio.wait_for(self.r.read(65536), left)
            except asyncio.TimeoutError: continue
            if not data: raise AssertionError("the server closed the connection")
            self.buf += data; self.got += decode_frames(self.buf)

    def errors(self): return [(f[2], int(f[3])) for f in self.got if f[0] == "4" and int(f[3]) < 2100]

    async def close(self):
        self.w.close()
        try: await self.w.wait_closed()
        except ConnectionError: pass


def place_fields(oid, c, action="BUY", qty=1, px=1.0, tif="DAY"):
    "A placeOrder frame as IB's client writes its first fields (the gateway reads up to orderRef)."
    return [Out.PLACE_ORDER, oid, c.con_id, "", "FUT", "", "", "", "", c.exchange, "", "", "", "", "", "",
            action, qty, "LMT", px, "", tif, "", "", "O", 0, ""]


def no_tracebacks(caplog):
    bad = [r for r in caplog.records if r.name.startswith("hydra_nb") and (r.exc_info or "Traceback" in r.getMessage())]
    assert not bad, [r.getMessage() for r in bad]


# -- item 1: orders bounded the way IB bounds them ---------------------------------------------------------------
async def test_absurd_size_rejected_201_before_the_book(gw, caplog):
    mem0, ask0 = rss_mb(), gw.market.quote("ZO").ask
    ib, errs = await client(gw, 1)
    try:
        t0 = time.monotonic()
        big = ib.placeOrder(fut(gw, "ZO"), LimitOrder("BUY", 1e12, 100000.0))
        bigger = ib.placeOrder(fut(gw, "ZO"), LimitOrder("BUY", 1e300, 3.5))
        over = ib.placeOrder(fut(gw, "ZO"), LimitOrder("BUY", 2001, round(ask0, 4)))
        await until(lambda: all(t.orderStatus.status == "Cancelled" for t in (big, bigger, over)), what="all rejected")
        assert time.monotonic() - t0 < PROMPT
        codes = {r: (c, m) for r, c, m in errs}
        for t in (big, bigger, over): assert codes[t.order.orderId][0] == 201, codes
        assert "Size Limit of 2000" in codes[over.order.orderId][1]
    finally:
        ib.disconnect()
    assert gw.market.quote("ZO").ask == ask0 and gw.market.open_orders() == []     # the book never saw them
    assert gw.orders == {} and gw.next_order_id == 1                                   # nor any shared state
    await assert_alive(gw)
    assert rss_mb() - mem0 < MEMORY_BOUND_MB
    no_tracebacks(caplog)


async def test_price_band_and_absurd_prices_rejected_201_never_pending(gw, caplog):
    ib, errs = await client(gw, 1)
    try:
        ref = gw.market.reference_price("HE")
        prices = [1e-300, 1e300, 1e306, round(ref * 1.3, 3), round(ref * 0.7, 3)]
        trades = [ib.placeOrder(fut(gw, "HE"), LimitOrder("BUY", 1, p)) for p in prices]
        await until(lambda: all(t.orderStatus.status == "Cancelled" for t in trades), what="all rejected")
        by = {r: (c, m) for r, c, m in errs}
        for t in trades:
            c, m = by[t.order.orderId]
            assert c == 201 and "reference price" in m, (t.order.lmtPrice, c, m)
        ok = ib.placeOrder(fut(gw, "HE"), LimitOrder("BUY", 1, round(ref * 0.9, 1)))   # inside the band: accepted
        await until(lambda: ok.orderStatus.status == "Submitted")
    finally:
        ib.disconnect()
    await assert_alive(gw)
    no_tracebacks(caplog)


async def test_non_finite_fields_rejected_with_the_order_id(gw, caplog):
    c = next(c for c in gw.contracts if c.symbol == "HE")
    raw = await Raw().open(gw.port, 3)
    px = gw.market.quote("HE").bid
    cases = [(1, "nan", px), (2, "Infinite", px), (3, "-inf", px), (4, 1, "nan"), (5, 1, "-0"), (6, "1e400", px),
             (7, 1, "1e-320"), (8, "0.5", px)]
    for oid, qty, p in cases: raw.send(place_fields(oid, c, qty=qty, px=p))
    raw.send([Out.PLACE_ORDER, 9, "not-a-conid"])                               # unreadable after its id
    await raw.wait(lambda: len(raw.errors()) >= len(cases) + 1)
    assert raw.errors() == [(str(o), 201) for o, _, _ in cases] + [("9", 320)]
    assert gw.orders == {} and gw.next_order_id == 1
    await raw.close()
    await assert_alive(gw)
    no_tracebacks(caplog)


# -- item 2: order ids that cannot be poisoned -------------------------------------------------------------------
async def test_order_ids_validated_before_any_shared_state(gw, caplog):
    c = next(c for c in gw.contracts if c.symbol == "HE")
    px = round(gw.market.quote("HE").bid - 10 * 0.025, 3)
    raw = await Raw().open(gw.port, 4)
    for oid in ("9" * 5000, "9" * 13, 0, -7, 2**31, "12abc", ""):
        raw.send(place_fields(oid, c, px=px))
    await raw.wait(lambda: len(raw.errors()) >= 7)
    assert [code for _, code in raw.errors()] == [103] * 7
    assert [r for r, _ in raw.errors()] == ["-1", "-1", "0", "-7", str(2**31), "-1", "-1"]
    assert gw.next_order_id == 1 and gw.orders == {}                           # nothing moved
    raw.send(place_fields(2**31 - 1, c, px=px))                               # the top of IB's range is still an id ...
    await raw.wait(lambda: any(f[0] == "3" for f in raw.got))
    raw.send(place_fields(2**31, c, px=px))                                   # ... and this client has used them all
    await raw.wait(lambda: len(raw.errors()) >= 8)
    ib, errs = await client(gw, 5)                                             # another client is not touched: ids are per client
    try:
        t = ib.placeOrder(fut(gw, "HE"), LimitOrder("BUY", 1, px))
        await until(lambda: t.orderStatus.status == "Submitted")
        assert t.order.orderId < 100                                           # from its own small next valid id
    finally:
        ib.disconnect()
    await raw.close()
    await assert_alive(gw)
    no_tracebacks(caplog)


async def test_new_order_id_below_the_next_valid_id_is_103(gw):
    c = next(c for c in gw.contracts if c.symbol == "HE")
    px = round(gw.market.quote("HE").bid - 10 * 0.025, 3)
    a = await Raw().open(gw.port, 6)
    a.send(place_fields(1, c, px=px)); a.send(place_fields(5, c, px=px))
    await a.wait(lambda: sum(f[0] == "3" for f in a.got) >= 4)
    await a.close()
    await until(lambda: gw.clients == [])
    b = await Raw().open(gw.port, 6)                                           # client 6 again: handed nextValidId 6
    assert [f for f in b.got if f[0] == "9"][0][2] == "6"
    b.send(place_fields(3, c, px=px))                                          # a new id below it
    await b.wait(lambda: b.errors())
    assert b.errors() == [("3", 103)]
    b.send(place_fields(1, c, qty=2, px=px))                                   # its own working order: a modify, not a duplicate
    await b.wait(lambda: any(f[0] == "3" and f[1] == "1" and f[4] == "2" for f in b.got))
    assert gw.orders[(6, 1)].total_qty == 2 and (6, 3) not in gw.orders
    await b.close()


# -- item 4: resources ------------------------------------------------------------------------------------------
async def test_client_ids_released_when_the_socket_closes(gw):
    raw = await Raw().open(gw.port, 41)
    raw.send([Out.START_API, 2, 42, ""]); raw.send([Out.START_API, 2, 43, ""])   # ignored: one client id per socket
    raw.send([Out.REQ_CURRENT_TIME, 1])
    await raw.wait(lambda: any(f[0] == "49" for f in raw.got))
    assert gw.clients == [41]
    await raw.close()
    await until(lambda: gw.clients == [], what="client id 41 released")
    for cid in (41, 42, 43):
        ib, errs = await client(gw, cid)
        assert not [e for e in errs if e[1] == 326]
        ib.disconnect()
    await assert_alive(gw)


async def test_repeated_bad_input_is_rate_limited_in_the_log_without_tracebacks(gw, caplog):
    caplog.set_level(logging.INFO, logger="hydra_nb.gateway_sim")
    raw = await Raw().open(gw.port, 8)
    n = 300
    for i in range(n):
        raw.send([9999, 1, i])                                                   # an unsupported request
        raw.send([Out.REQ_EXECUTIONS, 3, i, 0, "", "20260105 09:00:00 Mars/Base", "", "", "", ""])   # a bad time zone
        raw.send([Out.PLACE_ORDER, 10_000 + i, "x"])                             # an unreadable order
    raw.send([Out.REQ_CURRENT_TIME, 1])
    await raw.wait(lambda: any(f[0] == "49" for f in raw.got), timeout=5)
    codes = [c for _, c in raw.errors()]
    assert codes.count(320) == 2 * n                                            # every bad request still gets its IB error
    lines = [r for r in caplog.records if r.name == "hydra_nb.gateway_sim" and r.levelno >= logging.WARNING]
    assert len(lines) <= 6, [r.getMessage() for r in lines]                     # ... but the log one line per kind
    no_tracebacks(caplog)
    await raw.close()
    await assert_alive(gw)


# -- item 3: fairness ------------------------------------------------------------------------------------------
FAIR = 1.0          # seconds: the longest another client's reply may wait during a burst (typically a few tens of ms; ~20 s before)


def hist_fields(rid, c, duration="1 Y"):
    return [Out.REQ_HISTORICAL_DATA, rid, c.con_id, "", "FUT", "", "", "", "", c.exchange, "", "", "", "", 0, "", "1 day", duration,
            1, "TRADES", 1, 0, ""]


async def victim_latencies(v, n=20):
    "Round trips of reqCurrentTime on the raw connection `v`, the first sent before anything else is served."
    lat = []
    for _ in range(n):
        k = sum(f[0] == "49" for f in v.got); t = time.monotonic()
        v.send([Out.REQ_CURRENT_TIME, 1])
        await v.wait(lambda: sum(f[0] == "49" for f in v.got) > k, timeout=10 * FAIR)
        lat.append(time.monotonic() - t)
    return lat


async def test_a_burst_of_historical_requests_does_not_delay_another_client(gw, caplog):
    mem0 = rss_mb()
    c = next(c for c in gw.contracts if c.symbol == "HE")
    a, v = await Raw().open(gw.port, 21), await Raw().open(gw.port, 22)
    n = 1000
    a.w.write(b"".join(encode_message(hist_fields(i, c)) for i in range(n)))      # one write: the whole burst is in flight
    lat = await victim_latencies(v)
    assert max(lat) < FAIR, lat
    done = lambda: {f[1] for f in a.got if f[0] == "17"} | {f[2] for f in a.got if f[0] == "4" and f[3] == "162"}
    await a.wait(lambda: len(done()) == n, timeout=15)                               # every request answered: bars or 162
    paced = [f for f in a.got if f[0] == "4" and f[3] == "162"]
    assert len(paced) >= n - 60 * 2 and all("pacing violation" in f[4] for f in paced)   # IB's 50 open at once, 60 in 10 minutes
    await a.close(); await v.close()
    await assert_alive(gw)
    assert rss_mb() - mem0 < MEMORY_BOUND_MB
    no_tracebacks(caplog)


async def test_historical_requests_past_60_in_ten_minutes_get_162(gw):
    c = next(c for c in gw.contracts if c.symbol == "ZO")
    a = await Raw().open(gw.port, 23)
    for i in range(50): a.send(hist_fields(i, c, f"{i + 1} D"))
    await a.wait(lambda: sum(f[0] == "17" for f in a.got) == 50)
    for i in range(50, 70): a.send(hist_fields(i, c, f"{i + 1} D"))
    await a.wait(lambda: sum(f[0] == "17" for f in a.got) + len(a.errors()) >= 70 and len(a.errors()) >= 10)
    assert sum(f[0] == "17" for f in a.got) == 60
    assert a.errors() == [(str(i), 162) for i in range(60, 70)]
    assert all("more than 60 requests" in f[4] for f in a.got if f[0] == "4" and f[3] == "162")
    await a.close()
    b = await Raw().open(gw.port, 24)                                                # another client id has its own window
    b.send(hist_fields(1, c, "5 D")); await b.wait(lambda: any(f[0] == "17" for f in b.got))
    await b.close()
    await assert_alive(gw)


async def test_a_burst_of_cheap_requests_is_served_in_slices(gw, caplog):
    c = next(c for c in gw.contracts if c.symbol == "HE")
    a, v = await Raw().open(gw.port, 25), await Raw().open(gw.port, 26)
    n = 30_000
    a.w.write(b"".join(encode_message([Out.REQ_CONTRACT_DATA, 8, i, c.con_id, "", "FUT", "", "", "", "", c.exchange, "", "", "", ""])
                       for i in range(n)))
    lat = await victim_latencies(v)
    assert max(lat) < FAIR, lat
    await a.wait(lambda: sum(f[0] == "52" for f in a.got) == n, timeout=30)     # and the burst itself is served in full
    await a.close(); await v.close()
    await assert_alive(gw)
    no_tracebacks(caplog)


async def test_backpressure_a_client_that_does_not_read(gw, caplog):
    "Requests without reading the replies: the server stops reading from that client at its high-water mark, and resumes."
    mem0 = rss_mb()
    c = next(c for c in gw.contracts if c.symbol == "HE")
    a = await Raw().open(gw.port, 27)
    s = gw._by_client[27]
    n = 60_000                                                                        # ~30 MB of replies if all were served at once
    a.w.write(b"".join(encode_message([Out.REQ_CONTRACT_DATA, 8, i, c.con_id, "", "FUT", "", "", "", "", c.exchange, "", "", "", ""])
                       for i in range(n)))
    await until(lambda: s.read_paused and s.write_paused, timeout=10, what="reading from the client paused")
    assert s.transport.get_write_buffer_size() <= gw.high_water + 64 * 1024          # what the server holds for it: about the mark
    await assert_alive(gw)                                                            # everyone else is served meanwhile
    assert rss_mb() - mem0 < MEMORY_BOUND_MB
    await a.wait(lambda: sum(f[0] == "52" for f in a.got) == n, timeout=60)          # reading again: every reply comes
    assert not s.read_paused and not s.write_paused and not s.inbox
    await a.close()
    no_tracebacks(caplog)


async def test_a_client_that_never_reads_its_stream_is_cut(caplog):
    async with GatewaySim(port=0, seed=5, clock=SimClock("stepped", start=START), high_water=4096, unread_limit=64 * 1024) as g:
        c = next(c for c in g.contracts if c.symbol == "HE")
        a = await Raw().open(g.port, 28)
        a.w.transport.pause_reading()                                                # this client reads nothing more
        a.w.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        for i in range(200): a.send([Out.REQ_MKT_DATA, 11, i, c.con_id, "", "FUT", "", "", "", "", c.exchange, "", "", "", "", 0, "", 0, 0, ""])
        await until(lambda: 28 in g.clients and len(g._by_client[28].mkt) == 200, what="subscriptions")
        s = g._by_client[28]
        s.transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)   # small kernel buffers: a short test
        for _ in range(3000):                                                         # quotes stream while it reads nothing
            g.step(60.0); await asyncio.sleep(0)
            if 28 not in g.clients: break
        assert 28 not in g.clients                                                    # cut, not buffered without bound
        assert any("replies unread" in r.getMessage() for r in caplog.records)
        await assert_alive(g)
    no_tracebacks(caplog)


async def test_half_finished_handshakes_and_no_start_api_time_out(caplog):
    async with GatewaySim(port=0, seed=5, clock=SimClock("stepped", start=START), handshake_timeout=0.3) as g:
        mem0 = rss_mb()
        conns = [await asyncio.open_connection("127.0.0.1", g.port) for _ in range(3)]
        conns[1][1].write(API_PREFIX + b"\x00\x00")                                   # half a handshake
        conns[2][1].write(API_PREFIX + struct.pack(">I", 9) + b"v157..178")           # a handshake, then no startApi
        idle = [await asyncio.open_connection("127.0.0.1", g.port) for _ in range(300)]
        t0 = time.monotonic()
        for r, w in conns + idle:
            while await asyncio.wait_for(r.read(65536), 5): pass                      # b"": the server closed it
        assert time.monotonic() - t0 < 5
        await until(lambda: not g._sessions, what="no session left")
        for _, w in conns + idle: w.close()
        await assert_alive(g)                                                         # a real client is not timed out
        assert rss_mb() - mem0 < MEMORY_BOUND_MB
    no_tracebacks(caplog)


# -- item 5: random frames and field values for every message the gateway handles ---------------------------------
from hypothesis import HealthCheck, given, settings, strategies as st
from hydra_nb.gateway_server import _HANDLERS
from hydra_nb.gateway_sim import GatewayThread

FIELD = st.one_of(
    st.integers(-2**70, 2**70).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["", "0", "1", "-1", "nan", "inf", "-inf", "Infinite", "1e308", "1e-320", "9" * 5000, "BUY", "SELL", "LMT",
                     "MKT", "FUT", "CONTFUT", "BAG", "CME", "CBOT", "USD", "DAY", "GTC", "1 day", "5 D", "20 Y", "TRADES", "BID_ASK",
                     "20260105 09:00:00", "20260105 09:00:00 Mars/Base", "DU1234567", "All", "NetLiquidation", "91000002"]),
    st.text(max_size=30))
FRAME = st.tuples(st.one_of(st.sampled_from(sorted(_HANDLERS)), st.integers(-5, 200)), st.lists(FIELD, max_size=40)).map(lambda t: [t[0], *t[1]])


def raw_exchange(port, cid, frames, junk):
    "Handshake, startApi, the frames and a reqCurrentTime, which must be answered promptly; then junk bytes, if any."
    with socket.create_connection(("127.0.0.1", port), timeout=3 * PROMPT) as so:
        so.sendall(API_PREFIX + struct.pack(">I", 9) + b"v157..178" + encode_message([Out.START_API, 2, cid, ""]))
        so.sendall(b"".join(encode_message(f) for f in frames) + encode_message([Out.REQ_CURRENT_TIME, 1]))
        buf, got = bytearray(), []
        while not any(f[0] == "49" for f in got):
            try: data = so.recv(1 << 20)
            except ConnectionResetError: return "closed"
            if not data: return "closed"
            buf += data; got += decode_frames(buf)
        if junk:
            try: so.sendall(junk)
            except OSError: pass
        return "answered"


def test_fuzz_random_frames_and_fields_for_every_message(caplog):
    caplog.set_level(logging.WARNING, logger="hydra_nb")
    gt = GatewayThread(port=0, seed=5, clock=SimClock("stepped", start=START)).start()
    ids = iter(range(1000, 10**6))
    outcomes = []
    try:
        mem0 = rss_mb()

        @settings(max_examples=400, deadline=3000, suppress_health_check=[HealthCheck.too_slow], database=None)
        @given(frames=st.lists(FRAME, min_size=1, max_size=8), junk=st.one_of(st.none(), st.binary(min_size=1, max_size=64)))
        def fuzz(frames, junk):
            outcomes.append(raw_exchange(gt.port, next(ids), frames, junk))

        t0 = time.monotonic()
        fuzz()
        assert time.monotonic() - t0 < 60
        assert outcomes.count("answered") == len(outcomes), outcomes                # any field values: answered, never cut off
        lines = [r for r in caplog.records if r.name.startswith("hydra_nb") and r.levelno >= logging.WARNING]
        assert len(lines) < 40, len(lines)                                           # the log, rate-limited by kind
        assert not [r.getMessage() for r in lines if " failed: " in r.getMessage()]  # no simulator bug behind a 320
        g = gt.gw

        async def alive():
            await assert_alive(g, cid=999)
        asyncio.run(alive())
        assert rss_mb() - mem0 < 2 * MEMORY_BOUND_MB                                 # hypothesis itself is in this process too
        assert set(gt.call(lambda g: g.clients)) <= {999} and gt.call(lambda g: len(g._sessions)) <= 1
    finally:
        gt.stop()
    no_tracebacks(caplog)
