"""The examples' load-test payloads (build/examples/*/payloads.py): the digits held-out split
without torch, and page views of impressions; and the workload cycle that assigns them."""

from __future__ import annotations

import random

import numpy as np
import pytest

from triton_deploy.build.examples.ctr.ctr_data import CATEGORIES
from triton_deploy.build.examples.ctr.payloads import impression_pool, page_view
from triton_deploy.build.examples.digits.payloads import digits_images
from triton_deploy.loadtests import TaskMix


@pytest.mark.parametrize("seed", [0, 7])
def test_digits_images_are_the_recipes_held_out_split(seed: int) -> None:
    pytest.importorskip("torch")  # the recipe module imports it; ours must not need it
    from triton_deploy.build.examples.digits.recipe import load_splits

    expected = load_splits(seed).test_images
    images = digits_images(seed)
    assert images.dtype == np.uint8 and images.shape == (360, 8, 8)
    np.testing.assert_array_equal(images, expected)
    assert not images.flags.writeable  # shared by every simulated user


def test_impression_pool_has_a_realistic_tail_of_unseen_categories() -> None:
    pool = impression_pool(4096, seed=0, tail_share=0.05)
    values = [row["site_category"] for row in pool]
    unseen = sum(value not in CATEGORIES["site_category"] for value in values) / len(values)
    assert 0.03 < unseen < 0.07
    assert impression_pool(4096, seed=0, tail_share=0.05) is pool  # built once per process


def test_page_view_is_one_user_on_one_page_with_several_ads() -> None:
    pool = impression_pool(4096, seed=0, tail_share=0.05)
    records = page_view(pool, random.Random(1), 6)
    assert len(records) == 6
    for field in ("hour_of_day", "user_age", "device_type", "site_category", "country"):
        assert len({r[field] for r in records}) == 1, field
    assert [r["ad_position"] for r in records] == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
    assert len({(r["ad_category"], r["bid_floor"]) for r in records}) > 1
    assert set(records[0]) == set(pool[0])  # the ensemble's eight input fields, no more


def test_users_get_workloads_in_proportion_to_their_weights() -> None:
    # (not through loadtests.users: importing locust would monkey-patch this test process)
    from triton_deploy.loadtests.taskmix import workload_cycle

    golden = {"golden": "m"}
    mix = TaskMix.model_validate(
        {
            "workloads": {
                "a": {**golden, "weight": 1},
                "b": {**golden, "weight": 3},
                "c": {**golden, "weight": 0},
            }
        }
    )
    cycle = workload_cycle(mix)
    # 3:1, interleaved: even a run with 2 users sends both workloads
    assert cycle == ["b", "a", "b", "b"]
