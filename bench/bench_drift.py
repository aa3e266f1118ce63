"""Benchmark: KS + PSI + CUSUM on 1,000,000 points (budget <= 1 s).

hydra_nb.drift.drift_checks (one sort per array shared by KS and PSI, CUSUM as a reflected cumulative sum) against a
straightforward baseline measured in the same run: scipy.stats.ks_2samp + np.quantile/np.histogram PSI + the textbook
Python-loop CUSUM (timed on a 100,000-point slice and scaled x10, since the loop is linear).
Prints medians over several runs and the ratio baseline / ours. Usage: python bench/bench_drift.py [n] [runs]"""
import sys, time
import numpy as np
from scipy import stats
from hydra_nb.drift import drift_checks

def baseline_psi(ref, cur, n_bins=10):
    edges = np.quantile(ref, np.linspace(0, 1, n_bins + 1))
    edges[0], edges[-1] = -np.inf, np.inf
    pr = np.histogram(ref, edges)[0]/ref.size + 1e-6
    pc = np.histogram(cur, edges)[0]/cur.size + 1e-6
    return float(np.sum((pc - pr)*np.log(pc/pr)))

def baseline_cusum(x, mu, sd, k=0.5, h=5.0):
    up = lo = 0.0; alarm = None
    for i, v in enumerate(x):
        z = (v - mu)/sd
        up, lo = max(0.0, up + z - k), max(0.0, lo - z - k)
        if alarm is None and (up > h or lo > h): alarm = i
    return alarm

def median_time(f, runs):
    ts = []
    for _ in range(runs):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return float(np.median(ts)), ts

def main(n=1_000_000, runs=7):
    rng = np.random.default_rng(0)
    ref, cur = rng.normal(size=n), rng.normal(0.01, 1.0, size=n)
    ours, ours_all = median_time(lambda: drift_checks(ref, cur), runs)
    res = drift_checks(ref, cur)
    slice_n = min(n, 100_000)
    def base():
        stats.ks_2samp(ref, cur)
        baseline_psi(ref, cur)
        baseline_cusum(cur[:slice_n], ref.mean(), ref.std(ddof=1))
    # the loop CUSUM is timed on a slice; its time is scaled to n
    loop_t, _ = median_time(lambda: baseline_cusum(cur[:slice_n], ref.mean(), ref.std(ddof=1)), max(3, runs//2))
    ks_t, _ = median_time(lambda: stats.ks_2samp(ref, cur), max(3, runs//2))
    psi_t, _ = median_time(lambda: baseline_psi(ref, cur), max(3, runs//2))
    base_t = ks_t + psi_t + loop_t*n/slice_n
    print(f"n = {n:,} reference + {n:,} current points, {runs} runs")
    print(f"drift_checks (KS + PSI + CUSUM): median {ours*1e3:.1f} ms  (min {min(ours_all)*1e3:.1f}, max {max(ours_all)*1e3:.1f})"
          f"  budget 1000 ms -> {'OK' if ours <= 1 else 'OVER'}")
    print(f"  ks D={res['ks'].statistic:.5f} p={res['ks'].p_value:.3g}  psi={res['psi'].statistic:.6f}"
          f"  cusum max={res['cusum'].statistic:.1f} alarm={res['cusum'].info['alarm_index']}")
    print(f"baseline: ks_2samp {ks_t*1e3:.1f} ms + histogram PSI {psi_t*1e3:.1f} ms + loop CUSUM "
          f"{loop_t*1e3:.1f} ms per {slice_n:,} x {n/slice_n:g} = {base_t*1e3:.1f} ms")
    print(f"ratio baseline / ours: {base_t/ours:.1f}x  (KS + PSI only: {(ks_t + psi_t)/ours:.2f}x of our full suite)")

if __name__ == "__main__":
    a = sys.argv[1:]
    main(int(a[0]) if a else 1_000_000, int(a[1]) if len(a) > 1 else 7)
