"""The agent's experiments on a Dask cluster (`[agent] executor = dask://HOST:PORT`), against a `distributed.LocalCluster`
this module starts itself (two single-threaded worker processes): the same cycles give the same outcomes as the local
process pool, synchronously and from an event loop; a timeout is reported and the cluster's executor is kept (the agent
kills only its own pool); failures are reported; an unreachable address or a service that is not a Dask scheduler is
one clear error within the connect timeout; `from_spec` closes the client it made and nothing else; and
`import hydra_nb.agent` does not import distributed (an optional extra)."""
import asyncio, concurrent.futures as cf, json, os, socket, subprocess, sys, threading, time
import pytest

import distributed             # the dask extra, part of [dev]: CI installs it, so a missing one fails here (no skip)

from hydra_nb.agent import AgentConfig, AgentLoop, DaskExecutor, Phase, executor_from_spec, run_experiment
from hydra_nb.models import DirectionalModel, ModelRegistry, ModelSpec
from hydra_nb.market import simulate_daily_bars

K, START = 140, 121            # the regime switch (momentum -> mean reversion); the champion is trained on days 0..120
FIRST, LAST = K + 2, K + 18    # drift from day 142 on; experiments on 5 of these days and a promotion on day 155 (seed 0)


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  scheduler_port=0, silence_logs=40) as c:
        yield c


@pytest.fixture
def spec(cluster):
    return cluster.scheduler_address.replace("tcp://", "dask://")


def worker_pids(cluster):
    "The worker processes' pids, from the cluster's nannies (a second client's handshake is flaky while the workers are busy)."
    return {w.pid for w in cluster.workers.values()}


def _bars():
    return simulate_daily_bars("ZO", LAST + 1, seed=0, regimes={0: "momentum", K: "mean_reversion"})


def _registry(path, bars):
    reg = ModelRegistry(path, "ZO")
    reg.register(DirectionalModel(ModelSpec(train_window=120)).fit(bars.iloc[:START]), status="champion",
                 reason="initial champion", actor="operator")
    return reg


def _outcome(agent, reg, results, bars):
    "What a run decided and the models it made, without what depends on where and how fast it ran (pids, seconds, times)."
    def exp(e): return {k: v for k, v in e.items() if k not in ("pid", "seconds")}
    cycles = [(str(r.as_of.date()), r.phase.value, r.action, r.reason, r.diagnosis, r.champion_before, r.champion_after,
               json.dumps(r.drift, sort_keys=True, default=str), [exp(e) for e in r.experiments]) for r in results]
    models = {int(v): (reg.get(v).status, reg.get(v).metrics, reg.load(v).spec.key, reg.load(v).hits(bars).tolist())
              for v in reg.models().version}
    return dict(cycles=cycles, models=models, hypotheses=agent.hypotheses().drop(columns="cycle_id").to_dict("list"))


def _run_sync(agent, bars):
    agent.observe_bars(bars.iloc[:FIRST])
    return [agent.run_cycle(bars.iloc[:d + 1]) for d in range(FIRST, LAST + 1)]


async def _run_async(agent, bars):
    agent.observe_bars(bars.iloc[:FIRST])
    return [await agent.run_cycle_async(bars.iloc[:d + 1]) for d in range(FIRST, LAST + 1)]


def test_cycles_on_dask_equal_the_local_process_pool(tmp_path, cluster, spec):
    "The same days through the local process pool, the cluster (run_cycle) and the cluster from an event loop: one outcome."
    bars = _bars()
    reg = _registry(tmp_path / "local", bars)
    with AgentLoop(reg) as agent:                                  # the default: the agent's own process pool
        local_results = _run_sync(agent, bars)
        local = _outcome(agent, reg, local_results, bars)
    reg.close()
    # the scenario really exercises the experiments and the promotion, not just "no drift" days
    assert sum(bool(r.experiments) for r in local_results) >= 3 and [r.action for r in local_results].count("promote") == 1
    pids = worker_pids(cluster)
    for name, run in (("dask", _run_sync), ("dask_async", lambda a, b: asyncio.run(_run_async(a, b)))):
        reg = _registry(tmp_path / name, bars)
        agent = AgentLoop.from_spec(reg, spec=spec, connect_timeout=5)
        assert isinstance(agent.executor, DaskExecutor) and not agent._owns_executor
        results = run(agent, bars)
        assert _outcome(agent, reg, results, bars) == local, name
        ran_on = {e["pid"] for r in results for e in r.experiments}
        assert ran_on and ran_on <= pids, (ran_on, pids)         # every experiment ran in one of the cluster's workers
        client = agent.executor.client
        agent.close(); reg.close()
        assert client.status == "closed"                          # from_spec made the client: close() closes it
    assert worker_pids(cluster) == pids                           # the cluster itself is untouched


def slow_experiment(*args):
    "Top-level stand-in for a training run that overruns the cycle's timeout (Dask cannot interrupt it)."
    time.sleep(6)


def failing_experiment(*args):
    raise RuntimeError("training diverged")


def _drifting_agent(path, executor, **cfg):
    bars = _bars()
    reg = _registry(path, bars)
    agent = AgentLoop(reg, AgentConfig(**cfg), executor=executor)
    agent.observe_bars(bars.iloc[:FIRST])
    return bars, reg, agent


def test_timeout_on_dask_is_reported_and_the_cluster_executor_kept(tmp_path, cluster, spec):
    pids = worker_pids(cluster)
    ex = executor_from_spec(spec, connect_timeout=5)
    bars, reg, agent = _drifting_agent(tmp_path, ex, timeout=1.0)
    agent.experiment_fn = slow_experiment
    t = time.perf_counter()
    r = agent.run_cycle(bars.iloc[:FIRST + 1])
    took = time.perf_counter() - t
    assert r.phase is Phase.EXPERIMENT and "did not finish within the timeout" in r.reason, r.reason
    assert [e["status"] for e in r.experiments] == ["timeout", "timeout"] and took < 5, took   # it did not wait for the 6 s
    assert agent._executor is ex and not agent._owns_executor       # kept: no fallback to a local pool, nothing killed
    assert worker_pids(cluster) == pids                             # the cluster's workers were not terminated
    # the next cycle runs on the same cluster (once the overrunning experiments give their threads back)
    agent.experiment_fn, agent.cfg = run_experiment, AgentConfig(retry_after=0)
    r2 = agent.run_cycle(bars.iloc[:FIRST + 2])
    assert r2.experiments and all(e["status"] == "ok" and e["pid"] in pids for e in r2.experiments), r2.reason
    agent.close()
    assert ex.client.status == "running"                            # a caller's executor: the caller closes it
    ex.shutdown(); reg.close()
    assert ex.client.status == "closed"


async def test_async_timeout_and_failure_on_dask(tmp_path, cluster, spec):
    ex = executor_from_spec(spec, connect_timeout=5)
    bars, reg, agent = _drifting_agent(tmp_path, ex, timeout=30.0)     # the workers may still be busy with an earlier test's overrun
    agent.experiment_fn = failing_experiment
    r = await agent.run_cycle_async(bars.iloc[:FIRST + 1])
    assert r.phase is Phase.EXPERIMENT and r.action == "none" and "RuntimeError: training diverged" in r.reason, r.reason
    agent.experiment_fn, agent.cfg = slow_experiment, AgentConfig(timeout=1.0, retry_after=0)
    t = time.perf_counter()
    r = await agent.run_cycle_async(bars.iloc[:FIRST + 2])
    assert time.perf_counter() - t < 5 and [e["status"] for e in r.experiments] == ["timeout", "timeout"], r.reason
    assert agent._executor is ex
    assert reg.champion().version == 1
    ex.shutdown(cancel_futures=True); reg.close()


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def test_unreachable_scheduler_is_one_clear_error_within_the_timeout():
    port = _free_port()
    t = time.perf_counter()
    with pytest.raises(ConnectionError, match=rf"no Dask scheduler reachable at tcp://127\.0\.0\.1:{port} \(executor "
                                              rf"'dask://127\.0\.0\.1:{port}'\) within 1 s"):
        executor_from_spec(f"dask://127.0.0.1:{port}", connect_timeout=1)
    assert time.perf_counter() - t < 4


def test_a_service_that_is_not_a_scheduler_is_the_same_clear_error(tmp_path):
    "distributed fails on a non-Dask reply with a MemoryError (it reads the reply as a frame length): still one ConnectionError."
    srv = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve():
        srv.settimeout(0.2)
        while not stop.is_set():
            try: c, _ = srv.accept()
            except OSError: continue
            with c: c.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n" * 4); stop.wait(1)

    th = threading.Thread(target=serve, daemon=True); th.start()
    port = srv.getsockname()[1]
    try:
        with pytest.raises(ConnectionError, match=rf"no Dask scheduler reachable at tcp://127\.0\.0\.1:{port}"):
            executor_from_spec(f"tcp://127.0.0.1:{port}", connect_timeout=1)
    finally:
        stop.set(); th.join(); srv.close()


def test_bad_specs_fail_before_anything_connects(tmp_path):
    reg = ModelRegistry(tmp_path / "state", "ZO")
    for bad in ("", "dask://", "dask://host:notaport", "spark://host:7077"):
        with pytest.raises(ValueError, match="executor spec"):
            AgentLoop.from_spec(reg, spec=bad)
    reg.close()


def test_importing_the_agent_does_not_import_distributed():
    "distributed is an optional extra: loaded only when a cluster is asked for."
    code = "import sys, hydra_nb.agent; print(sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout
