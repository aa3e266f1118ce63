"""The papermill reports on the rehearsal's data, and the daily report's data load plus reconciliation on 1,000,000 fills.

Budgets (DESIGN.md / issue 13): daily report to HTML <= 20 s, weekly <= 30 s on the 28-day rehearsal's state directory;
the daily report's data load + reconciliation (1,000 bootstrap resamples, participation buckets) of a journal of
1,000,000 fills <= 5 s. The baseline of the last is the straightforward path: `FillJournal.slippage_pairs()` and
`SlippageReconciler(journal)` (whose `by_participation` reads the journal a second time), timed in the same run.
Run: .venv/bin/python bench/bench_reports.py [STATE_DIR]   (default: a copy of ../rehearsal-sample-state, else a fresh
28-day rehearsal). The 1e6-fill journal is built once into $TMPDIR/hydra-bench-reports-1m (about a minute) and reused.
"""
import asyncio, os, shutil, statistics, sys, tempfile, time
from pathlib import Path
import numpy as np
import pandas as pd
from hydra_nb import reports as R
from hydra_nb.journal import FillJournal
from hydra_nb.reconcile import SlippageReconciler

N, REPEAT = 1_000_000, 3
SAMPLE = Path(__file__).resolve().parents[2]/"rehearsal-sample-state"


def state_dir(tmp) -> Path:
    if len(sys.argv) > 1: src = Path(sys.argv[1])
    elif SAMPLE.exists(): src = SAMPLE
    else:
        from hydra_nb.rehearsal import Scenario, rehearse
        print("no sample state: running the 28-day rehearsal (about a minute)")
        return asyncio.run(rehearse(Scenario(), state_dir=Path(tmp)/"state", progress=False)).state_dir
    shutil.copytree(src, Path(tmp)/"state")                     # the reports only read, but never touch the original
    return Path(tmp)/"state"


def bench_reports(d:Path, out:Path):
    for kind, budget in (("daily", 20.0), ("weekly", 30.0)):
        ts = []
        for _ in range(REPEAT):
            t = time.perf_counter(); r = R.run_report(kind, state_dir=d, output=out); ts.append(time.perf_counter() - t)
            assert r.ok, r.error
        med = statistics.median(ts)
        print(f"{kind} report to HTML ({r.as_of}, {r.html.stat().st_size/1e6:.1f} MB): median {med:.2f} s, min {min(ts):.2f} s, "
              f"max {max(ts):.2f} s over {REPEAT} runs   budget {budget:.0f} s   ratio to budget {med/budget:.2f}")


def journal_1m() -> Path:
    d = Path(tempfile.gettempdir())/"hydra-bench-reports-1m"
    if (d/"hydra.db").exists():
        with FillJournal(d) as j:
            if len(j) == N: return d
        shutil.rmtree(d)
    rng = np.random.default_rng(0)
    q, adv = rng.integers(1, 60, N).astype(float), rng.choice([800.0, 5_000.0, 60_000.0], N)
    s, v = rng.choice([0.025, 0.05], N), rng.uniform(0.8, 2.0, N)
    act = s/2 + 0.7*v*np.sqrt(q/adv) + rng.standard_t(4, N)*0.01
    t0 = pd.Timestamp("2026-01-05", tz="UTC")
    t = (t0 + pd.to_timedelta(np.arange(N)*20, unit="s")).to_pydatetime()
    print(f"building a journal of {N:,} fills in {d} (once) ...", flush=True)
    with FillJournal(d) as j:
        for a in range(0, N, 100_000):
            j.record_fills([dict(exec_id=f"x{i}", time=t[i], symbol="HE" if i % 2 else "ZO", side="BUY", quantity=q[i], price=85.0 + act[i],
                                 arrival_mid=85.0, spread=s[i], adv=adv[i], daily_vol=v[i], tick_size=0.025, impact_coefficient=0.1,
                                 order_ref=f"D{t[i]:%Y%m%d}-{'HE' if i % 2 else 'ZO'}:0:0", commission=2.25) for i in range(a, min(N, a + 100_000))])
    return d


def bench_1m():
    d = journal_1m()
    with FillJournal(d, verify=False) as j:
        def ours():
            pairs = R.load_pairs(j.conn); rep, bk = R._calibrate(pairs); return rep, bk
        def baseline():
            rc = SlippageReconciler(j, units="ticks", n_boot=1000); rep = rc.reconcile(); bk = rc.by_participation(); return rep, bk
        res = {}
        for name, f in (("hydra_nb.reports (load_pairs + reconcile + buckets)", ours), ("baseline (slippage_pairs via SlippageReconciler(journal))", baseline)):
            ts = []
            for _ in range(REPEAT):
                t = time.perf_counter(); rep, bk = f(); ts.append(time.perf_counter() - t)
            res[name] = statistics.median(ts)
            print(f"{name}, {rep.n:,} fills: median {res[name]:.2f} s, min {min(ts):.2f} s, max {max(ts):.2f} s "
                  f"(bias {rep.bias:+.4f} [{rep.bias_ci[0]:+.4f}, {rep.bias_ci[1]:+.4f}] ticks, k {rep.impact_coefficient:.3f}, {len(bk)} buckets)")
        ours_t, base_t = res.values()
        print(f"  data load + reconciliation of 1e6 fills: {ours_t:.2f} s   budget 5 s   ratio to budget {ours_t/5:.2f}   "
              f"ratio to baseline {ours_t/base_t:.2f} ({base_t/ours_t:.1f}x faster)")
    t = time.perf_counter(); dd = R.daily_data(d); dt = time.perf_counter() - t       # as of the last fill's date: all 1e6 to date
    print(f"  everything the daily report reads (daily_data as of {dd.as_of}: {len(dd.fills):,} fills that day, {dd.calibration.n:,} to date, "
          f"and the gate, which reconciles the journal again its own way): {dt:.2f} s")
    with tempfile.TemporaryDirectory() as out:
        r = R.run_report("daily", state_dir=d, output=out)
        print(f"  the daily report to HTML on the 1e6-fill journal: {r.seconds:.2f} s (budget 20 s on the rehearsal's data; ok={r.ok})")


if __name__ == "__main__":
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        bench_reports(state_dir(tmp), Path(tmp)/"out")
    bench_1m()
