#!/usr/bin/env python3
"""Standalone decryptor for vmscrub recovery archives (format version 1).

Written from docs/recovery-format.md alone, with Python's `cryptography` and
`zstandard`, so an owner can recover without vmscrub, and so vmscrub's tests have an
independent oracle. Output is the plain tar; restore it with

    sudo tar --xattrs --xattrs-include='*' --acls -xpf removed.tar -C /

Usage:
    vmscrub-recover.py FILE --identity KEY [-o OUT.tar] [--force]
                       [--passphrase-file F]

The passphrase of an encrypted key comes from --passphrase-file, else the
VMSCRUB_PASSPHRASE environment variable, else a prompt on the terminal.
Without -o the tar goes to standard output (refused if that is a terminal).
With -o it is written to a temporary name beside OUT and renamed only after the
last chunk authenticated: nothing partial is ever left behind.
Exit status: 0 success, 2 usage, 3 any error (wrong key, tampered or truncated file).
"""

import argparse
import base64
import getpass
import hashlib
import os
import struct
import sys
import tempfile

try:
    import zstandard
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM
except ImportError as exc:  # pragma: no cover - environment problem
    sys.stderr.write(f"vmscrub-recover: needs python3 cryptography and zstandard: {exc}\n")
    sys.exit(3)

MAGIC = b"\x89VSR\r\n\x1a\n"
FIXED_LEN = 31
MAX_HEADER_LEN = 1024 * 1024
MAX_CHUNK_SIZE = 16 * 1024 * 1024
TAG_LEN = 16


class RecoverError(Exception):
    """A clear, user-facing failure."""


# --- keys ------------------------------------------------------------------------


def _mpint(x: int) -> bytes:
    b = x.to_bytes((x.bit_length() + 7) // 8, "big") if x else b""
    if b and b[0] & 0x80:
        b = b"\x00" + b
    return struct.pack(">I", len(b)) + b


def fingerprint(public_key) -> bytes:
    """SHA-256 of the OpenSSH wire encoding: string "ssh-rsa", mpint e, mpint n."""
    nums = public_key.public_numbers()
    wire = struct.pack(">I", 7) + b"ssh-rsa" + _mpint(nums.e) + _mpint(nums.n)
    return hashlib.sha256(wire).digest()


def format_fingerprint(fp: bytes) -> str:
    return "SHA256:" + base64.b64encode(fp).decode().rstrip("=")


def read_passphrase(args, key_path):
    if args.passphrase_file:
        with open(args.passphrase_file, "rb") as f:
            data = f.read()
        return data.rstrip(b"\r\n")
    env = os.environ.get("VMSCRUB_PASSPHRASE")
    if env is not None:
        return env.encode()
    if not sys.stdin.isatty():
        raise RecoverError(
            f"{key_path} is passphrase-protected; give --passphrase-file or VMSCRUB_PASSPHRASE"
        )
    return getpass.getpass(f"Passphrase for {key_path}: ").encode()


def is_encrypted(data: bytes) -> bool:
    """Whether the key needs a passphrase, decided from its encoding (library
    versions disagree on which exception a missing passphrase raises)."""
    if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
        body = data.split(b"-----BEGIN OPENSSH PRIVATE KEY-----", 1)[1]
        body = body.split(b"-----END", 1)[0]
        try:
            blob = base64.b64decode(b"".join(body.split()))
        except ValueError:
            return False
        magic = b"openssh-key-v1\x00"
        if not blob.startswith(magic) or len(blob) < len(magic) + 4:
            return False
        (n,) = struct.unpack(">I", blob[len(magic) : len(magic) + 4])
        return blob[len(magic) + 4 : len(magic) + 4 + n] != b"none"
    return b"ENCRYPTED PRIVATE KEY" in data or b"Proc-Type: 4,ENCRYPTED" in data


def load_identity(args):
    path = args.identity
    with open(path, "rb") as f:
        data = f.read()

    def load(password):
        if b"-----BEGIN OPENSSH PRIVATE KEY-----" in data:
            return serialization.load_ssh_private_key(data, password=password)
        if b"-----BEGIN" in data:
            return serialization.load_pem_private_key(data, password=password)
        return serialization.load_der_private_key(data, password=password)

    try:
        if is_encrypted(data):
            try:
                key = load(read_passphrase(args, path))
            except ValueError as exc:
                raise RecoverError(f"{path}: wrong passphrase or unreadable key ({exc})") from None
        else:
            key = load(None)
    except (ValueError, TypeError, UnsupportedAlgorithmError) as exc:
        raise RecoverError(f"{path}: not a private key this tool reads ({exc})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise RecoverError(f"{path}: a {type(key).__name__}; recovery archives need an RSA key")
    if key.key_size < 2048:
        raise RecoverError(f"{path}: RSA key of {key.key_size} bits is too small (minimum 2048)")
    return key


try:
    from cryptography.exceptions import UnsupportedAlgorithm as UnsupportedAlgorithmError
except ImportError:  # pragma: no cover
    UnsupportedAlgorithmError = ValueError


# --- header ----------------------------------------------------------------------


def read_exact(f, n):
    buf = b""
    while len(buf) < n:
        part = f.read(n - len(buf))
        if not part:
            break
        buf += part
    return buf


def read_header(f):
    fixed = read_exact(f, FIXED_LEN)
    if len(fixed) < FIXED_LEN:
        raise RecoverError("file too short to be a recovery archive (truncated header)")
    if fixed.startswith(b"age-encryption.org/v1"):
        raise RecoverError(
            "this archive is in the age format, which this script does not read: "
            "age -d -i KEY ARCHIVE | zstd -d > removed.tar"
        )
    if fixed[:8] != MAGIC:
        raise RecoverError("not a vmscrub recovery archive (bad magic)")
    (version,) = struct.unpack(">H", fixed[8:10])
    if version != 1:
        raise RecoverError(f"unsupported format version {version}")
    (header_len,) = struct.unpack(">I", fixed[10:14])
    if not FIXED_LEN <= header_len <= MAX_HEADER_LEN:
        raise RecoverError(f"header length {header_len} out of range")
    cipher, comp, payload, reserved = fixed[14], fixed[15], fixed[16], fixed[17]
    if (cipher, comp, payload, reserved) != (1, 1, 1, 0):
        raise RecoverError(f"unknown algorithm ids {cipher}/{comp}/{payload}/{reserved}")
    (chunk_size,) = struct.unpack(">I", fixed[18:22])
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise RecoverError(f"chunk size {chunk_size} out of range")
    prefix = fixed[22:29]
    (count,) = struct.unpack(">H", fixed[29:31])
    if not 1 <= count <= 1024:
        raise RecoverError(f"recipient count {count} out of range")
    rest = read_exact(f, header_len - FIXED_LEN)
    if len(rest) != header_len - FIXED_LEN:
        raise RecoverError("file ends inside the header (truncated)")
    header = fixed + rest
    pos = FIXED_LEN
    entries = []
    for i in range(count):
        if pos + 36 > header_len:
            raise RecoverError(f"recipient entry {i} runs past the header")
        rtype, rres = header[pos], header[pos + 1]
        if rtype != 1 or rres != 0:
            raise RecoverError(f"recipient entry {i}: unknown type {rtype}")
        fp = header[pos + 2 : pos + 34]
        (wlen,) = struct.unpack(">H", header[pos + 34 : pos + 36])
        pos += 36
        if pos + wlen > header_len:
            raise RecoverError(f"recipient entry {i} runs past the header")
        entries.append((fp, header[pos : pos + wlen]))
        pos += wlen
    if pos != header_len:
        raise RecoverError("bytes left over after the recipient entries")
    return header, chunk_size, prefix, entries


def unwrap_key(key, entries):
    mine = fingerprint(key.public_key())
    ordered = [e for e in entries if e[0] == mine] + [e for e in entries if e[0] != mine]
    oaep = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    for _, wrapped in ordered:
        try:
            data_key = key.decrypt(wrapped, oaep)
        except ValueError:
            continue
        if len(data_key) == 32:
            return data_key
    listed = ", ".join(format_fingerprint(fp) for fp, _ in entries)
    raise RecoverError(
        f"no recipient of this archive opens with key {format_fingerprint(mine)}; "
        f"the archive was made for: {listed}"
    )


# --- payload ---------------------------------------------------------------------


def decrypt(f, out, key):
    header, chunk_size, prefix, entries = read_header(f)
    data_key = unwrap_key(key, entries)
    aead = AESGCM(data_key)
    aad = hashlib.sha256(header).digest()
    dctx = zstandard.ZstdDecompressor()
    dobj = dctx.decompressobj()
    full = chunk_size + TAG_LEN
    offset = len(header)
    i = 0
    in_frame = False
    pending = read_exact(f, full)
    while True:
        if len(pending) == full:
            nxt = read_exact(f, full)
            last = len(nxt) == 0
        else:
            nxt = b""
            last = True
        if len(pending) < TAG_LEN:
            raise RecoverError(f"chunk {i} at byte {offset} is truncated")
        if i >= 0xFFFFFFFF:
            raise RecoverError("too many chunks")
        nonce = prefix + struct.pack(">I", i) + (b"\x01" if last else b"\x00")
        try:
            plain = aead.decrypt(nonce, pending, aad)
        except InvalidTag:
            if last:
                try:
                    aead.decrypt(prefix + struct.pack(">I", i) + b"\x00", pending, aad)
                    raise RecoverError(
                        f"the archive is truncated after chunk {i} (at byte {offset})"
                    ) from None
                except InvalidTag:
                    pass
            raise RecoverError(
                f"chunk {i} (at byte {offset}) failed authentication: the archive was "
                "modified, truncated, reordered or has data appended"
            ) from None
        # zstd: keep decompressing across frame boundaries.
        while plain:
            out.write(dobj.decompress(plain))
            if dobj.eof:
                plain = dobj.unused_data
                dobj = dctx.decompressobj()
                in_frame = False
            else:
                plain = b""
                in_frame = True
        offset += len(pending)
        i += 1
        if last:
            break
        pending = nxt
    # A payload that ends mid-frame is corrupt even if it authenticated.
    if in_frame:
        raise RecoverError("the zstd stream ends inside a frame")


# --- main ------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="vmscrub-recover.py",
        description="Decrypt a vmscrub recovery archive to a plain tar (no vmscrub needed).",
    )
    ap.add_argument("file", help="the recovery archive (.vsr)")
    ap.add_argument("--identity", "-i", required=True, help="RSA private key: OpenSSH, PEM PKCS#1 or PKCS#8")
    ap.add_argument("-o", "--output", help="write the tar here (default: standard output)")
    ap.add_argument("--force", action="store_true", help="overwrite an existing -o file")
    ap.add_argument("--passphrase-file", help="read the key's passphrase from this file")
    args = ap.parse_args(argv)

    tmp = None
    try:
        key = load_identity(args)
        with open(args.file, "rb") as f:
            if args.output is None:
                if sys.stdout.isatty():
                    raise RecoverError("refusing to write a tar to a terminal; use -o FILE")
                decrypt(f, sys.stdout.buffer, key)
                sys.stdout.buffer.flush()
                return 0
            if os.path.lexists(args.output) and not args.force:
                raise RecoverError(f"{args.output} exists; use --force to overwrite it")
            outdir = os.path.dirname(os.path.abspath(args.output))
            fd, tmp = tempfile.mkstemp(prefix=".vmscrub-recover-", suffix=".tmp", dir=outdir)
            with os.fdopen(fd, "wb") as out:
                decrypt(f, out, key)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, args.output)
            tmp = None
        return 0
    except RecoverError as exc:
        sys.stderr.write(f"vmscrub-recover: error: {exc}\n")
        return 3
    except OSError as exc:
        sys.stderr.write(f"vmscrub-recover: error: {exc}\n")
        return 3
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass


if __name__ == "__main__":
    sys.exit(main())
