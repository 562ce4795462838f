"""tdeploy tune on the real server: reloads through the repository API, prints every point."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from triton_deploy.bench.payloads import BenchError
from triton_deploy.bench.tune import TuneOptions, run_tune
from triton_deploy.build.spec import load_spec

pytestmark = pytest.mark.server
ROOT = Path(__file__).resolve().parents[2]


def test_tune_a_user_model(user_repository: Path, tmp_path: Path) -> None:
    output = io.StringIO()
    options = TuneOptions(
        repository=user_repository,
        model="tiny_onnx",
        p99_ms=1000.0,
        concurrency=[2],
        seconds=0.3,
        delays=[0, 100],
        instances=[1],
        out=tmp_path,
        confirm_rounds=1,
    )
    result = run_tune(options, console=Console(file=output, width=200), load_spec=load_spec)
    text = output.getvalue()
    assert len(result.points) >= 4  # spec, two delays, preferred sizes
    assert text.count(" req/s ") >= len(result.points)
    assert result.winner.feasible
    assert (tmp_path / "tune.json").exists() and (tmp_path / "tune.png").stat().st_size > 5_000


def test_tune_leaves_a_deliberately_bad_configuration(
    user_repository: Path, tmp_path: Path
) -> None:
    """The spec's batching waits 300 ms for 16 requests that 2 clients never send: every
    request waits the whole delay, so its p99 is over the 150 ms bound whatever the machine
    does. The tuner must find a configuration that meets the bound and pick it."""
    repository = tmp_path / "repository"
    shutil.copytree(user_repository, repository)
    config = repository / "tiny_onnx" / "config.pbtxt"
    config.write_text(
        config.read_text().replace(
            "max_queue_delay_microseconds: 200", "max_queue_delay_microseconds: 300000"
        )
    )
    options = TuneOptions(
        repository=repository, model="tiny_onnx", p99_ms=150.0, concurrency=[2], seconds=1.5,
        delays=[0, 100], instances=[1], out=tmp_path / "out", confirm_rounds=1,
    )  # fmt: skip
    result = run_tune(options, console=Console(file=io.StringIO()))
    assert result.baseline.candidate.max_queue_delay_microseconds == 300000
    # over the bound (or no request both sent and answered inside the window: NaN)
    assert not result.baseline.feasible and not result.baseline.p99_ms < 150.0
    assert result.winner.candidate.max_queue_delay_microseconds in (0, 100)
    assert result.winner.feasible and result.winner.throughput > result.baseline.throughput


def test_tune_writes_a_valid_spec_or_leaves_it(model_repository: Path, tmp_path: Path) -> None:
    spec = tmp_path / "models.yaml"
    shutil.copy(ROOT / "build" / "models.yaml", spec)
    name = next(
        m.name for m in load_spec(spec).models
        if "dynamic_batching" in m.model_fields_set and m.backend in ("fil", "onnxruntime")
    )  # fmt: skip
    before = spec.read_text()
    options = TuneOptions(
        repository=model_repository, model=name, p99_ms=1000.0, spec=spec, concurrency=[4],
        seconds=0.3, delays=[0], instances=[1], out=tmp_path, confirm_rounds=1,
    )  # fmt: skip
    result = run_tune(options, console=Console(file=io.StringIO()))
    if result.written:
        assert result.diff.startswith("---") and spec.read_text() != before
        load_spec(spec)
    else:
        assert spec.read_text() == before


def test_tune_refuses_what_it_cannot_tune(user_repository: Path, tmp_path: Path) -> None:
    with pytest.raises(BenchError, match=r"spec file .* not found"):
        run_tune(
            TuneOptions(
                repository=user_repository, model="tiny_onnx", p99_ms=5, spec=tmp_path / "no.yaml"
            )
        )
