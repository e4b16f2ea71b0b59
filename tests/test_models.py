"""Data models (``_models.py``): ids, the record, partial results, ended records."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid

import pytest

from cancelable_rx import Cancelable, CancelationToken, PartialResult
from cancelable_rx._models import new_id

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def test_ids_are_uuid4_shaped_and_unique() -> None:
    ids = [new_id() for _ in range(20_000)]
    assert len(set(ids)) == len(ids)
    assert all(UUID4.match(i) for i in ids)
    assert all(uuid.UUID(i).version == 4 for i in ids[:100])


def test_ids_made_one_after_the_other_differ_in_their_leading_characters() -> None:
    ids = [Cancelable().id for _ in range(5_000)] + [CancelationToken().id for _ in range(5_000)]
    heads = {i[:8] for i in ids}
    assert len(heads) == len(ids)  # a dashboard showing id[:8] tells every row apart


def test_ids_made_on_many_threads_at_once_are_unique_and_well_formed() -> None:
    # The parts an id shares with the 255 others of its block are cached as one tuple that
    # threads replace as they cross blocks: each id must still be built from its own block.
    import threading

    made: list[list[str]] = [[] for _ in range(4)]
    go = threading.Barrier(4)

    def make(out: list[str]) -> None:
        go.wait()
        out.extend(new_id() for _ in range(50_000))

    threads = [threading.Thread(target=make, args=(out,)) for out in made]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ids = [i for out in made for i in out]
    assert len(set(ids)) == len(ids) == 200_000
    assert all(UUID4.match(i) for i in ids)
    # an id's characters 3-8 belong to its own block (the counter without its low byte):
    # one set of them per block, and a different one for every block
    heads: dict[str, set[str]] = {}
    for i in ids:
        heads.setdefault(i[-12:-2], set()).add(i[2:8])
    assert all(len(h) == 1 for h in heads.values())
    assert len({h for hs in heads.values() for h in hs}) == len(heads)


def test_a_long_run_of_ids_keeps_distinct_leading_characters() -> None:
    ids = [new_id() for _ in range(300_000)]  # more than a thousand blocks of 256
    assert len({i[:8] for i in ids}) == len(ids)


_FORKING = """
import os, sys
from cancelable_rx._models import new_id
before = [new_id() for _ in range(2000)]
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(r)
    os.write(w, "\\n".join(new_id() for _ in range(2000)).encode())
    os._exit(0)
os.close(w)
chunks = []
while chunk := os.read(r, 65536):
    chunks.append(chunk)
os.waitpid(pid, 0)
child = b"".join(chunks).decode().split("\\n")
after = [new_id() for _ in range(2000)]
everything = before + after + child
assert len(child) == 2000 and len(set(everything)) == len(everything), "an id repeated across the fork"
print("ok")
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="fork is a POSIX feature")
def test_ids_stay_unique_across_forks() -> None:
    # A fresh single-threaded interpreter forks (forking the test process, which has worker
    # threads, is deprecated).
    result = subprocess.run([sys.executable, "-c", _FORKING], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_partial_result_reads_like_a_dict_too() -> None:
    partial = PartialResult(3, False, [1, 2, 3])
    assert partial["count"] == 3 and partial["buffer"] == [1, 2, 3] and not partial["completed"]
    with pytest.raises(KeyError):
        partial["nope"]


@pytest.mark.anyio
async def test_records_built_without_validation_equal_the_validated_ones() -> None:
    # A running operation's record and a history record are built from already-valid
    # values without pydantic's validation: each must be the record validation would build.
    from cancelable_rx import CancelationReason, OperationContext, OperationRegistry

    registry = OperationRegistry.get_instance()
    await registry.clear_all()
    async with Cancelable(name="parent", metadata={"k": 1}, register_globally=True) as parent:
        async with Cancelable(name="child", parent=parent) as child:
            await parent.request_stop(5.0, CancelationReason.MANUAL, "please")
            for op in (parent, child):
                ctx = op.context
                assert ctx.model_fields_set == set(OperationContext.model_fields)
                again = OperationContext.model_validate(ctx.model_dump())
                assert again == ctx and again.model_dump_json() == ctx.model_dump_json()
            assert parent.context.child_ids == {child.id} and child.context.parent_id == parent.id
            assert parent.context.stop_reason is CancelationReason.MANUAL and parent.context.stop_message == "please"
    async with Cancelable(name="quiet", metadata={"m": [1]}, register_globally=True) as quiet:
        pass  # (its record is built for the first time in history)
    history = await registry.get_history()
    assert [h.name for h in history] == ["parent", "quiet"]
    for ctx in history:
        again = OperationContext.model_validate(ctx.model_dump())
        assert again == ctx and again.model_dump_json() == ctx.model_dump_json()
    assert history[1].id == quiet.id and history[1].metadata == {"m": [1]}
    assert "stop_reason" not in history[1].model_fields_set  # (never set: as before)
    await registry.clear_all()
