"""The execution path over a real socket: embedded gateway (or a real IB Gateway), FillJournal, BrokerGateway, RiskGate,
OrderManager, wired exactly as a user wires them. Shared by the integration and fault tests."""
import contextlib, os, tempfile
from pathlib import Path
from hydra_nb.broker import BrokerGateway, sim_settings
from hydra_nb.config import load_settings
from hydra_nb.gateway_sim import GatewaySim
from hydra_nb.journal import FillJournal
from hydra_nb.market import SimClock
from hydra_nb.orders import OrderManager
from hydra_nb.risk import CircuitBreakerManager, RiskGate

# read at import, before conftest's isolated_env removes the caller's variables
REAL_IB = os.environ.get("IB_GATEWAY_HOST")
REAL_IB_PORT = int(os.environ.get("IB_GATEWAY_PORT", "4002"))

FAST_ORDERS = dict(patience_seconds=4.0, twap_duration_minutes=2.0)
LOOSE_RISK = dict(max_position=0.5, max_order_quantity=50)


def settings(state_dir, orders=None, risk=None):
    st = load_settings(env={}, cwd=state_dir)
    st = st.replace("orders", **{**FAST_ORDERS, **(orders or {})})
    st = st.replace("risk", **{**LOOSE_RISK, **(risk or {})})
    return st.replace("paths", state_dir=Path(state_dir))


class Rig:
    "Everything one test needs; `gw` is None against a real IB Gateway."
    def __init__(self, gw, journal, broker, gate, om, settings, state_dir):
        self.gw, self.journal, self.broker, self.gate, self.om, self.settings, self.state_dir = \
            gw, journal, broker, gate, om, settings, state_dir

    def gateway_refs(self, client_id=1):
        return [o.order_ref for o in self.gw.orders.values() if o.client_id == client_id]

    def gateway_exec_ids(self, client_id=1):
        return {e.exec_id for e in self.gw.executions() if e.client_id == client_id}


async def make_parts(st, port, clock=None, state_dir=None, backoff=0.05, seed=0, client_id=None, host="127.0.0.1",
                     cancel_timeout=1.0):
    j = FillJournal(state_dir)
    b = BrokerGateway(sim_settings(st, port, host) if clock is not None else st, journal=j, clock=clock,
                      backoff_initial=backoff, client_id=client_id)
    await b.connect()
    gate = RiskGate(b, CircuitBreakerManager.from_settings(st.risk, db=j.conn), st.risk, recorder=b.recorder)
    return j, b, gate, OrderManager(gate, b, cancel_timeout=cancel_timeout)


@contextlib.asynccontextmanager
async def rig(target="sim", scale=60, seed=5, start=None, orders=None, risk=None, backoff=0.05, state_dir=None, gw_kw=None):
    "A connected rig on the embedded gateway (target 'sim') or on the real IB Gateway of IB_GATEWAY_HOST (target 'ib')."
    d = state_dir or tempfile.mkdtemp()
    st = settings(d, orders, risk)
    if target == "ib":
        st = st.replace("ib", host=REAL_IB, port=REAL_IB_PORT)
        j, b, gate, om = await make_parts(st, REAL_IB_PORT, None, d, backoff, seed)
        try: yield Rig(None, j, b, gate, om, st, d)
        finally: await b.disconnect(); j.close()
        return
    clock = SimClock(mode="accelerated", time_scale=scale, **({} if start is None else {"start": start}))
    async with GatewaySim(port=0, seed=seed, clock=clock, **(gw_kw or {})) as gw:
        j, b, gate, om = await make_parts(st, gw.port, gw.clock, d, backoff, seed)
        try: yield Rig(gw, j, b, gate, om, st, d)
        finally: await b.disconnect(); j.close()
