"""Data-parallel training over MPI: the ranks' side of `mpiexec -n N charrnn train`.

The global batch of B streams is cut into N contiguous blocks; rank r runs the model on
streams [r*B/N, (r+1)*B/N). One step costs one message: an in-place Allreduce (sum) of

    buf = [ gradients (P,) | loss/N | interrupted | root's elapsed, step time, eval cost ]

after which every rank holds the same summed gradients and the same flags, and runs
clipping and the optimizer identically (the 1/N that turns the sum into the mean of the
global batch rides on the clipping factor: no extra pass). The flags make every
decision that is not a pure function of the step (a signal, the wall-clock budget, the
lr anneal planned from the measured speed) the root's, taken by all ranks at the same
step. Dropout masks are keyed by global stream index (model.StreamMasks), so N ranks
compute what one process computes, up to float32 summation order.

Single is the communicator of an ordinary run: every method a no-op, so the trainer
has one code path; connect() picks one. NumPy and mpi4py are imported only when needed
(charrnn.training.rank_supervisor imports this module before it forks).
"""
import os

from charrnn.errors import CharRNNError, ConfigError

# Launcher variables: MPICH/Hydra and Intel MPI (also Slurm's PMI-2) set PMI_RANK and
# PMI_SIZE, Open MPI OMPI_COMM_WORLD_*, PMIx launchers (prterun, srun --mpi=pmix) PMIX_RANK.
SUPERVISOR_FD = "CHARRNN_SUPERVISOR_FD"   # the pipe a rank tells its supervisor on

_SIZE_VARS = ("PMI_SIZE", "OMPI_COMM_WORLD_SIZE")
RANK_VARS = ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK")
MPI_EXTRA = 'pip install "charrnn-fast[mpi]"'
TAIL = 5   # flag slots after the gradients: loss, interrupted, elapsed, step time, eval cost


class DistributedError(CharRNNError):
    """MPI was asked for (or a launcher started us) but cannot be used."""


def launcher(env=None):
    """(variable, world size or None) if an MPI launcher started this process, else None."""
    env = os.environ if env is None else env
    for name in _SIZE_VARS:
        if name in env:
            try:
                return name, int(env[name])
            except ValueError:
                return name, None
    for name in RANK_VARS:
        if name in env:
            return name, None
    return None


def connect(distributed=None):
    """The communicator of this run: Single, or MPI's COMM_WORLD.

    distributed=None: MPI when a launcher started more than one rank; True: MPI, or a
    DistributedError saying what to install; False: Single."""
    found = launcher()
    if distributed is False or (distributed is None and (found is None or found[1] == 1)):
        return Single()
    try:
        from mpi4py import MPI
    except Exception as e:   # ImportError, or mpi4py without a loadable MPI library
        why = f"{type(e).__name__}: {e}"
        if distributed:
            raise DistributedError(f"--distributed needs mpi4py and an MPI library "
                                   f"({MPI_EXTRA}); {why}") from None
        raise DistributedError(
            f"started by an MPI launcher ({found[0]}={os.environ.get(found[0])}) but mpi4py "
            f"cannot be used ({why}): {MPI_EXTRA}, or run without mpiexec") from None
    return MPIComm(MPI)


def stream_block(batch_size, rank, size):
    """(lo, hi): the contiguous block of the global batch that `rank` owns."""
    if batch_size % size:
        fits = [n for n in range(1, batch_size + 1) if batch_size % n == 0]
        raise ConfigError(f"--batch-size {batch_size} does not split over {size} ranks: run "
                          f"{', '.join(map(str, fits))} ranks, or make --batch-size a "
                          f"multiple of {size}")
    n = batch_size // size
    return rank * n, (rank + 1) * n


class Single:
    """One process: the communicator whose every collective is the identity."""
    rank, size, local_size, is_root = 0, 1, 1, True
    grad_scale = 1.0

    def threads_default(self):
        return os.cpu_count() or 1

    def run_on_root(self, fn):
        return fn()

    def bcast(self, obj):
        return obj

    def sync_arrays(self, arrays):
        pass

    def gather_rows(self, a):
        return a

    def allreduce_sum(self, x):
        return x

    def step(self, buf, loss, interrupted, clock):
        """Single: the step's own loss and flag; nothing to exchange."""
        return loss

    def interrupted(self, sig):
        return sig.received is not None

    def clock(self, elapsed, step_time, eval_cost):
        return elapsed, step_time, eval_cost

    def barrier(self):
        pass

    def describe(self):
        return ""


class MPIComm(Single):
    """COMM_WORLD through mpi4py (buffer-based calls: no pickling of arrays)."""

    def __init__(self, MPI):
        self.MPI, self.comm = MPI, MPI.COMM_WORLD
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.is_root = self.rank == 0
        self.grad_scale = 1.0 / self.size     # summed gradients -> the global mean
        # ranks sharing this node's memory: they share its cores
        local = self.comm.Split_type(MPI.COMM_TYPE_SHARED, key=self.rank)
        self.local_size = local.Get_size()
        local.Free()
        self.hosts = self.comm.allgather(MPI.Get_processor_name())
        self._agreed = None   # (interrupted, elapsed, step time, eval cost) from the last step
        self.allreduce_seconds = 0.0

    def threads_default(self):
        """Cores of this node / ranks on it (or fewer if the launcher bound us)."""
        cores = os.cpu_count() or 1
        try:
            bound = len(os.sched_getaffinity(0))
        except (AttributeError, OSError):
            bound = cores
        return max(1, min(bound, cores // self.local_size))

    def run_on_root(self, fn):
        """fn() on rank 0 only; its result (or its CharRNNError, re-raised on every rank,
        silent on the others so the job prints it once) goes to all ranks."""
        result, error = None, None
        if self.is_root:
            try:
                result = fn()
            except CharRNNError as e:
                error = e
        error = self.comm.bcast(error, root=0)
        if error is not None:
            raise error
        return self.comm.bcast(result, root=0)

    def bcast(self, obj):
        return self.comm.bcast(obj, root=0)

    def sync_arrays(self, arrays):
        """Rank 0's values into every rank's arrays, in place (same shapes everywhere)."""
        for a in arrays:
            self.comm.Bcast(a, root=0)

    def gather_rows(self, a):
        """Rank 0 gets the ranks' (n, ...) blocks stacked in rank order; others None."""
        import numpy as np
        a = np.ascontiguousarray(a)
        out = np.empty((a.shape[0] * self.size,) + a.shape[1:], a.dtype) if self.is_root else None
        self.comm.Gather(a, out, root=0)
        return out

    def allreduce_sum(self, x):
        return self.comm.allreduce(x, op=self.MPI.SUM)

    def step(self, buf, loss, interrupted, clock):
        """The one message of a step: buf (P + TAIL,) holds the gradients; fill the tail,
        sum it over ranks in place, return the global mean loss."""
        import time
        tail = buf[-TAIL:]
        tail[0] = loss / self.size
        tail[1] = 1.0 if interrupted else 0.0
        # only the root's clock counts: the others contribute zeros to the sum
        tail[2:] = [c or 0.0 for c in clock] if self.is_root else 0.0
        t0 = time.perf_counter()
        self.comm.Allreduce(self.MPI.IN_PLACE, buf, op=self.MPI.SUM)
        self.allreduce_seconds = time.perf_counter() - t0
        self._agreed = (tail[1] > 0, float(tail[2]), float(tail[3]) or None, float(tail[4]))
        return float(tail[0])

    def interrupted(self, sig):
        return self._agreed is not None and self._agreed[0]

    def clock(self, elapsed, step_time, eval_cost):
        if self._agreed is None:            # first step: every rank starts from the saved
            return elapsed, step_time, eval_cost   # elapsed time and no speed estimate
        return self._agreed[1:]

    def barrier(self):
        self.comm.Barrier()

    def describe(self):
        nodes = len(set(self.hosts))
        return f"{self.size} ranks on {nodes} node{'s' * (nodes > 1)}"


def mark_quiet(error):
    """Mark an error raised on a rank other than 0: the CLI exits with it without
    printing it, as rank 0 prints the same message."""
    try:
        error.quiet = True
    except AttributeError:
        pass
    return error


def attach_tail(model):
    """Give the model's flat gradient buffer TAIL extra slots so flags ride in the
    gradients' Allreduce: -> the whole (P + TAIL,) buffer."""
    import numpy as np
    P = model.grad_flat.size
    buf = np.zeros(P + TAIL, model.grad_flat.dtype)
    model.rebind_grads(buf[:P])
    return buf


def open_run_on_root(comm, open_run):
    """open_run() -> (run directory, saved TrainingState or None) on rank 0; the other
    ranks get the directory, the saved meta and carried hidden state (small), not the
    weights and moments: those come from rank 0's broadcast once the model exists."""
    from charrnn.io.checkpoint import TrainingState
    kept = {}

    def on_root():
        run_dir, saved = kept["run"] = open_run()
        if saved is None:
            return run_dir, None
        hidden = {k: v for k, v in saved.arrays.items() if k.startswith("hidden.")}
        return run_dir, (hidden, saved.meta)
    run_dir, slim = comm.run_on_root(on_root)
    if comm.is_root:
        return kept["run"]
    return run_dir, (None if slim is None else TrainingState(*slim))


def load_corpus_root_first(comm, load, run_dir):
    """load(cache_dir) on rank 0 (which may write the encoded corpus into the run
    directory), then on the others, which read that cache where they see the directory
    (a shared file system) and encode the text themselves where they do not."""
    kept = {}
    comm.run_on_root(lambda: kept.setdefault("corpus", load(run_dir)) and None)
    if comm.is_root:
        return kept["corpus"]
    return load(run_dir if os.path.isdir(run_dir) else None)


class RootLock:
    """The run directory's lock, held by rank 0 for the whole job (the other ranks are
    part of the same run); failing to take it stops every rank."""

    def __init__(self, comm, lock_class, run_dir):
        self.comm, self.lock = comm, lock_class(run_dir) if comm.is_root else None

    def __enter__(self):
        self.comm.run_on_root(lambda: self.lock.acquire() and None)
        return self

    def __exit__(self, *exc):
        if self.lock is not None:
            self.lock.release()


def resume_command(size, run_dir):
    launch = f"mpiexec -n {size} " if size > 1 else ""
    return f"{launch}charrnn train --out {run_dir} --resume"


def notify_saved(step, size, run_dir):
    """Tell charrnn.training.rank_supervisor (if it started this rank) which checkpoint is intact."""
    fd = os.environ.get(SUPERVISOR_FD)
    if fd is None:
        return
    try:
        os.write(int(fd), f"saved {step} {size} {run_dir}\n".encode())
    except (OSError, ValueError):
        pass
