"""GraphClient.users_by_ids: 15 ids to a `$filter=id in (...)`, 20 of those to a JSON batch (300 ids a
round trip); sub-requests answered 429/503/504 are sent again after their Retry-After, within
max_retries and the deadline; other sub-request errors raise as a single request would."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import orjson
import pytest
from client_helpers import BASE, ScriptedGraph, Sleeps, error, user
from test_auth import Tokens, refused

from syncd.directory.client import USER_SELECT, GraphClient
from syncd.directory.errors import (
    DeadlineReached,
    DirectoryAuthError,
    DirectoryUnavailable,
    GraphError,
    MalformedResponse,
)

MakeClient = Callable[..., GraphClient]
# A sub-request's answer: (status, headers, body) from its URL and the round it is sent in (1, 2...).
SubAnswer = Callable[[str, int], tuple[int, dict[str, str], Any]]
_IN = re.compile(r"id in \(([^)]*)\)")


def gid(n: int) -> str:
    return str(uuid.UUID(int=n + 1))


def filter_ids(url: str) -> list[str]:
    query = httpx.URL("https://x" + url).params["$filter"]
    match = _IN.fullmatch(query)
    assert match, query
    return [v.strip("'") for v in match.group(1).split(",")]


def directory(known: set[str]) -> SubAnswer:
    """A directory that has the users `known` (it answers their ids in upper case, as Graph may)."""

    def answer(url: str, _round: int) -> tuple[int, dict[str, str], Any]:
        found = [user(i.upper()) for i in filter_ids(url) if i in known]
        return 200, {"Content-Type": "application/json"}, {"value": found}

    return answer


class Batches:
    """The scripted `$batch` endpoint: records each batch's sub-requests, answers each on its own
    (in reverse order, since Graph promises none)."""

    def __init__(self, sub: SubAnswer) -> None:
        self.sub = sub
        self.batches: list[list[dict[str, Any]]] = []
        self.rounds: dict[str, int] = {}

    def __call__(self, request: httpx.Request) -> httpx.Response:
        assert request.method == "POST" and request.headers["Content-Type"] == "application/json"
        subs = orjson.loads(request.content)["requests"]
        assert 1 <= len(subs) <= 20
        self.batches.append(subs)
        responses = []
        for s in subs:
            assert s["method"] == "GET" and s["url"].startswith("/users?")
            self.rounds[s["url"]] = n = self.rounds.get(s["url"], 0) + 1
            status, headers, body = self.sub(s["url"], n)
            responses.append({"id": s["id"], "status": status, "headers": headers, "body": body})
        return httpx.Response(200, content=orjson.dumps({"responses": responses[::-1]}))


def test_ids_go_15_to_a_filter_and_20_filters_to_a_batch(graph: ScriptedGraph, client: GraphClient) -> None:
    ids = [gid(n) for n in range(301)]
    known = set(ids[::2])
    batches = Batches(directory(known))
    graph.on("/$batch", batches)
    asked = [ids[0].upper(), *ids, ids[5], "not-a-guid", ""]  # any case, repeats, non-GUIDs
    found = client.users_by_ids(asked)
    assert set(found) == known  # keyed by canonical id; unknown ids simply absent
    assert all(found[i].id == i for i in found)
    assert [len(b) for b in batches.batches] == [20, 1]  # 301 ids: 21 filters, 2 round trips
    sent = [filter_ids(s["url"]) for b in batches.batches for s in b]
    assert [len(f) for f in sent] == [15] * 20 + [1]
    assert [i for f in sent for i in f] == ids  # each id once, canonical
    assert httpx.URL("https://x" + batches.batches[0][0]["url"]).params["$select"] == USER_SELECT
    assert graph.paths() == ["/$batch", "/$batch"]
    assert client.stats.requests == 2 and client.stats.subrequests == 21
    assert client.users_by_ids([]) == {} and len(graph.requests) == 2  # nothing to ask: no request


def test_throttled_sub_requests_are_sent_again_after_retry_after(
    graph: ScriptedGraph, make_client: MakeClient, sleeps: Sleeps
) -> None:
    ids = [gid(n) for n in range(45)]  # three sub-requests
    ok = directory(set(ids))

    def flaky(url: str, n: int) -> tuple[int, dict[str, str], Any]:
        first = filter_ids(url)[0]
        if first == ids[15] and n <= 2:
            return 429, {"Retry-After": "3"}, {"error": {"code": "TooManyRequests", "message": "slow down"}}
        if first == ids[30] and n == 1:
            return 503, {}, {"error": {"code": "ServiceUnavailable", "message": "later"}}
        return ok(url, n)

    batches = Batches(flaky)
    graph.on("/$batch", batches)
    client = make_client()  # rand() = 1.0: backoff(1) = 0.5, backoff(2) = 1.0
    assert set(client.users_by_ids(ids)) == set(ids)
    assert [len(b) for b in batches.batches] == [3, 2, 1]  # only what was not answered goes again
    assert sleeps.delays == [3.0, 3.0]  # the longest Retry-After of the round
    s = client.stats
    assert (s.requests, s.throttled, s.unavailable, s.retries, s.subrequests) == (3, 2, 1, 2, 6)


def test_without_retry_after_the_backoff_applies(
    graph: ScriptedGraph, make_client: MakeClient, sleeps: Sleeps
) -> None:
    ok = directory({gid(0)})
    graph.on("/$batch", Batches(lambda url, n: (504, {}, {}) if n == 1 else ok(url, n)))
    assert set(make_client(backoff_base=0.25).users_by_ids([gid(0)])) == {gid(0)}
    assert sleeps.delays == [0.25]


def test_sub_request_retries_run_out(graph: ScriptedGraph, make_client: MakeClient, sleeps: Sleeps) -> None:
    graph.on("/$batch", Batches(lambda url, n: (429, {"Retry-After": "1"}, {})))
    client = make_client(max_retries=2)
    with pytest.raises(DirectoryUnavailable) as info:
        client.users_by_ids([gid(1)])
    assert (info.value.status, info.value.attempts) == (429, 3)
    assert info.value.url.startswith(f"{BASE}/users?")
    assert sleeps.delays == [1.0, 1.0]


def test_sub_request_waits_stop_at_the_deadline(graph: ScriptedGraph, make_client: MakeClient) -> None:
    graph.on("/$batch", Batches(lambda url, n: (429, {"Retry-After": "30"}, {})))
    client = make_client()
    client.deadline = time.monotonic() + 5
    with pytest.raises(DeadlineReached):
        client.users_by_ids([gid(1)])
    assert len(graph.requests) == 1


def test_the_batch_itself_is_retried_and_renewed_like_any_request(
    graph: ScriptedGraph, make_client: MakeClient, sleeps: Sleeps
) -> None:
    tokens = Tokens()
    graph.on(
        "/$batch",
        error(429, headers={"Retry-After": "2"}),
        refused(),
        Batches(directory({gid(1)})),
    )
    client = make_client(token_provider=tokens)
    assert set(client.users_by_ids([gid(1), gid(2)])) == {gid(1)}
    assert sleeps.delays == [2.0]
    assert [r.headers["Authorization"] for r in graph.requests] == ["Bearer t1", "Bearer t1", "Bearer t2"]
    assert client.stats.token_refreshes == 1


def test_a_refused_sub_request_renews_the_token_once(graph: ScriptedGraph, make_client: MakeClient) -> None:
    tokens = Tokens()
    ok = directory({gid(1)})
    body = {"error": {"code": "InvalidAuthenticationToken", "message": "expired"}}
    graph.on("/$batch", Batches(lambda url, n: (401, {}, body) if n == 1 else ok(url, n)))
    client = make_client(token_provider=tokens)
    assert set(client.users_by_ids([gid(1)])) == {gid(1)}
    assert tokens.refreshes == [None] and len(graph.requests) == 2

    graph2 = ScriptedGraph()
    graph2.on("/$batch", Batches(lambda url, n: (401, {}, body)))
    client2 = make_client(token_provider=Tokens(), transport=httpx.MockTransport(graph2.handler))
    with pytest.raises(DirectoryAuthError) as info:
        client2.users_by_ids([gid(1)])
    assert info.value.status == 401


def test_other_sub_request_errors_raise(graph: ScriptedGraph, client: GraphClient) -> None:
    denied = {"error": {"code": "Authorization_RequestDenied", "message": "Insufficient privileges."}}
    graph.on("/$batch", Batches(lambda url, n: (403, {}, denied)))
    with pytest.raises(DirectoryAuthError) as auth:
        client.users_by_ids([gid(1)])
    assert auth.value.status == 403 and "User.Read.All" in str(auth.value)

    bad = {"error": {"code": "Request_UnsupportedQuery", "message": "Too many child clauses"}}
    graph.on("/$batch", Batches(lambda url, n: (400, {}, bad)))
    with pytest.raises(GraphError) as info:
        client.users_by_ids([gid(1)])
    assert (info.value.status, info.value.code) == (400, "Request_UnsupportedQuery")


@pytest.mark.parametrize(
    "answer",
    [
        {"responses": []},  # a request left unanswered
        {"nope": []},
        {"responses": [{"id": "9", "status": 200, "body": {"value": []}}]},  # an id never sent
        {"responses": [{"id": "1", "status": "200", "body": {"value": []}}]},
        {"responses": [{"id": "1", "status": 200, "body": {"value": [{"id": 5}]}}]},  # a bad user
        {"responses": [{"id": "1", "status": 200, "body": "not json"}]},
    ],
)
def test_malformed_batch_answers_raise(graph: ScriptedGraph, client: GraphClient, answer: Any) -> None:
    graph.on("/$batch", httpx.Response(200, content=orjson.dumps(answer)))
    with pytest.raises(MalformedResponse):
        client.users_by_ids([gid(1)])
