"""The hardlink executor (Hardlinks, a dedupe.execute.Executor) and the operations it
and maintenance use: the only package that changes files in venvs or adds objects to a
store.

Every venv file is reached through its folder's handle (dedupe.tree: At.folder()) and
the `dir_fd` forms of the calls, so a venv folder swapped for a symlink while we work
redirects nothing. Store paths are used as paths: the store is a private folder of the
user running us (dedupe.store.check_private), where no one else can swap a folder.
A handle is used at once, before the tree is asked for another (see dedupe.tree.Tree).

One module per job, lowest first: `steps` (folder handles, re-stats, temp names, the
fault hook), `objects` (the store's own files), `unlinker` (freeing displaced files),
`swap` (adopt, replace and the atomic exchange), `copies` (files written like another:
pycs, detach's private copies), `hardlinks` (the executor) and `reflinks` (the
copy-on-write executor, which hands what is not on a copy-on-write store to hardlinks).
Another way of sharing (a clone of a venv) is another module beside them, made of the
same steps.
"""

from __future__ import annotations

from .copies import create_pyc, make_private, rewrite_pyc
from .hardlinks import Hardlinks
from .objects import (
    make_folders,
    quarantine,
    remove_empty_folder,
    remove_store_leftover,
    remove_unused,
)
from .reflinks import Reflinks
from .steps import remove_leftover
from .swap import adopt, replace
from .unlinker import Discard, Unlinker, unlink_now

__all__ = [
    "Discard",
    "Hardlinks",
    "Reflinks",
    "Unlinker",
    "adopt",
    "create_pyc",
    "make_folders",
    "make_private",
    "quarantine",
    "remove_empty_folder",
    "remove_leftover",
    "remove_store_leftover",
    "remove_unused",
    "replace",
    "rewrite_pyc",
    "unlink_now",
]
