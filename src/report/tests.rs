use super::*;
use crate::ops::{Catalogue, Selection};
use crate::scan::tests::{SECRET, debian_guest, run};

fn input_text(format: Format) -> String {
    let cat = Catalogue::builtin().unwrap();
    let g = debian_guest();
    let r = run(&g, &["defaults"], &[], &cat);
    let sel = Selection::defaults(&cat);
    render(
        format,
        &ReportInput {
            image: "golden.qcow2",
            guest: &g,
            result: &r,
            selection: sel.names(),
        },
    )
}

#[test]
fn json_matches_the_snapshot() {
    let text = input_text(Format::Json);
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["guest"]["root"], 1);
    assert_eq!(v["guest"]["filesystems"][0]["mount_point"], "/boot/efi");
    assert_eq!(
        v["guest"]["filesystems"][2]["mount_point"],
        serde_json::Value::Null
    );
    let f = v["findings"].as_array().unwrap();
    let hk = f
        .iter()
        .find(|f| f["operation"] == "private-keys" && f["path"] == "/etc/ssh/ssh_host_ed25519_key")
        .unwrap();
    assert_eq!(hk["why"]["type"], "content");
    assert_eq!(hk["why"]["hits"][0]["length"], 60);
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/scan-debian.json");
    // The version changes with releases; the snapshot pins everything else.
    let normalized = text.replace(env!("CARGO_PKG_VERSION"), "VERSION");
    if std::env::var_os("VMSCRUB_BLESS").is_some() {
        std::fs::write(path, &normalized).unwrap();
    }
    let snap = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        snap == normalized,
        "JSON report differs from tests/data/scan-debian.json (VMSCRUB_BLESS=1 to update after review)"
    );
}

#[test]
fn sarif_validates_against_the_2_1_0_schema() {
    let text = input_text(Format::Sarif);
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let schema: serde_json::Value = serde_json::from_str(include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/sarif-schema-2.1.0.json"
    )))
    .unwrap();
    let v = jsonschema::validator_for(&schema).unwrap();
    let errors: Vec<String> = v
        .iter_errors(&doc)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    // The validator really checks: a broken document fails.
    let mut bad = doc.clone();
    bad["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(!v.is_valid(&bad));
    let run = &doc["runs"][0];
    let results = run["results"].as_array().unwrap();
    let pk = results
        .iter()
        .find(|r| {
            r["ruleId"] == "private-keys"
                && r["locations"][0]["physicalLocation"]["artifactLocation"]["uriBaseId"] == "FS2"
        })
        .unwrap();
    assert_eq!(pk["level"], "error");
    assert_eq!(
        pk["locations"][0]["physicalLocation"]["artifactLocation"]["uri"],
        "backup/id_rsa"
    );
    assert_eq!(
        pk["locations"][0]["physicalLocation"]["region"]["byteLength"],
        60
    );
    let weird = results
        .iter()
        .find(|r| {
            r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"]
                == "srv/%5Bw%5D%2A/.lesshst"
        })
        .unwrap();
    assert_eq!(weird["level"], "warning");
    assert!(
        results
            .iter()
            .any(|r| r["ruleId"] == "rsyslog-forwarding" && r["level"] == "note")
    );
    assert_eq!(
        run["originalUriBaseIds"]["GUEST"]["uri"],
        "vmscrub-image:///golden.qcow2/"
    );
}

#[test]
fn human_report_groups_by_operation() {
    let text = input_text(Format::Human);
    assert!(
        text.contains("\nssh-hostkeys — Remove the SSH host keys (2 findings"),
        "{text}"
    );
    assert!(
        text.contains("  delete      /root/.bash_history  3 B  0:0 0600  2023-11-14 22:13:20Z  matches /root/.bash_history"),
        "{text}"
    );
    assert!(
        text.contains("[partition 3 (data-other, ext4)] /backup/id_rsa"),
        "{text}"
    );
    assert!(text.contains("Summary: 36 findings"), "{text}");
    assert!(
        text.contains("! [ssh-hostkeys] SSH host keys are removed"),
        "{text}"
    );
}

#[test]
fn no_report_contains_secret_bytes() {
    for f in [Format::Human, Format::Json, Format::Sarif] {
        let text = input_text(f);
        for secret in [
            &b"S3CR3T-MATERIAL-DO-NOT-PRINT"[..],
            b"tok_abcdefgh",
            &SECRET[..40],
        ] {
            assert!(
                !text.as_bytes().windows(secret.len()).any(|w| w == secret),
                "{f:?} report leaks {}",
                String::from_utf8_lossy(secret)
            );
        }
    }
}

#[test]
fn hostile_names_cannot_drive_the_terminal() {
    assert_eq!(
        safe_path(b"/tmp/\x1b[31mred\n\xff"),
        "/tmp/\\x1b[31mred\\x0a\\xff"
    );
    assert_eq!(utc(0), "1970-01-01 00:00:00Z");
    assert_eq!(utc(951_782_400), "2000-02-29 00:00:00Z");
    assert_eq!(utc(-1), "1969-12-31 23:59:59Z");
    assert_eq!(human_size(1536), "1.5 KiB");
    assert_eq!(hex_if_not_utf8(b"a\xff").as_deref(), Some("61ff"));
    assert_eq!(hex_if_not_utf8(b"a"), None);
}

#[test]
fn fail_on_policy() {
    use crate::report::policy::FailOn;
    let cat = Catalogue::builtin().unwrap();
    let g = debian_guest();
    let r = run(&g, &["defaults"], &[], &cat);
    let p = |s: &str| FailOn::parse(&cat, &[s.to_string()]).unwrap();
    assert!(FailOn::parse(&cat, &[]).unwrap().evaluate(&r).is_none());
    assert!(p("finding").evaluate(&r).is_some());
    assert!(p("secret").evaluate(&r).unwrap().starts_with("5 findings"));
    assert!(
        p("machine-id")
            .evaluate(&r)
            .unwrap()
            .starts_with("2 findings")
    );
    assert!(p("abrt-data").evaluate(&r).is_none());
    assert!(p("warning").evaluate(&r).is_some());
    let e = FailOn::parse(&cat, &["secrets,machine-idd".to_string()]).unwrap_err();
    assert!(e.contains("`machine-id`"), "{e}");
}
