"""The reaper process: cleans up after a tritonserver whose owner died (see ``lifecycle.Reaper``).

    python -m triton_deploy.runtime.reaper     # reads JSON lines on stdin until EOF

Lines: ``{"pgid": N, "shm_prefix": "...", "workdir": "..."}`` (what to clean; a later line
replaces it, e.g. after a restart) and ``{"release": true}`` (the owner cleaned up itself).
At EOF without a release, the owner is gone: kill the group, remove the regions and the folder.
Imports nothing heavy: it starts in a few tens of milliseconds and holds little memory.
"""

from __future__ import annotations

import json
import signal
import sys

from triton_deploy.runtime.lifecycle import cleanup


def main() -> int:
    # The owner's terminal or process group may be signalled; only EOF ends the watch.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    target: dict[str, object] = {}
    released = False
    for line in sys.stdin.buffer:
        try:
            message = json.loads(line)
        except ValueError:
            continue
        if message.get("release"):
            released = True
        else:
            target, released = message, False
    if released or not target:
        return 0
    pgid = target.get("pgid")
    prefix = target.get("shm_prefix")
    workdir = target.get("workdir")
    for done in cleanup(
        pgid=int(pgid) if isinstance(pgid, int) else None,
        shm_prefix=str(prefix) if prefix else None,
        workdir=str(workdir) if workdir else None,
    ):
        print(f"tdeploy reaper: {done}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
