"""The panel in a real Jupyter kernel (ipykernel, through nbclient): a kernel whose asyncio event loop is already running
before the first cell and keeps running between cells. `nbdev-test` runs notebooks in IPython's own shell, which runs
each cell in a loop but not between cells; this test covers the kernel a user actually has (issue 14, item 4).

The button's cycle is scheduled from a cell with no `await` in it (a plain callback, as a click in the browser is) and
that cell returns while the cycle is still running; the next cell does its own async work (a sleep) and finds the
cycle further along without having awaited it (the cycle is a task of the kernel's loop, not of the cell that started
it); the last one awaits its summary."""
import nbformat
from nbclient import NotebookClient

CELLS = [
    """import asyncio, tempfile, time
from pathlib import Path
from hydra_nb.config import load_settings
from hydra_nb.widgets import simulation
d = Path(tempfile.mkdtemp())
panel = await simulation(d, settings=load_settings(env={}, cwd=d))""",
    # a cell without await: the kernel's loop is running under it (ipykernel), and the click only schedules the cycle
    """loop = asyncio.get_running_loop()
assert loop.is_running()
t0 = time.perf_counter()
panel.run_button.click()
click_s = time.perf_counter() - t0
task = panel.task
assert task is not None and not task.done() and click_s < 0.5, click_s
kinds_at_click = [k for k, _ in panel.events]""",
    # the previous cell returned; the loop ran the cycle between the cells, nobody awaited it
    """await asyncio.sleep(0.3)
kinds_between = [k for k, _ in panel.events]
assert kinds_at_click == [], kinds_at_click""",
    """summary = (await task)[0]
assert summary["status"] == "done", summary
kinds = [k for k, _ in panel.events]
assert kinds[0] == "cycle_start" and kinds[-1] == "cycle_end", kinds
assert "done" in panel.message.value and not panel.run_button.disabled
await panel.aclose()
print("OK", summary["trading_date"], summary["fills"], len(kinds_between))""",
]


def test_panel_cycle_in_a_running_jupyter_kernel(tmp_path):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = "".join(o.get("text", "") for o in nb.cells[-1].outputs if o.get("output_type") == "stream")
    assert out.startswith("OK 2026-10-20"), out
    assert int(out.split()[-1]) >= 1, out           # the cycle had started on its own before any cell awaited it


def test_the_panel_renders_in_chromium(tmp_path):
    "`Panel.to_html()` of a rehearsal's state in headless Chromium: the figure drawn, no page error, nothing loaded from outside."
    import asyncio, shutil
    from hydra_nb.config import load_settings
    from hydra_nb.rehearsal import Scenario, rehearse
    from hydra_nb.reports import OUTPUT_DIR
    from hydra_nb.widgets import Panel
    from browser import browse
    d = tmp_path / "state"
    asyncio.run(rehearse(Scenario(days=3, regime_switch_day=None, disconnects=1), state_dir=d, progress=False))
    p = Panel(d)                                     # with the settings the rehearsal left in its state directory
    try:
        page = tmp_path / "panel.html"; page.write_text(p.to_html())
        shot = OUTPUT_DIR / "test-artifacts" / "panel.png"
        out = browse(page, screenshot=shot)
    finally: p.close()
    assert out["rendered"] == out["plots"] == 1 and out["points"] > 0, out
    assert not out["errors"] and not out["external"], out
    assert shot.stat().st_size > 10_000
    assert p.breakers.breakers["max_position"].threshold == 1.0         # the rehearsal's limit, not the package default
