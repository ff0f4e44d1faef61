#!/usr/bin/env bash
# Debian packages the fixture builder and the tests' independent oracles need.
# Idempotent; run as root or with sudo available.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

PKGS=(
  qemu-utils            # qemu-img, qemu-io: build containers, oracle for every container reader/writer
  e2fsprogs             # mkfs.ext4 -d, e2fsck -fn, debugfs: build and judge ext2/3/4
  dosfstools mtools     # mkfs.fat, fsck.fat -n, mcopy/mdir/mtype: build and judge FAT
  gdisk fdisk           # sgdisk -p, sfdisk, fdisk -b 4096: partition tables and their oracle
  xfsprogs btrfs-progs cryptsetup-bin  # filesystem signatures for identification tests
  python3               # scripts/fixtures.py, the standalone recovery decryptor
  python3-cryptography python3-zstandard  # the decryptor's oracle run in the tests
  7zip                  # 7zz: an independent VMDK reader (VMware-style streams) judging the VMDK writers
  putty-tools gnupg openssh-client openssl  # puttygen/gpg/ssh-keygen/openssl: real keys for the content-detector tests
  python3-bcrypt        # cryptography needs it to open passphrase-protected OpenSSH keys (vmscrub-recover.py)
  openssh-client openssl  # ssh-keygen / openssl generate the recovery tests' keys at test time
  debootstrap           # fixtures/debian.toml: a real Debian cloud root from Debian's packages (package-aware scan)
  rpm                   # rpmbuild, rpm --initdb: real rpmdb.sqlite databases for the rpm readers' tests
  db5.3-util            # db5.3_load: real Berkeley DB hash/btree files for the rpm Packages reader
  python3-pip python3-setuptools python3-wheel  # pip wheel / pip install --target: a real Python RECORD (package trust test)
  strace                # the scrub test that proves no plaintext is written anywhere but the archive
  default-jre-headless  # keytool: the JKS/JCEKS/PKCS12 keystore fixtures (no lighter real writer of JKS exists)
  wireguard-tools       # wg genkey: the WireGuard private-key fixture
  lvm2                  # pvcreate/vgcreate/lvcreate build the LVM fixtures; pvs/lvs/pvck judge them (no device-mapper needed)
  age                   # age, age-keygen: the age secret-key fixture; open the age-format recovery archive without vmscrub
  cpio                  # cpio -o: the nested-archive detector tests
  keepassxc             # keepassxc-cli db-create/add: the KeePass database fixture (the real KDBX writer; no lighter CLI writes KDBX)
  zstd                  # zstd -d after `age -d`: the archive's payload, decompressed by the reference tool
  acl attr              # setfacl/setfattr: the XFS fixtures' ACLs and xattrs, made through the kernel (fixtures/xfs.toml)
  xxd                   # scripts/corpora.py: dosfstools ships its test images as xxd hex dumps
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The python3 first on PATH may not be Debian's (pyenv, a venv): make sure the one
# the tests will call can import the decryptor's packages.
if ! python3 -c 'import cryptography, zstandard, bcrypt' 2>/dev/null; then
  python3 -m pip install --quiet cryptography zstandard bcrypt 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages cryptography zstandard bcrypt
fi

# The package-trust test builds a wheel offline (`pip wheel --no-build-isolation`):
# the python3 first on PATH needs setuptools and wheel.
if ! python3 -c 'import setuptools, wheel' 2>/dev/null; then
  python3 -m pip install --quiet setuptools wheel 2>/dev/null \
    || python3 -m pip install --quiet --break-system-packages setuptools wheel
fi
