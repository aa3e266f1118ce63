"""FillJournal throughput and single-insert latency vs a plain sqlite3 baseline measured in the same run.

Budget (DESIGN.md): >= 20,000 fills/s in batch; single durable insert median <= 0.3 ms.
"Durable" = committed to the WAL before record_fill returns (survives kill -9): synchronous=NORMAL in WAL mode.
synchronous=FULL (fsync per commit, survives power loss) is measured too, for the trade-off.
Run: .venv/bin/python bench/bench_journal.py
"""
import sqlite3, statistics, tempfile, time
from datetime import datetime, timedelta, timezone
from pathlib import Path
import numpy as np
from hydra_nb.journal import FillJournal, FillRecord

T0 = datetime(2026, 3, 2, 14, 30, tzinfo=timezone.utc)
N_BATCH, BATCH, N_SINGLE = 100_000, 5_000, 2_000


def fill(i):
    return dict(exec_id=f"0001f4e5.{i:07d}.01", time=T0 + timedelta(milliseconds=i), symbol="HE" if i % 2 else "ZO",
                side="BUY" if i % 3 else "SELL", quantity=1 + i % 5, price=85.0 + 0.025 * (i % 9), order_id=i // 4,
                order_ref=f"hydra:HE:{i // 4}", perm_id=50_000 + i // 4, con_id=12087792, arrival_mid=85.1, spread=0.05,
                adv=12_000, daily_vol=1.6, tick_size=0.025, latency_ms=12.5)


BASE_SQL = ("CREATE TABLE f (exec_id TEXT PRIMARY KEY, time_utc TEXT, symbol TEXT, side TEXT, quantity REAL, price REAL, "
            "order_id INTEGER, order_ref TEXT, perm_id INTEGER, con_id INTEGER, arrival_mid REAL, spread REAL, adv REAL, "
            "daily_vol REAL, tick_size REAL, impact_coefficient REAL, predicted_slippage REAL, actual_slippage REAL, "
            "latency_ms REAL, commission REAL, currency TEXT, realized_pnl REAL)")
INS = "INSERT INTO f VALUES (" + ",".join("?" * 22) + ") ON CONFLICT(exec_id) DO NOTHING"


def baseline_conn(path, sync):
    c = sqlite3.connect(path, isolation_level=None)
    c.execute("PRAGMA journal_mode=WAL"); c.execute(f"PRAGMA synchronous={sync}"); c.execute(BASE_SQL)
    return c


def pct(xs, q): return float(np.percentile(xs, q))


def main():
    with tempfile.TemporaryDirectory(prefix="bench_journal_") as tmp: run(Path(tmp))


def run(d):
    fills = [fill(i) for i in range(N_BATCH)]
    rows = [FillRecord.from_any(f)._row() for f in fills[:N_BATCH]]   # baseline gets pre-validated tuples (no Python work)

    # --- batch ---
    j = FillJournal(d / "j.db")
    t = time.perf_counter()
    for k in range(0, N_BATCH, BATCH): j.record_fills(fills[k:k + BATCH])
    jt = time.perf_counter() - t
    again = time.perf_counter(); dup = j.record_fills(fills[:BATCH]); again = time.perf_counter() - again
    b = baseline_conn(d / "b.db", "NORMAL")
    t = time.perf_counter()
    for k in range(0, N_BATCH, BATCH):
        b.execute("BEGIN"); b.executemany(INS, rows[k:k + BATCH]); b.execute("COMMIT")
    bt = time.perf_counter() - t
    print(f"batch insert, {N_BATCH:,} fills in batches of {BATCH:,} (validation + derived slippage included)")
    print(f"  FillJournal.record_fills : {N_BATCH / jt:>10,.0f} fills/s   (budget >= 20,000)")
    print(f"  baseline sqlite3 executemany of pre-built tuples: {N_BATCH / bt:>10,.0f} fills/s")
    print(f"  ratio journal/baseline throughput: {bt / jt:.2f}")
    print(f"  re-sending {BATCH:,} known execIds: {BATCH / again:,.0f} fills/s, {dup} new")

    # --- single durable insert ---
    for sync in ("NORMAL", "FULL"):
        j1 = FillJournal(d / f"s_{sync}.db", synchronous=sync)
        b1 = baseline_conn(d / f"bs_{sync}.db", sync)
        singles = [fill(N_BATCH + i) for i in range(N_SINGLE)]
        srows = [FillRecord.from_any(f)._row() for f in singles]
        n = N_SINGLE if sync == "NORMAL" else 300
        jl, bl = [], []
        for i in range(n):                              # interleaved so both see the same machine load
            t = time.perf_counter(); j1.record_fill(singles[i]); jl.append(time.perf_counter() - t)
            t = time.perf_counter(); b1.execute("BEGIN IMMEDIATE"); b1.execute(INS, srows[i]); b1.execute("COMMIT")
            bl.append(time.perf_counter() - t)
        jm, bm = statistics.median(jl) * 1e3, statistics.median(bl) * 1e3
        print(f"single insert, synchronous={sync}, {n:,} inserts, one transaction each")
        print(f"  FillJournal.record_fill : median {jm:.4f} ms  p99 {pct(jl, 99) * 1e3:.4f} ms"
              + ("   (budget median <= 0.3 ms)" if sync == "NORMAL" else ""))
        print(f"  baseline sqlite3 loop   : median {bm:.4f} ms  p99 {pct(bl, 99) * 1e3:.4f} ms")
        print(f"  ratio journal/baseline median latency: {jm / bm:.2f}")
        j1.close(); b1.close()

    # --- reads and open ---
    t = time.perf_counter(); f = j.fills(); rt = time.perf_counter() - t
    t = time.perf_counter(); sp = j.slippage_pairs(); st = time.perf_counter() - t
    j.close()
    t = time.perf_counter(); FillJournal(d / "j.db").close(); ot = time.perf_counter() - t
    t = time.perf_counter(); FillJournal(d / "j.db", verify=False).close(); ot2 = time.perf_counter() - t
    print(f"reads on {len(f):,} fills: fills() {rt * 1e3:.0f} ms, slippage_pairs() {st * 1e3:.0f} ms ({len(sp):,} rows)")
    print(f"open with quick_check {ot * 1e3:.1f} ms, without {ot2 * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
