//! Which container a file is, from its bytes (never its name): the first
//! [`SNIFF_HEAD`] bytes and the last [`SNIFF_TAIL`], where a fixed VHD keeps its
//! only footer. Formats vmscrub does not read are named, with what to do instead,
//! rather than read as a raw disk of garbage.

/// How many bytes at the start of the file [`sniff`] looks at.
pub const SNIFF_HEAD: usize = 4096;
/// How many bytes at the end (a fixed VHD has its only header there).
pub const SNIFF_TAIL: usize = 512;

/// Which kind of VMDK file the first bytes show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmdkKind {
    /// Hosted sparse extent (`KDMV`): monolithicSparse, streamOptimized, or one
    /// extent of a twoGbMaxExtentSparse set (with an embedded descriptor or not).
    Sparse,
    /// ESX/VMware 3 sparse extent (`COWD`).
    Cowd,
    /// A text descriptor naming extent files (monolithicFlat, twoGbMaxExtent*, vmfs).
    Descriptor,
}

/// What [`sniff`] decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sniffed {
    Raw,
    Qcow2,
    /// A footer ("conectix") at the end, or its copy at the start.
    Vhd,
    /// "vhdxfile" at the start.
    Vhdx,
    Vmdk(VmdkKind),
    /// Recognised, not read: `format` names it, `advice` says what to do instead.
    Refused {
        format: &'static str,
        advice: &'static str,
    },
}

/// Decides the format from the first bytes of the file (`head`, up to
/// [`SNIFF_HEAD`]) and its last bytes (`tail`, up to [`SNIFF_TAIL`]).
pub fn sniff(head: &[u8], tail: &[u8]) -> Sniffed {
    let starts = |m: &[u8]| head.starts_with(m);
    if starts(b"QFI\xfb") {
        return Sniffed::Qcow2;
    }
    if starts(b"KDMV") {
        return Sniffed::Vmdk(VmdkKind::Sparse);
    }
    if starts(b"COWD") {
        return Sniffed::Vmdk(VmdkKind::Cowd);
    }
    if is_vmdk_descriptor(head) {
        return Sniffed::Vmdk(VmdkKind::Descriptor);
    }
    const CONVERT: &str = "convert it to raw or qcow2 first (qemu-img convert -O qcow2 IN OUT)";
    let refuse = |format, advice| Sniffed::Refused { format, advice };
    if starts(b"conectix")
        || tail.len() >= 512
            && tail
                .get(tail.len() - 512..)
                .is_some_and(|t| t.starts_with(b"conectix"))
        || tail.len() >= 511
            && tail
                .get(tail.len() - 511..)
                .is_some_and(|t| t.starts_with(b"conectix"))
    {
        return Sniffed::Vhd;
    }
    if starts(b"vhdxfile") {
        return Sniffed::Vhdx;
    }
    if head.get(0x40..0x44) == Some(&[0x7f, 0x10, 0xda, 0xbe][..])
        || starts(b"<<< Oracle VM VirtualBox Disk Image >>>")
        || starts(b"<<< Sun VirtualBox Disk Image >>>")
        || starts(b"<<< innotek VirtualBox Disk Image >>>")
    {
        return refuse("VDI (VirtualBox)", CONVERT);
    }
    if starts(b"QED\0") {
        return refuse("QED", CONVERT);
    }
    // The other formats qemu-img reads (its block/*.c probes): read as raw they
    // would be a disk of garbage, so name them instead (qemu's sample images).
    if starts(b"WithoutFreeSpace") || starts(b"WithouFreSpacExt") {
        return refuse("Parallels disk image", CONVERT);
    }
    if starts(b"Bochs Virtual HD Image\0") {
        return refuse("Bochs disk image", CONVERT);
    }
    if starts(b"#!/bin/sh\n#V2.0 Format\n") {
        return refuse("cloop (compressed loop) image", CONVERT);
    }
    if tail.len() >= 512
        && tail
            .get(tail.len() - 512..)
            .is_some_and(|t| t.starts_with(b"koly"))
    {
        return refuse("DMG (Apple disk image)", CONVERT);
    }
    const DECOMPRESS: &str = "decompress it first and inspect the image inside";
    if starts(&[0x1f, 0x8b]) {
        return refuse("gzip-compressed file", DECOMPRESS);
    }
    if starts(&[0xfd, b'7', b'z', b'X', b'Z', 0]) {
        return refuse("xz-compressed file", DECOMPRESS);
    }
    if starts(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return refuse("zstd-compressed file", DECOMPRESS);
    }
    if head.len() >= 10
        && starts(b"BZh")
        && (b'1'..=b'9').contains(&head[3])
        && head[4..10] == [0x31, 0x41, 0x59, 0x26, 0x53, 0x59]
    {
        return refuse("bzip2-compressed file", DECOMPRESS);
    }
    if head.get(257..262) == Some(b"ustar") {
        return refuse(
            "tar archive (an OVA?)",
            "extract the disk image from it first (tar -xf FILE)",
        );
    }
    Sniffed::Raw
}

/// A VMDK text descriptor: `# Disk DescriptorFile` as the first non-blank line
/// (some tools put a BOM or blank lines first).
fn is_vmdk_descriptor(head: &[u8]) -> bool {
    let h = head.strip_prefix(b"\xef\xbb\xbf").unwrap_or(head);
    let start = h
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(h.len());
    h.get(start..)
        .is_some_and(|t| t.starts_with(b"# Disk DescriptorFile"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sniff_head(head: &[u8]) -> Sniffed {
        sniff(head, &[])
    }

    #[test]
    fn sniffs_by_content() {
        assert_eq!(sniff_head(b"QFI\xfb\0\0\0\x03"), Sniffed::Qcow2);
        assert_eq!(
            sniff_head(b"KDMV\x01\0\0\0"),
            Sniffed::Vmdk(VmdkKind::Sparse)
        );
        assert_eq!(sniff_head(b"COWD\x01\0\0\0"), Sniffed::Vmdk(VmdkKind::Cowd));
        assert_eq!(
            sniff_head(b"\xef\xbb\xbf\n# Disk DescriptorFile\nversion=1\n"),
            Sniffed::Vmdk(VmdkKind::Descriptor)
        );
        assert_eq!(sniff_head(b"# Disk Descriptor"), Sniffed::Raw);
        assert_eq!(sniff_head(&[0u8; 4096]), Sniffed::Raw);
        assert_eq!(sniff_head(b""), Sniffed::Raw);
        assert_eq!(sniff_head(b"conectix\0\0"), Sniffed::Vhd);
        assert_eq!(sniff_head(b"vhdxfile\0\0"), Sniffed::Vhdx);
        for (head, name) in [
            (&b"<<< Oracle VM VirtualBox Disk Image >>>\n"[..], "VDI"),
            (b"QED\0", "QED"),
            (&[0x1f, 0x8b, 8, 0], "gzip"),
            (&[0xfd, b'7', b'z', b'X', b'Z', 0], "xz"),
            (&[0x28, 0xb5, 0x2f, 0xfd], "zstd"),
            (b"BZh91AY&SY", "bzip2"),
        ] {
            match sniff_head(head) {
                Sniffed::Refused { format, .. } => {
                    assert!(format.starts_with(name), "{format} vs {name}")
                }
                other => panic!("{name}: {other:?}"),
            }
        }
        // A fixed VHD: raw data with the footer as its last 512 bytes.
        let mut tail = vec![0u8; 512];
        tail[..8].copy_from_slice(b"conectix");
        assert_eq!(sniff(&[0u8; 4096], &tail), Sniffed::Vhd);
        let mut tar = vec![0u8; 512];
        tar[257..262].copy_from_slice(b"ustar");
        assert!(
            matches!(sniff_head(&tar), Sniffed::Refused { format, .. } if format.starts_with("tar"))
        );
    }
}
