//! Building the server from configuration and running it until shutdown.
//!
//! [`open`] does everything that can fail before a port is bound: validate
//! the configuration, open (or create) the keys and the redb database, and
//! restore every stored session into the hot tier (unsealed, signature
//! verified once). [`run`] then serves a listener until the `shutdown`
//! future completes: it stops accepting, lets in-flight requests finish,
//! stops the maintenance task, and flushes activity to the store.

use std::future::Future;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use postern_auth::biometric::{
    threshold_for_cosine, Batcher, BatcherConfig, BiometricMode, BiometricStage, Evaluator,
    KeyHolder, LocalKeyHolder, PreparedCache,
};
use postern_auth::challenge::ChallengeBook;
use postern_auth::identity::IdentityStage;
use postern_auth::passkey::PasskeyStage;
use postern_auth::pipeline::Pipeline;
use postern_auth::proof_cache::ProofCache;
use postern_auth::relying_party::RelyingParty;
use postern_auth::stage::Stage;
use postern_core::keyring::InstanceKey;
use postern_store::batch_mint::{BatchConfig as MintBatchConfig, MintBatcher};
use postern_store::embedded::RedbStore;
use postern_store::{RestoreReport, SessionAuthority, SessionStore, StoreError};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::{nanos, Config, ConfigError, GateSettings};
use crate::config::{BiometricModeName, SessionMode};
use crate::cookie::SessionCookie;
use crate::jwt::JwtKeys;
use crate::keys::{self, InstanceSource, KeyError};
use crate::metrics::Metrics;
use crate::routes::jwt::JwtDelivery;
use crate::routes::App;
use crate::state::{AppState, Biometric, Clock, Delivery, Shared};
use postern_cache::sweeper::Sweeper;
use postern_cache::CacheConfig;
use postern_core::row_auth::RowKey;
use postern_tower::ratelimit::MissLimiter;
use postern_tower::redis_feed::{FeedKey, RedisFeedError, RedisRevocations};
use postern_tower::tls::TrustRoots;
use postern_tower::upstream::Upstream;
use postern_tower::{Gate, GateConfig};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("cannot open the session database: {0}")]
    Store(#[from] StoreError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("unknown stage `{0}` (full authentication: identity, biometric; passkey logins: passkey, identity, biometric)")]
    UnknownStage(String),
    #[error(transparent)]
    Passkeys(#[from] postern_auth::relying_party::PasskeyError),
    #[error("invalid gate upstream: {0}")]
    Upstream(#[from] postern_tower::upstream::UpstreamConfigError),
    #[error("--redis: {0}")]
    Redis(#[from] RedisFeedError),
    #[error("cannot read the Redis feed key file {path}: {source}")]
    FeedKey {
        path: String,
        source: std::io::Error,
    },
    #[error("--upstream-ca: {0}")]
    Trust(#[from] postern_tower::tls::TrustError),
    #[error("cannot start the biometric stage: {0}")]
    Biometric(#[from] postern_auth::biometric::BiometricError),
    #[error("cannot start the mint batcher: {0}")]
    Thread(std::io::Error),
    #[error("cannot make the JWT signing keys: {0}")]
    Jwt(#[from] crate::jwt::JwtError),
    #[error("the keyring file is an older copy (revision {file}, but revision {seen} was in use here): it was rolled back; restore the newest keyring.bin")]
    KeyringRolledBack { file: u64, seen: u64 },
}

/// What opening found, for the startup log.
#[derive(Debug)]
pub struct Opened {
    pub state: AppState,
    pub restore: RestoreReport,
    pub instance_source: InstanceSource,
    pub created_keyring: bool,
    pub key_generation: u32,
}

/// What a stage name in the configuration can be built from.
struct StageParts<'a> {
    proofs: &'a Arc<ProofCache>,
    biometric: Option<&'a BiometricStage>,
    passkeys: Option<&'a RelyingParty>,
}

fn stage_named(name: &str, parts: &StageParts<'_>) -> Result<Box<dyn Stage>, StartError> {
    match (name, parts.biometric, parts.passkeys) {
        ("identity", _, _) => Ok(Box::new(IdentityStage::with_cache(parts.proofs.clone()))),
        ("biometric", Some(stage), _) => Ok(Box::new(stage.clone())),
        ("passkey", _, Some(passkeys)) => Ok(Box::new(PasskeyStage::new(passkeys))),
        (other, _, _) => Err(StartError::UnknownStage(other.to_string())),
    }
}

/// The biometric stage and what the HTTP layer needs of it.
struct BuiltBiometric {
    stage: BiometricStage,
    public: Biometric,
    turbo: bool,
}

/// The key holder (in-process, from the wrapped seed), the evaluator and
/// the stage in the configured mode.
fn build_biometric(config: &Config, instance: &InstanceKey) -> Result<BuiltBiometric, StartError> {
    let settings = &config.auth.biometric;
    let seed = keys::biometric_seed(config, instance)?;
    let key_holder: Arc<dyn KeyHolder> = Arc::new(LocalKeyHolder::from_seed(&seed)?);
    let public_key = key_holder.public_key().to_vec();
    let evaluator = Arc::new(Evaluator::new(&public_key)?);
    // Bounded by the configured budget (checked at most 1 TiB by validate).
    let mut prepared = PreparedCache::new(settings.prepared_cache_mb.saturating_mul(1 << 20));
    if settings.mode == BiometricModeName::Turbo {
        // Each user's template prepared at its own home lane (see
        // `postern_auth::biometric::cache`).
        prepared = prepared.with_home_lanes(settings.turbo_batch);
    }
    let prepared = Arc::new(prepared);
    let public = Biometric {
        public_key,
        evaluator: evaluator.clone(),
        prepared: prepared.clone(),
    };
    let threshold = threshold_for_cosine(settings.threshold);
    let (mode, turbo) = match settings.mode {
        BiometricModeName::Standard => (
            BiometricMode::Standard {
                evaluator,
                key_holder,
            },
            false,
        ),
        BiometricModeName::Turbo => {
            let batcher = Batcher::new(
                evaluator,
                key_holder,
                BatcherConfig {
                    max_lanes: settings.turbo_batch,
                    deadline: settings.turbo_deadline,
                },
            )?;
            (BiometricMode::Turbo(Arc::new(batcher)), true)
        }
    };
    Ok(BuiltBiometric {
        stage: BiometricStage::new(mode, threshold).with_prepared_cache(prepared),
        public,
        turbo,
    })
}

/// Opens keys and store and restores sessions.
/// Refuses a keyring file older than one this database has seen (a copy
/// put back to undo a rotation or revive a pruned generation), and records
/// a newer one.
fn check_keyring_revision(store: &RedbStore, file: u64) -> Result<(), StartError> {
    let seen = store.keyring_revision_seen()?;
    if file < seen {
        return Err(StartError::KeyringRolledBack { file, seen });
    }
    if file > seen {
        store.record_keyring_revision(file)?;
    }
    Ok(())
}

/// What the instance key derives the session-row tag key under.
const SESSION_ROW_KEY_LABEL: &str = "postern/session-rows/v1";

/// Opens everything `config` names. `listening_on` is the address the
/// server is bound to: with no `[auth] audiences` configured, identity proofs
/// made for it are accepted.
pub fn open(
    config: &Config,
    listening_on: std::net::SocketAddr,
    clock: Arc<dyn Clock>,
) -> Result<Opened, StartError> {
    config.validate()?;
    let audiences = config
        .auth
        .resolved_audiences(listening_on, &config.passkeys.origins)?;
    // Before anything is written: a bad CA file stops the start clean.
    let upstream_trust = match &config.gate.ca_file {
        Some(path) => TrustRoots::from_pem_file(path)?,
        None => TrustRoots::builtin(),
    };
    create_private_dir(&config.data_dir).map_err(|source| StartError::DataDir {
        path: config.data_dir.display().to_string(),
        source,
    })?;
    let now = clock.now();
    let opened = keys::open_or_init(config, now)?;
    // Session rows carry a tag under a key only this instance derives, so
    // that a revocation cleared on disk reads back as tampered.
    let row_key = RowKey::from_bytes(opened.instance.derive_key(SESSION_ROW_KEY_LABEL));
    let redb = RedbStore::open(&config.data_dir.join("sessions.redb"))?.with_row_key(row_key);
    check_keyring_revision(&redb, opened.keyring.revision())?;
    let store: Arc<dyn SessionStore> = Arc::new(redb);
    let key_generation = opened.keyring.current().id();
    let (authority, restore) = SessionAuthority::restore(
        Arc::new(opened.keyring),
        store.clone(),
        config.authority()?,
        now,
    )?;
    let proofs = Arc::new(ProofCache::new(
        config.auth.max_outstanding_challenges.max(1) * 4,
    ));
    let biometric = if config
        .auth
        .stages
        .iter()
        .chain(&config.passkeys.stages)
        .any(|s| s == "biometric")
    {
        Some(build_biometric(config, &opened.instance)?)
    } else {
        None
    };
    let stages = config
        .auth
        .stages
        .iter()
        .map(|s| {
            let parts = StageParts {
                proofs: &proofs,
                biometric: biometric.as_ref().map(|b| &b.stage),
                passkeys: None,
            };
            stage_named(s, &parts)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let relying_party = config.passkeys.relying_party()?;
    let delivery = Delivery {
        mode: config.session.mode,
        cookie: SessionCookie::new(config.session.cookie.clone()),
        origins: relying_party
            .origins
            .iter()
            .map(|o| o.origin().ascii_serialization())
            .collect(),
    };
    let passkeys = RelyingParty::new(&relying_party)?;
    let passkey_parts = StageParts {
        proofs: &proofs,
        biometric: biometric.as_ref().map(|b| &b.stage),
        passkeys: Some(&passkeys),
    };
    let passkey_pipeline = Pipeline::new(
        config
            .passkeys
            .stages
            .iter()
            .map(|s| stage_named(s, &passkey_parts))
            .collect::<Result<Vec<_>, _>>()?,
    );
    let jwt = match config.session.mode {
        SessionMode::Jwt => Some(JwtDelivery {
            keys: JwtKeys::from_keyring(
                authority.keyring(),
                &config.session.jwt.issuer,
                config.session.jwt.algorithm,
            )?
            .with_audience(&config.session.jwt.audience),
            ttl: config.session.jwt.ttl,
        }),
        _ => None,
    };
    let metrics = Arc::new(Metrics::default());
    let built = build_gate(&config.gate, &upstream_trust, metrics.clone())?;
    let (gate, sweeper, revocation_feed) = match built {
        Some((gate, feed)) => {
            let sweeper = Sweeper::start(gate.cache().clone(), Duration::from_secs(1), 1_000)
                .map_err(|source| StartError::DataDir {
                    path: "gate sweeper thread".into(),
                    source,
                })?;
            (Some(gate), Some(sweeper), feed)
        }
        None => (None, None, None),
    };
    let authority = Arc::new(authority);
    // Turbo decides users in batches; their sessions then share one
    // attestation signature and one durable write.
    let mint_batcher = match &biometric {
        Some(b) if b.turbo => {
            let clock = clock.clone();
            Some(
                MintBatcher::start(
                    authority.clone(),
                    MintBatchConfig {
                        max: config.auth.biometric.turbo_batch,
                        deadline: config.auth.biometric.turbo_deadline,
                    },
                    Arc::new(move || clock.now()),
                )
                .map_err(StartError::Thread)?,
            )
        }
        _ => None,
    };
    let state = AppState(Arc::new(Shared {
        authority,
        biometric: biometric.map(|b| b.public),
        mint_batcher,
        store,
        challenges: ChallengeBook::new(
            nanos(config.auth.challenge_ttl),
            config.auth.max_outstanding_challenges,
            postern_auth::quota::ShareLimits {
                per_client: config.auth.max_challenges_per_client,
                per_user: config.auth.max_challenges_per_user,
            },
        ),
        pipeline: Pipeline::new(stages),
        proofs,
        reauth_max_age: nanos(config.auth.reauth_max_age),
        audiences,
        passkeys,
        passkey_pipeline,
        delivery,
        jwt,
        metrics,
        clock,
        gate,
        revocation_feed,
        trusted_proxies: crate::client_ip::TrustedProxies::new(config.trusted_proxies.clone()),
        upstream_trust,
        _sweeper: sweeper,
    }));
    Ok(Opened {
        state,
        restore,
        instance_source: opened.instance_source,
        created_keyring: opened.created_keyring,
        key_generation,
    })
}

/// The gate, and the feed that shares its revocations (with `--redis`).
type GateParts = (Arc<Gate>, Option<Arc<RedisRevocations>>);

/// Builds the gate when an upstream is configured, with the Redis feed
/// that shares its revocations when one is configured.
fn build_gate(
    settings: &GateSettings,
    trust: &TrustRoots,
    metrics: Arc<Metrics>,
) -> Result<Option<GateParts>, StartError> {
    let upstream = match (&settings.upstream_introspection, &settings.upstream_auth1) {
        (Some(url), None) => Upstream::introspection(
            url,
            settings.upstream_revocation.as_deref(),
            settings.client_id.as_deref().unwrap_or_default(),
            settings
                .client_secret
                .as_ref()
                .map(|s| s.0.as_str())
                .unwrap_or_default(),
        ),
        (None, Some(url)) => Upstream::auth1(url),
        _ => return Ok(None),
    }
    .and_then(|u| u.with_timeout(settings.upstream_timeout))
    .and_then(|u| u.with_trust(trust))?;
    let config = GateConfig {
        cache: CacheConfig {
            max_entries: settings.cache_max_entries,
            max_bytes: settings.cache_max_bytes,
            ..CacheConfig::default()
        },
        max_ttl: nanos(settings.max_ttl),
        ttl_without_expiry: nanos(settings.ttl_without_expiry),
        breaker_threshold: settings.breaker_threshold,
        breaker_cooldown: nanos(settings.breaker_cooldown),
        max_revocations: settings.max_revocations,
    };
    tracing::info!(
        upstream = upstream.name(),
        "gate mode: validating upstream tokens"
    );
    let mut gate = Gate::new(upstream, config).with_observer(metrics);
    if let Some(rate) = settings.miss_rate_per_client.filter(|&r| r > 0.0) {
        gate = gate.with_miss_limiter(MissLimiter::new(
            rate,
            settings.miss_burst_per_client,
            100_000,
        ));
    }
    let feed = match &settings.redis {
        Some(url) => {
            // Kept past the longest cache lifetime, with a margin for clocks.
            let keep_for = settings.max_ttl + Duration::from_secs(60);
            let feed = Arc::new(RedisRevocations::with_trust(
                &url.0,
                &settings.redis_stream,
                keep_for,
                feed_key(settings)?,
                trust,
            )?);
            gate = gate.with_shared_revocations(feed.clone(), nanos(settings.revocation_max_lag));
            tracing::info!(
                stream = %settings.redis_stream,
                "gate revocations shared through Redis"
            );
            Some(feed)
        }
        None => None,
    };
    Ok(Some((Arc::new(gate), feed)))
}

/// The key that authenticates the revocation feed: `POSTERN_REDIS_FEED_KEY`,
/// else the key file (a trailing newline ignored). Validation made sure
/// one is there.
fn feed_key(settings: &GateSettings) -> Result<FeedKey, StartError> {
    if let Some(key) = &settings.redis_feed_key {
        return Ok(FeedKey::new(key.0.trim_end().as_bytes())?);
    }
    let Some(path) = &settings.redis_feed_key_file else {
        return Err(RedisFeedError::ShortKey.into());
    };
    let bytes =
        zeroize::Zeroizing::new(std::fs::read(path).map_err(|source| StartError::FeedKey {
            path: path.display().to_string(),
            source,
        })?);
    let end = bytes
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    Ok(FeedKey::new(&bytes[..end])?)
}

/// Creates the data directory with mode 0700 if it does not exist yet (an
/// existing directory keeps the permissions its owner chose).
fn create_private_dir(path: &std::path::Path) -> std::io::Result<()> {
    if path.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)
}

/// Serves until `shutdown` completes, then drains and flushes.
/// `metrics_listener` serves `/metrics` alone (`--metrics-listen`); the
/// main listener then answers 404 there.
pub async fn run<F>(
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    state: AppState,
    config: &Config,
    shutdown: F,
) -> std::io::Result<()>
where
    F: Future<Output = ()> + Send + 'static,
{
    let (stop_tx, stop_rx) = watch::channel(false);
    let maintenance = tokio::spawn(maintain(
        state.clone(),
        config.session.last_seen_interval,
        stop_rx.clone(),
    ));
    let jwks = match (&state.gate, &config.gate.upstream_jwks) {
        (Some(gate), Some(url)) => Some(tokio::spawn(postern_tower::jwks::watch_jwks(
            gate.clone(),
            url.clone(),
            config.gate.jwks_interval,
            state.upstream_trust.clone(),
            stop_rx.clone(),
        ))),
        _ => None,
    };
    let revocations = match (&state.gate, &state.revocation_feed) {
        (Some(gate), Some(feed)) => Some(tokio::spawn(
            feed.clone().follow(gate.clone(), stop_rx.clone()),
        )),
        _ => None,
    };
    if let (Some(gate), Some(_)) = (&state.gate, &revocations) {
        replay_revocations(gate, &*state.clock).await;
    }
    let metrics_elsewhere = metrics_listener.is_some();
    let metrics = match metrics_listener {
        Some(listener) => {
            tracing::info!(address = %listener.local_addr()?, "serving /metrics here, not on the main listener");
            let mut stop = stop_rx.clone();
            let stopped = async move {
                let _ = stop.changed().await;
            };
            Some(tokio::spawn(serve(
                listener,
                App::metrics_only(state.clone()),
                ConnectionLimits {
                    header_read_timeout: config.header_read_timeout,
                    request_timeout: config.request_timeout,
                    max_connections: METRICS_CONNECTIONS,
                },
                stopped,
            )))
        }
        None => None,
    };
    let app = App::new(state.clone(), config.max_body_bytes, metrics_elsewhere);
    serve(
        listener,
        app,
        ConnectionLimits {
            header_read_timeout: config.header_read_timeout,
            request_timeout: config.request_timeout,
            max_connections: config.max_connections,
        },
        shutdown,
    )
    .await;
    tracing::info!("stopped accepting; in-flight requests finished");
    let _ = stop_tx.send(true);
    let _ = maintenance.await;
    for task in [jwks, revocations, metrics].into_iter().flatten() {
        let _ = task.await;
    }
    let authority = state.authority.clone();
    match tokio::task::spawn_blocking(move || authority.flush_activity()).await {
        Ok(Ok(n)) => tracing::info!(sessions = n, "activity flushed"),
        Ok(Err(e)) => tracing::error!(error = %e, "could not flush activity at shutdown"),
        Err(_) => tracing::error!("activity flush task failed"),
    }
    Ok(())
}

/// Connections the `--metrics-listen` listener serves at once: scrapers
/// are few, and a flood there must not take file descriptors from the
/// main listener.
const METRICS_CONNECTIONS: usize = 16;

/// What one connection, and all of them together, may hold.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// To send a request's headers, and to stay idle between requests.
    pub header_read_timeout: Duration,
    /// For a whole request, body included (408 past it).
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// Serves `listener` until `shutdown` completes, then lets the open
/// connections finish their requests (each is told to close after its
/// current one).
///
/// Why not `axum::serve`: it offers neither a header-read timeout nor a
/// connection cap, so a slowloris client (headers sent a byte at a time,
/// over many connections) could hold every connection for good. Here
/// hyper closes a connection whose headers are not in within
/// `header_read_timeout` (also the keep-alive idle limit), each request
/// is cut at `request_timeout`, and beyond `max_connections` the loop
/// stops accepting: new connections wait in the kernel's backlog until
/// one closes. Each connection's app knows its TCP peer
/// (`crate::client_ip`).
pub async fn serve<F>(listener: TcpListener, app: App, limits: ConnectionLimits, shutdown: F)
where
    F: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let (closing, closing_rx) = watch::channel(false);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            () = &mut shutdown => break,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of file descriptors, or a connection reset before
                    // it was accepted: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let app = app.for_peer(peer);
        let mut closing = closing_rx.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let service = hyper::service::service_fn(
                move |request: hyper::Request<hyper::body::Incoming>| {
                    let answer = app.respond(request.map(axum::body::Body::new));
                    async move {
                        match within(limits.request_timeout, answer).await {
                            Ok(answered) => answered,
                            Err(_) => Ok(axum::response::IntoResponse::into_response(
                                crate::error::ApiError::RequestTimeout,
                            )),
                        }
                    }
                },
            );
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            let connection =
                builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                _ = closing.changed() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every slot back: every connection has finished.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    let _ = slots.acquire_many(all).await;
}

/// `future`, cut at `limit` once it has to wait: an answer ready at the
/// first poll (a session check, a gate hit: most requests behind a proxy)
/// arms no timer, which would cost a clock read and a timer-wheel entry per
/// request. Nothing is lost by starting the clock at the first wait: a
/// timer cannot interrupt a poll that is running anyway.
async fn within<F: Future>(
    limit: Duration,
    future: F,
) -> Result<F::Output, tokio::time::error::Elapsed> {
    let mut future = std::pin::pin!(future);
    match std::future::poll_fn(|cx| Poll::Ready(future.as_mut().poll(cx))).await {
        Poll::Ready(output) => Ok(output),
        Poll::Pending => tokio::time::timeout(limit, future).await,
    }
}

/// Waits (a few seconds at most) for the shared revocation feed to replay,
/// so that a new instance refuses what was logged out before it started,
/// even at an upstream that cannot revoke. Connections made meanwhile wait
/// in the listener's backlog. If Redis cannot be reached, serving goes on:
/// hits go upstream until the feed catches up.
async fn replay_revocations(gate: &Gate, clock: &dyn Clock) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !gate.revocations_current(clock.now()) {
        if tokio::time::Instant::now() >= deadline {
            tracing::warn!("revocations from Redis not replayed yet; serving, with every request asking upstream until they are");
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Periodically persists activity and sweeps expired sessions.
async fn maintain(state: AppState, interval: Duration, mut stop: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(interval.min(Duration::from_secs(60)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = ticker.tick() => {}
        }
        let worker = state.clone();
        let result = tokio::task::spawn_blocking(move || {
            let flushed = worker.authority.flush_activity()?;
            let swept = worker.authority.sweep(worker.clock.now())?;
            // Counted here, once a round, rather than at every scrape.
            worker
                .metrics
                .set_active_sessions(worker.authority.hot().count_active(worker.clock.now()));
            Ok::<_, StoreError>((flushed, swept))
        })
        .await;
        match result {
            Ok(Ok((flushed, swept))) if flushed + swept > 0 => {
                tracing::debug!(flushed, swept, "maintenance")
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "maintenance failed; will retry"),
            Err(_) => tracing::warn!("maintenance task failed; will retry"),
        }
    }
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
///
/// The handlers are installed when this is called, not when the future is
/// first polled: `postern serve` calls it before printing its ready line,
/// so a supervisor (or a test) that sends SIGTERM as soon as it reads that
/// line stops the server gracefully rather than killing it with the
/// signal's default action.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    let (interrupt, terminate) = {
        use tokio::signal::unix::{signal, SignalKind};
        (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        )
    };
    async move {
        #[cfg(unix)]
        {
            let received = |installed: std::io::Result<tokio::signal::unix::Signal>| async move {
                match installed {
                    Ok(mut signal) => {
                        signal.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = received(interrupt) => {}
                () = received(terminate) => {}
            }
        }
        #[cfg(not(unix))]
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown signal received");
    }
}
