//! The identity secret on disk.
//!
//! A small JSON file `{"version":1,"user":"alice","secret":"<base64url>"}`
//! created with mode 0600 (and never overwritten: losing an enrolled
//! identity locks the user out, so creation refuses to clobber a file).

use std::io::Write;
use std::path::Path;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use postern_core::context::{InvalidUserId, UserId};
use postern_core::identity::{IdentityPublicKey, IdentitySecret};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// Why an identity file could not be created or read.
#[derive(Debug, thiserror::Error)]
pub enum IdentityFileError {
    #[error("identity file {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("identity file {0} is not a Postern identity file")]
    Malformed(String),
    #[error(transparent)]
    User(#[from] InvalidUserId),
}

#[derive(Serialize, Deserialize)]
struct OnDisk {
    version: u8,
    user: String,
    secret: String,
}

/// A user's identity: their id and their identity secret.
#[derive(Debug)]
pub struct IdentityFile {
    pub user: UserId,
    pub secret: IdentitySecret,
}

impl IdentityFile {
    pub fn generate(user: &str) -> Result<Self, IdentityFileError> {
        Ok(Self {
            user: UserId::parse(user)?,
            secret: IdentitySecret::generate(&mut rand::rngs::OsRng),
        })
    }

    pub fn public_key(&self) -> IdentityPublicKey {
        self.secret.public_key()
    }

    /// Writes the file with mode 0600; refuses to overwrite an existing one.
    pub fn create(&self, path: &Path) -> Result<(), IdentityFileError> {
        let io = |source| IdentityFileError::Io {
            path: path.display().to_string(),
            source,
        };
        let body = Zeroizing::new(
            serde_json::to_vec(&OnDisk {
                version: 1,
                user: self.user.to_string(),
                secret: URL_SAFE_NO_PAD.encode(self.secret.to_bytes()),
            })
            .map_err(|_| IdentityFileError::Malformed(path.display().to_string()))?,
        );
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(io)?;
        file.write_all(&body).map_err(io)?;
        file.sync_all().map_err(io)
    }

    pub fn load(path: &Path) -> Result<Self, IdentityFileError> {
        let malformed = || IdentityFileError::Malformed(path.display().to_string());
        let bytes =
            Zeroizing::new(std::fs::read(path).map_err(|source| IdentityFileError::Io {
                path: path.display().to_string(),
                source,
            })?);
        let disk: OnDisk = serde_json::from_slice(&bytes).map_err(|_| malformed())?;
        let disk_secret = Zeroizing::new(disk.secret);
        if disk.version != 1 {
            return Err(malformed());
        }
        let raw = Zeroizing::new(
            URL_SAFE_NO_PAD
                .decode(disk_secret.as_bytes())
                .map_err(|_| malformed())?,
        );
        let raw: [u8; 32] = raw.as_slice().try_into().map_err(|_| malformed())?;
        let secret = IdentitySecret::from_bytes(&raw).ok_or_else(malformed)?;
        Ok(Self {
            user: UserId::parse(&disk.user)?,
            secret,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_identity_file_round_trips_with_private_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alice.identity");
        let id = IdentityFile::generate("alice").unwrap();
        id.create(&path).unwrap();
        let back = IdentityFile::load(&path).unwrap();
        assert_eq!(back.user, id.user);
        assert_eq!(back.public_key(), id.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn an_existing_identity_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        IdentityFile::generate("alice")
            .unwrap()
            .create(&path)
            .unwrap();
        assert!(matches!(
            IdentityFile::generate("alice").unwrap().create(&path),
            Err(IdentityFileError::Io { .. })
        ));
    }

    #[test]
    fn garbage_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("id");
        std::fs::write(&path, b"{\"version\":1,\"user\":\"a\",\"secret\":\"AAAA\"}").unwrap();
        assert!(matches!(
            IdentityFile::load(&path),
            Err(IdentityFileError::Malformed(_))
        ));
        std::fs::write(&path, b"not json").unwrap();
        assert!(matches!(
            IdentityFile::load(&path),
            Err(IdentityFileError::Malformed(_))
        ));
    }
}
