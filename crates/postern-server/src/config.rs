//! Configuration: a TOML file, then environment variables, then flags.
//!
//! Every setting has a default, so `postern serve` runs with no file at all.
//! The file's keys mirror the flags (see `postern serve --help` and the
//! README); durations are human-readable (`"90s"`, `"15m"`, `"8h"`).
//! Environment variables (`POSTERN_TTL`, …) and flags are read by clap into
//! [`Overrides`], and each one that is set replaces the file's value.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use postern_auth::quota::ShareLimits;
use postern_auth::relying_party::RelyingPartyConfig;
use postern_core::policy::{DeviceBinding, PolicyError, ResumePolicy};
use postern_store::AuthorityConfig;
use serde::Deserialize;
use webauthn_rs::prelude::Url;

/// Why configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path} is invalid: {source}")]
    Parse {
        path: String,
        source: Box<toml::de::Error>,
    },
    #[error("invalid session policy: {0}")]
    Policy(#[from] PolicyError),
    #[error("{0}")]
    Invalid(&'static str),
    #[error(
        "{setting}: cleartext to `{host}`, which is not loopback, is refused (tokens and \
         secrets would cross the network readable); use https:// or rediss://, or accept \
         the risk with --allow-insecure-upstream ([gate] allow_insecure_upstream = true)"
    )]
    Cleartext { setting: &'static str, host: String },
}

/// Session settings (`[session]` in the file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionConfig {
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    #[serde(with = "humantime_serde")]
    pub resume_window: Duration,
    #[serde(with = "humantime_serde")]
    pub idle_timeout: Duration,
    pub device_binding: BindingMode,
    pub risk_threshold: f32,
    pub sensitive_operations: Vec<String>,
    /// Activity is persisted at most once per this interval per session.
    #[serde(with = "humantime_serde")]
    pub last_seen_interval: Duration,
    /// Expired and revoked sessions are kept this long after expiry.
    #[serde(with = "humantime_serde")]
    pub expired_retention: Duration,
    /// How a minted session reaches the client.
    pub mode: SessionMode,
    /// The session cookie, in cookie mode.
    pub cookie: CookieConfig,
    /// Session JWTs, in JWT mode.
    pub jwt: JwtConfig,
}

/// Session JWTs (`[session.jwt]`): short-lived signed JWTs that name a
/// live server-side session; refreshed with `POST /v1/session/refresh`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// Lifetime of each JWT (never past its session's expiry). Offline
    /// verifiers learn of a logout only when the JWT expires, so keep it short.
    #[serde(with = "humantime_serde")]
    pub ttl: Duration,
    /// The `iss` claim, and the only issuer accepted back.
    pub issuer: String,
    /// The `aud` claim, and the only audience accepted back: the services
    /// meant to accept these JWTs (they should check it too).
    pub audience: String,
    /// `EdDSA` (Ed25519) or `ML-DSA-65` (post-quantum, RFC 9964).
    pub algorithm: crate::jwt::JwtAlgorithm,
}

impl Default for JwtConfig {
    fn default() -> Self {
        Self {
            ttl: Duration::from_secs(15 * 60),
            issuer: "postern".into(),
            audience: crate::jwt::DEFAULT_AUDIENCE.into(),
            algorithm: crate::jwt::JwtAlgorithm::default(),
        }
    }
}

/// How a minted session is handed to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SessionMode {
    /// The token in the JSON response; clients send `Authorization: Bearer`.
    Bearer,
    /// The token in an `HttpOnly` cookie; the JSON response omits it.
    Cookie,
    /// A signed, short-lived JWT (Ed25519) in the JSON response, verifiable
    /// offline with `/.well-known/jwks.json`; accepted only while its
    /// session is live.
    Jwt,
}

/// The session cookie's name and attributes (`[session.cookie]`). The
/// defaults follow the OWASP Session Management Cheat Sheet: a `__Host-`
/// name (so no subdomain can set or shadow it), `Secure`, `HttpOnly`,
/// `SameSite=Lax`, `Path=/`, and a lifetime equal to the session's.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CookieConfig {
    pub name: String,
    pub secure: bool,
    pub http_only: bool,
    pub same_site: SameSite,
    pub path: String,
    /// `Domain=`; unset (host-only) by default, and required unset for a
    /// `__Host-` name.
    pub domain: Option<String>,
    /// `Max-Age=`; by default the session's remaining lifetime.
    #[serde(with = "humantime_serde")]
    pub max_age: Option<Duration>,
}

impl Default for CookieConfig {
    fn default() -> Self {
        Self {
            name: "__Host-postern".into(),
            secure: true,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".into(),
            domain: None,
            max_age: None,
        }
    }
}

/// The cookie's `SameSite` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    Strict,
    Lax,
    None,
}

impl SameSite {
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Strict => "Strict",
            SameSite::Lax => "Lax",
            SameSite::None => "None",
        }
    }
}

impl CookieConfig {
    /// The rules browsers enforce on cookie names and attributes
    /// (RFC 6265bis §4.1.3 on the `__Secure-` and `__Host-` prefixes), so a
    /// misconfiguration fails at start instead of silently in browsers.
    fn validate(&self) -> Result<(), ConfigError> {
        let token = |c: char| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c);
        if self.name.is_empty() || !self.name.chars().all(token) {
            return Err(ConfigError::Invalid(
                "cookie name must be a non-empty HTTP token",
            ));
        }
        let attribute = |v: &str| v.chars().all(|c| c.is_ascii_graphic() && c != ';');
        if !self.path.starts_with('/') || !attribute(&self.path) {
            return Err(ConfigError::Invalid(
                "cookie path must start with / and hold no ; or spaces",
            ));
        }
        if self
            .domain
            .as_deref()
            .is_some_and(|d| d.is_empty() || !attribute(d))
        {
            return Err(ConfigError::Invalid("cookie domain is not a valid domain"));
        }
        if self.name.starts_with("__Host-")
            && (!self.secure || self.path != "/" || self.domain.is_some())
        {
            return Err(ConfigError::Invalid(
                "a __Host- cookie needs secure = true, path = \"/\" and no domain",
            ));
        }
        if self.name.starts_with("__Secure-") && !self.secure {
            return Err(ConfigError::Invalid(
                "a __Secure- cookie needs secure = true",
            ));
        }
        if self.same_site == SameSite::None && !self.secure {
            return Err(ConfigError::Invalid("SameSite=None needs secure = true"));
        }
        if self.max_age.is_some_and(|d| d.is_zero()) {
            return Err(ConfigError::Invalid("cookie max_age must be positive"));
        }
        Ok(())
    }
}

impl Default for SessionConfig {
    fn default() -> Self {
        let policy = ResumePolicy::default();
        let authority = AuthorityConfig::default();
        Self {
            ttl: Duration::from_nanos(policy.ttl),
            resume_window: Duration::from_nanos(policy.resume_window),
            idle_timeout: Duration::from_nanos(policy.idle_timeout),
            device_binding: BindingMode::Required,
            risk_threshold: policy.risk_threshold,
            sensitive_operations: policy.sensitive_operations,
            last_seen_interval: Duration::from_nanos(authority.last_seen_interval),
            expired_retention: Duration::from_nanos(authority.expired_retention),
            mode: SessionMode::Bearer,
            cookie: CookieConfig::default(),
            jwt: JwtConfig::default(),
        }
    }
}

/// Whether resumes must present the bound device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BindingMode {
    Required,
    Off,
}

/// Full-authentication settings (`[auth]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    #[serde(with = "humantime_serde")]
    pub challenge_ttl: Duration,
    /// Most outstanding challenges; beyond it `/v1/auth/challenge` answers 429.
    pub max_outstanding_challenges: usize,
    /// Most outstanding challenges one client may hold (429 with
    /// `Retry-After` beyond it), so that one client cannot take them all.
    pub max_challenges_per_client: usize,
    /// Most outstanding challenges for one user, whoever asked.
    pub max_challenges_per_user: usize,
    /// Required stages of `/v1/auth/full`, in order: `identity`, `biometric`.
    pub stages: Vec<String>,
    /// Changing an account's credentials (adding, removing or confirming a
    /// passkey; revoking or replacing the identity key) needs a session
    /// whose full authentication is at most this old.
    #[serde(with = "humantime_serde")]
    pub reauth_max_age: Duration,
    /// The origins identity proofs may be made for: this deployment's
    /// public origins as clients reach it (`https://auth.example.com`).
    /// A proof is bound to one of them, so a look-alike server cannot relay
    /// it here. Empty (the default): the address the server listens on and
    /// the passkey origins. The first is assumed when a request names none.
    pub audiences: Vec<String>,
    /// The encrypted biometric stage.
    pub biometric: BiometricSettings,
}

/// The biometric stage (`[auth.biometric]`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BiometricSettings {
    /// `standard`: one user per evaluation (lowest latency); `turbo`: up to
    /// 32 concurrent users share one evaluation, one attestation signature
    /// and one durable write (highest throughput).
    pub mode: BiometricModeName,
    /// Cosine similarity a probe must reach against the enrolled template.
    pub threshold: f32,
    /// Turbo: longest a batch waits for company after its first user.
    #[serde(with = "humantime_serde")]
    pub turbo_deadline: Duration,
    /// Turbo: users per batch (1 to 32).
    pub turbo_batch: usize,
    /// Memory (MiB) for the prepared templates of the most recently
    /// authenticated users (about 0.7 MB each; 0 turns the cache off).
    /// A prepared template skips parsing the stored template and makes its
    /// products cheaper; it is what brings turbo under 150 us of server CPU
    /// per user (BENCHMARKS.md).
    pub prepared_cache_mb: usize,
}

impl Default for BiometricSettings {
    fn default() -> Self {
        Self {
            mode: BiometricModeName::Standard,
            threshold: 0.8,
            turbo_deadline: Duration::from_millis(3),
            turbo_batch: 32,
            prepared_cache_mb: 128,
        }
    }
}

/// The biometric evaluation mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum BiometricModeName {
    Standard,
    Turbo,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            challenge_ttl: Duration::from_secs(120),
            max_outstanding_challenges: 100_000,
            // Many users can share one address (a NAT, an office); one
            // user needs one challenge at a time, a few with retries.
            max_challenges_per_client: 256,
            max_challenges_per_user: 8,
            stages: vec!["identity".into()],
            reauth_max_age: Duration::from_secs(300),
            audiences: Vec::new(),
            biometric: BiometricSettings::default(),
        }
    }
}

/// Passkeys (`[passkeys]`): where WebAuthn credentials are valid.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PasskeySettings {
    /// The relying-party id: the origin's host or a parent domain of it.
    pub rp_id: String,
    /// The origins browsers use the passkeys from, e.g.
    /// `https://login.example.com`, or several (a web app and its admin
    /// console): `origin = "..."` or `origin = ["...", "..."]` in the file.
    /// Passkey ceremonies are accepted from each, cookie-authenticated
    /// changes must come from one of them, and by default identity proofs
    /// may be made for each (`[auth] audiences`).
    #[serde(rename = "origin", alias = "origins", deserialize_with = "one_or_many")]
    pub origins: Vec<String>,
    /// The name authenticators show.
    pub rp_name: String,
    /// How long a registration or login ceremony may take.
    #[serde(with = "humantime_serde")]
    pub ceremony_ttl: Duration,
    /// Most outstanding ceremonies of each kind; beyond it, 429.
    pub max_outstanding_ceremonies: usize,
    /// Most outstanding ceremonies of each kind one client may hold.
    pub max_ceremonies_per_client: usize,
    /// Most outstanding ceremonies of each kind for one user (usernameless
    /// logins name none and count only against their client).
    pub max_ceremonies_per_user: usize,
    /// Required stages of a passkey login, in order; `passkey` must be one
    /// of them, and `identity` / `biometric` add the factors
    /// `/v1/passkeys/login/finish` then requires.
    pub stages: Vec<String>,
}

impl Default for PasskeySettings {
    fn default() -> Self {
        Self {
            rp_id: "localhost".into(),
            origins: vec!["http://localhost:8080".into()],
            rp_name: "Postern".into(),
            stages: vec!["passkey".into()],
            // WebAuthn's recommended client timeout (and webauthn-rs's) is
            // 300 s; a ceremony must outlive the browser's prompt.
            ceremony_ttl: Duration::from_secs(300),
            max_outstanding_ceremonies: 10_000,
            // As for challenges (`[auth]`).
            max_ceremonies_per_client: 256,
            max_ceremonies_per_user: 8,
        }
    }
}

impl AuthConfig {
    /// The audiences identity proofs may be bound to, as origins (scheme,
    /// host and port; what a client derives from the URL it uses). With
    /// none configured: the origin of `listening_on` (with `localhost` for a
    /// loopback address) and every passkey origin.
    pub fn resolved_audiences(
        &self,
        listening_on: std::net::SocketAddr,
        passkey_origins: &[String],
    ) -> Result<Vec<String>, ConfigError> {
        let configured = if self.audiences.is_empty() {
            let mut defaults = vec![format!("http://{listening_on}")];
            if listening_on.ip().is_loopback() {
                defaults.push(format!("http://localhost:{}", listening_on.port()));
            }
            defaults.extend(passkey_origins.iter().cloned());
            defaults
        } else {
            self.audiences.clone()
        };
        let mut origins: Vec<String> = Vec::with_capacity(configured.len());
        for text in &configured {
            let origin = audience_origin(text).ok_or(ConfigError::Invalid(
                "auth.audiences are http(s) origins such as https://auth.example.com",
            ))?;
            if !origins.contains(&origin) {
                origins.push(origin);
            }
        }
        Ok(origins)
    }
}

/// `text` as an origin (`https://host[:port]`, default ports dropped), if it
/// is an http(s) URL with no path beyond `/`.
fn audience_origin(text: &str) -> Option<String> {
    Url::parse(text.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .filter(|u| u.path() == "/" && u.query().is_none() && u.fragment().is_none())
        .map(|u| u.origin().ascii_serialization())
}

/// A TOML value that is one string or a list of them, as a list.
fn one_or_many<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(one) => vec![one],
        OneOrMany::Many(many) => many,
    })
}

impl PasskeySettings {
    /// The relying-party configuration these settings describe. The rp id
    /// is checked against each origin when the relying party is built.
    pub fn relying_party(&self) -> Result<RelyingPartyConfig, ConfigError> {
        let mut origins: Vec<Url> = Vec::with_capacity(self.origins.len());
        for text in &self.origins {
            let origin = Url::parse(text.trim())
                .ok()
                .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
                .filter(|u| u.path() == "/" && u.query().is_none() && u.fragment().is_none())
                .ok_or(ConfigError::Invalid(
                    "a passkey origin must be an http(s) origin such as https://login.example.com",
                ))?;
            if !origins.iter().any(|o| o.origin() == origin.origin()) {
                origins.push(origin);
            }
        }
        if origins.is_empty() {
            return Err(ConfigError::Invalid(
                "passkeys.origin needs at least one origin",
            ));
        }
        if self.ceremony_ttl.is_zero()
            || self.max_outstanding_ceremonies == 0
            || self.max_ceremonies_per_client == 0
            || self.max_ceremonies_per_user == 0
        {
            return Err(ConfigError::Invalid(
                "ceremony_ttl, max_outstanding_ceremonies and max_ceremonies_per_client/_per_user must be positive",
            ));
        }
        Ok(RelyingPartyConfig {
            rp_id: self.rp_id.clone(),
            origins,
            rp_name: self.rp_name.clone(),
            ceremony_ttl: nanos(self.ceremony_ttl),
            max_ceremonies: self.max_outstanding_ceremonies,
            shares: ShareLimits {
                per_client: self.max_ceremonies_per_client,
                per_user: self.max_ceremonies_per_user,
            },
        })
    }
}

/// A configured secret: redacted in `Debug`.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(..)")
    }
}

/// Gate mode (`[gate]`): validate tokens issued by an existing identity
/// provider. Exactly one of `upstream_introspection` and `upstream_auth1`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GateSettings {
    /// RFC 7662 introspection endpoint.
    pub upstream_introspection: Option<String>,
    /// RFC 7009 revocation endpoint, used on logout.
    pub upstream_revocation: Option<String>,
    pub client_id: Option<String>,
    pub client_secret: Option<Secret>,
    /// Base URL of an Auth1-style session API.
    pub upstream_auth1: Option<String>,
    /// The upstream's JWKS: keys rotated out of it purge their tokens.
    pub upstream_jwks: Option<String>,
    #[serde(with = "humantime_serde")]
    pub jwks_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub upstream_timeout: Duration,
    /// Cap on how long any answer is cached.
    #[serde(with = "humantime_serde")]
    pub max_ttl: Duration,
    /// How long an answer without any expiry is cached.
    #[serde(with = "humantime_serde")]
    pub ttl_without_expiry: Duration,
    pub cache_max_entries: usize,
    pub cache_max_bytes: usize,
    pub breaker_threshold: u32,
    #[serde(with = "humantime_serde")]
    pub breaker_cooldown: Duration,
    /// Cache misses (and logouts of tokens not cached) allowed per client
    /// per second; 0 turns the limit off. A client is the TCP peer, or
    /// what a trusted proxy says (`trusted_proxies`, `crate::client_ip`).
    pub miss_rate_per_client: Option<f64>,
    /// Burst of misses a client may make before the rate applies.
    pub miss_burst_per_client: f64,
    /// Redis URL through which gate instances share logouts (a stream;
    /// see `postern_tower::redis_feed`). A secret: it may hold a password.
    pub redis: Option<Secret>,
    /// The stream's key in Redis.
    pub redis_stream: String,
    /// With `redis`: how far behind the revocation feed may fall before
    /// hits stop being served from the cache (every request then asks
    /// upstream until the feed catches up).
    #[serde(with = "humantime_serde")]
    pub revocation_max_lag: Duration,
    /// Most gate logouts held in force at once; past it, logouts answer
    /// 503 `revocations_full` (see `postern_tower::Gate::logout`).
    pub max_revocations: usize,
    /// With `redis`: a file holding the key (at least 32 bytes; a trailing
    /// newline is ignored) that authenticates the revocation feed's
    /// entries. Every instance holds the same one; Redis never sees it.
    pub redis_feed_key_file: Option<PathBuf>,
    /// The same key given directly (`POSTERN_REDIS_FEED_KEY`; never read
    /// from the file, which may be world-readable).
    #[serde(skip)]
    pub redis_feed_key: Option<Secret>,
    /// A PEM file of private CA certificates trusted, beside the built-in
    /// roots, by the https:// upstream and JWKS clients; for rediss:// it
    /// is the only root trusted.
    pub ca_file: Option<PathBuf>,
    /// Allow http:// and redis:// to hosts other than loopback (refused by
    /// default: the client secret and every token would travel readable).
    pub allow_insecure_upstream: bool,
}

impl Default for GateSettings {
    fn default() -> Self {
        Self {
            upstream_introspection: None,
            upstream_revocation: None,
            client_id: None,
            client_secret: None,
            upstream_auth1: None,
            upstream_jwks: None,
            jwks_interval: Duration::from_secs(60),
            upstream_timeout: Duration::from_secs(2),
            max_ttl: Duration::from_secs(15 * 60),
            ttl_without_expiry: Duration::from_secs(30),
            cache_max_entries: 1_000_000,
            cache_max_bytes: 512 << 20,
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(5),
            // On by default: a miss is an upstream call, a junk-token flood
            // is all misses. 20/s after a burst of 100 is far above what a
            // user makes (one miss per token per `max_ttl`), and still
            // bounds what one client can cost the upstream. Behind a proxy
            // not listed in `trusted_proxies`, every user shares the
            // proxy's bucket: list it.
            miss_rate_per_client: Some(20.0),
            miss_burst_per_client: 100.0,
            redis: None,
            redis_stream: postern_tower::redis_feed::DEFAULT_STREAM.to_string(),
            revocation_max_lag: Duration::from_secs(5),
            max_revocations: postern_tower::GateConfig::default().max_revocations,
            redis_feed_key_file: None,
            redis_feed_key: None,
            ca_file: None,
            allow_insecure_upstream: false,
        }
    }
}

impl GateSettings {
    pub fn enabled(&self) -> bool {
        self.upstream_introspection.is_some() || self.upstream_auth1.is_some()
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// Where the instance key's 64-byte seed lives (default: inside the data
    /// directory; put it elsewhere, or use `POSTERN_INSTANCE_SECRET`, so a
    /// copy of the data directory alone reveals nothing).
    pub instance_key_file: Option<PathBuf>,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    pub session: SessionConfig,
    pub auth: AuthConfig,
    pub passkeys: PasskeySettings,
    pub gate: GateSettings,
    /// Proxies (address ranges) whose `X-Forwarded-For` and `X-Real-IP`
    /// name the client; from anyone else the TCP peer is the client.
    pub trusted_proxies: Vec<crate::client_ip::Cidr>,
    /// How long a connection may take to send a request's headers (and
    /// how long it may stay idle between requests) before it is closed.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long one request may take, body included (408 past it).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// Most connections served at once; more wait in the listen backlog.
    pub max_connections: usize,
    /// Serve `/metrics` here, and not on `listen` (e.g. an address only
    /// the monitoring network reaches). Unset: `/metrics` on `listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// `text` (for people) or `json` (one object per line).
    pub log_format: LogFormat,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./postern-data"),
            instance_key_file: None,
            max_body_bytes: 16 * 1024,
            session: SessionConfig::default(),
            auth: AuthConfig::default(),
            passkeys: PasskeySettings::default(),
            gate: GateSettings::default(),
            trusted_proxies: Vec::new(),
            // Slowloris: a client trickling headers holds a connection at
            // most this long. Far above any real client's header time.
            header_read_timeout: Duration::from_secs(10),
            // Above the slowest request (a biometric login, about a second).
            request_timeout: Duration::from_secs(30),
            // Under common file-descriptor limits raised for a server.
            max_connections: 4096,
            metrics_listen: None,
            log_format: LogFormat::Text,
        }
    }
}

/// The headings `postern serve --help` groups its flags under.
pub mod heading {
    /// Listening, data, connection limits, logs.
    pub const SERVER: &str = "Server";
    /// Session lifetime, binding and delivery, and the full
    /// authentication that mints sessions.
    pub const SESSIONS: &str = "Sessions";
    pub const PASSKEYS: &str = "Passkeys";
    pub const BIOMETRIC: &str = "Biometric";
    /// Gate mode: an upstream identity provider's tokens.
    pub const GATE: &str = "Gate";
    /// Gate mode: logouts shared between instances through Redis.
    pub const REDIS: &str = "Redis";
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One line of text per event, for people (the default).
    #[default]
    Text,
    /// One JSON object per line, for a log collector: the event's fields,
    /// and its request span (`request_id`, `method`, `path`).
    Json,
}

/// Values from environment variables and flags; `None` keeps the file's.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct Overrides {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "POSTERN_LISTEN", help_heading = heading::SERVER)]
    pub listen: Option<SocketAddr>,
    /// Data directory: sessions database and wrapped keyring.
    #[arg(long = "data", env = "POSTERN_DATA", value_name = "DIR", help_heading = heading::SERVER)]
    pub data_dir: Option<PathBuf>,
    /// File holding the instance key seed (created 0600 on first start).
    #[arg(
        long = "instance-key",
        env = "POSTERN_INSTANCE_KEY_FILE",
        value_name = "FILE",
        help_heading = heading::SERVER,
    )]
    pub instance_key_file: Option<PathBuf>,
    /// Absolute session lifetime, e.g. 8h.
    #[arg(long, env = "POSTERN_TTL", value_parser = humantime::parse_duration, help_heading = heading::SESSIONS)]
    pub ttl: Option<Duration>,
    /// How long after full authentication a session may be resumed, e.g. 1h.
    #[arg(long, env = "POSTERN_RESUME_WINDOW", value_parser = humantime::parse_duration, help_heading = heading::SESSIONS)]
    pub resume_window: Option<Duration>,
    /// Longest gap between two resumes, e.g. 30m.
    #[arg(long, env = "POSTERN_IDLE_TIMEOUT", value_parser = humantime::parse_duration, help_heading = heading::SESSIONS)]
    pub idle_timeout: Option<Duration>,
    /// Whether resumes must present the device the session is bound to.
    #[arg(long, env = "POSTERN_DEVICE_BINDING", value_enum, help_heading = heading::SESSIONS)]
    pub device_binding: Option<BindingMode>,
    /// Risk scores above this (0-1) require full authentication.
    #[arg(long, env = "POSTERN_RISK_THRESHOLD", help_heading = heading::SESSIONS)]
    pub risk_threshold: Option<f32>,
    /// Comma-separated operations that require a step-up.
    #[arg(long, env = "POSTERN_SENSITIVE_OPERATIONS", value_delimiter = ',', help_heading = heading::SESSIONS)]
    pub sensitive_operations: Option<Vec<String>>,
    /// Persist activity at most once per this interval per session.
    #[arg(long, env = "POSTERN_LAST_SEEN_INTERVAL", value_parser = humantime::parse_duration, help_heading = heading::SESSIONS)]
    pub last_seen_interval: Option<Duration>,
    /// How long a challenge for full authentication stays valid.
    #[arg(long, env = "POSTERN_CHALLENGE_TTL", value_parser = humantime::parse_duration, help_heading = heading::SESSIONS)]
    pub challenge_ttl: Option<Duration>,
    /// How recent the full authentication behind a session must be for it
    /// to replace the user's identity key.
    #[arg(long, env = "POSTERN_REAUTH_MAX_AGE", value_parser = humantime::parse_duration, help_heading = heading::SESSIONS)]
    pub reauth_max_age: Option<Duration>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "POSTERN_MAX_BODY_BYTES", help_heading = heading::SERVER)]
    pub max_body_bytes: Option<usize>,
    /// The origins identity proofs may be made for, comma-separated
    /// (default: the listen address and the passkey origin).
    #[arg(long = "audience", env = "POSTERN_AUDIENCES", value_delimiter = ',', help_heading = heading::SESSIONS)]
    pub audiences: Option<Vec<String>>,
    /// Required full-authentication stages, in order (identity, biometric).
    #[arg(long, env = "POSTERN_STAGES", value_delimiter = ',', help_heading = heading::SESSIONS)]
    pub stages: Option<Vec<String>>,
    /// Most outstanding challenges one client may hold (default 256).
    #[arg(long, env = "POSTERN_MAX_CHALLENGES_PER_CLIENT", help_heading = heading::SESSIONS)]
    pub max_challenges_per_client: Option<usize>,
    /// Most outstanding challenges for one user (default 8).
    #[arg(long, env = "POSTERN_MAX_CHALLENGES_PER_USER", help_heading = heading::SESSIONS)]
    pub max_challenges_per_user: Option<usize>,
    /// Most outstanding passkey ceremonies of each kind one client may hold
    /// (default 256).
    #[arg(long, env = "POSTERN_MAX_CEREMONIES_PER_CLIENT", help_heading = heading::PASSKEYS)]
    pub max_ceremonies_per_client: Option<usize>,
    /// Most outstanding passkey ceremonies of each kind for one user
    /// (default 8).
    #[arg(long, env = "POSTERN_MAX_CEREMONIES_PER_USER", help_heading = heading::PASSKEYS)]
    pub max_ceremonies_per_user: Option<usize>,
    /// Required stages of a passkey login, in order (passkey, and
    /// optionally identity, biometric).
    #[arg(long, env = "POSTERN_PASSKEY_STAGES", value_delimiter = ',', help_heading = heading::PASSKEYS)]
    pub passkey_stages: Option<Vec<String>>,
    /// Biometric stage: standard (one user per evaluation) or turbo (up to
    /// 32 users per evaluation).
    #[arg(long, env = "POSTERN_BIOMETRIC_MODE", value_enum, help_heading = heading::BIOMETRIC)]
    pub biometric_mode: Option<BiometricModeName>,
    /// Biometric stage: cosine similarity a probe must reach (0 to 1).
    #[arg(long, env = "POSTERN_BIOMETRIC_THRESHOLD", help_heading = heading::BIOMETRIC)]
    pub biometric_threshold: Option<f32>,
    /// Turbo: longest a batch waits to fill after its first user.
    #[arg(long, env = "POSTERN_TURBO_DEADLINE", value_parser = humantime::parse_duration, help_heading = heading::BIOMETRIC)]
    pub turbo_deadline: Option<Duration>,
    /// Biometric stage: MiB of prepared templates kept for recent users
    /// (about 0.7 MB each; 0 turns the cache off).
    #[arg(long, env = "POSTERN_BIOMETRIC_PREPARED_CACHE_MB", help_heading = heading::BIOMETRIC)]
    pub biometric_prepared_cache_mb: Option<usize>,
    /// Gate mode: an RFC 7662 token-introspection endpoint to validate
    /// tokens of an existing identity provider.
    #[arg(long, env = "POSTERN_UPSTREAM_INTROSPECTION", value_name = "URL", help_heading = heading::GATE)]
    pub upstream_introspection: Option<String>,
    /// Gate mode: the RFC 7009 revocation endpoint called on logout.
    #[arg(long, env = "POSTERN_UPSTREAM_REVOCATION", value_name = "URL", help_heading = heading::GATE)]
    pub upstream_revocation: Option<String>,
    /// Gate mode: client id for introspection (HTTP Basic).
    #[arg(long, env = "POSTERN_CLIENT_ID", help_heading = heading::GATE)]
    pub client_id: Option<String>,
    /// Gate mode: client secret for introspection (HTTP Basic).
    #[arg(long, env = "POSTERN_CLIENT_SECRET", hide_env_values = true, help_heading = heading::GATE)]
    pub client_secret: Option<String>,
    /// Gate mode: base URL of an Auth1-style session API.
    #[arg(long, env = "POSTERN_UPSTREAM_AUTH1", value_name = "URL", help_heading = heading::GATE)]
    pub upstream_auth1: Option<String>,
    /// Gate mode: the upstream's JWKS URL; tokens of keys rotated out of it
    /// are purged from the cache at once.
    #[arg(long, env = "POSTERN_UPSTREAM_JWKS", value_name = "URL", help_heading = heading::GATE)]
    pub upstream_jwks: Option<String>,
    /// Gate mode: cache misses (and logouts of tokens not cached) allowed
    /// per client per second, after a burst of miss_burst_per_client
    /// (default 20/s, burst 100; 0 turns it off). A client is the TCP peer,
    /// or the address a --trusted-proxies peer forwards.
    #[arg(long, env = "POSTERN_MISS_RATE_PER_CLIENT", help_heading = heading::GATE)]
    pub miss_rate_per_client: Option<f64>,
    /// Gate mode: share logouts with every instance using this Redis, e.g.
    /// rediss://host:6380 (TLS), or redis://127.0.0.1:6379 (cleartext is
    /// refused to hosts other than loopback); only the gate's revocations,
    /// for now. Prefer POSTERN_REDIS when the URL holds a password.
    #[arg(
        long,
        env = "POSTERN_REDIS",
        value_name = "URL",
        hide_env_values = true,
        help_heading = heading::REDIS,
    )]
    pub redis: Option<String>,
    /// Gate mode with --redis: serve hits only while the shared revocation
    /// feed is at most this far behind, else every request asks upstream
    /// (default 5s, at least 3s).
    #[arg(long, env = "POSTERN_REVOCATION_MAX_LAG", value_parser = humantime::parse_duration, help_heading = heading::REDIS)]
    pub revocation_max_lag: Option<Duration>,
    /// How sessions reach clients: a bearer token in the JSON response, an
    /// HttpOnly cookie, or a signed JWT.
    #[arg(long, env = "POSTERN_SESSION_MODE", value_enum, help_heading = heading::SESSIONS)]
    pub session_mode: Option<SessionMode>,
    /// JWT mode: lifetime of each JWT (refresh before it ends).
    #[arg(long, env = "POSTERN_JWT_TTL", value_parser = humantime::parse_duration, help_heading = heading::SESSIONS)]
    pub jwt_ttl: Option<Duration>,
    /// JWT mode: the `iss` claim.
    #[arg(long, env = "POSTERN_JWT_ISSUER", help_heading = heading::SESSIONS)]
    pub jwt_issuer: Option<String>,
    /// JWT mode: the `aud` claim, required back on every JWT.
    #[arg(long, env = "POSTERN_JWT_AUDIENCE", help_heading = heading::SESSIONS)]
    pub jwt_audience: Option<String>,
    /// JWT mode: the signature algorithm.
    #[arg(long = "jwt-alg", env = "POSTERN_JWT_ALG", value_enum, help_heading = heading::SESSIONS)]
    pub jwt_algorithm: Option<crate::jwt::JwtAlgorithm>,
    /// Name of the session cookie (cookie mode).
    #[arg(long, env = "POSTERN_COOKIE_NAME", help_heading = heading::SESSIONS)]
    pub cookie_name: Option<String>,
    /// SameSite attribute of the session cookie.
    #[arg(long, env = "POSTERN_COOKIE_SAME_SITE", value_enum, help_heading = heading::SESSIONS)]
    pub cookie_same_site: Option<SameSite>,
    /// Passkeys: the WebAuthn relying-party id (the origin's host or a
    /// parent domain of it).
    #[arg(long, env = "POSTERN_RP_ID", help_heading = heading::PASSKEYS)]
    pub rp_id: Option<String>,
    /// Passkeys: an origin browsers use them from, e.g.
    /// http://localhost:8080; repeat it (or separate with commas) for
    /// several, e.g. a web app and its admin console.
    #[arg(
        long,
        env = "POSTERN_ORIGIN",
        value_name = "URL",
        value_delimiter = ',',
        help_heading = heading::PASSKEYS
    )]
    pub origin: Option<Vec<String>>,
    /// Passkeys: how long a registration or login ceremony may take.
    #[arg(long, env = "POSTERN_CEREMONY_TTL", value_parser = humantime::parse_duration, help_heading = heading::PASSKEYS)]
    pub ceremony_ttl: Option<Duration>,
    /// How often to poll the upstream JWKS.
    #[arg(long, env = "POSTERN_JWKS_INTERVAL", value_parser = humantime::parse_duration, help_heading = heading::GATE)]
    pub jwks_interval: Option<Duration>,
    /// Address ranges of the proxies in front of Postern, e.g.
    /// 10.0.0.0/8,::1: only from these peers do X-Forwarded-For and
    /// X-Real-IP name the client for per-client limits (default: none,
    /// the TCP peer is the client).
    #[arg(
        long,
        env = "POSTERN_TRUSTED_PROXIES",
        value_delimiter = ',',
        value_name = "CIDR,...",
        help_heading = heading::SERVER,
    )]
    pub trusted_proxies: Option<Vec<crate::client_ip::Cidr>>,
    /// Gate mode with --redis: a file holding the key (32 bytes or more)
    /// that authenticates revocation entries; the same on every instance.
    #[arg(long, env = "POSTERN_REDIS_FEED_KEY_FILE", value_name = "FILE", help_heading = heading::REDIS)]
    pub redis_feed_key_file: Option<PathBuf>,
    /// Gate mode with --redis: the feed key itself (use the environment
    /// variable: a flag's value shows in `ps`).
    #[arg(long, env = "POSTERN_REDIS_FEED_KEY", hide_env_values = true, help_heading = heading::REDIS)]
    pub redis_feed_key: Option<String>,
    /// Close a connection that has not sent a request's headers within
    /// this time (default 10s; also the keep-alive idle limit).
    #[arg(long, env = "POSTERN_HEADER_READ_TIMEOUT", value_parser = humantime::parse_duration, help_heading = heading::SERVER)]
    pub header_read_timeout: Option<Duration>,
    /// Answer 408 to a request not finished within this time (default 30s).
    #[arg(long, env = "POSTERN_REQUEST_TIMEOUT", value_parser = humantime::parse_duration, help_heading = heading::SERVER)]
    pub request_timeout: Option<Duration>,
    /// Most connections served at once (default 4096); more wait.
    #[arg(long, env = "POSTERN_MAX_CONNECTIONS", help_heading = heading::SERVER)]
    pub max_connections: Option<usize>,
    /// Serve /metrics on this address instead of the main listener.
    #[arg(long, env = "POSTERN_METRICS_LISTEN", value_name = "ADDR", help_heading = heading::SERVER)]
    pub metrics_listen: Option<SocketAddr>,
    /// Gate mode: a PEM file of private CA certificates, trusted beside the
    /// public and system roots by the https:// upstream and JWKS clients;
    /// with rediss:// it is the only root trusted. A missing or unparsable
    /// file stops the start.
    #[arg(long, env = "POSTERN_UPSTREAM_CA", value_name = "FILE", help_heading = heading::GATE)]
    pub upstream_ca: Option<PathBuf>,
    /// Gate mode: allow http:// and redis:// to hosts other than loopback
    /// (127.0.0.0/8, ::1, localhost). Refused by default: the client secret
    /// and every bearer token would cross the network in cleartext.
    #[arg(long, env = "POSTERN_ALLOW_INSECURE_UPSTREAM", help_heading = heading::GATE)]
    pub allow_insecure_upstream: bool,
    /// Log lines as text for people, or as one JSON object per line (for
    /// a log collector); `log_format` in the file.
    #[arg(long, env = "POSTERN_LOG_FORMAT", value_enum, help_heading = heading::SERVER)]
    pub log_format: Option<LogFormat>,
}

impl Config {
    /// Reads `path` if given (a missing explicit file is an error).
    pub fn from_file(path: Option<&Path>) -> Result<Self, ConfigError> {
        let Some(path) = path else {
            return Ok(Self::default());
        };
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|source| ConfigError::Parse {
            path: path.display().to_string(),
            source: Box::new(source),
        })
    }

    /// Applies environment and flag values over the file's.
    pub fn apply(mut self, o: &Overrides) -> Self {
        fn set<T: Clone>(slot: &mut T, value: &Option<T>) {
            if let Some(v) = value {
                *slot = v.clone();
            }
        }
        set(&mut self.listen, &o.listen);
        set(&mut self.data_dir, &o.data_dir);
        if o.instance_key_file.is_some() {
            self.instance_key_file = o.instance_key_file.clone();
        }
        set(&mut self.session.ttl, &o.ttl);
        set(&mut self.session.resume_window, &o.resume_window);
        set(&mut self.session.idle_timeout, &o.idle_timeout);
        set(&mut self.session.device_binding, &o.device_binding);
        set(&mut self.session.risk_threshold, &o.risk_threshold);
        set(
            &mut self.session.sensitive_operations,
            &o.sensitive_operations,
        );
        set(&mut self.session.last_seen_interval, &o.last_seen_interval);
        set(&mut self.auth.challenge_ttl, &o.challenge_ttl);
        set(&mut self.auth.reauth_max_age, &o.reauth_max_age);
        set(&mut self.max_body_bytes, &o.max_body_bytes);
        set(&mut self.session.mode, &o.session_mode);
        set(&mut self.auth.stages, &o.stages);
        set(&mut self.auth.audiences, &o.audiences);
        set(
            &mut self.auth.max_challenges_per_client,
            &o.max_challenges_per_client,
        );
        set(
            &mut self.auth.max_challenges_per_user,
            &o.max_challenges_per_user,
        );
        set(
            &mut self.passkeys.max_ceremonies_per_client,
            &o.max_ceremonies_per_client,
        );
        set(
            &mut self.passkeys.max_ceremonies_per_user,
            &o.max_ceremonies_per_user,
        );
        set(&mut self.passkeys.stages, &o.passkey_stages);
        set(&mut self.auth.biometric.mode, &o.biometric_mode);
        set(&mut self.auth.biometric.threshold, &o.biometric_threshold);
        set(&mut self.auth.biometric.turbo_deadline, &o.turbo_deadline);
        set(
            &mut self.auth.biometric.prepared_cache_mb,
            &o.biometric_prepared_cache_mb,
        );
        set(&mut self.session.jwt.ttl, &o.jwt_ttl);
        set(&mut self.session.jwt.issuer, &o.jwt_issuer);
        set(&mut self.session.jwt.audience, &o.jwt_audience);
        set(&mut self.session.jwt.algorithm, &o.jwt_algorithm);
        set(&mut self.session.cookie.name, &o.cookie_name);
        set(&mut self.session.cookie.same_site, &o.cookie_same_site);
        set(&mut self.passkeys.rp_id, &o.rp_id);
        set(&mut self.passkeys.origins, &o.origin);
        set(&mut self.passkeys.ceremony_ttl, &o.ceremony_ttl);
        for (slot, value) in [
            (
                &mut self.gate.upstream_introspection,
                &o.upstream_introspection,
            ),
            (&mut self.gate.upstream_revocation, &o.upstream_revocation),
            (&mut self.gate.client_id, &o.client_id),
            (&mut self.gate.upstream_auth1, &o.upstream_auth1),
            (&mut self.gate.upstream_jwks, &o.upstream_jwks),
        ] {
            if value.is_some() {
                slot.clone_from(value);
            }
        }
        set(&mut self.gate.jwks_interval, &o.jwks_interval);
        if o.miss_rate_per_client.is_some() {
            self.gate.miss_rate_per_client = o.miss_rate_per_client;
        }
        if let Some(secret) = &o.client_secret {
            self.gate.client_secret = Some(Secret(secret.clone()));
        }
        if let Some(url) = &o.redis {
            self.gate.redis = Some(Secret(url.clone()));
        }
        set(&mut self.gate.revocation_max_lag, &o.revocation_max_lag);
        set(&mut self.trusted_proxies, &o.trusted_proxies);
        if o.redis_feed_key_file.is_some() {
            self.gate
                .redis_feed_key_file
                .clone_from(&o.redis_feed_key_file);
        }
        if let Some(key) = &o.redis_feed_key {
            self.gate.redis_feed_key = Some(Secret(key.clone()));
        }
        set(&mut self.header_read_timeout, &o.header_read_timeout);
        set(&mut self.request_timeout, &o.request_timeout);
        set(&mut self.max_connections, &o.max_connections);
        set(&mut self.log_format, &o.log_format);
        if o.metrics_listen.is_some() {
            self.metrics_listen = o.metrics_listen;
        }
        if o.upstream_ca.is_some() {
            self.gate.ca_file.clone_from(&o.upstream_ca);
        }
        if o.allow_insecure_upstream {
            self.gate.allow_insecure_upstream = true;
        }
        self
    }

    /// The resume policy these settings describe, validated.
    pub fn policy(&self) -> Result<ResumePolicy, ConfigError> {
        let policy = ResumePolicy {
            ttl: nanos(self.session.ttl),
            resume_window: nanos(self.session.resume_window),
            idle_timeout: nanos(self.session.idle_timeout),
            device_binding: match self.session.device_binding {
                BindingMode::Required => DeviceBinding::Required,
                BindingMode::Off => DeviceBinding::Off,
            },
            risk_threshold: self.session.risk_threshold,
            sensitive_operations: self.session.sensitive_operations.clone(),
        };
        policy.validate()?;
        Ok(policy)
    }

    pub fn authority(&self) -> Result<AuthorityConfig, ConfigError> {
        if self.session.last_seen_interval.is_zero() {
            return Err(ConfigError::Invalid("last_seen_interval must be positive"));
        }
        Ok(AuthorityConfig {
            policy: self.policy()?,
            last_seen_interval: nanos(self.session.last_seen_interval),
            expired_retention: nanos(self.session.expired_retention),
        })
    }

    /// Checks everything that `serve` relies on.
    ///
    /// Of the stage lists: see `biometric_after_a_credential`.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.authority()?;
        if self.auth.challenge_ttl.is_zero() {
            return Err(ConfigError::Invalid("challenge_ttl must be positive"));
        }
        if self.auth.max_challenges_per_client == 0 || self.auth.max_challenges_per_user == 0 {
            return Err(ConfigError::Invalid(
                "max_challenges_per_client and max_challenges_per_user must be positive",
            ));
        }
        if self.auth.reauth_max_age.is_zero() {
            return Err(ConfigError::Invalid("reauth_max_age must be positive"));
        }
        if self.header_read_timeout.is_zero()
            || self.request_timeout.is_zero()
            || self.max_connections == 0
            || self.max_connections > u32::MAX as usize
        {
            return Err(ConfigError::Invalid(
                "header_read_timeout and request_timeout must be positive, \
                 max_connections from 1 to 4294967295",
            ));
        }
        if self.max_body_bytes < 256 {
            return Err(ConfigError::Invalid("max_body_bytes must be at least 256"));
        }
        if self
            .auth
            .audiences
            .iter()
            .any(|a| audience_origin(a).is_none())
        {
            return Err(ConfigError::Invalid(
                "auth.audiences are http(s) origins such as https://auth.example.com",
            ));
        }
        if self.auth.stages.is_empty() {
            return Err(ConfigError::Invalid(
                "at least one full-authentication stage is required",
            ));
        }
        self.session.cookie.validate()?;
        if !self.passkeys.stages.iter().any(|s| s == "passkey") {
            return Err(ConfigError::Invalid(
                "passkeys.stages must include the passkey stage",
            ));
        }
        if self.auth.stages.iter().any(|s| s == "passkey") {
            return Err(ConfigError::Invalid(
                "the passkey stage runs in passkey logins (passkeys.stages), not in auth.stages",
            ));
        }
        biometric_after_a_credential(&self.auth.stages, "auth.stages")?;
        biometric_after_a_credential(&self.passkeys.stages, "passkeys.stages")?;
        let b = &self.auth.biometric;
        if !(b.threshold > 0.0 && b.threshold <= 1.0) {
            return Err(ConfigError::Invalid(
                "auth.biometric.threshold is a cosine similarity in (0, 1]",
            ));
        }
        if b.turbo_batch == 0 || b.turbo_batch > 32 || b.turbo_deadline > Duration::from_secs(1) {
            return Err(ConfigError::Invalid(
                "auth.biometric: turbo_batch is 1 to 32 and turbo_deadline at most 1 s",
            ));
        }
        // 1 TiB: far beyond any machine this runs on, and small enough that
        // the byte count cannot overflow.
        if b.prepared_cache_mb > 1 << 20 {
            return Err(ConfigError::Invalid(
                "auth.biometric.prepared_cache_mb is at most 1048576 (1 TiB)",
            ));
        }
        if self.session.jwt.ttl.is_zero()
            || self.session.jwt.issuer.trim().is_empty()
            || self.session.jwt.audience.trim().is_empty()
        {
            return Err(ConfigError::Invalid(
                "session.jwt needs a positive ttl, a non-empty issuer and a non-empty audience",
            ));
        }
        self.passkeys.relying_party()?;
        self.validate_gate()
    }

    fn validate_gate(&self) -> Result<(), ConfigError> {
        let g = &self.gate;
        if g.upstream_introspection.is_some() && g.upstream_auth1.is_some() {
            return Err(ConfigError::Invalid(
                "choose one upstream: --upstream-introspection or --upstream-auth1",
            ));
        }
        if g.upstream_introspection.is_some()
            && (g.client_id.is_none() || g.client_secret.is_none())
        {
            return Err(ConfigError::Invalid(
                "--upstream-introspection needs --client-id and --client-secret",
            ));
        }
        if g.enabled()
            && (g.max_ttl.is_zero()
                || g.ttl_without_expiry.is_zero()
                || g.upstream_timeout.is_zero())
        {
            return Err(ConfigError::Invalid("gate durations must be positive"));
        }
        if g.redis.is_some() && !g.enabled() {
            return Err(ConfigError::Invalid(
                "--redis shares the gate's logouts between instances and needs gate mode \
                 (--upstream-introspection or --upstream-auth1); Postern's own sessions \
                 are not shared through Redis yet",
            ));
        }
        if g.redis.is_some()
            && (g.revocation_max_lag < 3 * postern_tower::redis_feed::POLL
                || g.redis_stream.is_empty())
        {
            return Err(ConfigError::Invalid(
                "revocation_max_lag must be at least 3s (an idle feed reports once a second) \
                 and redis_stream must not be empty",
            ));
        }
        if g.max_revocations == 0 {
            return Err(ConfigError::Invalid(
                "gate.max_revocations must be positive",
            ));
        }
        if g.miss_rate_per_client
            .is_some_and(|r| !(r.is_finite() && r >= 0.0))
            || g.miss_burst_per_client.is_nan()
            || g.miss_burst_per_client < 1.0
        {
            return Err(ConfigError::Invalid(
                "miss_rate_per_client must be 0 (off) or positive, and miss_burst_per_client at least 1",
            ));
        }
        // Cleartext first: its message names the setting and the host.
        self.validate_transport()?;
        if let Some(url) = &g.redis {
            check_redis_url(&url.0, g.allow_insecure_upstream)?;
            if g.redis_feed_key.is_none() && g.redis_feed_key_file.is_none() {
                return Err(ConfigError::Invalid(
                    "--redis needs the key that authenticates the revocation feed: \
                     POSTERN_REDIS_FEED_KEY or --redis-feed-key-file (the same on every \
                     instance, 32 bytes or more; e.g. `openssl rand -hex 32`)",
                ));
            }
        }
        Ok(())
    }

    /// Refuses cleartext URLs to hosts other than loopback unless
    /// `allow_insecure_upstream`; names the setting and the host only (a
    /// URL may hold a password).
    fn validate_transport(&self) -> Result<(), ConfigError> {
        let g = &self.gate;
        if g.ca_file.is_some() && !g.enabled() {
            return Err(ConfigError::Invalid(
                "--upstream-ca is for gate mode's upstream (--upstream-introspection or --upstream-auth1)",
            ));
        }
        if g.allow_insecure_upstream {
            return Ok(());
        }
        let urls = [
            (
                "--upstream-introspection",
                g.upstream_introspection.as_deref(),
            ),
            ("--upstream-revocation", g.upstream_revocation.as_deref()),
            ("--upstream-auth1", g.upstream_auth1.as_deref()),
            ("--upstream-jwks", g.upstream_jwks.as_deref()),
            ("--redis", g.redis.as_ref().map(|s| s.0.as_str())),
        ];
        for (setting, url) in urls {
            if let Some(host) = url.and_then(postern_tower::tls::cleartext_remote_host) {
                return Err(ConfigError::Cleartext { setting, host });
            }
        }
        Ok(())
    }

    pub fn instance_key_path(&self) -> PathBuf {
        self.instance_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("instance.key"))
    }
}

/// Refuses a Redis URL that would send revocations (and the Redis
/// password) in the clear, or to a Redis anyone on the path could write to:
/// a host other than loopback needs TLS (`rediss://`) and a password (AUTH).
/// `allow_insecure` (`--allow-insecure-upstream`) waives TLS, never the
/// password. Unix sockets and loopback hosts are accepted as they are.
pub fn check_redis_url(url: &str, allow_insecure: bool) -> Result<(), ConfigError> {
    const NOT_LOOPBACK: &str = "--redis to a host other than loopback needs TLS and AUTH: \
         rediss://:password@host:port (or rediss://user:password@host:port)";
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err(ConfigError::Invalid(
            "--redis is not a redis:// or rediss:// URL",
        ));
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "unix" || scheme == "redis+unix" {
        return Ok(());
    }
    if scheme != "redis" && scheme != "rediss" {
        return Err(ConfigError::Invalid(
            "--redis is not a redis:// or rediss:// URL",
        ));
    }
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (userinfo, host_port) = match authority.rsplit_once('@') {
        Some((userinfo, host_port)) => (Some(userinfo), host_port),
        None => (None, authority),
    };
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => host_port.split(':').next().unwrap_or_default(),
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback());
    if loopback {
        return Ok(());
    }
    let password = userinfo
        .and_then(|u| u.split_once(':'))
        .is_some_and(|(_, password)| !password.is_empty());
    if (scheme == "rediss" || allow_insecure) && password {
        Ok(())
    } else {
        Err(ConfigError::Invalid(NOT_LOOPBACK))
    }
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// Refuses a stage list in which `biometric` runs without an `identity`
/// or `passkey` stage before it (`list` names the setting in the error).
///
/// Why: a biometric match alone is not a credential. A random probe passes
/// about 1 in 166 tries at the default threshold, a probe is not bound to
/// the login's challenge, and the stage names no credential, so the session
/// it mints is one no identity revocation or passkey removal can reach.
/// It adds assurance after a credential; it never replaces one.
fn biometric_after_a_credential(stages: &[String], list: &'static str) -> Result<(), ConfigError> {
    let Some(at) = stages.iter().position(|s| s == "biometric") else {
        return Ok(());
    };
    if stages[..at]
        .iter()
        .any(|s| s == "identity" || s == "passkey")
    {
        return Ok(());
    }
    Err(ConfigError::Invalid(match list {
        "auth.stages" => "auth.stages: biometric must come after identity: a biometric match alone is not a credential (it is not bound to the challenge and names no credential that revocation can reach)",
        _ => "passkeys.stages: biometric must come after passkey or identity: a biometric match alone is not a credential (it is not bound to the challenge and names no credential that revocation can reach)",
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_follow_owasp() {
        let c = Config::default();
        c.validate().unwrap();
        assert_eq!(c.session.idle_timeout, Duration::from_secs(30 * 60));
        assert_eq!(c.session.ttl, Duration::from_secs(8 * 3600));
    }

    #[test]
    fn file_then_env_then_flags_later_ones_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9000\"\n[session]\nttl = \"2h\"\nresume_window = \"10m\"\n",
        )
        .unwrap();
        let file = Config::from_file(Some(&path)).unwrap();
        assert_eq!(file.session.ttl, Duration::from_secs(7200));
        let merged = file.apply(&Overrides {
            ttl: Some(Duration::from_secs(60)),
            resume_window: Some(Duration::from_secs(30)),
            ..Default::default()
        });
        assert_eq!(merged.session.ttl, Duration::from_secs(60));
        assert_eq!(merged.listen, "127.0.0.1:9000".parse().unwrap());
        merged.validate().unwrap();
    }

    #[test]
    fn bad_files_and_policies_are_refused_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[session]\nttl = \"forever\"\n").unwrap();
        assert!(matches!(
            Config::from_file(Some(&path)),
            Err(ConfigError::Parse { .. })
        ));
        std::fs::write(&path, "unknown_key = 1\n").unwrap();
        assert!(matches!(
            Config::from_file(Some(&path)),
            Err(ConfigError::Parse { .. })
        ));
        assert!(matches!(
            Config::from_file(Some(&dir.path().join("missing.toml"))),
            Err(ConfigError::Read { .. })
        ));
        let c = Config::default().apply(&Overrides {
            resume_window: Some(Duration::from_secs(9 * 3600)),
            ..Default::default()
        });
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Policy(PolicyError::BadResumeWindow))
        ));
    }

    #[test]
    fn session_mode_cookie_and_passkey_settings_layer_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        std::fs::write(
            &path,
            "[session]\nmode = \"cookie\"\n[session.cookie]\nsame_site = \"strict\"\nmax_age = \"10m\"\n\
             [passkeys]\nrp_id = \"example.com\"\norigin = \"https://login.example.com\"\n",
        )
        .unwrap();
        let file = Config::from_file(Some(&path)).unwrap();
        assert_eq!(file.session.mode, SessionMode::Cookie);
        assert_eq!(file.session.cookie.same_site, SameSite::Strict);
        assert_eq!(file.session.cookie.max_age, Some(Duration::from_secs(600)));
        assert_eq!(file.session.cookie.name, "__Host-postern");
        file.validate().unwrap();
        let merged = file.apply(&Overrides {
            session_mode: Some(SessionMode::Bearer),
            cookie_name: Some("sid".into()),
            origin: Some(vec!["http://localhost:9999".into()]),
            rp_id: Some("localhost".into()),
            ..Default::default()
        });
        assert_eq!(merged.session.mode, SessionMode::Bearer);
        assert_eq!(merged.session.cookie.name, "sid");
        let rp = merged.passkeys.relying_party().unwrap();
        assert_eq!(rp.origins.len(), 1);
        assert_eq!(rp.origins[0].as_str(), "http://localhost:9999/");
        assert_eq!(rp.rp_id, "localhost");

        let invalid = |cookie: CookieConfig| {
            let mut c = Config::default();
            c.session.cookie = cookie;
            match c.validate() {
                Err(ConfigError::Invalid(m)) => m,
                other => panic!("expected a refusal, got {other:?}"),
            }
        };
        let host = CookieConfig::default();
        assert!(invalid(CookieConfig {
            secure: false,
            ..host.clone()
        })
        .contains("__Host-"));
        assert!(invalid(CookieConfig {
            path: "/app".into(),
            ..host.clone()
        })
        .contains("__Host-"));
        assert!(invalid(CookieConfig {
            name: "bad name".into(),
            ..host.clone()
        })
        .contains("token"));
        let plain = CookieConfig {
            name: "sid".into(),
            secure: false,
            ..host
        };
        assert!(invalid(CookieConfig {
            same_site: SameSite::None,
            ..plain.clone()
        })
        .contains("SameSite=None"));
        assert!(invalid(CookieConfig {
            path: "/a;b".into(),
            ..plain.clone()
        })
        .contains("path"));
        let mut ok = Config::default();
        ok.session.cookie = plain;
        ok.validate().unwrap();

        for origin in ["localhost:8080", "ftp://localhost", "http://localhost/path"] {
            let c = Config::default().apply(&Overrides {
                origin: Some(vec!["http://localhost:8080".into(), origin.into()]),
                ..Default::default()
            });
            assert!(
                matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("origin")),
                "{origin}"
            );
        }
    }

    #[test]
    fn gate_settings_are_checked() {
        let both = Config::default().apply(&Overrides {
            upstream_introspection: Some("http://a".into()),
            upstream_auth1: Some("https://b".into()),
            client_id: Some("c".into()),
            client_secret: Some("s".into()),
            ..Default::default()
        });
        assert!(
            matches!(both.validate(), Err(ConfigError::Invalid(m)) if m.contains("choose one upstream"))
        );
        let no_secret = Config::default().apply(&Overrides {
            upstream_introspection: Some("http://a".into()),
            ..Default::default()
        });
        assert!(
            matches!(no_secret.validate(), Err(ConfigError::Invalid(m)) if m.contains("--client-id"))
        );
        let bad_rate = Config::default().apply(&Overrides {
            upstream_auth1: Some("https://b".into()),
            miss_rate_per_client: Some(-1.0),
            ..Default::default()
        });
        assert!(
            matches!(bad_rate.validate(), Err(ConfigError::Invalid(m)) if m.contains("miss_rate_per_client"))
        );
        let ok = Config::default().apply(&Overrides {
            upstream_auth1: Some("https://b".into()),
            ..Default::default()
        });
        assert_eq!(ok.validate().map_err(|e| e.to_string()), Ok(()));

        let redis_alone = Config::default().apply(&Overrides {
            redis: Some("redis://127.0.0.1:6379".into()),
            ..Default::default()
        });
        assert!(
            matches!(redis_alone.validate(), Err(ConfigError::Invalid(m)) if m.contains("needs gate mode"))
        );
        let too_short = Config::default().apply(&Overrides {
            upstream_auth1: Some("https://b".into()),
            redis: Some("redis://127.0.0.1:6379".into()),
            revocation_max_lag: Some(std::time::Duration::from_secs(2)),
            ..Default::default()
        });
        assert!(
            matches!(too_short.validate(), Err(ConfigError::Invalid(m)) if m.contains("at least 3s"))
        );
        let keyless = Config::default().apply(&Overrides {
            upstream_auth1: Some("https://b".into()),
            redis: Some("redis://:pw@127.0.0.1:6379".into()),
            ..Default::default()
        });
        assert!(
            matches!(keyless.validate(), Err(ConfigError::Invalid(m)) if m.contains("POSTERN_REDIS_FEED_KEY"))
        );
        let shared = Config::default().apply(&Overrides {
            upstream_auth1: Some("https://b".into()),
            redis: Some("redis://:pw@127.0.0.1:6379".into()),
            redis_feed_key: Some("k".repeat(32)),
            ..Default::default()
        });
        assert_eq!(shared.validate().map_err(|e| e.to_string()), Ok(()));
        assert!(
            !format!("{shared:?}").contains("pw@"),
            "the Redis URL is redacted in debug output"
        );
    }

    #[test]
    fn biometric_must_follow_identity_or_passkey_in_every_stage_list() {
        let refused = |auth: &[&str], passkeys: &[&str]| {
            let mut c = Config::default();
            c.auth.stages = auth.iter().map(|s| s.to_string()).collect();
            c.passkeys.stages = passkeys.iter().map(|s| s.to_string()).collect();
            match c.validate() {
                Err(ConfigError::Invalid(m)) => Some(m.split(':').next().unwrap_or_default()),
                Err(other) => panic!("unexpected error {other}"),
                Ok(()) => None,
            }
        };
        assert_eq!(refused(&["biometric"], &["passkey"]), Some("auth.stages"));
        assert_eq!(
            refused(&["biometric", "identity"], &["passkey"]),
            Some("auth.stages")
        );
        assert_eq!(
            refused(&["identity"], &["biometric", "passkey"]),
            Some("passkeys.stages")
        );
        assert_eq!(refused(&["identity", "biometric"], &["passkey"]), None);
        assert_eq!(refused(&["identity"], &["passkey", "biometric"]), None);
        assert_eq!(
            refused(&["identity"], &["identity", "biometric", "passkey"]),
            None
        );
        let mut c = Config::default();
        c.auth.stages = vec!["biometric".into()];
        assert_eq!(
            c.validate().map_err(|e| e.to_string()),
            Err("auth.stages: biometric must come after identity: a biometric match alone is not a credential (it is not bound to the challenge and names no credential that revocation can reach)".to_string())
        );
    }

    #[test]
    fn redis_outside_loopback_needs_tls_and_a_password() {
        for ok in [
            "redis://127.0.0.1:6379",
            "redis://localhost",
            "redis://[::1]:6379/0",
            "redis://user:pw@127.0.0.2",
            "unix:///run/redis.sock",
            "rediss://:pw@redis.internal:6380",
            "rediss://postern:pw@10.0.0.5/2",
        ] {
            assert_eq!(
                check_redis_url(ok, false).map_err(|e| e.to_string()),
                Ok(()),
                "{ok}"
            );
        }
        for refused in [
            "redis://redis.internal:6379",
            "redis://:pw@10.0.0.5:6379",
            "rediss://redis.internal:6380",
            "rediss://user@redis.internal",
            "rediss://user:@redis.internal",
            "http://127.0.0.1",
            "127.0.0.1:6379",
        ] {
            assert!(check_redis_url(refused, false).is_err(), "{refused}");
        }
        // --allow-insecure-upstream waives TLS, never AUTH.
        assert_eq!(
            check_redis_url("redis://:pw@10.0.0.5:6379", true).map_err(|e| e.to_string()),
            Ok(())
        );
        assert!(check_redis_url("redis://redis.internal:6379", true).is_err());
    }

    #[test]
    fn cleartext_to_a_remote_upstream_is_refused_unless_allowed_and_a_ca_needs_the_gate() {
        let refused = |o: Overrides| match Config::default().apply(&o).validate() {
            Err(e @ ConfigError::Cleartext { .. }) => e.to_string(),
            other => panic!("expected a cleartext refusal, got {other:?}"),
        };
        let message = refused(Overrides {
            upstream_auth1: Some("http://idp.example.com/auth".into()),
            ..Default::default()
        });
        assert!(
            message.starts_with(
                "--upstream-auth1: cleartext to `idp.example.com`, which is not loopback, is refused"
            ),
            "{message}"
        );
        let message = refused(Overrides {
            upstream_introspection: Some("https://idp.example.com/i".into()),
            upstream_revocation: Some("http://10.0.0.2/revoke".into()),
            client_id: Some("c".into()),
            client_secret: Some("s".into()),
            ..Default::default()
        });
        assert!(
            message.starts_with("--upstream-revocation: cleartext to `10.0.0.2`"),
            "{message}"
        );
        let message = refused(Overrides {
            upstream_auth1: Some("https://idp.example.com".into()),
            redis: Some("redis://:hunter2@cache.example.com:6379".into()),
            ..Default::default()
        });
        assert!(
            message.starts_with("--redis: cleartext to `cache.example.com`"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "{message}");

        for url in [
            "http://127.0.0.1:9000",
            "http://localhost",
            "http://[::1]:80",
        ] {
            let loopback = Config::default().apply(&Overrides {
                upstream_auth1: Some(url.into()),
                redis: Some("redis://127.0.0.1:6379".into()),
                redis_feed_key: Some("k".repeat(32)),
                ..Default::default()
            });
            assert_eq!(
                loopback.validate().map_err(|e| e.to_string()),
                Ok(()),
                "{url}"
            );
        }
        let allowed = Config::default().apply(&Overrides {
            upstream_auth1: Some("http://idp.example.com".into()),
            // The flag waives TLS, never Redis AUTH.
            redis: Some("redis://:pw@cache.example.com".into()),
            redis_feed_key: Some("k".repeat(32)),
            allow_insecure_upstream: true,
            ..Default::default()
        });
        assert_eq!(allowed.validate().map_err(|e| e.to_string()), Ok(()));

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        std::fs::write(
            &path,
            "[gate]\nupstream_auth1 = \"http://idp.example.com\"\nallow_insecure_upstream = true\nca_file = \"/etc/postern/ca.pem\"\n",
        )
        .unwrap();
        let file = Config::from_file(Some(&path)).unwrap();
        assert!(file.gate.allow_insecure_upstream);
        assert_eq!(
            file.gate.ca_file,
            Some(PathBuf::from("/etc/postern/ca.pem"))
        );
        assert_eq!(file.validate().map_err(|e| e.to_string()), Ok(()));
        let flag = Config::default().apply(&Overrides {
            upstream_ca: Some(PathBuf::from("ca.pem")),
            ..Default::default()
        });
        assert!(
            matches!(flag.validate(), Err(ConfigError::Invalid(m)) if m.starts_with("--upstream-ca is for gate mode")),
        );
    }

    #[test]
    fn stage_lists_jwt_and_biometric_settings_are_checked() {
        assert!(Config::default().validate().is_ok());
        let mut c = Config::default();
        c.passkeys.stages = vec!["biometric".into()];
        assert!(
            c.validate().is_err(),
            "a passkey login needs the passkey stage"
        );
        let mut c = Config::default();
        c.auth.stages.push("passkey".into());
        assert!(
            c.validate().is_err(),
            "the passkey stage is not a full-auth stage"
        );
        let mut c = Config::default();
        c.session.jwt.ttl = Duration::ZERO;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.auth.biometric.threshold = 1.5;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.auth.biometric.turbo_batch = 33;
        assert!(c.validate().is_err());
        let mut c = Config::default();
        c.auth.biometric.prepared_cache_mb = (1 << 20) + 1;
        assert!(c.validate().is_err());
        assert_eq!(Config::default().auth.biometric.prepared_cache_mb, 128);
        let o = Overrides {
            stages: Some(vec!["identity".into(), "biometric".into()]),
            passkey_stages: Some(vec!["passkey".into(), "biometric".into()]),
            biometric_mode: Some(BiometricModeName::Turbo),
            biometric_prepared_cache_mb: Some(0),
            jwt_ttl: Some(Duration::from_secs(60)),
            ..Overrides::default()
        };
        let merged = Config::default().apply(&o);
        assert_eq!(merged.auth.biometric.prepared_cache_mb, 0);
        assert_eq!(merged.auth.stages, ["identity", "biometric"]);
        assert_eq!(merged.passkeys.stages, ["passkey", "biometric"]);
        assert_eq!(merged.auth.biometric.mode, BiometricModeName::Turbo);
        assert_eq!(merged.session.jwt.ttl, Duration::from_secs(60));
        assert!(merged.validate().is_ok());
    }

    #[test]
    fn several_passkey_origins_come_from_a_list_or_repeated_flags_and_are_all_audiences() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("postern.toml");
        for (origin, expected) in [
            (
                "origin = \"https://app.example.com\"",
                &["https://app.example.com"][..],
            ),
            (
                "origin = [\"https://app.example.com\", \"https://admin.example.com:8443/\"]",
                &["https://app.example.com", "https://admin.example.com:8443"][..],
            ),
            (
                "origins = [\"https://admin.example.com\"]",
                &["https://admin.example.com"][..],
            ),
        ] {
            std::fs::write(
                &path,
                format!("[passkeys]\nrp_id = \"example.com\"\n{origin}\n"),
            )
            .unwrap();
            let file = Config::from_file(Some(&path)).unwrap();
            file.validate().unwrap();
            let rp = file.passkeys.relying_party().unwrap();
            let origins: Vec<String> = rp
                .origins
                .iter()
                .map(|o| o.origin().ascii_serialization())
                .collect();
            assert_eq!(origins, expected, "{origin}");
        }

        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            overrides: Overrides,
        }
        let flags = <Flags as clap::Parser>::try_parse_from([
            "postern",
            "--origin",
            "http://localhost:8080",
            "--origin",
            "http://localhost:9090",
        ])
        .unwrap();
        let merged = Config::default().apply(&flags.overrides);
        merged.validate().unwrap();
        assert_eq!(
            merged.passkeys.origins,
            ["http://localhost:8080", "http://localhost:9090"]
        );
        let addr: std::net::SocketAddr = "127.0.0.1:4321".parse().unwrap();
        assert_eq!(
            merged
                .auth
                .resolved_audiences(addr, &merged.passkeys.origins)
                .unwrap(),
            [
                "http://127.0.0.1:4321",
                "http://localhost:4321",
                "http://localhost:8080",
                "http://localhost:9090"
            ],
            "every passkey origin is a default audience"
        );

        let mut empty = Config::default();
        empty.passkeys.origins.clear();
        assert!(
            matches!(empty.validate(), Err(ConfigError::Invalid(m)) if m.contains("at least one origin"))
        );
    }

    #[test]
    fn audiences_default_to_the_listen_address_and_the_passkey_origin() {
        let addr: std::net::SocketAddr = "127.0.0.1:4321".parse().unwrap();
        let auth = AuthConfig::default();
        assert_eq!(
            auth.resolved_audiences(addr, &["http://localhost:8080".into()])
                .unwrap(),
            [
                "http://127.0.0.1:4321",
                "http://localhost:4321",
                "http://localhost:8080"
            ]
        );
        let configured = AuthConfig {
            audiences: vec![
                "https://auth.example.com:443/".into(),
                "https://auth.example.com".into(),
            ],
            ..AuthConfig::default()
        };
        assert_eq!(
            configured
                .resolved_audiences(addr, &["http://localhost:8080".into()])
                .unwrap(),
            ["https://auth.example.com"],
            "configured audiences replace the defaults, as origins, once each"
        );
        let mut c = Config::default();
        c.auth.audiences = vec!["https://auth.example.com/login".into()];
        assert!(
            matches!(c.validate(), Err(ConfigError::Invalid(m)) if m.contains("audiences")),
            "an audience is an origin, not a page"
        );
    }
}
