"""The processes of the tested topology (tests/topology/): each started in a session of its
own with its output in a log file, stopped by its process group, and told to stop too when
the test process dies without its finalizers (a kill): the kernel sends it SIGTERM then."""

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# prctl(PR_SET_PDEATHSIG, SIGTERM): a child whose parent (this test process) dies gets SIGTERM.
# Bound here, in the parent: the child only calls it between fork and exec.
_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl


def _stop_with_parent() -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listens(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


class TopologyError(AssertionError):
    """A part of the topology did not start or answer: the message has its log's tail."""


def wait_until(condition: Callable[[], bool], timeout: float, what: str, *logs: "Process"):
    deadline = time.monotonic() + timeout
    while not condition():
        for process in logs:
            if process.popen.poll() is not None:
                raise TopologyError(f"{process.name} exited: {what}\n{process.tail()}")
        if time.monotonic() > deadline:
            tails = "\n".join(process.tail() for process in logs)
            raise TopologyError(f"{what} within {timeout:.0f} s\n{tails}")
        time.sleep(0.1)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path

    def tail(self, lines: int = 40) -> str:
        try:
            text = self.log.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            text = ["(no log)"]
        return f"--- {self.name} ({self.log}) ---\n" + "\n".join(text)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM to the process, then SIGKILL to its whole group after `timeout` seconds
        (and to whatever of the group outlived it)."""
        if self.popen.poll() is None:
            # The leader first: gunicorn's master and Celery's main process stop their
            # workers themselves, as under systemd's KillMode=mixed.
            self.popen.terminate()
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()
        # What the group's leader left behind (a worker that outlived its master).
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def spawn(name: str, command: list, env: dict[str, str], logs: Path, cwd: Path) -> Process:
    log = logs / f"{name}.log"
    with log.open("ab") as out:
        popen = subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_stop_with_parent,
        )
    return Process(name, popen, log)


@dataclass
class Processes:
    """Everything started, stopped in the reverse order."""

    started: list[Process] = field(default_factory=list)

    def spawn(
        self, name: str, command: list, env: dict[str, str], logs: Path, cwd: Path, at: int = -1
    ) -> Process:
        """Start a process, stopped after those before `at` in the list (default: first)."""
        process = spawn(name, command, env, logs, cwd)
        self.started.insert(len(self.started) if at < 0 else at, process)
        return process

    def stop_all(self) -> dict[str, float]:
        """Stop each; the seconds each took to stop."""
        took = {}
        for process in reversed(self.started):
            start = time.monotonic()
            process.stop()
            took[process.name] = time.monotonic() - start
        return took


# Memory of a gunicorn node's workers, from /proc.


def status_kb(pid: int, name: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    raise LookupError(f"no {name} in /proc/{pid}/status")


def reset_peak(pid: int) -> bool:
    """Start the kernel's peak resident set (VmHWM) of `pid` anew; False where it may not."""
    try:
        with open(f"/proc/{pid}/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return False
    return True
