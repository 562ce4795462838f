"""Resource failures as one clear error: disk full, permission denied, out of file descriptors,
a file or folder that vanished while in use.

A failed ``write()`` on a full disk often surfaces as another exception raised while the
library cleans up (``zipfile``/``numpy.savez``: "ValueError: seek of closed file"), with the
real ``OSError`` as its ``__context__``. ``resource_error`` finds that ``OSError`` anywhere
in the chain and turns it into a ``ResourceError`` naming the path and the cause:

    try:
        write_everything(staging)
    except Exception as exc:
        if (error := resource_error(exc, where=staging)) is not None:
            raise error from None
        raise
"""

from __future__ import annotations

import errno
import os
import resource
from pathlib import Path

from triton_deploy.errors import ResourceError

__all__ = ["EXHAUSTION_ERRNOS", "RESOURCE_ERRNOS", "find_os_error", "resource_error"]


def _open_files_limit() -> str:
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return "unlimited" if soft == resource.RLIM_INFINITY else str(soft)


#: errno -> (what happened, what to do)
RESOURCE_ERRNOS: dict[int, tuple[str, str]] = {
    errno.ENOSPC: ("no space left on the device (disk full)", "free space or write elsewhere"),
    errno.EDQUOT: ("disk quota exceeded", "free space or write elsewhere"),
    errno.EACCES: ("permission denied", "check the owner and mode of the path"),
    errno.EPERM: ("operation not permitted", "check the owner and mode of the path"),
    errno.EROFS: ("read-only file system", "write elsewhere"),
    errno.EMFILE: (
        "too many open files (this process's limit: {limit})",
        "raise it (ulimit -n) or close other work",
    ),
    errno.ENFILE: ("too many open files in the system", "close other work"),
    errno.ENOENT: (
        "no such file or directory (removed while in use?)",
        "keep it in place while tdeploy runs",
    ),
    errno.ENOMEM: ("out of memory", "free memory or use a larger machine"),
}


#: The machine ran out of something: this is the error to report, whatever else was checked.
EXHAUSTION_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EMFILE, errno.ENFILE, errno.ENOMEM}
)


def find_os_error(exc: BaseException) -> OSError | None:
    """The first ``OSError`` with a resource errno in ``exc``'s chain (itself, its cause, the
    exception it was raised while handling), or None."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in RESOURCE_ERRNOS:
            return current
        current = current.__cause__ or current.__context__
    return None


def resource_error(
    exc: BaseException, *, where: str | os.PathLike[str] | None = None
) -> ResourceError | None:
    """A ``ResourceError`` for the resource ``OSError`` in ``exc``'s chain; None if there is
    none. ``where`` names the place when the error itself names no file (a failed write)."""
    found = find_os_error(exc)
    if found is None:
        return None
    what, todo = RESOURCE_ERRNOS[found.errno or 0]
    what = what.format(limit=_open_files_limit())
    path = found.filename if found.filename is not None else where
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    place = f"{Path(path)}: " if path is not None else ""
    if found.errno in (errno.EMFILE, errno.ENFILE) and found.filename is not None:
        # the file that could not be opened is incidental: the process is out of descriptors
        place = ""
        what = f"{what} (opening {os.fsdecode(found.filename)})"
    other = ""
    if found.filename2 is not None:
        other = f" (with {os.fsdecode(found.filename2)})"
    return ResourceError(
        f"{place}{what}{other}: {todo}",
        path=str(path) if path is not None else None,
        errno=found.errno,
    )
