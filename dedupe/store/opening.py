"""Opening a store folder or making one, and refusing a store that others could write."""

from __future__ import annotations

import os
import shlex
import stat

from ..errors import StoreError
from ..processes import running
from .layout import Store
from .names import FORMAT, TMP_PREFIX

__all__ = ["check_private", "open_store"]


def open_store(path: str, *, create: bool) -> Store | None:
    """Open (and with create=True, make) the store folder at path.

    Returns None when it does not exist and create is False (a dry run never writes).
    """
    path = os.path.abspath(path)
    format_path = os.path.join(path, "FORMAT")
    if create:
        try:
            if not os.path.lexists(path):
                _make_private_folders(path)
            for name in os.listdir(path):
                if name.startswith(f"{TMP_PREFIX}FORMAT-") and not _alive(name):
                    os.unlink(os.path.join(path, name))  # a killed run was writing it
            if not os.path.lexists(format_path) and _unmade(path):
                _write_format(format_path)  # new, or an empty folder the user made for it
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreError(
                f"cannot create the store {path!r}: {exc.strerror}; "
                "pass --store DIR with a folder you may write on the venvs' filesystem"
            ) from None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if create:
            raise
        return None
    if not stat.S_ISDIR(st.st_mode):
        raise StoreError(f"store {path!r} is not a folder")
    check_private(path, st)
    try:
        with open(format_path, encoding="ascii", errors="replace") as f:
            found = f.read(100)
    except FileNotFoundError:
        if _unmade(path):
            return Store(path, st.st_dev)  # an empty folder, or a store a kill cut short
        raise StoreError(
            f"{path!r} is not a venv-dedupe store (no FORMAT file) and not empty; "
            "choose another --store folder"
        ) from None
    if found != FORMAT:
        raise StoreError(
            f"store {path!r} has format {found.strip()!r}, expected {FORMAT.strip()!r}"
        )
    return Store(path, st.st_dev)


def _unmade(path: str) -> bool:
    """A folder with nothing in it but what making a store puts there before FORMAT: an
    empty objects/ and temp files. Such a folder is finished, not refused."""
    names = {n for n in os.listdir(path) if not n.startswith(TMP_PREFIX)}
    objects = os.path.join(path, "objects")
    return names <= {"objects"} and (not os.path.isdir(objects) or not os.listdir(objects))


def _alive(tmp_name: str) -> bool:
    """Whether the process whose pid ends a temp FORMAT name still runs: a run making
    the same new store beside us (before either holds the lock) must keep its file."""
    try:
        pid = int(tmp_name.rsplit("-", 1)[1])
    except ValueError:
        return False
    return running(pid)


def _write_format(format_path: str) -> None:
    """Write FORMAT through a temp file and link(), so that a kill never leaves a FORMAT
    that is there but empty (which every later run would refuse)."""
    folder = os.path.dirname(format_path)
    tmp = os.path.join(folder, f"{TMP_PREFIX}FORMAT-{os.getpid()}")
    with open(tmp, "w", encoding="ascii") as f:
        f.write(FORMAT)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, format_path)
    finally:
        os.unlink(tmp)


def _make_private_folders(path: str) -> None:
    """Make the store folder 0o700 and objects/ 0o755 whatever the umask. No one else
    needs the store's names: venvs reach their files through their own paths, and a
    file that was private only because its venv's folder was 0o700 must stay so."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    objects = os.path.join(path, "objects")
    os.makedirs(objects, mode=0o755, exist_ok=True)
    os.chmod(path, 0o700)
    os.chmod(objects, 0o755)


def check_private(path: str, st: os.stat_result | None = None) -> None:
    """Refuse a store folder that others may write or that another user owns, as ssh
    refuses a loose ~/.ssh: whoever can add or rename names in it can swap the lock file,
    or plant objects for venvs to be linked to, and so reach every venv that shares them.
    objects/ is checked too, and must be a real folder, not a symlink."""
    euid = os.geteuid()
    quoted = shlex.quote(path)
    for folder in (path, os.path.join(path, "objects")):
        if folder == path and st is not None:
            fst = st
        else:
            try:
                fst = os.lstat(folder)
            except FileNotFoundError:
                continue
            if not stat.S_ISDIR(fst.st_mode):
                raise StoreError(
                    f"store {path!r}: {folder!r} is not a folder (a symlink?); "
                    "refusing to use this store"
                )
        if fst.st_uid != euid:
            raise StoreError(
                f"store folder {folder!r} is owned by uid {fst.st_uid}, not by the user "
                f"running venv-dedupe (uid {euid}): refusing to use it. Run as its owner, "
                f"or make it yours (chown -R {euid} {quoted}), or pass --store DIR with a "
                "folder of your own"
            )
        if fst.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            who = {stat.S_IWGRP: "its group", stat.S_IWOTH: "others"}.get(
                fst.st_mode & (stat.S_IWGRP | stat.S_IWOTH), "its group and others"
            )
            raise StoreError(
                f"store folder {folder!r} is writable by {who} "
                f"(mode {stat.S_IMODE(fst.st_mode):04o}): refusing to use it. Fix it with: "
                f"chmod go-w {shlex.quote(folder)}"
            )
