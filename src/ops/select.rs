//! Choosing operations, with virt-sysprep's algebra.
//!
//! - no flag: the operations marked `default`;
//! - `--operations LIST` (repeatable; each LIST is comma-separated), applied left
//!   to right to a set that starts **empty**: `defaults` adds the defaults, `all`
//!   adds every operation, `NAME` or `+NAME` adds one, `-NAME` removes one. So
//!   `--operations defaults,-ssh-hostkeys,+user-account`;
//! - `--enable LIST`: exactly these operations (cannot be combined with
//!   `--operations`, as in virt-sysprep where `--enable` may be given once).
//!
//! An unknown name is an error that lists the closest known names.

use std::collections::BTreeSet;

use super::Catalogue;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SelectionError {
    #[error("unknown operation `{name}`{}", suggest(.close))]
    Unknown { name: String, close: Vec<String> },
    #[error("empty operation name in `{list}`")]
    Empty { list: String },
    #[error("--enable and --operations cannot be used together")]
    EnableAndOperations,
    #[error(
        "`{item}`: `defaults` and `all` cannot be removed; start from the set you want instead"
    )]
    RemoveGroup { item: String },
}

fn suggest(close: &[String]) -> String {
    if close.is_empty() {
        " (`vmscrub operations` lists them)".to_string()
    } else {
        format!(
            "; did you mean {}?",
            close
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }
}

/// The chosen operations, in catalogue order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selection {
    names: Vec<String>,
}

impl Selection {
    /// The default set.
    pub fn defaults(cat: &Catalogue) -> Self {
        Selection {
            names: cat
                .operations
                .iter()
                .filter(|o| o.default)
                .map(|o| o.name.clone())
                .collect(),
        }
    }

    /// Applies `--operations` lists (in order) or `--enable`.
    pub fn resolve(
        cat: &Catalogue,
        operations: &[String],
        enable: &[String],
    ) -> Result<Self, SelectionError> {
        if !enable.is_empty() && !operations.is_empty() {
            return Err(SelectionError::EnableAndOperations);
        }
        if operations.is_empty() && enable.is_empty() {
            return Ok(Self::defaults(cat));
        }
        let mut set: BTreeSet<String> = BTreeSet::new();
        if !enable.is_empty() {
            for list in enable {
                for item in split(list)? {
                    set.insert(known(cat, item)?);
                }
            }
        }
        for list in operations {
            for item in split(list)? {
                match item {
                    "defaults" => set.extend(Self::defaults(cat).names),
                    "all" => set.extend(cat.operations.iter().map(|o| o.name.clone())),
                    _ => {
                        if let Some(name) = item.strip_prefix('-') {
                            if name == "defaults" || name == "all" {
                                return Err(SelectionError::RemoveGroup { item: item.into() });
                            }
                            set.remove(&known(cat, name)?);
                        } else {
                            let name = item.strip_prefix('+').unwrap_or(item);
                            set.insert(known(cat, name)?);
                        }
                    }
                }
            }
        }
        Ok(Selection {
            names: cat
                .operations
                .iter()
                .filter(|o| set.contains(&o.name))
                .map(|o| o.name.clone())
                .collect(),
        })
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }

    pub fn names(&self) -> &[String] {
        &self.names
    }
}

fn split(list: &str) -> Result<Vec<&str>, SelectionError> {
    let items: Vec<&str> = list.split(',').map(str::trim).collect();
    if items.iter().any(|i| i.is_empty() || *i == "+" || *i == "-") {
        return Err(SelectionError::Empty { list: list.into() });
    }
    Ok(items)
}

fn known(cat: &Catalogue, name: &str) -> Result<String, SelectionError> {
    if cat.get(name).is_some() {
        return Ok(name.to_string());
    }
    let mut scored: Vec<(f64, &str)> = cat
        .operations
        .iter()
        .map(|o| {
            let n = o.name.as_str();
            let mut s = strsim::jaro_winkler(name, n);
            if n.contains(name) || name.contains(n) {
                s = s.max(0.9);
            }
            (s, n)
        })
        .filter(|(s, _)| *s >= 0.8)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    Err(SelectionError::Unknown {
        name: name.to_string(),
        close: scored
            .into_iter()
            .take(3)
            .map(|(_, n)| n.to_string())
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cat() -> Catalogue {
        Catalogue::builtin().unwrap()
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn algebra() {
        let c = cat();
        let d = Selection::defaults(&c);
        assert!(d.contains("logfiles") && !d.contains("user-account"));
        let sel = Selection::resolve(&c, &s(&["defaults,-logfiles,+user-account"]), &[]).unwrap();
        assert!(!sel.contains("logfiles") && sel.contains("user-account"));
        assert_eq!(sel.names().len(), d.names().len());
        // Starts empty.
        let sel = Selection::resolve(&c, &s(&["machine-id"]), &[]).unwrap();
        assert_eq!(sel.names(), ["machine-id"]);
        // Repeatable, applied in order.
        let sel = Selection::resolve(&c, &s(&["all", "-fs-uuids", "-all-the-rest-is-wrong"]), &[]);
        assert!(matches!(sel, Err(SelectionError::Unknown { .. })));
        let sel = Selection::resolve(&c, &s(&["all", "-fs-uuids"]), &[]).unwrap();
        assert_eq!(sel.names().len(), c.operations.len() - 1);
        let sel = Selection::resolve(&c, &s(&["-logfiles", "logfiles"]), &[]).unwrap();
        assert_eq!(sel.names(), ["logfiles"]);
        let sel = Selection::resolve(&c, &[], &s(&["bash-history,machine-id"])).unwrap();
        assert_eq!(sel.names(), ["bash-history", "machine-id"]);
        assert_eq!(
            Selection::resolve(&c, &s(&["defaults"]), &s(&["x"])),
            Err(SelectionError::EnableAndOperations)
        );
        assert!(matches!(
            Selection::resolve(&c, &s(&["defaults,,x"]), &[]),
            Err(SelectionError::Empty { .. })
        ));
        assert!(matches!(
            Selection::resolve(&c, &s(&["-defaults"]), &[]),
            Err(SelectionError::RemoveGroup { .. })
        ));
    }

    #[test]
    fn unknown_names_suggest_close_ones() {
        let e = Selection::resolve(&cat(), &s(&["defaults,-logfile"]), &[]).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("unknown operation `logfile`"), "{msg}");
        assert!(msg.contains("`logfiles`"), "{msg}");
        let e = Selection::resolve(&cat(), &s(&["ssh-hostkey"]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("`ssh-hostkeys`"), "{e}");
        let e = Selection::resolve(&cat(), &s(&["zzzzzz"]), &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("vmscrub operations"), "{e}");
    }
}
