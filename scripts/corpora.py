#!/usr/bin/env python3
"""Other projects' hostile test images, fetched from Debian source packages at test time.

    scripts/corpora.py fetch NAME ...   download (if needed) and unpack corpus NAME; print its directory
    scripts/corpora.py path NAME        the directory of NAME for the versions in the cached lists
    scripts/corpora.py sources          print the private sources this machine's apt sources give

Corpora (never committed; vmscrub's tests run every image through every verb):
  e2fsprogs   tests/*/image.{gz,bz2,tar.bz2}, tests/*/image, tests/i_qcow/*.orig.bz2 -> NAME.img
  dosfstools  tests/*.fsck (damaged) and tests/*.xxd (clean) hex dumps -> STEM.fsck.img, STEM.xxd.img
  qemu        tests/qemu-iotests/sample_images/*.bz2 -> the file without .bz2

How: the machine's own apt sources (one-line sources.list files and deb822 .sources,
wherever `apt-config` says they are) become deb-src entries in a private apt
configuration under $VMSCRUB_FIXTURE_DIR/corpora/apt (its own source list, lists and
cache, so the system's apt state is never touched), `apt-get update` fetches the
Sources indexes, and `apt-get source --download-only` the source packages. Only the
test images are unpacked (sparse), into a directory named after the source package's
version, so a new Debian revision gives a new corpus and an unchanged one is never
fetched again. The indexes are refreshed once a day; when the network is down the
cached indexes (and corpora) are used.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = Path(os.environ.get("VMSCRUB_FIXTURE_DIR", REPO / "fixtures" / "build")) / "corpora"
APT = OUT / "apt"
DOWNLOADS = OUT / "downloads"
SCRIPT_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()
LISTS_MAX_AGE = 24 * 3600
CORPORA = ("e2fsprogs", "dosfstools", "qemu")


class CorpusError(Exception):
    pass


# ----------------------------------------------------------------- apt sources


def system_source_files() -> list[Path]:
    """The system's source list and the files of its parts directory, as apt sees them."""
    out = subprocess.run(
        ["apt-config", "shell", "LIST", "Dir::Etc::sourcelist/f", "PARTS", "Dir::Etc::sourceparts/d"],
        capture_output=True, text=True,
    )
    found = dict(re.findall(r"^(\w+)='(.*)'$", out.stdout, re.M))
    files = [Path(found.get("LIST", "/etc/apt/sources.list"))]
    parts = Path(found.get("PARTS", "/etc/apt/sources.list.d"))
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    return [f for f in files if f.is_file()]


def one_line_sources(text: str) -> list[str]:
    """`deb [options] URI SUITE [COMPONENT...]` lines turned into `deb-src` lines."""
    out = []
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        m = re.match(r"^(deb|deb-src)\s+(.*)$", line)
        if m:
            out.append(f"deb-src {m.group(2)}")
    return out


def deb822_sources(text: str) -> list[str]:
    """deb822 stanzas whose Types include `deb`, turned into `deb-src` stanzas; every
    other field (URIs, Suites, Components, Signed-By, even an inline key) is kept."""
    stanzas, cur = [], []
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        if not line.strip():
            if cur:
                stanzas.append(cur)
            cur = []
            continue
        if line[0] in " \t" and cur:
            cur[-1] += "\n" + line
        else:
            cur.append(line)
    if cur:
        stanzas.append(cur)
    out = []
    for fields in stanzas:
        parsed = {f.split(":", 1)[0].strip().lower(): f for f in fields if ":" in f}
        types = parsed.get("types", "").split(":", 1)[-1].split()
        enabled = parsed.get("enabled", "enabled: yes").split(":", 1)[-1].strip().lower()
        if not {"deb", "deb-src"} & set(types) or enabled == "no":
            continue
        kept = [f for k, f in parsed.items() if k not in ("types", "enabled")]
        out.append("\n".join(["Types: deb-src"] + kept))
    return out


def write_private_sources() -> tuple[Path, Path]:
    """Derives the private source list and parts directory; returns both."""
    lines, stanzas = [], []
    for f in system_source_files():
        text = f.read_text(errors="replace")
        if f.suffix == ".sources":
            stanzas += deb822_sources(text)
        else:
            lines += one_line_sources(text)
    if not lines and not stanzas:
        raise CorpusError("no `deb` source in the machine's apt sources: cannot derive deb-src entries")
    parts = APT / "sources.list.d"
    parts.mkdir(parents=True, exist_ok=True)
    for old in parts.iterdir():
        old.unlink()
    listing = APT / "sources.list"
    listing.write_text("".join(sorted(set(l + "\n" for l in lines))))
    if stanzas:
        (parts / "derived.sources").write_text("\n\n".join(stanzas) + "\n")
    return listing, parts


def apt_options() -> list[str]:
    return [
        "-o", f"Dir::Etc::SourceList={APT / 'sources.list'}",
        "-o", f"Dir::Etc::SourceParts={APT / 'sources.list.d'}",
        "-o", f"Dir::State::Lists={APT / 'lists'}",
        "-o", f"Dir::Cache={APT / 'cache'}",
        "-o", f"Dir::State::status={APT / 'status'}",
        # The private directories belong to whoever runs the tests, not to _apt.
        "-o", "APT::Sandbox::User=" + ("root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")),
        "-o", "Debug::NoLocking=" + ("false" if os.geteuid() == 0 else "true"),
    ]


def refresh_lists() -> None:
    """`apt-get update` of the private configuration, at most once a day. A failure
    (offline, a third-party repository without sources) is a warning while some
    index is there: `apt-get source` says later whether what we need is in it."""
    stamp = APT / "lists.stamp"
    write_private_sources()
    for d in ("lists/partial", "cache/archives/partial"):
        (APT / d).mkdir(parents=True, exist_ok=True)
    (APT / "status").touch()
    if stamp.exists() and time.time() - stamp.stat().st_mtime < LISTS_MAX_AGE:
        return
    p = subprocess.run(["apt-get", "-q", *apt_options(), "update"], capture_output=True, text=True)
    if p.returncode == 0:
        stamp.write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ\n", time.gmtime()))
        return
    have = any((APT / "lists").glob("*Sources*"))
    print(f"corpora: apt-get update failed ({p.returncode}){'; using the cached indexes' if have else ''}:\n"
          f"{p.stdout[-2000:]}{p.stderr[-2000:]}", file=sys.stderr)
    if not have:
        raise CorpusError("no Sources index could be fetched (see above)")


def source_files(package: str) -> list[tuple[str, str, str]]:
    """(url, file name, "ALGO:hash") of the source package in the private indexes."""
    p = subprocess.run(["apt-get", "-q", *apt_options(), "source", "--print-uris", package],
                       capture_output=True, text=True)
    found = re.findall(r"^'([^']+)' (\S+) \d+ (\S+)$", p.stdout, re.M)
    if p.returncode != 0 or not found:
        raise CorpusError(f"source package {package} not found in the deb-src indexes "
                          f"({APT / 'sources.list'}):\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    return found


def version_of(files: list[tuple[str, str, str]]) -> str:
    for _, name, _ in files:
        if name.endswith(".dsc"):
            return name[: -len(".dsc")].split("_", 1)[1]
    raise CorpusError(f"no .dsc among {[n for _, n, _ in files]}")


def download(package: str, files: list[tuple[str, str, str]]) -> Path:
    """The source package's files in DOWNLOADS/PACKAGE_VERSION (apt checks their hashes)."""
    where = DOWNLOADS / f"{package}_{version_of(files)}"
    if all((where / n).exists() for _, n, _ in files) and (where / ".complete").exists():
        return where
    where.mkdir(parents=True, exist_ok=True)
    print(f"corpora: downloading the {package} source package into {where}", file=sys.stderr)
    p = subprocess.run(["apt-get", "-q", *apt_options(), "source", "--download-only", package],
                       cwd=where, capture_output=True, text=True)
    if p.returncode != 0:
        raise CorpusError(f"apt-get source {package} failed:\n{p.stdout[-2000:]}{p.stderr[-2000:]}")
    (where / ".complete").touch()
    # Older versions of this package are dead weight now.
    for old in DOWNLOADS.glob(f"{package}_*"):
        if old != where:
            shutil.rmtree(old)
    return where


def orig_tarball(where: Path) -> Path:
    found = sorted(where.glob("*.orig.tar.*"))
    found = [f for f in found if not f.name.endswith(".asc")]
    if len(found) != 1:
        raise CorpusError(f"expected one upstream tarball in {where}, found {[f.name for f in found]}")
    return found[0]


# ------------------------------------------------------------------- unpacking


def write_sparse(target: Path, data: bytes) -> None:
    """Writes `data` leaving all-zero 4 KiB blocks as holes: the corpora are mostly zeros."""
    tmp = target.with_name(target.name + ".part")
    with tmp.open("wb") as fh:
        block = 4096
        zero = bytes(block)
        for off in range(0, len(data), block):
            chunk = data[off : off + block]
            if chunk == zero[: len(chunk)]:
                fh.seek(off + len(chunk))
            else:
                fh.seek(off)
                fh.write(chunk)
        fh.truncate(len(data))
    tmp.rename(target)


def members(tarball: Path, pattern: str):
    """(member name, bytes) of the tarball's regular files whose path matches `pattern`."""
    rx = re.compile(pattern)
    with tarfile.open(tarball) as tf:
        for m in tf:
            if m.isfile() and rx.search(m.name):
                fh = tf.extractfile(m)
                if fh is not None:
                    yield m.name, fh.read()


def unpack_e2fsprogs(tarball: Path, dest: Path) -> None:
    for name, data in members(tarball, r"^[^/]+/tests/[^/]+/image[^/]*$"):
        test, file = name.split("/")[-2:]
        if file == "image.gz":
            write_sparse(dest / f"{test}.img", gzip.decompress(data))
        elif file == "image.bz2":
            write_sparse(dest / f"{test}.img", bz2.decompress(data))
        elif file == "image":
            write_sparse(dest / f"{test}.img", data)
        elif file == "image.tar.bz2":
            # An image with an external journal: the filesystem is the member ending in .img.
            with tarfile.open(fileobj=io.BytesIO(data), mode="r:bz2") as inner:
                for m in inner:
                    f = inner.extractfile(m) if m.isfile() and m.name.endswith(".img") else None
                    if f is not None:
                        write_sparse(dest / f"{test}.img", f.read())
        elif m := re.fullmatch(r"image(\d+)\.orig\.bz2", file):
            write_sparse(dest / f"{test}-{m.group(1)}.img", bz2.decompress(data))


def unpack_dosfstools(tarball: Path, dest: Path) -> None:
    """Every hex dump of an image: `check-*.fsck` are damaged ones (fsck.fat's
    regression inputs), `*.xxd` clean ones; `xxd -r` writes them (sparse)."""
    for name, data in members(tarball, r"^[^/]+/tests/[^/]+\.(fsck|xxd)$"):
        stem = name.split("/")[-1]
        target = dest / f"{stem}.img"
        p = subprocess.run(["xxd", "-r", "-", str(target)], input=data, capture_output=True)
        if p.returncode != 0:
            raise CorpusError(f"xxd -r {name} failed: {p.stderr.decode(errors='replace')}")


def unpack_qemu(tarball: Path, dest: Path) -> None:
    for name, data in members(tarball, r"/tests/qemu-iotests/sample_images/[^/]+\.bz2$"):
        write_sparse(dest / name.split("/")[-1][: -len(".bz2")], bz2.decompress(data))


UNPACK = {"e2fsprogs": unpack_e2fsprogs, "dosfstools": unpack_dosfstools, "qemu": unpack_qemu}


def corpus_dir(name: str, files: list[tuple[str, str, str]]) -> Path:
    return OUT / f"{name}_{version_of(files)}"


def fetch(name: str) -> Path:
    if name not in CORPORA:
        raise CorpusError(f"no corpus {name!r}; known: {', '.join(CORPORA)}")
    refresh_lists()
    files = source_files(name)
    dest = corpus_dir(name, files)
    stamp = dest / ".stamp"
    if stamp.exists() and stamp.read_text() == SCRIPT_HASH:
        return dest
    tarball = orig_tarball(download(name, files))
    print(f"corpora: unpacking the {name} test images into {dest}", file=sys.stderr)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    UNPACK[name](tarball, dest)
    if not any(dest.iterdir()):
        raise CorpusError(f"{tarball.name} holds no test image where {name}'s recipe looks")
    for old in OUT.glob(f"{name}_*"):
        if old != dest and old.is_dir():
            shutil.rmtree(old)
    stamp.write_text(SCRIPT_HASH)
    return dest


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "fetch":
        for n in argv[1:]:
            print(fetch(n))
        return 0
    if len(argv) == 2 and argv[0] == "path":
        refresh_lists()
        print(corpus_dir(argv[1], source_files(argv[1])))
        return 0
    if argv == ["sources"]:
        listing, parts = write_private_sources()
        for f in [listing, *sorted(parts.iterdir())]:
            print(f"# {f}\n{f.read_text()}")
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except CorpusError as e:
        print(f"corpora: {e}", file=sys.stderr)
        sys.exit(1)
