"""``TaskRegistrar`` keeps a ``WeakSet`` as its own ``add`` would: what it adds is a
member, is listed by iteration, and leaves the set when it dies."""

from __future__ import annotations

import gc
import weakref

from ruvicorn._native import TaskRegistrar


class Item:
    """Anything a weak reference can point to, as a Task can."""


def _registry() -> weakref.WeakSet[Item]:
    registry: weakref.WeakSet[Item] = weakref.WeakSet()
    registry.add = TaskRegistrar(registry.data)  # type: ignore[method-assign]
    return registry


def test_added_items_are_members_until_they_die() -> None:
    registry = _registry()
    first, second = Item(), Item()
    registry.add(first)
    registry.add(second)
    assert first in registry and second in registry
    assert set(registry) == {first, second}
    assert len(registry) == 2
    del first
    gc.collect()
    assert list(registry) == [second]
    assert len(registry.data) == 1


def test_adding_twice_keeps_one_member() -> None:
    registry = _registry()
    item = Item()
    registry.add(item)
    registry.add(item)
    assert len(registry) == 1
    del item
    assert len(registry.data) == 0


def test_discard_removes_what_the_registrar_added() -> None:
    registry = _registry()
    item = Item()
    registry.add(item)
    registry.discard(item)
    assert item not in registry
    assert len(registry.data) == 0
