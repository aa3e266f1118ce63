"""A user's own strategy, as the tutorial writes one: a plain class with `fit`/`predict` (plugged in by `PlainStrategy`).
Shared by tests/test_strategy.py and bench/bench_strategy.py."""
import numpy as np


class Persistence:
    "Bets that the last `lookback`-day move continues (or reverses) as such moves did in the training bars."
    def __init__(self, lookback=1): self.lookback = lookback
    def _move(self, bars): return np.log(bars.close).diff(self.lookback)
    def fit(self, bars):
        m, nxt = self._move(bars), np.log(bars.close).diff().shift(-1)
        ok = m.notna() & nxt.notna()
        self.direction_, self.scale_ = np.sign(np.corrcoef(m[ok], nxt[ok])[0, 1]), m[ok].std()
    def predict(self, bars): return np.clip(self.direction_*self._move(bars)/(2*self.scale_), -1, 1)
