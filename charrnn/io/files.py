"""Files written so that a crash at any instant leaves the old file or the new one.

    atomic_write(path, write)   temp file in the same directory, fsync, os.replace,
                                fsync of the directory
    remove_stale_temps(dir)     the temp files of writers that were killed

Temp files are named .<name>.<pid>.<random>.charrnn-tmp, so a later process can tell
a dead writer's file (its pid no longer runs) from a live one's.
"""
import errno
import os
import re
import secrets

from charrnn.errors import RunDirError

TMP_SUFFIX = ".charrnn-tmp"


def atomic_write_bytes(path, data):
    """Replace `path` by `data` atomically (see atomic_write)."""
    atomic_write(path, lambda f: f.write(data))


def atomic_write(path, write):
    """Replace `path` by what write(f) writes to the binary file f, so that a crash at
    any instant leaves either the old or the new file: write a temp file in the same
    directory, fsync it, os.replace it over `path`, fsync the directory. Raises
    RunDirError (the old file intact, the temp file removed) if any step fails, e.g. a
    full disk or a read-only directory."""
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}."
                                  f"{secrets.token_hex(4)}{TMP_SUFFIX}")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(tmp, flags, 0o666)
    except OSError as e:
        raise RunDirError(f"cannot write {path}: {reason(e)}") from e
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # KeyboardInterrupt too: never leave the temp file
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise RunDirError(f"cannot write {path}: {reason(e)} "
                              f"(the previous file is unchanged)") from e
        raise
    _fsync_dir(directory, path)


def _fsync_dir(directory, path):
    # On POSIX the rename itself is durable only once the directory is synced.
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as e:
        # Some file systems cannot sync a directory; the write itself succeeded.
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES,
                           errno.EPERM):
            raise RunDirError(f"wrote {path} but could not sync {directory}: "
                              f"{reason(e)}") from e


def reason(e):
    return e.strerror or str(e)


def remove_stale_temps(directory):
    """Delete temp files left by atomic_write_bytes in processes that were killed
    (their pid, part of the name, no longer runs). Returns the names removed."""
    removed = []
    pattern = re.compile(r"\..+\.([0-9]+)\.[0-9a-f]+" + re.escape(TMP_SUFFIX))
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        m = pattern.fullmatch(name)
        if m and not pid_alive(int(m.group(1))):
            try:
                os.unlink(os.path.join(directory, name))
                removed.append(name)
            except OSError:
                pass
    return removed


def pid_alive(pid):
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError, ValueError):
        return True   # exists but not ours (EPERM), or cannot tell: keep the file
    return True
