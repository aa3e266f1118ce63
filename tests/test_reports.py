"""The daily monitor and the weekly review end to end: papermill runs on a state directory made by a shortened (8-day)
rehearsal on the embedded gateway, the key-figure JSON checked against the state database, the HTML opened in headless
Chromium (Debian's `chromium`, driven by Playwright) and checked for rendered plots, no page error and no request leaving
the page; a screenshot of each is kept under reports/output/test-artifacts/. Too little data and a failed run are
checked too, through `hydra report`."""
import asyncio, json, os, sqlite3, subprocess, sys, tempfile
from pathlib import Path
import pytest
from hydra_nb import reports as R
from hydra_nb.rehearsal import SIM_COST_PRIOR, Scenario, rehearse
from browser import browse

pytestmark = pytest.mark.slow
ARTIFACTS = R.OUTPUT_DIR/"test-artifacts"
HYDRA = Path(sys.executable).with_name("hydra")


@pytest.fixture(scope="session")
def state(tmp_path_factory):
    "An 8-day rehearsal's state directory (made once per session)."
    d = tmp_path_factory.mktemp("rehearsal")
    res = asyncio.run(rehearse(Scenario(days=8), state_dir=d, progress=False))
    assert len(res.summaries) == 8
    return d


@pytest.fixture(scope="session")
def rendered(state, tmp_path_factory):
    out = tmp_path_factory.mktemp("reports")
    return {k: R.run_report(k, state_dir=state, output=out) for k in ("daily", "weekly")}


def db(state, sql, args=()):
    with sqlite3.connect(state/"hydra.db") as c: return c.execute(sql, args).fetchall()


def test_daily_key_figures_match_the_state(state, rendered):
    r = rendered["daily"]
    last = db(state, "SELECT max(trading_date) FROM runner_cycles")[0][0]
    assert (r.ok, str(r.as_of), r.html.name) == (True, last, f"daily_monitor_{last}.html")
    k = json.loads(r.json.read_text())
    day = last.replace("-", "")
    n_day = db(state, "SELECT count(*) FROM journal_fills WHERE substr(time_utc, 1, 10) = ?", (last,))[0][0]
    n_all = db(state, "SELECT count(*) FROM journal_fills WHERE predicted_slippage IS NOT NULL AND actual_slippage IS NOT NULL")[0][0]
    assert (k["fills_today"], k["calibration"]["n"], k["as_of"]) == (n_day, n_all, last)
    summ = json.loads(db(state, "SELECT summary FROM runner_cycles WHERE trading_date = ?", (last,))[0][0])
    assert k["equity"] == summ["equity"] and set(k["breakers"]) == set(summ["breakers"])
    lo, hi = k["calibration"]["bias_ci"]
    assert lo <= k["calibration"]["bias"] <= hi and k["calibration"]["k_model"] == SIM_COST_PRIOR[1]     # the rehearsal's prior predicted them
    assert set(k["gate"]["checks"]) == {"days", "calibrated", "self_healing", "errors", "breakers", "reconnect"} and k["gate"]["passed"] is False
    assert k["risk_rejections"] == db(state, "SELECT count(*) FROM journal_risk_decisions WHERE allowed = 0 AND order_ref LIKE ?", (f"D{day}-%",))[0][0]


def test_weekly_key_figures_match_the_state(state, rendered):
    r = rendered["weekly"]
    k = json.loads(r.json.read_text())
    assert r.ok and [w["week"] for w in k["weeks"]] == ["2026-10-19", "2026-10-26"]             # 8 trading days from Monday 2026-10-19
    assert [w["days"] for w in k["weeks"]] == [5, 3]
    assert sum(w["fills"] for w in k["weeks"]) == db(state, "SELECT count(*) FROM journal_fills")[0][0]
    assert sum(w["drift_detections"] for w in k["weeks"]) == db(state, "SELECT count(*) FROM agent_cycles WHERE drifted = 1")[0][0]
    assert sum(w["disconnects"] for w in k["weeks"]) == db(state, "SELECT count(*) FROM broker_connection_events WHERE kind = 'dropped'")[0][0]
    assert sum(w["pnl"] for w in k["weeks"]) == pytest.approx(sum(json.loads(s)["period_pnl"] for (s,) in db(state, "SELECT summary FROM runner_cycles")))


@pytest.mark.parametrize("kind", ["daily", "weekly"])
def test_report_renders_in_chromium(state, rendered, kind):
    r = rendered[kind]
    tested = db(state, "SELECT count(*) FROM agent_hypotheses")[0][0]
    want = 6 if kind == "daily" else 5 if tested else 4                          # the weekly scoreboard needs an experiment
    if want == 4: assert "no experiment yet: the agent has not tested a candidate" in r.html.read_text()
    page = r.html.read_text()
    assert page.count("plotly.js v") == 1 and "<script src=" not in page       # plotly.js inlined once, nothing from a CDN
    b = browse(r.html, ARTIFACTS/f"{kind}.png")
    assert b["errors"] == [] and b["external"] == []
    assert b["plots"] == b["rendered"] == want, b                                 # every figure drew its SVG
    assert b["points"] > 0 and b["title"] == f"hydra {kind} report {r.as_of}"
    assert (ARTIFACTS/f"{kind}.png").stat().st_size > 20_000


def test_too_little_data_says_so(tmp_path):
    r = R.run_report("daily", state_dir=tmp_path/"nothing-yet", as_of="2026-10-19", output=tmp_path/"out")
    page = r.html.read_text()
    assert r.ok and "not enough fills yet (0 of 10)" in page and "Traceback" not in page
    assert "no state database yet" in page and not (tmp_path/"nothing-yet").exists()
    w = R.run_report("weekly", state_dir=tmp_path/"nothing-yet", as_of="2026-10-19", output=tmp_path/"out")
    assert w.ok and "no cycle yet: no week to review" in w.html.read_text()
    assert browse(r.html)["errors"] == [] if "js-plotly-plot" in page else True


def test_failed_run_renders_the_failure_and_exits_nonzero(tmp_path):
    bad = tmp_path/"state"; bad.mkdir()
    (bad/"hydra.db").write_bytes(b"this is not a database" * 10)
    p = subprocess.run([str(HYDRA), "report", "daily", "--state-dir", str(bad), "--as-of", "2026-10-19", "--output", str(tmp_path/"out")],
                       capture_output=True, text=True, timeout=300)
    assert p.returncode == 1, p.stderr
    html = tmp_path/"out"/"daily_monitor_2026-10-19.html"
    page = html.read_text()
    assert "REPORT FAILED" in page and "cell [3] failed with" in page and "StateDBError" in page and "not a SQLite database" in page
    k = json.loads(html.with_suffix(".json").read_text())
    assert (k["ok"], k["failed_cell"]) == (False, 3) and k["error"].startswith("StateDBError: ") and "not a SQLite database" in k["error"]
    assert "failed" in p.stderr and str(html) in p.stdout


def test_cli_writes_dated_files_and_never_overwrites(state, tmp_path):
    run = lambda: subprocess.run([str(HYDRA), "report", "weekly", "--state-dir", str(state), "--as-of", "2026-10-23", "--output", str(tmp_path)],
                                 capture_output=True, text=True, timeout=300)
    a, b = run(), run()
    assert (a.returncode, b.returncode) == (0, 0), a.stderr + b.stderr
    assert sorted(p.name for p in tmp_path.glob("*.html")) == ["weekly_review_2026-10-23.html", "weekly_review_2026-10-23_2.html"]
    k = json.loads((tmp_path/"weekly_review_2026-10-23.json").read_text())
    assert [w["week"] for w in k["weeks"]] == ["2026-10-19"]                   # as of the Friday: one week
