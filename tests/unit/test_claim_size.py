"""The worker's claim size (adapters.pg_backend.claimer.ClaimSize): pure logic, plain values."""
from __future__ import annotations

from adapters.pg_backend.claimer import ClaimSize


def sizes_after(claim: ClaimSize, batches: list[list[float]]) -> list[int]:
    out = []
    for batch in batches:
        for seconds in batch:
            claim.observe(seconds)
        claim.grow()
        out.append(claim.size)
    return out


def test_starts_at_one_and_doubles_to_the_batch_while_jobs_are_near_instant():
    claim = ClaimSize(batch=100, budget=0.02, slow=0.05)
    assert claim.size == 1
    assert sizes_after(claim, [[0.0001] * n for n in (1, 2, 4, 8, 16, 32, 64, 100)]) == [2, 4, 8, 16, 32, 64, 100, 100]


def test_a_slow_job_drops_the_claim_to_one_and_says_so():
    claim = ClaimSize(batch=100, budget=0.02, slow=0.05)
    sizes_after(claim, [[0.0001] * 64])
    assert claim.observe(0.5) is True
    claim.grow()
    assert claim.size == 1
    assert sizes_after(claim, [[0.5], [0.5]]) == [1, 1]


def test_one_preempted_no_op_hardly_changes_the_claim():
    claim = ClaimSize(batch=100, budget=0.02, slow=0.05)
    sizes_after(claim, [[0.0001] * n for n in (1, 2, 4, 8, 16, 32, 64)])
    assert claim.observe(0.008) is False  # 8 ms: the OS ran someone else
    assert sizes_after(claim, [[0.0001] * 99]) == [100]


def test_jobs_of_a_few_milliseconds_are_claimed_a_few_at_a_time():
    claim = ClaimSize(batch=100, budget=0.02, slow=0.05)
    sizes = sizes_after(claim, [[0.01] * 4] * 40)
    assert sizes[-1] == 2  # 20 ms of work: two 10 ms jobs


def test_an_empty_claim_starts_over_at_one():
    claim = ClaimSize(batch=100, budget=0.02, slow=0.05)
    sizes_after(claim, [[0.0001] * n for n in (1, 2, 4, 8)])
    claim.reset()
    assert claim.size == 1
