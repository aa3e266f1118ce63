__version__ = "0.1.0"

# The seed's import check, `from hydra_nb import BrokerGateway, RiskGate, OrderManager, FillJournal, SlippageReconciler,
# PaperTradingRunner`, without making `import hydra_nb` (or `hydra --help`) import ib_async, pandas or scipy: each name is
# imported from its module on first use (PEP 562).
_LAZY = {"BrokerGateway": "broker", "RiskGate": "risk", "CircuitBreakerManager": "risk", "OrderManager": "orders",
         "FillJournal": "journal", "SlippageReconciler": "reconcile", "PaperTradingRunner": "runner",
         "evaluate_gate": "gate", "load_settings": "config", "Settings": "config"}
__all__ = ["__version__", *_LAZY]

def __getattr__(name):
    mod = _LAZY.get(name)
    if mod is None: raise AttributeError(f"module 'hydra_nb' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f"hydra_nb.{mod}"), name)
    globals()[name] = value
    return value

def __dir__(): return sorted([*globals(), *_LAZY])
