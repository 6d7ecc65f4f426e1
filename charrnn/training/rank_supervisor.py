"""Naming a rank that dies: the process an MPI launcher starts forks the real rank.

When a rank is killed, MPICH's Hydra SIGKILLs every other rank at once and prints a
banner with the dead process's pid, not its rank, and nothing of ours runs. So the
process the launcher starts forks: the child is the rank and trains; the parent waits
for it. As its parent we see how it died, know its rank, and (from a pipe the child
writes after every checkpoint) which checkpoint is intact; we print that as one line
and exit non-zero, which makes the launcher end the job within moments. The child dies
with us (PR_SET_PDEATHSIG) and is in its own process group, so a Ctrl-C reaches it once,
forwarded from here.

Only where that works and helps: Linux, a PMI launcher (MPICH/Hydra, Intel MPI, Slurm's
PMI-2; Open MPI's mpirun names a dead rank itself), unless CHARRNN_MPI_SUPERVISOR=0.
Nothing here imports NumPy or MPI: the fork happens before either is loaded.
"""
import os
import sys

from charrnn.training.distributed import RANK_VARS, SUPERVISOR_FD, launcher



def supervise():
    """Fork if started by a PMI launcher: the child returns from here and trains; this
    process waits for it and never returns (it exits with the child's status)."""
    import signal
    found = launcher()
    if (not sys.platform.startswith("linux") or found is None or found[1] == 1
            or "OMPI_COMM_WORLD_SIZE" in os.environ or SUPERVISOR_FD in os.environ
            or os.environ.get("CHARRNN_MPI_SUPERVISOR") == "0"):
        return
    rank = next((os.environ[v] for v in RANK_VARS if v in os.environ), "?")
    r, w = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.environ[SUPERVISOR_FD] = str(w)
        _die_with_parent()
        try:
            os.setpgid(0, 0)
        except OSError:
            pass
        return
    os.close(w)
    _watch(pid, r, rank, signal)


def _die_with_parent():
    import ctypes
    import signal
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)   # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() == 1:                        # the parent died before prctl
        os._exit(1)


def _watch(pid, r, rank, signal):
    import socket
    import threading
    import time
    last = {}   # the worker's newest "saved <step> <size> <run dir>" line

    def reader():
        with os.fdopen(r, "r") as f:
            for line in f:
                parts = line.rstrip("\n").split(" ", 3)
                if len(parts) == 4 and parts[0] == "saved":
                    last.update(step=parts[1], size=parts[2], run=parts[3])
    threading.Thread(target=reader, daemon=True).start()
    sent = {}

    def forward(signum, frame):
        # a Ctrl-C can reach us twice (terminal and launcher): forward one per second
        now = time.monotonic()
        if now - sent.get(signum, -10.0) > 1.0:
            sent[signum] = now
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, forward)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
            break
        except InterruptedError:
            continue
    for s in (signal.SIGINT, signal.SIGTERM):   # the pid is free now: nothing to forward
        signal.signal(s, signal.SIG_DFL)
    if os.WIFEXITED(status):
        if os.WEXITSTATUS(status):
            _release_pmi(time)
        os._exit(os.WEXITSTATUS(status))
    signum = os.WTERMSIG(status)
    try:
        name = signal.Signals(signum).name
    except ValueError:
        name = f"signal {signum}"
    where = ""
    if last:
        where = (f"; the checkpoint of step {last['step']} in {last['run']} is intact, resume "
                 f"with: mpiexec -n {last['size']} charrnn train --out {last['run']} --resume")
    sys.stderr.write(f"charrnn: rank {rank} (pid {pid} on {socket.gethostname()}) was killed "
                     f"by {name}: ending the job{where}\n")
    sys.stderr.flush()
    _release_pmi(time)
    os._exit(128 + signum)


def _release_pmi(time):
    """Close this process's copy of the rank's PMI connection, then give the launcher a
    moment. Hydra ends a job when a rank's PMI connection closes before MPI_Finalize:
    that is what stops the other ranks, which may be waiting in a collective for the dead
    one. When this process exited with the connection still open, Hydra saw the
    connection, the pipes and the exit all at once and, about one time in fifty, handled
    the exit first and never ended the job: the other ranks spun in MPI_Gather for ever.
    Closed while we still live, the connection's end comes first; Hydra's SIGKILL (to
    every rank on the node, this one too) usually arrives within the second."""
    fd = os.environ.get("PMI_FD", "")
    if not fd.isdigit():
        return
    try:
        os.close(int(fd))
    except OSError:
        return
    time.sleep(1.0)
