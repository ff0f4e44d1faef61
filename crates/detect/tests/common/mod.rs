//! Test support: keys made by real tools (ssh-keygen, openssl, puttygen, gpg), the
//! wrappings a key is found in, and a compact view of findings.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use vmscrub_detect::{DetectorSet, Scan, Scanner};

/// Runs `sh -c script` in `dir`; panics with stderr on failure.
pub fn sh(dir: &Path, script: &str) -> Vec<u8> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "`{script}` failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A generated key file: what made it, its bytes, the detector that must fire and a
/// piece of the reason it must give.
pub struct Key {
    pub name: &'static str,
    pub text: Vec<u8>,
    pub detector: &'static str,
    pub why: &'static str,
}

/// `(name, script producing file k or stdout, detector, why fragment)`.
pub const RECIPES: &[(&str, &str, &str, &str)] = &[
    (
        "ssh-ed25519",
        "ssh-keygen -q -t ed25519 -N '' -f k",
        "openssh-private-key",
        "ed25519, unencrypted",
    ),
    (
        "ssh-ed25519-pass",
        "ssh-keygen -q -t ed25519 -N hunter22 -f k",
        "openssh-private-key",
        "ed25519, encrypted aes256-ctr",
    ),
    (
        "ssh-rsa",
        "ssh-keygen -q -t rsa -b 2048 -N '' -f k",
        "openssh-private-key",
        "rsa 2048-bit, unencrypted",
    ),
    (
        "ssh-ecdsa",
        "ssh-keygen -q -t ecdsa -b 256 -N '' -f k",
        "openssh-private-key",
        "ecdsa P-256, unencrypted",
    ),
    (
        "ssh-ecdsa384-pass",
        "ssh-keygen -q -t ecdsa -b 384 -N pw123456 -f k",
        "openssh-private-key",
        "ecdsa P-384, encrypted",
    ),
    (
        "ssh-rsa-pem",
        "ssh-keygen -q -t rsa -b 2048 -m PEM -N '' -f k",
        "pem-private-key",
        "RSA 2048-bit private key (PKCS#1",
    ),
    (
        "ssh-rsa-pem-pass",
        "ssh-keygen -q -t rsa -b 2048 -m PEM -N hunter22 -f k",
        "pem-private-key",
        "RSA private key (legacy PEM encryption, AES-128-CBC)",
    ),
    (
        "ssh-ecdsa-pem",
        "ssh-keygen -q -t ecdsa -m PEM -N '' -f k",
        "pem-private-key",
        "EC P-256 private key (SEC1",
    ),
    (
        "ssh-rsa-pkcs8",
        "ssh-keygen -q -t rsa -b 3072 -m PKCS8 -N '' -f k",
        "pem-private-key",
        "RSA 3072-bit private key (PKCS#8)",
    ),
    (
        "ssh-ecdsa-pkcs8",
        "ssh-keygen -q -t ecdsa -m PKCS8 -N '' -f k",
        "pem-private-key",
        "EC P-256 private key (PKCS#8)",
    ),
    (
        "ssh-rsa-pkcs8-pass",
        "ssh-keygen -q -t rsa -m PKCS8 -N hunter22 -f k",
        "pem-private-key",
        "encrypted private key (PKCS#8, PBES2",
    ),
    (
        "openssl-genpkey-rsa",
        "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out k 2>/dev/null",
        "pem-private-key",
        "RSA 2048-bit private key (PKCS#8)",
    ),
    (
        "openssl-genrsa-traditional",
        "openssl genrsa -traditional -out k 1024 2>/dev/null",
        "pem-private-key",
        "RSA 1024-bit private key (PKCS#1",
    ),
    (
        "openssl-genrsa-aes256",
        "openssl genrsa -traditional -aes256 -passout pass:hunter22 -out k 2048 2>/dev/null",
        "pem-private-key",
        "legacy PEM encryption, AES-256-CBC",
    ),
    (
        "openssl-ecparam",
        "openssl ecparam -name secp384r1 -genkey -noout -out k",
        "pem-private-key",
        "EC P-384 private key (SEC1",
    ),
    (
        "openssl-ec-secp256k1",
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:secp256k1 -out k",
        "pem-private-key",
        "EC secp256k1 private key (PKCS#8)",
    ),
    (
        "openssl-ed25519",
        "openssl genpkey -algorithm ed25519 -out k",
        "pem-private-key",
        "Ed25519 private key (PKCS#8)",
    ),
    (
        "openssl-x25519",
        "openssl genpkey -algorithm x25519 -out k",
        "pem-private-key",
        "X25519 private key (PKCS#8)",
    ),
    (
        "openssl-ed448",
        "openssl genpkey -algorithm ed448 -out k",
        "pem-private-key",
        "Ed448 private key (PKCS#8)",
    ),
    (
        "openssl-dsa-traditional",
        "openssl dsaparam -out p 2048 2>/dev/null && openssl gendsa -out r p 2>/dev/null && openssl pkey -traditional -in r -out k",
        "pem-private-key",
        "DSA 2048-bit private key",
    ),
    (
        "ssh-dsa-pem",
        "ssh-keygen -q -t dsa -m PEM -N '' -f k",
        "pem-private-key",
        "DSA 1024-bit private key",
    ),
    (
        "ssh-dsa",
        "ssh-keygen -q -t dsa -N '' -f k",
        "openssh-private-key",
        "dsa, unencrypted",
    ),
    (
        "openssl-dsa-pkcs8",
        "openssl dsaparam -out p 2048 2>/dev/null && openssl genpkey -paramfile p -out k",
        "pem-private-key",
        "DSA private key (PKCS#8)",
    ),
    (
        "openssl-pkcs8-aes256",
        "openssl genrsa -out r 2048 2>/dev/null && openssl pkcs8 -topk8 -v2 aes256 -passout pass:hunter22 -in r -out k",
        "pem-private-key",
        "PBES2 PBKDF2 AES-256-CBC",
    ),
    (
        "openssl-pkcs8-scrypt",
        "openssl genpkey -algorithm ed25519 -out r && openssl pkcs8 -topk8 -scrypt -passout pass:hunter22 -in r -out k",
        "pem-private-key",
        "PBES2 scrypt AES-256-CBC",
    ),
    (
        "openssl-pkcs8-des3",
        "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out r && openssl pkcs8 -topk8 -v2 des3 -passout pass:hunter22 -in r -out k",
        "pem-private-key",
        "DES-EDE3-CBC",
    ),
    (
        "openssl-rsa-pss",
        "openssl genpkey -algorithm RSA-PSS -pkeyopt rsa_keygen_bits:2048 -out k",
        "pem-private-key",
        "RSA-PSS 2048-bit private key (PKCS#8)",
    ),
    (
        "puttygen-v3-ed25519",
        "puttygen -q -t ed25519 -o k --new-passphrase /dev/null",
        "putty-private-key",
        "PuTTY v3 private key (ed25519, unencrypted)",
    ),
    (
        "puttygen-v2-rsa",
        "puttygen -q -t rsa -b 2048 --ppk-param version=2 -o k --new-passphrase /dev/null",
        "putty-private-key",
        "PuTTY v2 private key (rsa 2048-bit, unencrypted)",
    ),
    (
        "puttygen-v3-ecdsa-pass",
        "printf 'hunter22\\n' > pw && puttygen -q -t ecdsa -b 256 -o k --new-passphrase pw",
        "putty-private-key",
        "PuTTY v3 private key (ecdsa P-256, encrypted aes256-cbc)",
    ),
    (
        "puttygen-v2-pass",
        "printf 'hunter22\\n' > pw && puttygen -q -t ed25519 --ppk-param version=2 -o k --new-passphrase pw",
        "putty-private-key",
        "PuTTY v2 private key (ed25519, encrypted aes256-cbc)",
    ),
    (
        "puttygen-sshcom",
        "puttygen -q -t rsa -b 2048 -O private-sshcom -o k --new-passphrase /dev/null",
        "ssh2-private-key",
        "ssh.com (SSH2) private key (RSA, unencrypted)",
    ),
    (
        "puttygen-openssh-new",
        "puttygen -q -t ed25519 -O private-openssh-new -o k --new-passphrase /dev/null",
        "openssh-private-key",
        "ed25519, unencrypted",
    ),
    (
        "gpg-ed25519",
        "mkdir -m 700 g && gpg -q --homedir g --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'Fixture <f@example.invalid>' ed25519 sign never 2>/dev/null && gpg -q --homedir g --batch --pinentry-mode loopback --passphrase '' --armor --export-secret-keys > k 2>/dev/null; gpgconf --homedir g --kill all",
        "pgp-private-key",
        "PGP secret key (v4, EdDSA)",
    ),
];

/// Every recipe's key, generated once per test binary.
pub fn generate_all() -> &'static [Key] {
    static KEYS: std::sync::OnceLock<Vec<Key>> = std::sync::OnceLock::new();
    KEYS.get_or_init(generate_fresh)
}

/// Generates every recipe's key in a fresh temporary directory.
fn generate_fresh() -> Vec<Key> {
    RECIPES
        .iter()
        .map(|&(name, script, detector, why)| {
            let dir = tempfile::tempdir().unwrap();
            let out = sh(dir.path(), script);
            let k = dir.path().join("k");
            let text = if k.exists() {
                std::fs::read(&k).unwrap()
            } else {
                out
            };
            assert!(!text.is_empty(), "{name} produced nothing");
            Key {
                name,
                text,
                detector,
                why,
            }
        })
        .collect()
}

/// Decoys made by the same tools: public keys, certificates, parameters.
pub fn generate_decoys() -> Vec<(&'static str, Vec<u8>)> {
    let scripts: &[(&str, &str)] = &[
        (
            "ssh-rsa-pub",
            "ssh-keygen -q -t rsa -N '' -f k && cat k.pub",
        ),
        (
            "ssh-ed25519-pub",
            "ssh-keygen -q -t ed25519 -N '' -f k && cat k.pub",
        ),
        (
            "ssh-rfc4716-pub",
            "ssh-keygen -q -t rsa -N '' -f k && ssh-keygen -e -m RFC4716 -f k.pub",
        ),
        (
            "ssh-pkcs8-pub",
            "ssh-keygen -q -t rsa -N '' -f k && ssh-keygen -e -m PKCS8 -f k.pub",
        ),
        (
            "openssl-pubkey",
            "openssl genpkey -algorithm RSA -out k 2>/dev/null && openssl pkey -in k -pubout",
        ),
        (
            "openssl-rsa-pubkey",
            "openssl genrsa -traditional -out k 2048 2>/dev/null && openssl rsa -in k -RSAPublicKey_out 2>/dev/null",
        ),
        (
            "openssl-cert",
            "openssl req -x509 -newkey rsa:2048 -nodes -keyout k -subj /CN=decoy -days 1 2>/dev/null",
        ),
        (
            "openssl-csr",
            "openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout k -subj /CN=decoy 2>/dev/null",
        ),
        ("openssl-ecparams", "openssl ecparam -name prime256v1"),
        (
            "openssl-dhparams",
            "openssl genpkey -genparam -algorithm DH -pkeyopt dh_paramgen_prime_len:512 2>/dev/null",
        ),
        (
            "puttygen-pub",
            "puttygen -q -t ed25519 -o k --new-passphrase /dev/null && puttygen k -O public",
        ),
        (
            "gpg-pub",
            "mkdir -m 700 g && gpg -q --homedir g --batch --pinentry-mode loopback --passphrase '' --quick-gen-key 'Decoy <d@example.invalid>' ed25519 sign never 2>/dev/null && gpg -q --homedir g --armor --export 2>/dev/null; gpgconf --homedir g --kill all >&2",
        ),
    ];
    scripts
        .iter()
        .map(|&(name, script)| {
            let dir = tempfile::tempdir().unwrap();
            (name, sh(dir.path(), script))
        })
        .collect()
}

/// (detector id, offset, len) of every finding.
pub fn spans(scan: &Scan) -> Vec<(String, u64, u64)> {
    scan.findings
        .iter()
        .map(|f| (f.detector.as_str().to_string(), f.offset, f.len))
        .collect()
}

/// Scans with every detector on (one set shared by the test binary).
pub fn scan(data: &[u8]) -> Scan {
    static SET: std::sync::OnceLock<DetectorSet> = std::sync::OnceLock::new();
    let set = SET.get_or_init(|| DetectorSet::with_defaults().unwrap());
    set.scan_bytes(&mut Scanner::new(), data)
}

/// The first and last non-empty lines of a key file: its span runs from the first
/// to the end of the last, in any wrapping that keeps lines intact.
pub fn first_last_lines(text: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let lines: Vec<&[u8]> = text
        .split(|&c| c == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .filter(|l| !l.is_empty())
        .collect();
    (lines[0].to_vec(), lines[lines.len() - 1].to_vec())
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn rfind(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).rposition(|w| w == needle)
}

/// The expected span of a key whose first/last lines are given, inside `hay`.
pub fn expected_span(hay: &[u8], first: &[u8], last: &[u8]) -> (u64, u64) {
    let s = find(hay, first).expect("first line present");
    let e = rfind(hay, last).expect("last line present") + last.len();
    (s as u64, (e - s) as u64)
}

/// JSON string escaping (what serde_json does to a PEM in a service-account file).
pub fn json_escape(text: &[u8]) -> Vec<u8> {
    serde_json::to_string(std::str::from_utf8(text).unwrap())
        .unwrap()
        .into_bytes()
}

/// Deterministic pseudo-random bytes (xorshift), for binary blobs.
pub fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(len + 8);
    while v.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.extend_from_slice(&seed.to_le_bytes());
    }
    v.truncate(len);
    v
}

/// A reader that returns short reads of varying sizes, to move chunk boundaries.
pub struct Choppy<'a> {
    pub data: &'a [u8],
    pub pos: usize,
    pub step: usize,
}

impl std::io::Read for Choppy<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.step = (self.step * 7919 + 13) % 65_521 + 1;
        let n = self.step.min(buf.len()).min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
