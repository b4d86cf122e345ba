"""The content-addressed store: where it lives, how objects are named, its index and lock.

Layout of a store folder:
    FORMAT                      "venv-dedupe store 1"
    lock                        flock()ed for a whole run; holds the holder's pid
    objects/<alg>/<hh>/<rest>.<uid>.<gid>.<mode>.<n>
The object name carries the owner, group and permission bits of its inode because a
hardlink shares them: files of different owners or modes must never share an object.
On a copy-on-write filesystem they are 0.0.0: the object is the store's own copy (mode
0o444), whose data blocks venv files share while each keeps its inode.
<n> counts objects of the same content when one reached the filesystem's link limit.
    pyc/<alg>/<hh>/<source object name>.<suffix>.<magic>.<flags>.<uid>.<gid>.<mode>.<n>
A pyc object is one valid compilation of a source object, shared by every venv whose
source is that object: grouped by what makes a pyc valid, never by its raw bytes.
    scan-cache/<hash of venv path>.json
What the last scan found in each venv (dedupe.memo); losing it costs only time.
    trash/
Replaced venv files on their way out (link.Unlinker); empty when no run is under way.
    journal/<pid>-<n>.json
The venv folders a run is writing temp names in and the pycs it may leave stale, one
entry per batch of work (dedupe.journal); empty when no run is under way, and what the
next scan recovers from after a kill (dedupe.scan.recovery).
"""

from __future__ import annotations

from .layout import Store, StoreIndex, saved_bytes
from .lock import LOCK_POLL_SECONDS
from .names import (
    CACHE_DIR,
    COW_OBJECT_MODE,
    DEFAULT_STORE_NAME,
    FORMAT,
    JOURNAL_DIR,
    TMP_PREFIX,
    TRASH_DIR,
    ObjectKey,
    PycKey,
    interned,
    object_key,
    parse_object_name,
    parse_pyc_name,
)
from .opening import check_private, open_store
from .placement import (
    can_create,
    default_store_path,
    mount_point,
    nearest_existing,
    user_store_path,
)

__all__ = [
    "CACHE_DIR",
    "COW_OBJECT_MODE",
    "DEFAULT_STORE_NAME",
    "FORMAT",
    "JOURNAL_DIR",
    "LOCK_POLL_SECONDS",
    "TMP_PREFIX",
    "TRASH_DIR",
    "ObjectKey",
    "PycKey",
    "interned",
    "Store",
    "StoreIndex",
    "can_create",
    "check_private",
    "default_store_path",
    "mount_point",
    "nearest_existing",
    "object_key",
    "open_store",
    "parse_object_name",
    "parse_pyc_name",
    "saved_bytes",
    "user_store_path",
]
