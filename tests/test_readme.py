"""README.md is generated from nbs/index.ipynb (`make readme`); it must not drift from it."""
from pathlib import Path
from nbconvert import MarkdownExporter

ROOT = Path(__file__).resolve().parents[1]


def test_readme_in_sync_with_index_notebook():
    body, _ = MarkdownExporter().from_filename(str(ROOT / "nbs" / "index.ipynb"))
    assert (ROOT / "README.md").read_text() == body, "README.md is stale: run `make readme` and commit"


def test_readme_gives_the_two_commands():
    text = (ROOT / "README.md").read_text()
    assert "```sh\nmake demo\n```" in text and "```sh\nmake test\n```" in text
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in ci
