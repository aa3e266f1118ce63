"""The process that tests/test_crash_recovery.py kills: builds the production rig on a state directory and routes one TWAP.

  python tests/crash_client.py --port P --state-dir D --parent crash-1 --qty 10 --slices 5 --horizon-min 10 \
      --time-scale 60 --sim-epoch S --wall-epoch W

The broker's clock mirrors the gateway's accelerated clock: simulated POSIX time S at wall time W, advancing `time_scale`
times faster (so its session checks and journal times agree with the gateway's). Prints one line per event, flushed:
`READY` once connected (with the number of child orders the resync adopted), `DONE <json>` with the execution report.
"""
import argparse, asyncio, json, logging, sys, time
from datetime import datetime, timezone


async def main(a) -> int:
    from hydra_nb.broker import BrokerGateway, sim_settings
    from hydra_nb.config import load_settings
    from hydra_nb.journal import FillJournal
    from hydra_nb.market import SimClock
    from hydra_nb.orders import OrderManager
    from hydra_nb.risk import CircuitBreakerManager, RiskGate
    st = load_settings(env={}, cwd=a.state_dir)
    st = st.replace("orders", twap_slices=a.slices, twap_duration_minutes=a.horizon_min, patience_seconds=a.patience,
                    twap_jitter=0.1)
    st = st.replace("risk", max_position=0.5, max_order_quantity=50)
    st = sim_settings(st, a.port)
    start = a.sim_epoch + (time.time() - a.wall_epoch) * a.time_scale
    clock = SimClock(mode="accelerated", start=datetime.fromtimestamp(start, timezone.utc), time_scale=a.time_scale)
    j = FillJournal(a.state_dir)
    b = BrokerGateway(st, journal=j, clock=clock, client_id=a.client_id)
    await b.connect()
    gate = RiskGate(b, CircuitBreakerManager.from_settings(st.risk, db=j.conn), st.risk, recorder=b.recorder)
    om = OrderManager(gate, b)
    print(f"READY adopted={len(b.children(a.parent + ':'))}", flush=True)
    r = await om.route(a.symbol, "BUY", a.qty, parent_ref=a.parent, tactic="twap")
    out = dict(status=r.status, filled=r.filled, tactic=r.tactic, reasons=r.reasons, rejections=r.rejections,
               children=[(c.ref, c.status, c.filled) for c in r.children])
    print("DONE " + json.dumps(out), flush=True)
    await b.disconnect(); j.close()
    return 0


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--state-dir", required=True)
    ap.add_argument("--parent", default="crash-1")
    ap.add_argument("--symbol", default="ZO")
    ap.add_argument("--qty", type=int, default=10)
    ap.add_argument("--slices", type=int, default=5)
    ap.add_argument("--horizon-min", type=float, default=10.0)
    ap.add_argument("--patience", type=float, default=20.0)
    ap.add_argument("--time-scale", type=float, required=True)
    ap.add_argument("--sim-epoch", type=float, required=True)
    ap.add_argument("--wall-epoch", type=float, required=True)
    ap.add_argument("--client-id", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger("ib_async").setLevel(logging.CRITICAL)
    sys.exit(asyncio.run(main(a)))
