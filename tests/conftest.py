"""Shared pytest fixtures: an isolated environment so that no test touches the operator's settings or state."""
import os
import pytest

HYDRA_ENV = ["IB_GATEWAY_HOST", "IB_GATEWAY_PORT", "HYDRA_TRADING_MODE", "HYDRA_LIVE_CONFIRMED",
             "HYDRA_SETTINGS", "HYDRA_STATE_DIR"]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path, monkeypatch):
    "Every test: no hydra variables from the caller, a temporary cwd and state directory."
    for k in HYDRA_ENV:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYDRA_STATE_DIR", str(tmp_path / "state"))
    return tmp_path


@pytest.fixture
async def gateway():
    "A started embedded IB gateway (hydra_nb.gateway_sim) on an ephemeral loopback port, stepped clock, wire recorded."
    from hydra_nb.gateway_sim import GatewaySim
    from hydra_nb.market import SimClock
    async with GatewaySim(port=0, seed=7, clock=SimClock(mode="stepped"), record_wire=True) as gw:
        yield gw
