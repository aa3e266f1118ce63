"""SlippageReconciler: the seed's hand-computed integration test, bootstrap validity, the k fit, and `hydra fill-report`."""
import hashlib, json, math, os, subprocess, sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
import numpy as np
import pandas as pd
import pytest
from hydra_nb.journal import FillJournal, FillRecord
from hydra_nb.reconcile import SlippageReconciler, bootstrap_bias_corr, fit_impact_coefficient

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=timezone.utc)
HYDRA = Path(sys.executable).parent / "hydra"


def seed_fills(n=20):
    # predicted p_i = 0.05 i, actual a_i = p_i + 0.02 + 0.1 (-1)^i, i = 1..20 (price units)
    return [FillRecord(f"seed.{i:02d}", T0 + timedelta(minutes=i), "ZO", "SELL", 2, 350.25, predicted_slippage=0.05 * i,
                       actual_slippage=0.05 * i + 0.02 + 0.1 * (-1) ** i) for i in range(1, n + 1)]


def test_reconciler_integration_seed(tmp_path):
    """The seed's test: 20 synthetic fills through a real journal; bias, RMSE, correlation equal hand-computed values."""
    with FillJournal(tmp_path) as j:
        assert j.record_fills(seed_fills()) == 20
        r = SlippageReconciler(j).reconcile()
    # by hand (population moments, i = 1..20): see nbs/05_reconcile.ipynb
    assert r.n == 20 and r.sufficient
    assert r.bias == pytest.approx(0.02, abs=1e-12)
    assert r.rmse == pytest.approx(math.sqrt((0.12 ** 2 + 0.08 ** 2) / 2), abs=1e-12)
    assert r.correlation == pytest.approx(0.085625 / math.sqrt(0.083125 * 0.098125), abs=1e-12)
    assert r.correlation == pytest.approx(0.948080, abs=1e-6)
    assert (r.mean_predicted, r.mean_actual) == pytest.approx((0.525, 0.545), abs=1e-12)
    assert r.median_predicted == pytest.approx(0.525, abs=1e-12)       # median of 0.05..1.00
    assert r.p95_predicted == pytest.approx(0.9525, abs=1e-12)         # numpy linear: 0.05 * (1 + 0.95 * 19)
    assert r.bias_ci[0] < 0.02 < r.bias_ci[1] and r.correlation_ci[0] < r.correlation < r.correlation_ci[1]
    assert r.bootstrap_method == "resample" and r.n_boot == 1000
    ok, why = r.is_calibrated()
    assert ok and "|bias| 0.02 (price units) < 0.5" in why and "correlation 0.948 > 0.3" in why


def test_insufficient_data_is_a_result_not_a_crash(tmp_path):
    with FillJournal(tmp_path) as j:
        j.record_fills(seed_fills(9))
        r = SlippageReconciler(j).reconcile()
        assert (r.n, r.sufficient) == (9, False) and math.isnan(r.bias)
        assert SlippageReconciler(j).is_model_calibrated() == (False, "insufficient data: 9 fills with predicted and actual "
                                                                       "slippage, at least 10 needed")
        j.record_fill(seed_fills(10)[-1])
        assert SlippageReconciler(j).reconcile().sufficient


def test_dataframe_source_equals_journal_source(tmp_path):
    with FillJournal(tmp_path) as j:
        j.record_fills(seed_fills())
        a = SlippageReconciler(j, seed=4).reconcile(since=T0 + timedelta(minutes=3))
        b = SlippageReconciler(j.slippage_pairs(), seed=4).reconcile(since=T0 + timedelta(minutes=3))
    assert a == b or a.to_dict() == b.to_dict()


def naive_bootstrap(p, a, B, rng):
    """The textbook loop: resample fills with replacement, recompute the statistics."""
    bs, cs = [], []
    for _ in range(B):
        i = rng.choice(len(p), len(p), replace=True)
        bs.append(np.mean(a[i] - p[i])); cs.append(np.corrcoef(p[i], a[i])[0, 1])
    return np.array(bs), np.array(cs)


def heavy_sample(n, rng):
    p = rng.gamma(2.0, 0.05, n)
    return p, 1.3 * p + 0.02 + rng.standard_t(5, n) * 0.05


def test_vectorized_bootstrap_agrees_with_naive_loop():
    p, a = heavy_sample(150, np.random.default_rng(0))
    nb, nc = naive_bootstrap(p, a, 3000, np.random.default_rng(1))
    vb, vc, m = bootstrap_bias_corr(p, a, 3000, rng=np.random.default_rng(2), method="resample")
    assert m == "resample"
    for x, y in ((nb, vb), (nc, vc)):                  # independent draws: agree up to Monte Carlo error
        assert np.std(y) == pytest.approx(np.std(x), rel=0.08)
        np.testing.assert_allclose(np.percentile(y, [2.5, 97.5]), np.percentile(x, [2.5, 97.5]), atol=0.12 * np.std(x))


def test_moment_bootstrap_agrees_with_exact_resampling_at_the_switch_point():
    p, a = heavy_sample(20_000, np.random.default_rng(3))
    eb, ec, m1 = bootstrap_bias_corr(p, a, 1000, rng=np.random.default_rng(4))          # auto: exact at 2e7
    mb, mc, m2 = bootstrap_bias_corr(p, a, 1000, rng=np.random.default_rng(5), method="moments")
    assert (m1, m2) == ("resample", "moments")
    for x, y in ((eb, mb), (ec, mc)):
        assert np.std(y) == pytest.approx(np.std(x), rel=0.1)
        np.testing.assert_allclose(np.percentile(y, [2.5, 97.5]), np.percentile(x, [2.5, 97.5]), atol=0.2 * np.std(x))


@pytest.mark.parametrize("method,n", [("resample", 80), ("moments", 3000)])
def test_bias_ci_coverage_is_near_nominal(method, n):
    """Repeated samples from a known population: the 95% bias interval covers the true bias ~95% of the time."""
    rng = np.random.default_rng(10)
    true_bias, hits, reps = 0.3 * 0.1 + 0.02, 0, 200
    for _ in range(reps):
        p, a = heavy_sample(n, rng)
        b, _, _ = bootstrap_bias_corr(p, a, 400, rng=rng, method=method)
        lo, hi = np.percentile(b, [2.5, 97.5])
        hits += lo <= true_bias <= hi
    assert 0.88 <= hits / reps <= 0.99, hits / reps


def test_impact_coefficient_ci_coverage():
    rng, k, hits, reps = np.random.default_rng(21), 0.6, 0, 200
    for _ in range(reps):
        n = 300
        q, adv = rng.integers(1, 100, n).astype(float), rng.uniform(300, 30_000, n)
        s, v = rng.choice([0.25, 0.5], n), rng.uniform(2, 8, n)
        x = v * np.sqrt(q / adv)
        act = s / 2 + k * x + rng.normal(0, 0.05 + 0.5 * x)   # heteroskedastic noise, as real slippage
        _, (lo, hi), used = fit_impact_coefficient(act, s, v, q, adv)
        hits += lo <= k <= hi
    assert used == 300 and 0.88 <= hits / reps <= 0.99, hits / reps


def test_million_fills_uses_moments_and_is_consistent():
    rng = np.random.default_rng(6)
    n = 1_000_000
    p = rng.gamma(2.0, 0.05, n)
    df = pd.DataFrame(dict(predicted_slippage=p, actual_slippage=1.1 * p + rng.normal(0, 0.05, n)))
    r = SlippageReconciler(df).reconcile()
    assert r.bootstrap_method == "moments" and r.n == n
    assert r.bias_ci[1] - r.bias_ci[0] == pytest.approx(2 * 1.96 * math.sqrt(np.var(df.actual_slippage - p) / n), rel=0.15)
    assert r.bias_ci[0] < r.bias < r.bias_ci[1]


def run(*args, state):
    env = dict(os.environ, HYDRA_STATE_DIR=str(state))
    return subprocess.run([str(HYDRA), "fill-report", *args], capture_output=True, text=True, env=env, timeout=60)


def test_cli_fill_report(tmp_path):
    state = tmp_path / "state"
    r = run("--reconcile", state=state)
    assert r.returncode == 1 and "insufficient data: 0 fills" in r.stdout, r.stderr
    assert not (state / "hydra.db").exists()
    with FillJournal(state) as j:
        j.record_fills(seed_fills())
    r = run(state=state)
    assert r.returncode == 0 and "fills: 20" in r.stdout
    r = run("--reconcile", state=state)
    assert r.returncode == 0 and "CALIBRATED: |bias| 0.02 (price units) < 0.5" in r.stdout, r.stdout
    r = run("--reconcile", "--max-bias", "0.01", state=state)
    assert r.returncode == 1 and "NOT CALIBRATED" in r.stdout
    r = run("--reconcile", "--json", "--since", "2026-03-02T14:41:00+00:00", state=state)
    d = json.loads(r.stdout)
    assert r.returncode == 0 and d["report"]["n"] == 10 and d["calibrated"] is True and d["n_fills"] == 10
    r = run("--reconcile", "--units", "ticks", state=state)
    assert r.returncode == 2 and "have no tick_size" in r.stderr
    r = run("--since", "last week", state=state)
    assert r.returncode == 2 and "not an ISO-8601 time" in r.stderr


def test_cli_refuses_a_corrupt_database_and_leaves_it(tmp_path):
    state = tmp_path / "state"; state.mkdir()
    db = state / "hydra.db"
    db.write_bytes(b"not a database" * 100)
    before = hashlib.sha256(db.read_bytes()).hexdigest()
    r = run("--reconcile", state=state)
    assert r.returncode == 2 and "not a SQLite database" in r.stderr
    assert hashlib.sha256(db.read_bytes()).hexdigest() == before


def _synthetic_slices(j, n_par=120, a=0.3, k=0.6, seed=3):
    "Parents of one slice each whose fills cost a*s/2 + k*sigma*sqrt(q/ADV) plus noise, against the slice's arrival."
    rng = np.random.default_rng(seed)
    t0 = datetime(2026, 10, 19, 14, 30, tzinfo=timezone.utc)
    for i in range(n_par):
        q, t = int(np.exp(rng.uniform(0, np.log(40)))), t0 + timedelta(hours=6*i)
        ref, s = f"P{i}", 0.25*rng.choice([1, 2])
        j.record_parent(ref, t, "ZO", "BUY", q, 300.0, s, 1200, 6.0, 0.25, 5000)
        j.record_slice(f"{ref}:0", t, q, 300.0, s, 1200, 6.0)
        cost = a*s/2 + k*6.0*math.sqrt(q/1200) + rng.normal(0, 0.1)
        j.record_fill(dict(exec_id=f"x{i}", time=t + timedelta(minutes=1), symbol="ZO", side="BUY", quantity=q, price=300.0 + cost,
                           order_ref=f"{ref}:0:0"))


def test_cli_calibrate_stores_a_version_the_next_parent_uses(tmp_path):
    "`hydra calibrate` as an operator runs it: exit 1 without fills, 0 with a stored version; --json; a corrupt database is exit 2."
    env = dict(os.environ, HYDRA_STATE_DIR=str(tmp_path))
    cal = lambda *a: subprocess.run([str(HYDRA), "calibrate", *a], capture_output=True, text=True, env=env, timeout=60)
    r = cal()
    assert r.returncode == 1 and "no state database" in r.stderr
    with FillJournal(tmp_path) as j: _synthetic_slices(j)
    r = cal("--n-boot", "300")
    assert r.returncode == 0 and "stored as version 1" in r.stdout, r.stdout + r.stderr
    with FillJournal(tmp_path) as j:
        v = j.active_slippage_params()
        assert v["spread_share_lo"] < 0.3 < v["spread_share_hi"] and v["impact_lo"] < 0.6 < v["impact_hi"], v
        p = j.record_parent("NEXT", "2026-12-01T15:00:00Z", "ZO", "BUY", 4, 300.0, 0.5, 1200, 6.0, 0.25, 5000,
                            v["impact_coefficient"], spread_share=v["spread_share"])
        assert p["predicted_slippage"] == pytest.approx(v["spread_share"]*0.25 + v["impact_coefficient"]*6.0*math.sqrt(4/1200))
    r = cal("--json", "--dry-run", "--until", "2026-10-25")
    d = json.loads(r.stdout)
    assert r.returncode == 1 and d["stored"] is None and "too few fills" in d["message"]      # 24 fills before the 25th
    (tmp_path / "hydra.db").write_bytes(b"not a database" * 100)
    for f in tmp_path.glob("hydra.db-*"): f.unlink()
    assert cal().returncode == 2


@pytest.mark.slow
def test_rehearsal_learns_its_slippage_model(tmp_path):
    "A rehearsal with calibrate_after = 4: version 2 is fitted on the first four days' fills and predicts every parent after them."
    import asyncio
    from hydra_nb.rehearsal import SIM_COST_PRIOR, Scenario, rehearse
    sc = Scenario(days=8, regime_switch_day=None, disconnects=0, calibrate_after=4)
    asyncio.run(rehearse(sc, state_dir=tmp_path, progress=False))
    with FillJournal(tmp_path) as j:
        vs, parents = j.slippage_params().set_index("version"), j.parents()
    assert list(vs.index) == [2, 1] and (vs.loc[1, "spread_share"], vs.loc[1, "impact_coefficient"]) == SIM_COST_PRIOR
    v2 = vs.loc[2]
    until = pd.Timestamp(v2.fitted_until)
    assert v2.status == "active" and v2.n_fills >= 10 and until < parents.decided_utc.max()
    late, early = parents[parents.decided_utc > until], parents[parents.decided_utc <= until]
    assert len(late) >= 4 and len(early) >= 4, parents[["parent_ref", "decided_utc"]]
    assert (late.spread_share == v2.spread_share).all() and (late.impact_coefficient == v2.impact_coefficient).all()
    assert (early.spread_share == SIM_COST_PRIOR[0]).all() and (early.impact_coefficient == SIM_COST_PRIOR[1]).all()
