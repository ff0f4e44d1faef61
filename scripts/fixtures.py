#!/usr/bin/env python3
"""Build vmscrub's test images from the recipes in fixtures/*.toml, with real tools.

    scripts/fixtures.py build [NAME ...]   build these artifacts (and what they need); no NAME = all
                                           that are not marked `bench = true`
    scripts/fixtures.py path NAME          print where NAME is built (does not build)
    scripts/fixtures.py list               every artifact, its kind and its recipe file
    scripts/fixtures.py manifest NAME      JSON of a tree: every entry the recipe plants

Artifacts are written to $VMSCRUB_FIXTURE_DIR (default: fixtures/build/ in the repo).
Each one carries a stamp: the hash of its recipe, of everything it is built from and
of this script, and which build of each dependency it was made from, so an unchanged
artifact is never rebuilt, and a changed recipe or a rebuilt dependency always rebuilds it.

Recipe kinds (see fixtures/README.md for every field):
  [tree.NAME]       a directory tree: files (literal, random, marker-bearing, sparse),
                    dirs, symlinks, hard links, fifos, devices, xattrs, owners, modes
  [fs.NAME]         a filesystem image made from a tree: ext2/3/4 (mkfs.ext4 -d),
                    vfat (mkfs.fat + mcopy), swap, xfs, btrfs, or synthetic signatures
  [disk.NAME]       a partitioned disk (GPT via sfdisk or fdisk -b 4096, MBR with
                    logical partitions via sfdisk) with filesystems copied in
  [container.NAME]  a qcow2 / VMDK made from a disk or fs with qemu-img (and qemu-io)
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RECIPES = REPO / "fixtures"
OUT = Path(os.environ.get("VMSCRUB_FIXTURE_DIR", REPO / "fixtures" / "build"))
# The LVM steps live in lvm_fixture.py: a change there rebuilds like a change here.
SCRIPT_HASH = hashlib.sha256(
    Path(__file__).read_bytes() + (Path(__file__).parent / "lvm_fixture.py").read_bytes()
).hexdigest()
# Fixed times so repeated builds plant identical metadata.
EPOCH = 1_735_689_600  # 2025-01-01T00:00:00Z

KINDS = ("tree", "fs", "disk", "container")


class RecipeError(Exception):
    pass


def load_recipes() -> dict[str, tuple[str, dict, Path]]:
    """name -> (kind, spec, recipe file). Names are unique across kinds."""
    out: dict[str, tuple[str, dict, Path]] = {}
    for f in sorted(RECIPES.glob("*.toml")):
        with f.open("rb") as fh:
            doc = tomllib.load(fh)
        for kind in KINDS:
            for name, spec in doc.get(kind, {}).items():
                if name in out:
                    raise RecipeError(f"{name} is defined twice ({out[name][2].name} and {f.name})")
                out[name] = (kind, spec, f)
    return out


def deps_of(kind: str, spec: dict) -> list[str]:
    if kind == "tree":
        return list(spec.get("include", []))
    if kind == "fs":
        return ([spec["tree"]] if "tree" in spec else []) + mtools_trees(spec)
    if kind == "disk":
        lvm_fs = [st["fs"] for st in spec.get("lvm", []) if isinstance(st, dict) and "fs" in st]
        return [p["fs"] for p in spec.get("partitions", []) if "fs" in p] + lvm_fs
    if kind == "container":
        d = [spec["source"]]
        if "backing_source" in spec:
            d.append(spec["backing_source"])
        return d
    return []


def out_path(name: str, kind: str, spec: dict) -> Path:
    if kind == "tree":
        return OUT / "trees" / name
    if kind == "container":
        ext = {"qcow2": "qcow2", "vmdk": "vmdk", "raw": "img", "vpc": "vhd", "vhdx": "vhdx"}[spec["format"]]
        return OUT / f"{name}.{ext}"
    return OUT / f"{name}.img"


class Builder:
    def __init__(self) -> None:
        self.recipes = load_recipes()
        self.hashes: dict[str, str] = {}

    def spec(self, name: str) -> tuple[str, dict, Path]:
        try:
            return self.recipes[name]
        except KeyError:
            raise RecipeError(f"no recipe defines {name!r} (see `scripts/fixtures.py list`)") from None

    def hash_of(self, name: str, seen: tuple[str, ...] = ()) -> str:
        if name in self.hashes:
            return self.hashes[name]
        if name in seen:
            raise RecipeError(f"recipe cycle: {' -> '.join(seen + (name,))}")
        kind, spec, _ = self.spec(name)
        h = hashlib.sha256()
        # A debootstrapped tree is keyed by its recipe alone: it takes minutes and a
        # mirror to make, and nothing in this script but the recipe changes it.
        if not (kind == "tree" and "debootstrap" in spec):
            h.update(SCRIPT_HASH.encode())
        h.update(json.dumps([kind, spec], sort_keys=True, default=str).encode())
        for d in deps_of(kind, spec):
            h.update(self.hash_of(d, seen + (name,)).encode())
        self.hashes[name] = h.hexdigest()
        return self.hashes[name]

    def path(self, name: str) -> Path:
        kind, spec, _ = self.spec(name)
        return out_path(name, kind, spec)

    def build(self, name: str) -> Path:
        kind, spec, _ = self.spec(name)
        for d in deps_of(kind, spec):
            self.build(d)
        target = out_path(name, kind, spec)
        stamp = target.with_name(target.name + ".stamp")
        # The recipe's hash, and which build of each dependency this one was made
        # from: a dependency rebuilt since (by another checkout sharing the cache,
        # with different bytes: mkfs makes new UUIDs) makes this artifact stale too.
        want = self.hash_of(name) + "".join(
            f" {d}@{self.path(d).stat().st_mtime_ns}" for d in deps_of(kind, spec)
        )
        if stamp.exists() and stamp.read_text() == want and target.exists():
            return target
        OUT.mkdir(parents=True, exist_ok=True)
        print(f"fixtures: building {kind} {name}", file=sys.stderr)
        stamp.unlink(missing_ok=True)
        getattr(self, f"build_{kind}")(name, spec, target)
        stamp.write_text(want)
        return target

    # ---------------------------------------------------------------- trees

    def build_tree(self, name: str, spec: dict, target: Path) -> None:
        if target.exists():
            shutil.rmtree(target)
        if "debootstrap" in spec:
            debootstrap_tree(name, spec, target)
            return
        target.mkdir(parents=True)
        # A debootstrapped tree included is copied whole (it has no entry list).
        for inc in spec.get("include", []):
            ikind, ispec, _ = self.spec(inc)
            if ikind == "tree" and "debootstrap" in ispec:
                run(["cp", "-a", "--reflink=auto", f"{self.path(inc)}/.", str(target)])
        entries = self.tree_entries(name)
        plant(target, entries)
        (target.parent / f"{name}.manifest.json").write_text(json.dumps(entries, indent=1, default=str))

    def tree_entries(self, name: str) -> list[dict]:
        """The tree's entries in planting order, includes first, with defaults filled in."""
        kind, spec, _ = self.spec(name)
        if kind != "tree":
            raise RecipeError(f"{name} is a {kind}, not a tree")
        entries: list[dict] = []
        for inc in spec.get("include", []):
            entries.extend(self.tree_entries(inc))
        for etype in ("dir", "file", "symlink", "hardlink", "fifo", "device", "many", "socket"):
            for e in spec.get(etype, []):
                e = dict(e)
                e["type"] = etype
                entries.append(e)
        # A later entry for the same path replaces an earlier one (trees extend others).
        by_path: dict[str, dict] = {}
        order: list[str] = []
        for e in entries:
            key = e.get("path") or e.get("dir")
            if key not in by_path:
                order.append(key)
            by_path[key] = e
        return [by_path[k] for k in order]

    # ---------------------------------------------------------- filesystems

    def build_fs(self, name: str, spec: dict, target: Path) -> None:
        fstype = spec["type"]
        size = parse_size(spec["size"])
        target.unlink(missing_ok=True)
        tree = self.build(spec["tree"]) if "tree" in spec else None
        entries = self.tree_entries(spec["tree"]) if "tree" in spec else []
        if fstype in ("ext2", "ext3", "ext4"):
            args = ["mkfs.ext4" if fstype == "ext4" else f"mkfs.{fstype}", "-q", "-F"]
            args += ["-t", fstype]
            if "block_size" in spec:
                args += ["-b", str(spec["block_size"])]
            if "inode_size" in spec:
                args += ["-I", str(spec["inode_size"])]
            if "features" in spec:
                args += ["-O", spec["features"]]
            if "label" in spec:
                args += ["-L", spec["label"]]
            args += ["-U", spec.get("uuid", uuid_for(name))]
            args += ["-E", f"hash_seed={uuid_for(name + '-hash')}" + ("," + spec["extended"] if "extended" in spec else "")]
            args += spec.get("mkfs_args", [])
            if tree is not None:
                args += ["-d", str(tree)]
            args += [str(target), f"{size // 1024}k"]
            run(args, env={"E2FSPROGS_FAKE_TIME": str(EPOCH)})
            fix_ext_owners(target, entries)
            if spec.get("e2fsck_rehash"):
                # e2fsck -D indexes every directory (htree) and compacts them;
                # exit status 1 means "fixed", which is what was asked for.
                p = subprocess.run(["e2fsck", "-fyD", str(target)], capture_output=True, text=True)
                if p.returncode not in (0, 1):
                    raise RecipeError(f"e2fsck -fyD {target} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
            for cmd in spec.get("debugfs", []):
                run(["debugfs", "-w", "-R", cmd, str(target)])
            if "debugfs_script" in spec:
                run_debugfs_script(target, spec["debugfs_script"], tree)
            for pair in spec.get("share_xattr_block", []):
                share_xattr_block(target, pair[0], pair[1])
            if spec.get("e2fsck_fix"):
                # For debugfs steps that leave counters wrong: e2fsck -fy recounts.
                p = subprocess.run(["e2fsck", "-fy", str(target)], capture_output=True, text=True)
                if p.returncode not in (0, 1):
                    raise RecipeError(f"e2fsck -fy {target} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        elif fstype == "vfat":
            args = ["mkfs.fat", "-C", "-i", uuid_for(name)[:8]]
            if "fat" in spec:
                args += ["-F", str(spec["fat"])]
            if "label" in spec:
                args += ["-n", spec["label"]]
            args += spec.get("mkfs_args", [])
            args += [str(target), str(size // 1024)]
            run(args)
            if tree is not None:
                fat_copy_tree(target, tree, entries)
            self.fat_post_steps(target, spec)
        elif fstype == "swap":
            make_sparse(target, size)
            page = int(spec.get("page_size", 4096))
            run(["mkswap", "-U", uuid_for(name), "-p", str(page)]
                + (["-L", spec["label"]] if "label" in spec else []) + [str(target)])
            with open(target, "r+b") as fh:
                # Paged-out memory: a marker in every page slot after the header.
                if "fill" in spec:
                    line = (spec["fill"] + "\n").encode()
                    for off in range(page, size, page):
                        fh.seek(off)
                        fh.write((line * (page // len(line) + 1))[:page])
                # A hibernation image: its signature replaces the swap magic.
                if "signature" in spec:
                    fh.seek(page - 10)
                    fh.write(spec["signature"].encode().ljust(10, b"\0"))
        elif fstype in ("xfs", "btrfs"):
            make_sparse(target, size)
            tool = shutil.which(f"mkfs.{fstype}")
            if tool is None:
                raise RecipeError(f"mkfs.{fstype} is not installed (Debian: {'xfsprogs' if fstype == 'xfs' else 'btrfs-progs'})")
            args = [tool, "-f"] + (["-L", spec["label"]] if "label" in spec else [])
            uuid = spec.get("uuid", uuid_for(name))
            args += ["-m" if fstype == "xfs" else "-U", f"uuid={uuid}" if fstype == "xfs" else uuid]
            mkfs_env = None
            if fstype == "xfs" and spec.get("small"):
                # fstests' escape hatch: mkfs.xfs then accepts filesystems below
                # its 300 MB minimum (and a log below 64 MB), so LV fixtures stay small.
                mkfs_env = {"TEST_DIR": "1", "TEST_DEV": "1", "QA_CHECK_FS": "1"}
            proto = None
            if fstype == "xfs" and "protofile" in spec:
                # mkfs.xfs -p: the filesystem filled by mkfs itself (no kernel
                # needed, so also for v4, which current kernels may not mount).
                proto = tempfile.NamedTemporaryFile("w", suffix=".proto", delete=False)
                proto.write(spec["protofile"].replace("{tree}", str(tree)))
                proto.close()
                args += ["-p", proto.name]
            try:
                run(args + spec.get("mkfs_args", []) + [str(target)], env=mkfs_env)
            finally:
                if proto is not None:
                    os.unlink(proto.name)
            if fstype == "xfs" and "protofile" not in spec and ("populate" in spec or tree is not None):
                populate_mounted(target, tree, spec)
        elif fstype == "luks":
            make_sparse(target, size)
            run(["cryptsetup", "luksFormat", "--batch-mode", "--type", spec.get("version", "luks2"),
                 "--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000", "--uuid", uuid_for(name), str(target)],
                stdin="fixture-passphrase\n")
        elif fstype == "synthetic":
            # Signatures no tool here can write without root or block devices (an LVM2
            # PV label): the bytes are given in the recipe, at offsets, over zeros.
            make_sparse(target, size)
            with target.open("r+b") as fh:
                for w in spec.get("write", []):
                    fh.seek(parse_size(w["offset"]))
                    fh.write(content_bytes(w, f"{name}:{w['offset']}"))
        elif fstype == "blank":
            make_sparse(target, size)
        else:
            raise RecipeError(f"fs {name}: unknown type {fstype!r}")

    def fat_post_steps(self, img: Path, spec: dict) -> None:
        """`mtools = ["mdel ::/a", "mcopy -m {tree:src}/f ::/f", "fill ::/pad"]` on a vfat fs:
        mtools commands run in order after the tree is copied (`-i IMG` is added), so a
        recipe can delete and add files to fragment the free space. `{tree:NAME}` is the
        built directory of tree NAME. `fill DEST` copies a file of zeros as large as the
        free space less 8 clusters (room for directories to grow), so the next allocation
        wraps to the start of the volume and into the holes deletes left behind."""
        env = {"MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}
        for line in spec.get("mtools", []):
            line = re.sub(r"\{tree:([^}]+)\}", lambda m: str(self.build(m.group(1))), line)
            args = shlex.split(line)
            if not args or args[0] not in FAT_POST_COMMANDS:
                raise RecipeError(f"mtools step {line!r}: the command must be one of {sorted(FAT_POST_COMMANDS)}")
            if args[0] == "fill":
                if len(args) != 2:
                    raise RecipeError(f"mtools step {line!r}: fill takes one destination")
                free, cluster = fat_free_bytes(img, env)
                size = max(free - 8 * cluster, 0)
                with tempfile.TemporaryDirectory() as d:
                    pad = Path(d) / "fill"
                    make_sparse(pad, size)
                    run(["mcopy", "-i", str(img), str(pad), args[1]], env=env)
            else:
                run([args[0], "-i", str(img)] + args[1:], env=env)

    # ---------------------------------------------------------------- disks

    def build_disk(self, name: str, spec: dict, target: Path) -> None:
        size = parse_size(spec["size"])
        sector = int(spec.get("sector_size", 512))
        table = spec.get("table", "gpt")
        target.unlink(missing_ok=True)
        make_sparse(target, size)
        parts = spec.get("partitions", [])
        placed: list[tuple[int, Path | None]] = []  # (byte offset, fs image)
        if table == "gpt" and sector == 512:
            lines = ["label: gpt", f"label-id: {uuid_for(name)}", "unit: sectors", "sector-size: 512"]
            pos = 2048
            for i, p in enumerate(parts, 1):
                nsec = self.part_sectors(p, sector)
                start = p.get("start", pos)
                fields = [f"start={start}", f"size={nsec}", f"type={p.get('type', '0FC63DAF-8483-4772-8E79-3D69D8477DE4')}",
                          f"uuid={uuid_for(f'{name}-part{i}')}"]
                if "name" in p:
                    fields.append(f'name="{p["name"]}"')
                lines.append(", ".join(fields))
                placed.append((start * sector, self.build(p["fs"]) if "fs" in p else None))
                pos = start + nsec
            run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(target)], stdin="\n".join(lines) + "\n")
        elif table == "gpt":
            # sfdisk/sgdisk only know 512-byte sectors on image files; fdisk -b does 4Kn.
            cmds = ["g"]
            pos = 256 if sector == 4096 else 2048
            for i, p in enumerate(parts, 1):
                nsec = self.part_sectors(p, sector)
                start = p.get("start", pos)
                cmds += ["n", str(i), str(start), str(start + nsec - 1)]
                if "fdisk_type" in p:
                    cmds += ["t"] + ([str(i)] if i > 1 else []) + [p["fdisk_type"]]
                placed.append((start * sector, self.build(p["fs"]) if "fs" in p else None))
                pos = start + nsec
            cmds += ["w"]
            run(["fdisk", "-b", str(sector), str(target)], stdin="\n".join(cmds) + "\n")
        elif table == "mbr":
            lines = ["label: dos", f"label-id: 0x{uuid_for(name)[:8]}", "unit: sectors"]
            pos = 2048
            for p in parts:
                nsec = self.part_sectors(p, sector)
                if p.get("extended"):
                    lines.append(f"start={pos}, size={nsec}, type=5")
                    ext_end = pos + nsec
                    pos += 2048  # room for the first EBR
                    for lp in p.get("logical", []):
                        lsec = self.part_sectors(lp, sector)
                        lines.append(f"start={pos}, size={lsec}, type={lp.get('type', '83')}")
                        placed.append((pos * sector, self.build(lp["fs"]) if "fs" in lp else None))
                        pos += lsec + 2048  # gap for the next EBR
                    pos = ext_end
                else:
                    start = p.get("start", pos)
                    boot = ", bootable" if p.get("bootable") else ""
                    lines.append(f"start={start}, size={nsec}, type={p.get('type', '83')}{boot}")
                    placed.append((start * sector, self.build(p["fs"]) if "fs" in p else None))
                    pos = start + nsec
            run(["sfdisk", "-q", "--no-reread", "--no-tell-kernel", str(target)], stdin="\n".join(lines) + "\n")
        elif table == "none":
            if len(parts) != 1:
                raise RecipeError(f"disk {name}: a disk without a table holds exactly one filesystem")
            placed.append((0, self.build(parts[0]["fs"])))
        else:
            raise RecipeError(f"disk {name}: unknown table {table!r}")
        for offset, img in placed:
            if img is not None:
                copy_sparse(img, target, offset)
        if "lvm" in spec:
            sys.path.insert(0, str(Path(__file__).parent))
            import lvm_fixture

            lvm_fixture.apply_steps(target, spec["lvm"], self.build)
        for patch in spec.get("patch", []):
            with target.open("r+b") as fh:
                fh.seek(parse_size(patch["offset"]))
                fh.write(bytes.fromhex(patch["hex"]))

    def part_sectors(self, p: dict, sector: int) -> int:
        if "size" in p:
            return parse_size(p["size"]) // sector
        if "fs" in p:
            kind, fspec, _ = self.spec(p["fs"])
            return parse_size(fspec["size"]) // sector
        raise RecipeError("a partition needs a size or an fs")

    # ----------------------------------------------------------- containers

    def build_container(self, name: str, spec: dict, target: Path) -> None:
        src = self.build(spec["source"])
        fmt = spec["format"]
        target.unlink(missing_ok=True)
        for extra in target.parent.glob(f"{target.stem}-*.vmdk"):
            extra.unlink()
        opts = list(spec.get("options", []))
        args = ["qemu-img", "convert", "-q", "-f", "raw", "-O", fmt]
        if spec.get("compress"):
            args.append("-c")
        if opts:
            args += ["-o", ",".join(opts)]
        if "backing_source" in spec:
            # The backing file is the qcow2 of another source; the overlay holds only
            # the clusters where `source` differs from it.
            backing = self.build(spec["backing_source"])
            rel = os.path.relpath(backing, target.parent)
            args += ["-B", rel, "-F", "qcow2"]
            run(args + [str(src), target.name], cwd=target.parent)
        else:
            run(args + [str(src), str(target)])
        for cmd in spec.get("qemu_io", []):
            run(["qemu-io", "-f", fmt, "-c", cmd, str(target)])
        for patch in spec.get("patch", []):
            with target.open("r+b") as fh:
                fh.seek(parse_size(patch["offset"]))
                fh.write(bytes.fromhex(patch["hex"]))


# ------------------------------------------------------------------ helpers


def apt_mirror(suite: str) -> str:
    """The Debian mirror this machine's own apt sources use for `suite` (deb822
    `*.sources` or one-line `sources.list`), else deb.debian.org."""
    files = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
    for f in files:
        for stanza in f.read_text(errors="replace").split("\n\n"):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if ":" in line and not line.startswith((" ", "#")):
                    k, v = line.split(":", 1)
                    fields[k.strip().lower()] = v.strip()
            if fields.get("enabled", "yes") == "no" or "deb" not in fields.get("types", "").split():
                continue
            if suite in fields.get("suites", "").split() and fields.get("uris"):
                return fields["uris"].split()[0]
    lists = [Path("/etc/apt/sources.list")] + sorted(Path("/etc/apt/sources.list.d").glob("*.list"))
    for f in lists:
        if not f.exists():
            continue
        for line in f.read_text(errors="replace").splitlines():
            words = re.sub(r"\[[^]]*\]", "", line).split()
            if len(words) >= 3 and words[0] == "deb" and words[2] == suite:
                return words[1]
    return "http://deb.debian.org/debian"


def unmount_below(path: Path) -> None:
    """Unmounts (lazily, deepest first) everything mounted at or below `path`."""
    prefix = str(path.resolve())
    with open("/proc/self/mounts") as fh:
        points = [line.split()[1].encode().decode("unicode_escape") for line in fh]
    for mp in sorted((m for m in points if m == prefix or m.startswith(prefix + "/")), key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], capture_output=True)


def debootstrap_tree(name: str, spec: dict, target: Path) -> None:
    """`debootstrap = { suite, variant, include = [...] }`: a real Debian root from
    Debian's packages (needs root and a mirror). Downloaded .debs are cached in
    build/debootstrap-cache, so a rebuild only unpacks and configures."""
    d = spec["debootstrap"]
    if os.geteuid() != 0:
        raise RecipeError(f"tree {name}: debootstrap needs root")
    if shutil.which("debootstrap") is None:
        raise RecipeError(f"tree {name}: debootstrap is not installed (scripts/install-deps.sh)")
    suite = d["suite"]
    cache = OUT / "debootstrap-cache"
    cache.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".partial")
    unmount_below(tmp)
    if tmp.exists():
        shutil.rmtree(tmp)
    args = ["debootstrap", "--merged-usr", f"--variant={d.get('variant', 'minbase')}",
            f"--cache-dir={cache.resolve()}"]
    if d.get("include"):
        args.append("--include=" + ",".join(d["include"]))
    try:
        run(args + [suite, str(tmp), d.get("mirror") or apt_mirror(suite)])
    finally:
        # debootstrap mounts /proc and /sys in the target while it configures; a
        # failed run leaves them mounted, and nothing may delete through them.
        unmount_below(tmp)
    # What a published image would not carry either: apt's lists, debootstrap's logs.
    for sub in ("var/lib/apt/lists", "var/cache/apt/archives", "debootstrap"):
        p = tmp / sub
        if p.is_dir():
            for c in p.iterdir():
                if c.is_file() and c.name != "lock":
                    c.unlink()
    tmp.rename(target)


def run(args: list[str], stdin: str | None = None, env: dict | None = None, cwd: Path | None = None) -> None:
    full_env = dict(os.environ, **(env or {}))
    p = subprocess.run(args, input=stdin, text=True, capture_output=True, env=full_env, cwd=cwd)
    if p.returncode != 0:
        raise RecipeError(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")


def parse_size(v) -> int:
    if isinstance(v, int):
        return v
    s = str(v).strip()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    if s[-1:].upper() in mult:
        return int(float(s[:-1]) * mult[s[-1].upper()])
    return int(s)


def uuid_for(name: str) -> str:
    h = hashlib.sha256(name.encode()).hexdigest()
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{h[20:32]}"


def make_sparse(path: Path, size: int) -> None:
    with path.open("wb") as fh:
        fh.truncate(size)


def copy_sparse(src: Path, dst: Path, offset: int) -> None:
    """Copy src into dst at offset, skipping all-zero 64 KiB chunks so holes stay holes."""
    chunk = 1 << 16
    zero = bytes(chunk)
    with src.open("rb") as fi, dst.open("r+b") as fo:
        pos = 0
        while True:
            b = fi.read(chunk)
            if not b:
                break
            if b != zero[: len(b)]:
                fo.seek(offset + pos)
                fo.write(b)
            pos += len(b)


def path_bytes(e: dict, key: str = "path") -> bytes:
    """Entry paths are text; `escaped = true` lets a recipe spell non-UTF-8 bytes as \\xNN."""
    p = e[key]
    if e.get("escaped"):
        return p.encode("latin-1").decode("unicode_escape").encode("latin-1")
    return p.encode()


def keygen_bytes(e: dict, seed_key: str) -> bytes:
    """Key material made by a real tool (ssh-keygen, openssl, puttygen, gpg).

    `keygen` is a shell script run in an empty directory; the content is the file it
    wrote named by `keygen_file` (default `k`), else its stdout. Keys cannot be seeded,
    so every output file is cached under OUT/keygen/, keyed by `keygen_id` (default:
    the entry path) and the script: rebuilds plant the same bytes, and two entries
    with the same id and script (a private key and its `.pub`) share one key pair.
    """
    script = e["keygen"]
    ident = e.get("keygen_id", seed_key)
    cache = OUT / "keygen" / hashlib.sha256(f"{ident}\0{script}".encode()).hexdigest()[:32]
    if not (cache / ".done").exists():
        with tempfile.TemporaryDirectory() as tmp:
            p = subprocess.run(["sh", "-c", script], cwd=tmp, capture_output=True)
            if p.returncode != 0:
                raise RecipeError(f"keygen {script!r} failed ({p.returncode}):\n{p.stderr.decode(errors='replace')}")
            (Path(tmp) / ".stdout").write_bytes(p.stdout)
            if cache.exists():
                shutil.rmtree(cache)
            cache.mkdir(parents=True)
            # Only the files the script left at the top (not a gpg home, sockets, …).
            for f in Path(tmp).iterdir():
                if f.is_file() and not f.is_symlink():
                    shutil.copyfile(f, cache / f.name)
        (cache / ".done").write_text(script)
    f = cache / e.get("keygen_file", "k")
    return f.read_bytes() if f.exists() else (cache / ".stdout").read_bytes()


def render_template(e: dict, seed_key: str) -> bytes:
    """`template` text with `{{key}}` (the `keygen` output) and filtered forms:
    `{{key|json}}` a JSON string literal, `{{key|base64}}` one base64 line,
    `{{key|indent:N}}` every line indented by N spaces."""
    key = keygen_bytes(e, seed_key).decode() if "keygen" in e else ""
    out = e["template"]
    out = out.replace("{{key|json}}", json.dumps(key))
    out = out.replace("{{key|base64}}", base64.b64encode(key.encode()).decode())
    for n in range(1, 17):
        out = out.replace(f"{{{{key|indent:{n}}}}}", "".join(" " * n + line + "\n" for line in key.splitlines()))
    return out.replace("{{key}}", key).encode()


def content_bytes(e: dict, seed_key: str) -> bytes:
    """A file's bytes from the recipe: exactly one of text, hex, random, marker, repeat,
    keygen, template."""
    if "template" in e:
        data = render_template(e, seed_key)
    elif "keygen" in e:
        data = keygen_bytes(e, seed_key)
    elif "text" in e:
        data = e["text"].encode()
    elif "hex" in e:
        data = bytes.fromhex(e["hex"])
    elif "random" in e:
        data = random.Random(seed_key).randbytes(parse_size(e["random"]))
    elif "marker" in e:
        # A unique, greppable marker repeated to the requested size: residual tests
        # look for it in the raw bytes of scrubbed images.
        size = parse_size(e.get("size", len(e["marker"]) + 1))
        line = (e["marker"] + "\n").encode()
        data = (line * (size // len(line) + 1))[:size]
    elif "repeat" in e:
        data = e["repeat"].encode() * int(e.get("count", 1))
    else:
        data = b""
    if e.get("crlf"):
        data = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data


_CORPUS: bytes | None = None


LOG_MESSAGES = [
    "Accepted publickey for admin from 10.0.{a}.{b} port {c} ssh2",
    "Started Session {c} of user root.",
    "EXT4-fs (vda1): mounted filesystem with ordered data mode",
    "(root) CMD (run-parts /etc/cron.hourly) pid={c}",
    "DHCPACK of 10.0.{a}.{b} from 10.0.0.1 (xid=0x{c:x})",
    '10.0.{a}.{b} - - "GET /api/v1/items/{c} HTTP/1.1" 200 {a}{b}',
]
LOG_PROCS = ["sshd", "systemd", "kernel", "cron", "dhclient", "nginx"]


def log_lines(rng: random.Random, size: int) -> bytes:
    """`size` bytes of syslog-like lines from the file's own RNG: timestamps, addresses
    and ids vary line to line and file to file, as in real logs (unlike slices of one
    shared corpus, which a compressor's window finds again in the next file)."""
    out = []
    n = 0
    t = 1_700_000_000 + rng.randrange(10_000_000)
    while n < size:
        t += rng.randrange(3)
        i = rng.randrange(len(LOG_MESSAGES))
        a, b, c = rng.randrange(256), rng.randrange(256), rng.randrange(65536)
        line = f"{t} host {LOG_PROCS[i]}[{c % 5000}]: " + LOG_MESSAGES[i].format(a=a, b=b, c=c) + "\n"
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def text_corpus() -> bytes:
    """4 MiB of syslog-like lines from a fixed seed, sliced to make text files."""
    global _CORPUS
    if _CORPUS is None:
        rng = random.Random("corpus")
        words = ["kernel", "systemd", "sshd", "session", "opened", "closed", "for", "user", "root",
                 "eth0", "DHCPACK", "from", "link", "up", "Started", "Stopped", "daemon", "cron",
                 "error", "warning", "info", "pid", "uid", "gid", "/usr/lib", "/var/log", "ok"]
        lines = []
        size = 0
        while size < 4 << 20:
            line = f"Jan {rng.randint(1, 28):2d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:{rng.randint(0, 59):02d} host " + \
                " ".join(rng.choice(words) for _ in range(rng.randint(4, 14))) + f" [{rng.randint(1, 99999)}]\n"
            lines.append(line)
            size += len(line)
        _CORPUS = "".join(lines).encode()
    return _CORPUS


def plant(root: Path, entries: list[dict]) -> None:
    rootb = bytes(root)
    for e in entries:
        t = e["type"]
        if t == "many":
            d = rootb + e["dir"].encode()
            os.makedirs(d, exist_ok=True)
            size = parse_size(e.get("size", 0))
            content = e.get("content", "random")
            text = content == "text"
            corpus = text_corpus() if text else b""
            for i in range(int(e["count"])):
                name = f"{e.get('prefix', 'f')}{i:06d}".encode()
                rng = random.Random(f"{e['dir']}/{i}")
                with open(d + b"/" + name, "wb") as fh:
                    if size and content == "log":
                        fh.write(log_lines(rng, size))
                    elif size and text:
                        # Log-like text that compresses about as well as real logs do.
                        start = rng.randrange(len(corpus) - size) if len(corpus) > size else 0
                        fh.write((corpus[start:] + corpus)[:size])
                    elif size:
                        fh.write(rng.randbytes(size))
                os.utime(d + b"/" + name, (EPOCH, EPOCH))
            continue
        p = rootb + path_bytes(e)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        if t == "dir":
            os.makedirs(p, exist_ok=True)
        elif t == "file":
            with open(p, "wb") as fh:
                if "sparse" in e:
                    # sparse = {size = "8M", data = [ {offset = "1M", marker = "..."} ]}
                    fh.truncate(parse_size(e["sparse"]["size"]))
                    for k, d in enumerate(e["sparse"].get("data", [])):
                        fh.seek(parse_size(d["offset"]))
                        fh.write(content_bytes(d, f"{e['path']}#{k}"))
                else:
                    fh.write(content_bytes(e, e["path"]))
        elif t == "symlink":
            os.symlink(e["target"].encode(), p)
        elif t == "hardlink":
            os.link(rootb + e["target"].encode(), p)
        elif t == "fifo":
            os.mkfifo(p)
        elif t == "socket":
            import socket

            s = socket.socket(socket.AF_UNIX)
            s.bind(p)
            s.close()
        elif t == "device":
            if os.geteuid() != 0:
                raise RecipeError("device nodes need root to plant (the fixture build runs as root in CI)")
            kind = stat.S_IFCHR if e.get("kind", "char") == "char" else stat.S_IFBLK
            os.mknod(p, kind | 0o600, os.makedev(int(e["major"]), int(e["minor"])))
        if t != "symlink" and "mode" in e:
            os.chmod(p, int(str(e["mode"]), 8))
        for k, v in e.get("xattrs", {}).items():
            if isinstance(v, dict):
                # Binary values (POSIX ACLs in the kernel's xattr form): {hex = "..."}
                # or a content spec as for files ({random = N}, {repeat, count}).
                v = bytes.fromhex(v["hex"]) if "hex" in v else content_bytes(v, f"{e['path']}@{k}")
            os.setxattr(p, k.encode(), v.encode() if isinstance(v, str) else bytes(v), follow_symlinks=False)
        if os.geteuid() == 0:
            os.lchown(p, int(e.get("uid", 0)), int(e.get("gid", 0)))
            # chown clears set-user/group-ID bits: apply the recipe's mode again.
            if t != "symlink" and "mode" in e:
                os.chmod(p, int(str(e["mode"]), 8))
        t_m = int(e.get("mtime", EPOCH))
        os.utime(p, ns=(t_m * 10**9, t_m * 10**9 + int(e.get("mtime_nsec", 0))), follow_symlinks=False)
    # Directories get fixed times last, after their contents were created.
    for dirpath, dirnames, _ in os.walk(rootb, topdown=False):
        os.utime(dirpath, (EPOCH, EPOCH))


def fix_ext_owners(img: Path, entries: list[dict]) -> None:
    """As non-root, mkfs.ext4 -d plants the builder's uid/gid; set the recipe's with debugfs."""
    if os.geteuid() == 0:
        return
    cmds = []
    for e in entries:
        if e["type"] == "many":
            continue
        p = e["path"]
        cmds.append(f'sif "{p}" uid {int(e.get("uid", 0))}')
        cmds.append(f'sif "{p}" gid {int(e.get("gid", 0))}')
    cmds.append('sif / uid 0')
    cmds.append('sif / gid 0')
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as f:
        f.write("\n".join(cmds) + "\n")
        f.flush()
        run(["debugfs", "-w", "-f", f.name, str(img)])


def run_debugfs_script(img: Path, script: list, tree: Path | None) -> None:
    """Runs commands in one `debugfs -w -f` session (journal_open/write/close need
    one session). `{tree}` is the built tree's directory (host files to `write`).
    An entry `{cmd = "punch /f {i} {i}", range = [start, stop, step]}` expands to one
    command per i, for fragmentation patterns."""
    lines = []
    for item in script:
        if isinstance(item, dict):
            for i in range(*item["range"]):
                lines.append(item["cmd"].replace("{i}", str(i)))
        else:
            lines.append(item)
    lines = [ln.replace("{tree}", str(tree) if tree is not None else "") for ln in lines]
    with tempfile.NamedTemporaryFile("w", suffix=".debugfs") as f:
        f.write("\n".join(lines) + "\n")
        f.flush()
        p = subprocess.run(["debugfs", "-w", "-f", f.name, str(img)], capture_output=True, text=True)
    # debugfs -f reports command errors on stderr but exits 0; fail the build on them.
    errs = [ln for ln in p.stderr.splitlines() if ln.strip() and not ln.startswith("debugfs ")]
    if p.returncode != 0 or errs:
        raise RecipeError(f"debugfs script on {img} failed:\n" + "\n".join(errs[:20]))


def crc32c_raw(crc: int, data: bytes) -> int:
    """ext4's crc32c: the raw register, no final inversion (kernel ext4_chksum)."""
    table = _crc32c_table()
    for b in data:
        crc = table[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc


_CRC_TABLE: list[int] = []


def _crc32c_table() -> list[int]:
    if not _CRC_TABLE:
        for n in range(256):
            c = n
            for _ in range(8):
                c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
            _CRC_TABLE.append(c)
    return _CRC_TABLE


def debugfs_out(img: Path, cmd: str) -> str:
    p = subprocess.run(["debugfs", "-R", cmd, str(img)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RecipeError(f"debugfs -R {cmd!r} {img} failed:\n{p.stderr}")
    return p.stdout


def share_xattr_block(img: Path, keep: str, other: str) -> None:
    """Makes `other` use `keep`'s external xattr block, as the kernel's mbcache does
    for identical xattr sets (mkfs.ext4 -d never shares): point other's i_file_acl
    at it, free other's block, set the block's refcount to 2 and fix its checksum."""
    import re
    import struct

    def acl_of(path: str) -> int:
        m = re.search(r"File ACL: (\d+)", debugfs_out(img, f'stat "{path}"'))
        if not m or int(m.group(1)) == 0:
            raise RecipeError(f"share_xattr_block: {path} has no xattr block in {img}")
        return int(m.group(1))

    a, b = acl_of(keep), acl_of(other)
    run(["debugfs", "-w", "-R", f'sif "{other}" file_acl {a}', str(img)])
    run(["debugfs", "-w", "-R", f"freeb {b}", str(img)])
    sb = img.read_bytes()[1024:2048]
    bs = 1024 << struct.unpack_from("<I", sb, 0x18)[0]
    ro_compat, incompat = struct.unpack_from("<I", sb, 0x64)[0], struct.unpack_from("<I", sb, 0x60)[0]
    with img.open("r+b") as fh:
        fh.seek(a * bs)
        blk = bytearray(fh.read(bs))
        struct.pack_into("<I", blk, 4, struct.unpack_from("<I", blk, 4)[0] + 1)
        if ro_compat & 0x400:  # metadata_csum: crc32c(seed, le64 block, block with h_checksum zeroed)
            seed = struct.unpack_from("<I", sb, 0x270)[0] if incompat & 0x2000 else crc32c_raw(0xFFFFFFFF, sb[0x68:0x78])
            struct.pack_into("<I", blk, 0x10, 0)
            c = crc32c_raw(crc32c_raw(seed, struct.pack("<Q", a)), bytes(blk))
            struct.pack_into("<I", blk, 0x10, c)
        fh.seek(a * bs)
        fh.write(blk)
    # debugfs freeb clears the bitmap bit but leaves the free counts of the group
    # and superblock alone; let e2fsck recount them (it changes nothing else here).
    p = subprocess.run(["e2fsck", "-fy", str(img)], capture_output=True, text=True)
    if p.returncode not in (0, 1):
        raise RecipeError(f"e2fsck -fy {img} after share_xattr_block failed ({p.returncode}):\n{p.stdout}")


FAT_POST_COMMANDS = {"mcopy", "mdel", "mdeltree", "mmd", "mrd", "mren", "mattrib", "fill"}


def populate_mounted(img: Path, tree: Path | None, spec: dict) -> None:
    """Fills a filesystem through the kernel (root only): loop-mounts `img`
    read-write, copies `tree` in (`cp -a`), runs the `populate` shell script in the
    mount point (`$MNT`), then unmounts. `shutdown = true` instead ends with
    `xfs_io -x -c "shutdown -f"` (log flushed, no unmount record): a dirty log, as
    a snapshot of a running VM has. What only the kernel makes (leaf/node/B+tree
    directories, reflinks, unwritten extents, ACLs) is made this way."""
    if os.geteuid() != 0:
        raise RecipeError(f"{img.name}: populating through a loop mount needs root")
    mnt = Path(tempfile.mkdtemp(prefix="vmscrub-fx-mnt-"))
    try:
        run(["mount", "-o", "loop", str(img), str(mnt)])
        try:
            if tree is not None:
                run(["cp", "-a", f"{tree}/.", str(mnt)])
            if "populate" in spec:
                run(["sh", "-euc", spec["populate"]], env={"MNT": str(mnt)}, cwd=mnt)
            run(["sync"])
            if spec.get("shutdown"):
                run(["xfs_io", "-x", "-c", "shutdown -f", str(mnt)])
        finally:
            subprocess.run(["umount", str(mnt)], check=False)
    finally:
        mnt.rmdir()


def mtools_trees(spec: dict) -> list[str]:
    """Trees a vfat recipe's `mtools` steps copy from (`{tree:NAME}`): dependencies."""
    return [m for line in spec.get("mtools", []) for m in re.findall(r"\{tree:([^}]+)\}", line)]


def fat_free_bytes(img: Path, env: dict) -> tuple[int, int]:
    """(free bytes, cluster bytes) of a FAT image, as mtools counts them."""
    p = subprocess.run(["mdir", "-i", str(img), "::/"], capture_output=True, text=True, env=dict(os.environ, **env))
    m = re.search(r"([\d ]+) bytes free", p.stdout)
    info = subprocess.run(["minfo", "-i", str(img), "::"], capture_output=True, text=True, env=dict(os.environ, **env)).stdout
    sec = re.search(r"sector size: (\d+) bytes", info)
    spc = re.search(r"cluster size: (\d+) sectors", info)
    if not (m and sec and spc):
        raise RecipeError(f"cannot read the free space of {img} from mdir/minfo")
    return int(m.group(1).replace(" ", "")), int(sec.group(1)) * int(spc.group(1))


def fat_copy_tree(img: Path, tree: Path, entries: list[dict]) -> None:
    env = {"MTOOLS_SKIP_CHECK": "1", "MTOOLS_NO_VFAT": "0"}
    top = sorted(os.listdir(tree))
    if top:
        run(["mcopy", "-s", "-p", "-m", "-i", str(img)] + [str(tree / t) for t in top] + ["::/"], env=env)


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) >= 2 else 2
    b = Builder()
    cmd, names = argv[1], argv[2:]
    try:
        if cmd == "build":
            if not names:
                names = [n for n, (k, s, _) in b.recipes.items() if not s.get("bench")]
            for n in names:
                b.build(n)
        elif cmd == "path":
            for n in names:
                print(b.path(n))
        elif cmd == "list":
            for n, (k, s, f) in sorted(b.recipes.items()):
                print(f"{k:9} {n:32} {f.name}{'  (bench)' if s.get('bench') else ''}")
        elif cmd == "manifest":
            for n in names:
                print(json.dumps(b.tree_entries(n), indent=1, default=str))
        else:
            print(f"unknown command {cmd!r}\n{__doc__}", file=sys.stderr)
            return 2
    except RecipeError as e:
        print(f"fixtures: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
