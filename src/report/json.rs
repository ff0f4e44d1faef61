//! The JSON report: one document, `schema_version` 1, described in
//! `docs/scan-json.md`. Fields are only ever added within a schema version.

use serde::Serialize;

use super::ReportInput;
use crate::guest::{FsIdentity, Mount, OsRelease, Unreadable};
use crate::scan::{Finding, OperationStatus, PlannedAction, ScanStats, Warning};

pub const SCHEMA_VERSION: u32 = 1;

#[derive(Serialize)]
pub struct Document<'a> {
    pub schema_version: u32,
    pub tool: Tool,
    pub image: &'a str,
    pub guest: GuestInfo<'a>,
    pub selection: &'a [String],
    pub operations: &'a [OperationStatus],
    pub findings: &'a [Finding],
    pub plan: Vec<PlannedAction>,
    pub warnings: &'a [Warning],
    /// Content hits on files whose content their package recorded (not findings).
    pub vendor: &'a [crate::pkgtrust::VendorNote],
    pub summary: Summary,
    pub stats: &'a ScanStats,
}

#[derive(Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Serialize)]
pub struct GuestInfo<'a> {
    pub os: Option<&'a OsRelease>,
    pub root: Option<usize>,
    pub filesystems: Vec<FsInfo<'a>>,
    pub mounts: &'a [Mount],
    pub unreadable: &'a [Unreadable],
    pub notes: &'a [String],
}

#[derive(Serialize)]
pub struct FsInfo<'a> {
    pub index: usize,
    #[serde(flatten)]
    pub identity: &'a FsIdentity,
    #[serde(serialize_with = "ser_opt_path")]
    pub mount_point: Option<&'a [u8]>,
}

fn ser_opt_path<S: serde::Serializer>(p: &Option<&[u8]>, s: S) -> Result<S::Ok, S::Error> {
    match p {
        Some(p) => super::ser_path(p, s),
        None => s.serialize_none(),
    }
}

#[derive(Serialize)]
pub struct Summary {
    pub findings: usize,
    pub content_findings: usize,
    pub operations_with_findings: usize,
    pub planned_actions: usize,
    pub bytes: u64,
    pub warnings: usize,
    pub vendor_notes: usize,
}

pub fn document<'a>(input: &'a ReportInput<'a>) -> Document<'a> {
    let g = input.guest;
    let r = input.result;
    let plan = r.plan();
    Document {
        schema_version: SCHEMA_VERSION,
        tool: Tool {
            name: "vmscrub",
            version: env!("CARGO_PKG_VERSION"),
        },
        image: input.image,
        guest: GuestInfo {
            os: g.os.as_ref(),
            root: g.root,
            filesystems: g
                .filesystems
                .iter()
                .enumerate()
                .map(|(i, f)| FsInfo {
                    index: i,
                    identity: &f.identity,
                    mount_point: g.mount_point(i),
                })
                .collect(),
            mounts: &g.mounts,
            unreadable: &g.unreadable,
            notes: &g.notes,
        },
        selection: input.selection,
        operations: &r.operations,
        findings: &r.findings,
        summary: Summary {
            findings: r.findings.len(),
            content_findings: r.findings.iter().filter(|f| f.is_content()).count(),
            operations_with_findings: r.operations.iter().filter(|o| o.findings > 0).count(),
            planned_actions: plan.len(),
            bytes: r.operations.iter().map(|o| o.bytes).sum(),
            warnings: r.warnings.len(),
            vendor_notes: r.vendor.len(),
        },
        plan,
        warnings: &r.warnings,
        vendor: &r.vendor,
        stats: &r.stats,
    }
}

pub fn render(input: &ReportInput<'_>) -> String {
    let mut s = serde_json::to_string_pretty(&document(input))
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot serialize report: {e}\"}}"));
    s.push('\n');
    s
}
