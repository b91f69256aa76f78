"""RetryPolicy: pure delays and decisions."""

import math

import pytest

from trioflow import RetryPolicy
from trioflow._retry import as_retry_policy


def test_delays_grow_exponentially_and_are_capped() -> None:
    """Retry k waits min(max_delay, delay * backoff**(k-1))."""
    policy = RetryPolicy(max_retries=10, delay=1.0, backoff=2.0, max_delay=10.0)
    assert [policy.delay_for(k) for k in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]


def test_huge_retry_numbers_do_not_overflow() -> None:
    """A float overflow in backoff**k is capped at max_delay, not an error."""
    policy = RetryPolicy(max_retries=5000, delay=1.0, backoff=10.0, max_delay=7.0)
    assert policy.delay_for(4000) == 7.0


def test_jitter_stays_within_its_band() -> None:
    """jitter=0.5 scales the delay by a factor within [0.5, 1.5], driven by the given source."""
    policy = RetryPolicy(delay=2.0, jitter=0.5)
    assert policy.delay_for(1, lambda: 0.0) == 1.0
    assert policy.delay_for(1, lambda: 0.5) == 2.0
    assert math.isclose(policy.delay_for(1, lambda: 0.999999), 3.0, rel_tol=1e-5)


def test_jitter_needs_a_random_source() -> None:
    with pytest.raises(ValueError, match="random source"):
        RetryPolicy(jitter=0.1).delay_for(1)


def test_should_retry_counts_and_filters_by_type() -> None:
    """Only errors matching retry_on are retried, and only max_retries times."""
    policy = RetryPolicy(max_retries=2, retry_on=(KeyError,))
    assert policy.should_retry(KeyError("x"), 0)
    assert policy.should_retry(KeyError("x"), 1)
    assert not policy.should_retry(KeyError("x"), 2)
    assert not policy.should_retry(ValueError("x"), 0)


def test_retry_on_accepts_a_single_type() -> None:
    assert RetryPolicy(retry_on=TimeoutError).retry_on == (TimeoutError,)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_retries": -1}, ValueError, "max_retries must be >= 0"),
        ({"max_retries": 1.5}, TypeError, "max_retries must be an int"),
        ({"max_retries": True}, TypeError, "max_retries must be an int"),
        ({"delay": -0.1}, ValueError, "delay must be >= 0"),
        ({"delay": math.nan}, ValueError, "delay must be >= 0"),
        ({"delay": "1"}, TypeError, "delay must be a number"),
        ({"backoff": 0.5}, ValueError, "backoff must be >= 1"),
        ({"max_delay": -1}, ValueError, "max_delay must be >= 0"),
        ({"jitter": 1.5}, ValueError, "jitter must be between 0 and 1"),
        ({"jitter": -0.1}, ValueError, "jitter must be >= 0"),
        ({"retry_on": (ValueError, "nope")}, TypeError, "retry_on must hold exception types"),
    ],
)
def test_bad_settings_are_refused(kwargs: dict, error: type, message: str) -> None:
    with pytest.raises(error, match=message):
        RetryPolicy(**kwargs)


def test_retry_argument_normalisation() -> None:
    """submit's retry= takes None, a count, or a policy."""
    assert as_retry_policy(None) is None
    assert as_retry_policy(0) is None
    assert as_retry_policy(3) == RetryPolicy(max_retries=3)
    policy = RetryPolicy(delay=5)
    assert as_retry_policy(policy) is policy
    with pytest.raises(ValueError, match="retry must be >= 0"):
        as_retry_policy(-1)
    with pytest.raises(TypeError, match="retry must be None, an int or a RetryPolicy"):
        as_retry_policy("3")  # type: ignore[arg-type]


def test_retry_on_takes_a_predicate() -> None:
    """A callable retry_on decides per error; one that raises counts as no."""

    def transient(error: BaseException) -> bool:
        if isinstance(error, KeyError):
            raise RuntimeError("predicate bug")
        return "retry me" in str(error)

    policy = RetryPolicy(max_retries=1, retry_on=transient)
    assert policy.should_retry(ValueError("please retry me"), 0)
    assert not policy.should_retry(ValueError("fatal"), 0)
    assert not policy.should_retry(KeyError("x"), 0)
    assert not policy.should_retry(ValueError("please retry me"), 1)


@pytest.mark.parametrize("name", ["delay", "max_delay"])
def test_infinite_delays_are_refused(name: str) -> None:
    """An infinite wait would keep the owning block from ever exiting."""
    with pytest.raises(ValueError, match=f"{name} must be finite"):
        RetryPolicy(**{name: math.inf})


def test_max_attempts_counts_the_first_attempt() -> None:
    assert RetryPolicy(max_retries=2).max_attempts == 3
