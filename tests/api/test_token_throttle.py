"""Failed bearer tokens per address (api/throttle.py): past the limit, the address's bearer
requests are answered 429 with Retry-After, the token unchecked; other addresses go on."""

import logging
import threading
import time
import uuid

import pytest
from django.test import Client

from tests.api.conftest import error_code
from tests.conftest import missing_service

HERE, ELSEWHERE = "10.1.1.1", "10.2.2.2"
LIMIT, WINDOW = 5, 300
MODELS = "/api/v1/orgs/acme/models"
REDIS = "redis://127.0.0.1:6379/11"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.API_TOKEN_FAILURE_LIMIT = LIMIT
    settings.API_TOKEN_FAILURE_WINDOW = WINDOW


@pytest.fixture(params=["memory", "redis"])
def shared_cache(request, settings):
    """The per-process cache of the embedded default, and Redis (CACHE_URL), each under a
    prefix of its own so that no other test run's keys are touched."""
    if request.param == "redis":
        import redis

        try:
            redis.Redis.from_url(REDIS, socket_connect_timeout=1).ping()
        except (redis.RedisError, OSError):
            missing_service(f"needs Redis, which does not answer at {REDIS}")
        settings.CACHES = {
            "default": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": REDIS,
                "KEY_PREFIX": f"test-{uuid.uuid4().hex}",
            }
        }
    return request.param


def call(token: str, address: str, path: str = MODELS):
    return Client().get(path, headers={"Authorization": f"Bearer {token}"}, REMOTE_ADDR=address)


def test_it_answers_a_wrong_token_401_below_the_limit(cast, alice_token):
    for _ in range(LIMIT - 1):
        assert call("mv_wrong", HERE).status_code == 401

    assert call(alice_token, HERE).status_code == 200


def test_it_refuses_the_address_past_the_limit_without_checking_the_token(
    cast, alice_token, django_assert_num_queries
):
    for _ in range(LIMIT):
        assert call("mv_wrong", HERE).status_code == 401

    with django_assert_num_queries(0):  # not even the token's lookup
        refused = call(alice_token, HERE)

    assert refused.status_code == 429
    assert error_code(refused) == "throttled"
    retry_after = int(refused["Retry-After"])
    assert 0 < retry_after <= WINDOW
    assert refused.json()["error"]["details"] == {"retry_after": retry_after}
    assert "too many failed API tokens" in refused.json()["error"]["message"]
    assert call("mv_wrong", HERE).status_code == 429
    # A valid token from another address is unaffected, and so is a wrong one (401).
    assert call(alice_token, ELSEWHERE).status_code == 200
    assert call("mv_wrong", ELSEWHERE).status_code == 401


def test_it_counts_every_kind_of_failed_token(cast, alice, alice_token):
    from registry.models import ApiToken
    from registry.services.tokens import token_create, token_revoke

    revoked, raw = token_create(actor=alice, user=alice, name="old")
    token_revoke(actor=alice, token=revoked)
    assert ApiToken.objects.get(pk=revoked.pk).revoked_at is not None
    for token in [raw, "not-even-a-token", "mv_unknown", raw, "x" * 300]:
        assert call(token, HERE).status_code == 401

    assert call(alice_token, HERE).status_code == 429


def test_it_opens_the_address_again_after_the_window(cast, alice_token, monkeypatch):
    for _ in range(LIMIT):
        call("mv_wrong", HERE)
    assert call(alice_token, HERE).status_code == 429

    later = time.time() + WINDOW + 1
    monkeypatch.setattr(time, "time", lambda: later)  # the clock, for the cache and the limit

    assert call(alice_token, HERE).status_code == 200
    for _ in range(LIMIT - 1):
        assert call("mv_wrong", HERE).status_code == 401  # a new window, counted from zero
    assert call(alice_token, HERE).status_code == 200


def test_it_counts_wrong_tokens_only(cast, alice_token, alice_client):
    for _ in range(LIMIT * 2):
        assert call(alice_token, HERE).status_code == 200
    # No Authorization header at all, or a session: nothing to count.
    for _ in range(LIMIT * 2):
        assert Client().get(MODELS, REMOTE_ADDR=HERE).status_code == 401
    assert alice_client.get(MODELS, REMOTE_ADDR=HERE).status_code == 200

    assert call(alice_token, HERE).status_code == 200


def test_it_logs_the_block_once(cast, caplog):
    caplog.set_level(logging.WARNING, logger="modelvault.security")
    for _ in range(LIMIT + 3):
        call("mv_wrong", HERE)

    lines = [r.getMessage() for r in caplog.records if r.name == "modelvault.security"]
    assert lines == [f"API tokens blocked: address={HERE} failures={LIMIT} window={WINDOW}s"]


def test_it_counts_the_client_behind_a_trusted_proxy(cast, settings, alice_token):
    settings.TRUSTED_PROXY_COUNT = 1

    def via_proxy(token: str, forwarded: str):
        return Client().get(
            MODELS,
            headers={"Authorization": f"Bearer {token}", "X-Forwarded-For": forwarded},
            REMOTE_ADDR="10.0.0.1",
        )

    for i in range(LIMIT):
        via_proxy("mv_wrong", f"6.6.6.{i}, {HERE}")

    assert via_proxy(alice_token, HERE).status_code == 429
    assert via_proxy(alice_token, ELSEWHERE).status_code == 200


def burst(n: int, address: str) -> list[int]:
    """n requests with a wrong token from `address`, all at once (the token is refused
    before any database query, so the threads meet in the cache only)."""
    statuses: list[int] = [0] * n
    barrier = threading.Barrier(n)

    def run(i: int) -> None:
        barrier.wait(timeout=30)
        statuses[i] = call("not-a-token", address).status_code

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return statuses


def test_it_counts_each_failure_of_a_parallel_burst_once(cast, settings, shared_cache):
    # A limit of the burst's size and one: a lost count would leave the address open after
    # the last failure, a double one would close it before.
    n = 30
    settings.API_TOKEN_FAILURE_LIMIT = n
    assert burst(n - 1, HERE) == [401] * (n - 1)
    assert call("not-a-token", HERE).status_code == 401

    assert call("not-a-token", HERE).status_code == 429


def test_it_blocks_after_a_parallel_burst_of_a_hundred(cast, shared_cache, alice_token):
    statuses = burst(100, HERE)

    # Requests checked before the limit was reached are answered 401, the rest 429.
    assert set(statuses) <= {401, 429}
    assert statuses.count(401) >= LIMIT
    assert call(alice_token, HERE).status_code == 429
    assert call(alice_token, ELSEWHERE).status_code == 200
