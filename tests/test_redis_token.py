"""DistributedToken against a real redis-server (started on a free port on 127.0.0.1),
within one process: the record is the truth, the announcement only cuts latency."""

from __future__ import annotations

import gc
import logging
import threading
import time
import warnings
from collections.abc import Iterator

import anyio
import pytest
import redis
from redis_support import eventually, fresh_namespace, open_fds

from cancelable_rx import Cancelable, CancelationReason, CancelationToken, ManualCancelation, TimeoutSource
from cancelable_rx.integrations.redis import CancelPayload, DistributedToken, Origin, RedisConnectError, _link
from cancelable_rx.integrations.redis.testing import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with RedisServer() as srv:
        yield srv


@pytest.fixture
def ns() -> str:
    return fresh_namespace()


@pytest.fixture
def raw(server: RedisServer) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(server.url)
    yield client
    client.close()


@pytest.fixture
def quiet() -> Iterator[tuple[RedisServer, redis.Redis]]:
    """A server of the test's own and a raw client of it, for tests that count every
    connection to the server: on the module's server, the links of other tests may still
    be making connections of their own meanwhile, which such a count cannot tell from one
    the tested link left open (a full run failed so, once)."""
    with RedisServer() as srv:
        client = redis.Redis.from_url(srv.url)
        yield srv, client
        client.close()


def _watches(ns: str) -> int:
    """Watches of namespace ``ns`` held by this process (read from the I/O thread's state;
    a snapshot is good enough for a count that must reach zero)."""
    return sum(len(entry) for link in _link.all_links() for key, entry in list(link.watches.items())
               if key[0] == ns)


async def test_a_cancel_stops_an_operation_with_its_reason_and_message(server: RedisServer, ns: str) -> None:
    async with DistributedToken("job", server.url, namespace=ns) as listener:
        assert listener.is_listening and not listener.is_cancelled
        canceller = DistributedToken("job", server.url, namespace=ns)

        async def cancel_soon() -> None:
            await anyio.sleep(0.05)
            assert await canceller.cancel(CancelationReason.MANUAL, "stop job") is True

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(cancel_soon)
                with pytest.raises(ManualCancelation) as caught:
                    async with Cancelable.with_token(listener):
                        await anyio.sleep_forever()
        assert caught.value.message == "stop job"
        assert listener.reason is CancelationReason.MANUAL and listener.message == "stop job"
        info = listener.cancel_info
        assert info is not None and info.origin.pid == Origin.here().pid and info.name == "job"
        assert not listener.is_listening  # a cancelled token listens no more


async def test_a_token_never_started_listens_once_an_operation_uses_it(server: RedisServer, ns: str) -> None:
    """`with_token` on a token nobody started: entering the block starts it listening, so a
    cancel from elsewhere stops the block (the documented auto-start)."""
    token = DistributedToken("auto", server.url, namespace=ns)
    assert not token.is_listening
    with anyio.fail_after(10):
        with pytest.raises(ManualCancelation, match="from elsewhere"):
            async with Cancelable.with_token(token):
                await eventually(lambda: token.is_listening, 5)
                await DistributedToken("auto", server.url, namespace=ns).cancel(message="from elsewhere")
                await anyio.sleep_forever()
    assert token.listener_count == 0


async def test_a_listener_that_starts_after_the_cancel_is_cancelled(server: RedisServer, ns: str) -> None:
    assert await DistributedToken("late", server.url, namespace=ns).cancel(CancelationReason.CONDITION, "early")
    late = await DistributedToken("late", server.url, namespace=ns).start()
    assert late.is_cancelled and late.reason is CancelationReason.CONDITION and late.message == "early"
    with pytest.raises(Exception, match="already cancelled") as caught:
        async with Cancelable.with_token(late):
            await anyio.sleep(5)
    assert caught.value.reason is CancelationReason.CONDITION  # type: ignore[attr-defined]
    await late.aclose()


async def test_the_first_reason_wins_and_repeats_change_nothing(server: RedisServer, ns: str, raw: redis.Redis) -> None:
    a = DistributedToken("t", server.url, namespace=ns)
    b = DistributedToken("t", server.url, namespace=ns)
    assert await a.cancel(CancelationReason.TIMEOUT, "first") is True
    assert await b.cancel(CancelationReason.MANUAL, "second") is False
    assert b.reason is CancelationReason.TIMEOUT and b.message == "first"  # the record's reason, not ours
    assert await a.cancel(CancelationReason.MANUAL, "again") is False
    stored = CancelPayload.model_validate_json(raw.get(f"{ns}:token:t"))  # type: ignore[arg-type]
    assert (stored.reason, stored.message) == (CancelationReason.TIMEOUT, "first")


async def test_cancel_sync_from_a_thread_writes_the_record_first(server: RedisServer, ns: str) -> None:
    listener = await DistributedToken("s", server.url, namespace=ns).start()
    canceller = DistributedToken("s", server.url, namespace=ns)
    results: list[bool] = []
    thread = threading.Thread(target=lambda: results.append(canceller.cancel_sync(message="from a thread")))
    thread.start()
    thread.join(10)
    assert results == [True]
    await eventually(lambda: canceller.is_cancelled and listener.is_cancelled, 10)
    assert listener.message == "from a thread"
    assert canceller.cancel_sync() is False
    await listener.aclose()


async def test_the_token_works_where_a_token_does(server: RedisServer, ns: str) -> None:
    """Composed with `|`, waited for, with callbacks, checked: the base token's interface."""
    tok = DistributedToken("compose", server.url, namespace=ns)  # not started: using it starts it
    called: list[str] = []
    await tok.register_callback(lambda t: called.append(t.message or ""))
    await eventually(lambda: tok.is_listening, 10)
    other = DistributedToken("compose", server.url, namespace=ns)

    async def cancel_soon() -> None:
        await tok.wait_for_cancel()  # returns once the remote cancel arrived

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cancel_soon)
            async with Cancelable(suppress_cancelation=True).add_source(tok | TimeoutSource(30)) as op:
                await other.cancel(message="composed")
                await anyio.sleep_forever()
    assert op.cancel_reason is CancelationReason.MANUAL and op.cancel_message == "composed"
    with pytest.raises(ManualCancelation):
        tok.check()
    await eventually(lambda: called == ["composed"], 5)
    assert isinstance(tok, CancelationToken)


async def test_op_cancel_with_a_distributed_token_cancels_everywhere(server: RedisServer, ns: str) -> None:
    remote = await DistributedToken("opc", server.url, namespace=ns).start()
    mine = DistributedToken("opc", server.url, namespace=ns)
    async with Cancelable.with_token(mine, suppress_cancelation=True) as op:
        await op.cancel(message="from the operation")
    await eventually(lambda: remote.is_cancelled, 10)
    assert remote.message == "from the operation"
    assert remote.cancel_info is not None and remote.cancel_info.origin.operation_id == op.id


async def test_a_cancelled_record_expires_after_its_ttl(server: RedisServer, ns: str, raw: redis.Redis) -> None:
    tok = DistributedToken("ttl", server.url, namespace=ns, ttl=0.3)
    await tok.cancel(message="short-lived")
    pttl = raw.pttl(f"{ns}:token:ttl")
    assert 0 < pttl <= 300  # type: ignore[operator]
    await eventually(lambda: raw.exists(f"{ns}:token:ttl") == 0, 5)
    fresh = await DistributedToken("ttl", server.url, namespace=ns).start()
    assert not fresh.is_cancelled  # the name can be cancelled anew
    assert await fresh.cancel(message="again") is True
    await fresh.aclose()


async def test_a_wrong_password_is_a_clear_error_at_connect(ns: str) -> None:
    with RedisServer(password="s3cret") as guarded:
        bad = guarded.url.replace("s3cret", "wrong")
        with pytest.raises(RedisConnectError) as caught:
            await DistributedToken("pw", bad, namespace=ns).start()
        text = str(caught.value)
        assert "refused the credentials" in text and "wrong" not in text and "***" in text
        assert "password" in text  # the fix
        with pytest.raises(RedisConnectError, match="refused the credentials"):
            await DistributedToken("pw", guarded.url.replace(":s3cret@", ""), namespace=ns).cancel()
        async with DistributedToken("pw", guarded.url, namespace=ns) as good:  # the right one works
            assert good.is_listening


async def test_nothing_listening_is_a_clear_error_at_connect(ns: str) -> None:
    with RedisServer() as srv:
        url = srv.url
    with pytest.raises(RedisConnectError, match="could not connect to Redis at redis://127.0.0.1"):
        await DistributedToken("nobody", url, namespace=ns).start()


async def test_a_malformed_record_or_message_is_logged_and_ignored(
    server: RedisServer, ns: str, raw: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "cancelable_rx.redis")
    raw.set(f"{ns}:token:bad", b"\x80 not json")
    tok = await DistributedToken("bad", server.url, namespace=ns, reread_interval=0.05).start()
    assert not tok.is_cancelled and tok.is_listening
    wrong_name = CancelPayload(name="other", reason=CancelationReason.MANUAL, origin=Origin.here())
    for junk in (b"{}", b"[1, 2]", b'{"v": 2, "name": "bad"}', wrong_name.model_dump_json().encode(), b"x" * 70000):
        raw.publish(f"{ns}:cancel:bad", junk)
    await eventually(lambda: caplog.text.count("malformed cancel record") >= 6, 5)
    assert caplog.text.count("malformed cancel record") <= 7  # the stored one once, not every re-read
    assert not tok.is_cancelled and tok.is_listening
    raw.delete(f"{ns}:token:bad")
    assert await DistributedToken("bad", server.url, namespace=ns).cancel(message="valid") is True
    await eventually(lambda: tok.is_cancelled, 5)  # the listener is alive
    assert tok.message == "valid"


async def test_the_listener_recovers_when_its_connection_is_killed(
    server: RedisServer, ns: str, raw: redis.Redis
) -> None:
    tok = await DistributedToken("kill", server.url, namespace=ns, reread_interval=0.1).start()
    link = tok._link
    assert link is not None
    before = link.reconnects
    name = f"cancelable_rx-listener-{Origin.here().pid}"
    assert raw.client_kill_filter(_type="pubsub", skipme=True) >= 1
    await eventually(lambda: link.reconnects > before, 10)
    assert any(c["name"] == name for c in raw.client_list(_type="pubsub"))
    await DistributedToken("kill", server.url, namespace=ns).cancel(message="after the kill")
    await eventually(lambda: tok.is_cancelled, 5)
    assert tok.message == "after the kill"


async def test_a_cancel_missed_while_disconnected_is_read_after_the_reconnect(
    server: RedisServer, ns: str, raw: redis.Redis
) -> None:
    """The record is read again after a reconnect: an announcement nobody heard is not lost."""
    tok = await DistributedToken("missed", server.url, namespace=ns, reread_interval=30).start()
    payload = CancelPayload(name="missed", reason=CancelationReason.SIGNAL, message="unheard", origin=Origin.here())
    raw.set(f"{ns}:token:missed", payload.model_dump_json())  # written, never announced
    assert not tok.is_cancelled
    raw.client_kill_filter(_type="pubsub", skipme=True)
    await eventually(lambda: tok.is_cancelled, 10)  # far sooner than the 30 s re-read
    assert tok.reason is CancelationReason.SIGNAL and tok.message == "unheard"


async def test_the_periodic_re_read_sees_an_unannounced_record(server: RedisServer, ns: str, raw: redis.Redis) -> None:
    tok = await DistributedToken("quiet", server.url, namespace=ns, reread_interval=0.1).start()
    payload = CancelPayload(name="quiet", reason=CancelationReason.MANUAL, message="no announcement",
                            origin=Origin.here())
    raw.set(f"{ns}:token:quiet", payload.model_dump_json())
    await eventually(lambda: tok.is_cancelled, 5)
    assert tok.message == "no announcement"


async def test_a_thousand_tokens_cancelled_at_once(server: RedisServer, ns: str) -> None:
    names = [f"many-{i}" for i in range(1000)]
    tokens = [DistributedToken(n, server.url, namespace=ns) for n in names]
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for tok in tokens:
                tg.start_soon(tok.start)
        assert all(t.is_listening for t in tokens)
        cancellers = [DistributedToken(n, server.url, namespace=ns) for n in names]
        async with anyio.create_task_group() as tg:
            for c in cancellers:
                tg.start_soon(c.cancel, CancelationReason.MANUAL, "all at once")
        await eventually(lambda: all(t.is_cancelled for t in tokens), 10)
    assert {t.message for t in tokens} == {"all at once"}
    await eventually(lambda: _watches(ns) == 0, 5)


async def test_listening_holds_nothing_for_tokens_no_longer_used(server: RedisServer, ns: str) -> None:
    """Closed and collected tokens leave no watch; sockets do not grow with tokens."""
    async with DistributedToken("keep", server.url, namespace=ns):  # keeps the link open
        baseline = open_fds()
        for i in range(300):
            async with DistributedToken(f"n{i}", server.url, namespace=ns) as tok:
                assert tok.is_listening
        for i in range(300):
            await DistributedToken(f"g{i}", server.url, namespace=ns).start()  # dropped without aclose
        gc.collect()
        await eventually(lambda: _watches(ns) == 1, 5)
        assert open_fds() <= baseline + 2


async def test_a_closed_token_no_longer_listens(server: RedisServer, ns: str) -> None:
    tok = await DistributedToken("closed", server.url, namespace=ns).start()
    await tok.aclose()
    await tok.aclose()  # idempotent
    assert not tok.is_listening
    with pytest.raises(RuntimeError, match="was closed"):
        await tok.start()
    assert await tok.cancel(message="still cancellable") is True and tok.is_cancelled


async def test_client_settings_are_taken_from_a_redis_py_client(server: RedisServer, ns: str) -> None:
    client = redis.Redis(host="127.0.0.1", port=server.port, db=0)
    async with DistributedToken("client", client, namespace=ns) as tok:
        await DistributedToken("client", server.url, namespace=ns).cancel(message="via url")
        await eventually(lambda: tok.is_cancelled, 5)
    client.close()


def test_bad_arguments_are_clear_errors() -> None:
    with pytest.raises(TypeError, match="`redis` must be a Redis URL"):
        DistributedToken("x", 6379)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`redis` must be a redis://, rediss:// or unix:// URL"):
        DistributedToken("x", "http://localhost")
    with pytest.raises(ValueError, match="`name` must be a non-empty str"):
        DistributedToken("", "redis://localhost")
    with pytest.raises(TypeError, match="`name` must be a str"):
        DistributedToken(42, "redis://localhost")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="`ttl` must be a finite number of seconds > 0"):
        DistributedToken("x", "redis://localhost", ttl=0)
    with pytest.raises(ValueError, match="`reread_interval`"):
        DistributedToken("x", "redis://localhost", reread_interval=float("nan"))
    with pytest.raises(ValueError, match="`namespace` must be a non-empty str"):
        DistributedToken("x", "redis://localhost", namespace="")
    with pytest.raises(ValueError, match=r"`redis` .* got 'redis://:\*\*\*@"):
        DistributedToken("x", "redis://:pw@host:1:2/0")
    with pytest.raises(ValueError, match="`reason` must be a CancelationReason"):
        DistributedToken("x", "redis://localhost").cancel_sync("nope")  # type: ignore[arg-type]


def test_equal_tokens_name_the_same_record() -> None:
    a = DistributedToken("same", "redis://localhost/0", namespace="n")
    assert a == DistributedToken("same", "redis://localhost/0", namespace="n")
    assert a != DistributedToken("same", "redis://localhost/0", namespace="m")
    assert len({a, DistributedToken("same", "redis://localhost/0", namespace="n")}) == 1
    assert a.id == "same" and a.name == "same"


async def test_the_listener_never_blocks_the_event_loop(server: RedisServer, ns: str) -> None:
    """While 200 tokens start and are cancelled, the caller's loop keeps ticking."""
    gaps: list[float] = []

    async def ticker(done: anyio.Event) -> None:
        last = time.monotonic()
        while not done.is_set():
            await anyio.sleep(0.005)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    done = anyio.Event()
    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker, done)
            tokens = [DistributedToken(f"b{i}", server.url, namespace=ns) for i in range(200)]
            for tok in tokens:
                await tok.start()
            for tok in tokens:
                await DistributedToken(tok.name, server.url, namespace=ns).cancel()
            await eventually(lambda: all(t.is_cancelled for t in tokens), 10)
            done.set()
    assert gaps and max(gaps) < 0.5


def test_the_payload_written_on_the_fast_path_is_a_valid_record() -> None:
    from cancelable_rx.integrations.redis._models import cancel_json

    raw = cancel_json("job", CancelationReason.SIGNAL, "why", "op-1", 2.5)
    payload = CancelPayload.model_validate_json(raw)
    assert (payload.name, payload.reason, payload.message, payload.deadline) == ("job", CancelationReason.SIGNAL, "why", 2.5)
    assert payload.origin == Origin.here("op-1") and payload.time.tzinfo is not None


def test_the_fast_payload_is_the_json_of_the_record() -> None:
    """cancel_json writes what json.dumps writes (escapes included) for any text."""
    import json

    from cancelable_rx.integrations.redis._models import cancel_json

    for name, message, op_id, deadline in [("job", "why", "op-1", 2.5), ('é"\\\n\x01☃𝄞', None, None, None),
                                           ("x", "", "o\u2028", 0.0), ("y", "ü" * 50, None, 1e-7)]:
        raw = cancel_json(name, CancelationReason.TIMEOUT, message, op_id, deadline)
        fields = json.loads(raw)
        origin = Origin.here(op_id)
        expected = {"v": 1, "name": name, "reason": "timeout", "message": message,
                    "origin": {"host": origin.host, "pid": origin.pid, "operation_id": op_id},
                    "time": fields["time"], "deadline": deadline}
        assert raw == json.dumps(expected, separators=(",", ":")).encode()
        payload = CancelPayload.model_validate_json(raw)
        assert (payload.name, payload.message, payload.deadline) == (name, message, deadline)


async def test_a_cancel_goes_through_when_its_writer_connection_is_killed(
    server: RedisServer, ns: str, raw: redis.Redis
) -> None:
    """The first attempt of a cancel goes out on a connection kept for cancels; if that
    connection died, the cancel is still written (through the pool) and announced."""
    async with DistributedToken("w2", server.url, namespace=ns) as listener:
        for name in ("w0", "w1"):  # (the first may find a writer an earlier test killed: then the second connects it)
            assert await DistributedToken(name, server.url, namespace=ns).cancel() is True
        writer = f"cancelable_rx-writer-{Origin.here().pid}"
        killed = [c for c in raw.client_list() if c["name"] == writer]
        assert killed
        for client in killed:
            raw.client_kill_filter(_id=client["id"])
        assert await DistributedToken("w2", server.url, namespace=ns).cancel(message="after the kill") is True
        with anyio.fail_after(5):
            await listener.wait_for_cancel()
        assert listener.message == "after the kill"
        assert await DistributedToken("w3", server.url, namespace=ns).cancel() is True  # the writer reconnects
    assert any(c["name"] == writer for c in raw.client_list())


async def test_a_cancel_goes_through_after_redis_forgot_the_script(
    server: RedisServer, ns: str, raw: redis.Redis
) -> None:
    async with DistributedToken("flushed", server.url, namespace=ns) as listener:
        assert await DistributedToken("before", server.url, namespace=ns).cancel() is True
        raw.script_flush()
        assert await DistributedToken("flushed", server.url, namespace=ns).cancel(message="sent in full") is True
        with anyio.fail_after(5):
            await listener.wait_for_cancel()
        assert listener.message == "sent in full"


async def test_concurrent_cancels_agree_on_the_first_reason(server: RedisServer, ns: str) -> None:
    """Cancels of one token at the same time (the writer serves one, the pool the others):
    one wins, and every canceller and listener holds its reason."""
    async with DistributedToken("race", server.url, namespace=ns) as listener:
        cancellers = [DistributedToken("race", server.url, namespace=ns) for _ in range(20)]
        won: list[bool] = []

        async def cancel(i: int) -> None:
            won.append(await cancellers[i].cancel(CancelationReason.MANUAL, f"canceller {i}"))

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                for i in range(len(cancellers)):
                    tg.start_soon(cancel, i)
            await listener.wait_for_cancel()
        assert won.count(True) == 1
        assert len({c.message for c in cancellers} | {listener.message}) == 1
        assert cancellers[won.index(True)].message == listener.message


async def test_a_cancel_waits_out_a_server_that_stopped_answering(
    server: RedisServer, ns: str, raw: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A cancel whose attempt gets no answer gives up on it after COMMAND_TIMEOUT and tries
    again; it returns once Redis answers (here: after a CLIENT PAUSE of 1.5 s)."""
    monkeypatch.setattr(_link, "COMMAND_TIMEOUT", 0.2)
    async with DistributedToken("paused", server.url, namespace=ns) as listener:
        assert await DistributedToken("warm", server.url, namespace=ns).cancel() is True  # the writer is connected
        raw.execute_command("CLIENT", "PAUSE", 1500, "ALL")
        started = time.monotonic()
        with anyio.fail_after(10):
            assert await DistributedToken("paused", server.url, namespace=ns).cancel(message="late") is True
            await listener.wait_for_cancel()
        assert time.monotonic() - started > 1.0
        assert listener.message == "late"


async def test_a_long_message_arriving_in_pieces_is_read_whole(server: RedisServer, ns: str) -> None:
    """An announcement that reaches the listener in several reads (60 kB) is read whole."""
    message = "".join(chr(0x41 + i % 26) for i in range(60_000))
    async with DistributedToken("long", server.url, namespace=ns) as listener:
        async with DistributedToken("other", server.url, namespace=ns) as other:
            async with anyio.create_task_group() as tg:
                tg.start_soon(DistributedToken("long", server.url, namespace=ns).cancel, CancelationReason.MANUAL,
                              message)
                tg.start_soon(DistributedToken("other", server.url, namespace=ns).cancel)
            with anyio.fail_after(5):
                await listener.wait_for_cancel()
                await other.wait_for_cancel()
    assert listener.message == message and listener.cancel_info is not None


async def test_a_link_is_reused_while_in_use_and_closed_once_idle(server: RedisServer, ns: str) -> None:
    """Cancels one after another share one link; it closes about LINGER s after the last."""
    url = server.url.replace("127.0.0.1", "localhost")  # an endpoint of this test alone

    def links() -> list[_link.Link]:
        return [link for link in _link.all_links() if link.endpoint.key == ("url", url) and not link.closed]

    for i in range(5):
        assert await DistributedToken(f"seq{i}", url, namespace=ns).cancel() is True
        assert len(links()) == 1
        await anyio.sleep(_link.LINGER / 4)
    await eventually(lambda: not links(), 3 * _link.LINGER)


async def test_a_link_closing_once_idle_is_never_handed_to_a_new_user(server: RedisServer, ns: str) -> None:
    """Forced interleaving: the idle timer closes a link and, before its closing task runs,
    a cancel asks for a link to the same server: it gets a new one, so its command is not
    broken by the close (it was: 631 of 1,000 concurrent cancels raised LinkClosed once)."""
    from cancelable_rx.integrations.redis import _io
    from cancelable_rx.integrations.redis._config import endpoint_of

    url = server.url.replace("127.0.0.1", "localhost")  # an endpoint of this test alone
    endpoint = endpoint_of(url)

    async def on_home_loop() -> None:
        link = _link.link_for(endpoint)
        await link.open()
        link.release()  # idle: its timer is armed
        link._idle_since -= 2 * _link.LINGER  # the idle period is over ...
        link._close_if_idle()  # ... and its timer fires: the close is spawned, not run yet
        again = _link.link_for(endpoint)  # a cancel starting right then, with no await between
        try:
            assert again is not link and not again.closed
            await again.open()
            assert await again.run(lambda client: client.ping(), 5.0)
        finally:
            again.release()

    await _io.run_at(_io.home(), on_home_loop())
    assert await DistributedToken("after", url, namespace=ns).cancel() is True


async def test_an_acl_user_without_scripts_cancels_with_plain_commands(server: RedisServer, raw: redis.Redis) -> None:
    """ACL usernames pass through; where scripts are not allowed, SET NX then PUBLISH."""
    ns = fresh_namespace()
    raw.acl_setuser("worker", enabled=True, passwords=["+pw-worker"], keys=[f"{ns}:*"], channels=["*"],
                    commands=["+@all", "-@scripting"])
    url = server.url.replace("redis://", "redis://worker:pw-worker@")
    try:
        async with DistributedToken("acl", url, namespace=ns) as listener:
            a = DistributedToken("acl", url, namespace=ns)
            assert await a.cancel(CancelationReason.MANUAL, "no scripts here") is True
            assert False in [link._script_allowed for link in _link.all_links() if "worker:" in link.endpoint.display]
            await eventually(lambda: listener.is_cancelled, 5)
            assert listener.message == "no scripts here"
            assert await DistributedToken("acl", url, namespace=ns).cancel(message="second") is False
        with pytest.raises(RedisConnectError, match="refused the credentials of user 'worker'"):
            await DistributedToken("acl", url.replace("pw-worker", "nope"), namespace=ns).start()
    finally:
        raw.acl_deluser("worker")


def test_tls_and_unix_urls_are_passed_through() -> None:
    from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection

    from cancelable_rx.integrations.redis._config import endpoint_of

    tls = endpoint_of("rediss://user:secret@example.com:6380/2?ssl_cert_reqs=none")
    assert tls.connection_class is SSLConnection and tls.kwargs["username"] == "user"
    assert tls.kwargs["password"] == "secret" and tls.kwargs["db"] == 2 and tls.kwargs["ssl_cert_reqs"] == "none"
    assert "secret" not in tls.display and "***" in tls.display
    assert endpoint_of("unix:///tmp/redis.sock?db=1").connection_class is UnixDomainSocketConnection
    client = redis.Redis(host="h", port=1, username="u", password="p", ssl=True)
    endpoint = endpoint_of(client)
    assert endpoint.connection_class is SSLConnection and endpoint.kwargs["password"] == "p"
    assert endpoint.display == "rediss://h:1/0"
    client.close()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_token_listens_again_on_the_next_event_loop(server: RedisServer, backend: str) -> None:
    """A loop that ends takes its connections with it; the token registers anew when used."""
    ns = fresh_namespace()
    tok = DistributedToken("loops", server.url, namespace=ns)

    async def first() -> None:
        await tok.start()
        assert tok.is_listening

    async def second() -> None:
        await tok.start()
        assert tok.is_listening
        await DistributedToken("loops", server.url, namespace=ns).cancel(message="on the second loop")
        with anyio.fail_after(10):
            await tok.wait_for_cancel()

    anyio.run(first, backend=backend)
    if backend == "asyncio":
        assert not tok.is_listening  # its loop ended (trio's connections live on the I/O thread)
    anyio.run(second, backend=backend)
    assert tok.message == "on the second loop"


def test_a_loop_that_only_sent_a_cancel_closes_its_connections_when_it_ends(server: RedisServer) -> None:
    """A loop that only sent a cancel (it never listened) closes its connections when it
    ends: nothing is left to the garbage collector (no ResourceWarning)."""
    ns = fresh_namespace()
    gc.collect()  # what earlier tests left to the collector is not this test's

    async def only_cancel() -> None:
        await DistributedToken("sent", server.url, namespace=ns).cancel(message="from a sender")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        anyio.run(only_cancel, backend="asyncio")
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert raw_record_exists(server, ns)


def raw_record_exists(server: RedisServer, ns: str) -> bool:
    client = redis.Redis.from_url(server.url)
    try:
        return any(True for _ in client.scan_iter(match=f"{ns}*"))
    finally:
        client.close()



async def test_a_closed_link_never_reopens_a_connection(server: RedisServer, ns: str, raw: redis.Redis) -> None:
    """Once a link is closed (as the end of its event loop closes it), neither a late send on
    its listening connection (the periodic PING, a subscription) nor a late read through its
    pool may connect again: redis-py's commands connect a closed connection on their own,
    which opened sockets nobody closed (an unclosed-socket warning, seen in CI)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from cancelable_rx.integrations.redis import _io

    tok = await DistributedToken("closed", server.url, namespace=ns).start()
    link = tok._link
    assert link is not None
    listener = link.listener
    name = f"cancelable_rx-listener-{Origin.here().pid}"

    def listeners() -> set[str]:
        return {c["addr"] for c in raw.client_list() if c["name"] == name}

    before = listeners()
    ours = f"127.0.0.1:{listener.conn._writer.get_extra_info('sockname')[1]}"
    assert ours in before

    async def late_work_after_close() -> list[str]:
        await link.aclose()
        seen = []
        try:
            await listener._send("PING")
        except RedisConnectionError:
            seen.append("send refused")
        try:
            await link.run(lambda client: client.get("x"), 1.0)
        except RuntimeError:
            seen.append("read refused")
        return seen

    assert await _io.run_at(link.loop, late_work_after_close()) == ["send refused", "read refused"]
    assert not listener.conn.is_connected
    await eventually(lambda: ours not in listeners(), 5)
    assert not listeners() - before  # and no new one


async def test_a_link_closed_while_it_opens_leaves_no_connection_open(quiet: tuple[RedisServer, redis.Redis]) -> None:
    """A link closed while it is still connecting (as the end of its event loop, or the
    shutdown of the I/O thread, closes it): opening fails, a cancel through it fails, and
    no connection it made stays open (its close ran before they existed)."""
    server, raw = quiet
    import asyncio

    from cancelable_rx.integrations.redis import _io
    from cancelable_rx.integrations.redis._config import endpoint_of

    def clients() -> set[str]:
        return {c["addr"] for c in raw.client_list()}

    before = clients()

    async def close_while_opening() -> list[str]:
        link = _link.Link(endpoint_of(server.url), {})
        opening = asyncio.ensure_future(link.open())
        await asyncio.sleep(0)  # connecting now
        await link.aclose()
        seen = []
        try:
            await opening
        except RuntimeError:
            seen.append("open refused")
        try:
            await link.write_cancel("ns", "t", b"{}", 10, 1.0)
        except RuntimeError:
            seen.append("cancel refused")
        return seen

    assert await _io.run_at(_io.home(), close_while_opening()) == ["open refused", "cancel refused"]
    await anyio.sleep(0.2)
    assert not clients() - before


async def test_a_command_connecting_as_its_link_closes_leaves_no_connection_open(
    quiet: tuple[RedisServer, redis.Redis]
) -> None:
    """A command whose pool connection is still connecting when its link closes: redis-py
    connects outside the pool's lock, so the close finds nothing to close; the command's
    end closes it (no connection of the link stays open)."""
    server, raw = quiet
    import asyncio

    from cancelable_rx.integrations.redis import _io
    from cancelable_rx.integrations.redis._config import endpoint_of

    def clients() -> set[str]:
        return {c["addr"] for c in raw.client_list()}

    before = clients()

    async def close_while_a_command_connects() -> None:
        link = _link.Link(endpoint_of(server.url), {})
        command = asyncio.ensure_future(link.run(lambda client: client.get("x"), 1.0))
        await asyncio.sleep(0)  # its connection is connecting
        await link.aclose()
        try:
            await command
        except Exception:  # noqa: S110 - its outcome is not what is tested
            pass

    await _io.run_at(_io.home(), close_while_a_command_connects())
    await anyio.sleep(0.2)
    assert not clients() - before


async def test_commands_in_flight_as_their_link_closes_finish_and_leave_nothing_open(
    quiet: tuple[RedisServer, redis.Redis], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two commands whose connections are still connecting (a slow network) when their link
    closes: each finishes as it would have (closing one's late connection never breaks the
    other's command), and no connection of the link stays open afterwards."""
    server, raw = quiet
    import asyncio

    import redis.asyncio.connection as rc

    from cancelable_rx.integrations.redis import _io
    from cancelable_rx.integrations.redis._config import endpoint_of

    connect = rc.AbstractConnection.connect

    async def slow_connect(self: rc.AbstractConnection) -> None:
        await asyncio.sleep(0.05)
        await connect(self)

    monkeypatch.setattr(rc.AbstractConnection, "connect", slow_connect)

    def clients() -> set[str]:
        return {c["addr"] for c in raw.client_list()}

    before = clients()

    async def close_while_commands_connect() -> list[object]:
        link = _link.Link(endpoint_of(server.url), {})
        slow = asyncio.ensure_future(link.run(lambda client: client.blpop(["nothing"], 0.3), 2.0))
        quick = asyncio.ensure_future(link.run(lambda client: client.get("nothing"), 2.0))
        await asyncio.sleep(0.01)  # both connecting
        await link.aclose()
        return list(await asyncio.gather(slow, quick, return_exceptions=True))

    assert await _io.run_at(_io.home(), close_while_commands_connect()) == [None, None]
    await anyio.sleep(0.2)
    assert not clients() - before
