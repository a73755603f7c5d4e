//! The `postern` command line.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use postern_client::device::DeviceInput;
use postern_client::http::{ClientError, PosternClient};
use postern_client::identity_file::IdentityFile;
use serde_json::json;

use crate::config::{heading, Config, LogFormat, Overrides};
use crate::keys::{self, InstanceSource};
use crate::state::{Clock, SystemClock};

#[derive(Debug, Parser)]
#[command(
    name = "postern",
    version,
    about = "Postern: authenticate once, resume in well under a microsecond.",
    long_about = "Postern runs full authentication once (identity proof, post-quantum attestation), mints a sealed, signed, \
device-bound session, and answers every later request from that session: resumed, step_up or full_auth_required, with a reason."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (sessions in ./postern-data by default; keys created on first start).
    Serve {
        /// TOML configuration file; environment variables and flags override it.
        #[arg(long, env = "POSTERN_CONFIG", value_name = "FILE", help_heading = heading::SERVER)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Box<Overrides>,
    },
    /// Manage the instance key and the keyring.
    Keys {
        #[command(subcommand)]
        action: KeysAction,
        #[arg(long, env = "POSTERN_CONFIG", value_name = "FILE", global = true)]
        config: Option<PathBuf>,
        /// Data directory holding the keyring.
        #[arg(long = "data", env = "POSTERN_DATA", value_name = "DIR", global = true)]
        data_dir: Option<PathBuf>,
        /// File holding the instance key seed.
        #[arg(
            long = "instance-key",
            env = "POSTERN_INSTANCE_KEY_FILE",
            value_name = "FILE",
            global = true
        )]
        instance_key_file: Option<PathBuf>,
    },
    /// Talk to a Postern server as a user would (prints JSON).
    Client {
        #[command(subcommand)]
        action: ClientAction,
        /// A PEM file of CA certificates trusted for an https:// server,
        /// beside the public and system roots (for a private CA).
        #[arg(long, env = "POSTERN_CA", value_name = "FILE", global = true)]
        ca: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysAction {
    /// Create the instance key and a keyring with one key generation.
    Init,
    /// Add a key generation: new sessions use it, old sessions keep verifying
    /// until they expire. Restart the server to pick it up.
    Rotate,
    /// Print the keyring for people: its revision, where the instance key
    /// comes from and its fingerprint, and each key generation (id,
    /// algorithms, creation and retirement times, which one is current).
    /// Never any secret.
    Show {
        /// Print JSON instead, for scripts.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum ClientAction {
    /// Create (or reuse) an identity key and enroll it for a user.
    Enroll {
        #[arg(long, env = "POSTERN_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long)]
        user: String,
        /// Identity file [default: ~/.config/postern/<user>.identity]
        #[arg(long)]
        identity: Option<PathBuf>,
        /// Also enroll a biometric template: FILE holds the embedding, a
        /// JSON array of 128 numbers; it is encrypted here, under the
        /// server's public key, before it is sent.
        #[arg(long, value_name = "FILE")]
        biometric: Option<PathBuf>,
    },
    /// Full authentication: prove the identity, print the session token
    /// and the time each stage took.
    Login {
        #[arg(long, env = "POSTERN_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long)]
        user: String,
        /// Device fingerprint (any stable device id string).
        #[arg(long)]
        device: String,
        #[arg(long)]
        identity: Option<PathBuf>,
        /// Send an encrypted biometric probe (servers with the biometric
        /// stage): FILE holds the embedding, a JSON array of 128 numbers.
        #[arg(long, value_name = "FILE")]
        biometric: Option<PathBuf>,
    },
    /// Resume a session. Exit status: 0 resumed, 3 step_up, 4 full_auth_required.
    Resume {
        #[arg(long, env = "POSTERN_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "POSTERN_TOKEN", hide_env_values = true)]
        token: String,
        #[arg(long)]
        device: String,
        /// The operation about to be performed (e.g. transfer).
        #[arg(long)]
        operation: Option<String>,
    },
    /// Replace the user's enrolled identity key (revoked or live) with a new
    /// one, using a session of that user from a recent full authentication
    /// (e.g. a passkey login). On success the identity file holds the new key.
    ReplaceIdentity {
        #[command(flatten)]
        account: AccountSession,
        /// Identity file [default: ~/.config/postern/<user>.identity]
        #[arg(long)]
        identity: Option<PathBuf>,
    },
    /// Remove one of the user's passkeys (and revoke its sessions), using a
    /// session of that user from a recent full authentication. The credential
    /// id is the one registration answered (and identity revocation lists).
    RemovePasskey {
        #[command(flatten)]
        account: AccountSession,
        /// The passkey's credential id, base64url.
        #[arg(long)]
        credential_id: String,
    },
    /// List the user's passkeys and their standing (`active`, or
    /// `suspended`: added with a credential since revoked, replaced or
    /// removed).
    Passkeys {
        #[command(flatten)]
        account: AccountSession,
    },
    /// Confirm a suspended passkey, using a session of that user from a
    /// recent full authentication with another current credential (say, a
    /// login with the new identity key after replacing a stolen one).
    ConfirmPasskey {
        #[command(flatten)]
        account: AccountSession,
        /// The passkey's credential id, base64url.
        #[arg(long)]
        credential_id: String,
    },
    /// Revoke the session everywhere.
    Logout {
        #[arg(long, env = "POSTERN_SERVER", default_value = "http://127.0.0.1:8080")]
        server: String,
        #[arg(long, env = "POSTERN_TOKEN", hide_env_values = true)]
        token: String,
    },
}

/// A session of one user, for changes to that user's account.
#[derive(Debug, clap::Args)]
struct AccountSession {
    #[arg(long, env = "POSTERN_SERVER", default_value = "http://127.0.0.1:8080")]
    server: String,
    #[arg(long)]
    user: String,
    #[arg(long, env = "POSTERN_TOKEN", hide_env_values = true)]
    token: String,
    /// The device the session is bound to.
    #[arg(long)]
    device: String,
}

/// Entry point used by `main`.
pub async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        // Logging starts once the configuration says in which format.
        Command::Serve { config, overrides } => exit(serve(config, *overrides).await),
        Command::Keys {
            action,
            config,
            data_dir,
            instance_key_file,
        } => {
            init_logging("warn", LogFormat::Text);
            let overrides = Overrides {
                data_dir,
                instance_key_file,
                ..Default::default()
            };
            exit(keys_command(action, config, overrides))
        }
        Command::Client { action, ca } => {
            init_logging("warn", LogFormat::Text);
            exit(client(action, ca).await)
        }
    }
}

/// Log lines to stderr in `format`, at `RUST_LOG`'s levels (else
/// `default_filter`'s).
fn init_logging(default_filter: &str, format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Why a command failed. Every command returns it with `?`, and [`exit`]
/// says it once, as `postern: …` on stderr.
#[derive(Debug, thiserror::Error)]
enum CliError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Start(#[from] crate::server::StartError),
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Identity(#[from] postern_client::identity_file::IdentityFileError),
    /// The server refused, or could not be reached.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Anything else, said with its context (which file, which address).
    #[error("{0}")]
    Other(String),
}

impl CliError {
    fn other(message: impl Into<String>) -> Self {
        Self::Other(message.into())
    }
}

/// The exit code of a command's outcome, after saying why it failed: a
/// server's JSON refusal is printed to stdout as it came, and a transport
/// error with its causes (refused, timed out, a certificate not trusted).
fn exit(outcome: Result<ExitCode, CliError>) -> ExitCode {
    let error = match outcome {
        Ok(code) => return code,
        Err(error) => error,
    };
    let message = match &error {
        CliError::Client(ClientError::Api { body, .. }) if !body.is_null() => {
            print_json(body);
            error.to_string()
        }
        CliError::Client(transport @ ClientError::Transport(_)) => {
            let mut message = transport.to_string();
            let mut source = std::error::Error::source(transport);
            while let Some(cause) = source {
                message.push_str(": ");
                message.push_str(&cause.to_string());
                source = cause.source();
            }
            message
        }
        _ => error.to_string(),
    };
    eprintln!("postern: {message}");
    ExitCode::FAILURE
}

fn print_json(value: &serde_json::Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "{}",
        serde_json::to_string_pretty(value).unwrap_or_default()
    );
    let _ = out.flush();
}

async fn serve(config_path: Option<PathBuf>, overrides: Overrides) -> Result<ExitCode, CliError> {
    let config = Config::from_file(config_path.as_deref())?.apply(&overrides);
    init_logging("info", config.log_format);
    // Bound first: identity proofs are bound to the address clients reach.
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|e| CliError::other(format!("cannot listen on {}: {e}", config.listen)))?;
    let bound = listener
        .local_addr()
        .map_err(|e| CliError::other(format!("cannot read the listening address: {e}")))?;
    // Also bound before the ready line below, so that a scraper (or a test)
    // that starts on that line finds the metrics listener open.
    let metrics_listener = match config.metrics_listen {
        Some(address) => Some(tokio::net::TcpListener::bind(address).await.map_err(|e| {
            CliError::other(format!("cannot listen for /metrics on {address}: {e}"))
        })?),
        None => None,
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let opened = crate::server::open(&config, bound, clock)?;
    match &opened.instance_source {
        InstanceSource::Created(path) => tracing::warn!(
            path = %path.display(),
            "created a new instance key; in production keep it outside the data directory (--instance-key) or use POSTERN_INSTANCE_SECRET"
        ),
        InstanceSource::File(path) => tracing::info!(path = %path.display(), "instance key loaded"),
        InstanceSource::Passphrase => {
            tracing::info!("instance key derived from POSTERN_INSTANCE_PASSPHRASE")
        }
        InstanceSource::Environment => {
            tracing::info!("instance key loaded from POSTERN_INSTANCE_SECRET")
        }
    }
    if opened.created_keyring {
        tracing::info!("created a new keyring (ML-KEM-768-wrapped)");
    }
    let r = &opened.restore;
    tracing::info!(
        restored = r.restored,
        revoked = r.revoked,
        expired_skipped = r.expired_skipped,
        tampered = r.tampered,
        identity_revoked = r.identity_revoked,
        key_generation = opened.key_generation,
        data = %config.data_dir.display(),
        "sessions restored"
    );
    // Before the ready line: a SIGTERM sent on reading it stops gracefully.
    let shutdown = crate::server::shutdown_signal();
    let addr = bound.to_string();
    // Tests and scripts read this line to find the port when listening on :0.
    println!("postern listening on http://{addr}");
    let _ = std::io::stdout().flush();
    crate::server::run(listener, metrics_listener, opened.state, &config, shutdown)
        .await
        .map_err(|e| CliError::other(e.to_string()))?;
    Ok(ExitCode::SUCCESS)
}

fn keys_command(
    action: KeysAction,
    config_path: Option<PathBuf>,
    overrides: Overrides,
) -> Result<ExitCode, CliError> {
    let config = Config::from_file(config_path.as_deref())?.apply(&overrides);
    let now = SystemClock.now();
    let t = crate::time::rfc3339;
    let describe = |keyring: &postern_core::keyring::Keyring| -> Vec<serde_json::Value> {
        keyring
            .generations()
            .iter()
            .map(|g| {
                json!({
                    "id": g.id(),
                    "created_at": t(g.created_at()),
                    "retired_at": g.retired_at().map(t),
                    "current": g.id() == keyring.current().id(),
                })
            })
            .collect()
    };
    match action {
        KeysAction::Init => {
            let opened = keys::init(&config, now)?;
            print_json(&json!({
                "keyring": keys::keyring_path(&config),
                "instance_key": source_text(&opened.instance_source),
                "generations": describe(&opened.keyring),
            }));
        }
        KeysAction::Rotate => {
            let (keyring, id, pruned) = keys::rotate(&config, now)?;
            print_json(
                &json!({ "current": id, "pruned": pruned, "revision": keyring.revision(), "generations": describe(&keyring),
                "note": "restart the server to start minting with the new generation" }),
            );
        }
        KeysAction::Show { json } => {
            let (keyring, instance, source) = keys::show(&config)?;
            let fp: String = instance
                .fingerprint()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            let path = keys::keyring_path(&config);
            if json {
                print_json(&json!({
                    "keyring": path,
                    "instance_key_source": source_text(&source),
                    "instance_key_fingerprint": fp,
                    "revision": keyring.revision(),
                    "generations": describe(&keyring),
                }));
            } else {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(keys_for_people(&path, &source, &fp, &keyring).as_bytes());
                let _ = out.flush();
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the instance key comes from, in words.
fn source_text(source: &InstanceSource) -> String {
    match source {
        InstanceSource::Environment => "environment (POSTERN_INSTANCE_SECRET)".into(),
        InstanceSource::Passphrase => {
            "passphrase (POSTERN_INSTANCE_PASSPHRASE, through Argon2id)".into()
        }
        InstanceSource::File(path) => format!("file {}", path.display()),
        InstanceSource::Created(path) => format!("file {} (created now)", path.display()),
    }
}

/// `postern keys show` for people: the keyring, the instance key (where it
/// comes from and the fingerprint of its public key) and a table of key
/// generations, current marked. Ids, algorithms, times and a public-key
/// fingerprint only: never a secret.
fn keys_for_people(
    path: &std::path::Path,
    source: &InstanceSource,
    fingerprint: &str,
    keyring: &postern_core::keyring::Keyring,
) -> String {
    use std::fmt::Write as _;
    let t = crate::time::rfc3339;
    let current = keyring.current().id();
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = writeln!(
        out,
        "Keyring       {} (revision {})",
        path.display(),
        keyring.revision()
    );
    let _ = writeln!(
        out,
        "Instance key  ML-KEM-768, from {}",
        source_text(source)
    );
    let _ = writeln!(
        out,
        "              fingerprint {fingerprint} (SHA3-256 of the public key)"
    );
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "Key generations (each: AES-256-GCM sealing, HMAC-SHA256 device binding, ML-DSA-65 signing; stored encrypted to the instance key)"
    );
    // The rows' layout: id right-aligned in 6, state in 8, time in 24.
    let _ = writeln!(out, "  KEY ID  STATE     CREATED                   RETIRED");
    for generation in keyring.generations() {
        let state = if generation.id() == current {
            "current"
        } else {
            "retired"
        };
        let retired = generation.retired_at().map_or_else(|| "-".to_string(), t);
        let _ = writeln!(
            out,
            "  {:>6}  {:<8}  {:<24}  {}",
            generation.id(),
            state,
            t(generation.created_at()),
            retired
        );
    }
    let _ = writeln!(out);
    let _ = writeln!(
        out,
        "New sessions are minted under generation {current}; sessions of a retired generation keep verifying until they expire."
    );
    out
}

/// The embedding in `path` (`--biometric FILE`), or why not, naming the file.
fn read_embedding(path: &std::path::Path) -> Result<Vec<f32>, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        CliError::other(format!(
            "cannot read the embedding file {}: {e}",
            path.display()
        ))
    })?;
    postern_client::embedding::parse(&text)
        .map_err(|e| CliError::other(format!("{}: not an embedding: {e}", path.display())))
}

/// Which ciphertext to make of an embedding.
#[derive(Debug, Clone, Copy)]
enum Ciphertext {
    /// Enrolled once.
    Template,
    /// Sent at each login.
    Probe,
}

/// `embedding` encrypted under the server's biometric public key (the
/// embedding itself never leaves this process).
async fn encrypt(
    client: &PosternClient,
    embedding: &[f32],
    kind: Ciphertext,
) -> Result<Vec<u8>, CliError> {
    let public_key = client.biometric_public_key().await?;
    let encryptor = postern_client::biometric::BiometricClient::new(&public_key).map_err(|e| {
        CliError::other(format!(
            "the server's biometric public key is unusable: {e}"
        ))
    })?;
    match kind {
        Ciphertext::Template => encryptor.template(embedding),
        Ciphertext::Probe => encryptor.probe(embedding),
    }
    .map_err(|e| CliError::other(format!("cannot encrypt the embedding: {e}")))
}

/// The time each stage of a login took, one line each, for people.
fn stage_times(stages: &[postern_client::http::StageReport]) -> String {
    stages
        .iter()
        .map(|s| {
            format!(
                "{:<12} {:<8} {:>10.3} ms\n",
                s.stage,
                s.outcome,
                s.micros / 1000.0
            )
        })
        .collect()
}

fn identity_path(user: &str, explicit: Option<PathBuf>) -> PathBuf {
    explicit.unwrap_or_else(|| {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("."));
        base.join("postern").join(format!("{user}.identity"))
    })
}

/// The client for `server`, trusting the CA file `ca` if given.
fn connect(server: &str, ca: Option<&std::path::Path>) -> Result<PosternClient, CliError> {
    match ca {
        None => PosternClient::new(server).map_err(|e| CliError::other(e.to_string())),
        Some(path) => {
            let pem = std::fs::read(path).map_err(|e| {
                CliError::other(format!("cannot read the CA file {}: {e}", path.display()))
            })?;
            PosternClient::with_ca(server, &pem)
                .map_err(|e| CliError::other(format!("{e}: {}", path.display())))
        }
    }
}

/// Prints a server's answer as it came.
fn print_answer<T: serde::Serialize>(answer: Result<T, ClientError>) -> Result<ExitCode, CliError> {
    print_json(&json!(answer?));
    Ok(ExitCode::SUCCESS)
}

async fn client(action: ClientAction, ca: Option<PathBuf>) -> Result<ExitCode, CliError> {
    match action {
        ClientAction::Enroll {
            server,
            user,
            identity,
            biometric,
        } => {
            // Checked before anything is written or sent.
            let embedding = biometric.as_deref().map(read_embedding).transpose()?;
            let path = identity_path(&user, identity);
            let identity = if path.exists() {
                let id = IdentityFile::load(&path)?;
                if id.user.as_str() != user {
                    return Err(CliError::other(format!(
                        "{} holds the identity of `{}`, not `{user}`",
                        path.display(),
                        id.user
                    )));
                }
                id
            } else {
                let id = IdentityFile::generate(&user)?;
                if let Some(dir) = path.parent() {
                    let _ = std::fs::create_dir_all(dir);
                }
                id.create(&path)?;
                id
            };
            let client = connect(&server, ca.as_deref())?;
            let template = match &embedding {
                Some(embedding) => Some(encrypt(&client, embedding, Ciphertext::Template).await?),
                None => None,
            };
            let r = client
                .enroll_with_template(&identity, template.as_deref())
                .await?;
            print_json(
                &json!({ "user": r.user, "credential_id": r.credential_id, "enrolled_at": r.enrolled_at, "identity_file": path, "biometric": template.is_some() }),
            );
            Ok(ExitCode::SUCCESS)
        }
        ClientAction::Login {
            server,
            user,
            device,
            identity,
            biometric,
        } => {
            let embedding = biometric.as_deref().map(read_embedding).transpose()?;
            let path = identity_path(&user, identity);
            let identity = IdentityFile::load(&path)
                .map_err(|e| CliError::other(format!("{e} (run `postern client enroll` first)")))?;
            let client = connect(&server, ca.as_deref())?;
            let probe = match &embedding {
                Some(embedding) => Some(encrypt(&client, embedding, Ciphertext::Probe).await?),
                None => None,
            };
            let r = client
                .login_with_probe(&identity, &DeviceInput::Id(device), probe.as_deref())
                .await?;
            print_json(&serde_json::to_value(&r).unwrap_or_default());
            eprint!("{}", stage_times(&r.stages));
            Ok(ExitCode::SUCCESS)
        }
        ClientAction::Resume {
            server,
            token,
            device,
            operation,
        } => {
            let client = connect(&server, ca.as_deref())?;
            let r = client
                .resume(&token, Some(&DeviceInput::Id(device)), operation.as_deref())
                .await?;
            print_json(
                &json!({ "decision": r.decision, "reason": r.reason, "user": r.user, "session_id": r.session_id }),
            );
            Ok(match r.decision.as_str() {
                "resumed" => ExitCode::SUCCESS,
                "step_up" => ExitCode::from(3),
                _ => ExitCode::from(4),
            })
        }
        ClientAction::ReplaceIdentity {
            account:
                AccountSession {
                    server,
                    user,
                    token,
                    device,
                },
            identity,
        } => {
            let path = identity_path(&user, identity);
            let pending = path.with_extension("identity.new");
            let fresh = IdentityFile::generate(&user)?;
            if let Some(dir) = path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            // The new key is on disk before the server knows it, so a crash
            // between the two never leaves the user without their new key.
            fresh.create(&pending).map_err(|e| {
                CliError::other(format!("{e} (remove a stale {} first)", pending.display()))
            })?;
            let client = connect(&server, ca.as_deref())?;
            let r = match client.replace_identity(&fresh, &token, &device).await {
                Ok(r) => r,
                Err(e) => {
                    // Only a definite refusal means the server kept the old
                    // key; otherwise the new key may be enrolled, so its
                    // file stays.
                    if e.status().is_some_and(|s| (400..500).contains(&s)) {
                        let _ = std::fs::remove_file(&pending);
                    } else {
                        eprintln!(
                            "postern: the replacement may have happened; the new key is kept in {}",
                            pending.display()
                        );
                    }
                    return Err(e.into());
                }
            };
            std::fs::rename(&pending, &path).map_err(|e| {
                CliError::other(format!(
                    "the key was replaced but {} could not be moved to {}: {e}",
                    pending.display(),
                    path.display()
                ))
            })?;
            print_json(&json!({
                "user": r.user, "credential_id": r.credential_id, "enrolled_at": r.enrolled_at,
                "replaced_credential_id": r.replaced_credential_id,
                "revoked_sessions": r.revoked_sessions, "sweep_complete": r.sweep_complete,
                "suspended_passkeys": r.suspended_passkeys,
                "identity_file": path,
            }));
            Ok(ExitCode::SUCCESS)
        }
        ClientAction::RemovePasskey {
            account:
                AccountSession {
                    server,
                    user,
                    token,
                    device,
                },
            credential_id,
        } => {
            let client = connect(&server, ca.as_deref())?;
            let r = client
                .remove_passkey(&user, &credential_id, &token, &device)
                .await?;
            print_json(&json!({
                "credential_id": r.credential_id,
                "revoked_sessions": r.revoked_sessions,
                "suspended_passkeys": r.suspended_passkeys,
            }));
            Ok(ExitCode::SUCCESS)
        }
        ClientAction::Passkeys {
            account:
                AccountSession {
                    server,
                    user,
                    token,
                    device,
                },
        } => {
            let client = connect(&server, ca.as_deref())?;
            print_answer(client.list_passkeys(&user, &token, &device).await)
        }
        ClientAction::ConfirmPasskey {
            account:
                AccountSession {
                    server,
                    user,
                    token,
                    device,
                },
            credential_id,
        } => {
            let client = connect(&server, ca.as_deref())?;
            print_answer(
                client
                    .confirm_passkey(&user, &credential_id, &token, &device)
                    .await,
            )
        }
        ClientAction::Logout { server, token } => {
            let client = connect(&server, ca.as_deref())?;
            let r = client.logout(&token).await?;
            print_json(&json!({ "revoked": r.revoked, "session_id": r.session_id }));
            Ok(ExitCode::SUCCESS)
        }
    }
}
