"""`make demo`: the 28-day paper-trading rehearsal on the embedded IB gateway, then its reports: the last day's daily
monitor and each week's weekly review (as of the week's last trading date), rendered by papermill to reports/output/.
Prints the paths. Usage: .venv/bin/python reports/demo.py [--days N] [--state-dir DIR] [--output DIR]"""
import argparse, asyncio, sys
from datetime import datetime, timezone
from pathlib import Path
import pandas as pd
from hydra_nb import reports as R
from hydra_nb.rehearsal import Scenario, rehearse


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--days", type=int, default=28)
    p.add_argument("--state-dir", type=Path, default=None, help="default: reports/output/demo-state-<UTC time>")
    p.add_argument("--output", type=Path, default=R.OUTPUT_DIR)
    a = p.parse_args(argv)
    state = a.state_dir or R.OUTPUT_DIR/f"demo-state-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}"
    res = asyncio.run(rehearse(Scenario(days=a.days), state_dir=state))
    print(f"rehearsal: {res!r}\n{res.gate}")
    days = pd.to_datetime([s["trading_date"] for s in res.summaries])
    week_ends = pd.Series(days).groupby(days.to_period("W")).max()
    runs = [("daily", days.max())] + [("weekly", d) for d in week_ends]
    ok = True
    for kind, day in runs:
        r = R.run_report(kind, state_dir=state, as_of=day.date(), output=a.output)
        ok &= r.ok
        print(f"{kind:<6} {r.as_of}  {'ok    ' if r.ok else 'FAILED'} {r.seconds:5.1f} s  {r.html}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
