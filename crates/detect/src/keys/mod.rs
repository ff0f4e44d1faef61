//! Private-key detectors. Each one finds a marker, then proves the thing is a key:
//! the body must decode and have the structure of its format, and the block must be
//! closed by the matching END line. A README quoting a header, a truncated paste or
//! a public key is never a finding.

pub(crate) mod armor;
pub(crate) mod openssh;
pub(crate) mod pem;
pub(crate) mod pgp;
pub(crate) mod pkcs;
pub(crate) mod ppk;
pub(crate) mod sshcom;
pub(crate) mod wire;
