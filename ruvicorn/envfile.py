"""``--env-file``: KEY=VALUE lines loaded into the environment before the app is imported.

The format is the common dotenv subset: ``KEY=VALUE`` per line, blank lines and ``#``
comments, an optional ``export`` prefix, values in single quotes (taken literally) or
double quotes (``\\n``, ``\\t``, ``\\"`` and ``\\\\`` escapes; may span lines), and a ``#``
after whitespace ending an unquoted value. Variables are not expanded. Variables already
in the environment win over the file, so a deployment can override it.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping

from ruvicorn.config import ConfigError

_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "$": "$"}


def parse(text: str, where: str) -> dict[str, str]:
    """The variables ``text`` sets, in order; ConfigError naming ``where:line`` when malformed."""
    result: dict[str, str] = {}
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        number = index + 1
        line = lines[index].strip()
        index += 1
        if not line or line.startswith("#"):
            continue
        if line.startswith(("export ", "export\t")):
            line = line[len("export") :].lstrip()
        key, sep, rest = line.partition("=")
        key = key.strip()
        if not sep or not _KEY.fullmatch(key):
            raise ConfigError(f"{where}:{number}: expected KEY=VALUE, got {line[:40]!r}")
        rest = rest.lstrip()
        if rest[:1] in ("'", '"'):
            quote = rest[0]
            body = rest[1:]
            # A quoted value may continue on the following lines until its closing quote.
            while _closing(body, quote) < 0 and index < len(lines):
                body += "\n" + lines[index]
                index += 1
            end = _closing(body, quote)
            if end < 0:
                raise ConfigError(f"{where}:{number}: {key}: the {quote} quote is never closed")
            after = body[end + 1 :].strip()
            if after and not after.startswith("#"):
                raise ConfigError(f"{where}:{number}: {key}: unexpected text after the quotes")
            raw = body[:end]
            result[key] = raw if quote == "'" else _unescape(raw)
        else:
            value = re.split(r"\s#", rest, maxsplit=1)[0]
            result[key] = value.strip()
    return result


def _closing(body: str, quote: str) -> int:
    """Index of the quote that ends ``body``, skipping backslash escapes in double quotes."""
    i = 0
    while i < len(body):
        if body[i] == "\\" and quote == '"':
            i += 2
            continue
        if body[i] == quote:
            return i
        i += 1
    return -1


def _unescape(raw: str) -> str:
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group(0)), raw, flags=re.S)


def load(path: str, environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set the variables of ``path`` that are not set yet; returns those it set."""
    env = os.environ if environ is None else environ
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise ConfigError(f"cannot read --env-file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"--env-file {path} is not UTF-8 text") from None
    added = {k: v for k, v in parse(text, path).items() if k not in env}
    env.update(added)
    return added
