"""How a batch run's driver JVM is started for its size (jobs/adapters/session.py): the JIT's
first tier only for a run of few raw rows, the user's JVM options left to win."""

from __future__ import annotations

import pytest

from jobs.adapters.session import (
    FIRST_TIER_JIT_MAX_ROWS,
    GATEWAY_PORT,
    SUBMIT_OPTS,
    driver_jvm_options,
)

PROJECT_OPTS = "-XX:+UseParallelGC -XX:Tier4InvocationThreshold=50000"


@pytest.mark.parametrize("rows", [0, 1_000, FIRST_TIER_JIT_MAX_ROWS])
def test_a_small_run_starts_its_jvm_with_the_first_tier_before_the_options_given(
    rows: int,
) -> None:
    options = driver_jvm_options({SUBMIT_OPTS: PROJECT_OPTS}, rows)
    assert options == (f"-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m {PROJECT_OPTS}")


def test_without_options_given_the_first_tier_is_all() -> None:
    assert driver_jvm_options({}, 10) == "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=240m"


@pytest.mark.parametrize("rows", [FIRST_TIER_JIT_MAX_ROWS + 1, 10_000_000, None])
def test_a_large_run_or_one_of_unknown_size_keeps_the_tiered_jit(rows: int | None) -> None:
    assert driver_jvm_options({SUBMIT_OPTS: PROJECT_OPTS}, rows) is None


@pytest.mark.parametrize("level", ["1", "4"])
def test_a_jit_tier_the_user_chose_is_kept(level: str) -> None:
    env = {SUBMIT_OPTS: f"{PROJECT_OPTS} -XX:TieredStopAtLevel={level}"}
    assert driver_jvm_options(env, 10) is None


def test_a_jvm_already_running_is_left_alone() -> None:
    # spark-submit started the JVM first (other masters, the stream): nothing to choose.
    assert driver_jvm_options({SUBMIT_OPTS: PROJECT_OPTS, GATEWAY_PORT: "40111"}, 10) is None
