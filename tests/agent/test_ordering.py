"""Which waiting messages a turn may answer (domain/ordering.py): pure, no services."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from agent_service.domain.ordering import Waiting, missing_links, readiness

NOW = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
WAIT = timedelta(seconds=30)


def w(message_id: str, previous: str | None, age_s: float = 0.0) -> Waiting:
    return Waiting(message_id, previous, NOW - timedelta(seconds=age_s))


def test_a_complete_chain_is_answered_whole() -> None:
    waiting = [w("b", "a"), w("c", "b")]
    assert missing_links(waiting) == {"a"}
    verdict = readiness(waiting, {"a"}, now=NOW, max_wait=WAIT)
    assert verdict.ready == ("b", "c") and verdict.held == () and verdict.retry_at is None


def test_what_follows_a_missing_message_waits_until_the_wait_ends() -> None:
    waiting = [w("b", "a"), w("d", "c", age_s=10), w("e", "d")]
    verdict = readiness(waiting, {"a"}, now=NOW, max_wait=WAIT)
    assert verdict.ready == ("b",) and verdict.held == ("d", "e")
    assert verdict.retry_at == NOW + timedelta(seconds=20)  # the oldest held message's wait


def test_after_the_wait_everything_is_answered_and_the_gap_reported() -> None:
    waiting = [w("d", "c", age_s=31), w("e", "d")]
    verdict = readiness(waiting, set(), now=NOW, max_wait=WAIT)
    assert verdict.ready == ("d", "e") and verdict.held == () and verdict.expired == ("d", "e")


def test_messages_without_links_never_wait() -> None:
    """An older gateway names no predecessor; a cycle (never made by a gateway) holds nothing."""
    assert readiness([w("x", None), w("y", None)], set(), now=NOW, max_wait=WAIT).ready == ("x", "y")
    assert readiness([w("p", "q"), w("q", "p")], set(), now=NOW, max_wait=WAIT).ready == ("p", "q")


@given(
    st.integers(min_value=1, max_value=12).flatmap(
        lambda n: st.tuples(st.permutations(list(range(n))), st.lists(st.booleans(), min_size=n, max_size=n))
    )
)
def test_any_arrival_order_is_answered_in_sending_order(case: tuple[list[int], list[bool]]) -> None:
    """Messages 0..n-1 of one contact arrive in any order; a turn may run after any arrival. What
    the turns answer, concatenated, is the sending order -- and at the end nothing is left."""
    arrival, turn_after = case
    n = len(arrival)
    recorded: set[int] = set()
    answered: list[int] = []

    def turn() -> None:
        pending = sorted(recorded - set(answered))  # pending in sending order, as the turn reads them
        waiting = [w(f"m{i}", f"m{i - 1}" if i else None) for i in pending]
        found = {link for link in missing_links(waiting) if int(link[1:]) in recorded}
        verdict = readiness(waiting, found, now=NOW, max_wait=WAIT)
        answered.extend(int(message_id[1:]) for message_id in verdict.ready)

    for index, run in zip(arrival, turn_after, strict=True):
        recorded.add(index)
        if run:
            turn()
    turn()
    assert answered == list(range(n))
