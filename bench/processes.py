"""Child processes of the benchmark: start with output to files, wait until ready, always stop.

Also reads what a process tree costs in memory: the peak resident set (VmHWM) of a process and
its descendants, which Linux lets a process's owner reset (``/proc/PID/clear_refs``) so each
workload gets its own peak.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

PR_SET_PDEATHSIG = 1


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (bound to port 0, then closed)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    """Poll ``check`` every 50 ms; TimeoutError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM it if the benchmark itself is killed outright
    (SIGTERM, not SIGKILL, so that nginx's master stops its workers too)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """One started process, its stdout and stderr in files under ``directory``."""

    def __init__(
        self,
        name: str,
        command: Sequence[str],
        *,
        directory: Path,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.stdout_path = directory / f"{name}.out"
        self.stderr_path = directory / f"{name}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(  # noqa: S603 - commands built by the benchmark
                list(command),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                # Its own session: Ctrl-C reaches only the benchmark, which stops it in order.
                start_new_session=True,
                preexec_fn=_die_with_parent,  # safe here: the benchmark runs no threads
            )
        self.pid = self.process.pid

    def running(self) -> bool:
        return self.process.poll() is None

    def output(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def log_tail(self, lines: int = 15) -> str:
        text = self.stdout_path.read_text(errors="replace")
        text += self.stderr_path.read_text(errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def wait_for_output(self, text: str, *, timeout: float) -> None:
        """Wait until ``text`` is on its stdout; RuntimeError with its log if it exits first."""

        def seen() -> bool:
            if text in self.output():
                return True
            if not self.running():
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            return False

        wait_until(seen, timeout=timeout, what=f"{self.name} printing {text!r}")

    def stop(self, *, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL after ``grace``; descendants left behind are killed too."""
        descendants = [(pid, _start_time(pid)) for pid in process_tree(self.pid)[1:]]
        if self.running():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        for pid, started in descendants:
            if started is not None and _start_time(pid) == started:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks (tells a pid apart from a reused one)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[19])


def _parent(pid_dir: Path) -> int | None:
    try:
        stat = (pid_dir / "stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants, found through /proc (empty when it is gone)."""
    if not Path(f"/proc/{pid}").exists():
        return []
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (parent := _parent(entry)) is not None:
            children.setdefault(parent, []).append(int(entry.name))
    tree = [pid]
    for member in tree:  # grows while it is walked: breadth first
        tree.extend(children.get(member, []))
    return tree


def reset_peak_rss(pids: Sequence[int]) -> None:
    """Start a new peak-RSS window for each process (Linux: ``5`` to clear_refs)."""
    for pid in pids:
        with contextlib.suppress(OSError):
            Path(f"/proc/{pid}/clear_refs").write_text("5")


def peak_rss(pids: Sequence[int]) -> list[int]:
    """Each process's peak resident set size (VmHWM) in bytes; 0 for one that is gone."""
    peaks = []
    for pid in pids:
        peak = 0
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = int(line.split()[1]) * 1024
        peaks.append(peak)
    return peaks


def machine_cpu() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine so far, in clock ticks, from /proc/stat."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def tree_cpu(pid: int) -> int:
    """CPU time used by ``pid`` and its descendants, including those already reaped
    (counted in their parent's cutime/cstime), in clock ticks."""
    total = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{member}/stat").read_text().rpartition(")")[2].split()
            total += sum(int(n) for n in fields[11:15])  # utime stime cutime cstime
    return total


def machine_steal() -> tuple[int, int]:
    """(steal, total) CPU time of the whole machine so far, in clock ticks: steal is the time
    a shared VM's hypervisor ran something else on its CPUs."""
    fields = [int(n) for n in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return fields[7], sum(fields)


def steal_share(before: tuple[int, int], after: tuple[int, int]) -> float:
    """The share of the time between two ``machine_steal`` readings that was stolen."""
    total = after[1] - before[1]
    return (after[0] - before[0]) / total if total else 0.0
