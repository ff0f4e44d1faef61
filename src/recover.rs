//! `vmscrub recover`: turn a recovery archive — age or v1 format, told apart by its
//! first bytes — back into a plain tar (`-o`), a directory (`--extract`), or a
//! listing (`--list`). Nothing partial is ever left:
//! `-o` writes to a temporary name beside the output and renames it only after the
//! final chunk authenticated; `--extract` stages inside the target (see
//! `vmscrub_recovery::extract`); `--list` prints only after the whole archive
//! authenticated. Any failure is exit code 3.

use std::fs::File;
use std::io::{BufReader, BufWriter, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{ArgGroup, Args};
use vmscrub_recovery::error::display_path;
use vmscrub_recovery::extract::{ExtractOptions, extract};
use vmscrub_recovery::{Entry, EntryKind, Identity, Manifest, TarReader, decrypt_to, open};
use zeroize::Zeroizing;

use crate::exit;

/// Decrypt a recovery archive made by `vmscrub scrub --recovery`.
///
/// Reads both archive formats: age (age-encryption.org/v1, the default since it
/// serves ed25519 keys; the standard tools open it too: `age -d -i KEY FILE | zstd
/// -d | tar -xpf - -C DIR`) and vmscrub's v1 format. Exactly one of -o, --extract
/// or --list. A wrong key, a key that is not a recipient, or a truncated or
/// tampered archive is an error (exit code 3) and leaves nothing behind.
#[derive(Args, Debug)]
#[command(group(ArgGroup::new("mode").required(true).args(["output", "extract", "list"])))]
pub struct RecoverArgs {
    /// The recovery archive (age or v1 format).
    pub archive: PathBuf,

    /// Private key of one of the archive's recipients: an OpenSSH key (`BEGIN
    /// OPENSSH PRIVATE KEY`, e.g. ~/.ssh/id_ed25519 or ~/.ssh/id_rsa,
    /// passphrase-protected or not), an age identity file (`AGE-SECRET-KEY-1…`, from
    /// age-keygen), or an RSA key as PEM PKCS#1 (`BEGIN RSA PRIVATE KEY`), PKCS#8
    /// (`BEGIN PRIVATE KEY`) or encrypted PKCS#8 (`BEGIN ENCRYPTED PRIVATE KEY`).
    /// v1 archives open only with RSA keys. Passphrases are asked on the terminal.
    #[arg(long, short = 'i', value_name = "KEY")]
    pub identity: PathBuf,

    /// Read the key's passphrase from this file (first line) instead of the
    /// terminal; for scripts. The VMSCRUB_PASSPHRASE environment variable is the
    /// other non-interactive way.
    #[arg(long, value_name = "FILE")]
    pub passphrase_file: Option<PathBuf>,

    /// Write the plain tar here. Restore it on the parent instance with
    /// `sudo tar --xattrs --xattrs-include='*' --acls -xpf OUT -C /`. Written under a
    /// temporary name and renamed once the whole archive authenticated.
    #[arg(long, short = 'o', value_name = "OUT.tar")]
    pub output: Option<PathBuf>,

    /// Extract into this directory (created if missing). Entries are staged inside
    /// it and moved into place only after the whole archive authenticated. Absolute
    /// paths, `..` and writing through symlinks are refused. Modes, mtimes, xattrs
    /// and ACLs are restored where permitted; owners and device nodes only as root.
    #[arg(long, value_name = "DIR")]
    pub extract: Option<PathBuf>,

    /// Print the manifest (image, vmscrub version, operations, time) and every entry
    /// (type, mode, owner, size, mtime, operation, path).
    #[arg(long)]
    pub list: bool,

    /// Let -o replace an existing file, and --extract replace existing files (never
    /// directories) in the target.
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: &RecoverArgs) -> Result<i32> {
    let identity = load_identity(&args.identity, args.passphrase_file.as_deref())?;
    let archive = || -> Result<BufReader<File>> {
        let f = File::open(&args.archive)
            .with_context(|| format!("cannot open {}", args.archive.display()))?;
        Ok(BufReader::with_capacity(256 * 1024, f))
    };
    let ctx = || format!("cannot recover {}", args.archive.display());
    if let Some(out) = &args.output {
        write_tar(archive()?, &identity, out, args.force).with_context(ctx)?;
        eprintln!("vmscrub: wrote {} (archive authenticated)", out.display());
    } else if let Some(dir) = &args.extract {
        let report = extract(
            archive()?,
            &identity,
            dir,
            &ExtractOptions { force: args.force },
        )
        .with_context(ctx)?;
        for w in &report.warnings {
            eprintln!("vmscrub: warning: {w}");
        }
        eprintln!(
            "vmscrub: extracted {} entries into {} (archive authenticated)",
            report.entries,
            dir.display()
        );
    } else {
        let listing = list(archive()?, &identity).with_context(ctx)?;
        std::io::stdout().write_all(listing.as_bytes())?;
    }
    Ok(exit::OK)
}

fn load_identity(path: &Path, pass_file: Option<&Path>) -> Result<Identity> {
    let data = Zeroizing::new(
        std::fs::read(path).with_context(|| format!("cannot read key {}", path.display()))?,
    );
    let mut ask = || -> vmscrub_recovery::Result<Zeroizing<String>> {
        let fail = |m: String| vmscrub_recovery::Error::Identity(m);
        if let Some(f) = pass_file {
            let raw = Zeroizing::new(
                std::fs::read(f).map_err(|e| fail(format!("cannot read {}: {e}", f.display())))?,
            );
            let text = std::str::from_utf8(&raw)
                .map_err(|_| fail("the passphrase file is not UTF-8".into()))?;
            let line = text.lines().next().unwrap_or("");
            return Ok(Zeroizing::new(line.to_string()));
        }
        if let Ok(p) = std::env::var("VMSCRUB_PASSPHRASE") {
            return Ok(Zeroizing::new(p));
        }
        // Scripts and CI jobs have no terminal: name the ways that work there.
        let no_tty = |why: String| {
            fail(format!(
                "{} is passphrase-protected and {why}; without a terminal, give the passphrase \
                 with --passphrase-file FILE or the VMSCRUB_PASSPHRASE environment variable",
                path.display()
            ))
        };
        if !std::io::stdin().is_terminal() && !Path::new("/dev/tty").exists() {
            return Err(no_tty("there is no terminal to ask on".into()));
        }
        rpassword::prompt_password(format!("Passphrase for {}: ", path.display()))
            .map(Zeroizing::new)
            .map_err(|e| no_tty(format!("the terminal could not be read ({e})")))
    };
    Identity::parse(&data, &mut ask).with_context(|| format!("cannot use key {}", path.display()))
}

fn write_tar(input: impl Read, identity: &Identity, out: &Path, force: bool) -> Result<()> {
    if !force && std::fs::symlink_metadata(out).is_ok() {
        bail!(
            "{} already exists; use --force to replace it",
            out.display()
        );
    }
    let tmp = crate::output::temp_beside(
        out,
        tempfile::Builder::new()
            .prefix(".vmscrub-recover-")
            .suffix(".tmp"),
    )?;
    let mut w = BufWriter::with_capacity(256 * 1024, tmp.as_file());
    decrypt_to(input, identity, &mut w)?;
    w.flush()?;
    drop(w);
    tmp.as_file().sync_all()?;
    if force {
        tmp.persist(out).map_err(|e| e.error)?;
    } else {
        tmp.persist_noclobber(out).map_err(|e| e.error)?;
    }
    Ok(())
}

fn list(input: impl Read, identity: &Identity) -> Result<String> {
    let (envelope, payload) = open(input, identity)?;
    let mut tar = TarReader::new(payload);
    let mut entries = Vec::new();
    while let Some(e) = tar.next_entry()? {
        entries.push(e);
    }
    let manifest = tar.finish()?;
    let head = format!(
        "format: {}\nrecipients: {}\nopened with: {}\n",
        envelope.format().name(),
        envelope.recipient_list(),
        identity.fingerprint_string()
    );
    Ok(render(&head, &entries, manifest.as_ref()))
}

fn render(head: &str, entries: &[Entry], manifest: Option<&Manifest>) -> String {
    let mut s = head.to_string();
    if let Some(m) = manifest {
        s.push_str(&format!(
            "image: {} ({} bytes{})\n",
            m.image.name,
            m.image.size,
            m.image
                .sha256
                .as_deref()
                .map(|h| format!(", sha256 {h}"))
                .unwrap_or_default()
        ));
        s.push_str(&format!(
            "created: {} by vmscrub {}\n",
            m.created, m.vmscrub_version
        ));
        s.push_str(&format!("operations: {}\n", m.operations.join(", ")));
    } else {
        s.push_str("manifest: none\n");
    }
    s.push_str(&format!("entries: {}\n", entries.len()));
    for e in entries {
        let path = display_path(&e.path);
        let rec = manifest.and_then(|m| m.files.iter().find(|f| f.path == path));
        let (t, extra) = match &e.kind {
            EntryKind::File => ('-', String::new()),
            EntryKind::Sparse { segments } => {
                ('-', format!(" (sparse, {} data segments)", segments.len()))
            }
            EntryKind::Dir => ('d', String::new()),
            EntryKind::Symlink { target } => ('l', format!(" -> {}", display_path(target))),
            EntryKind::HardLink { target } => ('h', format!(" link to {}", display_path(target))),
            EntryKind::Device { kind, major, minor } => (
                if *kind == vmscrub_recovery::DeviceKind::Char {
                    'c'
                } else {
                    'b'
                },
                format!(" ({major},{minor})"),
            ),
            EntryKind::Fifo => ('p', String::new()),
        };
        let owner = |name: &Option<Vec<u8>>, id: u64| match name {
            Some(n) => format!("{}({id})", display_path(n)),
            None => id.to_string(),
        };
        s.push_str(&format!(
            "{t}{} {}/{} {:>12} {} {:<14} {path}{extra}\n",
            mode_string(e.meta.mode),
            owner(&e.meta.uname, e.meta.uid),
            owner(&e.meta.gname, e.meta.gid),
            e.size,
            format_mtime(e.meta.mtime.secs, e.meta.mtime.nanos),
            rec.map(|r| r.operation.as_str()).unwrap_or("-"),
        ));
        if let Some(h) = rec.and_then(|r| r.sha256.as_deref()) {
            s.push_str(&format!("    sha256 {h}\n"));
        }
    }
    s
}

fn mode_string(mode: u32) -> String {
    let mut s = String::with_capacity(9);
    for (i, c) in ["r", "w", "x", "r", "w", "x", "r", "w", "x"]
        .iter()
        .enumerate()
    {
        let bit = 1 << (8 - i);
        let set = mode & bit != 0;
        let special = match i {
            2 => mode & 0o4000 != 0,
            5 => mode & 0o2000 != 0,
            8 => mode & 0o1000 != 0,
            _ => false,
        };
        let ch = match (special, set, i) {
            (true, true, 8) => "t",
            (true, false, 8) => "T",
            (true, true, _) => "s",
            (true, false, _) => "S",
            (false, true, _) => c,
            (false, false, _) => "-",
        };
        s.push_str(ch);
    }
    s
}

fn format_mtime(secs: i64, nanos: u32) -> String {
    let base = vmscrub_recovery::manifest::rfc3339(if secs >= 0 {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs as u64)
    } else {
        std::time::UNIX_EPOCH - std::time::Duration::from_secs(secs.unsigned_abs())
    });
    format!("{}.{nanos:09}Z", base.trim_end_matches('Z'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_render_like_ls() {
        assert_eq!(mode_string(0o4755), "rwsr-xr-x");
        assert_eq!(mode_string(0o1777), "rwxrwxrwt");
        assert_eq!(mode_string(0o2640), "rw-r-S---");
        assert_eq!(format_mtime(1, 5), "1970-01-01T00:00:01.000000005Z");
    }
}
