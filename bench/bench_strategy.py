"""What a strategy costs the daily cycle: the baseline against a scikit-learn Pipeline (FeatureStrategy) and a plain class
(PlainStrategy), on the same 260 days of simulated bars, measured in the same run.

Per kind: today's signal as the runner computes it (`runner.champion_signal`), the agent's observe step on a quiet day
(drift monitors and the rollback check read the strategy's hit measure: `AgentLoop._prepare`), and one experiment as a
worker runs it (`agent.run_experiment`: five walk-forward refits and the final fit). Prints medians and each kind's
ratio to the baseline. No budget in DESIGN.md covers a user's model; this says what bringing one adds to a cycle that
the 28-day rehearsal budget (<= 120 s) must absorb.

  .venv/bin/python bench/bench_strategy.py [--repeat 30]
"""
import argparse, statistics, sys, tempfile, time
from pathlib import Path
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from hydra_nb.agent import AgentConfig, AgentLoop, run_experiment
from hydra_nb.market import simulate_daily_bars
from hydra_nb.models import DirectionalModel, FeatureStrategy, ModelRegistry, ModelSpec, PlainStrategy
from hydra_nb.runner import champion_signal

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from user_strategies import Persistence     # the tutorial's plain class, as a user's own module holds it


def median_ms(fn, repeat):
    fn()                                                        # warm caches and imports
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter(); fn(); ts.append((time.perf_counter() - t0)*1e3)
    return statistics.median(ts)


def main():
    ap = argparse.ArgumentParser(); ap.add_argument("--repeat", type=int, default=30); a = ap.parse_args()
    bars = simulate_daily_bars("ZO", 260, seed=7)
    hist = bars.iloc[:250]
    kinds = {"baseline": (DirectionalModel(ModelSpec(train_window=120)).fit(hist), ModelSpec(train_window=20)),
             "pipeline": (FeatureStrategy(make_pipeline(StandardScaler(), LogisticRegression()), lookback=5, train_window=120).fit(hist), None),
             "plain class": (PlainStrategy(Persistence(), train_window=120).fit(hist), None)}
    rows = {}
    for name, (champ, spec) in kinds.items():
        spec = spec if spec is not None else {**champ.hyperparameters, "train_window": 20}
        with tempfile.TemporaryDirectory() as d, ModelRegistry(d, "ZO") as reg:
            reg.register(champ, status="champion", reason="bench", actor="bench")
            agent = AgentLoop(reg, AgentConfig())
            sig = median_ms(lambda: champion_signal(champ, bars), a.repeat)
            obs = median_ms(lambda: agent._prepare(bars), a.repeat)
            exp = median_ms(lambda: run_experiment(bars, champ, spec, 5, 5), max(5, a.repeat // 3))
            agent.close()
        rows[name] = (sig, obs, exp)
    b = rows["baseline"]
    print(f"{'kind':<12} {'signal ms':>10} {'observe ms':>11} {'experiment ms':>14}   ratios to the baseline (signal, observe, experiment)")
    for name, (sig, obs, exp) in rows.items():
        print(f"{name:<12} {sig:10.2f} {obs:11.2f} {exp:14.1f}   {sig / b[0]:.2f}, {obs / b[1]:.2f}, {exp / b[2]:.2f}")


if __name__ == "__main__":
    main()
