"""The planner's proof rules, on real venvs: what may be linked to a store object."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers import MakeVenvs, Venv, file_sha256
from hypothesis import given, settings
from hypothesis import strategies as st

from dedupe import scan
from dedupe.census import Census, census_key
from dedupe.decisions import Adopt, Link, Observed
from dedupe.execute import DryRun
from dedupe.hashing import FileChanged, fingerprint, same_file
from dedupe.inventory import Candidate
from dedupe.link import steps
from dedupe.plan import Planner
from dedupe.store import ObjectKey, Store, StoreIndex, parse_object_name
from dedupe.tree import At, Tree


@pytest.fixture
def four(make_venvs: MakeVenvs, venv_root: Path) -> tuple[Venv, ...]:
    return make_venvs(venv_root, **{n: ["alpha==1.0"] for n in "abcd"})


@pytest.fixture
def hook() -> Iterator[None]:
    yield
    steps.fault_hook = None


def test_an_object_edited_in_place_during_the_run_is_not_linked_to_again(
    four: tuple[Venv, ...], venv_root: Path, store_dir: Path, hook: None
) -> None:
    """A write through one venv's name (Vim with backupcopy, open(path, "a")) reaches the
    shared inode: later venvs of the same run must keep their own, pristine file."""
    a, b, c, d = four
    pristine = file_sha256(d.file("alpha/util.py"))
    done: list[str] = []

    def edit_after_first_link(stage: str, at: At) -> None:
        # After b's util.py became a link to the object (a's inode), append to it.
        if (
            stage == "renamed"
            and not done
            and os.path.samefile(a.file("alpha/util.py"), b.file("alpha/util.py"))
        ):
            with open(b.file("alpha/util.py"), "a") as f:
                f.write("\nprint('edited in b')\n")
            done.append("edited")

    steps.fault_hook = edit_after_first_link
    result = scan([venv_root], store=store_dir, jobs=1)  # `done` lives in this process

    assert done
    for venv in (c, d):
        path = venv.file("alpha/util.py")
        assert file_sha256(path) == pristine
        assert os.stat(path).st_nlink == 1
    assert result.skipped.get("store-object-damaged", 0) >= 2
    assert any("edited in place" in p.error for p in result.errors)


def test_files_whose_extended_attributes_differ_are_not_linked(
    four: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    """An ACL or a security label lives on the inode like the mode does."""
    a, b, c, d = four
    try:
        os.setxattr(c.file("alpha/util.py"), "user.venv-dedupe-test", b"c's own")
    except OSError as exc:
        pytest.skip(f"no user xattrs on this filesystem: {exc}")

    result = scan([venv_root], store=store_dir)

    util = {v: os.stat(v.file("alpha/util.py")) for v in four}
    assert util[a].st_ino == util[b].st_ino == util[d].st_ino
    assert util[c].st_ino != util[a].st_ino and util[c].st_nlink == 1
    assert os.getxattr(c.file("alpha/util.py"), "user.venv-dedupe-test") == b"c's own"
    assert os.listxattr(a.file("alpha/util.py")) == []
    assert result.skipped.get("xattrs-differ") == 1


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("chattr"), reason="chattr +i needs root")
def test_a_source_whose_pycache_cannot_be_written_is_not_linked(
    four: tuple[Venv, ...], venv_root: Path, store_dir: Path
) -> None:
    """Linking it would leave its pycs stale, recompiled on every import."""
    a, b, c, d = four
    pycache = d.file("alpha/__pycache__")
    pycs = {p: (p.stat().st_ino, p.read_bytes()) for p in pycache.iterdir()}
    made = subprocess.run(["chattr", "+i", str(pycache)], capture_output=True, check=False)
    if made.returncode != 0:
        pytest.skip(f"chattr +i failed here: {made.stderr!r}")
    try:
        result = scan([venv_root], store=store_dir)
    finally:
        subprocess.run(["chattr", "-i", str(pycache)], check=True)

    assert result.skipped.get("pycache-read-only", 0) >= 3  # each .py of the package
    assert os.stat(d.file("alpha/util.py")).st_nlink == 1
    assert {p: (p.stat().st_ino, p.read_bytes()) for p in pycache.iterdir()} == pycs
    assert os.stat(c.file("alpha/util.py")).st_nlink == 4


# --- the planner alone, on made-up facts (no disk) ----------------------------------------
# A world of inodes and names that FakeFacts reads and FakeExecutor changes as the kernel
# would; hypothesis draws the files. These are the planner's own properties: applying its
# plan leaves nothing to plan, a dry run decides and counts as the applied run does, and
# no link ever joins inodes of different owners, modes or devices.

BLOCK = 4096


@dataclass
class FakeInode:
    dev: int
    ino: int
    content: int
    uid: int
    mode: int
    nlink: int = 1
    ctime: int = 1

    def stat(self) -> os.stat_result:
        size = 100 + self.content
        fields = (stat.S_IFREG | self.mode, self.ino, self.dev, self.nlink, self.uid, self.uid)
        return os.stat_result(
            (*fields, size, 0, 0, self.ctime),
            {
                "st_atime_ns": 0,
                "st_mtime_ns": 5,
                "st_ctime_ns": self.ctime,
                "st_blocks": -(-size // BLOCK) * BLOCK // 512,
            },
        )


def content_digest(content: int) -> bytes:
    return hashlib.sha256(f"content {content}".encode()).digest()


class World:
    """Names (venv file paths and store object paths) of inodes, per device."""

    def __init__(self, link_max: int) -> None:
        self.link_max = link_max
        self.names: dict[str, FakeInode] = {}
        self.objects: dict[int, dict[ObjectKey, list[tuple[int, int]]]] = {1: {}, 2: {}}
        self.folders: set[str] = set()
        self.freed_blocks = 0
        self._next_ino = 100

    def add(self, path: str, dev: int, content: int, uid: int, mode: int) -> None:
        self._next_ino += 1
        self.names[path] = FakeInode(dev, self._next_ino, content, uid, mode)

    def add_name(self, path: str, of: str) -> None:
        inode = self.names[of]
        inode.nlink += 1
        inode.ctime += 1
        self.names[path] = inode

    def stores(self) -> dict[int, Store]:
        return {dev: Store(f"/store{dev}", dev) for dev in self.objects}

    def indexes(self) -> dict[int, StoreIndex]:
        return {
            dev: StoreIndex(
                {key: sorted(gens) for key, gens in objects.items()},
                {ino for gens in objects.values() for _gen, ino in gens},
            )
            for dev, objects in self.objects.items()
        }

    def candidates(self, indexes: dict[int, StoreIndex]) -> Iterator[Candidate]:
        """What inventory makes of every venv name, one at a time as pass 2 takes them
        (each stat'ed when it comes, after the links before it): candidates, but for
        names that already are a store object's inode."""
        for path in sorted(p for p in self.names if not p.startswith("/store")):
            inode = self.names[path]
            if inode.ino in indexes[inode.dev].inodes:
                continue
            root, _, rel = path.rpartition("/")
            digest = content_digest(inode.content)
            key = ObjectKey("sha256", digest, inode.uid, inode.uid, inode.mode)
            yield Candidate(At(Tree(root), rel), key, inode.stat(), "dist")

    def inode(self, path: str) -> FakeInode:
        try:
            return self.names[path]
        except KeyError:
            raise FileNotFoundError(path) from None


class FakeFacts:
    def __init__(self, world: World) -> None:
        self.world = world

    def stat(self, path: str) -> os.stat_result:
        return self.world.inode(path).stat()

    def digest(
        self,
        file: At | str,
        algorithm: str,
        expected: os.stat_result | None = None,
        hoped: bytes | None = None,
    ) -> bytes:
        inode = self.world.inode(file.path if isinstance(file, At) else file)
        if expected is not None and not same_file(inode.stat(), expected):
            raise FileChanged("not the inode expected")
        return content_digest(inode.content)

    def header(self, file: At | str) -> tuple[bytes, os.stat_result]:
        raise AssertionError("no pycs in this world")

    def whole(self, file: At, expected: os.stat_result) -> bytes:
        raise AssertionError("no pycs in this world")

    def xattrs(self, file: At | str) -> tuple[tuple[str, bytes], ...]:
        return ()

    def writable(self, folder: At) -> bool:
        return True

    def is_folder(self, path: str) -> bool:
        return path in self.world.folders

    def link_max(self, path: str) -> int:
        return self.world.link_max


class FakeExecutor(DryRun):
    """Carries decisions out on the world, as the hardlink executor does on a disk."""

    def __init__(self, world: World) -> None:
        self.world = world

    def adopt(self, action: Adopt) -> Observed:
        inode = self.world.inode(action.path)
        assert same_file(inode.stat(), action.st)
        self.world.add_name(action.object_path, action.path)
        parsed = parse_object_name(*_object_name_parts(action.object_path))
        assert parsed is not None
        key, generation = parsed
        self.world.objects[inode.dev].setdefault(key, []).append((generation, inode.ino))
        self.world.folders.add(os.path.dirname(action.object_path))
        return Observed(fingerprint(inode.stat()))

    def link(self, action: Link) -> Observed:
        obj, old = self.world.inode(action.object_path), self.world.inode(action.path)
        assert (obj.dev, obj.uid, obj.mode) == (old.dev, old.uid, old.mode), "joins inodes"
        assert obj.ino == action.object_ino and same_file(old.stat(), action.st)
        self.world.names[action.path] = obj
        obj.nlink, obj.ctime = obj.nlink + 1, obj.ctime + 1
        old.nlink, old.ctime = old.nlink - 1, old.ctime + 1
        if old.nlink == 0:
            self.world.freed_blocks += old.stat().st_blocks * 512
        return Observed(fingerprint(obj.stat()))


def _object_name_parts(path: str) -> tuple[str, str, str]:
    *_, algorithm, shard, name = path.split("/")
    return algorithm, shard, name


def plan_once(world: World, executor: DryRun) -> list[tuple[object, ...]]:
    """One pass 2 over the world's candidates, as scan's _Run drives it (no pycs): every
    decision, and what it would free."""
    stores, indexes = world.stores(), world.indexes()
    census = Census(indexes)  # pass 1, before anything changes
    for c in world.candidates(indexes):
        census.add(census_key(c.st.st_dev, c.key), c.st.st_dev, c.st.st_ino, c.st.st_nlink > 1)
    planner = Planner(census, stores, indexes, FakeFacts(world))
    decisions: list[tuple[object, ...]] = []
    for c in world.candidates(indexes):
        decision = planner.decide(c, census_key(c.st.st_dev, c.key))
        match decision:
            case Adopt():
                planner.observe(decision.object_path, executor.adopt(decision))
                decisions.append(("adopt", decision.path, decision.object_path))
            case Link():
                planner.observe(decision.object_path, executor.link(decision))
                freed = decision.st.st_blocks * 512 if decision.frees else 0
                decisions.append(("link", decision.path, decision.object_path, freed))
            case _:
                decisions.append((type(decision).__name__, c.path))
    return decisions


FILES = st.lists(
    st.tuples(
        st.integers(0, 3),  # venv
        st.integers(0, 3),  # content
        st.sampled_from([1000, 1001]),  # owner (and group)
        st.sampled_from([0o644, 0o755]),  # permission bits
        st.sampled_from([1, 2]),  # device
        st.booleans(),  # also a second name of the file before it (a hardlink in a venv)
    ),
    max_size=24,
)


def make_world(files: list[tuple[int, int, int, int, int, bool]], link_max: int) -> World:
    world = World(link_max)
    previous: str | None = None
    for i, (venv, content, uid, mode, dev, twin) in enumerate(files):
        path = f"/venvs/v{venv}/f{i}"
        if twin and previous is not None:
            world.add_name(path, previous)
        else:
            world.add(path, dev, content, uid, mode)
        previous = path
    return world


@settings(max_examples=150, deadline=None)
@given(files=FILES, link_max=st.integers(2, 5))
def test_planning_again_after_applying_a_plan_plans_nothing(
    files: list[tuple[int, int, int, int, int, bool]], link_max: int
) -> None:
    world = make_world(files, link_max)
    plan_once(world, FakeExecutor(world))
    again = plan_once(world, FakeExecutor(world))
    assert [d for d in again if d[0] in ("adopt", "link")] == []


@settings(max_examples=150, deadline=None)
@given(files=FILES, link_max=st.integers(2, 5))
def test_a_dry_run_decides_and_counts_as_the_applied_run(
    files: list[tuple[int, int, int, int, int, bool]], link_max: int
) -> None:
    dry_world, real_world = make_world(files, link_max), make_world(files, link_max)
    dry = plan_once(dry_world, DryRun())
    real = plan_once(real_world, FakeExecutor(real_world))
    assert dry == real
    assert sum(int(str(d[3])) for d in dry if d[0] == "link") == real_world.freed_blocks
    assert dry_world.objects == {1: {}, 2: {}}  # the dry run changed nothing


@settings(max_examples=150, deadline=None)
@given(files=FILES, link_max=st.integers(2, 5))
def test_no_link_joins_different_owners_modes_or_devices(
    files: list[tuple[int, int, int, int, int, bool]], link_max: int
) -> None:
    world = make_world(files, link_max)
    plan_once(world, FakeExecutor(world))  # FakeExecutor.link asserts it of every link
    for path, inode in world.names.items():
        if path.startswith("/store"):
            # An object is in the store of its own device, named for its owner and mode.
            parsed = parse_object_name(*_object_name_parts(path))
            assert parsed is not None and path.startswith(f"/store{inode.dev}/")
            assert (inode.uid, inode.mode) == (parsed[0].uid, parsed[0].mode)
