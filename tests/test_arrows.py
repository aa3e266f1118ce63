"""Every module of `hydra_nb` held to the arrows of `../shared/DESIGN.md` ("Components and their rooms"), from the
package's source with `ast` (nothing is imported, so a forbidden import fails here even if importing it would work).

The table `ARROWS` is the allowed-import map, one row per room: the rooms a room may import DIRECTLY. Arrows are not
transitive, because the design's are not: `orders -> risk -> broker` does not let `orders` import `broker` (the design
forbids exactly that), so each row lists only the arrows drawn from that room, and where a room really uses a room two
hops away the design draws that arrow too (`reconcile -> journal` and `reconcile -> slippage`; `runner -> broker` beside
`runner -> orders`). Every room but `config` may also import `config` and `core`; `config` is the base and imports no
hydra module (so `core -> config` can never become a cycle).

Rows that are tighter than the design, on purpose:
- `risk` imports only config/core, although the design draws `risk -> broker`: `RiskGate` holds the broker's submit
  capability because it is *handed* the broker object (any object with the order methods), not by importing it, and
  importing `broker` would pull `ib_async` into the risk layer. A future need is a change to this row, made on purpose.

Rooms with no module yet (`broker`, `orders`, `runner`, `reports`, `gate`, `widgets`) have their rows already, so a
module is held to the arrows the day it lands. Every module whose name starts with `gateway_` is the gateway room
(the embedded IB gateway, split into `gateway_wire`, `gateway_messages`, ...): its modules import each other and
`market`. A module whose room has no row fails: a new room is placed deliberately.

Also checked: the `NEVER` rules (they hold even for `cli` and `widgets`, which may import anything else), that no
module imports a hydra module that does not exist, that `__init__.py` does not import `cli`, and that `ib_async` /
`ibapi` are imported only where the design puts IB's client (the broker, and the gateway's own dev-only decoders).
Imports are found anywhere in a module (inside functions too), in every spelling: `from .x import`, `from . import x`,
`from hydra_nb.x import`, `from hydra_nb import x`, `import hydra_nb.x`, and `importlib.import_module("hydra_nb.x")`
with a literal name."""
import ast, textwrap
from pathlib import Path
from typing import NamedTuple

import pytest

PKG_DIR = Path(__file__).resolve().parents[1] / "hydra_nb"
PKG = "hydra_nb"
GATEWAY = "gateway"                # the room of every module named gateway_*
ANY = "anything"                   # a row that may import any room (the NEVER rules still hold)
BASE = {"config", "core"}          # every room but config may import these
ROOT = "__init__"                  # the package itself (`import hydra_nb`, `from hydra_nb import __version__`)

ARROWS = {
    "config":    set(),
    "core":      set(),
    "slippage":  set(),
    "risk":      set(),                                           # tighter than DESIGN's risk -> broker (docstring)
    "journal":   {"slippage"},
    "reconcile": {"journal", "slippage"},
    "market":    set(),                                           # the simulator's own market: no hydra module
    GATEWAY:     {GATEWAY, "market"},
    "drift":     set(),
    "models":    set(),
    "agent":     {"drift", "models"},
    "broker":    {"journal"},
    "orders":    {"risk"},                                        # never broker: only through RiskGate
    "runner":    {"orders", "risk", "broker", "journal", "agent", "models"},   # it wires the gate that claims the broker
    "rehearsal": {"runner", "broker", "journal", "agent", "market", GATEWAY, "gate", "reports", "service", "reconcile"},   # above the runner, like cli
    "reports":   {"journal", "reconcile", "drift", "agent", "gate"},   # the gate checklist in both reports
    "gate":      {"journal", "reconcile", "drift", "agent"},
    "alerts":    set(),                                           # events in, apprise out: handed payloads, imports no room
    "service":   {"runner", "broker", "journal", "risk", "alerts", "gate"},   # the long-running process around the runner
    "widgets":   ANY,
    "cli":       ANY,
}

# (rule, why): what no row may allow, checked on every import whatever the table says
NEVER = [
    (lambda src, dst: src == "orders" and dst == "broker", "orders reach the broker only through RiskGate"),
    (lambda src, dst: dst == "cli" and src != "cli", "nothing imports cli"),
    (lambda src, dst: dst == "runner" and src not in ("runner", "rehearsal", "service", "cli", "widgets"), "nothing below runner imports runner"),
    (lambda src, dst: src == "market" and dst not in BASE, "market imports no hydra module but config/core"),
    (lambda src, dst: src == GATEWAY and dst not in BASE | {"market", GATEWAY},
     "the gateway imports only config/core, market and its own modules (an independent peer of the execution path)"),
]

# third-party clients of IB: only the rooms that speak to IB may import them
IB_CLIENTS = {"ib_async": {"broker", GATEWAY}, "ibapi": {GATEWAY}}


class Violation(NamedTuple):
    module: str
    line: int
    target: str
    why: str
    def __str__(self): return f"{self.module}.py:{self.line}: imports {self.target}: {self.why}"


def room_of(module: str) -> str:
    return GATEWAY if module.startswith("gateway_") else module


def imports_of(source: str, modules: set[str]) -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
    "(hydra modules imported, with line numbers; other top-level packages imported) anywhere in `source`."
    hydra, other = [], []
    def named(names, line):            # `from hydra_nb import x` / `from . import x`: a module or a name of __init__
        for a in names: hydra.append((a.name if a.name in modules else ROOT, line))
    for n in ast.walk(ast.parse(source)):
        if isinstance(n, ast.ImportFrom):
            mod = n.module or ""
            if n.level > 1: hydra.append(("." * n.level + mod + " (outside the package)", n.lineno))
            elif n.level == 1: hydra.append((mod.split(".")[0], n.lineno)) if mod else named(n.names, n.lineno)
            elif mod == PKG: named(n.names, n.lineno)
            elif mod.startswith(PKG + "."): hydra.append((mod.split(".")[1], n.lineno))
            else: other.append((mod.split(".")[0], n.lineno))
        elif isinstance(n, ast.Import):
            for a in n.names:
                parts = a.name.split(".")
                if parts[0] == PKG: hydra.append((parts[1] if len(parts) > 1 else ROOT, n.lineno))
                else: other.append((parts[0], n.lineno))
        elif (isinstance(n, ast.Call) and getattr(n.func, "attr", getattr(n.func, "id", None)) == "import_module"
              and n.args and isinstance(n.args[0], ast.Constant) and isinstance(n.args[0].value, str)):
            parts = n.args[0].value.split(".")
            if parts[0] == PKG: hydra.append((parts[1] if len(parts) > 1 else ROOT, n.lineno))
    return hydra, other


def check(sources: dict[str, str]) -> list[Violation]:
    "Every violation of the arrows in a package given as {module name: source} (`__init__` for the package file)."
    modules = set(sources) - {ROOT}
    out = []
    for mod, src in sorted(sources.items()):
        room = room_of(mod)
        if mod != ROOT and room not in ARROWS:
            out.append(Violation(mod, 0, "-", f"room {room!r} has no row in ARROWS: place the new room deliberately"))
            continue
        hydra, other = imports_of(src, modules)
        for target, line in hydra:
            dst = room_of(target)
            if target != ROOT and target not in modules:
                out.append(Violation(mod, line, target, f"{PKG}.{target} does not exist")); continue
            if target == mod: continue
            if mod == ROOT:                                        # the package file may import anything, lazily...
                if dst == "cli": out.append(Violation(mod, line, target, "nothing imports cli"))
                continue                                           # ... but never cli
            never = [why for rule, why in NEVER if rule(room, dst)]
            if never: out.append(Violation(mod, line, target, "never: " + never[0])); continue
            allowed = ARROWS[room]
            if allowed == ANY and dst != ROOT: continue
            ok = (allowed if allowed != ANY else set()) | (BASE - {room} if room != "config" else set())
            if dst not in ok:
                out.append(Violation(mod, line, target, f"no arrow {room} -> {dst} (allowed: {sorted(ok) or 'none'})"))
        for pkg, line in other:
            if pkg in IB_CLIENTS and room not in IB_CLIENTS[pkg]:
                out.append(Violation(mod, line, pkg, f"only {sorted(IB_CLIENTS[pkg])} may import {pkg}"))
    return out


def package_sources(pkg_dir: Path) -> dict[str, str]:
    "{module name: source} of every module file of the package (not the generated `_modidx.py`)."
    files = sorted(p for p in pkg_dir.rglob("*.py") if p.name != "_modidx.py" and "__pycache__" not in p.parts)
    return {".".join(p.relative_to(pkg_dir).with_suffix("").parts): p.read_text() for p in files}


# --- the package as it is ----------------------------------------------------------------------------------------

def test_every_module_follows_the_arrows():
    srcs = package_sources(PKG_DIR)
    assert {"config", "core", "journal", "risk", "market", "agent", "cli", ROOT} <= set(srcs), sorted(srcs)
    bad = check(srcs)
    assert not bad, "\n".join(map(str, bad))


def test_every_module_has_a_row():
    "A module whose room is not in the table fails (also checked inside `check`; this names them directly)."
    srcs = package_sources(PKG_DIR)
    assert not [m for m in srcs if m != ROOT and room_of(m) not in ARROWS]


def test_the_table_draws_no_forbidden_arrow():
    "The table itself allows none of the NEVER arrows, names only rooms it has, and matches the design's rows."
    for src, allowed in ARROWS.items():
        if allowed == ANY: continue
        assert allowed <= set(ARROWS), (src, allowed - set(ARROWS))
        for dst in allowed | (BASE if src != "config" else set()):
            assert not [why for rule, why in NEVER if rule(src, dst)], (src, dst)
    assert ARROWS["orders"] == {"risk"} and ARROWS["risk"] == set() and ARROWS["market"] == set()
    assert set(ARROWS) == {"config", "core", "slippage", "risk", "journal", "reconcile", "market", GATEWAY, "drift",
                           "models", "agent", "broker", "orders", "runner", "rehearsal", "reports", "gate", "alerts", "service", "widgets", "cli"}


# --- the checker on synthetic packages: it must fail when someone adds a forbidden import -------------------------

def _minimal(**extra) -> dict[str, str]:
    "A small package that follows the arrows, plus `extra` modules (name=source)."
    base = dict(__init__='__version__ = "0"', config="import os", core="from .config import x",
                slippage="import math", journal="from .slippage import y\nfrom .core import z",
                risk="from hydra_nb.core import t", broker="from .journal import FillJournal",
                market="import numpy as np", gateway_sim="from .market import Market\nfrom .gateway_wire import f",
                gateway_wire="from .config import classify_port")
    return {**base, **{k: textwrap.dedent(v) for k, v in extra.items()}}


def test_minimal_package_is_clean():
    assert check(_minimal(orders="from .risk import RiskGate")) == []


@pytest.mark.parametrize("spelling", [
    "from .broker import BrokerGateway",
    "from hydra_nb.broker import BrokerGateway",
    "import hydra_nb.broker",
    "from . import broker",
    "from hydra_nb import broker",
    "def route():\n    from .broker import BrokerGateway\n    return BrokerGateway",
    "import importlib\nB = importlib.import_module('hydra_nb.broker')",
])
def test_orders_importing_broker_is_the_one_violation(tmp_path, spelling):
    "A temp package on disk whose orders.py reaches the broker directly: exactly that violation, in every spelling."
    pkg = tmp_path / "hydra_nb"; pkg.mkdir()
    for name, src in _minimal(orders="from .risk import RiskGate\n" + spelling + "\n").items():
        (pkg / f"{name}.py").write_text(src)
    (pkg / "_modidx.py").write_text("from .cli import main  # generated by nbdev: not a module of the package")
    bad = check(package_sources(pkg))
    assert [(v.module, v.target) for v in bad] == [("orders", "broker")], bad
    assert "only through RiskGate" in bad[0].why
    assert bad[0].line == 2 + [i for i, l in enumerate(spelling.split("\n")) if "broker" in l][0]   # line 1 imports risk


def test_market_importing_risk_is_refused():
    "The real package plus one line in market.py: exactly that violation."
    srcs = package_sources(PKG_DIR)
    srcs["market"] += "\nfrom .risk import RiskGate\n"
    bad = check(srcs)
    assert [(v.module, v.target) for v in bad] == [("market", "risk")], bad
    assert "market imports no hydra module but config/core" in bad[0].why


@pytest.mark.parametrize("importer", ["journal", "widgets", "runner", "gateway_sim", ROOT])
def test_nothing_imports_cli(importer):
    "Not even the rooms that may import anything else, nor the package's __init__."
    srcs = _minimal(cli="from .risk import x", widgets="from .journal import j", runner="from .orders import o",
                    orders="from .risk import r")
    srcs[importer] += "\nfrom hydra_nb.cli import main\n"
    bad = check(srcs)
    assert [(v.module, v.target) for v in bad] == [(importer, "cli")], bad
    assert "nothing imports cli" in bad[0].why


def test_other_violations_are_named():
    bad = check(_minimal(journal="from .slippage import y\nfrom .brokr import B",          # a typo: no such module
                         agent="from .market import simulate_daily_bars",                 # agent -> market: not drawn
                         newroom="x = 1",                                                  # a room with no row
                         risk="from .core import t\nfrom ib_async import LimitOrder",      # IB's client outside broker
                         gateway_messages="from .journal import FillJournal",              # the simulator is a peer
                         config="from .core import t",                                     # config is the base
                         drift="def f():\n    from .runner import R",                      # below runner, in a function
                         runner="from .orders import o", orders="from .risk import r"))
    got = {(v.module, v.target): v.why for v in bad}
    assert set(got) == {("journal", "brokr"), ("agent", "market"), ("newroom", "-"), ("risk", "ib_async"),
                        ("gateway_messages", "journal"), ("config", "core"), ("drift", "runner")}, bad
    assert "does not exist" in got["journal", "brokr"] and "no row in ARROWS" in got["newroom", "-"]
    assert "no arrow agent -> market" in got["agent", "market"] and "only ['broker', 'gateway'] may import ib_async" in got["risk", "ib_async"]
    assert "independent peer" in got["gateway_messages", "journal"] and "no arrow config -> core" in got["config", "core"]
    assert "nothing below runner imports runner" in got["drift", "runner"]
