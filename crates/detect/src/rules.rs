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

/// (anchor, rule). Anchors are case-sensitive literals chosen to be rare in ordinary
/// text and binaries, so most bytes never leave the SIMD prefilter.
pub(crate) const ANCHORS: &[(&[u8], Rule)] = &[
    (b"PRIVATE KEY", Rule::Pem),
    (b"PuTTY-User-Key-File-", Rule::Putty),
    (b"AKIA", Rule::Aws),
    (b"ASIA", Rule::Aws),
    (b"service_account", Rule::Gcp),
    (b"AccountKey=", Rule::AzureConnection),
    (b"SharedAccessKey=", Rule::AzureConnection),
    (b"sig=", Rule::AzureSas),
    (b"machine", Rule::Netrc),
    (b"https://", Rule::UrlPassword),
    (b"http://", Rule::UrlPassword),
    (b"\"auth\"", Rule::Docker),
    (b"\"identitytoken\"", Rule::Docker),
    (b"client-key-data", Rule::KubeKeyData),
    (b"users:", Rule::KubeUsers),
    (b"ghp_", Rule::Github),
    (b"gho_", Rule::Github),
    (b"ghu_", Rule::Github),
    (b"ghs_", Rule::Github),
    (b"ghr_", Rule::Github),
    (b"github_pat_", Rule::Github),
    (b"glpat-", Rule::Gitlab),
    (b"xox", Rule::Slack),
    (b"hooks.slack.com/", Rule::SlackWebhook),
    (b"sk_live_", Rule::Stripe),
    (b"rk_live_", Rule::Stripe),
    (b"AIza", Rule::GoogleApiKey),
    (b"npm_", Rule::Npm),
    (b"pypi-AgE", Rule::Pypi),
    (b"SG.", Rule::Sendgrid),
    (b"hvs.", Rule::Vault),
    (b"hvb.", Rule::Vault),
    (b"T3BlbkFJ", Rule::Openai),
    (b"sk-ant-", Rule::Anthropic),
];

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
