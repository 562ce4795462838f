"""SLO files: validation errors that name file, key and reason; the verdict and its summary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from triton_deploy.errors import TritonDeployError
from triton_deploy.loadtests import (
    ENVIRONMENTS,
    EXIT_SLO_VIOLATED,
    LoadTestConfigError,
    Measured,
    SloSpec,
    TaskMix,
    evaluate,
    load_slo,
    mix_path,
    slo_path,
)
from triton_deploy.loadtests.config import load_yaml_model
from triton_deploy.loadtests.objectives import check_coverage

GOOD = """\
environment: test
models:
  digits: {p50_ms: 10, p95_ms: 20, p99_ms: 30, max_error_ratio: 0.01, min_rps: 5}
  ctr: {p99_ms: 50}
total: {max_error_ratio: 0.01, min_rps: 10}
"""


def write(tmp_path: Path, text: str, name: str = "slo.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_shipped_slo_files_are_valid_and_covered_by_their_mix(environment: str) -> None:
    slo = load_slo(slo_path(environment))
    mix = load_yaml_model(mix_path(environment), TaskMix, "task mix")
    check_coverage(slo, mix, slo_file=slo_path(environment), mix_file=mix_path(environment))
    assert slo.environment == environment
    assert {"digits", "ctr"} <= set(slo.models)


def test_good_file(tmp_path: Path) -> None:
    slo = load_slo(write(tmp_path, GOOD))
    assert slo.models["digits"].thresholds() == {
        "p50_ms": 10,
        "p95_ms": 20,
        "p99_ms": 30,
        "max_error_ratio": 0.01,
        "min_rps": 5,
    }
    assert slo.total is not None and slo.total.thresholds() == {
        "max_error_ratio": 0.01,
        "min_rps": 10,
    }


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (GOOD.replace("p95_ms: 20", "p95_ms: -20"), "models.digits.p95_ms", "greater than 0"),
        (GOOD.replace("p95_ms: 20", "p95_ms: fast"), "models.digits.p95_ms", "'fast'"),
        (
            GOOD.replace("p99_ms: 30", "p99_ms: 5"),
            "models.digits",
            "p95_ms (20) is above p99_ms (5)",
        ),
        (
            GOOD.replace("max_error_ratio: 0.01, min", "max_error_ratio: 2, min"),
            "models.digits.max_error_ratio",
            "less than or equal to 1",
        ),
        (GOOD.replace("min_rps: 10", "min_rps: .nan"), "total.min_rps", "finite"),
        (GOOD.replace("p99_ms: 50", "p99_msec: 50"), "models.ctr.p99_msec", "unknown key"),
        (GOOD.replace("ctr: {p99_ms: 50}", "ctr: {}"), "models.ctr", "no thresholds"),
        (GOOD.replace("total:", "totals:"), "totals", "unknown key"),
        ("environment: x\n", "models", "Field required"),
        ("environment: x\nmodels: {}\n", "models", "at least 1 item"),
    ],
)
def test_invalid_values_name_file_key_and_reason(
    tmp_path: Path, text: str, key: str, reason: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(LoadTestConfigError) as caught:
        load_slo(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: "), message
    assert f"{key}: " in message, message
    assert reason in message, message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(LoadTestConfigError, match=r"SLO file .*nope\.yaml: no such file"):
        load_slo(tmp_path / "nope.yaml")


def test_yaml_syntax_error_names_line(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  digits: {p50_ms: 10\n  ctr: [\n")
    with pytest.raises(LoadTestConfigError, match=r"not valid YAML \(line \d+, column \d+\)"):
        load_slo(path)


def test_duplicate_key_is_refused_not_silently_overwritten(tmp_path: Path) -> None:
    path = write(tmp_path, "models:\n  digits: {p99_ms: 10}\n  digits: {p99_ms: 99999}\n")
    with pytest.raises(LoadTestConfigError, match=r"\(line 3, column 3\): duplicate key 'digits'"):
        load_slo(path)


def test_not_a_mapping(tmp_path: Path) -> None:
    with pytest.raises(LoadTestConfigError, match=r"must be a mapping .* got list"):
        load_slo(write(tmp_path, "- p99_ms: 10\n"))


def test_config_errors_are_project_errors() -> None:
    assert issubclass(LoadTestConfigError, TritonDeployError)


DIGITS = "triton_deploy.build.examples.digits.payloads:DigitsWorkload"


@pytest.mark.parametrize("model", ["digits_cnn", "ctr_model"])
def test_coverage_refuses_objectives_for_a_model_the_mix_never_calls(model: str) -> None:
    """Also the check that catches a typo in a model name: the SLO file names no fixed list."""
    slo = SloSpec.model_validate({"models": {model: {"p99_ms": 10}}})
    mix = TaskMix.model_validate(
        {"workloads": {"digits": {"workload": DIGITS, "tasks": {"cnn_direct": 0}}}}
    )
    with pytest.raises(
        LoadTestConfigError, match=rf"models\.{model}: has objectives, but the task mix"
    ):
        check_coverage(slo, mix, slo_file=Path("s.yaml"), mix_file=Path("m.yaml"))


# -- the verdict -------------------------------------------------------------------------------
def numbers(
    requests: int = 1000,
    failures: int = 0,
    p50: float = 5,
    p95: float = 15,
    p99: float = 25,
    rps: float = 100,
) -> Measured:
    return Measured(requests, failures, p50, p95, p99, rps)


def test_all_met(tmp_path: Path) -> None:
    slo = load_slo(write(tmp_path, GOOD))
    report = evaluate(
        slo,
        {"digits": numbers(), "ctr": numbers(p99=50)},  # a limit is inclusive
        numbers(requests=2000, rps=200),
        source="slo.yaml",
    )
    assert report.passed
    # 5 + 1 + 2 thresholds from the file, plus exceptions in user code.
    assert [c.key for c in report.checks] == [
        "models.digits.p50_ms",
        "models.digits.p95_ms",
        "models.digits.p99_ms",
        "models.digits.max_error_ratio",
        "models.digits.min_rps",
        "models.ctr.p99_ms",
        "total.max_error_ratio",
        "total.min_rps",
        "exceptions_in_user_code",
    ]
    assert report.table().splitlines()[-1] == "SLO passed: all 9 thresholds met"


def test_each_kind_of_violation(tmp_path: Path) -> None:
    slo = load_slo(write(tmp_path, GOOD))
    report = evaluate(
        slo,
        {"digits": numbers(failures=20, p99=31, rps=4.5), "ctr": numbers()},
        numbers(requests=2000, failures=20, rps=9.9),
        source="slo.yaml",
        exceptions=2,
    )
    assert not report.passed
    failed = {c.key: c for c in report.violations}
    assert set(failed) == {
        "models.digits.p99_ms",
        "models.digits.max_error_ratio",
        "models.digits.min_rps",
        "total.min_rps",
        "exceptions_in_user_code",
    }
    assert failed["models.digits.p99_ms"].line() == (
        "models.digits.p99_ms: FAIL, measured 31 ms, limit <= 30 ms"
    )
    assert failed["models.digits.max_error_ratio"].line() == (
        "models.digits.max_error_ratio: FAIL, measured 2 %, limit <= 1 %"
    )
    assert failed["models.digits.min_rps"].line() == (
        "models.digits.min_rps: FAIL, measured 4.5 req/s, limit >= 5 req/s"
    )
    assert failed["exceptions_in_user_code"].line() == (
        "exceptions_in_user_code: FAIL, measured 2, limit = 0"
    )
    # The total's error ratio is 1 %: on the limit, so it passes.
    assert not any(c.key == "total.max_error_ratio" for c in report.violations)


def test_a_model_without_requests_fails_every_threshold(tmp_path: Path) -> None:
    slo = load_slo(write(tmp_path, GOOD))
    report = evaluate(slo, {"digits": numbers()}, numbers(), source="slo.yaml")
    ctr = [c for c in report.checks if c.key.startswith("models.ctr.")]
    assert ctr and all(not c.passed and c.measured_text() == "no requests" for c in ctr)


def test_summary_table(tmp_path: Path) -> None:
    slo = load_slo(write(tmp_path, GOOD))
    report = evaluate(
        slo,
        {"digits": numbers(p99=31), "ctr": numbers()},
        numbers(requests=2000, rps=250.04),
        source="loadtests/slo/test.yaml",
    )
    lines = report.table().splitlines()
    assert lines[0] == "SLO check [test]: loadtests/slo/test.yaml"
    assert re.fullmatch(r"  threshold +limit +measured +result", lines[1])
    assert re.fullmatch(r"  -+  -+  -+  -+", lines[2])
    rows = {line.split()[0]: line.split(None, 1)[1] for line in lines[3:-1]}
    assert re.fullmatch(r"<= 30 ms +31 ms +FAIL", rows["models.digits.p99_ms"])
    assert re.fullmatch(r"<= 10 ms +5 ms +pass", rows["models.digits.p50_ms"])
    assert re.fullmatch(r"<= 1 % +0 % +pass", rows["models.digits.max_error_ratio"])
    assert re.fullmatch(r">= 10 req/s +250.0 req/s +pass", rows["total.min_rps"])
    assert re.fullmatch(r"= 0 +0 +pass", rows["exceptions_in_user_code"])
    assert lines[-1] == "SLO FAILED: 1 of 9 thresholds violated: models.digits.p99_ms"
    # Columns line up: every row is as wide as the header's columns.
    starts = [lines[1].index(word) for word in ("limit", "measured", "result")]
    for line in lines[3:-1]:
        assert all(line[s - 2 : s] == "  " and line[s] != " " for s in starts), line


def test_exit_code_for_a_violation_is_the_documented_3() -> None:
    """3: locust itself exits 1 when requests failed and 2 on a crash; the load-test guide and the CLI's
    help promise 3 for a violated SLO (the end-to-end exit codes: test_server_loadtest.py)."""
    assert EXIT_SLO_VIOLATED == 3
    root = Path(__file__).resolve().parents[2]
    guide = (root / "docs" / "guides" / "load-tests.md").read_text()  # the README links to it
    assert "3: an SLO violated" in guide
