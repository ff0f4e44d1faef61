//! Provider tokens that are a fixed prefix and a body of known alphabet and length,
//! from gitleaks' default rules (`config/gitleaks.toml`, rule id in each entry) and
//! TruffleHog's detectors. One table, one validator: the body must have exactly the
//! allowed length and alphabet and no token character may touch either end.

use crate::id::DetectorId;
use crate::text::{clear_at, clear_before, is_alnum, is_b64url, run_len, starts_with_at};
use crate::window::{Ctx, Hit, Window};

fn lower_hex(c: u8) -> bool {
    c.is_ascii_digit() || (b'a'..=b'f').contains(&c)
}
fn any_hex(c: u8) -> bool {
    c.is_ascii_hexdigit()
}
fn alpha(c: u8) -> bool {
    c.is_ascii_alphabetic()
}
fn lower_alnum(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}
fn upper_alnum(c: u8) -> bool {
    c.is_ascii_uppercase() || c.is_ascii_digit()
}
fn b64url_eq(c: u8) -> bool {
    is_b64url(c) || c == b'='
}
fn b64_std(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'+' || c == b'/'
}
fn word_dot_eq(c: u8) -> bool {
    is_b64url(c) || c == b'=' || c == b'.'
}
/// bech32's data alphabet, upper case (age keys are printed in upper case).
fn bech32_upper(c: u8) -> bool {
    b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L".contains(&c)
}

/// A byte class.
type Class = fn(u8) -> bool;

/// One shape: `prefix` + `lo..=hi` of `body`, optionally `sep` + exactly `len2` of
/// `body2`; `boundary` is what may not follow.
pub(crate) struct Shape {
    pub prefix: &'static [u8],
    pub detector: DetectorId,
    body: fn(u8) -> bool,
    lo: usize,
    hi: usize,
    second: Option<(u8, Class, usize)>,
    boundary: fn(u8) -> bool,
    why: &'static str,
}

const fn shape(
    prefix: &'static [u8],
    detector: DetectorId,
    body: fn(u8) -> bool,
    lo: usize,
    hi: usize,
    why: &'static str,
) -> Shape {
    Shape {
        prefix,
        detector,
        body,
        lo,
        hi,
        second: None,
        boundary: is_b64url,
        why,
    }
}

use DetectorId as D;

/// Every prefixed shape; the anchor of each is its prefix. Sources (gitleaks rule ids):
pub(crate) const SHAPES: &[Shape] = &[
    // dockerhub: TruffleHog `dockerhub` v2 (`dckr_pat_[\w-]{27}`), Docker docs "Access tokens".
    shape(
        b"dckr_pat_",
        D::DockerhubToken,
        is_b64url,
        27,
        27,
        "Docker Hub personal access token",
    ),
    // digitalocean-pat, digitalocean-access-token, digitalocean-refresh-token.
    shape(
        b"dop_v1_",
        D::DigitaloceanToken,
        lower_hex,
        64,
        64,
        "DigitalOcean personal access token",
    ),
    shape(
        b"doo_v1_",
        D::DigitaloceanToken,
        lower_hex,
        64,
        64,
        "DigitalOcean OAuth access token",
    ),
    shape(
        b"dor_v1_",
        D::DigitaloceanToken,
        lower_hex,
        64,
        64,
        "DigitalOcean OAuth refresh token",
    ),
    // heroku-api-key-v2.
    shape(
        b"HRKU-AA",
        D::HerokuKey,
        is_b64url,
        58,
        58,
        "Heroku API key",
    ),
    // shopify-access-token, shopify-custom-access-token, shopify-private-app-access-token,
    // shopify-shared-secret.
    shape(
        b"shpat_",
        D::ShopifyToken,
        any_hex,
        32,
        32,
        "Shopify access token",
    ),
    shape(
        b"shpca_",
        D::ShopifyToken,
        any_hex,
        32,
        32,
        "Shopify custom app access token",
    ),
    shape(
        b"shppa_",
        D::ShopifyToken,
        any_hex,
        32,
        32,
        "Shopify private app access token",
    ),
    shape(
        b"shpss_",
        D::ShopifyToken,
        any_hex,
        32,
        32,
        "Shopify shared secret",
    ),
    // atlassian-api-token.
    shape(
        b"ATATT3",
        D::AtlassianToken,
        b64url_eq,
        186,
        186,
        "Atlassian API token",
    ),
    // huggingface-access-token, huggingface-organization-api-token.
    shape(
        b"hf_",
        D::HuggingfaceToken,
        alpha,
        34,
        34,
        "Hugging Face access token",
    ),
    shape(
        b"api_org_",
        D::HuggingfaceToken,
        alpha,
        34,
        34,
        "Hugging Face organization API token",
    ),
    // age-secret-key (age's bech32 encoding of a 32-byte X25519 key: 58 characters).
    shape(
        b"AGE-SECRET-KEY-1",
        D::AgeSecretKey,
        bech32_upper,
        58,
        58,
        "age secret key",
    ),
    // grafana-cloud-api-token (`glc_[A-Za-z0-9+/]{32,400}={0,2}`) and
    // grafana-service-account-token (`glsa_[A-Za-z0-9]{32}_[A-Fa-f0-9]{8}`).
    shape(
        b"glc_",
        D::GrafanaToken,
        b64_std,
        32,
        400,
        "Grafana Cloud API token",
    ),
    Shape {
        second: Some((b'_', any_hex, 8)),
        ..shape(
            b"glsa_",
            D::GrafanaToken,
            is_alnum,
            32,
            32,
            "Grafana service account token",
        )
    },
    // linear-api-key.
    shape(
        b"lin_api_",
        D::LinearKey,
        is_alnum,
        40,
        40,
        "Linear API key",
    ),
    // doppler-api-token.
    shape(
        b"dp.pt.",
        D::DopplerToken,
        is_alnum,
        43,
        43,
        "Doppler personal token",
    ),
    // planetscale-api-token, planetscale-password, planetscale-oauth-token.
    shape(
        b"pscale_tkn_",
        D::PlanetscaleToken,
        word_dot_eq,
        32,
        64,
        "PlanetScale API token",
    ),
    shape(
        b"pscale_pw_",
        D::PlanetscaleToken,
        word_dot_eq,
        32,
        64,
        "PlanetScale password",
    ),
    shape(
        b"pscale_oauth_",
        D::PlanetscaleToken,
        word_dot_eq,
        32,
        64,
        "PlanetScale OAuth token",
    ),
    // pulumi-api-token.
    shape(
        b"pul-",
        D::PulumiToken,
        lower_hex,
        40,
        40,
        "Pulumi access token",
    ),
    // databricks-api-token (`dapi[a-f0-9]{32}(?:-\d)?`).
    shape(
        b"dapi",
        D::DatabricksToken,
        lower_hex,
        32,
        32,
        "Databricks access token",
    ),
    // new-relic-user-api-key.
    shape(
        b"NRAK-",
        D::NewrelicKey,
        upper_alnum,
        27,
        27,
        "New Relic user API key",
    ),
    // sentry-user-token.
    shape(
        b"sntryu_",
        D::SentryToken,
        lower_hex,
        64,
        64,
        "Sentry user auth token",
    ),
    // postman-api-token (`PMAK-[a-f0-9]{24}-[a-f0-9]{34}`).
    Shape {
        second: Some((b'-', any_hex, 34)),
        ..shape(b"PMAK-", D::PostmanKey, any_hex, 24, 24, "Postman API key")
    },
    // square-access-token, square-secret.
    shape(
        b"sq0atp-",
        D::SquareToken,
        is_b64url,
        22,
        22,
        "Square access token",
    ),
    shape(
        b"sq0csp-",
        D::SquareToken,
        is_b64url,
        43,
        43,
        "Square OAuth secret",
    ),
    // dynatrace-api-token (`dt0c01\.[a-z0-9]{24}\.[a-z0-9]{64}`, case-insensitive).
    Shape {
        second: Some((b'.', is_alnum, 64)),
        ..shape(
            b"dt0c01.",
            D::DynatraceToken,
            is_alnum,
            24,
            24,
            "Dynatrace API token",
        )
    },
    // gitlab-ptt, gitlab-rrt, gitlab-deploy-token, gitlab-feed-token, gitlab-scim-token,
    // gitlab-runner-authentication-token, gitlab-kubernetes-agent-token,
    // gitlab-incoming-mail-token, gitlab-cicd-job-token.
    shape(
        b"glptt-",
        D::GitlabToken,
        is_b64url,
        40,
        40,
        "GitLab pipeline trigger token",
    ),
    shape(
        b"GR1348941",
        D::GitlabToken,
        is_b64url,
        20,
        20,
        "GitLab runner registration token",
    ),
    shape(
        b"glrt-",
        D::GitlabToken,
        is_b64url,
        20,
        64,
        "GitLab runner authentication token",
    ),
    shape(
        b"gldt-",
        D::GitlabToken,
        is_b64url,
        20,
        20,
        "GitLab deploy token",
    ),
    shape(
        b"glft-",
        D::GitlabToken,
        is_b64url,
        20,
        20,
        "GitLab feed token",
    ),
    shape(
        b"glsoat-",
        D::GitlabToken,
        is_b64url,
        20,
        20,
        "GitLab SCIM OAuth token",
    ),
    shape(
        b"glagent-",
        D::GitlabToken,
        is_b64url,
        50,
        1024,
        "GitLab Kubernetes agent token",
    ),
    shape(
        b"glimt-",
        D::GitlabToken,
        is_b64url,
        25,
        25,
        "GitLab incoming mail token",
    ),
    shape(
        b"glcbt-",
        D::GitlabToken,
        is_b64url,
        20,
        64,
        "GitLab CI/CD job token",
    ),
];

/// Which shape starts at the anchor (anchors are the prefixes themselves).
fn shape_at(hay: &[u8], at: usize) -> Option<&'static Shape> {
    SHAPES.iter().find(|s| starts_with_at(hay, at, s.prefix))
}

pub(crate) fn validate(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let Some(sh) = shape_at(hay, at) else { return };
    if !clear_before(hay, at, |c| is_alnum(c) || c == b'_' || c == b'-') {
        return;
    }
    let s = at + sh.prefix.len();
    let n = run_len(hay, s, sh.hi + 1, sh.body);
    if n < sh.lo || n > sh.hi {
        return;
    }
    let mut e = s + n;
    // Grafana Cloud tokens end with base64 padding.
    if sh.prefix == b"glc_" {
        e += run_len(hay, e, 2, |c| c == b'=');
    }
    // Databricks tokens may end with `-<digit>`.
    if sh.prefix == b"dapi"
        && hay.get(e) == Some(&b'-')
        && hay.get(e + 1).is_some_and(u8::is_ascii_digit)
    {
        e += 2;
    }
    if let Some((sep, body2, len2)) = sh.second {
        if hay.get(e) != Some(&sep) || run_len(hay, e + 1, len2 + 1, body2) != len2 {
            return;
        }
        e += 1 + len2;
    }
    if !clear_at(hay, e, sh.boundary) {
        return;
    }
    let body = &hay[s..e];
    // A run of one character (`hf_aaaa…`) is a documentation example.
    if body.iter().all(|&c| c == body[0]) {
        return;
    }
    out.push(Hit {
        value: Some(at..e),
        detector: sh.detector,
        start: at,
        end: e,
        fingerprint: ctx.fingerprint(&[&hay[at..e]]),
        why: sh.why.into(),
    });
}

/// Terraform Cloud / Enterprise user tokens: `[a-z0-9]{14}.atlasv1.[a-z0-9_=-]{60,70}`
/// (gitleaks `hashicorp-tf-api-token`). The anchor is `.atlasv1.`.
pub(crate) fn terraform(win: &Window, ctx: &mut Ctx, out: &mut Vec<Hit>) {
    let (hay, at) = (win.hay, win.at);
    let Some(s) = at.checked_sub(14) else { return };
    if run_len(hay, s, 14, lower_alnum) != 14 || !clear_before(hay, s, is_alnum) {
        return;
    }
    let v = at + b".atlasv1.".len();
    let n = run_len(hay, v, 71, |c| {
        lower_alnum(c) || matches!(c, b'_' | b'=' | b'-')
    });
    if !(60..=70).contains(&n) || !clear_at(hay, v + n, is_b64url) {
        return;
    }
    out.push(Hit {
        value: Some(s..v + n),
        detector: DetectorId::TerraformToken,
        start: s,
        end: v + n,
        fingerprint: ctx.fingerprint(&[&hay[s..v + n]]),
        why: "Terraform Cloud API token".into(),
    });
}

#[cfg(test)]
impl Shape {
    /// Whether every match of this shape starts with [`crate::gate::RUN`] token
    /// characters, so its anchor may sit in the gated prefilter group: the prefix and
    /// every body character are run bytes and the shortest body is long enough.
    pub(crate) fn starts_with_run(&self) -> bool {
        self.prefix.iter().all(|&c| crate::gate::is_run_byte(c))
            && (0..=255u8).all(|c| !(self.body)(c) || crate::gate::is_run_byte(c))
            && self.prefix.len() + self.lo >= crate::gate::RUN
    }
}
