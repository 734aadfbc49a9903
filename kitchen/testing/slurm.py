"""A real one-node SLURM cluster for the scheduler tests: Debian's ``slurm-wlm`` and ``munge``.

``start_cluster`` (the ``slurm`` fixture of tests/scheduler) starts ``munged`` as the munge user
(unless one runs already), then ``slurmctld`` and ``slurmd`` in the foreground of processes
it owns, with a one-node ``slurm.conf`` in a temp folder (``ProctrackType=proctrack/linuxproc``:
no cgroups and no systemd here), on ports of their own; the SLURM commands find it through
``SLURM_CONF``. It needs root. Without the binaries the fixture skips its tests, except under
CI, where ``.ci/run`` installs them.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Slurm:
    """The cluster, and the commands a test drives it with."""

    root: Path
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def run(self, *cmd: str, env: dict[str, str] | None = None) -> str:
        r = subprocess.run(
            cmd, env={**(env or os.environ), **self.env}, capture_output=True, text=True, timeout=60
        )
        if r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)}: exit {r.returncode}: {r.stderr.strip()}")
        return r.stdout

    def sbatch(self, script: Path, *args: str, env: dict[str, str], out: Path) -> int:
        text = self.run(
            "sbatch",
            "--parsable",
            f"--output={out}",
            f"--chdir={self.root}",
            str(script),
            *args,
            env=env,
        )
        return int(text.strip().split(";")[0])

    def job(self, job_id: int) -> dict[str, str]:
        """``scontrol show job``'s fields (JobState, Restarts, ExitCode, …)."""
        text = self.run("scontrol", "show", "job", str(job_id), "--oneliner")
        return dict(re.findall(r"(\w+)=(\S*)", text))

    def wait_state(self, job_id: int, states: tuple[str, ...], timeout_s: float = 120) -> str:
        deadline = time.monotonic() + timeout_s
        state = ""
        while time.monotonic() < deadline:
            state = self.job(job_id).get("JobState", "")
            if state in states:
                return state
            time.sleep(0.2)
        raise AssertionError(f"job {job_id} stayed {state}, not one of {states}")

    def start_now(self, job_id: int) -> None:
        """A requeued job waits about two minutes before it may start again: not in a test.

        Not in the second of the requeue either: slurmd refuses a job whose credential is from
        the second its previous credential was revoked in ("Job credential revoked")."""
        self.wait_state(job_id, ("PENDING",))
        time.sleep(2.0)
        self.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")

    def stop(self) -> None:
        for proc in reversed(self.procs):
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()


def _munge() -> subprocess.Popen[bytes] | None:
    """Start munged as the munge user, unless one answers already."""
    if subprocess.run(["munge", "-n"], capture_output=True).returncode == 0:
        return None
    run_dir = Path("/run/munge")
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.chown(run_dir, "munge", "munge")
    proc = subprocess.Popen(
        ["runuser", "-u", "munge", "--", "munged", "--foreground"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 20
    while subprocess.run(["munge", "-n"], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            proc.kill()
            raise AssertionError("munged did not start")
        time.sleep(0.2)
    return proc


def missing() -> str | None:
    """Why this machine cannot run the cluster, or None."""
    absent = [d for d in DAEMONS if shutil.which(d) is None]
    if absent:
        return f"SLURM is not installed ({', '.join(absent)})"
    return "the SLURM daemons need root" if os.geteuid() != 0 else None


def start_cluster(root: Path) -> Slurm:
    """Configure and start the cluster under ``root``; stopped by ``Slurm.stop``."""
    for sub in ("state", "spool", "log"):
        (root / sub).mkdir()
    host = socket.gethostname().split(".")[0]
    conf = root / "slurm.conf"
    conf.write_text(
        "\n".join(
            [
                "ClusterName=kitchen",
                f"SlurmctldHost={host}",
                f"SlurmctldPort={_free_port()}",
                f"SlurmdPort={_free_port()}",
                "SlurmUser=root",
                "SlurmdUser=root",
                "AuthType=auth/munge",
                "ProctrackType=proctrack/linuxproc",
                "TaskPlugin=task/none",
                "SwitchType=switch/none",
                "MpiDefault=none",
                "ReturnToService=2",
                "SchedulerType=sched/backfill",
                "SelectType=select/cons_tres",
                "SelectTypeParameters=CR_Core",
                f"StateSaveLocation={root / 'state'}",
                f"SlurmdSpoolDir={root / 'spool'}",
                f"SlurmctldPidFile={root / 'slurmctld.pid'}",
                f"SlurmdPidFile={root / 'slurmd.pid'}",
                f"SlurmctldLogFile={root / 'log' / 'slurmctld.log'}",
                f"SlurmdLogFile={root / 'log' / 'slurmd.log'}",
                "JobCompType=jobcomp/none",
                "AccountingStorageType=accounting_storage/none",
                "JobAcctGatherType=jobacct_gather/none",
                "KillWait=30",
                "MinJobAge=600",
                f"NodeName={host} CPUs={os.cpu_count() or 1} State=UNKNOWN",
                "PartitionName=main Nodes=ALL Default=YES MaxTime=INFINITE State=UP "
                "OverSubscribe=YES",
                "",
            ]
        )
    )
    cluster = Slurm(root, {"SLURM_CONF": str(conf)})
    munged = _munge()
    if munged is not None:
        cluster.procs.append(munged)
    env = {**os.environ, **cluster.env}
    for cmd in (["slurmctld", "-D", "-i"], ["slurmd", "-D"]):
        with open(root / "log" / f"{cmd[0]}.out", "wb") as log:
            proc = subprocess.Popen([*cmd, "-f", str(conf)], env=env, stdout=log, stderr=log)
        cluster.procs.append(proc)
    try:
        deadline = time.monotonic() + 60
        while True:
            r = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True)
            if r.returncode == 0 and r.stdout.strip() == "idle":
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"the SLURM node never became idle: {r.stdout}{r.stderr}")
            time.sleep(0.3)
    except BaseException:
        cluster.stop()
        raise
    return cluster
