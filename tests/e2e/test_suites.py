"""The suites that are not pytest themselves, run as test cases so one
pytest summary line covers everything: the unit tests under zig build
(UBSan traps on), the same unit tests under ASan+UBSan with the system clang,
and a bounded libFuzzer run of each fuzz driver."""
import os
import subprocess

import pytest

from conftest import ROOT


def run(cmd, timeout):
    p = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout, text=True)
    return p.returncode, p.stdout


def zig():
    venv_py = ROOT / ".venv" / "bin" / "python"
    return [str(venv_py), "-m", "ziglang"]


def test_unit_tests_under_zig_build():
    code, out = run(zig() + ["build", "test", "--summary", "none"], timeout=900)
    assert code == 0, out
    # every unit test binary reported, none failed
    expected = len(list((ROOT / "tests" / "unit").glob("*/test_*.c")))
    assert out.count("checks, 0 failed") == expected, out
    assert " failed" not in out.replace(", 0 failed", ""), out


def test_unit_tests_under_asan_ubsan():
    code, out = run(["bash", "tests/sanitize.sh", "unit"], timeout=900)
    assert code == 0, out
    assert "0 failed" in out.splitlines()[-1], out


FUZZ_DRIVERS = sorted(p.stem[len("fuzz_"):] for p in (ROOT / "tests" / "fuzz").glob("fuzz_*.c"))


@pytest.mark.parametrize("driver", FUZZ_DRIVERS)
def test_fuzz_bounded(driver):
    seconds = os.environ.get("RINGCAST_FUZZ_SECONDS", "60" if os.environ.get("CI") else "10")
    code, out = run(["bash", "tests/fuzz/run.sh", seconds, driver], timeout=int(seconds) * 3 + 600)
    assert code == 0, out
    assert f"PASS" in out, out
