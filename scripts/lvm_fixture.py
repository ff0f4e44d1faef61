#!/usr/bin/env python3
"""LVM2 on disk images, with the real lvm2 tools: build steps for fixtures and the
tests' oracle.

    scripts/lvm_fixture.py report IMG     JSON of what lvm2 says about IMG: pvs, vgs,
                                          lvs with segments, each LV's bytes as image
                                          offsets, and `pvck --dump metadata` per PV

Every partition of the image (sfdisk -J; the whole image without a table) is
attached as its own loop device (offset + sizelimit: no partition scanning, no
udev). lvm2 only ever sees those devices (`--devices`), never the host's, and
never touches device-mapper (`--driverloaded n`: this also works where the
kernel has none). Loops are detached on every exit path, SIGTERM included.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
from pathlib import Path

CONFIG = (
    "devices { obtain_device_list_from_udev=0 scan_lvs=0 } "
    "activation { udev_sync=0 udev_rules=0 monitoring=0 } "
    "global { thin_check_executable=\"\" } "
    "backup { backup=0 archive=0 }"
)
ENV = dict(os.environ, LVM_SUPPRESS_FD_WARNINGS="1")


class LvmError(Exception):
    pass


def _run(args: list[str], check: bool = True) -> str:
    p = subprocess.run(args, capture_output=True, text=True, env=ENV)
    if check and p.returncode != 0:
        raise LvmError(f"{' '.join(map(shlex.quote, args))} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
    return p.stdout


def partitions(img: Path) -> list[tuple[int, int, int]]:
    """(partition number or 0 for the whole image, byte offset, byte size)."""
    p = subprocess.run(["sfdisk", "-J", str(img)], capture_output=True, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        return [(0, 0, img.stat().st_size)]
    t = json.loads(p.stdout)["partitiontable"]
    sector = int(t.get("sectorsize", 512))
    out = []
    for part in t.get("partitions", []):
        node = part["node"]
        num = int(node[len(node.rstrip("0123456789")):])
        out.append((num, part["start"] * sector, part["size"] * sector))
    return out


class Attached:
    """Loop devices for every partition of an image; detached on exit."""

    def __init__(self, img: Path, writable: bool = False):
        self.img = img
        self.writable = writable
        self.loops: dict[int, tuple[str, int, int]] = {}  # part -> (dev, offset, size)

    def __enter__(self) -> "Attached":
        self._old = signal.signal(signal.SIGTERM, self._term)
        try:
            for num, off, size in partitions(self.img):
                args = ["losetup", "-f", "--show", "-o", str(off), "--sizelimit", str(size)]
                if not self.writable:
                    args.append("-r")
                dev = _run(args + [str(self.img)]).strip()
                self.loops[num] = (dev, off, size)
        except BaseException:
            self.__exit__()
            raise
        return self

    @staticmethod
    def _term(signum, frame):
        raise SystemExit(128 + signum)

    def __exit__(self, *exc) -> None:
        for vg in self.vg_names():
            self.lvm(["vgchange", "-an", vg], check=False)
        for dev, _, _ in self.loops.values():
            subprocess.run(["losetup", "-d", dev], capture_output=True)
        self.loops.clear()
        signal.signal(signal.SIGTERM, getattr(self, "_old", signal.SIG_DFL))

    def devs(self) -> list[str]:
        return [d for d, _, _ in self.loops.values()]

    def lvm(self, args: list[str], check: bool = True) -> str:
        if not self.loops:
            return ""
        return _run(
            args + ["--devices", ",".join(self.devs()), "--config", CONFIG, "--driverloaded", "n"],
            check,
        )

    def vg_names(self) -> list[str]:
        try:
            out = self.lvm(["vgs", "--noheadings", "-o", "vg_name"], check=False)
        except Exception:
            return []
        return [l.strip() for l in out.splitlines() if l.strip()]

    def report_json(self, cmd: str, fields: str, extra: list[str] = []) -> list[dict]:
        out = self.lvm([cmd, "--reportformat", "json", "--units", "b", "--nosuffix", "-o", fields] + extra)
        return json.loads(out)["report"][0][next(iter(json.loads(out)["report"][0]))]

    def image_offset(self, dev: str) -> int:
        for d, off, _ in self.loops.values():
            if d == dev:
                return off
        raise LvmError(f"{dev} is not one of this image's loop devices")

    def lv_map(self) -> dict[str, list[tuple[int, int, int]]]:
        """`vg/lv` -> [(lv byte offset, image byte offset, length)], from lvm2's own
        reports: each segment's PE ranges, the PVs' pe_start, the extent size."""
        pvs = {p["pv_name"]: p for p in self.report_json("pvs", "pv_name,pe_start,vg_extent_size")}
        segs = self.report_json(
            "lvs", "vg_name,lv_name,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges,segtype",
            ["--segments", "-a"],
        )
        out: dict[str, list[tuple[int, int, int]]] = {}
        for s in segs:
            key = f"{s['vg_name']}/{s['lv_name']}"
            runs = out.setdefault(key, [])
            if s["segtype"] not in ("linear", "striped"):
                continue
            areas = []
            for r in s["seg_pe_ranges"].split():
                dev, rng = r.rsplit(":", 1)
                a, _b = rng.split("-")
                es = int(pvs[dev]["vg_extent_size"])
                areas.append(self.image_offset(dev) + int(pvs[dev]["pe_start"]) + int(a) * es)
            es = int(next(iter(pvs.values()))["vg_extent_size"])
            lv_start = int(s["seg_start_pe"]) * es
            length = int(s["seg_size_pe"]) * es
            n = len(areas)
            chunk = int(s["stripe_size"]) if n > 1 else length
            for i in range(length // chunk):
                row, stripe = divmod(i, n)
                runs.append((lv_start + i * chunk, areas[stripe] + row * chunk, chunk))
        return out


def read_lv(img: Path, runs: list[tuple[int, int, int]]) -> bytes:
    out = bytearray()
    with img.open("rb") as f:
        for lv_off, img_off, n in sorted(runs):
            f.seek(img_off)
            out += f.read(n)
    return bytes(out)


def write_lv(img: Path, runs: list[tuple[int, int, int]], data_at: int, data: bytes) -> None:
    """Writes `data` at LV offset `data_at` through the runs. Zero chunks are
    only written where the image does not already read as zeros, so holes stay
    holes (a sparse image stays sparse) and old contents are still overwritten."""
    chunk = 1 << 16
    with img.open("r+b") as f:
        for lv_off, img_off, n in sorted(runs):
            a, b = max(lv_off, data_at), min(lv_off + n, data_at + len(data))
            for pos in range(a, b, chunk):
                piece = data[pos - data_at : min(pos + chunk, b) - data_at]
                at = img_off + pos - lv_off
                if not any(piece):
                    f.seek(at)
                    if not any(f.read(len(piece))):
                        continue
                f.seek(at)
                f.write(piece)


def apply_steps(img: Path, steps: list, build_fs) -> None:
    """Runs a disk recipe's `lvm` steps on `img` (see fixtures/README.md)."""
    with Attached(img, writable=True) as at:
        for st in steps:
            if isinstance(st, str):
                args = shlex.split(st.format(**{f"p{n}": d for n, (d, _, _) in at.loops.items()}))
                at.lvm(args)
            elif "fill" in st:
                runs = at.lv_map()[st["fill"]]
                data = Path(build_fs(st["fs"])).read_bytes()
                write_lv(img, runs, 0, data)
            elif "write" in st:
                runs = at.lv_map()[st["write"]]
                data = (st["marker"].encode() * (int(st.get("size", 4096)) // len(st["marker"]) + 1))[: int(st.get("size", 4096))]
                write_lv(img, runs, int(st.get("offset", 0)), data)
            elif "wipe" in st:
                dev, off, size = at.loops[int(st["wipe"])]
                with img.open("r+b") as f:
                    f.seek(off)
                    f.write(bytes(min(size, 1 << 20)))
            elif "add_lvs" in st:
                # lvm2 cannot create some LV types without device-mapper (thin
                # pools): write them into the VG's metadata text and let
                # vgcfgrestore (lvm2 itself) commit it.
                vg = st["add_lvs"]
                tmp = img.with_suffix(".vgcfg")
                at.lvm(["vgcfgbackup", "-f", str(tmp), vg])
                text = tmp.read_text()
                text = text.replace("logical_volumes {", "logical_volumes {\n" + st["text"], 1)
                if "logical_volumes {" not in tmp.read_text():
                    text = text.replace("\n}\n", "\nlogical_volumes {\n" + st["text"] + "\n}\n}\n", 1)
                tmp.write_text(text)
                at.lvm(["vgcfgrestore", "--force", "-f", str(tmp), vg])
                tmp.unlink()
            else:
                raise LvmError(f"unknown lvm step {st!r}")


def report(img: Path) -> dict:
    with Attached(img) as at:
        names = {d: n for n, (d, _, _) in at.loops.items()}
        pvs = at.report_json("pvs", "pv_name,pv_uuid,vg_name,pv_size,pe_start,pv_pe_count,pv_pe_alloc_count,dev_size")
        for p in pvs:
            p["partition"] = names.get(p["pv_name"]) or None  # null: the whole disk
        vgs = at.report_json("vgs", "vg_name,vg_uuid,vg_seqno,vg_extent_size,pv_count,lv_count,vg_missing_pv_count")
        lvs = at.report_json(
            "lvs", "vg_name,lv_name,lv_uuid,lv_size,segtype,seg_start_pe,seg_size_pe,stripes,stripe_size,seg_pe_ranges,lv_attr",
            ["--segments", "-a"],
        )
        for s in lvs:
            s["seg_pe_ranges"] = " ".join(
                f"p{names.get(r.rsplit(':', 1)[0], '?')}:{r.rsplit(':', 1)[1]}" for r in s["seg_pe_ranges"].split()
            )
        try:
            lv_map = at.lv_map()
        except LvmError:
            lv_map = {}
        # Loop device names differ between attachments: report partitions only.
        pv_devs = [p.pop("pv_name") for p in pvs]
        pvck = {}
        copies = {}
        for n, (dev, _, _) in at.loops.items():
            if dev in pv_devs:
                # pvck reads only the device it is given (and rejects --devices).
                pvck[str(n)] = _run(["pvck", "--dump", "metadata", "--config", CONFIG, dev], check=False)
                # Every copy lvm2 finds in the metadata area's ring buffer.
                every = _run(["pvck", "--dump", "metadata_all", "--config", CONFIG, dev], check=False)
                copies[str(n)] = sorted(
                    {int(m) for m in re.findall(r"^\s*metadata at \d+ .* seqno (\d+) ", every, re.M)}
                )
        return {"pvs": pvs, "vgs": vgs, "lvs": lvs, "lv_map": lv_map, "pvck": pvck, "metadata_copies": copies}


def main(argv: list[str]) -> int:
    if len(argv) == 3 and argv[1] == "report":
        print(json.dumps(report(Path(argv[2])), indent=1))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
