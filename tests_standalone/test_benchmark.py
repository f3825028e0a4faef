"""The benchmark command runs and reports every figure (its numbers are judged in the README, not here)."""

import json
import shutil

import pytest
from conftest import ROOT, run_module


def test_benchmark_quick_run_reports_every_figure():
    if not shutil.which("wrk"):
        pytest.fail("wrk is not installed: apt-get install wrk (.ci/run and tools/bench.sh install it)")
    result = run_module("benchmark", "--quick", timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((ROOT / ".build" / "benchmark.json").read_text())
    for mode in ("legacy-rsa2048", "legacy-p256", "csr"):
        assert report["limit"][mode] > 0 and report["core"][mode] > 0
        assert "core/limit " + mode in result.stdout
    for key in ("csr-1", "csr-8", "csr-32", "legacy-1", "legacy-8", "legacy-32"):
        assert report["http"][key]["requests_per_s"] > 0
        assert report["http"][key]["non_2xx"] == 0
    assert report["legacy_burst_20"]["statuses"] == [200]
    assert report["memory_kib"]["issuances"] == 500 and report["memory_kib"]["after_issuances"] > 0
    assert "HTTP/core" in result.stdout
