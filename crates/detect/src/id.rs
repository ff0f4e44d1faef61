//! The catalogue: every detector's stable id and the operation it belongs to.
//!
//! Ids and operation names are part of the output format (reports, allow-lists, the
//! fixture recipes' `expect` fields): never rename one, only add.

use std::fmt;

/// A group of detectors that a user turns on or off together (`--operations …`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Operation {
    /// Private keys in any common encoding (PEM, OpenSSH, PuTTY, PGP).
    PrivateKeys,
    /// Cloud provider credentials: AWS key pairs, GCP service accounts, Azure keys.
    CloudCredentials,
    /// Files that hold a login: netrc, git-credentials URLs, docker auths, kubeconfig users.
    CredentialFiles,
    /// Provider API tokens with a recognisable prefix (GitHub, Slack, Stripe, …).
    Tokens,
}

impl Operation {
    /// Every operation, in catalogue order.
    pub const ALL: [Operation; 4] = [
        Operation::PrivateKeys,
        Operation::CloudCredentials,
        Operation::CredentialFiles,
        Operation::Tokens,
    ];

    /// The stable name used on the command line and in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::PrivateKeys => "private-keys",
            Operation::CloudCredentials => "cloud-credentials",
            Operation::CredentialFiles => "credential-files",
            Operation::Tokens => "tokens",
        }
    }

    /// Parses a stable name.
    pub fn from_name(name: &str) -> Option<Operation> {
        Operation::ALL.into_iter().find(|o| o.as_str() == name)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

macro_rules! detectors {
    ($( $(#[$doc:meta])* $variant:ident = $name:literal, $op:ident; )*) => {
        /// One detector: a kind of secret with its own validation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum DetectorId {
            $( $(#[$doc])* $variant, )*
        }

        impl DetectorId {
            /// Every detector, in catalogue order.
            pub const ALL: &'static [DetectorId] = &[ $( DetectorId::$variant, )* ];

            /// The stable id used in reports, allow-lists and fixture recipes.
            pub fn as_str(self) -> &'static str {
                match self { $( DetectorId::$variant => $name, )* }
            }

            /// The operation this detector belongs to.
            pub fn operation(self) -> Operation {
                match self { $( DetectorId::$variant => Operation::$op, )* }
            }
        }
    };
}

detectors! {
    /// PEM private keys: PKCS#1 RSA/DSA, SEC1 EC, PKCS#8 plain and encrypted, legacy
    /// `Proc-Type: 4,ENCRYPTED` PEM.
    PemPrivateKey = "pem-private-key", PrivateKeys;
    /// `-----BEGIN OPENSSH PRIVATE KEY-----` (openssh-key-v1).
    OpensshPrivateKey = "openssh-private-key", PrivateKeys;
    /// PuTTY `.ppk` files, format 2 and 3.
    PuttyPrivateKey = "putty-private-key", PrivateKeys;
    /// `-----BEGIN PGP PRIVATE KEY BLOCK-----` whose first packet is a secret key.
    PgpPrivateKey = "pgp-private-key", PrivateKeys;
    /// `---- BEGIN SSH2 ENCRYPTED PRIVATE KEY ----` (ssh.com / Tectia format).
    Ssh2PrivateKey = "ssh2-private-key", PrivateKeys;
    /// An AWS access key id (`AKIA…`/`ASIA…`) with a secret access key next to it.
    AwsAccessKey = "aws-access-key", CloudCredentials;
    /// A GCP service-account JSON key (`"type": "service_account"` + `"private_key"`).
    GcpServiceAccount = "gcp-service-account", CloudCredentials;
    /// An Azure connection string with `AccountKey=` or `SharedAccessKey=`.
    AzureConnectionString = "azure-connection-string", CloudCredentials;
    /// An Azure shared access signature (`sv=…&sig=…`).
    AzureSasToken = "azure-sas-token", CloudCredentials;
    /// A `.netrc` entry: `machine HOST … password SECRET`.
    Netrc = "netrc", CredentialFiles;
    /// A password in an http(s) URL (`.git-credentials`, pip/npm index URLs, …).
    UrlPassword = "url-password", CredentialFiles;
    /// A docker/podman `config.json` `"auth"` (base64 `user:password`) or `"identitytoken"`.
    DockerAuth = "docker-auth", CredentialFiles;
    /// Credentials of a kubeconfig user: `token`, `password`, `client-key-data`.
    KubeconfigCredentials = "kubeconfig-credentials", CredentialFiles;
    /// GitHub tokens (`ghp_`, `gho_`, `ghu_`, `ghs_`, `ghr_` with a valid CRC32, `github_pat_`).
    GithubToken = "github-token", Tokens;
    /// GitLab personal access tokens (`glpat-`).
    GitlabToken = "gitlab-token", Tokens;
    /// Slack API tokens (`xoxb-`, `xoxp-`, …) and app-level tokens (`xapp-`).
    SlackToken = "slack-token", Tokens;
    /// Slack incoming-webhook URLs.
    SlackWebhook = "slack-webhook", Tokens;
    /// Stripe live secret and restricted keys.
    StripeKey = "stripe-key", Tokens;
    /// Google API keys (`AIza…`).
    GoogleApiKey = "google-api-key", Tokens;
    /// npm access tokens (`npm_` with a valid CRC32).
    NpmToken = "npm-token", Tokens;
    /// PyPI upload tokens (`pypi-AgE…` macaroons).
    PypiToken = "pypi-token", Tokens;
    /// SendGrid API keys (`SG.x.y`).
    SendgridKey = "sendgrid-key", Tokens;
    /// HashiCorp Vault service and batch tokens (`hvs.`, `hvb.`).
    VaultToken = "vault-token", Tokens;
    /// OpenAI API keys (`sk-…T3BlbkFJ…`).
    OpenaiKey = "openai-key", Tokens;
    /// Anthropic API keys (`sk-ant-api03-…`).
    AnthropicKey = "anthropic-key", Tokens;
    /// Twilio API key SIDs (`SK…`), and auth tokens beside an account SID (`AC…`).
    TwilioKey = "twilio-key", Tokens;
    /// A JSON Web Token: three base64url parts whose header is JSON naming an `alg`.
    Jwt = "jwt", Tokens;
    /// Docker Hub personal access tokens (`dckr_pat_`).
    DockerhubToken = "dockerhub-token", Tokens;
    /// DigitalOcean personal, OAuth and refresh tokens (`dop_v1_`, `doo_v1_`, `dor_v1_`).
    DigitaloceanToken = "digitalocean-token", Tokens;
    /// Heroku API keys, second format (`HRKU-AA…`).
    HerokuKey = "heroku-key", Tokens;
    /// Shopify access tokens and shared secrets (`shpat_`, `shpca_`, `shppa_`, `shpss_`).
    ShopifyToken = "shopify-token", Tokens;
    /// Atlassian (Jira, Confluence) API tokens (`ATATT3…`).
    AtlassianToken = "atlassian-token", Tokens;
    /// Hugging Face user and organization tokens (`hf_`, `api_org_`).
    HuggingfaceToken = "huggingface-token", Tokens;
    /// age secret keys (`AGE-SECRET-KEY-1…`, bech32).
    AgeSecretKey = "age-secret-key", Tokens;
    /// Grafana Cloud API tokens and service-account tokens (`glc_`, `glsa_`).
    GrafanaToken = "grafana-token", Tokens;
    /// Linear API keys (`lin_api_`).
    LinearKey = "linear-key", Tokens;
    /// Doppler personal tokens (`dp.pt.`).
    DopplerToken = "doppler-token", Tokens;
    /// PlanetScale API tokens, passwords and OAuth tokens (`pscale_tkn_`, `pscale_pw_`, `pscale_oauth_`).
    PlanetscaleToken = "planetscale-token", Tokens;
    /// Pulumi access tokens (`pul-`).
    PulumiToken = "pulumi-token", Tokens;
    /// Databricks personal access tokens (`dapi…`).
    DatabricksToken = "databricks-token", Tokens;
    /// New Relic user API keys (`NRAK-`).
    NewrelicKey = "newrelic-key", Tokens;
    /// Sentry user auth tokens (`sntryu_`).
    SentryToken = "sentry-token", Tokens;
    /// Postman API keys (`PMAK-`).
    PostmanKey = "postman-key", Tokens;
    /// Square access tokens and OAuth secrets (`sq0atp-`, `sq0csp-`).
    SquareToken = "square-token", Tokens;
    /// Terraform Cloud / Enterprise API tokens (`….atlasv1.…`).
    TerraformToken = "terraform-token", Tokens;
    /// Dynatrace API tokens (`dt0c01.…`).
    DynatraceToken = "dynatrace-token", Tokens;
    /// A secret-named key assigned a real-looking value (`DB_PASSWORD=…`,
    /// `"client_secret": "…"`, `api_key: …`, `<password>…</password>`).
    SecretAssignment = "secret-assignment", CredentialFiles;
    /// A BitLocker recovery password or a systemd-cryptenroll (LUKS) recovery key.
    RecoveryKey = "recovery-key", CredentialFiles;
    /// A KeePass database (`.kdbx`/`.kdb` signatures): a password store, always encrypted.
    KeepassDatabase = "keepass-database", CredentialFiles;
    /// A PKCS#12 / PFX file holding a private key (key bags), by structure.
    Pkcs12PrivateKey = "pkcs12-private-key", PrivateKeys;
    /// A Java keystore (JKS `FEEDFEED`, JCEKS `CECECECE`) with private- or secret-key entries.
    JavaKeystore = "java-keystore", PrivateKeys;
    /// A private key stored as bare DER (PKCS#1, SEC1, PKCS#8, encrypted PKCS#8).
    DerPrivateKey = "der-private-key", PrivateKeys;
    /// A GnuPG agent key (`private-keys-v1.d/*.key`): `(private-key …` or
    /// `(protected-private-key …` s-expressions, canonical or extended format.
    GpgAgentKey = "gpg-agent-key", PrivateKeys;
}

impl DetectorId {
    /// Parses a stable id.
    pub fn from_name(name: &str) -> Option<DetectorId> {
        DetectorId::ALL.iter().copied().find(|d| d.as_str() == name)
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for DetectorId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

pub(crate) const DETECTOR_COUNT: usize = DetectorId::ALL.len();
