"""RiskGate and circuit breakers beyond the notebook: state across real process restarts and SIGKILL, real ib_async
order/contract objects, random bad input never forwarded, and the rate window as a property (the import arrows: tests/test_arrows.py)."""
import json, math, os, signal, subprocess, sys, textwrap, time
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest

import hydra_nb.risk as risk
from hydra_nb.config import RiskSettings
from hydra_nb.core import state_db_path
from hydra_nb.risk import (RECORD_KEYS, BreakerState, CircuitBreakerManager, OrderContext, PreTradeChecks, RiskGate,
                           TradingState)

REPO = Path(__file__).resolve().parents[1]

# A child process: load settings (HYDRA_SETTINGS points at a settings.ini with a [risk] section), build the gate on
# the state database of HYDRA_STATE_DIR, run ACTION, print the manager's status as JSON.
CHILD = textwrap.dedent("""
    import json, sys, time
    from types import SimpleNamespace as NS
    from hydra_nb.config import load_settings
    from hydra_nb.core import state_db_path
    from hydra_nb.risk import RiskGate, OrderContext
    class Sink:
        def place_order(self, c, o): return "placed"
        def modify_order(self, c, o): return "modified"
        def cancel_order(self, o): return "cancelled"
    s = load_settings()
    gate = RiskGate.from_settings(Sink(), s.risk, db=state_db_path(s.state_dir))
    zo = NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="50")
    buy = NS(action="BUY", totalQuantity=1, lmtPrice=400.0, orderType="LMT", orderRef="child", orderId=0)
    action = sys.argv[1]
    out = {}
    if action in ("trip", "trip_and_hang"):
        gate.submit(zo, buy, OrderContext(400.0, 0.25, 50, position=0, equity=1_000_000.0))          # peak 1,000,000
        d = gate.submit(zo, buy, OrderContext(400.0, 0.25, 50, position=0, equity=960_000.0, daily_pnl=-40_000.0))
        out["decision"] = d.to_record()
    elif action == "advance":
        out["moves"] = [list(map(str, m)) for m in gate.advance_period()]
    elif action == "kill":
        gate.kill("operator, before restart")
    out["status"] = gate.status()
    print(json.dumps(out), flush=True)
    if action == "trip_and_hang":
        time.sleep(60)
""")


def run_child(action, env):
    p = subprocess.run([sys.executable, "-c", CHILD, action], env=env, capture_output=True, text=True, timeout=60, cwd=REPO)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.fixture
def child_env(isolated_env):
    ini = isolated_env / "settings.ini"
    ini.write_text("[risk]\nmax_daily_loss = -0.03\ncooldown_periods = 2\n")
    env = dict(os.environ, HYDRA_SETTINGS=str(ini), HYDRA_STATE_DIR=str(isolated_env / "state"))
    return env


def test_breaker_state_survives_process_restarts(child_env):
    out = run_child("trip", child_env)
    d = out["decision"]
    assert d["allowed"] is False and d["trading_state"] == "REDUCING"
    assert [t["name"] for t in d["details"]["tripped"]] == ["daily_loss"]            # -4% of 1,000,000 vs -3% (settings)
    assert d["details"]["tripped"][0]["threshold"] == -0.03
    assert math.isclose(d["details"]["tripped"][0]["observed"], -0.04)

    st = run_child("status", child_env)["status"]                                      # a fresh process
    assert st["breakers"]["daily_loss"]["state"] == "TRIGGERED"
    assert st["breakers"]["daily_loss"]["trip_count"] == 1
    assert st["breakers"]["drawdown"]["state"] == "ACTIVE"
    assert st["peak_equity"] == 1_000_000.0 and st["trading_state"] == "REDUCING"

    assert run_child("advance", child_env)["moves"] == [["daily_loss", "TRIGGERED", "COOLDOWN"]]
    st = run_child("status", child_env)["status"]
    assert (st["breakers"]["daily_loss"]["state"], st["breakers"]["daily_loss"]["periods_remaining"], st["period"]) == \
        ("COOLDOWN", 2, 1)
    assert run_child("advance", child_env)["moves"] == [["daily_loss", "COOLDOWN", "COOLDOWN"]]
    assert run_child("status", child_env)["status"]["breakers"]["daily_loss"]["periods_remaining"] == 1
    assert run_child("advance", child_env)["moves"] == [["daily_loss", "COOLDOWN", "ACTIVE"]]
    st = run_child("status", child_env)["status"]
    assert st["trading_state"] == "ACTIVE" and st["period"] == 3 and st["peak_equity"] == 1_000_000.0

    # and in this process, from the same database: the full history
    m = CircuitBreakerManager.from_settings(RiskSettings(max_daily_loss=-0.03, cooldown_periods=2),
                                            db=state_db_path(child_env["HYDRA_STATE_DIR"]))
    assert [(h["from_state"], h["to_state"], h["period"]) for h in m.history()] == \
        [("ACTIVE", "TRIGGERED", 0), ("TRIGGERED", "COOLDOWN", 1), ("COOLDOWN", "COOLDOWN", 2), ("COOLDOWN", "ACTIVE", 3)]
    m.close()


def test_kill_switch_survives_restart(child_env):
    run_child("kill", child_env)
    st = run_child("status", child_env)["status"]
    assert st["halted"] is True and st["trading_state"] == "HALTED" and st["halt_reason"] == "operator, before restart"


def test_breaker_state_survives_sigkill(child_env):
    p = subprocess.Popen([sys.executable, "-c", CHILD, "trip_and_hang"], env=child_env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        line = p.stdout.readline()                      # the child has tripped the breaker and reported
        assert json.loads(line)["decision"]["trading_state"] == "REDUCING"
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        assert p.returncode == -signal.SIGKILL
    finally:
        if p.poll() is None: p.kill(); p.wait()
        p.stdout.close(); p.stderr.close()
    st = run_child("status", child_env)["status"]
    assert st["breakers"]["daily_loss"]["state"] == "TRIGGERED" and st["peak_equity"] == 1_000_000.0


class Spy:
    def __init__(self): self.placed, self.modified, self.cancelled = [], [], []
    def place_order(self, contract, order): self.placed.append(order); return "trade"
    def modify_order(self, contract, order): self.modified.append(order); return "trade"
    def cancel_order(self, order): self.cancelled.append(order); return "cancelled"


class Rec:
    def __init__(self): self.recs = []
    def record_risk_decision(self, rec): self.recs.append(rec)


class FakeClock:
    def __init__(self): self.t = 0.0
    def __call__(self): return self.t


def test_real_ib_async_objects():
    from ib_async import Future, Order
    fut = Future(symbol="ZO", lastTradeDateOrContractMonth="202703", exchange="CBOT", multiplier="50", conId=4242)
    sink, rec = Spy(), Rec()
    gate = RiskGate(sink, CircuitBreakerManager(), PreTradeChecks(), rec, FakeClock())
    ctx = OrderContext(reference_price=400.0, tick_size=0.25, multiplier=50, position=0, equity=1_000_000.0)
    ok = Order(action="BUY", totalQuantity=2, orderType="LMT", lmtPrice=400.25, orderRef="zo-1")
    d = gate.submit(fut, ok, ctx)
    assert d.allowed and d.result == "trade" and sink.placed == [ok]
    unset = Order(action="BUY", totalQuantity=2, orderType="LMT", orderRef="zo-2")      # lmtPrice left unset
    d = gate.submit(fut, unset, ctx)
    assert not d.allowed and d.reasons == ["limit price is not set (UNSET_DOUBLE): limit orders need a price"]
    assert sink.placed == [ok]
    r = rec.recs[0]
    assert tuple(r) == RECORD_KEYS and (r["symbol"], r["con_id"], r["order_ref"], r["quantity"]) == ("ZO", 4242, "zo-1", 2.0)
    assert rec.recs[1]["limit_price"] > 1e308
    json.dumps(rec.recs)                                   # every record is plain JSON for the journal


def _random_order(rng):
    "An order with one or more bad fields, and the fields it broke."
    fields = dict(action="BUY", totalQuantity=2.0, lmtPrice=400.25, orderType="LMT", orderRef="r", orderId=5)
    bad_values = dict(action=["SHORT", "", None, "buy"],
                      totalQuantity=[float("nan"), float("inf"), -1.0, 0, 0.5, 2.5, "2", None, True, -float("inf")],
                      lmtPrice=[float("nan"), float("inf"), -400.0, 0.0, 400.1, 1.7976931348623157e308, None, "400", 800.0],
                      orderType=["MKT", "STP", "", None])
    broken = rng.choice(list(bad_values), size=rng.integers(1, 4), replace=False)
    for k in broken:
        vals = bad_values[k]; fields[k] = vals[rng.integers(len(vals))]
    return NS(**fields), list(broken)


def test_random_bad_orders_never_reach_the_sink():
    rng = np.random.default_rng(20261125)
    sink, rec = Spy(), Rec()
    clock = FakeClock()
    gate = RiskGate(sink, CircuitBreakerManager(), PreTradeChecks(), rec, clock)
    zo = NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="50")
    ctx = OrderContext(400.0, 0.25, 50, position=0, equity=1_000_000.0)
    for i in range(500):
        clock.t = i * 0.1
        order, broken = _random_order(rng)
        d = gate.submit(zo, order, ctx) if i % 2 else gate.modify(zo, order, ctx)
        assert not d.allowed, (order, broken)
        assert len(d.reasons) >= 1 and all(isinstance(r, str) and r for r in d.reasons)
    assert sink.placed == [] and sink.modified == []
    assert len(rec.recs) == 500 and all(r["allowed"] is False for r in rec.recs)
    json.dumps(rec.recs)
    # bad contexts too: each field broken in turn
    good = dict(reference_price=400.0, tick_size=0.25, multiplier=50, position=0, equity=1e6, daily_pnl=0.0,
                peak_equity=None, last_trade_pnl=0.0, other_gross_notional=0.0)
    ok_order = NS(action="BUY", totalQuantity=1, lmtPrice=400.0, orderType="LMT", orderRef="ok", orderId=5)
    for k, v in [("reference_price", float("nan")), ("reference_price", None), ("reference_price", -1.0),
                 ("tick_size", 0.0), ("tick_size", float("inf")), ("multiplier", float("nan")), ("position", 0.5),
                 ("equity", 0.0), ("equity", float("nan")), ("daily_pnl", float("inf")), ("peak_equity", -5.0),
                 ("last_trade_pnl", float("nan")), ("other_gross_notional", -1.0)]:
        clock.t += 0.1
        d = gate.submit(zo, ok_order, OrderContext(**{**good, k: v}))
        assert not d.allowed and any(r.startswith(k) for r in d.reasons), (k, v, d.reasons)
    assert sink.placed == []
    clock.t += 0.1
    assert gate.submit(zo, ok_order, OrderContext(**good)).allowed and len(sink.placed) == 1


def test_rate_window_never_exceeded():
    "Random bursts: in every 1-second window at most 40 submits+modifies reach the sink (integer rate: exact)."
    rng = np.random.default_rng(7)
    sink, clock = Spy(), FakeClock()
    gate = RiskGate(sink, CircuitBreakerManager(), PreTradeChecks(max_orders_per_second=40), None, clock)
    zo = NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="50")
    ctx = OrderContext(400.0, 0.25, 50, position=0, equity=1e7)
    order = NS(action="BUY", totalQuantity=1, lmtPrice=400.0, orderType="LMT", orderRef="r", orderId=3)
    times, n_rejected = [], 0
    for dt in rng.exponential(1 / 120, size=3000):      # ~120 attempts/s, three times the limit
        clock.t += dt
        d = gate.submit(zo, order, ctx)
        if d.allowed: times.append(clock.t)
        else:
            n_rejected += 1
            assert d.reasons[0].startswith("order rate:")
    t = np.array(times)
    per_window = np.searchsorted(t, t + 1.0, side="left") - np.arange(len(t))   # forwarded in [t_i, t_i + 1s)
    assert per_window.max() == 40 and n_rejected > 1000
    assert len(sink.placed) == len(times)


def test_reducing_never_flips_or_grows():
    "In REDUCING, over random positions and orders: an allowed order never grows |position| nor crosses flat."
    rng = np.random.default_rng(11)
    sink, clock = Spy(), FakeClock()
    gate = RiskGate(sink, CircuitBreakerManager(), PreTradeChecks(), None, clock)
    zo = NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="50")
    n_allowed = 0
    for i in range(400):
        clock.t += 0.1
        pos, qty, action = int(rng.integers(-5, 6)), int(rng.integers(1, 8)), rng.choice(["BUY", "SELL"])
        ctx = OrderContext(400.0, 0.25, 50, position=pos, equity=1e6, daily_pnl=-50_000.0)   # daily loss: REDUCING
        d = gate.submit(zo, NS(action=action, totalQuantity=qty, lmtPrice=400.0, orderType="LMT", orderRef="r", orderId=0), ctx)
        assert d.trading_state is TradingState.REDUCING
        post = pos + (qty if action == "BUY" else -qty)
        expected = pos != 0 and abs(post) <= abs(pos) and post * pos >= 0
        assert d.allowed == expected, (pos, action, qty, d.reasons)
        n_allowed += d.allowed
    assert 30 < n_allowed < 370 and len(sink.placed) == n_allowed


class _Book:
    "A simple model of one instrument: the filled position and the working orders (id -> [side, totalQuantity, filled])."
    def __init__(self, pos): self.pos, self.orders, self.next_id = pos, {}, 1
    def working(self, sign): return sum(t - f for s, t, f in self.orders.values() if s == sign)
    def envelope(self): return self.pos - self.working(-1), self.pos + self.working(1)     # worst case selling, buying


def _run_sequences(reducing, n_seq, n_steps, seed):
    """Random submits/modifies/fills/cancels through one gate, tracked by `_Book`; checks every decision against the
    worst-case rule and the invariants after every step. Returns counts."""
    rng = np.random.default_rng(seed)
    sink, clock = Spy(), FakeClock()
    gate = RiskGate(sink, CircuitBreakerManager(), PreTradeChecks(), None, clock)
    zo = NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="50")
    per = 400.0 * 50                                            # notional per contract
    equity, daily = (1_940_000.0, -60_000.0) if reducing else (1_000_000.0, 0.0)   # -3% of start of day: REDUCING
    n = dict(allowed=0, rejected=0, only_by_working=0, fills=0, modifies=0, bad_replaces=0)
    for _ in range(n_seq):
        other = float(rng.choice([0.0, 20_000.0, 40_000.0]))
        cap = int((0.10 * equity - other) // per)               # contracts the cap leaves this instrument
        book = _Book(int(rng.integers(-8, 9)) if reducing else int(rng.integers(-cap, cap + 1)))
        start = max(abs(v) for v in book.envelope())
        for _ in range(n_steps):
            clock.t += 0.03
            op = rng.choice(["submit", "modify", "fill", "cancel"], p=[0.45, 0.2, 0.25, 0.1])
            if op != "submit" and not book.orders: op = "submit"
            sign = int(rng.choice([1, -1]))
            if op in ("submit", "modify"):
                qty, rq, oid = int(rng.integers(1, 5)), 0, 0
                if op == "modify":
                    oid = int(rng.choice(list(book.orders)))
                    sign, tot, fil = book.orders[oid]
                    rq, qty = tot - fil, fil + qty                  # IB's totalQuantity includes the filled part
                wk = book.working(sign)
                bad = op == "modify" and rng.random() < 0.05
                if bad: rq = wk + 1                                  # a caller's mistake: must be refused
                ctx = OrderContext(400.0, 0.25, 50, position=book.pos, equity=equity, daily_pnl=daily,
                                   other_gross_notional=other, working_buy=book.working(1), working_sell=book.working(-1),
                                   replaces_quantity=rq)
                order = NS(action="BUY" if sign > 0 else "SELL", totalQuantity=qty, lmtPrice=400.0, orderType="LMT",
                           orderRef="p", orderId=oid)
                d = gate.modify(zo, order, ctx) if op == "modify" else gate.submit(zo, order, ctx)
                assert d.trading_state is (TradingState.REDUCING if reducing else TradingState.ACTIVE)
                wc, p = book.pos + sign * (wk - rq + qty), book.pos
                grows = abs(wc) > abs(p) or wc * p < 0
                expected = not bad and (not grows if reducing else (not grows or other + abs(wc) * per <= 0.10 * equity))
                assert d.allowed == expected, (op, p, sign, wk, rq, qty, d.reasons)
                assert d.details["position_after"] == wc
                n["allowed" if d.allowed else "rejected"] += 1
                n["bad_replaces"] += bad
                p1 = p + sign * qty                                  # judged on the filled position only (the old gate)
                old_ok = not (abs(p1) > abs(p) or p1 * p < 0) if reducing else \
                    not (abs(p1) > abs(p) or p1 * p < 0) or other + abs(p1) * per <= 0.10 * equity
                n["only_by_working"] += (not d.allowed and not bad and old_ok and op == "submit")
                if d.allowed:
                    if op == "modify": book.orders[oid][1] = qty; n["modifies"] += 1
                    else: book.orders[book.next_id] = [sign, qty, 0]; book.next_id += 1
            elif op == "fill":
                oid = int(rng.choice(list(book.orders)))
                s, tot, fil = book.orders[oid]
                f = int(rng.integers(1, tot - fil + 1))
                book.pos += s * f; book.orders[oid][2] += f; n["fills"] += 1
                if book.orders[oid][2] == tot: del book.orders[oid]
            else:
                oid = int(rng.choice(list(book.orders)))
                assert gate.cancel(NS(orderRef="p", orderId=oid)).allowed
                del book.orders[oid]
            lo, hi = book.envelope()
            if reducing:     # the worst case never crosses flat and never grows
                assert min(0, book.pos) <= lo and hi <= max(0, book.pos), (book.pos, lo, hi)
                assert max(abs(lo), abs(hi)) <= start
            else:            # the worst case in either direction is within the cap
                assert other + max(abs(lo), abs(hi)) * per <= 0.10 * equity, (book.pos, lo, hi, other)
    assert len(sink.placed) + len(sink.modified) == n["allowed"]
    return n


def test_reducing_worst_case_never_grows_or_flips():
    "REDUCING, with working orders: thousands of random submit/modify/fill/cancel sequences from a simple model."
    n = _run_sequences(reducing=True, n_seq=2000, n_steps=15, seed=31)
    assert n["allowed"] > 3000 and n["rejected"] > 3000 and n["fills"] > 2000 and n["modifies"] > 300
    assert n["only_by_working"] > 300          # orders the filled position alone would have let through
    assert n["bad_replaces"] > 50


def test_position_cap_never_exceeded_in_the_worst_case():
    "ACTIVE, with working orders: the worst-case gross notional never passes max_position."
    n = _run_sequences(reducing=False, n_seq=2000, n_steps=15, seed=32)
    assert n["allowed"] > 3000 and n["rejected"] > 3000 and n["fills"] > 2000 and n["modifies"] > 300
    assert n["only_by_working"] > 300


def test_breaker_manager_shares_the_state_db_with_others(tmp_path):
    "The risk tables live beside other components' tables in one database; a foreign file is refused, untouched."
    from hydra_nb.core import StateDBError, open_state_db
    db = state_db_path(tmp_path)
    conn = open_state_db(db)
    conn.execute("CREATE TABLE other_component (x)")
    m = CircuitBreakerManager(db=conn)
    m.check(1e6); m.check(9e5)                                # drawdown -10%
    assert m.blocking == ("drawdown",)
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"risk_breakers", "risk_state", "risk_breaker_events", "other_component", "hydra_schema"} <= names
    assert conn.execute("SELECT version FROM hydra_schema WHERE component='risk'").fetchone() == (1,)
    m.close(); conn.close()                                   # a borrowed connection is not closed by the manager
    junk = tmp_path / "junk.db"; junk.write_bytes(b"not a database at all")
    with pytest.raises(StateDBError, match="not a SQLite database"):
        CircuitBreakerManager(db=junk)
    assert junk.read_bytes() == b"not a database at all"
    m2 = CircuitBreakerManager(db=db)
    assert m2.breakers["drawdown"].state is BreakerState.TRIGGERED and m2.peak_equity == 1e6
    m2.close()


def test_unknown_state_in_db_is_refused(tmp_path):
    from hydra_nb.core import StateDBError, open_state_db, transaction
    db = state_db_path(tmp_path)
    m = CircuitBreakerManager(db=db); m.check(1e6); m.check(1e6, daily_pnl=-1e5); m.close()
    conn = open_state_db(db)
    with transaction(conn): conn.execute("UPDATE risk_breakers SET state='MAYBE' WHERE name='daily_loss'")
    conn.close()
    with pytest.raises(StateDBError, match="unknown state 'MAYBE'"):
        CircuitBreakerManager(db=db)


def test_kill_from_another_process_reaches_a_running_gate(child_env):
    "`kill()` in another process (the CLI, a second notebook) halts this process's running gate at its next sync."
    from hydra_nb.config import load_settings
    s = load_settings(env=child_env)
    clock, sink = FakeClock(), Spy()
    gate = RiskGate.from_settings(sink, s.risk, db=state_db_path(child_env["HYDRA_STATE_DIR"]), clock=clock)
    zo = NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="50")
    order = NS(action="BUY", totalQuantity=1, lmtPrice=400.0, orderType="LMT", orderRef="p", orderId=0)
    ctx = OrderContext(400.0, 0.25, 50, position=0, equity=1e6)
    assert gate.submit(zo, order, ctx).allowed
    run_child("kill", child_env)                               # another process throws the kill switch
    clock.t = 1.0
    d = gate.submit(zo, order, ctx)
    assert not d.allowed and d.trading_state is TradingState.HALTED
    assert d.reasons == ["HALTED (operator, before restart): only cancels pass"]
    assert gate.cancel(order).allowed and len(sink.cancelled) == 1 and len(sink.placed) == 1
    gate.breakers.close()


def test_locked_database_fails_closed(tmp_path):
    "A breach whose trip cannot be saved (another process holds the write lock) rejects; the breaker still blocks."
    from hydra_nb.core import open_state_db, transaction
    db = state_db_path(tmp_path)
    mine = open_state_db(db, timeout=0.1)
    sink, clock = Spy(), FakeClock()
    gate = RiskGate(sink, CircuitBreakerManager(db=mine), PreTradeChecks(), Rec(), clock)
    zo = NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="50")
    order = NS(action="BUY", totalQuantity=1, lmtPrice=400.0, orderType="LMT", orderRef="p", orderId=0)
    assert gate.submit(zo, order, OrderContext(400.0, 0.25, 50, position=0, equity=1e6)).allowed
    other = open_state_db(db, timeout=0.1)
    with transaction(other):                                  # the other writer holds the lock during our breach
        clock.t = 0.5
        d = gate.submit(zo, order, OrderContext(400.0, 0.25, 50, position=0, equity=1e6, daily_pnl=-50_000.0))
    assert not d.allowed
    assert any(r.startswith("breaker state could not be saved to the state database") and "locked" in r for r in d.reasons)
    assert gate.breakers.blocking == ("daily_loss",) and len(sink.placed) == 1
    fresh = CircuitBreakerManager(db=db)
    assert fresh.breakers["daily_loss"].state is BreakerState.ACTIVE          # not on disk yet ...
    fresh.close()
    clock.t = 2.0                                                             # ... the next sync writes it
    assert gate.submit(zo, NS(**{**vars(order), "action": "SELL"}), OrderContext(400.0, 0.25, 50, position=1, equity=1e6)).allowed
    assert gate.trading_state is TradingState.REDUCING
    fresh = CircuitBreakerManager(db=db)
    assert fresh.breakers["daily_loss"].state is BreakerState.TRIGGERED and fresh.peak_equity == 1e6
    assert [(h["name"], h["to_state"]) for h in fresh.history()] == [("daily_loss", "TRIGGERED")]
    assert math.isclose(fresh.history()[0]["observed"], -50_000 / 1_050_000)     # over start-of-day equity
    fresh.close(); gate.breakers.close(); mine.close(); other.close()



def test_reducing_orders_pass_while_another_writer_holds_the_lock(tmp_path):
    """Once a breaker is TRIGGERED, the same breach again writes nothing: a reducing order never waits on (or fails for)
    the write lock of another writer of the state database, e.g. the journal recording a fill."""
    from hydra_nb.core import open_state_db, transaction
    db = state_db_path(tmp_path)
    sink, clock = Spy(), FakeClock()
    gate = RiskGate(sink, CircuitBreakerManager(db=open_state_db(db, timeout=0.2)), PreTradeChecks(), Rec(), clock)
    zo = NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="50")
    sell = NS(action="SELL", totalQuantity=1, lmtPrice=400.0, orderType="LMT", orderRef="r", orderId=0)
    losing = OrderContext(400.0, 0.25, 50, position=3, equity=1e6, daily_pnl=-50_000.0)
    d = gate.submit(zo, sell, losing)                          # trips daily_loss (saved), the reducing order passes
    assert d.allowed and d.trading_state is TradingState.REDUCING
    other = open_state_db(db, timeout=0.2)
    with transaction(other):                                   # another writer holds the lock
        t0 = time.perf_counter()
        for i in range(5):
            clock.t = 0.1 * (i + 1)                            # within sync_interval: no sync either
            d = gate.submit(zo, sell, losing)
            assert d.allowed and d.reasons == [] and d.trading_state is TradingState.REDUCING, d.reasons
        assert time.perf_counter() - t0 < 0.2                  # never waited for the busy timeout
    assert len(sink.placed) == 6 and gate.breakers.blocking == ("daily_loss",)
    gate.breakers._conn.close(); other.close()

def test_fill_journal_records_every_decision(tmp_path):
    "The contract with the journal: FillJournal.record_risk_decision stores every decision the gate makes."
    from hydra_nb.journal import FillJournal
    db = state_db_path(tmp_path)
    sink, clock = Spy(), FakeClock()
    with FillJournal(db) as journal:
        gate = RiskGate(sink, CircuitBreakerManager(db=db), PreTradeChecks(), journal, clock)
        zo = NS(symbol="ZO", conId=4242, exchange="CBOT", multiplier="50")
        ctx = OrderContext(400.0, 0.25, 50, position=0, equity=1e6)
        mk = lambda **kw: NS(**{**dict(action="BUY", totalQuantity=2, lmtPrice=400.25, orderType="LMT", orderRef="j", orderId=9), **kw})
        assert gate.submit(zo, mk(orderRef="ok"), ctx).allowed
        assert not gate.submit(zo, mk(orderRef="nan", totalQuantity=float("nan")), ctx).allowed
        assert not gate.submit(zo, mk(orderRef="junk", totalQuantity="2", lmtPrice=None), ctx).allowed
        gate.kill("journal test")
        assert not gate.modify(zo, mk(orderRef="ok", lmtPrice=400.5), ctx).allowed
        assert gate.cancel(mk(orderRef="ok"), zo).allowed
        df = journal.risk_decisions()
        assert list(df["order_ref"]) == ["ok", "nan", "junk", "ok", "ok"]
        assert list(df["allowed"]) == [True, False, False, False, True]
        assert list(df["trading_state"]) == ["ACTIVE", "ACTIVE", "ACTIVE", "HALTED", "HALTED"]
        assert [d["kind"] for d in df["details"]] == ["submit", "submit", "submit", "modify", "cancel"]
        assert df["reasons"].iloc[1] == ["quantity must be a positive whole number of contracts (got nan)"]
        assert df["reasons"].iloc[3] == ["HALTED (journal test): only cancels pass"]
        assert df["details"].iloc[0]["notional"] == 2 * 400.25 * 50 and (df["con_id"] == 4242).all()
        gate.breakers.close()
    assert [o.orderRef for o in sink.placed] == ["ok"] and sink.modified == [] and len(sink.cancelled) == 1
