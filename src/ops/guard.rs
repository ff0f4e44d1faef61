//! OS guards: which guests an operation or rule applies to.
//!
//! A guard is a list of conditions that must all hold; one condition may be an
//! alternative `a|b`, and any atom may be negated with `!`. Atoms:
//!
//! | atom | holds when |
//! |---|---|
//! | `unix` | an OS root was found (virt-sysprep's "not Windows": we read only Linux-family filesystems) |
//! | `linux` | an OS root was found and `/etc/os-release` does not name a BSD |
//! | `rhel-family` | `ID`/`ID_LIKE` names fedora, rhel, centos, scientific, ol/oraclelinux, rocky, almalinux, redhat, amzn |
//! | `debian-family` | `ID`/`ID_LIKE` names debian, ubuntu, kali, raspbian, linuxmint |
//! | `suse-family` | `ID`/`ID_LIKE` names suse, sles, opensuse |
//! | `id=X` | `ID` is exactly X (e.g. `id=rhel`, as virt-sysprep's distro `rhel`) |
//! | `package-format=rpm\|dpkg` | the rpm database (`/var/lib/rpm`, `/usr/lib/sysimage/rpm`) or dpkg status (`/var/lib/dpkg/status`) exists |
//! | `package-manager=apt\|yum\|dnf\|zypper` | the tool or its configuration exists (`/usr/bin/apt-get`, `/etc/yum.conf`, `/usr/bin/dnf`, `/etc/zypp`, …) |
//! | `lvm2` | `/etc/lvm` exists (lvm2 is installed) |
//! | `systemd` | `/usr/lib/systemd/systemd` or `/lib/systemd/systemd` exists |
//!
//! Facts come from [`OsFacts`], which the guest view fills from the OS root.

use std::fmt;

use serde::Serialize;

/// One testable fact about the guest.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GuardAtom {
    Unix,
    Linux,
    RhelFamily,
    DebianFamily,
    SuseFamily,
    Id(String),
    PackageFormat(String),
    PackageManager(String),
    Lvm2,
    Systemd,
}

impl GuardAtom {
    fn parse(s: &str) -> Result<Self, String> {
        let known = |what: &str, v: &str, allowed: &[&str]| {
            if allowed.contains(&v) {
                Ok(v.to_string())
            } else {
                Err(format!(
                    "unknown {what} `{v}` (expected one of: {})",
                    allowed.join(", ")
                ))
            }
        };
        Ok(match s {
            "unix" => GuardAtom::Unix,
            "linux" => GuardAtom::Linux,
            "rhel-family" => GuardAtom::RhelFamily,
            "debian-family" => GuardAtom::DebianFamily,
            "suse-family" => GuardAtom::SuseFamily,
            "lvm2" => GuardAtom::Lvm2,
            "systemd" => GuardAtom::Systemd,
            _ => {
                if let Some(v) = s.strip_prefix("id=") {
                    if v.is_empty()
                        || !v
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                    {
                        return Err(format!("bad os-release ID in `{s}`"));
                    }
                    GuardAtom::Id(v.to_string())
                } else if let Some(v) = s.strip_prefix("package-format=") {
                    GuardAtom::PackageFormat(known("package format", v, &["rpm", "dpkg"])?)
                } else if let Some(v) = s.strip_prefix("package-manager=") {
                    GuardAtom::PackageManager(known(
                        "package manager",
                        v,
                        &["apt", "yum", "dnf", "zypper"],
                    )?)
                } else {
                    return Err(format!(
                        "unknown guard `{s}` (expected unix, linux, rhel-family, debian-family, \
                         suse-family, lvm2, systemd, id=ID, package-format=rpm|dpkg, \
                         package-manager=apt|yum|dnf|zypper, optionally negated with `!` \
                         and combined with `|`)"
                    ));
                }
            }
        })
    }

    fn holds(&self, f: &OsFacts) -> bool {
        match self {
            GuardAtom::Unix => f.has_os,
            GuardAtom::Linux => f.has_os && f.linux,
            GuardAtom::RhelFamily => f.has_os && f.rhel_family,
            GuardAtom::DebianFamily => f.has_os && f.debian_family,
            GuardAtom::SuseFamily => f.has_os && f.suse_family,
            GuardAtom::Id(id) => f.id.as_deref() == Some(id.as_str()),
            GuardAtom::PackageFormat(p) => f.package_formats.iter().any(|x| x == p),
            GuardAtom::PackageManager(p) => f.package_managers.iter().any(|x| x == p),
            GuardAtom::Lvm2 => f.lvm2,
            GuardAtom::Systemd => f.systemd,
        }
    }
}

impl fmt::Display for GuardAtom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GuardAtom::Unix => f.write_str("unix"),
            GuardAtom::Linux => f.write_str("linux"),
            GuardAtom::RhelFamily => f.write_str("rhel-family"),
            GuardAtom::DebianFamily => f.write_str("debian-family"),
            GuardAtom::SuseFamily => f.write_str("suse-family"),
            GuardAtom::Id(v) => write!(f, "id={v}"),
            GuardAtom::PackageFormat(v) => write!(f, "package-format={v}"),
            GuardAtom::PackageManager(v) => write!(f, "package-manager={v}"),
            GuardAtom::Lvm2 => f.write_str("lvm2"),
            GuardAtom::Systemd => f.write_str("systemd"),
        }
    }
}

/// `(negated, atom)` alternatives of one condition.
type Alternatives = Vec<(bool, GuardAtom)>;

/// A parsed guard: all conditions must hold. The empty guard always holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Guard {
    conditions: Vec<Alternatives>,
    source: Vec<String>,
}

impl Guard {
    pub fn parse(items: &[String]) -> Result<Self, String> {
        let mut conditions = Vec::with_capacity(items.len());
        for item in items {
            let mut alts = Vec::new();
            for part in item.split('|') {
                let part = part.trim();
                let (neg, atom) = match part.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, part),
                };
                alts.push((neg, GuardAtom::parse(atom)?));
            }
            conditions.push(alts);
        }
        Ok(Guard {
            conditions,
            source: items.to_vec(),
        })
    }

    pub fn holds(&self, facts: &OsFacts) -> bool {
        self.conditions
            .iter()
            .all(|alts| alts.iter().any(|(neg, a)| a.holds(facts) != *neg))
    }

    pub fn is_empty(&self) -> bool {
        self.conditions.is_empty()
    }

    /// The guard as written, for docs and reports.
    pub fn items(&self) -> &[String] {
        &self.source
    }

    /// True if the guard needs an OS root to hold (every condition has only
    /// positive atoms, so nothing can hold on a guest without an OS).
    pub fn requires_os(&self) -> bool {
        let none = OsFacts::default();
        !self.holds(&none)
    }
}

impl fmt::Display for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.source.is_empty() {
            f.write_str("any")
        } else {
            f.write_str(&self.source.join(" & "))
        }
    }
}

impl Serialize for Guard {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.source.serialize(s)
    }
}

/// What guards are evaluated against; filled by the guest view.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OsFacts {
    pub has_os: bool,
    pub linux: bool,
    pub id: Option<String>,
    pub rhel_family: bool,
    pub debian_family: bool,
    pub suse_family: bool,
    pub package_formats: Vec<String>,
    pub package_managers: Vec<String>,
    pub lvm2: bool,
    pub systemd: bool,
}

impl OsFacts {
    /// Family flags from os-release `ID` and `ID_LIKE`.
    pub fn set_families(&mut self, id: Option<&str>, id_like: &[String]) {
        let mut names: Vec<&str> = id_like.iter().map(String::as_str).collect();
        if let Some(id) = id {
            names.push(id);
        }
        let any = |set: &[&str]| names.iter().any(|n| set.contains(n));
        self.rhel_family = any(&[
            "fedora",
            "rhel",
            "centos",
            "scientific",
            "ol",
            "oraclelinux",
            "rocky",
            "almalinux",
            "redhat",
            "amzn",
        ]);
        self.debian_family = any(&["debian", "ubuntu", "kali", "raspbian", "linuxmint"]);
        self.suse_family = any(&[
            "suse",
            "sles",
            "opensuse",
            "opensuse-leap",
            "opensuse-tumbleweed",
        ]);
        self.linux =
            self.has_os && !any(&["freebsd", "netbsd", "openbsd", "dragonfly", "midnightbsd"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(items: &[&str]) -> Guard {
        Guard::parse(&items.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn guards_combine_and_negate() {
        let mut f = OsFacts {
            has_os: true,
            ..Default::default()
        };
        f.id = Some("ubuntu".into());
        f.set_families(Some("ubuntu"), &["debian".into()]);
        f.package_managers.push("apt".into());
        assert!(g(&[]).holds(&f));
        assert!(g(&["linux", "debian-family"]).holds(&f));
        assert!(!g(&["linux", "rhel-family"]).holds(&f));
        assert!(g(&["rhel-family|debian-family"]).holds(&f));
        assert!(g(&["!rhel-family"]).holds(&f));
        assert!(g(&["package-manager=apt"]).holds(&f));
        assert!(!g(&["package-manager=dnf"]).holds(&f));
        assert!(!g(&["id=rhel"]).holds(&f));
        assert!(g(&["id=ubuntu"]).holds(&f));
        assert!(g(&["unix"]).requires_os());
        assert!(!g(&["!linux"]).requires_os());
        assert!(!g(&[]).requires_os());
    }

    #[test]
    fn bad_guards_are_named() {
        let e = Guard::parse(&["linx".to_string()]).unwrap_err();
        assert!(e.contains("unknown guard `linx`"), "{e}");
        let e = Guard::parse(&["package-manager=pacman".to_string()]).unwrap_err();
        assert!(e.contains("pacman"), "{e}");
    }
}
