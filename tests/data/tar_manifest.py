#!/usr/bin/env python3
"""Lists a tar as JSON with Python's tarfile: an oracle for the recovery archive's
tar that shares no code with vmscrub. One object per member: name (and its bytes in hex: names need not be UTF-8), type, size,
mode, uid, gid, uname, gname, mtime, link target, devmajor, devminor, the pax
records (values as hex) and, for regular files, the SHA-256 of the content as
tarfile extracts it (sparse members with their holes)."""
import hashlib
import json
import sys
import tarfile

TYPES = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.DIRTYPE: "dir",
    tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink", tarfile.CHRTYPE: "char",
    tarfile.BLKTYPE: "block", tarfile.FIFOTYPE: "fifo",
}

out = []
with tarfile.open(sys.argv[1], "r:") as t:
    for m in t:
        raw = m.name.encode("utf-8", "surrogateescape")
        e = {
            "name_hex": raw.hex(), "name": raw.decode("utf-8", "replace"), "type": TYPES.get(m.type, repr(m.type)), "size": m.size,
            "mode": m.mode, "uid": m.uid, "gid": m.gid, "uname": m.uname, "gname": m.gname,
            "mtime": m.mtime,
            "linkname_hex": m.linkname.encode("utf-8", "surrogateescape").hex(), "devmajor": m.devmajor,
            "devminor": m.devminor,
            "pax": {k: v.encode("utf-8", "surrogateescape").hex() for k, v in m.pax_headers.items()},
        }
        if m.isreg():
            f = t.extractfile(m)
            h = hashlib.sha256()
            while True:
                b = f.read(1 << 20)
                if not b:
                    break
                h.update(b)
            e["sha256"] = h.hexdigest()
        out.append(e)
json.dump(out, sys.stdout)
