"""UUIDv7 ids: format, order, uniqueness across the entropy pool's refills, threads and forks."""

from __future__ import annotations

import os
import threading
import time
import uuid

from pie.core import ids


def _ms(value: str) -> int:
    return uuid.UUID(value).int >> 80


def test_ids_are_rfc_9562_version_7_with_the_current_millisecond() -> None:
    before = time.time_ns() // 1_000_000
    value = ids.new_id()
    after = time.time_ns() // 1_000_000
    parsed = uuid.UUID(value)
    assert parsed.version == 7
    assert parsed.variant == uuid.RFC_4122
    assert before <= _ms(value) <= after


def test_ids_stay_unique_across_many_refills_of_the_entropy_pool() -> None:
    count = 20 * ids._ENTROPY_BYTES  # 10 bytes an id: 200 refills
    made = [ids.new_id() for _ in range(count)]
    assert len(set(made)) == count
    assert made == sorted(made, key=_ms)  # the millisecond prefix never goes back


def test_threads_draw_distinct_ids() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def draw(out: list[str]) -> None:
        out.extend(ids.new_id() for _ in range(5_000))

    threads = [threading.Thread(target=draw, args=(out,)) for out in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [value for out in made for value in out]
    assert len(set(every)) == len(every)


def test_a_forked_child_does_not_repeat_its_parents_next_ids() -> None:
    ids.new_id()  # the parent's pool now holds unused bytes the child would inherit
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: write its ids and leave at once
        os.close(read)
        os.write(write, "\n".join(ids.new_id() for _ in range(50)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = pipe.read().split("\n")
    os.waitpid(pid, 0)
    parent = [ids.new_id() for _ in range(50)]
    # The random tails (the last 74 bits) must differ: same-millisecond ids would
    # otherwise collide outright.
    tails = {uuid.UUID(value).int & ((1 << 74) - 1) for value in parent}
    assert len(child) == 50
    assert not tails & {uuid.UUID(value).int & ((1 << 74) - 1) for value in child}
