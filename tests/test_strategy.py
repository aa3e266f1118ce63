"""Bring your own model (issue 22): a user's strategy through the runner, the agent and the gate, over real sockets.

A user's plain class (defined as if in a notebook: its module is `__main__`, so a worker process cannot import it and it
travels by value) completes drift -> hypothesis -> experiment -> promote in a rehearsal with a regime switch, its
experiments in the agent's real process pool; a strategy that raises, or gives NaN, is that day's error with its message
and no order reaches the gateway; a champion pickled before the strategy protocol still loads and trades."""
import json, os, pickle
from datetime import date, datetime, timezone
from pathlib import Path
import numpy as np
import pandas as pd
import pytest

from hydra_nb.broker import BrokerGateway, sim_settings
from hydra_nb.config import load_settings
from hydra_nb.gate import evaluate_gate
from hydra_nb.gateway_sim import GatewaySim
from hydra_nb.journal import FillJournal
from hydra_nb.market import SimClock, simulate_daily_bars
from hydra_nb.models import DirectionalModel, ModelRegistry, ModelSpec, PlainStrategy, Strategy
from hydra_nb.rehearsal import Scenario, rehearse
from hydra_nb.runner import PaperTradingRunner, champion_signal
from user_strategies import Persistence

MONDAY_0900_CT = datetime(2026, 10, 19, 14, 0, tzinfo=timezone.utc)


class Raises(Persistence):
    "A user's model with a bug: predict fails."
    def predict(self, bars): raise ZeroDivisionError("my feature divided by a zero volume")


class NaNToday(Persistence):
    "A user's model whose signal for today is NaN (its history is fine)."
    def predict(self, bars):
        s = pd.Series(0.5, index=bars.index); s.iloc[-1] = np.nan
        return s


for _c in (Persistence, Raises, NaNToday):                  # as if defined in a notebook: pickled by value only
    _c.__module__ = "__main__"
    for _f in vars(_c).values():
        if callable(_f): _f.__module__ = "__main__"


def register(d, sym, strategy, bars):
    with ModelRegistry(d, sym) as reg:
        return reg.register(strategy.fit(bars), status="champion", reason="the desk's model", actor="test")


@pytest.mark.slow
async def test_a_user_strategy_completes_the_self_healing_cycle_in_a_rehearsal(tmp_path):
    "16 trading days, the market turns to the reversal on day 1; the user's class is both symbols' champion."
    d, seed = tmp_path/"state", 7
    for sym in ("ZO", "HE"): register(d, sym, PlainStrategy(Persistence(), train_window=60), simulate_daily_bars(sym, 250, seed=seed))
    res = await rehearse(Scenario(days=16, seed=seed, regime_switch_day=1, disconnects=0), d, load_settings(env={}, cwd=d), progress=False)
    with FillJournal(d) as j:
        cyc = j.conn.execute("SELECT name, as_of, phase, action, drifted, report FROM agent_cycles ORDER BY id").fetchall()
        failures = j.conn.execute("SELECT trading_date, failure, reason FROM runner_cycles WHERE status != 'done'").fetchall()
    assert not failures, failures
    promos = [c for c in cyc if c[3] == "promote"]
    assert promos, [c[:4] for c in cyc]
    name, as_of, phase, _, drifted, report = promos[0]
    rep = json.loads(report)
    assert drifted and phase == "promote" and rep["hypotheses"], rep
    ran = [e for e in rep["experiments"] if e["status"] == "ok"]
    assert ran and all(e["pid"] != os.getpid() for e in ran)                 # trained in the agent's worker processes
    assert all(set(e["spec"]) == {"train_window", "lookback"} for e in rep["hypotheses"])   # the class's own knobs
    with ModelRegistry(d, name) as reg:
        champ, rec = reg.load(), reg.champion()
        assert rec.version == 2 and rec.kind == "Persistence" and reg.get(1).status == "archived"
        assert isinstance(champ, PlainStrategy) and isinstance(champ, Strategy) and str(champ.train_end.date()) > "2026-10-19"
    g = res.gate
    assert g["self_healing"].passed and f"{name} {as_of}" in g["self_healing"].evidence, g["self_healing"].evidence
    assert g["errors"].passed, g["errors"].evidence


async def _one_cycle(d, seed=3, setup=None):
    async with GatewaySim(port=0, seed=seed, clock=SimClock(mode="accelerated", start=MONDAY_0900_CT, time_scale=60)) as gw:
        st = sim_settings(load_settings(env={}, cwd=d).replace("paths", state_dir=Path(d)).replace("risk", max_position=1.0), gw.port)
        r = PaperTradingRunner(st, broker=BrokerGateway(st, journal=FillJournal(d), clock=gw.clock, backoff_initial=0.05))
        if setup is not None: setup(r)
        await r.start()
        try: s = await r.run_cycle()
        finally: await r.stop()
        return s, [o.order_ref for o in gw.orders.values() if o.client_id == 1]


@pytest.mark.parametrize("bad, message", [
    (Raises, "HE: the agent's cycle on strategy Raises v1 failed: ZeroDivisionError: my feature divided by a zero volume"),
    (NaNToday, "HE: strategy NaNToday v1 gave no usable signal for 2026-10-16: ValueError: signal for 2026-10-16 is nan (not a finite number)")])
async def test_a_strategy_that_raises_or_gives_nan_is_the_days_error_and_nothing_is_sent(tmp_path, bad, message):
    "HE's champion is broken; ZO (the baseline) is decided first, yet no order of the day reaches the gateway."
    d = tmp_path/"state"
    register(d, "HE", PlainStrategy(bad(), train_window=60), simulate_daily_bars("HE", 250, seed=3))
    s, refs = await _one_cycle(d)
    assert (s["status"], s["failure"], s["reason"]) == ("failed", "error", message), s
    assert refs == [] and s["fills"] == 0
    with FillJournal(d) as j:
        row = j.conn.execute("SELECT status, failure, reason FROM runner_cycles WHERE trading_date = ?", (str(date(2026, 10, 19)),)).fetchone()
    assert row == ("failed", "error", message)
    errors = evaluate_gate(d)["errors"]
    assert not errors.passed and message[:40] in errors.evidence, errors.evidence


async def test_a_champion_pickled_before_the_protocol_still_trades(tmp_path):
    "An artifact written with plain pickle by the earlier registry: it loads, is a Strategy, and its day's cycle is done."
    d = tmp_path/"state"
    m = DirectionalModel(ModelSpec(train_window=120)).fit(simulate_daily_bars("ZO", 250, seed=3))
    rec = register(d, "ZO", m, simulate_daily_bars("ZO", 250, seed=3))
    rec.artifact.write_bytes(pickle.dumps(m, protocol=pickle.HIGHEST_PROTOCOL))     # as the registry wrote it before
    with ModelRegistry(d, "ZO") as reg: old = reg.load()
    assert isinstance(old, Strategy) and old.context_symbols == () and old.with_params(lookback=2).spec.lookback == 2
    bars = simulate_daily_bars("ZO", 250, seed=3)
    assert champion_signal(old, bars) == champion_signal(m, bars)
    s, refs = await _one_cycle(d)
    assert s["status"] == "done" and s["agent"]["ZO"]["champion"] == 1, s


SEEN = []

def spread(bars, lookback, context):
    "ZO against HE: the change of their log price ratio over `lookback` days (HE's bars from the context)."
    SEEN.append((sorted(context), context["HE"].index[-1]))
    he = context["HE"].close.reindex(bars.index).ffill()
    return (np.log(bars.close) - np.log(he)).diff(lookback).to_frame("spread")


async def test_use_strategy_with_another_symbols_bars_as_context(tmp_path):
    "`use_strategy` makes a scikit-learn estimator on a ZO/HE spread ZO's first champion; the runner fetches HE's bars for it."
    from sklearn.linear_model import LogisticRegression
    from hydra_nb.models import FeatureStrategy
    d = tmp_path/"state"
    SEEN.clear()
    s, refs = await _one_cycle(d, setup=lambda r: r.use_strategy("ZO", LogisticRegression(), features=spread, lookback=2, context_symbols=("HE",)))
    assert s["status"] == "done", s
    with ModelRegistry(d, "ZO") as reg:
        rec, champ = reg.champion(), reg.load()
        assert isinstance(champ, FeatureStrategy) and rec.kind == "LogisticRegression" and rec.hyperparameters["lookback"] == 2
        assert reg.events().reason.iloc[0].startswith("initial champion: LogisticRegression fitted on 60 days to 2026-10-15")
    with ModelRegistry(d, "HE") as reg: assert reg.champion().kind == "RidgeLogit"          # no strategy given: the baseline
    assert SEEN and all(keys == ["HE"] and last == pd.Timestamp("2026-10-16") for keys, last in SEEN), SEEN[-3:]
    sig = s["agent"]["ZO"]["signal"]
    assert -1 < sig < 1 and sig not in (0.0,) and s["targets"]["ZO"]["signal"] == sig        # graded 2 P(up) - 1, and what was sized


def test_a_notebooks_class_registered_here_loads_in_another_process(tmp_path):
    "The registry keeps a class defined in a notebook by value: `hydra paper-trade` (another process) loads and runs it."
    import subprocess, sys
    d, bars = tmp_path/"state", simulate_daily_bars("ZO", 250, seed=3)
    m = PlainStrategy(Persistence(lookback=2), train_window=60).fit(bars)
    register(d, "ZO", m, bars)
    code = ("import sys; from hydra_nb.models import ModelRegistry, strategy_signal; from hydra_nb.market import simulate_daily_bars\n"
            "m = ModelRegistry(sys.argv[1], 'ZO').load()\n"
            "print(m.kind, m.hyperparameters['lookback'], repr(strategy_signal(m, simulate_daily_bars('ZO', 250, seed=3))))")
    r = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    from hydra_nb.models import strategy_signal
    assert r.stdout.split() == ["Persistence", "2", repr(strategy_signal(m, bars))]
