"""The process that tests/test_runner_crash.py kills: the production runner (PaperTradingRunner on a state directory)
running one daily cycle against an embedded gateway in another process.

  python tests/runner_client.py --port P --state-dir D --day 2026-10-19 --time-scale 60 --sim-epoch S --wall-epoch W

The runner's clock mirrors the gateway's accelerated clock (simulated POSIX time S at wall time W). Prints one line per
event, flushed: `READY`, `TARGET <json>` for each decided target with an order, `DONE <json>` with the cycle's summary.
"""
import argparse, asyncio, json, logging, sys, time
from datetime import date, datetime, timezone
from pathlib import Path


async def main(a) -> int:
    from hydra_nb.broker import BrokerGateway, sim_settings
    from hydra_nb.config import load_settings
    from hydra_nb.journal import FillJournal
    from hydra_nb.market import SimClock
    from hydra_nb.runner import PaperTradingRunner
    st = load_settings(env={}, cwd=a.state_dir).replace("paths", state_dir=Path(a.state_dir))
    st = st.replace("orders", patience_seconds=20.0, twap_duration_minutes=10.0, twap_participation_threshold=0.002)
    st = sim_settings(st.replace("risk", max_position=1.0), a.port)
    if a.symbols: st = st.replace("trading", symbols=a.symbols.split(","))
    start = a.sim_epoch + (time.time() - a.wall_epoch) * a.time_scale
    clock = SimClock(mode="accelerated", start=datetime.fromtimestamp(start, timezone.utc), time_scale=a.time_scale)
    b = BrokerGateway(st, journal=FillJournal(a.state_dir), clock=clock, backoff_initial=0.05)
    r = PaperTradingRunner(st, broker=b)
    r.listeners.append(lambda kind, p: kind == "target" and p.get("quantity") and print("TARGET " + json.dumps(p), flush=True))
    await r.start()
    print("READY", flush=True)
    s = await r.run_cycle(date.fromisoformat(a.day))
    print("DONE " + json.dumps(s, default=str), flush=True)
    await r.stop()
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--day", required=True)
    ap.add_argument("--time-scale", type=float, required=True)
    ap.add_argument("--sim-epoch", type=float, required=True)
    ap.add_argument("--wall-epoch", type=float, required=True)
    ap.add_argument("--symbols", default="", help="comma-separated symbols to trade (default: the settings')")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("ib_async").setLevel(logging.CRITICAL)
    sys.exit(asyncio.run(main(a)))
