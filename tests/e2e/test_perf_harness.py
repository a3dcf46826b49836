"""perf/harness/harness.py: the arithmetic behind the figures docs/performance.md reports.

Memory per connection is the slope of RSS against open descriptors, so a
fixed cost first touched during the ramp (a buffer pool's pages) must not be
charged to connections; latency from several load generator processes must
merge into the exact percentiles of the combined histogram.
"""
import importlib.util
import math
import random

import pytest

from conftest import ROOT


@pytest.fixture(scope="module")
def harness():
    spec = importlib.util.spec_from_file_location("harness", ROOT / "perf" / "harness" / "harness.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_marginal_memory_ignores_fixed_costs_touched_early(harness):
    conns, per_conn, fds0, base = 100_000, 280, 12, 30_000_000
    pts = []
    for k in range(0, conns + 1, 2_500):
        fixed = 56_000_000 if k >= 10_000 else 0  # buffer pool pages, all touched by 10 % of the ramp
        noise = random.Random(k).randint(-4096, 4096)  # RSS moves in pages
        pts.append((fds0 + k, base + fixed + per_conn * k + noise))
    slope = harness.marginal_bytes_per_conn(pts, fds0, conns)
    assert abs(slope - per_conn) < 2, slope
    average = (pts[-1][1] - base) / conns
    assert average > 800  # what the old figure would have said


def test_marginal_memory_needs_a_span_of_the_ramp(harness):
    assert harness.marginal_bytes_per_conn([(10, 1000), (20, 2000)], 0, 100) is None
    # three points, but all within 10 % of the connections
    assert harness.marginal_bytes_per_conn([(90, 1), (95, 2), (100, 3)], 0, 100) is None


def test_latency_merges_exactly_over_load_generators(harness):
    rng = random.Random(7)
    samples = [[rng.choice([100, 200, 300, 5000, 90000]) for _ in range(n)] for n in (1000, 3000)]

    def lg(vals, with_kernel):
        hist = {}
        for v in vals:
            hist[v] = hist.get(v, 0) + 1
        summary = {"p50": 0, "p90": 0, "p99": 0, "p999": 0, "max": max(vals), "mean": sum(vals) / len(vals),
                   "count": len(vals)}
        out = {"latency_us": summary, "latency_hist": sorted(map(list, hist.items()))}
        if with_kernel:
            out["kernel_latency_us"], out["kernel_latency_hist"] = summary, out["latency_hist"]
        return out

    merged = harness.merge_latency([lg(samples[0], True), lg(samples[1], True)])
    allv = sorted(samples[0] + samples[1])
    for key, q in (("p50", .5), ("p90", .9), ("p99", .99), ("p999", .999)):
        assert merged[key] == allv[math.ceil(q * len(allv)) - 1], key
    assert merged["count"] == 4000 and merged["max"] == 90000
    assert harness.merge_latency([lg(samples[0], True), lg(samples[1], True)], "kernel_latency")["p99"] == merged["p99"]
    # one load generator without --rx-timestamps: no kernel figure at all, not a partial one
    assert harness.merge_latency([lg(samples[0], True), lg(samples[1], False)], "kernel_latency") is None
