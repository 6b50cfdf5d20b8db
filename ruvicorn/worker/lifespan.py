"""The ASGI lifespan protocol: run the app's startup before serving, its shutdown after.

The app runs the lifespan scope in its own task for the life of the worker; this object feeds
it ``lifespan.startup`` / ``lifespan.shutdown`` and waits for the answer. An app that does not
speak lifespan (raises or returns before answering) is fine under ``--lifespan auto`` and an
error under ``--lifespan on``. Whatever the app puts into ``scope["state"]`` during startup is
what the worker copies into every request scope.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ruvicorn.logs import one_line
from ruvicorn.worker.app_loading import ASGIApp, Message

MODES = ("auto", "on", "off")

#: Answers whose failure is already logged when the app raises after sending them.
_REPORTED = ("lifespan.startup.failed", "lifespan.shutdown.failed", "lifespan.error")

#: How long shutdown waits for the app's lifespan task to return after it answered.
_TASK_EXIT_GRACE = 5.0


class Lifespan:
    """Drive one application's lifespan scope.

    ``startup()`` returns False (after logging why: the app's traceback, if any, then one
    summary line) when the worker must not serve; ``shutdown()`` never raises for the app's
    sake, it logs.
    """

    def __init__(self, app: ASGIApp, mode: str, logger: logging.Logger) -> None:
        if mode not in MODES:
            raise ValueError(f"lifespan mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.app = app
        self.mode = mode
        self.logger = logger
        self._state: dict[str, Any] = {}
        self._receive_queue: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._phase = "idle"  # idle -> startup -> started -> shutdown -> done
        self._answered: asyncio.Event | None = None
        self._answer: Message | None = None
        self._supported = mode != "off"
        self._startup_complete = False
        self._unanswered_error: BaseException | None = None
        self._shutdown_error: BaseException | None = None
        self.shutdown_failed = False

    @property
    def state(self) -> dict[str, Any]:
        """The lifespan state; the worker gives every request scope a shallow copy of it."""
        return self._state

    @property
    def task(self) -> asyncio.Task[None] | None:
        """The task running the app's lifespan scope; whoever cancels stray tasks must spare it
        until ``shutdown()`` has run."""
        return self._task

    @property
    def supported(self) -> bool:
        """False when lifespan is off or the app turned out not to speak it."""
        return self._supported

    async def startup(self) -> bool:
        """Send ``lifespan.startup`` and wait for the app's answer; True means serve."""
        if self.mode == "off":
            return True
        self.logger.info("Waiting for application startup.")
        self._phase = "startup"
        self._task = asyncio.get_running_loop().create_task(self._main())
        await self._ask("lifespan.startup")
        answer = self._answer
        if answer is None:  # the app raised or returned without answering
            return self._unanswered("startup")
        if answer["type"] == "lifespan.startup.failed":
            self._phase = "done"
            _log_full_message(self.logger, answer)
            self.logger.error("Application startup failed: %s", _message_line(answer))
            await self._reap()
            return False
        if answer["type"] == "lifespan.error":  # the app broke the protocol
            self._phase = "done"
            self.logger.error("Application startup failed: %s", answer["message"])
            await self._reap()
            return False
        self._phase = "started"
        self._startup_complete = True
        self.logger.info("Application startup complete.")
        return True

    async def shutdown(self) -> None:
        """Send ``lifespan.shutdown`` and wait for the app to answer or its task to end."""
        if not self._supported or self._task is None or not self._startup_complete:
            return
        if self._task.done():  # the app's lifespan task ended while serving
            self._phase = "done"
            if self._task.cancelled():
                self.logger.warning(
                    "The lifespan task was cancelled before shutdown: "
                    "the app's shutdown did not run"
                )
            return
        self.logger.info("Waiting for application shutdown.")
        self._phase = "shutdown"
        self._answer = None
        await self._ask("lifespan.shutdown")
        answer = self._answer
        self._phase = "done"
        if answer is None:
            if self._shutdown_error is not None:
                self.shutdown_failed = True
                self._traceback("shutdown", self._shutdown_error)
                self.logger.error("Application shutdown failed: %s", one_line(self._shutdown_error))
            elif self.mode == "on":
                self.shutdown_failed = True
                self.logger.error(
                    "Application shutdown failed: the app's lifespan ended without answering"
                )
        elif answer["type"] == "lifespan.shutdown.failed":
            self.shutdown_failed = True
            _log_full_message(self.logger, answer)
            self.logger.error("Application shutdown failed: %s", _message_line(answer))
        elif answer["type"] == "lifespan.error":
            self.shutdown_failed = True
            self.logger.error("Application shutdown failed: %s", answer["message"])
        else:
            self.logger.info("Application shutdown complete.")
        await self._reap()

    # -- internals

    def _scope(self) -> dict[str, Any]:
        return {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self._state,
        }

    async def _main(self) -> None:
        """The app's lifespan call; its end, normal or not, releases whoever waits."""
        try:
            await self.app(self._scope(), self._receive, self._send)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._app_raised(exc)
            if not isinstance(exc, Exception):
                raise
        finally:
            if self._answered is not None:
                self._answered.set()

    def _app_raised(self, exc: BaseException) -> None:
        answer_type = self._answer["type"] if self._answer is not None else None
        if self._phase == "startup" and answer_type is None:
            self._unanswered_error = exc  # startup() decides: unsupported or failed
        elif self._phase == "shutdown" and answer_type is None:
            self._shutdown_error = exc  # shutdown() reports it
        elif answer_type not in _REPORTED:
            # The app crashed after startup: say so now; shutdown will have nothing to do.
            self._traceback("task", exc)
            self.logger.error("Exception in the lifespan task: %s", one_line(exc))

    def _traceback(self, phase: str, exc: BaseException) -> None:
        """The app's own bug: its traceback, shown by default, before the summary line."""
        self.logger.error("Exception in the app's lifespan %s:", phase, exc_info=exc)

    def _unanswered(self, phase: str) -> bool:
        """Startup got no answer: unsupported under ``auto``, an error under ``on``."""
        exc = self._unanswered_error
        self._phase = "done"
        self._supported = False
        if self.mode == "auto":
            how = f"raised {one_line(exc)}" if exc is not None else "returned"
            self.logger.info(
                "ASGI lifespan appears unsupported by the app (it %s before answering %s); "
                "continuing without it.",
                how,
                phase,
            )
            if exc is not None:
                self.logger.debug("lifespan traceback", exc_info=exc)
            return True
        if exc is not None:
            self._traceback(phase, exc)
            self.logger.error(
                "Application startup failed: the app raised %s before answering lifespan.%s",
                one_line(exc),
                phase,
            )
        else:
            self.logger.error(
                "Application startup failed: the app returned without answering lifespan.%s "
                "(--lifespan on requires it)",
                phase,
            )
        return False

    async def _receive(self) -> Message:
        return await self._receive_queue.get()

    async def _send(self, message: Message) -> None:
        kind = message.get("type") if isinstance(message, dict) else None
        expected = {
            "startup": ("lifespan.startup.complete", "lifespan.startup.failed"),
            "shutdown": ("lifespan.shutdown.complete", "lifespan.shutdown.failed"),
        }.get(self._phase, ())
        if kind not in expected:
            error = (
                f"unexpected lifespan message {kind!r} during {self._phase}"
                if kind
                else f"lifespan message without a 'type': {message!r}"
            )
            if self._phase in ("startup", "shutdown") and self._answer is None:
                self._answer = {"type": "lifespan.error", "message": error}
                if self._answered is not None:
                    self._answered.set()
            raise RuntimeError(error)
        if self._answer is not None:
            raise RuntimeError(f"lifespan message {kind!r} sent twice")
        self._answer = dict(message)
        if self._answered is not None:
            self._answered.set()

    async def _ask(self, kind: str) -> None:
        """Hand the app the ``kind`` message and wait for its answer; cancelled, the app's
        lifespan task is cancelled with it."""
        answered = self._answered = asyncio.Event()
        await self._receive_queue.put({"type": kind})
        try:
            await answered.wait()
        except asyncio.CancelledError:
            if self._task is not None:
                self._task.cancel()
            raise

    async def _reap(self) -> None:
        """Give the app's lifespan task a bounded moment to return, then cancel it."""
        task = self._task
        if task is None or task.done():
            return
        done, _ = await asyncio.wait({task}, timeout=_TASK_EXIT_GRACE)
        if not done:
            task.cancel()
            await asyncio.wait({task}, timeout=_TASK_EXIT_GRACE)


def _message_line(answer: Message) -> str:
    """The last non-empty line of a failure message (often a formatted traceback)."""
    text = str(answer.get("message", "") or "").strip()
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "(no message given)"


def _log_full_message(logger: logging.Logger, answer: Message) -> None:
    """A multi-line failure message (usually the app's traceback) in full, before the
    summary line."""
    text = str(answer.get("message", "") or "").strip()
    if "\n" in text:
        logger.error("The app's lifespan failure message:\n%s", text)
