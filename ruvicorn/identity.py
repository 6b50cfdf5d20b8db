"""``--user``, ``--group``, ``--umask`` and ``--chdir``: the process identity workers serve with.

The master keeps the identity it was started with (it may need it to bind a privileged port,
write its pid file or signal workers); each worker switches to ``--user``/``--group`` right
after fork, before it imports the application, so no application code runs as root.
"""

from __future__ import annotations

import grp
import os
import pwd


def user_id(name: str) -> int | None:
    """The uid of a user name or number, or None when there is no such user."""
    if name.isdigit():
        return int(name)
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def group_id(name: str) -> int | None:
    """The gid of a group name or number, or None when there is no such group."""
    if name.isdigit():
        return int(name)
    try:
        return grp.getgrnam(name).gr_gid
    except KeyError:
        return None


def _primary_group(uid: int) -> int | None:
    try:
        return pwd.getpwuid(uid).pw_gid
    except KeyError:
        return None


def _user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def switch_problem(user: str | None, group: str | None) -> str | None:
    """Why this process could not switch to ``user``/``group``, or None when it can.

    Checked by the master before any worker is forked, so a missing privilege is one line at
    start instead of every worker failing after fork.
    """
    uid = user_id(user) if user is not None else os.geteuid()
    gid = group_id(group) if group is not None else None
    wants_change = (uid != os.geteuid()) or (gid is not None and gid != os.getegid())
    if wants_change and os.geteuid() != 0:
        asked = " and ".join(
            f"{flag} {value}" for flag, value in (("--user", user), ("--group", group)) if value
        )
        return f"{asked} needs the master to run as root (it runs as uid {os.geteuid()})"
    return None


def drop_privileges(user: str | None, group: str | None) -> None:
    """Become ``user``/``group`` for good (group first: after setuid it is not allowed).

    With ``--user`` alone the user's primary group and supplementary groups are taken.
    """
    if user is None and group is None:
        return
    uid = user_id(user) if user is not None else None
    gid = group_id(group) if group is not None else None
    if gid is None and uid is not None:
        gid = _primary_group(uid)
    if gid is not None and gid != os.getegid():
        os.setgid(gid)
    if uid is not None and uid != os.geteuid():
        name = _user_name(uid)
        if name is not None and gid is not None:
            os.initgroups(name, gid)
        else:
            os.setgroups([gid] if gid is not None else [])
        os.setuid(uid)
    elif gid is not None and os.geteuid() == 0:
        os.setgroups([gid])
