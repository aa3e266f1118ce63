"""Headless Chromium for the tests that look at a page: Debian's /usr/bin/chromium (installed by .ci/test.sh when missing),
driven by Playwright, a fresh profile each time, every request that is not the file itself refused and recorded."""
import tempfile
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run"]


def browse(html:Path, screenshot:Path|None=None) -> dict:
    "Open `html` in headless Chromium with a fresh profile; every request that is not the file itself is refused and recorded."
    from playwright.sync_api import sync_playwright
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} missing: .ci/test.sh installs Debian's chromium"
    out = dict(errors=[], external=[])
    with sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        ctx = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True, args=CHROME_ARGS,
                                                    viewport=dict(width=1280, height=1000))
        try:
            page = ctx.new_page()
            page.on("pageerror", lambda e: out["errors"].append(str(e)))
            def route(r):
                if r.request.url.startswith(("file:", "data:", "blob:")): return r.continue_()
                out["external"].append(r.request.url); return r.abort()
            page.route("**/*", route)
            page.goto(html.as_uri())
            page.wait_for_selector(".js-plotly-plot .main-svg", timeout=60_000)
            page.wait_for_load_state("load")
            out["plots"] = page.locator(".js-plotly-plot").count()
            out["rendered"] = page.evaluate("[...document.querySelectorAll('.js-plotly-plot')].filter(p => p.querySelector('.main-svg')).length")
            out["points"] = page.locator(".js-plotly-plot .scatterlayer .point").count()
            out["title"] = page.title()
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=False)
        finally:
            ctx.close()
    return out


