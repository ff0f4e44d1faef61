//! The digest algorithms package managers record, and a streaming hasher for
//! each.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha224, Sha256, Sha384, Sha512};

/// A file-content digest algorithm a package database uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Algo {
    Md5,
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl Algo {
    /// The lowercase name reports use (`md5`, `sha256`, …).
    pub fn name(self) -> &'static str {
        match self {
            Algo::Md5 => "md5",
            Algo::Sha1 => "sha1",
            Algo::Sha224 => "sha224",
            Algo::Sha256 => "sha256",
            Algo::Sha384 => "sha384",
            Algo::Sha512 => "sha512",
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algo::Md5 => 16,
            Algo::Sha1 => 20,
            Algo::Sha224 => 28,
            Algo::Sha256 => 32,
            Algo::Sha384 => 48,
            Algo::Sha512 => 64,
        }
    }

    /// RPM's `PGPHASHALGO_*` number (`FILEDIGESTALGO`), per RFC 4880 §9.4.
    pub fn from_rpm(n: u32) -> Option<Algo> {
        Some(match n {
            1 => Algo::Md5,
            2 => Algo::Sha1,
            8 => Algo::Sha256,
            9 => Algo::Sha384,
            10 => Algo::Sha512,
            11 => Algo::Sha224,
            _ => return None,
        })
    }

    pub fn hasher(self) -> Digester {
        Digester(match self {
            Algo::Md5 => Inner::Md5(Md5::new()),
            Algo::Sha1 => Inner::Sha1(Sha1::new()),
            Algo::Sha224 => Inner::Sha224(Sha224::new()),
            Algo::Sha256 => Inner::Sha256(Sha256::new()),
            Algo::Sha384 => Inner::Sha384(Sha384::new()),
            Algo::Sha512 => Inner::Sha512(Sha512::new()),
        })
    }
}

enum Inner {
    Md5(Md5),
    Sha1(Sha1),
    Sha224(Sha224),
    Sha256(Sha256),
    Sha384(Sha384),
    Sha512(Sha512),
}

/// An incremental hasher of one [`Algo`].
pub struct Digester(Inner);

impl Digester {
    pub fn update(&mut self, data: &[u8]) {
        match &mut self.0 {
            Inner::Md5(h) => h.update(data),
            Inner::Sha1(h) => h.update(data),
            Inner::Sha224(h) => h.update(data),
            Inner::Sha256(h) => h.update(data),
            Inner::Sha384(h) => h.update(data),
            Inner::Sha512(h) => h.update(data),
        }
    }

    pub fn finish(self) -> Vec<u8> {
        match self.0 {
            Inner::Md5(h) => h.finalize().to_vec(),
            Inner::Sha1(h) => h.finalize().to_vec(),
            Inner::Sha224(h) => h.finalize().to_vec(),
            Inner::Sha256(h) => h.finalize().to_vec(),
            Inner::Sha384(h) => h.finalize().to_vec(),
            Inner::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn known_vectors() {
        // Digests of "abc" (RFC 1321, FIPS 180-4 examples).
        let of = |a: Algo| {
            let mut h = a.hasher();
            h.update(b"a");
            h.update(b"bc");
            let d = h.finish();
            assert_eq!(d.len(), a.digest_len());
            d
        };
        assert_eq!(
            of(Algo::Md5),
            crate::bytes::unhex(b"900150983cd24fb0d6963f7d28e17f72").unwrap()
        );
        assert_eq!(
            of(Algo::Sha1),
            crate::bytes::unhex(b"a9993e364706816aba3e25717850c26c9cd0d89d").unwrap()
        );
        assert_eq!(
            of(Algo::Sha256),
            crate::bytes::unhex(
                b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
            )
            .unwrap()
        );
        for a in [Algo::Sha224, Algo::Sha384, Algo::Sha512] {
            of(a);
        }
    }
}
