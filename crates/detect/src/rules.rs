//! The prefilter table: every literal anchor, and which validator runs when it is
//! seen. One Aho-Corasick automaton is built over the anchors of the enabled rules.

use crate::id::DetectorId;
use crate::window::{Ctx, Hit, Window};
use crate::{cloud, creds, keys, tokens};

#[derive(Clone, Copy, Debug)]
pub(crate) enum Rule {
    Pem,
    Putty,
    Aws,
    Gcp,
    AzureConnection,
    AzureSas,
    Netrc,
    UrlPassword,
    Docker,
    KubeKeyData,
    KubeUsers,
    Github,
    Gitlab,
    Slack,
    SlackWebhook,
    Stripe,
    GoogleApiKey,
    Npm,
    Pypi,
    Sendgrid,
    Vault,
    Openai,
    Anthropic,
}

/// (anchor, rule, prefilter group). Anchors are case-sensitive literals chosen to be
/// rare in ordinary text and binaries, so most bytes never leave the SIMD prefilter.
/// Some are cut to start at a rarer byte (`://`, `Key=`, `_account`, `k_live_`) and
/// their validators look back for the rest.
///
/// Anchors are split in two groups, each its own automaton: measured on real text
/// (/usr/include, /usr/share/doc), one automaton over all ~30 anchors ran at
/// 0.8 GB/s — its SIMD fingerprints alias on lowercase ASCII — while each half runs
/// at ~4 GB/s, so two passes beat one.
pub(crate) const ANCHORS: &[(&[u8], Rule, u8)] = &[
    (b"PRIVATE KEY", Rule::Pem, 0),
    (b"PuTTY-User-Key-File-", Rule::Putty, 0),
    (b"AKIA", Rule::Aws, 0),
    (b"ASIA", Rule::Aws, 0),
    (b"AIza", Rule::GoogleApiKey, 0),
    (b"T3BlbkFJ", Rule::Openai, 0),
    (b"SG.", Rule::Sendgrid, 0),
    (b"Key=", Rule::AzureConnection, 0),
    (b"&sig=", Rule::AzureSas, 0),
    (b"?sig=", Rule::AzureSas, 0),
    (b"\"auth\"", Rule::Docker, 0),
    (b"\"identitytoken\"", Rule::Docker, 0),
    (b"_account", Rule::Gcp, 0),
    (b"://", Rule::UrlPassword, 0),
    (b"\nusers:", Rule::KubeUsers, 0),
    (b"ghp_", Rule::Github, 1),
    (b"gho_", Rule::Github, 1),
    (b"ghu_", Rule::Github, 1),
    (b"ghs_", Rule::Github, 1),
    (b"ghr_", Rule::Github, 1),
    (b"github_pat_", Rule::Github, 1),
    (b"glpat-", Rule::Gitlab, 1),
    (b"xox", Rule::Slack, 1),
    (b"k_live_", Rule::Stripe, 1),
    (b"npm_", Rule::Npm, 1),
    (b"pypi-AgE", Rule::Pypi, 1),
    (b"hvs.", Rule::Vault, 1),
    (b"hvb.", Rule::Vault, 1),
    (b"sk-ant-", Rule::Anthropic, 1),
    (b"machine", Rule::Netrc, 1),
    (b"client-key-data", Rule::KubeKeyData, 1),
    (b"hooks.slack.com/", Rule::SlackWebhook, 1),
];

/// How many prefilter groups `ANCHORS` uses.
pub(crate) const GROUPS: u8 = 2;

impl Rule {
    /// The detectors this rule can report (a rule is skipped when all are disabled).
    pub(crate) fn detectors(self) -> &'static [DetectorId] {
        use DetectorId as D;
        match self {
            Rule::Pem => &[
                D::PemPrivateKey,
                D::OpensshPrivateKey,
                D::PgpPrivateKey,
                D::Ssh2PrivateKey,
            ],
            Rule::Putty => &[D::PuttyPrivateKey],
            Rule::Aws => &[D::AwsAccessKey],
            Rule::Gcp => &[D::GcpServiceAccount],
            Rule::AzureConnection => &[D::AzureConnectionString],
            Rule::AzureSas => &[D::AzureSasToken],
            Rule::Netrc => &[D::Netrc],
            Rule::UrlPassword => &[D::UrlPassword],
            Rule::Docker => &[D::DockerAuth],
            Rule::KubeKeyData | Rule::KubeUsers => &[D::KubeconfigCredentials],
            Rule::Github => &[D::GithubToken],
            Rule::Gitlab => &[D::GitlabToken],
            Rule::Slack => &[D::SlackToken],
            Rule::SlackWebhook => &[D::SlackWebhook],
            Rule::Stripe => &[D::StripeKey],
            Rule::GoogleApiKey => &[D::GoogleApiKey],
            Rule::Npm => &[D::NpmToken],
            Rule::Pypi => &[D::PypiToken],
            Rule::Sendgrid => &[D::SendgridKey],
            Rule::Vault => &[D::VaultToken],
            Rule::Openai => &[D::OpenaiKey],
            Rule::Anthropic => &[D::AnthropicKey],
        }
    }

    pub(crate) fn validate(self, win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
        match self {
            Rule::Pem => keys::pem::validate(win, ctx, out),
            Rule::Putty => keys::ppk::validate(win, ctx, out),
            Rule::Aws => cloud::aws(win, ctx, out),
            Rule::Gcp => cloud::gcp(win, ctx, out),
            Rule::AzureConnection => cloud::azure_connection_string(win, ctx, out),
            Rule::AzureSas => cloud::azure_sas(win, ctx, out),
            Rule::Netrc => creds::netrc(win, ctx, out),
            Rule::UrlPassword => creds::url_password(win, ctx, out),
            Rule::Docker => creds::docker(win, ctx, out),
            Rule::KubeKeyData => creds::kube_key_data(win, ctx, out),
            Rule::KubeUsers => creds::kube_users(win, ctx, out),
            Rule::Github => tokens::github(win, ctx, out),
            Rule::Gitlab => tokens::gitlab(win, ctx, out),
            Rule::Slack => tokens::slack(win, ctx, out),
            Rule::SlackWebhook => tokens::slack_webhook(win, ctx, out),
            Rule::Stripe => tokens::stripe(win, ctx, out),
            Rule::GoogleApiKey => tokens::google_api_key(win, ctx, out),
            Rule::Npm => tokens::npm(win, ctx, out),
            Rule::Pypi => tokens::pypi(win, ctx, out),
            Rule::Sendgrid => tokens::sendgrid(win, ctx, out),
            Rule::Vault => tokens::vault(win, ctx, out),
            Rule::Openai => tokens::openai(win, ctx, out),
            Rule::Anthropic => tokens::anthropic(win, ctx, out),
        }
    }
}
