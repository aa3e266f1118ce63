"""`hydra paper-trade`, `hydra gate` and `hydra status` as an operator runs them: real subprocesses, real exit codes.

A shortened rehearsal (8 trading days) asserts its own counts; the same scenario with the simulator's fill cost tripled
shows the slippage model's bias move and the gate's calibration line fail; bad input and an unconfirmed live
configuration get one clear line and no traceback."""
import json, os, subprocess, sys
from pathlib import Path
import pytest

from hydra_nb.journal import FillJournal
from hydra_nb.reconcile import SlippageReconciler

HYDRA = Path(sys.executable).parent / "hydra"


def run(*args, env=None, timeout=300, cwd=None):
    e = {**os.environ, **(env or {})}
    return subprocess.run([str(HYDRA), *args], capture_output=True, text=True, env=e, timeout=timeout, cwd=cwd)


@pytest.fixture(scope="module")
def rehearsals(tmp_path_factory):
    "Two 8-day rehearsals of one scenario: the market as is, and its taker fills three times as costly."
    base = tmp_path_factory.mktemp("rehearsals")
    out = {}
    for bias in ("1", "3"):
        d = base / f"bias{bias}"
        r = run("paper-trade", "--sim", "--days", "8", "--seed", "11", "--slippage-bias", bias, "--no-progress", "--json",
                "--state-dir", d.name, *(["--no-reports"] if bias != "1" else []), env={"HYDRA_STATE_DIR": str(base / "unused")},
                cwd=base)                                          # a relative --state-dir, as an operator types it
        assert r.returncode == 0, r.stderr[-3000:]
        out[bias] = (d, json.loads(r.stdout))
    return out


@pytest.mark.slow
def test_shortened_rehearsal_counts(rehearsals):
    d, res = rehearsals["1"]
    assert res["days"] == 8 and res["state_dir"] == d.name               # as given (relative to where it ran)
    with FillJournal(d) as j:
        cyc = j.conn.execute("SELECT status, failure, trading_date, reason FROM runner_cycles ORDER BY trading_date").fetchall()
        events = j.conn.execute("SELECT time_utc, kind, detail FROM broker_connection_events ORDER BY id").fetchall()
        fills = j.fills()
        agent = j.conn.execute("SELECT COUNT(*) FROM agent_cycles").fetchone()[0]
    assert len(cyc) == 8 and all(s == "done" or f in ("market_closed", "rejected") for s, f, *_ in cyc), (cyc, events)
    assert len(fills) == res["counts"]["executions"] > 8             # every execution at the gateway is journaled, once
    assert fills.exec_id.is_unique
    assert agent == 16                                               # one agent cycle per symbol and day
    b = res["counts"]["broker"]
    assert b["drops"] >= 2 and b["reconnects"] == b["drops"]          # nightly resets and an injected drop, all recovered
    checks = {c["key"]: c for c in res["gate"]["checks"]}
    assert not res["gate"]["passed"]
    assert not checks["days"]["passed"] and checks["days"]["value"] == 8.0     # 8 of the 28 days the gate asks for
    assert checks["reconnect"]["passed"] and checks["errors"]["passed"]
    # what make demo prints at the end: the last day's daily report and each week's weekly report, rendered
    reps = res["reports"]
    assert [r["kind"] for r in reps] == ["daily", "weekly", "weekly"] and all(r["ok"] for r in reps), reps
    assert reps[0]["as_of"] == "2026-10-28" and all(Path(r["html"]).is_file() and Path(r["html"]).parent == d / "reports" for r in reps)


@pytest.mark.slow
def test_tripled_fill_cost_fails_calibration(rehearsals):
    "The gate's calibration line fails with the simulator's costs tripled, and says so with its evidence."
    d, res = rehearsals["3"]
    cal = {c["key"]: c for c in res["gate"]["checks"]}["calibrated"]
    assert not cal["passed"] and ("bias" in cal["evidence"] or "not enough orders" in cal["evidence"]), cal
    with FillJournal(d) as j:
        assert len(j.slice_pairs()) == len(j.fills()) > 0              # every fill is judged against its slice's arrival
        q = lambda sql: j.conn.execute(sql).fetchone()[0]
        assert q("SELECT COUNT(DISTINCT slice_ref) FROM journal_stages") == q("SELECT COUNT(*) FROM journal_slices")   # every slice priced on a recorded quote
        assert q("SELECT COUNT(*) FROM journal_stages s JOIN journal_slices l USING (slice_ref) WHERE s.decided_utc < l.decided_utc") == 0


def test_gate_exit_codes_and_json(tmp_path):
    r = run("gate", "--state-dir", str(tmp_path / "nowhere"))
    assert r.returncode == 1 and "no state database" in r.stdout and r.stdout.count("\nFAIL  ") == 6
    r = run("gate", "--json", "--state-dir", str(tmp_path / "nowhere"))
    d = json.loads(r.stdout)
    assert r.returncode == 1 and d["passed"] is False and len(d["checks"]) == 6


@pytest.mark.parametrize("args,needle", [
    (["paper-trade", "--sim", "--days", "0"], "must be a whole number >= 1"),
    (["paper-trade", "--days", "3"], "--days needs --sim"),
    (["paper-trade", "--sim", "--slippage-bias", "nan"], "must be a positive number"),
    (["paper-trade", "--sim", "--regime-switch-day", "soon"], "whole number >= 0"),
])
def test_bad_input_is_one_line(args, needle):
    r = run(*args)
    assert r.returncode == 2 and needle in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_a_used_state_dir_is_never_overwritten(tmp_path):
    d = tmp_path / "used"; d.mkdir(); (d / "hydra.db").write_text("")
    r = run("paper-trade", "--sim", "--days", "2", "--state-dir", str(d))
    assert r.returncode == 2 and "is not empty" in r.stderr and "Traceback" not in r.stderr
    assert (d / "hydra.db").read_text() == ""


def test_live_mode_is_refused_without_confirmation():
    env = {"HYDRA_TRADING_MODE": "live", "IB_GATEWAY_PORT": "4001"}
    r = run("paper-trade", "--once", env=env)
    assert r.returncode == 2 and "HYDRA_LIVE_CONFIRMED" in r.stderr and "Traceback" not in r.stderr, r.stderr
    r = run("paper-trade", "--once", "--debug", env=env)
    assert r.returncode != 0 and "Traceback" in r.stderr and "UnsafeConfigError" in r.stderr


def test_status_warns_when_the_cycle_time_is_after_the_close(tmp_path):
    ini = tmp_path / "late.ini"
    ini.write_text("[schedule]\ndaily_cycle_time = 14:00\n")
    r = run("status", "--settings", str(ini))
    assert r.returncode == 0 and "WARNING: schedule: ZO: a cycle from 14:00" in r.stderr and "HE:" in r.stderr
    r = run("status")
    assert "WARNING" not in r.stderr
    assert json.loads(run("status", "--json", "--settings", str(ini)).stdout)["schedule_warnings"][0].startswith("ZO:")
