"""SlippageReconciler on 1,000,000 fills with 1,000 bootstrap resamples vs a straightforward pandas implementation.

Budget (DESIGN.md): <= 2 s for 1e6 fills including the 1,000-resample bootstrap (computation on the pairs; loading them
from SQLite is reported separately). The baseline is the textbook pandas bootstrap (df.sample(frac=1, replace=True),
then .mean() and .corr()), timed on a few resamples in the same run and extrapolated linearly to 1,000
(running all 1,000 would take minutes).
Run: .venv/bin/python bench/bench_reconcile.py
"""
import statistics, tempfile, time
from datetime import datetime, timedelta, timezone
import numpy as np
import pandas as pd
from hydra_nb.journal import FillJournal
from hydra_nb.reconcile import SlippageReconciler, bootstrap_bias_corr

N, B, REPEAT, BASE_B = 1_000_000, 1_000, 5, 10


def synth(n, rng):
    q, adv = rng.integers(1, 60, n).astype(float), rng.choice([800.0, 5_000.0, 60_000.0], n)
    s, v = rng.choice([0.025, 0.05], n), rng.uniform(0.8, 2.0, n)
    pred = s / 2 + 0.1 * v * np.sqrt(q / adv)
    act = s / 2 + 0.7 * v * np.sqrt(q / adv) + rng.standard_t(4, n) * 0.01
    t = pd.Timestamp("2026-01-05", tz="UTC") + pd.to_timedelta(np.arange(n), unit="s")
    return pd.DataFrame(dict(exec_id=np.arange(n).astype(str), time_utc=t, symbol=np.where(np.arange(n) % 2, "HE", "ZO"),
                             quantity=q, adv=adv, spread=s, daily_vol=v, arrival_mid=85.0, tick_size=0.025,
                             impact_coefficient=0.1, predicted_slippage=pred, actual_slippage=act, participation=q / adv))


def pandas_baseline(df, b, seed):
    """Textbook: point statistics with pandas, then resample rows b times."""
    d = df.actual_slippage - df.predicted_slippage
    stats = dict(bias=d.mean(), rmse=np.sqrt((d ** 2).mean()), corr=df.predicted_slippage.corr(df.actual_slippage),
                 med=df[["predicted_slippage", "actual_slippage"]].median(), p95=df[["predicted_slippage", "actual_slippage"]].quantile(0.95))
    bs, cs = [], []
    for i in range(b):
        s = df[["predicted_slippage", "actual_slippage"]].sample(frac=1.0, replace=True, random_state=seed + i)
        bs.append((s.actual_slippage - s.predicted_slippage).mean()); cs.append(s.predicted_slippage.corr(s.actual_slippage))
    if not b: return stats, None, None
    return stats, np.percentile(bs, [2.5, 97.5]), np.percentile(cs, [2.5, 97.5])


def main():
    df = synth(N, np.random.default_rng(0))
    rc = SlippageReconciler(df, n_boot=B)
    times = []
    for i in range(REPEAT):
        t = time.perf_counter(); rep = rc.reconcile(); times.append(time.perf_counter() - t)
    med = statistics.median(times)
    print(f"SlippageReconciler.reconcile(), {N:,} fills, {B:,} bootstrap resamples ({rep.bootstrap_method}), k fit, {REPEAT} runs")
    print(f"  median {med:.3f} s   min {min(times):.3f} s   max {max(times):.3f} s   (budget <= 2 s)")
    t = time.perf_counter(); bk = rc.by_participation(); bt = time.perf_counter() - t
    print(f"  by_participation() on {N:,} fills: {bt:.3f} s ({len(bk)} buckets)")
    print(f"  bias {rep.bias:.5f} CI [{rep.bias_ci[0]:.5f}, {rep.bias_ci[1]:.5f}]  corr {rep.correlation:.4f} "
          f"CI [{rep.correlation_ci[0]:.4f}, {rep.correlation_ci[1]:.4f}]  k {rep.impact_coefficient:.4f} "
          f"CI [{rep.impact_coefficient_ci[0]:.4f}, {rep.impact_coefficient_ci[1]:.4f}] (true 0.7)")

    t = time.perf_counter(); stats, bci, cci = pandas_baseline(df, BASE_B, 100); base = time.perf_counter() - t
    t = time.perf_counter(); pandas_baseline(df, 0, 100); base0 = time.perf_counter() - t
    per = (base - base0) / BASE_B
    base_est = base0 + per * B
    print(f"pandas baseline: point statistics {base0:.3f} s, {per * 1e3:.1f} ms per resample "
          f"(timed on {BASE_B}) -> {base_est:.1f} s extrapolated for {B:,} resamples")
    print(f"  agreement: bias {stats['bias']:.6f} vs {rep.bias:.6f}, corr {stats['corr']:.6f} vs {rep.correlation:.6f}")
    print(f"  ratio reconciler/baseline time: {med / base_est:.4f}  (speed-up x{base_est / med:.0f})")

    ex = 20
    p, a = df.predicted_slippage.to_numpy(), df.actual_slippage.to_numpy()
    t = time.perf_counter(); bootstrap_bias_corr(p, a, ex, method="resample"); et = time.perf_counter() - t
    print(f"exact index resampling at {N:,} fills: {et / ex * 1e3:.1f} ms per resample -> {et / ex * B:.1f} s for {B:,} "
          f"(why 'auto' switches to the moment bootstrap above n*n_boot = 2e7)")

    n_load = 200_000
    with tempfile.TemporaryDirectory() as d, FillJournal(d) as j:
        t0 = datetime(2026, 1, 5, tzinfo=timezone.utc)
        sub = df.iloc[:n_load]
        j.record_fills([dict(exec_id=f"x{i}", time=t0 + timedelta(seconds=i), symbol="HE", side="BUY", quantity=sub.quantity.iat[i],
                             price=85.0 + sub.actual_slippage.iat[i], arrival_mid=85.0, spread=sub.spread.iat[i], adv=sub.adv.iat[i],
                             daily_vol=sub.daily_vol.iat[i], tick_size=0.025) for i in range(n_load)])
        t = time.perf_counter(); pairs = j.slippage_pairs(); lt = time.perf_counter() - t
        t = time.perf_counter(); SlippageReconciler(j, n_boot=B).reconcile(); jt = time.perf_counter() - t
    print(f"from the journal: slippage_pairs() of {len(pairs):,} fills (all columns) {lt:.3f} s ({lt / n_load * 1e6:.2f} us/fill, "
          f"~{lt / n_load * N:.1f} s per million); reconcile() from the journal incl. its narrower load {jt:.3f} s")


if __name__ == "__main__":
    main()
