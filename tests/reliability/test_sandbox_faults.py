"""The sandbox's test-only 429 injection (``SANDBOX_SEND_429_RATE``) that the fault suite relies on."""

from __future__ import annotations

import itertools

import pytest

from gateway.domain.failures import FailureKind
from gateway.media_store import MediaStore
from gateway.providers.base import SendError
from gateway.providers.sandbox import SandboxProvider
from gateway.settings import GatewaySettings
from parley_shared.clock import ManualClock
from parley_shared.settings import ConfigurationError
from parley_shared.shutdown import Drains


def _calls(provider: SandboxProvider, n: int) -> list[SendError | None]:
    out: list[SendError | None] = []
    for _ in range(n):
        try:
            provider._inject_429()
        except SendError as exc:
            out.append(exc)
        else:
            out.append(None)
    return out


@pytest.mark.parametrize(("rate", "expected"), [(0.0, 0), (0.2, 20), (1 / 3, 33), (0.5, 50)])
def test_the_injected_share_is_exact_and_spread(rate: float, expected: int) -> None:
    provider = SandboxProvider(
        None,  # type: ignore[arg-type]
        ManualClock(),
        1024,
        store=MediaStore("unused"),
        drains=Drains(),
        failure_rate=rate,
    )
    results = _calls(provider, 100)
    failures = [r for r in results if r is not None]
    assert len(failures) == expected == provider.refused
    # never two refusals in a row below one half: a message's retry gets through
    assert not any(a is not None and b is not None for a, b in itertools.pairwise(results))


def test_an_injected_429_is_transient_and_carries_retry_after() -> None:
    provider = SandboxProvider(
        None, ManualClock(), 1024, store=MediaStore("unused"), drains=Drains(), failure_rate=0.5, retry_after_s=1.5
    )  # type: ignore[arg-type]
    failure = next(r for r in _calls(provider, 2) if r is not None).failure
    assert failure.kind is FailureKind.TRANSIENT and failure.code == "429" and failure.retry_after_s == 1.5


def test_production_refuses_the_injection() -> None:
    with pytest.raises(ConfigurationError, match="SANDBOX_SEND_429_RATE"):
        GatewaySettings(  # type: ignore[call-arg]
            app_env="production",
            api_token="Zq8-w3xV_r7Lp2sK-9yT",
            erasure_key="erasure-key-0123456789abcdef",
            sandbox_send_429_rate=0.2,
        )
    assert GatewaySettings(app_env="test", sandbox_send_429_rate=0.2).sandbox_send_429_rate == 0.2  # type: ignore[call-arg]
