//! Key files: the instance key and the wrapped keyring.
//!
//! - The **instance key** is a 64-byte seed for the instance's ML-KEM-768
//!   key pair. It comes from `POSTERN_INSTANCE_SECRET` (base64 of 64 bytes)
//!   when set, else from `POSTERN_INSTANCE_PASSPHRASE` through Argon2id,
//!   else from the instance key file (`--instance-key`, default
//!   `<data>/instance.key`), which is created with mode 0600 on first start.
//! - The **keyring** (`<data>/keyring.bin`) holds every key generation,
//!   each encrypted to the instance key (see `postern_core::keyring`).
//!   It is rewritten atomically (temporary file, fsync, rename) with mode 0600.
//!
//! A copy of the data directory without the instance key reveals no key and
//! opens no session. For that to hold, keep the instance key outside the
//! data directory in production (`--instance-key /etc/postern/instance.key`
//! or the environment variable).

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine as _;
use postern_core::keyring::{InstanceKey, Keyring, KeyringError};
use postern_core::UnixNanos;
use rand::rngs::OsRng;
use rand::RngCore;
use zeroize::Zeroizing;

use crate::config::Config;

/// Environment variable carrying the instance seed (base64, 64 bytes).
pub const INSTANCE_SECRET_ENV: &str = "POSTERN_INSTANCE_SECRET";
/// Environment variable carrying a passphrase the seed is derived from.
pub const INSTANCE_PASSPHRASE_ENV: &str = "POSTERN_INSTANCE_PASSPHRASE";
const SALT_FILE: &str = "instance.salt";
const KEYRING_FILE: &str = "keyring.bin";
const BIOMETRIC_FILE: &str = "biometric.key";
const BIOMETRIC_LABEL: &str = "postern/biometric-key-holder/v1";

/// Why keys could not be loaded or written.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{INSTANCE_SECRET_ENV} must be base64 of exactly 64 bytes")]
    BadSecretEnv,
    #[error("{INSTANCE_PASSPHRASE_ENV} must be at least 12 characters")]
    WeakPassphrase,
    #[error("instance key file {0} must hold exactly 64 bytes")]
    BadInstanceFile(String),
    #[error("keyring {path}: {source}")]
    Keyring { path: String, source: KeyringError },
    #[error("keys already exist in {0}; use `postern keys rotate` to add a generation")]
    AlreadyInitialised(String),
    #[error("no keyring in {0}; run `postern keys init` or `postern serve` first")]
    NotInitialised(String),
    #[error("instance key is missing: set {INSTANCE_SECRET_ENV} or provide {0}")]
    MissingInstanceKey(String),
    #[error("biometric key holder seed {path}: {source}")]
    BiometricSeed {
        path: String,
        source: postern_core::wrapped_secret::WrappedSecretError,
    },
}

/// The biometric key holder's seed (`<data>/biometric.key`, wrapped to the
/// instance key), created on first use. Every enrolled template is
/// encrypted under the key it determines, so unlike the keyring it never
/// rotates; losing it means re-enrolling every biometric.
pub fn biometric_seed(
    config: &Config,
    instance: &InstanceKey,
) -> Result<zeroize::Zeroizing<[u8; 32]>, KeyError> {
    let path = config.data_dir.join(BIOMETRIC_FILE);
    if path.exists() {
        let bytes = std::fs::read(&path).map_err(io(&path))?;
        return postern_core::wrapped_secret::unwrap(BIOMETRIC_LABEL, &bytes, instance).map_err(
            |source| KeyError::BiometricSeed {
                path: path.display().to_string(),
                source,
            },
        );
    }
    let mut seed = zeroize::Zeroizing::new([0u8; 32]);
    rand::RngCore::fill_bytes(&mut OsRng, &mut *seed);
    let wrapped = postern_core::wrapped_secret::wrap(
        BIOMETRIC_LABEL,
        &seed,
        &instance.public_key(),
        &mut OsRng,
    );
    write_private(&path, &wrapped)?;
    Ok(seed)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Writes `bytes` to `path` atomically with mode 0600.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io(dir))?;
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&tmp).map_err(io(&tmp))?;
    file.write_all(bytes).map_err(io(&tmp))?;
    file.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    if let Ok(dir) = std::fs::File::open(dir) {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// Derives the 64-byte instance seed from a passphrase with Argon2id
/// (RFC 9106; the crate's defaults: 19 MiB, 2 passes, 1 lane — OWASP's
/// minimum for Argon2id) and a random 16-byte salt kept, in clear, in
/// `<data>/instance.salt` (a salt is not a secret; it only defeats
/// precomputation across deployments).
fn passphrase_seed(
    config: &Config,
    passphrase: &[u8],
    create: bool,
) -> Result<Zeroizing<[u8; 64]>, KeyError> {
    if passphrase.len() < 12 {
        return Err(KeyError::WeakPassphrase);
    }
    let salt_path = config.data_dir.join(SALT_FILE);
    let salt = match std::fs::read(&salt_path) {
        Ok(salt) if salt.len() == 16 => salt,
        Ok(_) => return Err(KeyError::BadInstanceFile(salt_path.display().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut salt = vec![0u8; 16];
            OsRng.fill_bytes(&mut salt);
            write_private(&salt_path, &salt)?;
            salt
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(KeyError::MissingInstanceKey(
                salt_path.display().to_string(),
            ))
        }
        Err(e) => return Err(io(&salt_path)(e)),
    };
    let mut seed = Zeroizing::new([0u8; 64]);
    argon2::Argon2::default()
        .hash_password_into(passphrase, &salt, &mut seed[..])
        .map_err(|_| KeyError::WeakPassphrase)?;
    Ok(seed)
}

/// Where the instance key came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstanceSource {
    Environment,
    Passphrase,
    File(PathBuf),
    Created(PathBuf),
}

/// Loads the instance key; creates the file if `create` and nothing exists.
pub fn instance_key(
    config: &Config,
    create: bool,
) -> Result<(InstanceKey, InstanceSource), KeyError> {
    if let Ok(text) = std::env::var(INSTANCE_SECRET_ENV) {
        let raw = Zeroizing::new(
            base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()))
                .map_err(|_| KeyError::BadSecretEnv)?,
        );
        let seed: Zeroizing<[u8; 64]> = Zeroizing::new(
            raw.as_slice()
                .try_into()
                .map_err(|_| KeyError::BadSecretEnv)?,
        );
        return Ok((InstanceKey::from_seed(&seed), InstanceSource::Environment));
    }
    if let Ok(passphrase) = std::env::var(INSTANCE_PASSPHRASE_ENV) {
        let passphrase = Zeroizing::new(passphrase);
        let seed = passphrase_seed(config, passphrase.as_bytes(), create)?;
        return Ok((InstanceKey::from_seed(&seed), InstanceSource::Passphrase));
    }
    let path = config.instance_key_path();
    match std::fs::read(&path) {
        Ok(bytes) => {
            let bytes = Zeroizing::new(bytes);
            let seed: Zeroizing<[u8; 64]> = Zeroizing::new(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| KeyError::BadInstanceFile(path.display().to_string()))?,
            );
            Ok((InstanceKey::from_seed(&seed), InstanceSource::File(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
            let mut seed = Zeroizing::new([0u8; 64]);
            OsRng.fill_bytes(&mut seed[..]);
            write_private(&path, &seed[..])?;
            Ok((InstanceKey::from_seed(&seed), InstanceSource::Created(path)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Err(KeyError::MissingInstanceKey(path.display().to_string()))
        }
        Err(e) => Err(io(&path)(e)),
    }
}

pub fn keyring_path(config: &Config) -> PathBuf {
    config.data_dir.join(KEYRING_FILE)
}

/// Reads the keyring; `Ok(None)` if there is none yet.
pub fn read_keyring(config: &Config, instance: &InstanceKey) -> Result<Option<Keyring>, KeyError> {
    let path = keyring_path(config);
    match std::fs::read(&path) {
        Ok(bytes) => Keyring::unwrap(&bytes, instance)
            .map(Some)
            .map_err(|source| KeyError::Keyring {
                path: path.display().to_string(),
                source,
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(&path)(e)),
    }
}

pub fn write_keyring(
    config: &Config,
    keyring: &Keyring,
    instance: &InstanceKey,
) -> Result<(), KeyError> {
    write_private(
        &keyring_path(config),
        &keyring.wrap(&instance.public_key(), &mut OsRng),
    )
}

/// What opening the keys did.
#[derive(Debug)]
pub struct OpenedKeys {
    pub keyring: Keyring,
    pub instance: InstanceKey,
    pub instance_source: InstanceSource,
    pub created_keyring: bool,
}

/// Loads the keys, creating instance key and keyring on first start.
pub fn open_or_init(config: &Config, now: UnixNanos) -> Result<OpenedKeys, KeyError> {
    let existing_keyring = keyring_path(config).exists();
    let (instance, instance_source) = instance_key(config, !existing_keyring)?;
    match read_keyring(config, &instance)? {
        Some(keyring) => Ok(OpenedKeys {
            keyring,
            instance,
            instance_source,
            created_keyring: false,
        }),
        None => {
            let keyring = Keyring::generate(now, &mut OsRng);
            write_keyring(config, &keyring, &instance)?;
            Ok(OpenedKeys {
                keyring,
                instance,
                instance_source,
                created_keyring: true,
            })
        }
    }
}

/// `postern keys init`: refuses if a keyring exists.
pub fn init(config: &Config, now: UnixNanos) -> Result<OpenedKeys, KeyError> {
    if keyring_path(config).exists() {
        return Err(KeyError::AlreadyInitialised(
            config.data_dir.display().to_string(),
        ));
    }
    open_or_init(config, now)
}

/// `postern keys rotate`: adds a generation, prunes unusable ones.
pub fn rotate(config: &Config, now: UnixNanos) -> Result<(Keyring, u32, Vec<u32>), KeyError> {
    let (instance, _) = instance_key(config, false)?;
    let mut keyring = read_keyring(config, &instance)?
        .ok_or_else(|| KeyError::NotInitialised(config.data_dir.display().to_string()))?;
    let path = keyring_path(config).display().to_string();
    let max_lifetime = crate::config::nanos(config.session.ttl)
        .saturating_add(crate::config::nanos(config.session.expired_retention));
    let pruned = keyring.prune(now, max_lifetime);
    let id = keyring
        .rotate(now, &mut OsRng)
        .map_err(|source| KeyError::Keyring { path, source })?;
    write_keyring(config, &keyring, &instance)?;
    Ok((keyring, id, pruned))
}

/// `postern keys show`: reads without changing anything.
pub fn show(config: &Config) -> Result<(Keyring, InstanceKey, InstanceSource), KeyError> {
    let (instance, source) = instance_key(config, false)?;
    let keyring = read_keyring(config, &instance)?
        .ok_or_else(|| KeyError::NotInitialised(config.data_dir.display().to_string()))?;
    Ok((keyring, instance, source))
}
