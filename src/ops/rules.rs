//! Parsing the catalogue and user rule files (`--rules FILE`): one TOML form.
//!
//! ```toml
//! keep = ["/etc/ssh/ssh_host_ed25519_key*"]      # user files only: like --keep
//!
//! [[allow]]                                       # user files only: ignore content hits
//! path = "/usr/share/doc/**"                      #   where (glob), and optionally
//! detector = "private-key"                        #   which detector / which hash
//!
//! [[operation]]
//! name = "app-tokens"
//! heading = "Remove the app's cached tokens"
//! default = true
//! source = "vmscrub"                              # optional in user files ("user")
//! os = ["linux"]                                  # guard, see ops::guard
//! needs-guest = "…"                               # optional: what cannot be done offline
//! volume = "reinit-swap"                           # optional: what it does to whole volumes
//! needs-guest-when = "always" | "findings"
//! notes = "…"
//!
//!   [[operation.rule]]
//!   action = "delete" | "delete-tree" | "truncate" | "rewrite" | "redact" | "report"
//!   paths = ["{home}/.app/token", "/var/lib/app/**"]
//!   except = ["/var/lib/app/keep"]
//!   kinds = ["regular", "symlink"]
//!   replace = "…"          # rewrite: new content
//!   drop-lines = "^X="     # rewrite: drop matching lines
//!   content = true         # findings come from the content detectors
//!   os = ["debian-family"] # rule-level guard
//!   reason = "…"           # report: why only reported
//!   if-line = "regex"      # only files with a matching line
//! ```
//!
//! Unknown fields are errors (a typo such as `exept` must not silently widen a
//! rule), and every error names the line and the field.

use std::collections::HashSet;

use serde::Deserialize;
use toml::Spanned;

use super::pattern;
use super::{ActionKind, Guard, KindFilter, NeedsGuestWhen, Operation, Rule, Source};

/// The parsed catalogue plus what user rule files added.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    pub operations: Vec<Operation>,
    /// `keep` globs from rule files (added to `--keep`).
    pub keep: Vec<String>,
    /// Allow-list for content hits.
    pub allow: Vec<Allow>,
}

/// A content hit to ignore: at paths matching `path`, and only for `detector` /
/// `hash` when given.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Allow {
    pub path: String,
    pub detector: Option<String>,
    pub hash: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("{origin}: {message}")]
    Toml { origin: String, message: String },
    #[error("{origin}:{line}: {context}: {message}")]
    Invalid {
        origin: String,
        line: usize,
        context: String,
        message: String,
    },
    #[error("{origin}: cannot read: {source}")]
    Read {
        origin: String,
        #[source]
        source: std::io::Error,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    keep: Vec<Spanned<String>>,
    #[serde(default)]
    allow: Vec<Spanned<RawAllow>>,
    #[serde(default)]
    operation: Vec<Spanned<RawOperation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAllow {
    path: String,
    detector: Option<String>,
    hash: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawOperation {
    name: String,
    heading: String,
    default: bool,
    source: Option<Source>,
    #[serde(default)]
    os: Vec<String>,
    needs_guest: Option<String>,
    #[serde(default)]
    needs_guest_when: NeedsGuestWhen,
    notes: Option<String>,
    volume: Option<super::VolumeAction>,
    #[serde(default)]
    rule: Vec<Spanned<RawRule>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawRule {
    action: ActionKind,
    #[serde(default)]
    paths: Vec<String>,
    #[serde(default)]
    except: Vec<String>,
    #[serde(default)]
    kinds: Vec<KindFilter>,
    replace: Option<String>,
    drop_lines: Option<String>,
    #[serde(default)]
    content: bool,
    #[serde(default)]
    os: Vec<String>,
    reason: Option<String>,
    if_line: Option<String>,
}

/// Names the selection algebra reserves.
const RESERVED: &[&str] = &["defaults", "all", "none"];

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset)
        .map(|s| s.bytes().filter(|&b| b == b'\n').count() + 1)
        .unwrap_or(1)
}

impl Catalogue {
    /// The built-in catalogue. It is compiled in and tested, so an error here is
    /// a build defect; it is still returned, not unwrapped.
    pub fn builtin() -> Result<Self, RulesError> {
        let mut c = Catalogue::default();
        c.add_toml(super::CATALOGUE_TOML, "catalogue.toml", true)?;
        Ok(c)
    }

    /// Adds a user rule file's operations, keep and allow entries.
    pub fn add_file(&mut self, path: &std::path::Path) -> Result<(), RulesError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RulesError::Read {
            origin: origin.clone(),
            source,
        })?;
        self.add_toml(&text, &origin, false)
    }

    /// Parses `text` (the catalogue when `builtin`, else a user file) and adds
    /// its entries. Nothing is added if any entry is invalid.
    pub fn add_toml(&mut self, text: &str, origin: &str, builtin: bool) -> Result<(), RulesError> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            RulesError::Toml {
                origin: match line {
                    Some(l) => format!("{origin}:{l}"),
                    None => origin.to_string(),
                },
                message: e.message().trim_end().to_string(),
            }
        })?;
        let invalid = |offset: usize, context: String, message: String| RulesError::Invalid {
            origin: origin.to_string(),
            line: line_of(text, offset),
            context,
            message,
        };
        if builtin && (!raw.keep.is_empty() || !raw.allow.is_empty()) {
            return Err(invalid(
                0,
                "file".into(),
                "the catalogue has no keep/allow".into(),
            ));
        }
        let mut keep = Vec::new();
        for k in &raw.keep {
            pattern::check_glob(k.get_ref())
                .map_err(|m| invalid(k.span().start, "field `keep`".into(), m))?;
            keep.push(k.get_ref().clone());
        }
        let mut allow = Vec::new();
        for a in &raw.allow {
            let span = a.span().start;
            let a = a.get_ref();
            pattern::check_glob(&a.path)
                .map_err(|m| invalid(span, "[[allow]] field `path`".into(), m))?;
            allow.push(Allow {
                path: a.path.clone(),
                detector: a.detector.clone(),
                hash: a.hash.clone(),
            });
        }
        let mut names: HashSet<String> = self.operations.iter().map(|o| o.name.clone()).collect();
        let mut ops = Vec::new();
        for sop in raw.operation {
            let at = sop.span().start;
            let op = sop.into_inner();
            let ctx = |field: &str| format!("operation `{}` field `{field}`", op.name);
            if !valid_name(&op.name) || RESERVED.contains(&op.name.as_str()) {
                return Err(invalid(
                    at,
                    ctx("name"),
                    format!(
                        "`{}` is not a valid operation name (lowercase letters, digits and `-`; \
                         not `defaults`, `all` or `none`)",
                        op.name
                    ),
                ));
            }
            if !names.insert(op.name.clone()) {
                return Err(invalid(
                    at,
                    ctx("name"),
                    format!("operation `{}` is already defined", op.name),
                ));
            }
            if op.heading.trim().is_empty() || op.heading.contains('\n') {
                return Err(invalid(
                    at,
                    ctx("heading"),
                    "must be one non-empty line".into(),
                ));
            }
            let source = match op.source {
                Some(Source::User) if builtin => {
                    return Err(invalid(
                        at,
                        ctx("source"),
                        "`user` is for rule files".into(),
                    ));
                }
                Some(s) => s,
                None if builtin => {
                    return Err(invalid(at, ctx("source"), "missing field `source`".into()));
                }
                None => Source::User,
            };
            let guard = Guard::parse(&op.os).map_err(|m| invalid(at, ctx("os"), m))?;
            if op.rule.is_empty() && op.needs_guest.is_none() && op.volume.is_none() {
                return Err(invalid(
                    at,
                    ctx("rule"),
                    "an operation needs at least one [[operation.rule]], a `volume` action or a \
                     `needs-guest` note"
                        .into(),
                ));
            }
            // An operation with nothing to do offline would only add a warning to
            // every run; it is there to be named (and explained) when selected.
            if op.rule.is_empty() && op.volume.is_none() && op.default {
                return Err(invalid(
                    at,
                    ctx("default"),
                    "an operation with no [[operation.rule]] does nothing offline and cannot be \
                     on by default"
                        .into(),
                ));
            }
            let mut rules = Vec::new();
            for (i, sr) in op.rule.into_iter().enumerate() {
                let rat = sr.span().start;
                let r = sr.into_inner();
                let rctx =
                    |field: &str| format!("operation `{}` rule {} field `{field}`", op.name, i + 1);
                let rule = check_rule(r).map_err(|(field, m)| invalid(rat, rctx(field), m))?;
                rules.push(rule);
            }
            ops.push(Operation {
                name: op.name,
                heading: op.heading,
                default: op.default,
                source,
                os: guard,
                rules,
                needs_guest: op.needs_guest,
                needs_guest_when: op.needs_guest_when,
                notes: op.notes,
                volume: op.volume,
            });
        }
        self.operations.extend(ops);
        self.keep.extend(keep);
        self.allow.extend(allow);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Operation> {
        self.operations.iter().find(|o| o.name == name)
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !n.starts_with('-')
}

/// Validates one rule; the error names the offending field.
fn check_rule(r: RawRule) -> Result<Rule, (&'static str, String)> {
    for p in &r.paths {
        pattern::check_pattern(p).map_err(|m| ("paths", m))?;
    }
    for p in &r.except {
        pattern::check_pattern(p).map_err(|m| ("except", m))?;
    }
    let os = Guard::parse(&r.os).map_err(|m| ("os", m))?;
    if r.content {
        if !r.paths.is_empty() {
            return Err((
                "paths",
                "a content rule applies to every file; use `except` to narrow it".into(),
            ));
        }
        if !matches!(
            r.action,
            ActionKind::Delete | ActionKind::Redact | ActionKind::Report
        ) {
            return Err((
                "action",
                "a content rule's action is `delete`, `redact` or `report`".into(),
            ));
        }
    } else if r.action == ActionKind::Redact {
        return Err((
            "action",
            "`redact` needs the detectors' spans: it is for content rules (`content = true`)"
                .into(),
        ));
    } else if r.paths.is_empty() {
        return Err(("paths", "a rule needs `paths` (or `content = true`)".into()));
    }
    match r.action {
        ActionKind::Rewrite => match (&r.replace, &r.drop_lines) {
            (Some(_), Some(_)) | (None, None) => {
                return Err((
                    "action",
                    "a rewrite needs exactly one of `replace` and `drop-lines`".into(),
                ));
            }
            (None, Some(re)) => {
                pattern::check_line_regex(re).map_err(|m| ("drop-lines", m))?;
            }
            (Some(_), None) => {}
        },
        _ => {
            if r.replace.is_some() {
                return Err(("replace", "only a `rewrite` takes `replace`".into()));
            }
            if r.drop_lines.is_some() {
                return Err(("drop-lines", "only a `rewrite` takes `drop-lines`".into()));
            }
        }
    }
    if let Some(re) = &r.if_line {
        pattern::check_line_regex(re).map_err(|m| ("if-line", m))?;
    }
    if r.reason.is_some() && r.action != ActionKind::Report {
        return Err(("reason", "only a `report` rule takes `reason`".into()));
    }
    Ok(Rule {
        action: r.action,
        paths: r.paths,
        except: r.except,
        kinds: r.kinds,
        replace: r.replace,
        drop_lines: r.drop_lines,
        content: r.content,
        os,
        reason: r.reason,
        if_line: r.if_line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Catalogue, RulesError> {
        let mut c = Catalogue::default();
        c.add_toml(text, "extra.toml", false)?;
        Ok(c)
    }

    #[test]
    fn user_file_parses() {
        let c = parse(
            r#"
keep = ["/etc/ssh/ssh_host_ed25519_key*"]
[[allow]]
path = "/usr/share/doc/**"
detector = "private-key"

[[operation]]
name = "app-tokens"
heading = "Remove the app's tokens"
default = true
os = ["linux"]
  [[operation.rule]]
  action = "delete"
  paths = ["{home}/.app/token"]
"#,
        )
        .unwrap();
        assert_eq!(c.operations.len(), 1);
        assert_eq!(c.operations[0].source, Source::User);
        assert_eq!(c.keep, ["/etc/ssh/ssh_host_ed25519_key*"]);
        assert_eq!(c.allow[0].detector.as_deref(), Some("private-key"));
    }

    #[test]
    fn unknown_field_names_line_and_field() {
        let e = parse(
            "[[operation]]\nname = \"x\"\nheading = \"h\"\ndefault = true\n\n  [[operation.rule]]\n  action = \"delete\"\n  paths = [\"/a\"]\n  exept = [\"/b\"]\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("extra.toml:9:"), "{e}");
        assert!(e.contains("exept"), "{e}");
    }

    #[test]
    fn bad_values_name_line_and_field() {
        let e = parse("[[operation]]\nname = \"x\"\nheading = \"h\"\ndefault = \"yes\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("extra.toml:4:"), "{e}");
        let e = parse("[[operation]]\nname = \"x\"\nheading = \"h\"\ndefault = true\n[[operation.rule]]\naction = \"shred\"\npaths = [\"/a\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("extra.toml:6") && e.contains("shred"), "{e}");
        let e = parse("[[operation]]\nname = \"x\"\nheading = \"h\"\ndefault = true\n\n[[operation.rule]]\naction = \"rewrite\"\npaths = [\"/a\"]\ndrop-lines = \"^(\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("extra.toml:6") && e.contains("rule 1 field `drop-lines`"),
            "{e}"
        );
        let e = parse("[[operation]]\nname = \"x\"\nheading = \"h\"\ndefault = true\n[[operation.rule]]\naction = \"delete\"\npaths = [\"etc/a\"]\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `paths`") && e.contains("absolute"), "{e}");
        let e = parse("[[operation]]\nname = \"Bad_Name\"\nheading = \"h\"\ndefault = true\nneeds-guest = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("extra.toml:1") && e.contains("field `name`"),
            "{e}"
        );
        let e = parse("[[operation]]\nname = \"x\"\nheading = \"h\"\ndefault = true\nos = [\"linx\"]\nneeds-guest = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("field `os`") && e.contains("linx"), "{e}");
    }

    #[test]
    fn a_rule_less_operation_cannot_be_a_default() {
        let e = parse(
            "[[operation]]\nname = \"x\"\nheading = \"h\"\ndefault = true\nneeds-guest = \"x\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("field `default`") && e.contains("does nothing offline"),
            "{e}"
        );
        parse(
            "[[operation]]\nname = \"x\"\nheading = \"h\"\ndefault = false\nneeds-guest = \"x\"\n",
        )
        .unwrap();
    }

    #[test]
    fn redefining_an_operation_is_an_error() {
        let mut c = Catalogue::builtin().unwrap();
        let e = c
            .add_toml(
                "[[operation]]\nname = \"machine-id\"\nheading = \"h\"\ndefault = true\nneeds-guest = \"x\"\n",
                "extra.toml",
                false,
            )
            .unwrap_err()
            .to_string();
        assert!(e.contains("already defined"), "{e}");
    }
}
