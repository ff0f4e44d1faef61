//! Credential files recognised by content: netrc entries, passwords in URLs
//! (`.git-credentials`), docker/podman registry auths and kubeconfig users.

use crate::id::DetectorId;
use crate::keys::pem;
use crate::text::{
    clear_at, clear_before, find_in, is_alnum, is_b64, is_placeholder, run_len, skip_blanks,
    starts_with_at,
};
use crate::window::{Ctx, Hit, Window};

/// Whitespace-separated tokens from `i`: (start, end) pairs.
fn tokens(hay: &[u8], mut i: usize, max: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    while out.len() < max {
        i += run_len(hay, i, 4096, |c| c.is_ascii_whitespace());
        let n = run_len(hay, i, 512, |c| !c.is_ascii_whitespace());
        if n == 0 {
            break;
        }
        out.push((i, i + n));
        i += n;
    }
    out
}

/// `machine HOST [login USER] password SECRET [account …]` — netrc's grammar, strictly,
/// so prose that says "machine" is never an entry.
pub(crate) fn netrc(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    if !clear_before(hay, at, |c| !c.is_ascii_whitespace()) {
        return;
    }
    let toks = tokens(hay, at, 12);
    let word = |k: usize| toks.get(k).map(|&(s, e)| &hay[s..e]);
    if word(0) != Some(b"machine") {
        return;
    }
    let Some(host) = word(1) else { return };
    const KEYS: &[&[u8]] = &[
        b"login",
        b"password",
        b"account",
        b"port",
        b"machine",
        b"default",
        b"macdef",
    ];
    if KEYS.contains(&host) {
        return;
    }
    let (mut login, mut password, mut end) = (&b""[..], None, toks[1].1);
    let mut k = 2;
    while let (Some(key), Some(value)) = (word(k), word(k + 1)) {
        match key {
            b"login" => login = value,
            b"password" => password = Some(value),
            b"account" | b"port" => {}
            _ => break,
        }
        end = toks[k + 1].1;
        k += 2;
    }
    let Some(password) = password else { return };
    if is_placeholder(password) {
        return;
    }
    out.push(Hit {
        value: None,
        detector: DetectorId::Netrc,
        start: at,
        end,
        fingerprint: ctx.fingerprint(&[host, login, password]),
        why: "netrc entry with a password".into(),
    });
}

fn is_userinfo(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:%".contains(&c)
}

/// URI schemes that carry a login in their userinfo (`scheme://user:password@host`).
/// Sources: RFC 3986 §3.2.1; PostgreSQL libpq "Connection URIs"; MySQL
/// Connector/J and MariaDB URL syntax; MongoDB "Connection String URI Format"
/// (`mongodb`, `mongodb+srv`); the IANA `redis`/`rediss` registrations; RabbitMQ
/// "URI Specification" (`amqp`, `amqps`); RFC 4516 (`ldap`, `ldaps`); RFC 1738
/// (`ftp`); SQLAlchemy engine URLs (`dialect+driver://`); JDBC URLs (`jdbc:…`);
/// gitleaks' `generic-credential-url`-style rules and TruffleHog's `uri`,
/// `postgres`, `mongodb`, `redis`, `ldap`, `ftp` and `jdbc` detectors.
const LOGIN_SCHEMES: &[&[u8]] = &[
    b"http",
    b"https",
    b"postgres",
    b"postgresql",
    b"mysql",
    b"mysqlx",
    b"mariadb",
    b"mongodb",
    b"mongodb+srv",
    b"redis",
    b"rediss",
    b"valkey",
    b"amqp",
    b"amqps",
    b"ldap",
    b"ldaps",
    b"smtp",
    b"smtps",
    b"imap",
    b"imaps",
    b"pop3",
    b"pop3s",
    b"ftp",
    b"ftps",
    b"sftp",
    b"ssh",
    b"svn+ssh",
    b"mssql",
    b"sqlserver",
    b"oracle",
    b"clickhouse",
    b"cockroachdb",
    b"couchdb",
    b"neo4j",
    b"bolt",
    b"nats",
    b"mqtt",
    b"mqtts",
    b"kafka",
    b"cassandra",
    b"memcached",
    b"influxdb",
    b"elasticsearch",
    b"sentinel",
    b"rsync",
    b"smb",
    b"cifs",
    b"socks5",
    b"socks5h",
    b"webdav",
    b"davs",
    b"git",
];

/// The login scheme ending at `colon` (the `:` of `://`), with `jdbc:` and a
/// SQLAlchemy `+driver` allowed: (scheme start, base scheme).
fn login_scheme(hay: &[u8], colon: usize) -> Option<(usize, &[u8])> {
    let mut s = colon;
    while s > 0 && colon - s < 40 && {
        let c = hay[s - 1];
        c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.' | b':')
    } {
        s -= 1;
    }
    let full = &hay[s..colon];
    let mut start = s;
    let mut base = full;
    if base.len() > 5 && base[..5].eq_ignore_ascii_case(b"jdbc:") {
        base = &base[5..];
    } else if let Some(c) = memchr::memrchr(b':', base) {
        // `foo:postgres://` — only the part after the last ':' is the scheme.
        base = &base[c + 1..];
        start = s + c + 1;
    }
    if base.is_empty() || !base[0].is_ascii_alphabetic() {
        return None;
    }
    let known = |b: &[u8]| LOGIN_SCHEMES.iter().any(|k| k.eq_ignore_ascii_case(b));
    if known(base) {
        return Some((start, base));
    }
    // `postgresql+psycopg2`, `mysql+pymysql`: the dialect before the driver.
    let plus = memchr::memchr(b'+', base)?;
    known(&base[..plus]).then(|| (start, &base[..plus]))
}

/// `SCHEME://USER:PASSWORD@HOST` with a real-looking password, for every scheme
/// that carries a login (connection strings of databases, brokers, directories,
/// mail and file servers, and http(s) for git/pip/npm credentials).
pub(crate) fn url_password(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    // The anchor is `://`.
    let hay = win.hay;
    let Some((at, scheme)) = login_scheme(hay, win.at) else {
        return;
    };
    if !clear_before(hay, at, is_alnum) {
        return;
    }
    let s = win.at + 3;
    let n = run_len(hay, s, 512, is_userinfo);
    if hay.get(s + n) != Some(&b'@')
        || !hay
            .get(s + n + 1)
            .is_some_and(|&c| c.is_ascii_alphanumeric() || c == b'[')
    {
        return;
    }
    let userinfo = &hay[s..s + n];
    let Some(colon) = memchr::memchr(b':', userinfo) else {
        return;
    };
    let (user, pass) = (&userinfo[..colon], &userinfo[colon + 1..]);
    // MongoDB and Redis URIs may have an empty user (`redis://:pass@host`).
    let empty_user_ok = scheme.eq_ignore_ascii_case(b"redis")
        || scheme.eq_ignore_ascii_case(b"rediss")
        || scheme.eq_ignore_ascii_case(b"valkey");
    if (user.is_empty() && !empty_user_ok) || is_placeholder(pass) || pass.len() < 3 {
        return;
    }
    let scheme_text = String::from_utf8_lossy(scheme).to_ascii_lowercase();
    out.push(Hit {
        value: Some(s + colon + 1..s + n),
        detector: DetectorId::UrlPassword,
        start: at,
        end: s + n,
        fingerprint: ctx.fingerprint(&[user, pass]),
        why: format!("password in a {scheme_text} URL"),
    });
}

/// Docker's `"auth": "<base64 user:password>"` and `"identitytoken": "…"`.
pub(crate) fn docker(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let identity = starts_with_at(hay, at, b"\"identitytoken\"");
    let key_len = if identity { 15 } else { 6 };
    let mut v = skip_blanks_nl(hay, at + key_len);
    if hay.get(v) != Some(&b':') {
        return;
    }
    v = skip_blanks_nl(hay, v + 1);
    if hay.get(v) != Some(&b'"') {
        return;
    }
    v += 1;
    if identity {
        let n = run_len(hay, v, 8192, |c| c != b'"' && c != b'\\' && c >= 0x20);
        if n < 16 || hay.get(v + n) != Some(&b'"') {
            return;
        }
        out.push(Hit {
            value: None,
            detector: DetectorId::DockerAuth,
            start: at,
            end: v + n + 1,
            fingerprint: ctx.fingerprint(&[&hay[v..v + n]]),
            why: "container registry identity token (docker config.json)".into(),
        });
        return;
    }
    let n = run_len(hay, v, 2048, |c| is_b64(c) || c == b'=');
    if n < 8 || hay.get(v + n) != Some(&b'"') {
        return;
    }
    let s = &mut *ctx.scratch;
    let ok = crate::b64::decode_into(&hay[v..v + n], &mut s.bin)
        && s.bin
            .iter()
            .all(|&c| (0x20..0x7f).contains(&c) || c >= 0x80)
        && memchr::memchr(b':', &s.bin).is_some_and(|c| c > 0 && !is_placeholder(&s.bin[c + 1..]));
    if ok {
        let fingerprint = ctx.fingerprint(&[&ctx.scratch.bin]);
        out.push(Hit {
            value: None,
            detector: DetectorId::DockerAuth,
            start: at,
            end: v + n + 1,
            fingerprint,
            why: "container registry credentials (docker config.json auth)".into(),
        });
    }
    ctx.scratch.wipe();
}

fn skip_blanks_nl(hay: &[u8], i: usize) -> usize {
    i + run_len(hay, i, 256, |c| c.is_ascii_whitespace())
}

/// `client-key-data: <base64 of a PEM private key>` — the key must validate.
pub(crate) fn kube_key_data(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let mut v = at + b"client-key-data".len();
    v = skip_blanks(hay, v);
    if hay.get(v) == Some(&b'"') {
        v += 1; // JSON kubeconfig
    } else if hay.get(v) == Some(&b':') {
        v = skip_blanks(hay, v + 1);
    }
    if hay.get(v) == Some(&b':') {
        v = skip_blanks(hay, v + 1);
    }
    if matches!(hay.get(v), Some(b'"' | b'\'')) {
        v += 1;
    }
    let n = run_len(hay, v, 64 << 10, |c| is_b64(c) || c == b'=');
    if n < 100 || !clear_at(hay, v + n, is_b64) {
        return;
    }
    let mut decoded = std::mem::take(&mut ctx.scratch.inner);
    let hit = crate::b64::decode_into(&hay[v..v + n], &mut decoded)
        .then(|| find_in(&decoded, 0, 64, b"-----BEGIN "))
        .flatten()
        .and_then(|b| pem::block(&decoded, b, ctx));
    zeroize::Zeroize::zeroize(&mut decoded);
    ctx.scratch.inner = decoded;
    if let Some(key) = hit {
        out.push(Hit {
            value: None,
            detector: DetectorId::KubeconfigCredentials,
            start: at,
            end: v + n,
            fingerprint: key.fingerprint,
            why: format!("kubeconfig client-key-data ({})", key.why),
        });
    }
}

/// The `users:` section of a kubeconfig: every `token:` / `password:` /
/// `id-token:` / `refresh-token:` under a `user:` mapping.
pub(crate) fn kube_users(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    // The anchor is `\nusers:`: a top-level key.
    let (hay, at) = (win.hay, win.at + 1);
    let (_, first_end) = crate::text::line_around(hay, at);
    if !hay[at + 6..first_end]
        .iter()
        .all(|c| c.is_ascii_whitespace())
    {
        return;
    }
    let mut i = first_end + 1;
    let mut saw_user = false;
    let mut found = Vec::new();
    let mut lines = 0;
    while i < hay.len() && lines < 4096 {
        lines += 1;
        let end = memchr::memchr(b'\n', &hay[i..]).map_or(hay.len(), |n| i + n);
        let line = &hay[i..end];
        let first = line.first().copied().unwrap_or(b'\n');
        if !(first == b' ' || first == b'\t' || first == b'-' || first == b'\r' || line.is_empty())
        {
            break; // the next top-level key: end of the section
        }
        let t = skip_blanks(line, 0);
        let mut t = t + if line.get(t) == Some(&b'-') { 1 } else { 0 };
        t = skip_blanks(line, t);
        let body = &line[t..];
        if body.starts_with(b"user:") {
            saw_user = true;
        }
        for key in [
            &b"token:"[..],
            b"password:",
            b"id-token:",
            b"refresh-token:",
        ] {
            if let Some(rest) = body.strip_prefix(key) {
                let mut val = trim_value(rest);
                if let Some(v) = val.strip_prefix(b"\"").and_then(|v| v.strip_suffix(b"\"")) {
                    val = v;
                } else if let Some(v) = val.strip_prefix(b"'").and_then(|v| v.strip_suffix(b"'")) {
                    val = v;
                }
                if !is_placeholder(val) && val.len() >= 4 && !val.starts_with(b"*") {
                    found.push((i + t, end, val));
                }
            }
        }
        i = end + 1;
    }
    if !saw_user {
        return;
    }
    for (s, e, val) in found {
        let e = if e > s && hay[e - 1] == b'\r' {
            e - 1
        } else {
            e
        };
        out.push(Hit {
            value: None,
            detector: DetectorId::KubeconfigCredentials,
            start: s,
            end: e,
            fingerprint: ctx.fingerprint(&[val]),
            why: "kubeconfig user credential (token or password)".into(),
        });
    }
}

fn trim_value(v: &[u8]) -> &[u8] {
    let v = &v[skip_blanks(v, 0)..];
    // Cut a trailing comment and whitespace.
    let v = match memchr::memmem::find(v, b" #") {
        Some(i) => &v[..i],
        None => v,
    };
    let mut e = v.len();
    while e > 0 && v[e - 1].is_ascii_whitespace() {
        e -= 1;
    }
    &v[..e]
}
