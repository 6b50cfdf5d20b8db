"""asyncio's registry of Tasks, kept by native code in the worker.

Every request's app runs in a Task of its own, and asyncio registers each new Task in a
``weakref.WeakSet`` through Python code twice per Task: ``WeakSet.add`` at creation and
the weak reference's Python callback at death. On Python 3.11, where no Task starts
eagerly, that is about 1,850 instructions per request (see ``TaskRegistrar`` in the
native module); the registrar stores the same weak references in the same set without a
Python frame, so ``asyncio.all_tasks()`` answers as before.

One difference, for the whole process: a Task that dies while the set is being iterated
is discarded at once rather than after the iteration, so that iteration raises
``RuntimeError`` (``asyncio.all_tasks()`` retries on it; code iterating the private set
itself would see it).
"""

from __future__ import annotations

import asyncio.tasks
import weakref

from ruvicorn._native import TaskRegistrar


def install_task_registrar() -> bool:
    """Register new Tasks natively; False (nothing changed) where asyncio keeps its Tasks
    some other way, or something else already replaced the registration."""
    registry: object = getattr(asyncio.tasks, "_scheduled_tasks", None)
    if registry is None:
        registry = getattr(asyncio.tasks, "_all_tasks", None)
    if type(registry) is not weakref.WeakSet or "add" in vars(registry):
        return False
    refs = getattr(registry, "data", None)
    if type(refs) is not set:
        return False
    # An instance attribute, found before the class's `add` by the C Task's lookup.
    vars(registry)["add"] = TaskRegistrar(refs)
    return True
