"""The fair gate and the resident set, on the event loop alone (no model, no server)."""

from __future__ import annotations

import asyncio

from kitchen.serve.scheduling import FairGate, Residency


def test_the_gate_serves_keys_and_models_round_robin() -> None:
    """Key A queues five pieces of work on model a1 and one on a2, key B one on b1, all while
    the one slot is taken: B does not wait behind A's queue, nor a2 behind a1's."""

    async def go() -> list[str]:
        gate = FairGate(slots=1)
        order: list[str] = []
        hold = asyncio.Event()

        async def work(key: str, model: str, name: str, wait: bool = False) -> None:
            async with gate.turn(key, model):
                order.append(name)
                if wait:
                    await hold.wait()

        first = asyncio.create_task(work("A", "a1", "a1-0", wait=True))
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(work("A", "a1", f"a1-{n}")) for n in range(1, 5)]
        tasks.append(asyncio.create_task(work("A", "a2", "a2-0")))
        tasks.append(asyncio.create_task(work("B", "b1", "b1-0")))
        await asyncio.sleep(0)
        assert gate.queued == 6
        hold.set()
        await asyncio.gather(first, *tasks)
        assert gate.busy == 0 and gate.queued == 0
        return order

    assert asyncio.run(go()) == ["a1-0", "a1-1", "b1-0", "a2-0", "a1-2", "a1-3", "a1-4"]


def test_a_cancelled_waiter_gives_its_turn_on() -> None:
    async def go() -> list[str]:
        gate = FairGate(slots=1)
        order: list[str] = []
        hold = asyncio.Event()

        async def work(key: str, name: str, wait: bool = False) -> None:
            async with gate.turn(key, key):
                order.append(name)
                if wait:
                    await hold.wait()

        first = asyncio.create_task(work("A", "first", wait=True))
        await asyncio.sleep(0)
        gone = asyncio.create_task(work("B", "gone"))
        after = asyncio.create_task(work("C", "after"))
        await asyncio.sleep(0)
        gone.cancel()
        hold.set()
        await asyncio.gather(first, after)
        return order

    assert asyncio.run(go()) == ["first", "after"]


class Fake:
    """A model as the resident set sees it."""

    def __init__(self, model_id: str, log: list[str]) -> None:
        self.model_id = model_id
        self.running = False
        self.queued = False
        self.loaded = True
        self.log = log

    def evictable(self) -> bool:
        return self.loaded and not self.running

    def has_work(self) -> bool:
        return self.queued

    async def unload(self) -> bool:
        self.loaded = False
        self.log.append(f"unload {self.model_id}")
        return True


def test_the_model_idle_longest_is_unloaded_and_a_running_one_never() -> None:
    async def go() -> list[str]:
        log: list[str] = []
        places = Residency(2)
        a, b, c, d = (Fake(n, log) for n in "abcd")
        await places.admit(a)
        await places.admit(b)
        places.touch(a)  # b is now the one idle longest
        await places.admit(c)
        assert places.ids() == ["a", "c"]
        a.queued = True  # a has work queued: c goes first although a is older
        await places.admit(d)
        assert places.ids() == ["a", "d"]
        # both running: a newcomer waits until one of them finishes
        a.running = d.running = True
        b.loaded = True
        waiting = asyncio.create_task(places.admit(b))
        await asyncio.sleep(0.1)
        assert not waiting.done() and places.waiting == 1
        d.running = False
        places.touch(d)
        await asyncio.wait_for(waiting, 5)
        assert places.ids() == ["a", "b"]
        return log

    assert asyncio.run(go()) == ["unload b", "unload c", "unload d"]
