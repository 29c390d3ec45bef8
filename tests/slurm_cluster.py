"""A throwaway single-node SLURM cluster (munged, slurmctld, slurmd) for tests.

Everything lives under one directory: a fresh MUNGE key and socket, slurm.conf,
state, spool, logs and PID files. Daemons run in the foreground as children of
this process, on free TCP ports, so two clusters (or a system SLURM) do not
clash; :meth:`SlurmCluster.stop` ends exactly the processes it started, by PID.
No cgroups, no accounting: ``proctrack/linuxproc``, ``task/none``,
``accounting_storage/none``. Clients find the cluster through ``SLURM_CONF``
(see :attr:`SlurmCluster.env`).

    cluster = SlurmCluster(tmp_dir)
    cluster.start()          # raises SlurmStartError with the daemons' logs
    ... sbatch/squeue with env=cluster.env ...
    cluster.stop()
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sinfo", "scontrol", "scancel", "srun")
PARTITION = "debug"


class SlurmStartError(RuntimeError):
    """The cluster did not come up; the message carries the daemons' log tails."""


def missing_requirements() -> str | None:
    """Why a cluster cannot be started here (a skip reason), or None."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "needs root: slurmd runs jobs as root here (SlurmUser=root)"
    missing = [name for name in DAEMONS + CLIENTS if _which(name) is None]
    if missing:
        return ("SLURM/MUNGE not installed (missing " + ", ".join(missing) + "); install "
                "Debian's slurmctld slurmd slurm-client munge, as .ci/run does")
    return None


def _which(name: str) -> str | None:
    # munged and the slurm daemons live in sbin, which a non-login PATH may lack.
    path = os.environ.get("PATH", "") + os.pathsep + "/usr/sbin" + os.pathsep + "/sbin"
    return shutil.which(name, path=path)


def _die_with_parent() -> None:
    """In the child: SIGTERM when the test process dies, should stop() never run (Linux)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _mem_total_mb() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    except OSError:
        pass
    return 4096


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return "(no log)"


class SlurmCluster:
    """munged + slurmctld + slurmd for this one host, rooted at ``root``."""

    def __init__(self, root: Path, cpus: int | None = None, min_job_age: int = 300):
        self.root = Path(root)
        self.cpus = cpus or os.cpu_count() or 1
        self.min_job_age = min_job_age
        self.host = socket.gethostname().split(".")[0]
        self.conf = self.root / "slurm.conf"
        self.munge_socket = self.root / "munge" / "munge.socket"
        self._short_dir: str | None = None
        if len(str(self.munge_socket)) > 100:  # a Unix socket path has at most 107 bytes
            self._short_dir = tempfile.mkdtemp(prefix="kdrepro-munge-")
            self.munge_socket = Path(self._short_dir) / "munge.socket"
        self.bin = self.root / "bin"
        self.procs: dict[str, subprocess.Popen] = {}

    @property
    def env(self) -> dict[str, str]:
        """Environment for SLURM clients (and, via sbatch --export=ALL, for jobs)."""
        # Drop settings of any SLURM this process itself runs under (job ids, defaults).
        inherited = {k: v for k, v in os.environ.items()
                     if not k.startswith(("SLURM_", "SBATCH_", "SRUN_", "SALLOC_", "SQUEUE_"))}
        path = os.pathsep.join((str(self.bin), inherited.get("PATH", ""), "/usr/sbin", "/sbin"))
        return {**inherited, "SLURM_CONF": str(self.conf), "PATH": path}

    # -- configuration -----------------------------------------------------

    def write_config(self) -> None:
        for sub in ("munge", "state", "spool", "log", "run", "bin"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        # Inside a job, snakemake-executor-plugin-slurm-jobstep (0.6) runs each rule
        # through `srun` with every SLURM_* variable removed but the job's identity,
        # SLURM_CONF included; real clusters keep slurm.conf where srun looks by
        # default (/etc/slurm, or configless). This cluster's lives here, so `srun`
        # on the jobs' PATH (sbatch --export=ALL) is a wrapper that points back to it.
        srun = self.bin / "srun"
        srun.write_text(f'#!/bin/sh\nSLURM_CONF={shlex.quote(str(self.conf))} '
                        f'exec {shlex.quote(_which("srun") or "srun")} "$@"\n')
        os.chmod(srun, 0o755)
        os.chmod(self.root / "munge", 0o700)
        key = self.root / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o600)
        # Memory a bit under the machine's, so a job's --mem is always satisfiable.
        real_memory = max(1024, int(_mem_total_mb() * 0.9))
        r = self.root
        self.conf.write_text("\n".join([
            "# Single-host test cluster written by tests/slurm_cluster.py",
            "ClusterName=kdrepro-test",
            f"SlurmctldHost={self.host}(127.0.0.1)",
            f"SlurmctldPort={_free_port()}",
            f"SlurmdPort={_free_port()}",
            "SlurmUser=root",
            "SlurmdUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            "ProctrackType=proctrack/linuxproc",
            "TaskPlugin=task/none",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            "MpiDefault=none",
            "SwitchType=switch/none",
            "SchedulerType=sched/builtin",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_CPU",
            "ReturnToService=2",
            # The plugin's squeue status check needs finished jobs to stay visible.
            f"MinJobAge={self.min_job_age}",
            "SlurmctldTimeout=30",
            "SlurmdTimeout=30",
            "InactiveLimit=0",
            "KillWait=5",
            "Waittime=0",
            f"StateSaveLocation={r / 'state'}",
            f"SlurmdSpoolDir={r / 'spool'}",
            f"SlurmctldPidFile={r / 'run' / 'slurmctld.pid'}",
            f"SlurmdPidFile={r / 'run' / 'slurmd.pid'}",
            f"SlurmctldLogFile={r / 'log' / 'slurmctld.log'}",
            f"SlurmdLogFile={r / 'log' / 'slurmd.log'}",
            "SlurmctldDebug=info",
            "SlurmdDebug=info",
            f"NodeName={self.host} NodeAddr=127.0.0.1 CPUs={self.cpus} "
            f"RealMemory={real_memory} State=UNKNOWN",
            f"PartitionName={PARTITION} Nodes={self.host} Default=YES MaxTime=INFINITE State=UP",
            "",
        ]))

    # -- lifecycle ---------------------------------------------------------

    def _spawn(self, name: str, args: list[str]) -> None:
        log = open(self.root / "log" / f"{name}.out", "wb")
        try:
            proc = subprocess.Popen([_which(name) or name, *args], stdout=log,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    env=self.env, cwd=self.root, start_new_session=True,
                                    preexec_fn=_die_with_parent)
        finally:
            log.close()
        self.procs[name] = proc

    def _logs(self) -> str:
        parts = []
        for path in sorted((self.root / "log").glob("*")):
            parts.append(f"--- {path.name} ---\n{_tail(path)}")
        return "\n".join(parts)

    def _fail(self, what: str) -> None:
        raise SlurmStartError(f"{what}\n{self._logs()}")

    def start(self, timeout: float = 60) -> None:
        """Start the three daemons and wait until the node is idle."""
        self.write_config()
        m = self.root / "munge"
        self._spawn("munged", ["--foreground", "--force", f"--socket={self.munge_socket}",
                               f"--key-file={m / 'munge.key'}", f"--pid-file={m / 'munged.pid'}",
                               f"--seed-file={m / 'munged.seed'}",
                               f"--log-file={self.root / 'log' / 'munged.log'}"])
        self._wait(lambda: self.munge_socket.exists(), timeout, "munged did not create its socket",
                   "munged")
        self._spawn("slurmctld", ["-D", "-i", "-f", str(self.conf)])
        self._wait(lambda: self._ok(["scontrol", "ping"], "UP"), timeout,
                   "slurmctld did not answer `scontrol ping`", "slurmctld")
        self._spawn("slurmd", ["-D", "-f", str(self.conf)])
        self._wait(self._node_idle, timeout, "the node did not become idle", "slurmd")

    def _ok(self, cmd: list[str], expect: str) -> bool:
        try:
            out = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.returncode == 0 and expect in out.stdout

    def _node_idle(self) -> bool:
        try:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], env=self.env,
                                 capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return False
        return out.returncode == 0 and out.stdout.strip() == "idle"

    def _wait(self, ready, timeout: float, what: str, daemon: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if ready():
                return
            if self.procs[daemon].poll() is not None:
                self._fail(f"{daemon} exited with {self.procs[daemon].returncode}; {what}")
            time.sleep(0.5)
        self._fail(f"{what} within {timeout:.0f} s")

    def cancel_all(self, timeout: float = 30) -> None:
        """scancel every job of this cluster and wait until squeue shows none running."""
        if "slurmctld" not in self.procs or self.procs["slurmctld"].poll() is not None:
            return
        subprocess.run(["scancel", "--full", "--user", "root"], env=self.env,
                       capture_output=True, timeout=15)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["squeue", "-h", "-t", "PD,R,CG,CF,S", "-o", "%i"],
                                 env=self.env, capture_output=True, text=True, timeout=10)
            if out.returncode != 0 or not out.stdout.strip():
                return
            time.sleep(1)

    def stop(self) -> None:
        """Cancel leftover jobs, then end slurmd, slurmctld and munged by PID."""
        try:
            self.cancel_all()
        except (OSError, subprocess.SubprocessError):
            pass
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.procs.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if self._short_dir:
            shutil.rmtree(self._short_dir, ignore_errors=True)

    def __enter__(self) -> SlurmCluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
