//! SARIF 2.1.0: one rule per selected operation, one result per finding.
//!
//! Locations: the artifact URI is the finding's path relative to a base id.
//! `GUEST` is the guest's root as the OS mounts it,
//! `vmscrub-image:///<image path>/`; a filesystem with no mount point (no OS,
//! not in fstab) gets its own base `FS<index>` =
//! `vmscrub-image:///<image path>/fs<index>/`. Paths are percent-encoded
//! bytes, so non-UTF-8 names survive. Content hits add a byte region
//! (offset, length) — never the bytes.
//!
//! Levels by operation kind: content detectors → `error` (a secret is in the
//! image); removals and rewrites → `warning`; report-only → `note`.
//! Warnings of the scan are `toolExecutionNotifications`.
//!
//! Vendor notes (content hits on files whose content their package recorded)
//! are results of `kind` `informational`, `level` `none`, with an external
//! suppression naming the package: visible to an auditor, never a failure.

use serde_json::{Value, json};

use super::ReportInput;
use crate::ops::ActionKind;
use crate::scan::{Finding, Why};

pub const SARIF_SCHEMA: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// Percent-encodes bytes for a URI path (keeps unreserved characters and `/`).
pub fn pct(bytes: &[u8]) -> String {
    let mut s = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            s.push(b as char);
        } else {
            s.push_str(&format!("%{b:02X}"));
        }
    }
    s
}

fn level(f: &Finding) -> &'static str {
    if f.is_content() {
        "error"
    } else if f.action == ActionKind::Report {
        "note"
    } else {
        "warning"
    }
}

fn op_level(content: bool, actions: &[ActionKind]) -> &'static str {
    if content {
        "error"
    } else if actions.iter().all(|a| *a == ActionKind::Report) {
        "note"
    } else {
        "warning"
    }
}

pub fn render(input: &ReportInput<'_>) -> String {
    let g = input.guest;
    let r = input.result;
    let image = input.image.trim_end_matches('/');
    let image_pct = pct(image.trim_start_matches('/').as_bytes());
    let rules: Vec<Value> = r
        .operations
        .iter()
        .map(|o| {
            json!({
                "id": o.name,
                "shortDescription": { "text": o.heading },
                "defaultConfiguration": { "level": op_level(o.content, &o.actions), "enabled": true },
                "properties": {
                    "actions": o.actions,
                    "default": o.default,
                    "applies": o.applies,
                },
            })
        })
        .collect();
    let rule_index = |name: &str| r.operations.iter().position(|o| o.name == name);
    let mut bases = serde_json::Map::new();
    bases.insert(
        "GUEST".into(),
        json!({ "uri": format!("vmscrub-image:///{image_pct}/") }),
    );
    let results: Vec<Value> = r
        .findings
        .iter()
        .map(|f| {
            let mounted = g.mount_point(f.filesystem).is_some();
            let base = if mounted {
                "GUEST".to_string()
            } else {
                let id = format!("FS{}", f.filesystem);
                bases.entry(id.clone()).or_insert_with(|| {
                    json!({ "uri": format!("vmscrub-image:///{image_pct}/fs{}/", f.filesystem) })
                });
                id
            };
            let rel = f.path.strip_prefix(b"/").unwrap_or(&f.path);
            let mut physical = json!({
                "artifactLocation": { "uri": pct(rel), "uriBaseId": base },
            });
            let mut message = format!(
                "{} {} ({} bytes)",
                f.action,
                crate::fs::display_path(&f.path),
                f.tree.map_or(f.size, |t| t.bytes)
            );
            let mut hits_json = vec![];
            match &f.why {
                Why::Pattern { pattern } => message.push_str(&format!(": matches {pattern}")),
                Why::Content { hits, total_hits } => {
                    if let Some(h) = hits.first() {
                        physical["region"] = json!({ "byteOffset": h.offset, "byteLength": h.length });
                        message.push_str(&format!(": {} ({} hits)", h.why, total_hits));
                    }
                    hits_json = hits
                        .iter()
                        .map(|h| json!({"detector": h.detector, "offset": h.offset, "length": h.length, "hash": h.hash}))
                        .collect();
                }
            }
            if let Some(n) = &f.note {
                message.push_str(&format!("; {n}"));
            }
            let mut res = json!({
                "ruleId": f.operation,
                "level": level(f),
                "message": { "text": message },
                "locations": [ { "physicalLocation": physical } ],
                "properties": {
                    "action": f.action,
                    "filesystem": f.filesystem,
                    "inode": f.node,
                    "kind": f.kind,
                    "size": f.size,
                    "uid": f.uid,
                    "gid": f.gid,
                    "mode": format!("{:04o}", f.mode),
                    "mtime": f.mtime.sec,
                    "skipped": f.skipped,
                },
            });
            if let Some(i) = rule_index(&f.operation) {
                res["ruleIndex"] = json!(i);
            }
            if !hits_json.is_empty() {
                res["properties"]["hits"] = Value::Array(hits_json);
                if let Why::Content { hits, .. } = &f.why
                    && let Some(h) = hits.first()
                {
                    res["partialFingerprints"] = json!({ "secretHash/v1": h.hash });
                }
            }
            res
        })
        .collect();
    let mut results = results;
    results.extend(
        r.vendor
            .iter()
            .map(|v| vendor_result(v, g, &mut bases, &image_pct, &rule_index)),
    );
    let notifications: Vec<Value> = r
        .warnings
        .iter()
        .map(|w| {
            json!({
                "level": "warning",
                "message": { "text": w.message },
                "properties": { "kind": w.kind, "operation": w.operation },
            })
        })
        .collect();
    let doc = json!({
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [ {
            "tool": { "driver": {
                "name": "vmscrub",
                "version": env!("CARGO_PKG_VERSION"),
                "rules": rules,
            } },
            "originalUriBaseIds": Value::Object(bases),
            "invocations": [ {
                "executionSuccessful": true,
                "toolExecutionNotifications": notifications,
            } ],
            "results": results,
        } ],
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn vendor_result(
    v: &crate::pkgtrust::VendorNote,
    g: &crate::guest::Guest,
    bases: &mut serde_json::Map<String, Value>,
    image_pct: &str,
    rule_index: &dyn Fn(&str) -> Option<usize>,
) -> Value {
    let base = if g.mount_point(v.filesystem).is_some() {
        "GUEST".to_string()
    } else {
        let id = format!("FS{}", v.filesystem);
        bases.entry(id.clone()).or_insert_with(
            || json!({ "uri": format!("vmscrub-image:///{image_pct}/fs{}/", v.filesystem) }),
        );
        id
    };
    let rel = v.path.strip_prefix(b"/").unwrap_or(&v.path);
    let mut physical = json!({ "artifactLocation": { "uri": pct(rel), "uriBaseId": base } });
    let op = v.hits.first().map_or("", |h| h.operation.as_str());
    if let Some(h) = v.hits.first() {
        physical["region"] = json!({ "byteOffset": h.offset, "byteLength": h.length });
    }
    let justification = format!(
        "content matches the {} digest {} recorded for package {} {}",
        v.algorithm, v.manager, v.package, v.version
    );
    let mut res = json!({
        "ruleId": op,
        "kind": "informational",
        "level": "none",
        "message": { "text": format!(
            "vendor {}: {} ({} hits), left in place: {justification}",
            crate::fs::display_path(&v.path),
            v.hits.first().map_or("", |h| h.why.as_str()),
            v.hits.len()
        ) },
        "locations": [ { "physicalLocation": physical } ],
        "suppressions": [ { "kind": "external", "justification": justification } ],
        "properties": {
            "vendor": {
                "manager": v.manager,
                "package": v.package,
                "version": v.version,
                "algorithm": v.algorithm,
            },
            "filesystem": v.filesystem,
            "inode": v.node,
            "size": v.size,
            "hits": v.hits.iter().map(|h| json!({"detector": h.detector, "offset": h.offset, "length": h.length, "hash": h.hash})).collect::<Vec<_>>(),
        },
    });
    if let Some(i) = rule_index(op) {
        res["ruleIndex"] = json!(i);
    }
    res
}
