"""Python backend stubs that die: what Triton 2.51 does, and how serve notices.

Every model here runs in a Python backend stub (``triton_python_backend_stub``), one process
per model instance, a child of tritonserver in its process group: Python models, and the
Python-based ``onnxruntime`` and ``fil`` backends alike. Read from python_backend r24.10
(``src/python_be.cc``, ``src/stub_launcher.cc``): when a stub dies (SIGKILL, the OOM killer, a
crash in native code), the backend does not restart it and does not mark the model
unavailable. The model stays READY, the server stays ready, and every request to it fails
after about a second with "Stub process '<instance>' is not healthy." (the parent waits for
the stub's health flag, then gives up). Restarting a stub on failure came later, and only
for some paths.

So serve watches the stubs itself (``StubWatch``, from /proc: no privileges needed), and
reloads a model whose stub died (an explicit load of a loaded model starts new instances,
hence new stubs), counted against ``--max-restarts``.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Stub", "StubWatch", "stubs_of"]

_STUB = "triton_python_backend_stub"
_INSTANCE_ARG = 8  # stub argv: model_path shm_region shm_size shm_growth parent_pid lib ipc name


@dataclass(frozen=True)
class Stub:
    pid: int
    instance: str  # Triton's model instance name, e.g. "echo_0_0"


def _members(pgid: int) -> list[tuple[int, list[str], str]]:
    """(pid, argv, state) of every process of group ``pgid``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat[stat.rfind(")") + 2 :].split()
            if int(fields[2]) != pgid:
                continue
            argv = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            continue
        found.append((int(entry.name), argv, fields[0]))
    return found


def stubs_of(pgid: int) -> list[Stub]:
    """The living Python backend stubs in tritonserver's process group (zombies excluded)."""
    stubs = []
    for pid, argv, state in _members(pgid):
        if state == "Z":
            continue
        index = next((i for i, a in enumerate(argv) if Path(a).name == _STUB), None)
        if index is not None and len(argv) > index + _INSTANCE_ARG:
            stubs.append(Stub(pid, argv[index + _INSTANCE_ARG]))
    return stubs


def _alive(pid: int) -> bool:
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rfind(")") + 2 :].split()[0] != "Z"
    return False


class StubWatch:
    """Remembers the stubs of the models it is told about and reports those that died.

    watch = StubWatch(server_pid, models=["echo", "pipeline"])
    for model, stub in watch.dead():     # call every few hundred ms
        ...
    """

    def __init__(self, pgid: int, models: list[str]) -> None:
        self.pgid = pgid
        # longest name first: "echo_2" must not be taken for an instance of "echo"
        self.models = sorted(models, key=len, reverse=True)
        self.known: dict[int, tuple[str, Stub]] = {}

    def model_of(self, instance: str) -> str | None:
        return next((m for m in self.models if instance.startswith(m + "_")), None)

    def scan(self) -> None:
        """Learn the stubs that exist now (new ones after a load)."""
        for stub in stubs_of(self.pgid):
            model = self.model_of(stub.instance)
            if model is not None and stub.pid not in self.known:
                self.known[stub.pid] = (model, stub)

    def forget(self, model: str) -> None:
        """Stop watching ``model``'s stubs (it is being unloaded or reloaded on purpose)."""
        self.known = {pid: ms for pid, ms in self.known.items() if ms[0] != model}

    def any_dead(self) -> bool:
        """Whether a known stub has exited (without forgetting it: ``dead()`` reports it)."""
        return any(not _alive(pid) for pid in list(self.known))

    def dead(self) -> list[tuple[str, Stub]]:
        """The known stubs that exited since the last call, with their models (cheap: reads
        only their own /proc entries; ``scan()`` learns new stubs)."""
        gone = [(model, stub) for pid, (model, stub) in self.known.items() if not _alive(pid)]
        for _, stub in gone:
            self.known.pop(stub.pid, None)
        return gone
