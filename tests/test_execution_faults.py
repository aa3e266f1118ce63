"""The execution path under injected faults, over real sockets to the embedded gateway: random disconnects during
hundreds of patience and TWAP orders (a modify in flight, fills during an 1100), a nightly reset, a fast reconnect, a
refused-connection window, pacing, and an IB rejection. What must hold: zero duplicate orders by orderRef at the
gateway, zero lost fills (the journal's execIds are the gateway's), every order terminal."""
import asyncio, collections, time
import numpy as np
import pytest
from hydra_nb.gateway_messages import msg_error
from exec_rig import rig

CHAOS_ORDERS = dict(patience_seconds=2.0, twap_duration_minutes=0.5, twap_slices=3)


def restore_connectivity(gw):
    "End a `connectivity_lost` early: what the gateway does when its timer runs out (1102, data maintained)."
    gw.faults.connectivity_down = False
    gw._broadcast(msg_error(-1, 1102, "Connectivity between IB and Trader Workstation has been restored - data maintained."))


def no_duplicates(r):
    refs = r.gateway_refs()
    dup = [k for k, n in collections.Counter(refs).items() if n > 1]
    assert not dup, f"duplicate orders by orderRef at the gateway: {dup}"
    return refs


def no_lost_fills(r):
    j, g = set(r.journal.exec_ids()), r.gateway_exec_ids()
    assert j == g, f"journal and gateway executions differ: {len(g - j)} fills lost, {len(j - g)} unknown to the gateway"


async def settle(r, timeout=20):
    "Wait for the broker to be ready, then one more resync (what a restarted runner does first)."
    await asyncio.sleep(0.05)                              # let a drop that the server just made reach the client
    for _ in range(5):
        assert await r.broker.wait_ready(timeout), "the broker never reconnected"
        try: return await r.broker.resync()
        except ConnectionError: await asyncio.sleep(0.05)
    raise AssertionError("could not resync")


def all_terminal(r):
    live = [(o.order_ref, o.status) for o in r.gw.orders.values() if o.client_id == 1 and not o.done]
    assert not live, f"orders still working at the gateway: {live}"
    assert all(c.done for c in r.broker.children()), [c for c in r.broker.children() if not c.done]


@pytest.mark.slow
async def test_random_disconnects_during_200_orders():
    stats, why = collections.Counter(), []
    async with rig(scale=120, seed=11, orders=CHAOS_ORDERS, risk=dict(max_position=1.0)) as r:
        rng = np.random.default_rng(11)
        broker = r.broker
        real_modify = broker._modify

        def modify_watch(contract, order):                # count modifies that a drop catches in flight
            c = real_modify(contract, order)
            stats["modifies"] += 1
            if rng.random() < 0.08:
                r.gw.faults.drop_all(); stats["drops_right_after_modify"] += 1
            return c
        broker._modify = modify_watch

        cons = {s: (await broker.qualify(s)).con_id for s in ("ZO", "HE")}

        async def worker(w, n):
            sym = ("ZO", "HE")[w % 2]
            for i in range(n):                             # toward flat, so the position limit stays out of the way
                try: side = "SELL" if broker.account().positions.get(cons[sym], 0) > 0 else "BUY"
                except ConnectionError: side = ("BUY", "SELL")[i % 2]
                tac = "twap" if i % 3 == 0 else "patience"
                rep = await r.om.route(sym, side, int(rng.integers(1, 4)), parent_ref=f"chaos{w}-{i}", tactic=tac)
                stats[f"{tac}:{rep.status}"] += 1
                if rep.status == "rejected": why.append((rep.parent_ref, rep.reasons[:2]))

        async def chaos(stop):
            while not stop.is_set():
                await asyncio.sleep(rng.uniform(0.2, 0.8))
                if rng.random() < 0.25:
                    r.gw.faults.connectivity_lost(rng.uniform(0.05, 0.3)); stats["1100s"] += 1
                else:
                    stats["drops"] += r.gw.faults.drop_all() > 0

        stop = asyncio.Event()
        ch = asyncio.ensure_future(chaos(stop))
        try: await asyncio.gather(*(worker(w, 50) for w in range(4)))
        except Exception:
            t0 = broker.events[0][0]
            for t, k, d in broker.events[-40:]: print(f"{(t - t0).total_seconds():9.2f} {k} {d}")
            raise
        stop.set(); await ch
        await settle(r)
        refs = no_duplicates(r)
        no_lost_fills(r)
        all_terminal(r)
        n_orders = sum(v for k, v in stats.items() if ":" in k)
        print(f"\nchaos: {n_orders} parent orders, {len(refs)} child orders, {len(r.gateway_exec_ids())} fills, "
              f"{dict(stats)}, broker {broker.counts}")
        assert n_orders == 200 and not why, why                  # under faults, nothing may be rejected either
        assert broker.counts["reconnects"] >= 5 and stats["drops_right_after_modify"] >= 1 and stats["1100s"] >= 1, (stats, broker.counts)
        assert len(r.gateway_exec_ids()) >= 150


async def test_modify_in_flight_when_the_connection_drops():
    "A drop right after a modify left the client: never a second order, the order ends once, its fills journaled."
    async with rig(scale=60, seed=3, orders=dict(patience_seconds=3.0, patience_steps=3)) as r:
        real_modify, dropped = r.broker._modify, []

        def drop_after(contract, order):
            c = real_modify(contract, order)
            if not dropped: dropped.append(r.gw.faults.drop_all())
            return c
        r.broker._modify = drop_after
        rep = await r.om.route("ZO", "SELL", 3, parent_ref="mif")                # patience: the first stage rests, then a modify
        await settle(r)
        assert rep.status in ("filled", "partial", "unfilled") and rep.filled == r.journal.fills().quantity.sum(), rep
        assert dropped == [1], "the drop was not injected"
        refs = no_duplicates(r)
        assert len(refs) == 1 and refs[0].startswith("mif:0:"), refs
        no_lost_fills(r)
        all_terminal(r)
        assert r.broker.counts["reconnects"] == 1


async def test_fills_during_1100_reach_the_journal_and_new_orders_wait():
    async with rig(scale=30, seed=4) as r:
        qc = await r.broker.qualify("HE"); snap = await r.broker.snapshot(qc)
        r.gw.faults.connectivity_lost(1.0)
        await asyncio.sleep(0.05)
        assert not r.broker.is_ready() and r.broker.is_connected()          # 1100: socket open, IB unreachable
        t0 = time.monotonic()
        rep = await r.om.route("HE", "BUY", 2, parent_ref="f1100")           # held until 1102, then sent
        assert time.monotonic() - t0 >= 0.8, "an order was sent during the 1100"
        assert rep.status == "filled", rep
        # an order that fills while IB is away: a buy resting at the bid; during a long 1100 the simulated market is moved on
        # in 5-minute jumps until the price trades through it (a random walk from half a tick above: almost surely soon)
        snap = await r.broker.snapshot(qc)
        ch = await r.om._place(qc, "BUY", 1, "f1100b:0:0", snap.bid, [], snap)
        assert await ch.wait(5, until=lambda c: c.status == "Submitted") and ch.filled == 0, (ch.status, ch.error)
        r.gw.faults.connectivity_lost(30.0)
        await asyncio.sleep(0.05)
        assert not r.broker.is_ready()
        for _ in range(24):
            if ch.filled: break
            r.gw.clock.advance(300); await ch.wait(0.2)
        assert ch.filled == 1 and not r.broker.is_ready(), "the resting order did not fill during the 1100"
        restore_connectivity(r.gw)                                       # IB is back (1102) before the 30 s are up
        await settle(r)
        no_lost_fills(r); no_duplicates(r)
        ev = [(t, k) for t, k, _ in r.broker.events if k in ("ib_link_lost", "ib_link_restored")]
        assert [k for _, k in ev] == ["ib_link_lost", "ib_link_restored"] * 2
        t_fill = r.journal.fills().set_index("order_ref").time_utc["f1100b:0:0"]
        assert ev[2][0] <= t_fill <= ev[3][0], (ev, t_fill)               # it filled during the second 1100
        assert r.broker.counts["held_1100"] == 0                         # and the manager sent nothing into the 1100


async def test_nightly_reset_never_reuses_an_order_id():
    async with rig(scale=60, seed=6) as r:
        await r.om.route("ZO", "BUY", 1, parent_ref="nr-before")
        before = {o.order_id for o in r.gw.orders.values()}
        r.gw.faults.nightly_reset(duration=1.0)
        t = time.monotonic()
        while r.broker.counts["reconnects"] == 0:
            assert time.monotonic() - t < 30, "no reconnect after the reset"
            await asyncio.sleep(0.01)
        await settle(r)
        await r.om.route("ZO", "SELL", 1, parent_ref="nr-after")
        after = {o.order_id for o in r.gw.orders.values()} - before
        assert after and min(after) > max(before), (before, after)
        assert r.broker.counts["reconnects"] == 1 and r.gw.faults.counts["resets"] == 1
        no_duplicates(r); no_lost_fills(r)


async def test_fast_reconnect_after_a_drop_gets_no_326():
    async with rig(scale=60, backoff=0.01) as r:
        errs = []
        r.broker.ib.errorEvent += lambda req, code, msg, c: errs.append(code)
        for _ in range(5):
            n = r.broker.counts["reconnects"]
            r.gw.faults.drop_all()
            t = time.monotonic()
            while r.broker.counts["reconnects"] == n or not r.broker.is_ready():
                assert time.monotonic() - t < 20, "no reconnect"
                await asyncio.sleep(0.005)
        assert 326 not in errs and r.broker.counts["reconnects"] == 5
        assert r.broker.client_id == 1 and r.gw.clients == [1]


async def test_refused_connections_back_off_then_succeed():
    async with rig(scale=60, backoff=0.1) as r:
        r.gw.faults.refuse_connections(1.5)
        r.gw.faults.drop_all()
        t0 = time.monotonic()
        while r.broker.counts["drops"] == 0: await asyncio.sleep(0.005)
        assert await r.broker.wait_ready(30)
        assert time.monotonic() - t0 >= 1.5
        kinds = [(t, k, d) for t, k, d in r.broker.events if k in ("reconnect_failed", "reconnected")]
        fails = [d for _, k, d in kinds if k == "reconnect_failed"]
        assert len(fails) >= 2 and kinds[-1][1] == "reconnected"
        nexts = [float(d.split("next in ")[1].split(" s")[0]) for d in fails]
        assert nexts == sorted(nexts) and nexts[1] == 2 * nexts[0], nexts      # exponential: 0.2, 0.4, 0.8 ...
        rep = await r.om.route("ZO", "BUY", 1, parent_ref="after-refuse")
        assert rep.status == "filled"


async def test_the_throttle_keeps_orders_under_ibs_pacing_limit():
    "40 orders as fast as the manager can send them: the gate's throttle (< 50/s) means the gateway paces none (error 100)."
    async with rig(scale=60, risk=dict(max_orders_per_second=40.0)) as r:
        r.gw.faults.pacing_limit(50)
        qc = await r.broker.qualify("ZO"); snap = await r.broker.snapshot(qc)
        buy, sell = (qc.tick_size * (round(p / qc.tick_size) + k) for p, k in ((snap.bid, -20), (snap.ask, 20)))
        t0 = time.monotonic()
        kids = [await r.om._place(qc, ("BUY", "SELL")[i % 2], 1, f"pace{i}:0:0", (buy, sell)[i % 2], []) for i in range(45)]
        dt = time.monotonic() - t0
        assert all(k is not None for k in kids)
        for k in kids: await r.om._cancel_child(qc, k)
        assert r.gw.faults.counts["paced"] == 0, r.gw.faults.counts
        assert dt >= 0.95                                  # orders 41-45 waited for the 1 s window: 40/s, not more
        no_duplicates(r)


async def test_an_ib_rejection_is_reported_and_not_retried():
    async with rig(scale=60) as r:
        r.gw.faults.reject_next_order("insufficient margin for the simulated test")
        rep = await r.om.route("ZO", "BUY", 1, parent_ref="rej")
        assert rep.status == "rejected" and rep.filled == 0, rep
        assert any("201" in x and "insufficient margin" in x for x in rep.reasons), rep.reasons
        assert r.gw.faults.counts["rejected"] == 1
        assert len(r.gateway_refs()) == 0 and len(r.broker.children("rej:")) == 1     # sent once, refused once


async def test_pacing_error_on_a_modify_of_a_live_order_never_makes_a_second_order():
    "Error 100 on a MODIFY: the order IB has stays the one child (no 'never received', no second order), and it ends cancelled."
    from hydra_nb.orders import on_tick
    async with rig(scale=60, seed=5, orders=dict(patience_seconds=60.0)) as r:
        qc = await r.broker.qualify("ZO"); snap = await r.broker.snapshot(qc)
        low = on_tick(snap.bid - 5 * qc.tick_size, qc.tick_size)                 # rests well below the bid
        child = await r.om._place(qc, "BUY", 2, "p100:0:0", low, [], snap)
        assert await child.wait(2, until=lambda c: c.status == "Submitted")
        r.gw.faults.pacing_limit(0.001)                                           # the next message gets error 100
        r.gate.modify(qc.contract, r.broker.limit_order("BUY", 2, low - qc.tick_size, child.ref, order_id=child.order_id),
                      r.om.context(qc, snap, replaces=2))
        await child.wait(1, until=lambda c: c.error is not None)
        r.gw.faults.pacing_limit(None)
        assert child.status == "Submitted" and "100" in child.error and child.limit_price == low, (child.status, child.error)
        assert r.om.working(qc.con_id) == (2, 0)                                  # the gate still sees it
        touched, rej = await r.om._slice(qc, "BUY", 2, "p100", 0, 2.0, child=child, start=3)
        assert no_duplicates(r) == ["p100:0:0"] and child.done and all(o.done for o in r.gw.orders.values())


async def test_a_route_that_fails_leaves_nothing_working():
    "The connection stays down past the request timeout mid-stage: route() raises, and its child is cancelled (or kept as an orphan)."
    async with rig(scale=60, seed=5, orders=dict(patience_seconds=60.0, patience_steps=1)) as r:
        r.broker.settings = r.broker.settings.replace("ib", request_timeout=1.0)
        t = asyncio.ensure_future(r.om.route("ZO", "SELL", 5, parent_ref="ld", tactic="patience"))
        t0 = time.monotonic()
        while not any(not o.done for o in r.gw.orders.values()):
            assert time.monotonic() - t0 < 20 and not t.done(), "no order reached the gateway"
            await asyncio.sleep(0.01)
        r.gw.faults.drop_all(); r.gw.faults.refuse_connections(2.5)
        try: await t
        except ConnectionError: pass
        assert await r.broker.wait_ready(20)
        await r.om.cancel_orphans()
        await settle(r)
        all_terminal(r); no_duplicates(r); no_lost_fills(r)


async def test_a_failed_journal_write_is_retried_not_lost():
    import sqlite3
    async with rig(scale=60, seed=5) as r:
        real, n = r.journal.record_fill, [0]
        def flaky(rec):
            n[0] += 1
            if n[0] == 1: raise sqlite3.OperationalError("database is locked")
            return real(rec)
        r.journal.record_fill = flaky
        rep = await r.om.route("ZO", "BUY", 2, parent_ref="lf")
        assert n[0] >= 2 and rep.status == "filled" and rep.filled == 2, rep
        no_lost_fills(r)
