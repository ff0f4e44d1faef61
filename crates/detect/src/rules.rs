//! The prefilter table: every literal anchor, and which validator runs when it is
//! seen. One Aho-Corasick automaton is built over the anchors of the enabled rules.

use crate::id::DetectorId;
use crate::window::{Ctx, Hit, Window};
use crate::{assign, cloud, containers, creds, jwt, keys, prefixed, tokens, twilio};

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
    SlackApp,
    SlackWebhook,
    Stripe,
    GoogleApiKey,
    Npm,
    Pypi,
    Sendgrid,
    Vault,
    Openai,
    Anthropic,
    Twilio,
    Jwt,
    Prefixed,
    Terraform,
    Assign,
    GpgAgent,
    PemBase64,
}

/// (anchor, rule, prefilter group). Anchors are case-sensitive literals chosen to be
/// rare in ordinary text and binaries, so most bytes never leave the SIMD prefilter.
/// Some are cut to start at a rarer byte (`://`, `Key=`, `_account`, `k_live_`) and
/// their validators look back for the rest.
///
/// Anchors are split in groups, each its own automaton: measured on real text
/// (/usr/include, /usr/share/doc), one automaton over all ~30 anchors ran at
/// 0.8 GB/s — its SIMD fingerprints alias on lowercase ASCII — while each half runs
/// at ~4 GB/s, so two passes beat one. Group 2 ([`TEXT_GROUP`]) holds the rules that
/// read text syntaxes and is skipped on binary streams. Group 1 ([`GATED_GROUP`])
/// holds the provider tokens: every one of their matches starts with 16 token
/// characters in a row, so that group searches only the blocks where such a run
/// starts (gate.rs), and most bytes never reach its large automaton. Group 0 holds
/// what is searched everywhere: long, rare anchors, and those whose matches need not
/// start with a long run (`(private-key`, a webhook URL's `/`, `glc_`'s `+/` body).
/// Each group's shortest anchor is 3 bytes: Teddy's 4-byte fingerprints measured
/// slower (2.3 GB/s against 6 GB/s on random bytes).
pub(crate) const ANCHORS: &[(&[u8], Rule, u8)] = &[
    // Group 0, searched everywhere. Within a group the order decides Teddy's buckets
    // (a pattern's index modulo 8 picks the bucket of its 3-byte fingerprint); this
    // order was searched for the fewest fingerprint hits on log text and C headers
    // (0.07 % and 0.06 % of positions): keep it when adding anchors, append new ones.
    (b"_account", Rule::Gcp, 0),
    (b"PuTTY-User-Key-File-", Rule::Putty, 0),
    (b"\"auth\"", Rule::Docker, 0),
    (b"11:private-key(", Rule::GpgAgent, 0),
    (b"glc_", Rule::Prefixed, 0),
    (b"?sig=", Rule::AzureSas, 0),
    (b"Key=", Rule::AzureConnection, 0),
    (b"(private-key", Rule::GpgAgent, 0),
    (b"LS0tLS1CRUdJTi", Rule::PemBase64, 0),
    (b"PRIVATE KEY", Rule::Pem, 0),
    (b"\"identitytoken\"", Rule::Docker, 0),
    (b"hooks.slack.com/", Rule::SlackWebhook, 0),
    (b"SG.", Rule::Sendgrid, 0),
    (b"&sig=", Rule::AzureSas, 0),
    // Group 1, provider tokens (their rules in tokens.rs, cloud.rs, jwt.rs and the
    // prefixed.rs table), searched only where 16 token characters start (gate.rs). Fat
    // Teddy, 16 buckets: this order was searched as for groups 0 and 2 (fingerprint
    // hits on C headers 3.5 % -> 0.5 % of positions); append new anchors at the end.
    (b"eyJ", Rule::Jwt, 1),
    (b"pypi-AgE", Rule::Pypi, 1),
    (b"GR1348941", Rule::Prefixed, 1),
    (b"HRKU-AA", Rule::Prefixed, 1),
    (b"pscale_pw_", Rule::Prefixed, 1),
    (b"gho_", Rule::Github, 1),
    (b"ASIA", Rule::Aws, 1),
    (b"dp.pt.", Rule::Prefixed, 1),
    (b"dt0c01.", Rule::Prefixed, 1),
    (b"AGE-SECRET-KEY-1", Rule::Prefixed, 1),
    (b"ghs_", Rule::Github, 1),
    (b"pul-", Rule::Prefixed, 1),
    (b"xapp-", Rule::SlackApp, 1),
    (b"ghu_", Rule::Github, 1),
    (b"npm_", Rule::Npm, 1),
    (b"ATATT3", Rule::Prefixed, 1),
    (b"AIza", Rule::GoogleApiKey, 1),
    (b"xox", Rule::Slack, 1),
    (b"sk-ant-", Rule::Anthropic, 1),
    (b"glrt-", Rule::Prefixed, 1),
    (b"protected-private-key", Rule::GpgAgent, 1),
    (b".atlasv1.", Rule::Terraform, 1),
    (b"AKIA", Rule::Aws, 1),
    (b"hf_", Rule::Prefixed, 1),
    (b"doo_v1_", Rule::Prefixed, 1),
    (b"pscale_tkn_", Rule::Prefixed, 1),
    (b"T3BlbkFJ", Rule::Openai, 1),
    (b"glimt-", Rule::Prefixed, 1),
    (b"shpat_", Rule::Prefixed, 1),
    (b"shppa_", Rule::Prefixed, 1),
    (b"shpss_", Rule::Prefixed, 1),
    (b"k_live_", Rule::Stripe, 1),
    (b"dop_v1_", Rule::Prefixed, 1),
    (b"ghp_", Rule::Github, 1),
    (b"github_pat_", Rule::Github, 1),
    (b"glsa_", Rule::Prefixed, 1),
    (b"dckr_pat_", Rule::Prefixed, 1),
    (b"NRAK-", Rule::Prefixed, 1),
    (b"dapi", Rule::Prefixed, 1),
    (b"glagent-", Rule::Prefixed, 1),
    (b"dor_v1_", Rule::Prefixed, 1),
    (b"api_org_", Rule::Prefixed, 1),
    (b"hvs.", Rule::Vault, 1),
    (b"glft-", Rule::Prefixed, 1),
    (b"sntryu_", Rule::Prefixed, 1),
    (b"PMAK-", Rule::Prefixed, 1),
    (b"sq0atp-", Rule::Prefixed, 1),
    (b"sq0csp-", Rule::Prefixed, 1),
    (b"lin_api_", Rule::Prefixed, 1),
    (b"glpat-", Rule::Gitlab, 1),
    (b"shpca_", Rule::Prefixed, 1),
    (b"hvb.", Rule::Vault, 1),
    (b"gldt-", Rule::Prefixed, 1),
    (b"glptt-", Rule::Prefixed, 1),
    (b"glsoat-", Rule::Prefixed, 1),
    (b"ghr_", Rule::Github, 1),
    (b"pscale_oauth_", Rule::Prefixed, 1),
    (b"glcbt-", Rule::Prefixed, 1),
    // Group 2, text only, in the same searched order (fingerprint hits on log text
    // fell from 0.4 % to under 0.01 % of positions). Secret-named keys (assign.rs): a
    // fragment of each secret word, in the spellings people use (snake, SCREAMING,
    // camel), cut so one anchor covers `password`/`Password`/`DB_PASSWORD`; then URLs
    // (`://`), netrc (`machine`) and kubeconfig keys.
    (b"OKEN", Rule::Assign, 2),
    (b"psk", Rule::Assign, 2),
    (b"oken", Rule::Assign, 2),
    (b"ECRET", Rule::Assign, 2),
    (b"RIVATE_KEY", Rule::Assign, 2),
    (b"ccess_key", Rule::Assign, 2),
    (b"pikey", Rule::Assign, 2),
    (b"assword", Rule::Assign, 2),
    (b"piKey", Rule::Assign, 2),
    (b"asswd", Rule::Assign, 2),
    (b"ecret", Rule::Assign, 2),
    (b"CCESS_KEY", Rule::Assign, 2),
    (b"PIKEY", Rule::Assign, 2),
    (b"client-key-data", Rule::KubeKeyData, 2),
    (b"pi_key", Rule::Assign, 2),
    (b"resharedKey", Rule::Assign, 2),
    (b"://", Rule::UrlPassword, 2),
    (b"rivateKey", Rule::Assign, 2),
    (b"ccessKey", Rule::Assign, 2),
    (b"PI_KEY", Rule::Assign, 2),
    (b"ASSPHRASE", Rule::Assign, 2),
    (b"ASSWORD", Rule::Assign, 2),
    (b"pi-key", Rule::Assign, 2),
    (b"\nusers:", Rule::KubeUsers, 2),
    (b"assphrase", Rule::Assign, 2),
    (b"rivate_key", Rule::Assign, 2),
    (b"machine", Rule::Netrc, 2),
    (b"ASSWD", Rule::Assign, 2),
    // The Twilio keyword (twilio.rs), in the three spellings of env files and code.
    (b"twilio", Rule::Twilio, 2),
    (b"Twilio", Rule::Twilio, 2),
    (b"TWILIO", Rule::Twilio, 2),
];

/// How many prefilter groups `ANCHORS` uses.
pub(crate) const GROUPS: u8 = 3;

/// The group of rules that only read text syntaxes (assignments, URLs, netrc and
/// kubeconfig keys): streams with a NUL byte in their head skip it. Binaries are
/// still searched for keys and provider tokens by the other groups.
pub(crate) const TEXT_GROUP: u8 = 2;

/// The group searched only where a run of token characters starts (gate.rs).
pub(crate) const GATED_GROUP: u8 = 1;

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
            Rule::Slack | Rule::SlackApp => &[D::SlackToken],
            Rule::SlackWebhook => &[D::SlackWebhook],
            Rule::Stripe => &[D::StripeKey],
            Rule::GoogleApiKey => &[D::GoogleApiKey],
            Rule::Npm => &[D::NpmToken],
            Rule::Pypi => &[D::PypiToken],
            Rule::Sendgrid => &[D::SendgridKey],
            Rule::Vault => &[D::VaultToken],
            Rule::Openai => &[D::OpenaiKey],
            Rule::Anthropic => &[D::AnthropicKey],
            Rule::Twilio => &[D::TwilioKey],
            Rule::Jwt => &[D::Jwt],
            Rule::Prefixed => &[
                D::DockerhubToken,
                D::DigitaloceanToken,
                D::HerokuKey,
                D::ShopifyToken,
                D::AtlassianToken,
                D::HuggingfaceToken,
                D::AgeSecretKey,
                D::GrafanaToken,
                D::LinearKey,
                D::DopplerToken,
                D::PlanetscaleToken,
                D::PulumiToken,
                D::DatabricksToken,
                D::NewrelicKey,
                D::SentryToken,
                D::PostmanKey,
                D::SquareToken,
                D::DynatraceToken,
                D::GitlabToken,
            ],
            Rule::Terraform => &[D::TerraformToken],
            Rule::Assign => &[D::SecretAssignment],
            Rule::GpgAgent => &[D::GpgAgentKey],
            Rule::PemBase64 => &[D::PemPrivateKey, D::OpensshPrivateKey, D::PgpPrivateKey],
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
            Rule::SlackApp => tokens::slack_app(win, ctx, out),
            Rule::SlackWebhook => tokens::slack_webhook(win, ctx, out),
            Rule::Stripe => tokens::stripe(win, ctx, out),
            Rule::GoogleApiKey => tokens::google_api_key(win, ctx, out),
            Rule::Npm => tokens::npm(win, ctx, out),
            Rule::Pypi => tokens::pypi(win, ctx, out),
            Rule::Sendgrid => tokens::sendgrid(win, ctx, out),
            Rule::Vault => tokens::vault(win, ctx, out),
            Rule::Openai => tokens::openai(win, ctx, out),
            Rule::Anthropic => tokens::anthropic(win, ctx, out),
            Rule::Twilio => twilio::validate(win, ctx, out),
            Rule::Jwt => jwt::validate(win, ctx, out),
            Rule::Prefixed => prefixed::validate(win, ctx, out),
            Rule::Terraform => prefixed::terraform(win, ctx, out),
            Rule::Assign => assign::validate(win, ctx, out),
            Rule::GpgAgent => containers::gpg_agent(win, ctx, out),
            Rule::PemBase64 => keys::pem::base64_wrapped(win, ctx, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::is_run_byte;

    /// The gated group is searched only where a run of token characters starts, so
    /// each of its anchors must be made of them and, for the table-driven shapes,
    /// every match must start with a full run (gate.rs). The other token rules' own
    /// lengths are in their validators: each requires at least 16 run bytes from the
    /// anchor (`AKIA`+16, `AIza`+35, `eyJ` header `.` payload `.` signature, …), and
    /// their positive tests run through the gate.
    #[test]
    fn gated_anchors_start_runs() {
        for &(anchor, rule, group) in ANCHORS {
            if group != GATED_GROUP {
                continue;
            }
            let text = String::from_utf8_lossy(anchor);
            assert!(anchor.iter().all(|&c| is_run_byte(c)), "{text}");
            if matches!(rule, Rule::Prefixed) {
                let shape = crate::prefixed::SHAPES
                    .iter()
                    .find(|s| s.prefix == anchor)
                    .expect("a shape per prefixed anchor");
                assert!(shape.starts_with_run(), "{text} cannot be gated");
            }
        }
    }

    /// Every prefixed shape has an anchor, gated or not.
    #[test]
    fn every_shape_is_anchored() {
        for s in crate::prefixed::SHAPES {
            assert!(
                ANCHORS
                    .iter()
                    .any(|&(a, r, _)| a == s.prefix && matches!(r, Rule::Prefixed)),
                "{}",
                String::from_utf8_lossy(s.prefix)
            );
        }
    }
}
