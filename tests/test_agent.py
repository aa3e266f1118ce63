"""The self-healing agent on the simulated market: the proof (regime switch -> drift -> experiment -> promotion ->
recovery), its control (no switch -> no promotion), rollback with hysteresis, supervised mode, the real process pool
with a timeout, and an event loop that stays responsive while a cycle trains."""
import asyncio, concurrent.futures as cf, os, time
import numpy as np
import pandas as pd
import pytest
from hydra_nb.agent import AgentConfig, AgentLoop, Phase, detect_drift, run_experiment
from hydra_nb.models import DirectionalModel, ModelRegistry, ModelSpec
from hydra_nb.market import simulate_daily_bars

K = 140            # the regime switch (trading day index)
START = 121        # the champion is trained on days 0..119; the agent runs from day 121 on


def _champion(bars):
    return DirectionalModel(ModelSpec(train_window=120)).fit(bars.iloc[:START])


def _agent(tmp_path, bars, executor=None, **cfg):
    reg = ModelRegistry(tmp_path / "state", "ZO")
    reg.register(_champion(bars), status="champion", reason="initial champion", actor="operator")
    return reg, AgentLoop(reg, AgentConfig(**cfg), executor=executor)


def _run(agent, bars, first, last):
    return [agent.run_cycle(bars.iloc[:d + 1]) for d in range(first, last + 1)]


def _day(bars, t): return int(bars.index.get_loc(pd.Timestamp(t)))


# --- the proof ----------------------------------------------------------------------------------------------------

def test_proof_regime_switch_detect_experiment_promote_recover(tmp_path):
    "Momentum -> mean reversion at day 140: drift within 5 days, a candidate wins 3 of 5 windows, is promoted, hit rate recovers."
    bars = simulate_daily_bars("ZO", 201, seed=0, regimes={0: "momentum", K: "mean_reversion"})
    reg, agent = _agent(tmp_path, bars)          # the default executor: a real process pool
    with agent:
        results = _run(agent, bars, START, 200)
    j = agent.journal()
    j["day"] = [_day(bars, t) for t in j.as_of]
    assert len(j) == 200 - START + 1 and j.cycle_id.is_monotonic_increasing
    # before the switch: nothing is done
    assert (j[j.day < K].action == "none").all()
    # drift detected within 5 trading days of the switch
    first = j[(j.day >= K) & j.drifted].day.min()
    assert first - K <= 5, first
    # a candidate trained in another process won >= 3 of 5 windows and was promoted
    promo = j[j.action == "promote"]
    assert len(promo) >= 1
    p = promo.iloc[0]
    assert p.phase == "promote" and p.champion_before == 1 and p.champion_after == 2 and p.day > K
    wins = [e for e in p.report["experiments"] if e["status"] == "ok" and e["walk_forward"]["wins"] >= 3]
    assert wins and all(e["pid"] != os.getpid() for e in p.report["experiments"])
    assert all(e["walk_forward"]["n_windows"] == 5 for e in p.report["experiments"])
    ev = reg.events()
    assert ev[ev.action == "promote"].iloc[-1].from_version == 1 and "beat v1 in" in ev.iloc[-1].reason
    # the champion's hit rate fell after the switch; the promoted model's recovered
    old, new = reg.load(1), reg.load(2)
    after = slice(bars.index[p.day + 1], bars.index[-1])
    old_before = old.hits(bars.iloc[:K + 1]).loc[bars.index[START]:].mean()
    old_after, new_after = old.hits(bars).loc[after].mean(), new.hits(bars).loc[after].mean()
    assert old_after < 0.45 < 0.55 < old_before, (old_before, old_after)
    assert new_after > 0.55 and new_after - old_after > 0.2, (new_after, old_after)
    # the cycle result names its phase, durations, hypotheses; budget and cooldown hold
    r = results[p.day - START]
    assert r.phase is Phase.PROMOTE and r.action == "promote" and {"observe", "experiment", "evaluate", "total"} <= set(r.durations)
    assert (j.report.map(lambda x: len(x["hypotheses"])) <= 2).all()
    cool = j[(j.day > p.day) & (j.day <= p.day + 9) & j.drifted]
    assert (cool.reason.str.startswith("cooldown") | (cool.phase == "observe")).all()
    # hypotheses are not retried within 5 trading days
    h = agent.hypotheses()
    h["day"] = [_day(bars, t) for t in h.as_of]
    for _, g in h.groupby("spec_key"):
        assert (np.diff(g.day.to_numpy()) >= 5).all()
    reg.close()


def test_control_no_switch_no_promotion(tmp_path):
    "The same market without the switch: 60 days, no promotion (seed 0 with the process pool, seeds 1-4 with threads)."
    for seed in range(5):
        bars = simulate_daily_bars("ZO", 181, seed=seed)
        ex = None if seed == 0 else cf.ThreadPoolExecutor(2)
        reg, agent = _agent(tmp_path / f"s{seed}", bars, executor=ex)
        with agent:
            _run(agent, bars, START, 180)
        j = agent.journal()
        assert len(j) == 60
        assert not (j.action != "none").any(), j[j.action != "none"][["as_of", "action", "reason"]]
        assert reg.champion().version == 1 and len(reg.models()) == 1
        if ex: ex.shutdown()
        reg.close()


def test_detection_delay_across_seeds():
    "How fast the monitors see the switch, over 12 seeds: the honest figure behind 'within 5 days'."
    delays = []
    for seed in range(12):
        bars = simulate_daily_bars("ZO", 171, seed=seed, regimes={0: "momentum", K: "mean_reversion"})
        champ = _champion(bars)
        d = next((t - K for t in range(K, 171) if any(r.drifted for r in detect_drift(bars.iloc[:t + 1], champ).values())), 99)
        delays.append(d)
    delays = np.array(delays)
    assert np.median(delays) <= 5 and (delays <= 5).mean() >= 0.5 and (delays <= 20).all(), delays


# --- rollback with hysteresis -------------------------------------------------------------------------------------

def _mr_model():
    "A model trained on a mean-reverting market: wrong for momentum."
    mr = simulate_daily_bars("ZO", 200, seed=7, regimes={0: "mean_reversion"})
    return DirectionalModel(ModelSpec(train_window=120)).fit(mr)


def test_rollback_of_a_degrading_promotion_and_no_flapping(tmp_path):
    "A promoted candidate that degrades (momentum market, mean-reversion model) is rolled back to v1, once."
    bars = simulate_daily_bars("ZO", 221, seed=1)
    reg, agent = _agent(tmp_path, bars, executor=cf.ThreadPoolExecutor(2))
    v2 = reg.register(_mr_model(), reason="candidate from the desk").version
    agent.observe_bars(bars.iloc[:START])
    agent.approve(v2, reason="operator promotes a mean-reversion model")       # on day 120
    with agent:
        results = _run(agent, bars, START, 220)
    j = agent.journal()
    rb = j[j.action == "rollback"]
    assert len(rb) == 1, j[j.action != "none"][["as_of", "action", "reason"]]
    day = _day(bars, rb.as_of.iloc[0])
    assert START + 11 <= day <= START + 20, day          # a full 10-day window, then 3 degraded cycles in a row
    assert rb.champion_before.iloc[0] == 2 and rb.champion_after.iloc[0] == 1 and rb.phase.iloc[0] == "rollback"
    streaks = [r.drift["rollback_monitor"]["streak"] for r in results if "streak" in r.drift.get("rollback_monitor", {})]
    assert streaks[-3:] == [1, 2, 3], streaks                        # three degraded cycles in a row, then rollback
    ev = reg.events()
    assert ev.iloc[-1 if ev.action.iloc[-1] == "rollback" else -2].action == "rollback"
    assert reg.champion().version == 1 and reg.previous_champion() is None   # restored: never rolled "forward" again
    assert (j[j.as_of > rb.as_of.iloc[0]].action != "rollback").all()
    assert (ev.action == "rollback").sum() == 1
    reg.close()


def test_supervised_rollback_proposed_then_approved_sets_the_same_cooldown(tmp_path):
    "Supervised: the rollback is proposed (nothing changes), the operator approves it, and the agent's state is then what an autonomous rollback leaves."
    bars = simulate_daily_bars("ZO", 221, seed=1)
    reg, agent = _agent(tmp_path, bars, executor=cf.ThreadPoolExecutor(2), autonomy="supervised")
    v2 = reg.register(_mr_model(), reason="candidate from the desk").version
    agent.observe_bars(bars.iloc[:START])
    agent.approve(v2, reason="operator promotes a mean-reversion model")
    with agent:
        for d in range(START, 221):
            r = agent.run_cycle(bars.iloc[:d + 1])
            if r.action == "propose_rollback": break
        assert r.action == "propose_rollback" and r.reason.startswith("supervised: rollback to v1 proposed"), r.reason
        assert reg.champion().version == 2
        assert agent.approve_rollback().version == 1
        day = str(bars.index[d].date())
        st = agent._state()
        assert (st["streak"], st["last_action"], st["last_action_as_of"], st["cusum_since"]) == (0, "rollback", day, day)
        assert reg.events().iloc[-1][["action", "actor"]].tolist() == ["rollback", "operator"]
    reg.close()


def test_similar_promotion_is_not_rolled_back(tmp_path):
    "Hysteresis: a promoted model about as good as the old one is never rolled back over its 60-day probation."
    bars = simulate_daily_bars("ZO", 181, seed=2)
    reg, agent = _agent(tmp_path, bars, executor=cf.ThreadPoolExecutor(2))
    twin = DirectionalModel(ModelSpec(train_window=100, l2=3.0)).fit(bars.iloc[:START])
    reg.promote(reg.register(twin, reason="a near twin").version, reason="operator", actor="operator")
    with agent:
        results = _run(agent, bars, START, 180)
    assert not any(r.action == "rollback" for r in results)
    streaks = [r.drift["rollback_monitor"]["streak"] for r in results if "streak" in r.drift.get("rollback_monitor", {})]
    assert len(streaks) > 40 and max(streaks) < 3, streaks
    reg.close()


def test_supervised_mode_proposes_and_operator_approves(tmp_path, monkeypatch):
    bars = simulate_daily_bars("ZO", 201, seed=0, regimes={0: "momentum", K: "mean_reversion"})
    reg, agent = _agent(tmp_path, bars, executor=cf.ThreadPoolExecutor(2), autonomy="supervised")
    with agent:
        results = _run(agent, bars, START, 170)
    props = [r for r in results if r.action == "propose"]
    assert props and reg.champion().version == 1                    # proposed, not acted on
    assert props[0].reason.startswith("supervised: v2 proposed") and reg.get(2).status == "candidate"
    with monkeypatch.context() as m:                                # the approval and the agent's state commit together
        m.setattr(agent, "_save_state", lambda state: (_ for _ in ()).throw(RuntimeError("crash")))
        with pytest.raises(RuntimeError): agent.approve(2)
    assert reg.champion().version == 1 and agent._state()["promoted_version"] is None
    agent.approve(2)
    assert reg.champion().version == 2 and reg.events().iloc[-1].actor == "operator" and agent._state()["promoted_version"] == 2
    with pytest.raises(ValueError, match="not a candidate"):
        agent.approve(1)
    reg.close()


# --- executor: process pool, timeout, errors, event loop ----------------------------------------------------------

def slow_experiment(bars, champion, spec, n_windows, window, estimator):
    "Top-level (picklable) stand-in for a training run that hangs."
    time.sleep(30)


def busy_experiment(bars, champion, spec, n_windows, window, estimator):
    "CPU-bound for about a second (holds its own process's GIL), then the real experiment."
    t = time.perf_counter()
    x = 0
    while time.perf_counter() - t < 1.0: x += 1
    return run_experiment(bars, champion, spec, n_windows, window, estimator)


def failing_experiment(*args):
    raise RuntimeError("training diverged")


def _drifting_bars():
    return simulate_daily_bars("ZO", 160, seed=0, regimes={0: "momentum", K: "mean_reversion"})


def test_process_pool_timeout_is_handled_and_pool_recovers(tmp_path):
    bars = _drifting_bars()
    reg, agent = _agent(tmp_path, bars, timeout=1.5)
    agent.experiment_fn = slow_experiment
    agent.observe_bars(bars.iloc[:K + 2])
    t = time.perf_counter()
    r = agent.run_cycle(bars.iloc[:K + 3])                          # drift is active on day 142 (see the proof)
    took = time.perf_counter() - t
    assert r.phase is Phase.EXPERIMENT and "did not finish within the timeout" in r.reason, r.reason
    assert all(e["status"] == "timeout" for e in r.experiments) and took < 10, took
    assert agent._executor is None                                  # the stuck pool was killed
    agent.experiment_fn = run_experiment
    agent.cfg = AgentConfig(retry_after=0)
    r2 = agent.run_cycle(bars.iloc[:K + 4])
    assert r2.experiments and all(e["status"] == "ok" and e["pid"] != os.getpid() for e in r2.experiments), r2.reason
    h = agent.hypotheses()
    assert set(h.status) == {"timeout", "ok"}
    agent.close(); reg.close()


def crashing_experiment(*args):
    os._exit(3)                                                     # a worker that dies (segfault, OOM kill)


def test_a_crashed_worker_breaks_no_later_cycle(tmp_path):
    bars = _drifting_bars()
    reg, agent = _agent(tmp_path, bars)                             # real process pool
    agent.experiment_fn = crashing_experiment
    r = agent.run_cycle(bars.iloc[:K + 3])
    assert r.phase is Phase.EXPERIMENT and "BrokenProcessPool" in r.reason and agent._executor is None, r.reason
    agent.experiment_fn, agent.cfg = run_experiment, AgentConfig(retry_after=0)
    r2 = agent.run_cycle(bars.iloc[:K + 4])
    assert r2.experiments and all(e["status"] == "ok" for e in r2.experiments), r2.reason
    agent.close(); reg.close()


def test_a_crash_while_journaling_undoes_the_promotion(tmp_path, monkeypatch):
    "The promotion and the cycle's journal entry commit together: a failure in between leaves neither."
    bars = _drifting_bars()
    reg, agent = _agent(tmp_path, bars, executor=cf.ThreadPoolExecutor(2))
    champ = reg.load(1)
    wf = dict(wins=5, losses=0, n_windows=5, improvement=0.3, sign_test_p=0.01)
    agent.experiment_fn = lambda *a: dict(walk_forward=wf, candidate=champ, seconds=0.0, pid=os.getpid())
    monkeypatch.setattr(agent, "_save_state", lambda state: (_ for _ in ()).throw(RuntimeError("crash while journaling")))
    with pytest.raises(RuntimeError, match="crash while journaling"):
        agent.run_cycle(bars.iloc[:K + 3])
    assert reg.champion().version == 1 and reg.events().action.tolist() == ["register", "promote", "register"]   # v1; v2 a candidate only
    assert agent.journal().empty
    monkeypatch.undo()
    r = agent.run_cycle(bars.iloc[:K + 3])                          # the same day again, nothing failing: it promotes
    assert r.action == "promote" and reg.champion().version == r.champion_after == 3
    assert reg.events().action.tolist()[-1] == "promote" and len(agent.journal()) == 1
    reg.close()


def test_experiment_errors_are_reported(tmp_path):
    bars = _drifting_bars()
    reg, agent = _agent(tmp_path, bars, executor=cf.ThreadPoolExecutor(2))
    agent.experiment_fn = failing_experiment
    r = agent.run_cycle(bars.iloc[:K + 3])
    assert r.phase is Phase.EXPERIMENT and "training diverged" in r.reason and r.action == "none"
    assert reg.champion().version == 1
    reg.close()


def test_thread_pool_cycle_in_a_fresh_interpreter(tmp_path):
    "A caller's thread pool in a process that never imported the process-pool module (no test ordering can hide it)."
    import subprocess, sys, textwrap
    code = textwrap.dedent(f"""
        import concurrent.futures as cf, sys
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from test_agent import _agent, _drifting_bars, K
        import pathlib
        bars = _drifting_bars()
        with cf.ThreadPoolExecutor(2) as ex:
            reg, agent = _agent(pathlib.Path({str(tmp_path)!r}), bars, executor=ex)
            r = agent.run_cycle(bars.iloc[:K + 3])
        assert "concurrent.futures.process" not in sys.modules
        print(sorted({{e["status"] for e in r.experiments}}))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "['ok']", out.stdout


def test_a_callers_executor_is_kept_after_a_timeout(tmp_path):
    "The agent only kills pools it created: a caller's executor stays in use (no unowned process pool appears)."
    import threading
    release = threading.Event()
    bars = _drifting_bars()
    with cf.ThreadPoolExecutor(2) as ex:
        reg, agent = _agent(tmp_path, bars, executor=ex, timeout=0.3)
        agent.experiment_fn = lambda *a: release.wait(10)
        r = agent.run_cycle(bars.iloc[:K + 3])
        release.set()
        assert r.experiments and all(e["status"] == "timeout" for e in r.experiments), r.reason
        assert agent._executor is ex and not agent._owns_executor
    reg.close()


async def _heartbeat_during_a_cycle(state_dir):
    "Run one async cycle with the real process pool and a 10 ms heartbeat on the same loop: (statuses, seconds, heartbeat times)."
    bars = _drifting_bars()
    reg, agent = _agent(state_dir, bars)                            # real process pool
    agent.experiment_fn = busy_experiment
    ticks, stop = [], asyncio.Event()

    async def heartbeat():
        while not stop.is_set():
            ticks.append(time.perf_counter()); await asyncio.sleep(0.01)

    hb = asyncio.create_task(heartbeat())
    t = time.perf_counter()
    r = await agent.run_cycle_async(bars.iloc[:K + 3])
    took = time.perf_counter() - t
    stop.set(); await hb
    agent.close(); reg.close()
    return [e["status"] for e in r.experiments], took, ticks


def test_event_loop_stays_responsive_while_a_cycle_trains(tmp_path):
    "In a fresh interpreter, so that the pool's first start (forkserver, workers) is inside the measured cycle."
    import json, subprocess, sys, textwrap
    code = textwrap.dedent(f"""
        import asyncio, json, pathlib, sys
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from test_agent import _heartbeat_during_a_cycle
        print(json.dumps(asyncio.run(_heartbeat_during_a_cycle(pathlib.Path({str(tmp_path)!r})))))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    statuses, took, ticks = json.loads(out.stdout.strip().splitlines()[-1])
    assert statuses and set(statuses) == {"ok"}, statuses
    assert took >= 1.0                                              # the workers really trained for a second
    gaps = np.diff(ticks)
    assert len(ticks) > 50 and gaps.max() < 0.25, (len(ticks), gaps.max())


async def test_async_timeout(tmp_path):
    bars = _drifting_bars()
    reg, agent = _agent(tmp_path, bars, timeout=1.0)
    agent.experiment_fn = slow_experiment
    t = time.perf_counter()
    r = await agent.run_cycle_async(bars.iloc[:K + 3])
    assert time.perf_counter() - t < 10 and r.phase is Phase.EXPERIMENT and "timeout" in r.reason
    agent.close(); reg.close()


# --- journal and restarts -----------------------------------------------------------------------------------------

def test_journal_and_dedup_survive_a_restart(tmp_path):
    bars = _drifting_bars()
    reg, agent = _agent(tmp_path, bars, executor=cf.ThreadPoolExecutor(2))
    r1 = agent.run_cycle(bars.iloc[:K + 3])
    assert r1.hypotheses and r1.cycle_id == 1
    reg.close()
    # a new process: same state directory, fresh objects, the whole history re-sent
    reg2 = ModelRegistry(tmp_path / "state", "ZO")
    agent2 = AgentLoop(reg2, executor=cf.ThreadPoolExecutor(2))
    r2 = agent2.run_cycle(bars.iloc[:K + 4])
    tried1 = {ModelSpec.from_dict(h["spec"]).key for h in r1.hypotheses}
    tried2 = {ModelSpec.from_dict(h["spec"]).key for h in r2.hypotheses}
    assert not tried1 & tried2                                      # not retried the next day
    j = agent2.journal()
    assert list(j.cycle_id) == [1, 2] and isinstance(j.report.iloc[0], dict) and j.as_of.dtype.kind == "M"
    assert {"drift", "hypotheses", "experiments", "durations"} <= set(j.report.iloc[0])
    reg2.close()


def test_no_champion_and_bad_observation(tmp_path):
    reg = ModelRegistry(tmp_path / "state", "ZO")
    agent = AgentLoop(reg, executor=cf.ThreadPoolExecutor(1))
    bars = _drifting_bars()
    r = agent.run_cycle(bars.iloc[:130])
    assert r.action == "none" and "no champion registered" in r.reason
    with pytest.raises(ValueError, match="non-finite or non-positive"):
        agent.run_cycle(bars.iloc[:131].assign(close=np.nan))
    with pytest.raises(ValueError, match="DatetimeIndex"):
        agent.run_cycle(bars.reset_index())
    reg.close()


def test_observation_can_be_one_bar_at_a_time(tmp_path):
    bars = _drifting_bars()
    reg, agent = _agent(tmp_path, bars, executor=cf.ThreadPoolExecutor(2))
    agent.observe_bars(bars.iloc[:START])
    for d in range(START, START + 3):
        agent.run_cycle(bars.iloc[[d]])
    assert len(agent.history) == START + 3 and agent.history.index.equals(bars.index[:START + 3])
    reg.close()


async def test_cancelled_async_cycle_does_not_leave_the_lock_held(tmp_path):
    bars = _drifting_bars()
    reg, agent = _agent(tmp_path, bars, executor=cf.ThreadPoolExecutor(2))
    agent._lock.acquire()                                           # a cycle "in progress"
    task = asyncio.create_task(agent.run_cycle_async(bars.iloc[:K + 3]))
    await asyncio.sleep(0.05); task.cancel()
    with pytest.raises(asyncio.CancelledError): await task
    agent._lock.release()
    await asyncio.sleep(0.05)
    r = await asyncio.wait_for(agent.run_cycle_async(bars.iloc[:K + 3]), 30)   # would hang if the lock leaked
    assert r.cycle_id is not None
    reg.close()


# --- the multi-seed study behind the figures quoted in nbs/12_agent.ipynb (not a test: ~1 minute) -----------------

def study(seeds=range(20)):
    "Per seed: control (no switch, 60 days) and switch (momentum -> mean reversion at day 140, 60 days after it)."
    import tempfile
    ex, rows = cf.ThreadPoolExecutor(2), []

    def run(bars):
        reg = ModelRegistry(tempfile.mkdtemp(), "ZO")
        reg.register(_champion(bars), status="champion", reason="initial", actor="operator")
        ag = AgentLoop(reg, executor=ex)
        _run(ag, bars, START, len(bars) - 1)
        return ag.journal(), reg

    for s in seeds:
        c, _ = run(simulate_daily_bars("ZO", 181, seed=100 + s))
        b = simulate_daily_bars("ZO", 201, seed=s, regimes={0: "momentum", K: "mean_reversion"})
        w, reg = run(b)
        d = w[w.drifted & (w.as_of >= b.index[K])].as_of.min()
        pr = w[w.action == "promote"]
        row = dict(seed=s, control_alarm_days=int(c.drifted.sum()), control_promotions=int((c.action == "promote").sum()),
                   detect_delay=_day(b, d) - K if pd.notna(d) else None, promotion_delay=None, hit_old=None, hit_new=None)
        if len(pr):
            p = _day(b, pr.as_of.iloc[0]); sl = slice(b.index[p + 1], b.index[-1])
            row.update(promotion_delay=p - K, hit_old=reg.load(1).hits(b).loc[sl].mean(),
                       hit_new=reg.load(int(pr.champion_after.iloc[0])).hits(b).loc[sl].mean())
        rows.append(row); print(row, flush=True)
    df = pd.DataFrame(rows)
    print(f"control: {df.control_promotions.sum()} promotions in {len(df)} x 60 days; runs with an alarm: "
          f"{(df.control_alarm_days > 0).sum()}, alarm days median {df.control_alarm_days.median():g}")
    print(f"detection delay: median {df.detect_delay.median():g}, within 5 days {(df.detect_delay <= 5).mean():.0%}, max {df.detect_delay.max()}")
    print(f"promoted within 60 days: {df.promotion_delay.notna().sum()}/{len(df)}, delay median {df.promotion_delay.median():g}; "
          f"hit rate after promotion: new {df.hit_new.median():.2f} vs old {df.hit_old.median():.2f} (median), new > old in "
          f"{(df.hit_new > df.hit_old).sum()}/{df.hit_new.notna().sum()}")
    return df


if __name__ == "__main__":
    study()
