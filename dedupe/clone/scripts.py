"""Console scripts: the interpreter their first lines name, moved from SRC's bin to DST's.

Installers write every form handled here: `#!/venv/bin/python` (pip, uv; also `python3`
and `python3.11`), and, where that line would be too long for the kernel (127 bytes) or
the path holds a space, the `/bin/sh` trampoline of pip's distlib:

    #!/bin/sh
    '''exec' "/long path/bin/python" "$0" "$@"
    ' '''

Parsers take bytes, not paths: the tests feed them scripts.
"""

from __future__ import annotations

import os
import shlex

__all__ = ["MAX_SHEBANG", "rewrite_script", "shebang"]

MAX_SHEBANG = 127  # bytes of '#!' + interpreter + '\n' that Linux reads (BINPRM_BUF_SIZE)
_TRAMPOLINE = b"#!/bin/sh\n'''exec' "


def shebang(interpreter: str) -> bytes:
    """The first lines a script needs to run interpreter, as distlib writes them."""
    path = os.fsencode(interpreter)
    if b" " not in path and len(path) + 3 <= MAX_SHEBANG:
        return b"#!" + path + b"\n"
    quoted = b'"' + path + b'"' if b" " in path else path
    return _TRAMPOLINE + quoted + b' "$0" "$@"\n' + b"' '''\n"


def _interpreter(data: bytes) -> tuple[str, bytes] | None:
    """(the interpreter the script's first lines name, the rest of the script), or None
    when it does not start with a form an installer writes."""
    if data.startswith(_TRAMPOLINE):
        lines = data.split(b"\n", 3)
        if len(lines) < 4 or lines[2] != b"' '''":
            return None
        try:
            words = shlex.split(os.fsdecode(lines[1]))
        except ValueError:
            return None
        if len(words) != 4 or words[0] != "exec" or words[2:] != ["$0", "$@"]:
            return None
        return words[1], lines[3]
    if not data.startswith(b"#!"):
        return None
    first, newline, rest = data.partition(b"\n")
    if not newline:
        return None
    path = first[2:].strip()
    if not path or b" " in path:
        return None  # arguments after the interpreter: not a form installers write
    return os.fsdecode(path), rest


def rewrite_script(data: bytes, old_bins: tuple[str, ...], new_bin: str) -> bytes | None:
    """The script with its interpreter moved from one of old_bins (folders, absolute) to
    the same name in new_bin; None when its first lines name no interpreter there."""
    found = _interpreter(data)
    if found is None:
        return None
    interpreter, rest = found
    folder, name = os.path.split(interpreter)
    if folder not in old_bins or not name:
        return None
    return shebang(os.path.join(new_bin, name)) + rest
