"""Task-mix files: the shipped ones, and what a wrong one is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from triton_deploy.loadtests import ENVIRONMENTS, LoadTestConfigError, TaskMix, mix_path
from triton_deploy.loadtests.config import load_yaml_model


def load(path: Path) -> TaskMix:
    return load_yaml_model(path, TaskMix, "task mix")


@pytest.mark.parametrize("environment", ENVIRONMENTS)
def test_shipped_mixes_are_valid(environment: str) -> None:
    mix = load(mix_path(environment))
    assert mix.digits.weight > 0 and mix.ctr.weight > 0
    assert 0 < mix.ctr.tail_share < 0.5  # unseen categories occur, but are not the norm


def test_staging_sends_no_direct_cnn_calls() -> None:
    assert load(mix_path("staging")).models_called() == {"digits", "ctr"}
    assert load(mix_path("local")).models_called() == {"digits", "digits_cnn", "ctr"}


def test_defaults_apply_to_missing_keys(tmp_path: Path) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text("ctr:\n  weight: 0\n")
    mix = load(path)
    assert mix.ctr.weight == 0 and mix.digits.tasks.one_image == 6
    assert mix.models_called() == {"digits", "digits_cnn"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("digits: {tasks: {one_imag: 3}}\n", "digits.tasks.one_imag: unknown key"),
        (
            "digits: {tasks: {one_image: -1}}\n",
            "digits.tasks.one_image: Input should be greater than or equal to 0",
        ),
        (
            "digits: {batch_size: [8, 2]}\n",
            "digits: batch_size must be [low, high] with low <= high",
        ),
        (
            "digits: {batch_size: [1, 65]}\n",
            "digits.batch_size.1: Input should be less than or equal to 64",
        ),
        ("ctr: {bulk_size: 1000}\n", "ctr.bulk_size: Input should be less than or equal to 256"),
        ("ctr: {tail_share: 1.5}\n", "ctr.tail_share: Input should be less than or equal to 1"),
        ("ctr: {tasks: {ad_request: 0, bulk_rescore: 0}}\n", "ctr: tasks: every weight is 0"),
        ("digits: {weight: 0}\nctr: {weight: 0}\n", "digits.weight and ctr.weight are both 0"),
        ("think_time_s: [1, 0.5]\n", "think_time_s must be [low, high]"),
    ],
)
def test_invalid_mix(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "mix.yaml"
    path.write_text(text)
    with pytest.raises(LoadTestConfigError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
