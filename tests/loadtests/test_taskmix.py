"""Task-mix files: the shipped ones, workloads by import path or golden cases, and what a wrong
one is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_deploy.build.examples.ctr.payloads import CtrWorkload
from triton_deploy.build.examples.digits.payloads import DigitsWorkload
from triton_deploy.loadtests import (
    ENVIRONMENTS,
    GoldenWorkload,
    LoadTestConfigError,
    TaskMix,
    mix_path,
)
from triton_deploy.loadtests.config import load_yaml_model

DIGITS = "triton_deploy.build.examples.digits.payloads:DigitsWorkload"
CTR = "triton_deploy.build.examples.ctr.payloads:CtrWorkload"


def load(path: Path) -> TaskMix:
    return load_yaml_model(path, TaskMix, "task mix")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_shipped_mixes_are_valid(environment: str) -> None:
    mix = load(mix_path(environment))
    assert mix.workloads["digits"].cls is DigitsWorkload
    assert mix.workloads["ctr"].cls is CtrWorkload
    ctr = mix.workloads["ctr"].parsed_options
    assert 0 < ctr.tail_share < 0.5  # type: ignore[attr-defined]  # unseen categories occur


def test_staging_sends_no_direct_cnn_calls() -> None:
    assert load(mix_path("staging")).models_called() == {"digits", "ctr"}
    assert load(mix_path("local")).models_called() == {"digits", "digits_cnn", "ctr"}


def test_defaults_apply_to_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text(
        f"workloads:\n  d: {{workload: '{DIGITS}'}}\n  c: {{workload: '{CTR}', weight: 0}}\n"
    )
    mix = load(path)
    assert mix.workloads["d"].task_weights == {"one_image": 6, "image_batch": 3, "cnn_direct": 1}
    assert mix.workloads["d"].parsed_options.batch_size == (2, 16)  # type: ignore[attr-defined]
    assert mix.models_called() == {"digits", "digits_cnn"}
    assert list(mix.active()) == ["d"]


def test_golden_workload_takes_any_model(tmp_path: Path) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text("workloads:\n  mine: {golden: my_model, options: {batch_size: [1, 8]}}\n")
    mix = load(path)
    entry = mix.workloads["mine"]
    assert entry.cls is GoldenWorkload and mix.models_called() == {"my_model"}
    assert entry.parsed_options.model == "my_model"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            f"workloads: {{d: {{workload: '{DIGITS}', tasks: {{one_imag: 3}}}}}}\n",
            "workloads.d: tasks: unknown task 'one_imag'; DigitsWorkload has "
            "one_image, image_batch, cnn_direct",
        ),
        (
            f"workloads: {{d: {{workload: '{DIGITS}', tasks: {{one_image: -1}}}}}}\n",
            "workloads.d.tasks.one_image: Input should be greater than or equal to 0",
        ),
        (
            f"workloads: {{d: {{workload: '{DIGITS}', options: {{batch_size: [8, 2]}}}}}}\n",
            "workloads.d: options: batch_size must be [low, high] with low <= high",
        ),
        (
            f"workloads: {{d: {{workload: '{DIGITS}', options: {{batch_size: [1, 65]}}}}}}\n",
            "workloads.d: options.batch_size.1: Input should be less than or equal to 64",
        ),
        (
            f"workloads: {{c: {{workload: '{CTR}', options: {{bulk_size: 1000}}}}}}\n",
            "workloads.c: options.bulk_size: Input should be less than or equal to 256",
        ),
        (
            f"workloads: {{c: {{workload: '{CTR}', options: {{tail_shares: 0.1}}}}}}\n",
            "workloads.c: options.tail_shares: unknown option",
        ),
        (
            f"workloads: {{c: {{workload: '{CTR}', tasks: {{ad_request: 0, bulk_rescore: 0}}}}}}\n",
            "tasks: every weight is 0",
        ),
        (
            f"workloads: {{d: {{workload: '{DIGITS}', weight: 0}}}}\n",
            "workloads: every weight is 0",
        ),
        ("workloads: {x: {workload: 'no.such.module:Thing'}}\n", "cannot import 'no.such.module'"),
        ("workloads: {x: {workload: 'json:dumps'}}\n", "'json:dumps' is not a Workload subclass"),
        ("workloads: {x: {weight: 1}}\n", "give either workload: package.module:Class or golden"),
        ("workloads: {}\n", "workloads: Dictionary should have at least 1 item"),
        (f"think_time_s: [1, 0.5]\nworkloads: {{d: {{workload: '{DIGITS}'}}}}\n", "think_time_s"),
        ("digits: {weight: 1}\n", "digits: unknown key"),
    ],
)
def test_invalid_mix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text(text)
    with pytest.raises(LoadTestConfigError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value), str(caught.value)
