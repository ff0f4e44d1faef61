//! Token, cloud-credential and credential-file detectors: positives with exact spans,
//! and decoys (wrong checksums, lengths, neighbours, placeholders).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use std::process::Command;

/// GitHub/npm-style tokens with checksums computed by Python's zlib (an oracle
/// independent of the crate's crc32fast + base62 code).
fn checksummed(prefix: &str, random30: &str) -> String {
    let py = format!(
        "import zlib\nr={random30:?}\nc=zlib.crc32(r.encode())\na='0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz'\ns=''\nfor _ in range(6):\n    s=a[c%62]+s; c//=62\nprint({prefix:?}+r+s)"
    );
    let out = Command::new("python3").arg("-c").arg(py).output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Asserts the findings of `text` are exactly `want` = [(detector, needle)] where the
/// span of each is the first occurrence of its needle.
fn expect(text: &str, want: &[(&str, &str)]) {
    let s = scan(text.as_bytes());
    let mut expected: Vec<(String, u64, u64)> = want
        .iter()
        .map(|(d, needle)| {
            let off = text
                .find(needle)
                .unwrap_or_else(|| panic!("{needle:?} not in text"));
            (d.to_string(), off as u64, needle.len() as u64)
        })
        .collect();
    expected.sort_by_key(|e| (e.1, e.0.clone()));
    assert_eq!(spans(&s), expected, "in {text:?}");
}

const R30: &str = "a1B2c3D4e5F6g7H8i9J0kLmNoPqRsT";

#[test]
fn github_tokens_need_a_valid_checksum() {
    for p in ["ghp_", "gho_", "ghu_", "ghs_", "ghr_"] {
        let t = checksummed(p, R30);
        expect(&format!("GITHUB_TOKEN={t}\n"), &[("github-token", &t)]);
        expect(&format!("{{\"token\":\"{t}\"}}"), &[("github-token", &t)]);
        // One changed checksum character.
        let mut bad = t.clone().into_bytes();
        let last = bad.len() - 1;
        bad[last] = if bad[last] == b'A' { b'B' } else { b'A' };
        expect(
            &format!("GITHUB_TOKEN={}\n", String::from_utf8(bad).unwrap()),
            &[],
        );
        // Too long / glued to other characters.
        expect(&format!("x={t}Z\n"), &[]);
        expect(&format!("x=a{t}\n"), &[]);
    }
    // The documentation's example tokens have no valid checksum.
    expect(
        "ghp_16C7e42F292c6912E7710c838347Ae178B4a ghp_abcdefghijklmnopqrstuvwxyzABCD012345",
        &[],
    );
    let pat = format!(
        "github_pat_{}_{}",
        "11ABCDEFG0123456789abc",
        "x".repeat(20) + &"Y9".repeat(19) + "z"
    );
    expect(&format!("token: {pat}\n"), &[("github-token", &pat)]);
    expect(&format!("token: {}\n", &pat[..pat.len() - 1]), &[]);
}

#[test]
fn npm_tokens_need_a_valid_checksum() {
    let t = checksummed("npm_", R30);
    expect(
        &format!("//registry.npmjs.org/:_authToken={t}\n"),
        &[("npm-token", &t)],
    );
    let bad = format!("npm_{R30}AAAAAA");
    expect(&format!("//registry.npmjs.org/:_authToken={bad}\n"), &[]);
}

#[test]
fn provider_tokens() {
    let gitlab = "glpat-AbCdEfGhIjKlMnOpQrSt";
    let slack_bot = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
    let slack_user = "xoxp-1234567890-1234567890-1234567890123-0123456789abcdef0123456789abcdef";
    let hook = "https://hooks.slack.com/services/T0ABCDEFG/B0ABCDEFG/AbCdEfGhIjKlMnOpQrStUvWx";
    let stripe = "sk_live_51HaBcDeFgHiJkLmNoPqRsTuV";
    let stripe_r = "rk_live_51HaBcDeFgHiJkLmNoPqRsTuV";
    let google = "AIzaSyA1b2C3d4E5f6G7h8I9j0K_LmNoPqRsTuV";
    let pypi = format!(
        "pypi-AgEIcHlwaS5vcmc{}",
        "CJDY2NjY2Y2MtOTg5ZC00ZDM5LWE5MzYtYjk0ZmNjZTE0YzVjAAIqWzMsIjA1OTc2OTUzLTM0ZjEtNGRiNS1hZmZjLWY3ZjBkOTRmNGU3ZSJdAAAGIH"
    );
    let sendgrid = "SG.AbCdEfGhIjKlMnOpQrStUv.AbCdEfGhIjKlMnOpQrStUvWxYz0123456789-_AbCdE";
    let vault = format!("hvs.CAESI{}", "Ab1_".repeat(23));
    let openai = "sk-proj-AbCdEfGhIjKlMnOpQrStUvWxT3BlbkFJAbCdEfGhIjKlMnOpQrStUvWx";
    let openai_legacy = "sk-AbCdEfGhIjKlMnOpQrStT3BlbkFJAbCdEfGhIjKlMnOpQrSt";
    let anthropic = format!("sk-ant-api03-{}AA", "Ab3-_x".repeat(15) + "abc");
    let text = format!(
        "GITLAB={gitlab}\nSLACK={slack_bot}\nUSER={slack_user}\nHOOK={hook}\nSTRIPE={stripe}\nR={stripe_r}\nG={google}\n[pypi]\npassword = {pypi}\nSG={sendgrid}\nVAULT_TOKEN={vault}\nOPENAI={openai}\nOLD={openai_legacy}\nANTHROPIC_API_KEY={anthropic}\n"
    );
    expect(
        &text,
        &[
            ("gitlab-token", gitlab),
            ("slack-token", slack_bot),
            ("slack-token", slack_user),
            ("slack-webhook", hook),
            ("stripe-key", stripe),
            ("stripe-key", stripe_r),
            ("google-api-key", google),
            ("pypi-token", &pypi),
            ("sendgrid-key", sendgrid),
            ("vault-token", &vault),
            ("openai-key", openai),
            ("openai-key", openai_legacy),
            ("anthropic-key", &anthropic),
        ],
    );
}

#[test]
fn token_decoys() {
    expect(
        "glpat-short\nglpat-AbCdEfGhIjKlMnOpQrStU\nxoxb-notatoken\nxoxz-1234567890-AbCdEfGhIjKlMnOpQrStUvWx\n\
         sk_test_51HaBcDeFgHiJkLmNoPqRsTuV\nAIzaShort\nSG.short.token\nhvs.short\n\
         sk-T3BlbkFJ\nsk-ant-api03-short\nhooks.slack.com/services/T0/B0/x\n\
         pypi-AgEIcHlwaS5vcmc\nnpm_install_done\nAKIAIOSFODNN7EXAMPLE\n",
        &[],
    );
}

#[test]
fn aws_pairs_and_lone_ids() {
    let id = "AKIAIOSFODNN7EXAMPLE";
    let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    let creds = format!("[default]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n");
    let span = &creds[creds.find(id).unwrap()..creds.find(secret).unwrap() + secret.len()];
    expect(&creds, &[("aws-access-key", span)]);
    // Secret first (env files, JSON in any order).
    let env = format!("AWS_SECRET_ACCESS_KEY={secret}\nAWS_ACCESS_KEY_ID={id}\n");
    let span = &env[env.find(secret).unwrap()..env.find(id).unwrap() + id.len()];
    expect(&env, &[("aws-access-key", span)]);
    let json = format!(
        "{{\"AccessKeyId\": \"ASIAIOSFODNN7EXAMPLE\", \"SecretAccessKey\": \"{secret}\", \"Token\": \"x\"}}"
    );
    let span = &json[json.find("ASIA").unwrap()..json.find(secret).unwrap() + secret.len()];
    expect(&json, &[("aws-access-key", span)]);
    // An id alone, an id next to a hex digest, an id with a secret far away.
    expect(&format!("arn:aws:iam::123:user {id} created\n"), &[]);
    expect(
        &format!("{id} {}\n", "0123456789abcdef0123456789abcdef01234567"),
        &[],
    );
    expect(&format!("{id}\n{}\n{secret}\n", "#".repeat(2000)), &[]);
    // Wrong id length.
    expect(&format!("AKIAIOSFODNN7EXAMPL {secret}\n"), &[]);
}

#[test]
fn azure_connection_strings_and_sas() {
    let key88 = format!("{}==", "AbCd0123+/xy".repeat(7) + "Ab");
    assert_eq!(key88.len(), 88);
    let conn = format!(
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={key88};EndpointSuffix=core.windows.net"
    );
    expect(
        &format!("STORAGE=\"{conn}\"\n"),
        &[("azure-connection-string", &format!("AccountKey={key88}"))],
    );
    expect(&format!("AccountKey={key88}\n"), &[]); // no account name: not a connection string
    let sb = format!(
        "Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={}=",
        "Ab1+".repeat(10) + "xyz"
    );
    expect(
        &sb,
        &[(
            "azure-connection-string",
            &sb[sb.find("SharedAccessKey=").unwrap()..],
        )],
    );
    let sig = "AbCdEfGhIjKlMnOpQrStUvWxYz0123456789%2Babcdef%3D";
    let url = format!(
        "https://acct.blob.core.windows.net/c/b?sv=2022-11-02&ss=b&srt=o&sp=r&se=2030-01-01T00:00:00Z&spr=https&sig={sig}"
    );
    let q = &url;
    expect(&format!("curl '{url}'\n"), &[("azure-sas-token", q)]);
    expect(&format!("https://x/?a=1&sig={sig}\n"), &[]); // no sv=
    expect("https://x/?sv=2022-11-02&sig=tooshort\n", &[]);
}

#[test]
fn credential_files() {
    let netrc = "machine github.com\n  login octocat\n  password s3cr3t-Pa55\nmachine example.org login a password b4dPass\n";
    expect(
        netrc,
        &[
            (
                "netrc",
                "machine github.com\n  login octocat\n  password s3cr3t-Pa55",
            ),
            ("netrc", "machine example.org login a password b4dPass"),
        ],
    );
    expect(
        "The machine login is broken; password reset required.\nmachine x login y password password\n",
        &[],
    );
    let gc = "https://octocat:ghx_s3cretvalue@github.com\nhttps://user:password@example.com\nhttp://example.com/a:b@c\n";
    expect(gc, &[("url-password", "https://octocat:ghx_s3cretvalue")]);
    let auth = "dXNlcjpzM2NyM3QtcGFzcw=="; // user:s3cr3t-pass
    let docker = format!(
        "{{\n  \"auths\": {{\n    \"registry.example.com\": {{\n      \"auth\": \"{auth}\"\n    }}\n  }},\n  \"identitytoken\": \"eyJhbGciOiJSUzI1NiJ9.refresh\"\n}}\n"
    );
    expect(
        &docker,
        &[
            ("docker-auth", &format!("\"auth\": \"{auth}\"")),
            (
                "docker-auth",
                "\"identitytoken\": \"eyJhbGciOiJSUzI1NiJ9.refresh\"",
            ),
        ],
    );
    // base64 of a non-credential, and an empty auth.
    expect(
        "{\"auth\": \"aGVsbG8gd29ybGQ=\", \"x\": {\"auth\": \"\"}}",
        &[],
    );
    let kube = "apiVersion: v1\nclusters:\n- cluster:\n    server: https://k8s.example:6443\n  name: c\nkind: Config\nusers:\n- name: admin\n  user:\n    token: eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.payload.sig\n- name: basic\n  user:\n    username: admin\n    password: \"Kub3-P4ss\"\npreferences: {}\n";
    expect(
        kube,
        &[
            (
                "kubeconfig-credentials",
                "token: eyJhbGciOiJSUzI1NiIsImtpZCI6IiJ9.payload.sig",
            ),
            ("kubeconfig-credentials", "password: \"Kub3-P4ss\""),
        ],
    );
    // An Ansible-style users: list without user: mappings is no kubeconfig; its
    // plaintext password is still a secret-named assignment. Placeholders are neither.
    expect(
        "users:\n  - name: bob\n    password: hunter22x\n",
        &[("secret-assignment", "password: hunter22x")],
    );
    expect(
        "users:\n- name: a\n  user:\n    token: \"\"\n    password: <redacted>\n",
        &[],
    );
}

#[test]
fn empty_and_tiny_inputs() {
    for data in [
        &b""[..],
        b"\n",
        b"-",
        b"PRIVATE KEY",
        b"-----BEGIN ",
        b"AKIA",
        b"ghp_",
        b"machine",
        b"users:",
        b"sig=",
        b"\"auth\"",
    ] {
        assert!(scan(data).findings.is_empty(), "{data:?}");
    }
}

#[test]
fn random_binary_has_no_findings() {
    for seed in 1..6 {
        let blob = noise(3 << 20, seed);
        assert!(scan(&blob).findings.is_empty());
    }
}

/// Hostile soup: every anchor, fragments of valid secrets, base64, PEM framing and
/// random bytes glued together. No panic, bounded time, and the streamed scan (odd
/// read sizes) equals the in-memory one.
#[test]
fn anchor_soup_streams_like_memory_and_never_panics() {
    use vmscrub_detect::{DetectorSet, Scanner};
    let pieces: &[&[u8]] = &[
        b"PRIVATE KEY",
        b"-----BEGIN ",
        b"-----END ",
        b"-----",
        b"RSA ",
        b"OPENSSH ",
        b"ENCRYPTED ",
        b"PGP PRIVATE KEY BLOCK",
        b"PuTTY-User-Key-File-3: ssh-ed25519\n",
        b"Public-Lines: 2\n",
        b"Private-Lines: 1\n",
        b"Private-MAC: ",
        b"AKIA",
        b"ASIA",
        b"AIza",
        b"T3BlbkFJ",
        b"SG.",
        b"Key=",
        b"AccountKey=",
        b"AccountName=",
        b"&sig=",
        b"?sv=2020-01-01",
        b"\"auth\": \"",
        b"\"identitytoken\"",
        b"service_account",
        b"\"type\": \"",
        b"\"private_key\": \"",
        b"https://",
        b"http://a:b@",
        b"\nusers:\n",
        b"  user:\n",
        b"    token: ",
        b"ghp_",
        b"github_pat_",
        b"glpat-",
        b"xoxb-1-",
        b"sk_live_",
        b"npm_",
        b"pypi-AgEIcHlwaS5vcmc",
        b"hvs.",
        b"sk-ant-api03-",
        b"machine ",
        b" password ",
        b"client-key-data: ",
        b"hooks.slack.com/services/T",
        b"MIIEvQIBADANBgkqhkiG9w0BAQEFAASC",
        b"b3BlbnNzaC1rZXktdjEAAAAA",
        b"\\n",
        b"\r\n",
        b"\n",
        b"=",
        b"==",
        b"AAAA",
        b"\"",
        b":",
        b" ",
    ];
    let set = DetectorSet::with_defaults().unwrap();
    let mut scanner = Scanner::new();
    let mut seed = 0x1234_5678_9abc_def1u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..6 {
        let mut data = Vec::new();
        while data.len() < (3 << 20) / 2 + round * 100_000 {
            let r = next();
            if r % 5 == 0 {
                data.extend_from_slice(&noise((r % 97) as usize, r));
            } else if r % 5 == 1 {
                let b64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
                data.extend((0..r % 300).map(|i| b64[((r >> 8) as usize + i as usize * 7) % 64]));
            } else {
                data.extend_from_slice(pieces[(r % pieces.len() as u64) as usize]);
            }
        }
        let whole = set.scan_bytes(&mut scanner, &data);
        let streamed = set
            .scan_reader(
                &mut scanner,
                Choppy {
                    data: &data,
                    pos: 0,
                    step: round,
                },
            )
            .unwrap();
        assert_eq!(streamed, whole, "round {round}");
        for f in &whole.findings {
            assert!(f.offset + f.len <= data.len() as u64);
        }
    }
}

/// Text syntaxes (assignments, URLs with a password, netrc) are read in text
/// streams only: a NUL byte in a stream's head marks it binary and skips them,
/// while keys and provider tokens are still found in binaries.
#[test]
fn text_rules_skip_binary_streams_but_tokens_do_not() {
    let assignment = "DB_PASSWORD=Xk9mP2qL7vR4wZ\n";
    let url = "url = postgres://app:Xk9mP2qL7vR4wZ@db:5432/app\n";
    let token = checksummed("ghp_", R30);
    let text = format!("{assignment}{url}token: {token}\n");
    let detectors = |data: &[u8]| -> Vec<String> {
        let mut d: Vec<String> = spans(&scan(data)).into_iter().map(|s| s.0).collect();
        d.sort();
        d
    };
    assert_eq!(
        detectors(text.as_bytes()),
        ["github-token", "secret-assignment", "url-password"]
    );
    let mut binary = b"\x7fELF\x02\x01\x01\0\0\0".to_vec();
    binary.extend_from_slice(text.as_bytes());
    assert_eq!(detectors(&binary), ["github-token"]);
    // A NUL after the probed head does not make a text stream binary.
    let mut late = text.clone().into_bytes();
    late.extend(std::iter::repeat_n(b'x', 9000));
    late.push(0);
    assert_eq!(
        detectors(&late),
        ["github-token", "secret-assignment", "url-password"]
    );
}

/// Provider tokens are searched only in blocks where a run of token characters
/// starts (the engine's gate, 4 KiB blocks): a token at every offset around a block
/// boundary and around a refill boundary of a streamed scan is still found, in
/// memory and through a reader that returns a few bytes at a time.
#[test]
fn tokens_across_gate_blocks_and_refills() {
    use vmscrub_detect::{CHUNK, DetectorSet, Scanner};
    let t = checksummed("ghp_", R30);
    let set = DetectorSet::with_defaults().unwrap();
    let mut scanner = Scanner::new();
    // Log-like filler without long runs, so only the token's block is searched.
    let filler: Vec<u8> = b"Jan  1 00:00:00 host sshd[1]: session opened\n"
        .iter()
        .copied()
        .cycle()
        .take(CHUNK + 8192)
        .collect();
    // Binary filler (a NUL in the head: the text-only group is skipped).
    let mut s = 0x2545_f491_4f6c_dd1du64;
    let random: Vec<u8> = (0..CHUNK + 8192)
        .map(|i| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            if i == 0 { 0 } else { (s >> 24) as u8 }
        })
        .collect();
    let mut offsets: Vec<usize> = (4096 - 45..4096 + 3).collect();
    offsets.extend(CHUNK - 45..CHUNK + 3);
    for (filler, at) in offsets
        .iter()
        .map(|&at| (&filler, at))
        .chain([4096 - 40, 4096 - 1, 4096, 8190].map(|at| (&random, at)))
    {
        let mut data = filler.clone();
        data[at - 1] = b' ';
        data[at..at + t.len()].copy_from_slice(t.as_bytes());
        data[at + t.len()] = b'\n';
        let mem = set.scan_bytes(&mut scanner, &data);
        let want = vec![("github-token".to_string(), at as u64, t.len() as u64)];
        assert_eq!(spans(&mem), want, "token at {at}, in memory");
        let streamed = set
            .scan_reader(&mut scanner, Trickle(&data[..], 7919))
            .unwrap();
        assert_eq!(spans(&streamed), want, "token at {at}, streamed");
    }
}

/// A reader that returns at most `n` bytes per read.
struct Trickle<'a>(&'a [u8], usize);

impl std::io::Read for Trickle<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.len().min(self.1).min(buf.len());
        buf[..n].copy_from_slice(&self.0[..n]);
        self.0 = &self.0[n..];
        Ok(n)
    }
}

/// Slack app-level tokens (gitleaks `slack-app-token`) and Twilio credentials
/// (gitleaks `twilio-api-key`; TruffleHog `twilio`: an account SID counts only with
/// an auth token beside it), with decoys of each.
#[test]
fn slack_app_and_twilio() {
    let xapp = format!("xapp-1-A0123ABCDEF-1234567890123-{}", "0a1b2c3d".repeat(8));
    let sk = "SK0123456789abcdef0123456789abcdef";
    let sid = "AC0123456789abcdef0123456789abcdef";
    let auth = "9f8e7d6c5b4a39281706f5e4d3c2b1a0";
    let env = format!(
        "SLACK_APP_TOKEN={xapp}\nTWILIO_API_KEY={sk}\nTWILIO_ACCOUNT_SID={sid}\nTWILIO_AUTH_TOKEN={auth}\n"
    );
    expect(
        &env,
        &[
            ("slack-token", &xapp),
            ("twilio-key", sk),
            ("twilio-key", auth),
        ],
    );
    // Code that names Twilio once, the SID and token on later lines.
    let js = format!(
        "const twilio = require('twilio');\nconst client = twilio(\n  '{sid}',\n  '{auth}'\n);\n"
    );
    expect(&js, &[("twilio-key", auth)]);
    // Decoys: a SID alone; SK/AC shapes without the keyword; a token-shaped hex next
    // to the keyword but no SID; placeholders; xapp- with a short or upper-case secret.
    expect(&format!("TWILIO_ACCOUNT_SID={sid}\n"), &[]);
    expect(
        &format!("API_SID={sk}\nACCOUNT={sid}\nTOKEN_HASH={auth}\n"),
        &[],
    );
    expect(&format!("# twilio build id\nchecksum {auth}\n"), &[]);
    expect(
        &format!(
            "TWILIO_ACCOUNT_SID={sid}\nTWILIO_AUTH_TOKEN=00000000000000000000000000000000\n\
             TWILIO_API_KEY=SKxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
        ),
        &[],
    );
    expect(
        &format!(
            "xapp-1-A0123ABCDEF-1234567890123-0a1b2c3d\nxapp-1-A0123ABCDEF-1234567890123-{}\nxapp-your-app-token\n",
            "0A1B2C3D".repeat(8)
        ),
        &[],
    );
}
