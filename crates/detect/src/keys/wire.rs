//! The SSH wire encoding (RFC 4251 `uint32`, `string`, `mpint`), shared by OpenSSH,
//! PuTTY and ssh.com key blobs.

pub(crate) struct Wire<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Wire { data, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.data.len().saturating_sub(self.pos)
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let b = self.data.get(self.pos..self.pos.checked_add(4)?)?;
        self.pos += 4;
        Some(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn bytes(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let b = self.data.get(self.pos..end)?;
        self.pos = end;
        Some(b)
    }

    pub(crate) fn string(&mut self) -> Option<&'a [u8]> {
        let n = self.u32()? as usize;
        self.bytes(n)
    }
}

/// Bit length of an SSH mpint (big-endian, two's complement, minimal).
pub(crate) fn mpint_bits(m: &[u8]) -> u32 {
    let skip = m.iter().take_while(|&&b| b == 0).count();
    match m.get(skip) {
        None => 0,
        Some(&b) => ((m.len() - skip) as u32 - 1) * 8 + (8 - b.leading_zeros()),
    }
}

/// A readable name for an SSH key algorithm; unknown names are not echoed (they are
/// file content).
pub(crate) fn key_type_name(alg: &[u8]) -> &'static str {
    match alg {
        b"ssh-ed25519" => "ed25519",
        b"ssh-ed448" => "ed448",
        b"ssh-rsa" => "rsa",
        b"ssh-dss" => "dsa",
        b"ecdsa-sha2-nistp256" => "ecdsa P-256",
        b"ecdsa-sha2-nistp384" => "ecdsa P-384",
        b"ecdsa-sha2-nistp521" => "ecdsa P-521",
        b"sk-ssh-ed25519@openssh.com" => "ed25519-sk",
        b"sk-ecdsa-sha2-nistp256@openssh.com" => "ecdsa-sk P-256",
        _ => "unknown type",
    }
}

/// "ed25519" or "rsa 3072-bit" from a public key blob.
pub(crate) fn describe_public(blob: &[u8]) -> Option<String> {
    let mut w = Wire::new(blob);
    let alg = w.string()?;
    let name = key_type_name(alg);
    if alg == b"ssh-rsa" {
        let _e = w.string()?;
        let n = w.string()?;
        return Some(format!("rsa {}-bit", mpint_bits(n)));
    }
    Some(name.to_string())
}
