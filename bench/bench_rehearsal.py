"""The 28-day accelerated paper-trading rehearsal (`hydra paper-trade --sim`, what `make demo` runs), as whole processes.

Budget (../shared/DESIGN.md): <= 120 s wall on this 2-core machine. Runs the default 28-day scenario and, as the baseline
in the same run, the same scenario over 1 day (process start, imports, gateway and runner set-up, one cycle, the gate),
alternately; prints each one's median wall time, the 28-day run's ratio to the budget, and the marginal cost per day.

  .venv/bin/python bench/bench_rehearsal.py [--runs 3]
"""
import argparse, json, statistics, subprocess, sys, tempfile, time
from pathlib import Path

HYDRA = Path(sys.executable).parent / "hydra"
BUDGET = 120.0


def one(days: int) -> tuple[float, dict]:
    d = Path(tempfile.mkdtemp(prefix="bench-rehearsal-")) / "state"
    t0 = time.perf_counter()
    r = subprocess.run([str(HYDRA), "paper-trade", "--sim", "--days", str(days), "--no-progress", "--json", "--state-dir", str(d)],
                       capture_output=True, text=True, timeout=900)
    wall = time.perf_counter() - t0
    if r.returncode != 0: sys.exit(f"rehearsal failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return wall, json.loads(r.stdout)


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--runs", type=int, default=3); a = ap.parse_args()
    full, base, fills = [], [], []
    for i in range(a.runs):
        w1, _ = one(1); base.append(w1)
        w, res = one(28); full.append(w)
        with __import__("hydra_nb.journal", fromlist=["FillJournal"]).FillJournal(res["state_dir"]) as j: fills.append(len(j.fills()))
        g = {c["key"]: c["passed"] for c in res["gate"]["checks"]}
        print(f"run {i + 1}: 28 days {w:6.1f} s (fills {fills[-1]}, reconnects {res['counts']['broker']['reconnects']}, "
              f"gate {sum(g.values())}/6), 1 day {w1:5.1f} s", flush=True)
    m, b = statistics.median(full), statistics.median(base)
    print(f"\n28-day rehearsal: median {m:.1f} s wall (min {min(full):.1f}, max {max(full):.1f}); budget {BUDGET:.0f} s; ratio {m / BUDGET:.2f}")
    print(f"1-day baseline:   median {b:.1f} s; marginal cost per trading day {(m - b) / 27:.2f} s; median fills {statistics.median(fills):.0f}")


if __name__ == "__main__":
    main()
