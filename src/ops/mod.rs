//! The operations catalogue: what vmscrub removes, resets or reports, as data.
//!
//! Every operation is one entry of `catalogue.toml` (embedded in the binary), in
//! the same form a user's `--rules FILE` uses to add operations: a name, a one-line
//! heading, whether it is on by default, where the rule comes from, an OS guard,
//! and one or more rules (globs + an action). Keeping the catalogue as data means
//! the documentation (`docs/operations.md`), the `operations` verb and the scan
//! engine all read the same table, and a reviewer can check it against the prior
//! art line by line.
//!
//! Submodules: [`rules`] parses and validates the TOML form, [`pattern`] expands
//! placeholders and compiles globs, [`select`] is virt-sysprep's selection
//! algebra, [`guard`] evaluates OS guards, [`docs`] renders the markdown table.

pub mod docs;
pub mod guard;
pub mod pattern;
pub mod rules;
pub mod select;

use std::fmt;

use serde::{Deserialize, Serialize};

pub use guard::{Guard, GuardAtom, OsFacts};
pub use rules::{Catalogue, RulesError};
pub use select::{Selection, SelectionError};

/// The built-in catalogue, parsed by [`Catalogue::builtin`].
pub const CATALOGUE_TOML: &str = include_str!("catalogue.toml");

/// Where an operation's rule comes from; shown in `operations --verbose` and the
/// docs so each entry can be traced to its prior art.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Source {
    VirtSysprep,
    Dcm,
    CloudInit,
    Waagent,
    Systemd,
    ImageBuild,
    Vmscrub,
    /// Added by a `--rules` file.
    User,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Source::VirtSysprep => "virt-sysprep",
            Source::Dcm => "dcm",
            Source::CloudInit => "cloud-init",
            Source::Waagent => "waagent",
            Source::Systemd => "systemd",
            Source::ImageBuild => "image-build",
            Source::Vmscrub => "vmscrub",
            Source::User => "user",
        })
    }
}

/// What happens to a matched file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// Remove the file (any non-directory). A directory matched by a `delete`
    /// rule is left alone, like `rm` without `-r`: say `delete-tree` to remove one.
    Delete,
    /// Remove the match and, for a directory, everything below it.
    DeleteTree,
    /// Cut a regular file to 0 bytes (keeps the inode, owner, mode and labels).
    Truncate,
    /// Rewrite a regular file with shorter content: `replace` or `drop-lines`.
    Rewrite,
    /// Content rules only: in a text configuration file, overwrite each secret
    /// value in place with a placeholder no longer than it (the file, its syntax,
    /// inode, mode and owner stay); any other file is deleted. Keeps the guest's
    /// own configuration working where deleting the file would break it.
    Redact,
    /// Only report: something a user should look at, or that cannot be done offline.
    Report,
}

impl ActionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActionKind::Delete => "delete",
            ActionKind::DeleteTree => "delete-tree",
            ActionKind::Truncate => "truncate",
            ActionKind::Rewrite => "rewrite",
            ActionKind::Redact => "redact",
            ActionKind::Report => "report",
        }
    }

    /// What the action does to a node of `kind`, for people: `delete-tree` on a
    /// file, a symlink or a device removes just that entry, so it reads `delete`
    /// (a report must not suggest a whole tree went when one file did).
    pub fn label_for(self, kind: crate::fs::FileKind) -> &'static str {
        match self {
            ActionKind::DeleteTree if kind != crate::fs::FileKind::Directory => "delete",
            a => a.as_str(),
        }
    }

    /// How much of the file the action destroys; the plan keeps the strongest
    /// action when several operations hit one file.
    pub fn strength(self) -> u8 {
        match self {
            ActionKind::DeleteTree => 5,
            ActionKind::Delete => 4,
            ActionKind::Truncate => 3,
            ActionKind::Rewrite => 2,
            ActionKind::Redact => 1,
            ActionKind::Report => 0,
        }
    }
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// File types a rule can be limited to (`kinds = ["regular", "symlink"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KindFilter {
    Regular,
    Directory,
    Symlink,
    CharDevice,
    BlockDevice,
    Fifo,
    Socket,
}

impl KindFilter {
    pub fn matches(self, kind: crate::fs::FileKind) -> bool {
        use crate::fs::FileKind as K;
        matches!(
            (self, kind),
            (KindFilter::Regular, K::Regular)
                | (KindFilter::Directory, K::Directory)
                | (KindFilter::Symlink, K::Symlink)
                | (KindFilter::CharDevice, K::CharDevice)
                | (KindFilter::BlockDevice, K::BlockDevice)
                | (KindFilter::Fifo, K::Fifo)
                | (KindFilter::Socket, K::Socket)
        )
    }
}

/// When an operation's `needs-guest` note becomes a warning.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NeedsGuestWhen {
    /// Whenever the operation is selected and its guard holds.
    #[default]
    Always,
    /// Only when the operation's file rules found something (e.g. the CA store
    /// needs refreshing only if a certificate was removed).
    Findings,
}

/// One rule of an operation: which paths (or content hits) and what to do.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Rule {
    pub action: ActionKind,
    /// Guest-absolute globs, placeholders (`{home}`, `{user}`, `{user-home}`,
    /// `{esp}`) not yet expanded. Empty for a content-only rule.
    pub paths: Vec<String>,
    /// Globs a match must not also match (tested on the matched path itself).
    pub except: Vec<String>,
    /// Limit to these file types; empty means the action's default
    /// (see [`Rule::accepts_kind`]).
    pub kinds: Vec<KindFilter>,
    /// `rewrite`: the whole new content.
    pub replace: Option<String>,
    /// `rewrite`: drop the lines matching this regex (`{user}` expands to the
    /// removable users' names).
    pub drop_lines: Option<String>,
    /// `true`: this rule's findings come from the content detectors that name
    /// this operation, on every regular file not excluded by `except`.
    pub content: bool,
    /// Extra guard for this rule only (ANDed with the operation's).
    pub os: Guard,
    /// `report`: why this is only reported.
    pub reason: Option<String>,
    /// Only files with a line matching this regex (read from the file; regular
    /// files only).
    pub if_line: Option<String>,
}

impl Rule {
    /// Default file-type filters per action: `delete` never removes a
    /// directory, `truncate`/`rewrite` only touch regular files (never through a
    /// symlink: a link to `/dev/…` or to another file must not be edited).
    pub fn accepts_kind(&self, kind: crate::fs::FileKind) -> bool {
        use crate::fs::FileKind as K;
        if !self.kinds.is_empty() && !self.kinds.iter().any(|k| k.matches(kind)) {
            return false;
        }
        if self.if_line.is_some() && kind != K::Regular {
            return false;
        }
        match self.action {
            ActionKind::Delete => kind != K::Directory,
            ActionKind::Truncate | ActionKind::Rewrite | ActionKind::Redact => kind == K::Regular,
            ActionKind::DeleteTree | ActionKind::Report => true,
        }
    }
}

/// One operation of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Operation {
    pub name: String,
    pub heading: String,
    pub default: bool,
    pub source: Source,
    pub os: Guard,
    pub rules: Vec<Rule>,
    /// What the operation would do that needs the running guest or the block
    /// device (run `update-ca-trust`, change a filesystem UUID, create a file):
    /// vmscrub never does it, and says so.
    pub needs_guest: Option<String>,
    pub needs_guest_when: NeedsGuestWhen,
    /// Longer explanation for the docs (decisions, differences from the source).
    pub notes: Option<String>,
    /// What the operation does to whole volumes rather than files.
    pub volume: Option<VolumeAction>,
}

/// An operation on whole volumes (partitions, logical volumes), not files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeAction {
    /// Every swap volume gets a fresh header with its UUID, label and page size,
    /// and every page slot is zeroed.
    ReinitSwap,
    /// Reports what LVM2 metadata areas keep (older copies, creation hosts),
    /// which the scrub leaves byte-identical.
    ReportLvmMetadata,
}

impl Operation {
    /// A content operation: its findings come from the detectors.
    pub fn is_content(&self) -> bool {
        self.rules.iter().any(|r| r.content)
    }

    /// An operation with no file rule at all: it can only be reported.
    pub fn is_report_only(&self) -> bool {
        self.volume.is_none() && self.rules.iter().all(|r| r.action == ActionKind::Report)
    }

    /// The distinct actions of the operation's rules, in catalogue order.
    pub fn actions(&self) -> Vec<ActionKind> {
        let mut out = Vec::new();
        for r in &self.rules {
            if !out.contains(&r.action) {
                out.push(r.action);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// The 45 virt-sysprep operations (guestfs-tools sysprep/sysprep_operation_*.ml)
    /// and whether each is on by default.
    const VIRT_SYSPREP: &[(&str, bool)] = &[
        ("abrt-data", true),
        ("backup-files", true),
        ("bash-history", true),
        ("blkid-tab", true),
        ("ca-certificates", false),
        ("crash-data", true),
        ("cron-spool", true),
        ("customize", true),
        ("dhcp-client-state", true),
        ("dhcp-server-state", true),
        ("dovecot-data", true),
        ("firewall-rules", false),
        ("flag-reconfiguration", false),
        ("fs-uuids", false),
        ("ipa-client", true),
        ("kerberos-data", false),
        ("kerberos-hostkeytab", true),
        ("logfiles", true),
        ("lvm-system-devices", true),
        ("lvm-uuids", true),
        ("machine-id", true),
        ("mail-spool", true),
        ("net-hostname", true),
        ("net-hwaddr", true),
        ("net-nmconn", true),
        ("pacct-log", true),
        ("package-manager-cache", true),
        ("pam-data", true),
        ("passwd-backups", true),
        ("puppet-data-log", true),
        ("rh-subscription-manager", true),
        ("rhn-systemid", true),
        ("rpm-db", true),
        ("samba-db-log", true),
        ("script", true),
        ("smolt-uuid", true),
        ("ssh-hostkeys", true),
        ("ssh-userdir", true),
        ("sssd-db-log", true),
        ("tmp-files", true),
        ("udev-persistent-net", true),
        ("user-account", false),
        ("utmp", true),
        ("yum-uuid", true),
        ("zsh-history", true),
    ];

    /// virt-sysprep defaults vmscrub turns off: they run programs in the guest
    /// or edit block devices, so offline they have no rule to apply.
    const OFFLINE_NOOP_DEFAULTS: &[&str] = &["customize", "lvm-uuids", "script"];

    #[test]
    fn no_default_operation_is_a_no_op_offline() {
        let cat = Catalogue::builtin().unwrap();
        for op in cat.operations.iter().filter(|o| o.default) {
            assert!(
                !op.rules.is_empty() || op.volume.is_some(),
                "{} is on by default",
                op.name
            );
        }
        // `vmscrub operations` says it on each such line, once.
        for op in cat
            .operations
            .iter()
            .filter(|o| o.rules.is_empty() && o.volume.is_none())
        {
            assert!(
                op.heading.ends_with("(not performed offline)"),
                "{}: {}",
                op.name,
                op.heading
            );
        }
    }

    #[test]
    fn catalogue_parses_with_unique_names() {
        let cat = Catalogue::builtin().unwrap();
        let mut seen = HashSet::new();
        for op in &cat.operations {
            assert!(seen.insert(&op.name), "duplicate {}", op.name);
            assert!(!op.heading.is_empty());
        }
        assert!(cat.operations.len() > 70, "{}", cat.operations.len());
    }

    #[test]
    fn all_45_virt_sysprep_operations_with_their_defaults() {
        let cat = Catalogue::builtin().unwrap();
        assert_eq!(VIRT_SYSPREP.len(), 45);
        for (name, default) in VIRT_SYSPREP {
            let op = cat.get(name).unwrap_or_else(|| panic!("missing {name}"));
            // virt-sysprep's defaults, except the ones that can do nothing
            // offline: on by default they would only warn on every run.
            let noop = OFFLINE_NOOP_DEFAULTS.contains(name);
            assert_eq!(op.default, *default && !noop, "{name}");
            if noop {
                assert!(op.rules.is_empty() && op.needs_guest.is_some(), "{name}");
            }
            assert_eq!(op.source, Source::VirtSysprep, "{name}");
        }
        let vs = cat
            .operations
            .iter()
            .filter(|o| o.source == Source::VirtSysprep)
            .count();
        assert_eq!(vs, 45);
        let off: Vec<_> = VIRT_SYSPREP
            .iter()
            .filter(|(_, d)| !d)
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(
            off,
            [
                "ca-certificates",
                "firewall-rules",
                "flag-reconfiguration",
                "fs-uuids",
                "kerberos-data",
                "user-account"
            ]
        );
    }

    #[test]
    fn every_pattern_compiles_after_expansion() {
        let cat = Catalogue::builtin().unwrap();
        let x = pattern::Expansions {
            homes: vec!["/srv/deploy".into()],
            users: vec![("alice".into(), Some("/home/alice".into()))],
        };
        let mut n = 0;
        for op in &cat.operations {
            for r in &op.rules {
                for p in r.paths.iter().chain(&r.except) {
                    let e = pattern::expand(p, &x);
                    assert!(!e.is_empty(), "{}: {p}", op.name);
                    for g in e {
                        pattern::glob(&g).unwrap();
                        n += 1;
                    }
                }
                if let Some(d) = &r.drop_lines {
                    pattern::line_regex(d, &x).unwrap();
                }
            }
        }
        assert!(n > 250, "{n}");
    }

    #[test]
    fn key_semantics_are_encoded() {
        let cat = Catalogue::builtin().unwrap();
        let mid = cat.get("machine-id").unwrap();
        assert_eq!(mid.rules[0].replace.as_deref(), Some("uninitialized\n"));
        // Random seeds are removed, never rewritten; the ESP seed is included.
        let rs = cat.get("random-seed").unwrap();
        assert!(rs.rules.iter().all(|r| r.action == ActionKind::Delete));
        assert!(
            rs.rules[0]
                .paths
                .iter()
                .any(|p| p == "/boot/efi/loader/random-seed")
        );
        assert!(
            cat.get("pacct-log")
                .unwrap()
                .actions()
                .contains(&ActionKind::Truncate)
        );
        for n in [
            "customize",
            "fs-uuids",
            "lvm-uuids",
            "script",
            "flag-reconfiguration",
        ] {
            let op = cat.get(n).unwrap();
            assert!(op.needs_guest.is_some() && op.rules.is_empty(), "{n}");
        }
        for n in ["ca-certificates", "ipa-client"] {
            assert_eq!(
                cat.get(n).unwrap().needs_guest_when,
                NeedsGuestWhen::Findings
            );
        }
        let logs = &cat.get("logfiles").unwrap().rules[0].paths;
        // 23 generic + 17 logrotate + 1 status + 9 installer + 9 desktop + 5 Pegasus + 6 others.
        assert_eq!(logs.len(), 70);
        for n in [
            "private-keys",
            "cloud-credentials",
            "credential-files",
            "tokens",
        ] {
            let op = cat.get(n).unwrap();
            assert!(op.is_content() && op.default, "{n}");
        }
        assert!(!cat.get("cloud-init-seed").unwrap().default);
    }
}
