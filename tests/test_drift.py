"""Drift detectors at scale and under the null: calibration (false-alarm rates), agreement with reference
implementations, and the vectorized paths against the textbook loops."""
import numpy as np
import pandas as pd
import pytest
from scipy import stats
from hydra_nb.drift import (ADWIN, accuracy_drop, adwin, benjamini_hochberg, cusum, cusum_path, drift_checks,
                            drift_report, ks_test, psi)


def test_ks_false_alarm_rate_is_alpha():
    rng = np.random.default_rng(10)
    rate = np.mean([ks_test(rng.normal(size=200), rng.normal(size=50)).drifted for _ in range(1000)])
    assert 0.02 < rate < 0.08, rate


@pytest.mark.parametrize("n,m", [(250, 20), (1000, 100), (20_000, 20_000)])
def test_psi_threshold_keeps_false_alarms_near_alpha_at_every_size(n, m):
    rng = np.random.default_rng(n + m)
    rate = np.mean([psi(rng.normal(size=n), rng.normal(size=m), min_psi=0.0).drifted for _ in range(400)])
    assert rate < 0.09, rate                      # chi-square approximation: near (a little under) 5%


def test_psi_detects_a_real_shift_and_the_floor_ignores_a_tiny_one():
    rng = np.random.default_rng(11)
    ref = rng.normal(size=200_000)
    assert psi(ref, rng.normal(0.5, 1, 2000)).drifted
    tiny = psi(ref, rng.normal(0.03, 1, 200_000))
    assert tiny.p_value < 0.05 and not tiny.drifted   # statistically real, practically nothing


def test_ks_large_sample_path_matches_scipy():
    rng = np.random.default_rng(12)
    a, b = rng.standard_t(3, 300_000), rng.standard_t(3, 200_000) + 0.005
    mine, ref = ks_test(a, b), stats.ks_2samp(a, b, method="asymp")
    assert mine.statistic == pytest.approx(ref.statistic, abs=1e-12)
    assert mine.p_value == pytest.approx(ref.pvalue, abs=1e-3)


def test_vectorized_cusum_equals_the_loop_on_a_million_points():
    rng = np.random.default_rng(13)
    z = rng.normal(0.05, 1, 1_000_000)
    up, lo = cusum_path(z, 0.5)
    # the textbook loop over all of it: the reflected cumulative sum must not drift in floating point
    s_up = s_lo = 0.0
    ref_up, ref_lo = np.empty(z.size), np.empty(z.size)
    for i, v in enumerate(z.tolist()):
        s_up, s_lo = max(0.0, s_up + v - 0.5), max(0.0, s_lo - v - 0.5)
        ref_up[i], ref_lo[i] = s_up, s_lo
    np.testing.assert_allclose(up, ref_up, atol=1e-8)
    np.testing.assert_allclose(lo, ref_lo, atol=1e-8)


def test_cusum_false_alarm_run_length_matches_theory():
    # two-sided k=0.5, h=5: in-control ARL ~ 465; P(alarm within 100 observations) ~ 0.2
    rng = np.random.default_rng(14)
    rate = np.mean([cusum(rng.normal(size=100), mu=0, sigma=1).drifted for _ in range(500)])
    assert 0.1 < rate < 0.3, rate
    # a one-sd shift is found within about 10 observations
    delays = [cusum(np.r_[rng.normal(size=50), rng.normal(1, 1, 50)], mu=0, sigma=1).info["alarm_index"] for _ in range(200)]
    post = np.array([d - 50 for d in delays if d is not None and d >= 50])
    assert np.median(post) <= 10


def test_adwin_false_alarms_and_detection():
    rng = np.random.default_rng(15)
    fa = np.mean([adwin(rng.normal(0, 1, 500)).drifted for _ in range(30)])
    assert fa <= 0.1, fa
    hits = [adwin(np.r_[rng.normal(0, 1, 300), rng.normal(1, 1, 300)]).info["detections"] for _ in range(20)]
    assert all(h and 300 <= h[0] < 400 for h in hits), hits


def test_adwin_stream_interface_matches_batch():
    rng = np.random.default_rng(16)
    x = np.r_[rng.binomial(1, 0.7, 200), rng.binomial(1, 0.2, 200)].astype(float)
    a = ADWIN()
    flags = [a.update(v) for v in x]
    assert np.flatnonzero(flags).tolist() == adwin(x).info["detections"]


def test_accuracy_drop_false_alarm_rate_with_significance():
    rng = np.random.default_rng(17)
    runs = [rng.binomial(1, 0.6, 70) for _ in range(1000)]
    bare = np.mean([accuracy_drop(h, alpha=None).drifted for h in runs])
    sig = np.mean([accuracy_drop(h, alpha=0.05).drifted for h in runs])
    assert bare > 0.3 and sig < 0.08, (bare, sig)   # the seed's bare rule alarms on noise a third of the time


def test_benjamini_hochberg_controls_fdr():
    rng = np.random.default_rng(18)
    fdp = []
    for _ in range(300):
        p_null = rng.uniform(size=90)
        p_alt = stats.norm.sf(rng.normal(3, 1, 10))
        rej, _ = benjamini_hochberg(np.r_[p_null, p_alt], q=0.1)
        fdp.append(rej[:90].sum()/max(1, rej.sum()))
    assert np.mean(fdp) <= 0.1 + 0.02


def test_drift_report_bad_input():
    ref = pd.DataFrame({"a": [1.0, 2, 3, 4], "b": [1.0, 2, 3, 4]})
    with pytest.raises(ValueError, match="NaN/inf"):
        drift_report(ref, ref.assign(a=[1, np.nan, 3, 4]))
    with pytest.raises(ValueError, match="cur needs at least 2"):
        drift_checks([1.0, 2, 3], [1.0])


def test_drift_checks_on_a_million_points_is_correct():
    rng = np.random.default_rng(19)
    ref, cur = rng.normal(size=1_000_000), rng.normal(size=1_000_000)
    res = drift_checks(ref, cur)
    assert not res["ks"].drifted and not res["psi"].drifted
    exact = stats.ks_2samp(ref, cur, method="asymp")
    assert res["ks"].statistic == pytest.approx(exact.statistic, abs=1e-12)
    assert res["ks"].p_value == pytest.approx(exact.pvalue, abs=1e-3)
    # a shift of 1% of a standard deviation: KS and CUSUM see it at this size; PSI finds it significant but below its floor
    shifted = drift_checks(ref, cur + 0.01)
    assert shifted["ks"].drifted and shifted["cusum"].drifted and shifted["cusum"].info["direction"] == "up"
    assert shifted["psi"].p_value < 0.05 and shifted["psi"].statistic < 0.1 and not shifted["psi"].drifted
