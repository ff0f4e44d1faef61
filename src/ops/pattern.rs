//! Path patterns: placeholder expansion and glob compilation.
//!
//! Globs are guest-absolute and matched component-wise: `*`, `?` and `[…]` never
//! cross `/`; `**` as a whole component matches any number of components
//! (`/var/cache/**` is everything below `/var/cache`, not the directory itself);
//! `{a,b}` is an alternation; `\` escapes. Unlike glob(3), `*` **does** match
//! names starting with a dot: `/tmp/*` includes `/tmp/.X0-lock`. That is what a
//! sanitizer needs (virt-sysprep's `tmp-files` lists the directory again for
//! exactly this reason).
//!
//! Placeholders, expanded per guest before compiling:
//! - `{home}`: every home directory in the OS root's `/etc/passwd`, plus `/root`
//!   and `/home/*` (so a guest with a broken passwd is still covered);
//! - `{user}` / `{user-home}`: each account `user-account` would remove (UID in
//!   `UID_MIN..=UID_MAX` of `/etc/login.defs`, default 1000..=60000) and its home.
//!
//! Values from the guest are hostile: they are glob-escaped (a home named `/srv/*`
//! matches only itself), must be absolute and free of `.`/`..` components, and a
//! value that is not UTF-8 cannot be expressed as a pattern and is skipped (the
//! caller reports it).

use globset::{Glob, GlobBuilder};
use regex::bytes::{Regex, RegexBuilder};

/// Placeholders a pattern may use.
pub const PLACEHOLDERS: &[&str] = &["home", "user", "user-home"];

/// What placeholders expand to for one guest.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expansions {
    /// Home directories (already normalized), without `/root` and `/home/*`.
    pub homes: Vec<String>,
    /// (name, home) of the accounts `user-account` would remove.
    pub users: Vec<(String, Option<String>)>,
}

/// Compiles one glob with vmscrub's semantics.
pub fn glob(pattern: &str) -> Result<Glob, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .backslash_escape(true)
        .empty_alternates(true)
        .build()
        .map_err(|e| format!("bad glob `{pattern}`: {e}"))
}

/// Finds `{name}` groups that look like placeholders (letters and `-` only).
fn placeholders(p: &str) -> Vec<(usize, usize, &str)> {
    let mut out = Vec::new();
    let b = p.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == b'{'
            && let Some(len) = p[i + 1..].find('}')
        {
            let name = &p[i + 1..i + 1 + len];
            if !name.is_empty() && name.bytes().all(|c| c.is_ascii_lowercase() || c == b'-') {
                out.push((i, i + len + 2, name));
            }
        }
        i += 1;
    }
    out
}

/// Validates a rule pattern: absolute (or starting with a placeholder), known
/// placeholders, compiles as a glob.
pub fn check_pattern(p: &str) -> Result<(), String> {
    let ph = placeholders(p);
    for (_, _, name) in &ph {
        if !PLACEHOLDERS.contains(name) {
            return Err(format!(
                "unknown placeholder `{{{name}}}` in `{p}` (known: {{home}}, {{user}}, {{user-home}})"
            ));
        }
    }
    let starts_with_ph = ph.first().is_some_and(|(s, _, n)| *s == 0 && *n != "user");
    if !p.starts_with('/') && !starts_with_ph {
        return Err(format!(
            "pattern `{p}` must be absolute (start with `/` or `{{home}}`)"
        ));
    }
    let sample = expand(
        p,
        &Expansions {
            homes: vec!["/h".into()],
            users: vec![("u".into(), Some("/home/u".into()))],
        },
    );
    for s in sample {
        glob(&s)?;
    }
    Ok(())
}

/// Validates a `keep`/`allow` glob (no placeholders).
pub fn check_glob(p: &str) -> Result<(), String> {
    if !p.starts_with('/') {
        return Err(format!("glob `{p}` must be absolute"));
    }
    glob(p).map(|_| ())
}

/// Expands placeholders; a pattern whose placeholder has no value expands to
/// nothing.
pub fn expand(p: &str, x: &Expansions) -> Vec<String> {
    let ph = placeholders(p);
    let Some(&(start, end, name)) = ph.iter().find(|(_, _, n)| PLACEHOLDERS.contains(n)) else {
        return vec![p.to_string()];
    };
    let values: Vec<String> = match name {
        "home" => {
            let mut v: Vec<String> = x.homes.iter().map(|h| globset::escape(h)).collect();
            v.push("/root".into());
            v.push("/home/*".into());
            v
        }
        "user" => x.users.iter().map(|(u, _)| globset::escape(u)).collect(),
        "user-home" => x
            .users
            .iter()
            .filter_map(|(_, h)| h.as_ref().map(|h| globset::escape(h)))
            .collect(),
        _ => vec![],
    };
    let mut out = Vec::new();
    for v in values {
        // A home of `/` would make `{home}/.x` start with `//`.
        let v = if v == "/" && p[end..].starts_with('/') {
            String::new()
        } else {
            v
        };
        let s = format!("{}{}{}", &p[..start], v, &p[end..]);
        for e in expand(&s, x) {
            if !out.contains(&e) {
                out.push(e);
            }
        }
    }
    out
}

/// Compiles a `drop-lines` regex for lines (bytes; `^`/`$` anchor the line).
/// `{user}` becomes an alternation of the escaped names (never-matching if none).
pub fn line_regex(re: &str, x: &Expansions) -> Result<Regex, String> {
    let users = if x.users.is_empty() {
        "[^\\s\\S]".to_string()
    } else {
        let names: Vec<String> = x.users.iter().map(|(u, _)| regex::escape(u)).collect();
        format!("(?:{})", names.join("|"))
    };
    let re = re.replace("{user}", &users);
    RegexBuilder::new(&re)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("bad regex `{re}`: {e}"))
}

pub fn check_line_regex(re: &str) -> Result<(), String> {
    line_regex(re, &Expansions::default()).map(|_| ())
}

/// Normalizes a home directory or mount point from guest data: absolute, no
/// `.`/`..`, no empty components, no trailing `/`, bounded length. `None` if
/// unusable.
pub fn normalize_abs(p: &[u8]) -> Option<Vec<u8>> {
    if !p.starts_with(b"/") || p.len() > 4096 || p.contains(&0) {
        return None;
    }
    let mut out = Vec::with_capacity(p.len());
    for c in p.split(|&b| b == b'/').filter(|c| !c.is_empty()) {
        if c == b"." || c == b".." {
            return None;
        }
        out.push(b'/');
        out.extend_from_slice(c);
    }
    if out.is_empty() {
        out.push(b'/');
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use globset::GlobSetBuilder;

    fn matches(pattern: &str, path: &str) -> bool {
        let mut b = GlobSetBuilder::new();
        b.add(glob(pattern).unwrap());
        b.build().unwrap().is_match(path)
    }

    #[test]
    fn glob_semantics() {
        assert!(matches("/tmp/*", "/tmp/.X0-lock"));
        assert!(!matches("/tmp/*", "/tmp/a/b"));
        assert!(matches("/var/cache/**", "/var/cache/a/b/c"));
        assert!(!matches("/var/cache/**", "/var/cache"));
        assert!(matches("/home/*/.ssh", "/home/al ice/.ssh"));
        assert!(!matches("/home/*/.ssh", "/home/a/b/.ssh"));
        assert!(matches("/var/log/*.log*", "/var/log/cloud-init.log.1"));
        assert!(matches("/etc/{a,b}", "/etc/b"));
        assert!(matches("/**/.*hist*", "/x/.python_history"));
    }

    #[test]
    fn home_expansion_escapes_guest_values() {
        let x = Expansions {
            homes: vec!["/srv/deploy".into(), "/srv/[x]*".into(), "/".into()],
            users: vec![],
        };
        let e = expand("{home}/.ssh/authorized_keys", &x);
        assert_eq!(
            e,
            [
                "/srv/deploy/.ssh/authorized_keys",
                "/srv/[[]x[]][*]/.ssh/authorized_keys",
                "/.ssh/authorized_keys",
                "/root/.ssh/authorized_keys",
                "/home/*/.ssh/authorized_keys"
            ]
        );
        assert!(matches(&e[1], "/srv/[x]*/.ssh/authorized_keys"));
        assert!(!matches(&e[1], "/srv/xx/.ssh/authorized_keys"));
        assert!(expand("/var/spool/mail/{user}", &x).is_empty());
    }

    #[test]
    fn checks_patterns() {
        assert!(check_pattern("/etc/x").is_ok());
        assert!(check_pattern("{home}/.x").is_ok());
        assert!(check_pattern("etc/x").unwrap_err().contains("absolute"));
        assert!(
            check_pattern("{hme}/.x")
                .unwrap_err()
                .contains("unknown placeholder")
        );
        assert!(check_pattern("/etc/[").unwrap_err().contains("bad glob"));
    }

    #[test]
    fn user_regex() {
        let x = Expansions {
            homes: vec![],
            users: vec![("a.b".into(), None)],
        };
        let r = line_regex("^{user}:", &x).unwrap();
        assert!(r.is_match(b"a.b:x:1000"));
        assert!(!r.is_match(b"axb:x:1000"));
        let none = line_regex("^{user}:", &Expansions::default()).unwrap();
        assert!(!none.is_match(b"a.b:x"));
        assert!(!none.is_match(b""));
    }

    #[test]
    fn normalizes() {
        assert_eq!(normalize_abs(b"/srv//deploy/").unwrap(), b"/srv/deploy");
        assert_eq!(normalize_abs(b"/").unwrap(), b"/");
        assert!(normalize_abs(b"/a/../b").is_none());
        assert!(normalize_abs(b"rel").is_none());
    }
}
