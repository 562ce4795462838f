"""tune's spec edit: the winner's keys change, comments and everything else stay."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from triton_deploy.bench.payloads import BenchError
from triton_deploy.bench.tune import Candidate, apply_candidate, baseline_candidate, update_spec
from triton_deploy.build.spec import load_spec
from triton_deploy.runtime.repository import read_config

ROOT = Path(__file__).resolve().parents[2]


def _spec_copy(tmp_path: Path) -> tuple[Path, str]:
    spec = tmp_path / "models.yaml"
    shutil.copy(ROOT / "build" / "models.yaml", spec)
    data = yaml.safe_load(spec.read_text())
    name = next(
        m["name"] for m in data["models"] if m.get("dynamic_batching") and m.get("instance_group")
    )
    return spec, name


def test_update_spec_changes_only_the_tuned_keys(tmp_path: Path) -> None:
    spec, name = _spec_copy(tmp_path)
    before_data = yaml.safe_load(spec.read_text())
    winner = Candidate(
        max_queue_delay_microseconds=123,
        preferred_batch_size=(8, 16),
        max_batch_size=32,
        instances=2,
    )
    before, after = update_spec(spec, name, winner)
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(line in after.splitlines() for line in comments)
    after_data = yaml.safe_load(after)
    entry = next(m for m in after_data["models"] if m["name"] == name)
    assert entry["dynamic_batching"]["max_queue_delay_microseconds"] == 123
    assert entry["dynamic_batching"]["preferred_batch_size"] == [8, 16]
    assert entry["max_batch_size"] == 32
    assert entry["instance_group"][0]["count"] == 2
    others = [m for m in after_data["models"] if m["name"] != name]
    assert others == [m for m in before_data["models"] if m["name"] != name]
    (tmp_path / "after.yaml").write_text(after)
    load_spec(tmp_path / "after.yaml")  # still a valid spec


def test_update_spec_refuses_an_unknown_model(tmp_path: Path) -> None:
    spec, _ = _spec_copy(tmp_path)
    with pytest.raises(BenchError, match="'nope' is not declared in"):
        update_spec(spec, "nope", Candidate(0, (), 8, 1))


def test_apply_candidate_keeps_warmups_that_fit(user_repository: Path) -> None:
    config = read_config(user_repository / "tiny_onnx" / "config.pbtxt")
    config.model_warmup.add(name="big", batch_size=32)
    config.model_warmup.add(name="small", batch_size=1)
    changed = apply_candidate(config, Candidate(0, (4,), 8, 2))
    assert changed.max_batch_size == 8
    assert list(changed.dynamic_batching.preferred_batch_size) == [4]
    assert changed.dynamic_batching.max_queue_delay_microseconds == 0
    assert changed.instance_group[0].count == 2
    assert [w.name for w in changed.model_warmup] == ["small"]
    assert baseline_candidate(config) == Candidate(200, (16,), 32, 1)
