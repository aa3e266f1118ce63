"""The `hydra` console script as an operator runs it: a real subprocess, real exit codes."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
HYDRA = Path(sys.executable).parent / "hydra"


def run(*args, env=None):
    e = {k: v for k, v in os.environ.items()}
    e.update(env or {})
    return subprocess.run([str(HYDRA), *args], capture_output=True, text=True, env=e, timeout=60)


def test_help_lists_subcommands():
    r = run("--help")
    assert r.returncode == 0
    for cmd in ["status", "kill", "resume", "smoke-test", "gateway-sim", "paper-trade", "fill-report", "report", "gate"]:
        assert cmd in r.stdout


def test_status_defaults_are_paper(isolated_env):
    r = run("status", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert (d["mode"], d["port_kind"], d["settings_file"]) == ("paper", "paper", None)
    assert d["state_dir"] == str(isolated_env / "state")
    src = {(x["section"], x["key"]): x["source"] for x in d["settings"]}
    assert src[("paths", "state_dir")] == "env:HYDRA_STATE_DIR"
    assert src[("ib", "port")] == "default"


def test_repo_settings_ini_is_valid_and_safe():
    r = run("status", "--settings", str(ROOT / "settings.ini"))
    assert r.returncode == 0, r.stderr
    assert "port 4002 (paper)" in r.stdout


def test_repo_settings_ini_matches_the_schema_defaults():
    from hydra_nb.config import settings_ini
    assert (ROOT / "settings.ini").read_text() == settings_ini() + "\n"


@pytest.mark.parametrize("env,msg", [
    ({"IB_GATEWAY_PORT": "4001"}, "LIVE port"),
    ({"IB_GATEWAY_PORT": "7496"}, "LIVE port"),
    ({"HYDRA_TRADING_MODE": "live"}, "PAPER port"),
    ({"HYDRA_TRADING_MODE": "live", "IB_GATEWAY_PORT": "4001"}, "HYDRA_LIVE_CONFIRMED"),
    ({"IB_GATEWAY_PORT": "12345"}, "declare it"),
])
def test_status_refuses_unsafe(env, msg):
    r = run("status", env=env)
    assert r.returncode == 1
    assert msg in r.stderr


def test_status_live_when_all_three_agree():
    r = run("status", "--json", env={"HYDRA_TRADING_MODE": "live", "IB_GATEWAY_PORT": "4001", "HYDRA_LIVE_CONFIRMED": "true"})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["port_kind"] == "live"


def test_malformed_settings_file_names_file_section_key_value(tmp_path):
    p = tmp_path / "ops.ini"
    p.write_text("[ib]\nport = 0\n")
    r = run("status", "--settings", str(p))
    assert r.returncode == 2
    assert f"{p} [ib] port: must be a TCP port in 1..65535 (got '0')" in r.stderr


def test_settings_found_via_env_then_cwd(tmp_path):
    (tmp_path / "settings.ini").write_text("[ib]\nport = 7497\n")
    other = tmp_path / "other.ini"
    other.write_text("[ib]\nport = 4002\n")
    assert json.loads(run("status", "--json").stdout)["settings_file"] == str(tmp_path / "settings.ini")
    d = json.loads(run("status", "--json", env={"HYDRA_SETTINGS": str(other)}).stdout)
    assert d["settings_file"] == str(other)


def test_kill_switch_from_the_shell_halts_a_gate(isolated_env):
    "`hydra kill` in one process; a RiskGate on the same state database rejects new orders, passes cancels."
    from types import SimpleNamespace as NS
    from hydra_nb.config import RiskSettings
    from hydra_nb.core import state_db_path
    from hydra_nb.risk import CircuitBreakerManager, OrderContext, PreTradeChecks, RiskGate
    sent = []
    sink = NS(place_order=lambda c, o: sent.append(("place", o.orderRef)) or "trade",
              modify_order=lambda c, o: sent.append(("modify", o.orderRef)),
              cancel_order=lambda o: sent.append(("cancel", o.orderRef)))
    risk = RiskSettings()
    gate = RiskGate(sink, CircuitBreakerManager.from_settings(risk, db=state_db_path(isolated_env / "state")),
                    PreTradeChecks.from_settings(risk), sync_interval=0)   # re-read the state DB on every submit
    contract = NS(symbol="ZO", conId=1, exchange="CBOT", multiplier="5000")
    order = lambda ref: NS(action="BUY", totalQuantity=1, lmtPrice=3.5, orderType="LMT", orderRef=ref, orderId=1)
    ctx = OrderContext(reference_price=3.5, tick_size=0.0025, multiplier=5000, equity=1_000_000)
    assert gate.submit(contract, order("a"), ctx).allowed
    r = run("kill", "--reason", "test halt")
    assert r.returncode == 0, r.stderr
    status = json.loads(run("status", "--json").stdout)["risk"]
    assert status["halted"] and status["halt_reason"] == "test halt"
    d = gate.submit(contract, order("b"), ctx)
    assert not d.allowed and str(d.trading_state) == "HALTED"
    assert gate.cancel(order("a")).allowed
    assert sent == [("place", "a"), ("cancel", "a")]
    assert run("resume").returncode == 0


def test_status_imports_no_other_subcommand_module():
    """`hydra status` must not pay for (or break on) the simulator's or reconciler's imports. (It does load pandas now:
    the schedule check reads the exchanges' early closes from pandas-market-calendars, which is built on it.)"""
    code = ("import sys; from hydra_nb.cli import main; rc = main(['status', '--json']); "
            "print('LOADED', sorted(m for m in sys.modules if m in ('hydra_nb.gateway_sim', 'hydra_nb.market', 'hydra_nb.reconcile')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "LOADED []"


def test_smoke_test_against_the_embedded_gateway(isolated_env):
    "The seed's connectivity check as an operator runs it: every step reported with its latency, exit 0, nothing left behind."
    r = run("smoke-test", "--sim", "--symbol", "HE")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert [l.split()[1] for l in lines[1:6]] == ["port", "connect", "qualify", "acknowledged", "cancelled"], lines
    assert all(l.split()[0] == "ok" and l.split()[3] == "ms" for l in lines[1:6]) and lines[-1] == "PASS"
    assert not (isolated_env / "state").exists()              # --sim keeps its simulated order out of the operator's journal
    assert "Traceback" not in r.stderr and "Error 202" not in r.stderr


def test_smoke_test_refuses_a_live_port_and_an_unknown_symbol(isolated_env):
    r = run("smoke-test", env={"IB_GATEWAY_PORT": "4001"})
    assert r.returncode == 1 and "FAIL port" in " ".join(r.stdout.split()) and "paper ports only" in r.stdout
    r = run("smoke-test", "--sim", "--symbol", "XYZ")
    assert r.returncode == 1 and "unknown symbol 'XYZ'" in r.stdout and "Traceback" not in r.stderr


def test_status_warns_when_the_risk_limits_allow_no_contract(tmp_path, isolated_env):
    "The seed's max_position 0.1 on a 100,000 account allows 0 ZO and 0 HE: `hydra status` says so, with the numbers and the setting."
    p = tmp_path / "small.ini"
    p.write_text("[risk]\nmax_position = 0.1\n")
    r = run("status", "--settings", str(p))
    assert r.returncode == 0, r.stderr                                # a warning, not an unsafe configuration
    warn = [l for l in r.stderr.splitlines() if l.startswith("WARNING: sizing: ")]
    assert len(warn) == 2, r.stderr
    assert "ZO: [risk] max_position 0.1 allows 0 contracts at equity 100,000" in warn[0] and "17,500 USD" in warn[0]
    assert "raise [risk] max_position to at least 0.35" in warn[0]
    assert "HE:" in warn[1] and "34,000 USD" in warn[1] and "at least 0.68" in warn[1]
    d = json.loads(run("status", "--json", "--settings", str(p), "--equity", "1000000").stdout)
    assert d["sizing_warnings"] == []                                 # a 1,000,000 account holds 2 ZO under 0.1
    d = json.loads(run("status", "--json").stdout)                    # the shipped defaults: at least one of each
    assert d["sizing_warnings"] == [], d["sizing_warnings"]
    assert "WARNING: sizing" not in run("status", "--settings", str(ROOT / "settings.ini")).stderr
