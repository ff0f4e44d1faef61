//! Human names of well-known partition types. The names are the ones util-linux's
//! `fdisk`/`sfdisk` print (a test checks them against `sfdisk -T`), so what
//! `vmscrub inspect` shows reads the same as the tools users already know.

use crate::Guid;

/// GPT partition type GUIDs (text form) and their names.
const GPT_TYPES: &[(&str, &str)] = &[
    ("C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "EFI System"),
    (
        "024DEE41-33E7-11D3-9D69-0008C781F39F",
        "MBR partition scheme",
    ),
    ("21686148-6449-6E6F-744E-656564454649", "BIOS boot"),
    ("9E1A2D38-C612-4316-AA26-8B49521E5A8B", "PowerPC PReP boot"),
    ("E3C9E316-0B5C-4DB8-817D-F92DF00215AE", "Microsoft reserved"),
    (
        "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        "Microsoft basic data",
    ),
    (
        "5808C8AA-7E8F-42E0-85D2-E1E90434CFB3",
        "Microsoft LDM metadata",
    ),
    ("AF9B60A0-1431-4F62-BC68-3311714A69AD", "Microsoft LDM data"),
    (
        "DE94BBA4-06D1-4D40-A16A-BFD50179D6AC",
        "Windows recovery environment",
    ),
    (
        "E75CAF8F-F680-4CEE-AFA3-B001E56EFC2D",
        "Microsoft Storage Spaces",
    ),
    ("0657FD6D-A4AB-43C4-84E5-0933C84B4F4F", "Linux swap"),
    ("0FC63DAF-8483-4772-8E79-3D69D8477DE4", "Linux filesystem"),
    ("3B8F8425-20E0-4F3B-907F-1A25A76F98E8", "Linux server data"),
    ("44479540-F297-41B2-9AF7-D131D5F0458A", "Linux root (x86)"),
    (
        "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
        "Linux root (x86-64)",
    ),
    ("69DAD710-2CE4-4E3C-B16C-21A1D49ABED3", "Linux root (ARM)"),
    (
        "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
        "Linux root (ARM-64)",
    ),
    (
        "72EC70A6-CF74-40E6-BD49-4BDA08E8F224",
        "Linux root (RISC-V-64)",
    ),
    (
        "C31C45E6-3F39-412E-80FB-4809C4980599",
        "Linux root (PPC64LE)",
    ),
    ("5EEAD9A9-FE09-4A1E-A1D7-520D00531306", "Linux root (S390X)"),
    ("8DA63339-0007-60C0-C436-083AC8230908", "Linux reserved"),
    ("933AC7E1-2EB4-4F13-B844-0E14E2AEF915", "Linux home"),
    ("A19D880F-05FC-4D3B-A006-743F0F84911E", "Linux RAID"),
    ("E6D6D379-F507-44C2-A23C-238F2A3DF928", "Linux LVM"),
    (
        "4D21B016-B534-45C2-A9FB-5C16E091FD2D",
        "Linux variable data",
    ),
    (
        "7EC6F557-3BC5-4ACA-B293-16EF5DF639D1",
        "Linux temporary data",
    ),
    ("75250D76-8CC6-458E-BD66-BD47CC81A812", "Linux /usr (x86)"),
    (
        "8484680C-9521-48C6-9C11-B0720656F69E",
        "Linux /usr (x86-64)",
    ),
    ("7D0359A3-02B3-4F0A-865C-654403E70625", "Linux /usr (ARM)"),
    (
        "B0E01050-EE5F-4390-949A-9101B17104E9",
        "Linux /usr (ARM-64)",
    ),
    (
        "BEAEC34B-8442-439B-A40B-984381ED097D",
        "Linux /usr (RISC-V-64)",
    ),
    (
        "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5",
        "Linux root verity (x86-64)",
    ),
    (
        "DF3300CE-D69F-4C92-978C-9BFB0F38D820",
        "Linux root verity (ARM-64)",
    ),
    (
        "77FF5F63-E7B6-4633-ACF4-1565B864C0E6",
        "Linux /usr verity (x86-64)",
    ),
    (
        "BC13C2FF-59E6-4262-A352-B275FD6F7172",
        "Linux extended boot",
    ),
    ("773F91EF-66D4-49B5-BD83-D683BF40AD16", "Linux user's home"),
    ("CA7D7CCB-63ED-4C53-861C-1742536059CC", "Linux LUKS"),
    ("7FFEC5C9-2D00-49B7-8941-3EA10A5586B7", "Linux dm-crypt"),
    ("516E7CB4-6ECF-11D6-8FF8-00022D09712B", "FreeBSD data"),
    ("83BD6B9D-7F41-11DC-BE0B-001560B84F0F", "FreeBSD boot"),
    ("516E7CB5-6ECF-11D6-8FF8-00022D09712B", "FreeBSD swap"),
    ("516E7CB6-6ECF-11D6-8FF8-00022D09712B", "FreeBSD UFS"),
    ("516E7CBA-6ECF-11D6-8FF8-00022D09712B", "FreeBSD ZFS"),
    ("48465300-0000-11AA-AA11-00306543ECAC", "Apple HFS/HFS+"),
    ("7C3457EF-0000-11AA-AA11-00306543ECAC", "Apple APFS"),
    (
        "6A898CC3-1DD2-11B2-99A6-080020736631",
        "Solaris /usr & Apple ZFS",
    ),
    ("FE3A2A5D-4F32-41A7-B725-ACCC3285A309", "ChromeOS kernel"),
    ("3CB8E202-3B7E-47DD-8A3C-7FF2A13CFCEC", "ChromeOS root fs"),
    ("9D275380-40AD-11DB-BF97-000C2911D1B8", "VMware Diagnostic"),
    ("AA31E02A-400F-11DB-9590-000C2911D1B8", "VMware VMFS"),
];

/// The name of a GPT partition type, if it is a well-known one.
pub fn gpt_type_name(t: &Guid) -> Option<&'static str> {
    GPT_TYPES
        .iter()
        .find(|(g, _)| Guid::parse(g).as_ref() == Some(t))
        .map(|&(_, n)| n)
}

/// Every GPT type this crate names (for tests against `sfdisk -T`).
pub fn gpt_known_types() -> impl Iterator<Item = (Guid, &'static str)> {
    GPT_TYPES
        .iter()
        .filter_map(|&(g, n)| Some((Guid::parse(g)?, n)))
}

/// MBR system ids and their names.
const MBR_TYPES: &[(u8, &str)] = &[
    (0x01, "FAT12"),
    (0x04, "FAT16 <32M"),
    (0x05, "Extended"),
    (0x06, "FAT16"),
    (0x07, "HPFS/NTFS/exFAT"),
    (0x0b, "W95 FAT32"),
    (0x0c, "W95 FAT32 (LBA)"),
    (0x0e, "W95 FAT16 (LBA)"),
    (0x0f, "W95 Ext'd (LBA)"),
    (0x11, "Hidden FAT12"),
    (0x12, "Compaq diagnostics"),
    (0x14, "Hidden FAT16 <32M"),
    (0x16, "Hidden FAT16"),
    (0x17, "Hidden HPFS/NTFS"),
    (0x1b, "Hidden W95 FAT32"),
    (0x1c, "Hidden W95 FAT32 (LBA)"),
    (0x1e, "Hidden W95 FAT16 (LBA)"),
    (0x27, "Hidden NTFS WinRE"),
    (0x41, "PPC PReP Boot"),
    (0x42, "SFS"),
    (0x81, "Minix / old Linux"),
    (0x82, "Linux swap / Solaris"),
    (0x83, "Linux"),
    (0x84, "OS/2 hidden or Intel hibernation"),
    (0x85, "Linux extended"),
    (0x86, "NTFS volume set"),
    (0x87, "NTFS volume set"),
    (0x88, "Linux plaintext"),
    (0x8e, "Linux LVM"),
    (0xa5, "FreeBSD"),
    (0xa6, "OpenBSD"),
    (0xa8, "Darwin UFS"),
    (0xa9, "NetBSD"),
    (0xab, "Darwin boot"),
    (0xaf, "HFS / HFS+"),
    (0xbf, "Solaris"),
    (0xda, "Non-FS data"),
    (0xde, "Dell Utility"),
    (0xea, "Linux extended boot"),
    (0xee, "GPT"),
    (0xef, "EFI (FAT-12/16/32)"),
    (0xfb, "VMware VMFS"),
    (0xfc, "VMware VMKCORE"),
    (0xfd, "Linux raid autodetect"),
];

/// The name of an MBR partition type (system id), if it is a well-known one.
pub fn mbr_type_name(id: u8) -> Option<&'static str> {
    MBR_TYPES.iter().find(|&&(i, _)| i == id).map(|&(_, n)| n)
}

/// Every MBR type this crate names (for tests against `sfdisk -T`).
pub fn mbr_known_types() -> impl Iterator<Item = (u8, &'static str)> {
    MBR_TYPES.iter().copied()
}

/// MBR system ids that mark an extended partition (a container of logical ones):
/// DOS (0x05), Windows LBA (0x0F) and Linux (0x85).
pub fn is_extended(id: u8) -> bool {
    matches!(id, 0x05 | 0x0f | 0x85)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_entry_parses_and_is_unique() {
        assert_eq!(gpt_known_types().count(), GPT_TYPES.len());
        let mut seen = std::collections::HashSet::new();
        for (g, _) in gpt_known_types() {
            assert!(seen.insert(g), "{g} listed twice");
        }
        assert_eq!(
            gpt_type_name(&Guid::parse("0FC63DAF-8483-4772-8E79-3D69D8477DE4").unwrap()),
            Some("Linux filesystem")
        );
        assert_eq!(mbr_type_name(0x83), Some("Linux"));
        assert_eq!(mbr_type_name(0x99), None);
    }
}
