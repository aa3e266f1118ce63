"""Models and registry beyond the notebook: optimizer optimality, no look-ahead in walk-forward, pickling across
processes, concurrent registration from two processes, atomicity under failure, damaged state."""
import concurrent.futures as cf, multiprocessing as mp, os, pickle
import numpy as np
import pandas as pd
import pytest
from hydra_nb.core import StateDBError
from hydra_nb.market import simulate_daily_bars
from hydra_nb.models import (DirectionalModel, ModelRegistry, ModelSpec, RidgeLogit, make_features, next_returns,
                             walk_forward)


def test_ridge_logit_is_at_the_optimum():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 3)); y = np.where(X @ [1.0, -0.5, 0.0] + rng.normal(size=300) > 0, 1, -1)
    m = RidgeLogit(l2=2.0).fit(X, y)
    Z = (X - m.mean_)/m.scale_
    s = np.where(y == 1, 1.0, -1.0)
    sig = 1/(1 + np.exp(s*(Z @ m.coef_ + m.intercept_)))
    grad = np.r_[Z.T @ (-s*sig) + 2.0*m.coef_, (-s*sig).sum()]
    assert np.abs(grad).max() < 1e-3, grad


def test_ridge_logit_separable_data_stays_finite():
    X = np.r_[np.ones((20, 1)), -np.ones((20, 1))]; y = np.r_[np.ones(20), -np.ones(20)]
    m = RidgeLogit(l2=0.1).fit(X, y)
    assert np.isfinite(m.coef_).all() and (m.predict(X) == y).all()


def test_features_have_no_look_ahead():
    bars = simulate_daily_bars("ZO", 80, seed=3)
    X = make_features(bars, 5, ("last", "lags", "mom", "vol"))
    changed = bars.copy(); changed.iloc[50:, changed.columns.get_loc("close")] *= 1.5
    X2 = make_features(changed, 5, ("last", "lags", "mom", "vol"))
    pd.testing.assert_frame_equal(X.iloc[:X.index.get_loc(bars.index[49]) + 1], X2.iloc[:X2.index.get_loc(bars.index[49]) + 1])
    assert next_returns(bars).iloc[48] == pytest.approx(np.log(bars.close.iloc[49]/bars.close.iloc[48]))


def test_walk_forward_windows_do_not_see_their_own_outcomes():
    bars = simulate_daily_bars("ZO", 160, seed=4, regimes={0: "momentum", 100: "mean_reversion"})
    champ = DirectionalModel(ModelSpec(train_window=60)).fit(bars.iloc[:100])
    wf = walk_forward(bars, ModelSpec(train_window=20), champ)
    # scramble everything after the start of the last window: the first four windows' training and scores do not move
    start = wf.windows.start.iloc[-1]
    scrambled = bars.copy()
    i = bars.index.get_loc(start)
    rng = np.random.default_rng(0)
    scrambled.iloc[i + 1:, scrambled.columns.get_loc("close")] = bars.close.iloc[i]*np.exp(np.cumsum(rng.normal(0, 0.02, len(bars) - i - 1)))
    wf2 = walk_forward(scrambled, ModelSpec(train_window=20), champ)
    pd.testing.assert_frame_equal(wf.windows[["start", "train_start", "train_end"]].iloc[:4],
                                  wf2.windows[["start", "train_start", "train_end"]].iloc[:4])
    np.testing.assert_allclose(wf.windows.cand_hit.iloc[:4], wf2.windows.cand_hit.iloc[:4])


def _fit_in_worker(bars, spec):
    return DirectionalModel(spec).fit(bars)


def test_models_round_trip_through_a_process_pool():
    bars = simulate_daily_bars("ZO", 120, seed=5)
    with cf.ProcessPoolExecutor(1) as ex:
        m = ex.submit(_fit_in_worker, bars, ModelSpec(train_window=60)).result(timeout=60)
    local = DirectionalModel(ModelSpec(train_window=60)).fit(bars)
    np.testing.assert_allclose(m.estimator_.coef_, local.estimator_.coef_)
    assert pickle.loads(pickle.dumps(m)).predict(bars).equals(m.predict(bars))


def _register_many(state_dir, n, q):
    bars = simulate_daily_bars("ZO", 80, seed=6)
    m = DirectionalModel(ModelSpec(train_window=30)).fit(bars)
    with ModelRegistry(state_dir, "ZO") as reg:
        q.put([reg.register(m, reason=f"pid {os.getpid()}").version for _ in range(n)])


def test_two_processes_registering_at_once_get_distinct_versions(tmp_path):
    ctx = mp.get_context("fork")
    q = ctx.Queue()
    ps = [ctx.Process(target=_register_many, args=(tmp_path, 15, q)) for _ in range(2)]
    for p in ps: p.start()
    got = sorted(q.get(timeout=60) + q.get(timeout=60))
    for p in ps: p.join(timeout=60)
    assert got == list(range(1, 31))
    with ModelRegistry(tmp_path, "ZO") as reg:
        df = reg.models()
        assert len(df) == 30 and df.artifact.map(os.path.exists).all()
        assert not list((tmp_path/"models").glob("*.tmp"))


class Unpicklable:
    estimator_ = "fitted"
    def __reduce__(self): raise TypeError("cannot pickle this model")


def test_a_failed_register_leaves_no_row_and_no_file(tmp_path):
    with ModelRegistry(tmp_path, "ZO") as reg:
        with pytest.raises(TypeError, match="cannot pickle"):
            reg.register(Unpicklable(), status="champion")
        assert reg.models().empty and reg.events().empty and reg.champion() is None
        assert list((tmp_path/"models").iterdir()) == []


def test_artifact_is_on_disk_before_its_row_commits(tmp_path, monkeypatch):
    "register fsyncs the artifact (and its directory) while the row is still uncommitted."
    import hydra_nb.models as models
    m = DirectionalModel(ModelSpec(train_window=30)).fit(simulate_daily_bars("ZO", 80, seed=9))
    with ModelRegistry(tmp_path, "ZO") as reg:
        synced, real_fsync = [], os.fsync
        def fsync(fd):
            synced.append((os.fstat(fd).st_size, reg.conn.in_transaction)); real_fsync(fd)
        monkeypatch.setattr(models.os, "fsync", fsync)
        rec = reg.register(m, reason="x")
        size = rec.artifact.stat().st_size
    assert synced and synced[0] == (size, True) and len(synced) == 2, synced   # the file, whole, then its directory


def test_a_failed_promote_changes_nothing(tmp_path, monkeypatch):
    bars = simulate_daily_bars("ZO", 80, seed=7)
    m = DirectionalModel(ModelSpec(train_window=30)).fit(bars)
    with ModelRegistry(tmp_path, "ZO") as reg:
        reg.register(m, status="champion", reason="first")
        reg.register(m, reason="second")
        n_events = len(reg.events())
        real_execute = reg.conn.execute
        def execute(sql, *a):   # fails on the statement that crowns the new champion, after the old one was archived
            if "SET status = 'champion'" in sql: raise RuntimeError("crash mid-promotion")
            return real_execute(sql, *a)
        conn = reg.conn
        proxy = type("P", (), {"execute": staticmethod(execute), "in_transaction": property(lambda s: conn.in_transaction)})()
        reg.conn = proxy
        with pytest.raises(RuntimeError, match="crash mid-promotion"):
            reg.promote(2, reason="should not stick")
        reg.conn = conn
        assert reg.champion().version == 1 and reg.get(2).status == "candidate" and len(reg.events()) == n_events


def test_missing_artifact_and_damaged_database(tmp_path):
    bars = simulate_daily_bars("ZO", 80, seed=8)
    with ModelRegistry(tmp_path, "ZO") as reg:
        rec = reg.register(DirectionalModel(ModelSpec(train_window=30)).fit(bars), status="champion", reason="x")
    rec.artifact.unlink()
    with ModelRegistry(tmp_path, "ZO") as reg:
        with pytest.raises(FileNotFoundError, match="artifact of ZO v1 is missing"):
            reg.load()
    bad = tmp_path/"other"; bad.mkdir(); (bad/"hydra.db").write_bytes(b"not a database at all, just bytes")
    with pytest.raises(StateDBError, match="not a SQLite database"):
        ModelRegistry(bad, "ZO")
