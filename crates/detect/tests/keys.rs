//! Private keys generated at test time by real tools, in every wrapping they are
//! found in, and the decoys that must never be findings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use vmscrub_detect::{BUFFER, CHUNK, Config, DetectorSet, LOOKAHEAD, Scanner};

#[test]
fn every_generated_key_is_found_exactly_once_in_every_wrapping() {
    let keys = generate_all();
    for k in keys.iter() {
        let (first, last) = first_last_lines(&k.text);
        let text = &k.text;
        let crlf: Vec<u8> = String::from_utf8(text.clone())
            .unwrap()
            .replace('\n', "\r\n")
            .into_bytes();
        let indented: Vec<u8> = String::from_utf8(text.clone())
            .unwrap()
            .lines()
            .map(|l| format!("    {l}\n"))
            .collect::<String>()
            .into_bytes();
        let mut leading = b"\n\n\n  \n".to_vec();
        leading.extend_from_slice(text);
        let mut json = b"{\n  \"name\": \"deploy\",\n  \"key\": ".to_vec();
        json.extend_from_slice(&json_escape(text));
        json.extend_from_slice(b"\n}\n");
        let mut yaml = b"tls:\n  key: |\n".to_vec();
        yaml.extend_from_slice(&indented);
        let wrappings: Vec<(&str, Vec<u8>)> = vec![
            ("plain", text.clone()),
            ("crlf", crlf),
            ("indented", indented),
            ("leading blank lines", leading),
            ("json string", json),
            ("yaml block", yaml),
            (
                "no trailing newline",
                text.strip_suffix(b"\n").unwrap_or(text).to_vec(),
            ),
        ];
        for (wrap, data) in &wrappings {
            let scan = scan(data);
            let (off, len) = expected_span(data, &first, &last);
            assert_eq!(
                spans(&scan),
                vec![(k.detector.to_string(), off, len)],
                "{} ({wrap}): {:?}",
                k.name,
                scan.findings
            );
            assert!(
                scan.findings[0].why.contains(k.why),
                "{} ({wrap}): why = {:?}",
                k.name,
                scan.findings[0].why
            );
        }
        // The fingerprint is of the key, not of its wrapping.
        let fps: Vec<_> = wrappings
            .iter()
            .map(|(_, d)| scan(d).findings[0].fingerprint)
            .collect();
        assert!(
            fps.windows(2).all(|w| w[0] == w[1]),
            "{}: fingerprint differs between wrappings",
            k.name
        );
    }
}

#[test]
fn keys_across_refill_boundaries_in_a_binary_blob() {
    let keys = generate_all();
    let set = DetectorSet::with_defaults().unwrap();
    let mut scanner = Scanner::new();
    // Offsets around the first refill line (BUFFER - LOOKAHEAD), the end of the first
    // buffer (BUFFER) and a later refill line; plus the very start and very end.
    let boundaries = [
        BUFFER - LOOKAHEAD - 11,
        BUFFER - LOOKAHEAD - 3,
        BUFFER - 7,
        BUFFER - LOOKAHEAD + CHUNK - 1,
        BUFFER + CHUNK + 5,
    ];
    for (n, k) in keys.iter().enumerate() {
        let (first, last) = first_last_lines(&k.text);
        // Each key at two of the boundaries (every boundary sees every format family).
        for (b, &at) in boundaries
            .iter()
            .enumerate()
            .filter(|(b, _)| (n + b) % 5 < 2)
        {
            let mut blob = noise(at, n as u64 * 31 + b as u64 + 1);
            blob.extend_from_slice(&k.text);
            blob.extend_from_slice(&noise(4099, 99));
            let want = vec![(
                k.detector.to_string(),
                at as u64,
                expected_span(&k.text, &first, &last).1,
            )];
            let whole = set.scan_bytes(&mut scanner, &blob);
            assert_eq!(spans(&whole), want, "{} at {at} (in memory)", k.name);
            let streamed = set
                .scan_reader(
                    &mut scanner,
                    Choppy {
                        data: &blob,
                        pos: 0,
                        step: b,
                    },
                )
                .unwrap();
            assert_eq!(streamed, whole, "{} at {at}: streamed scan differs", k.name);
            let mut s = set.stream(&mut scanner);
            for piece in blob.chunks(65_537 + b * 1000) {
                s.push(piece);
            }
            assert_eq!(s.finish(), whole, "{} at {at}: pushed scan differs", k.name);
        }
        // At the very start and the very end of a large stream.
        let mut blob = k.text.clone();
        blob.extend_from_slice(&noise(CHUNK + 4099, 7));
        blob.extend_from_slice(&k.text);
        let len = expected_span(&k.text, &first, &last).1;
        let end_off = (blob.len() - k.text.len()) as u64;
        let streamed = set.scan_reader(&mut scanner, &blob[..]).unwrap();
        assert_eq!(
            spans(&streamed),
            vec![
                (k.detector.to_string(), 0, len),
                (k.detector.to_string(), end_off, len)
            ],
            "{} at start and end",
            k.name
        );
    }
}

#[test]
fn public_keys_certificates_and_parameters_are_not_findings() {
    for (name, data) in generate_decoys() {
        assert!(!data.is_empty(), "{name}");
        assert_eq!(spans(&scan(&data)), vec![], "{name}");
    }
}

#[test]
fn quoted_headers_and_truncated_keys_are_not_findings() {
    let keys = generate_all();
    let readme = b"# Setup\n\nYour key file starts with\n\n    -----BEGIN RSA PRIVATE KEY-----\n    ...\n    -----END RSA PRIVATE KEY-----\n\nand `-----BEGIN OPENSSH PRIVATE KEY-----` for new keys.\n-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7\n-----END PRIVATE KEY-----\n-----BEGIN EC PRIVATE KEY-----\n<your key here>\n-----END EC PRIVATE KEY-----\nPuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\n";
    assert_eq!(spans(&scan(readme)), vec![]);
    for k in keys.iter() {
        let lines: Vec<&[u8]> = k.text.split(|&c| c == b'\n').collect();
        // The first half of the file, without its END line.
        let head = lines[..lines.len() / 2].join(&b'\n');
        assert_eq!(spans(&scan(&head)), vec![], "{}: head only", k.name);
        // First and last lines kept, half the body cut: the structure no longer parses.
        if lines.len() > 8 {
            let mut cut: Vec<&[u8]> = lines[..2].to_vec();
            cut.extend_from_slice(&lines[lines.len() / 2..]);
            let cut = cut.join(&b'\n');
            assert_eq!(spans(&scan(&cut)), vec![], "{}: middle cut out", k.name);
        }
        // A wrong END label.
        let s = String::from_utf8(k.text.clone()).unwrap();
        if let Some(i) = s.rfind("-----END ") {
            let wrong = format!("{}-----END CERTIFICATE-----\n", &s[..i]);
            assert_eq!(
                spans(&scan(wrong.as_bytes())),
                vec![],
                "{}: END label mismatch",
                k.name
            );
        }
    }
}

#[test]
fn a_flipped_body_byte_never_panics_and_mostly_rejects() {
    // Hostile input: corrupt every key at many positions; the scan must not panic
    // and must return a well-formed result (a flip inside an integer is still a key).
    for k in generate_all().iter() {
        for i in (0..k.text.len()).step_by(7) {
            let mut d = k.text.clone();
            d[i] ^= 0x5a;
            let s = scan(&d);
            assert!(s.findings.len() <= 1, "{}", k.name);
            let mut t = k.text.clone();
            t.truncate(i);
            assert!(scan(&t).findings.len() <= 1, "{}", k.name);
        }
    }
}

#[test]
fn disabled_and_allowed_keys_are_not_reported() {
    let keys = generate_all();
    let k = keys.iter().find(|k| k.name == "ssh-ed25519").unwrap();
    let fp = scan(&k.text).findings[0].fingerprint;
    let allowed = DetectorSet::new(Config::new().allow(fp)).unwrap();
    let s = allowed.scan_bytes(&mut Scanner::new(), &k.text);
    assert_eq!((s.findings.len(), s.allowed), (0, 1));
    let off =
        DetectorSet::new(Config::new().disable_operation(vmscrub_detect::Operation::PrivateKeys))
            .unwrap();
    assert!(
        off.scan_bytes(&mut Scanner::new(), &k.text)
            .findings
            .is_empty()
    );
    let only_pem_off =
        DetectorSet::new(Config::new().disable(vmscrub_detect::DetectorId::OpensshPrivateKey))
            .unwrap();
    assert!(
        only_pem_off
            .scan_bytes(&mut Scanner::new(), &k.text)
            .findings
            .is_empty()
    );
    // Another key is still found with the allow-list in place.
    let other = keys.iter().find(|k| k.name == "ssh-rsa").unwrap();
    assert_eq!(
        allowed
            .scan_bytes(&mut Scanner::new(), &other.text)
            .findings
            .len(),
        1
    );
}

#[test]
fn findings_never_print_the_secret() {
    for k in generate_all().iter() {
        let s = scan(&k.text);
        let shown = format!("{:?} {}", s, s.findings[0]);
        // No 16-byte run of the key body appears in what we print.
        let body: Vec<u8> = k
            .text
            .iter()
            .copied()
            .filter(|c| c.is_ascii_alphanumeric())
            .collect();
        for w in body.chunks(16).filter(|w| w.len() == 16).skip(3).take(20) {
            assert!(find(shown.as_bytes(), w).is_none(), "{}: {shown}", k.name);
        }
    }
}

#[test]
fn gcp_service_account_and_kubeconfig_client_key() {
    let keys = generate_all();
    let k = keys
        .iter()
        .find(|k| k.name == "openssl-genpkey-rsa")
        .unwrap();
    let esc = json_escape(&k.text);
    let esc = std::str::from_utf8(&esc).unwrap();
    let json = format!(
        "{{\n  \"type\": \"service_account\",\n  \"project_id\": \"demo\",\n  \"private_key_id\": \"0123abcd\",\n  \"private_key\": {esc},\n  \"client_email\": \"svc@demo.iam.gserviceaccount.com\"\n}}\n"
    );
    let (first, last) = first_last_lines(&k.text);
    let (koff, klen) = expected_span(json.as_bytes(), &first, &last);
    let gcp_start = json.find("type").unwrap() as u64;
    assert_eq!(
        spans(&scan(json.as_bytes())),
        vec![
            (
                "gcp-service-account".to_string(),
                gcp_start,
                koff + klen - gcp_start
            ),
            ("pem-private-key".to_string(), koff, klen),
        ]
    );
    // "type": "service_account" without a private key is not a credential.
    let no_key = json.replace("\"private_key\"", "\"public_note\"");
    assert_eq!(
        spans(&scan(no_key.as_bytes())),
        vec![("pem-private-key".to_string(), koff, klen)]
    );

    // kubeconfig: client-key-data is base64 of the PEM.
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(&k.text);
    let kube = format!(
        "apiVersion: v1\nkind: Config\nusers:\n- name: admin\n  user:\n    client-certificate-data: {cert}\n    client-key-data: {b64}\n",
        cert = base64::engine::general_purpose::STANDARD
            .encode(b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
    );
    let at = kube.find("client-key-data").unwrap() as u64;
    assert_eq!(
        spans(&scan(kube.as_bytes())),
        vec![(
            "kubeconfig-credentials".to_string(),
            at,
            kube.trim_end().len() as u64 - at
        )]
    );
    // The same base64 with a byte of the key changed into garbage: not a key.
    let broken = kube.replace(&b64[200..210], "AAAAAAAAAA");
    assert_eq!(spans(&scan(broken.as_bytes())), vec![]);
}
