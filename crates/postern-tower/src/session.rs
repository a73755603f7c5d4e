//! What an upstream said about a token, and what a route requires of it.

/// A validated token, as cached. Holds no token material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Validated {
    /// The user (`sub`, or `username`, or the Auth1 user id).
    pub subject: String,
    pub scopes: Vec<String>,
    pub audience: Vec<String>,
    /// When the token stops being valid (ns since the Unix epoch).
    pub expires_at: u64,
    /// The upstream's session id, if it has one.
    pub session_id: Option<String>,
    /// The JWT `kid` the token was signed with, if it is a JWT.
    pub key_id: Option<String>,
}

impl Validated {
    /// Approximate bytes held, for the cache's byte bound.
    pub fn weight(&self) -> u32 {
        let strings = self.subject.len()
            + self.scopes.iter().map(|s| s.len() + 24).sum::<usize>()
            + self.audience.iter().map(|s| s.len() + 24).sum::<usize>()
            + self.session_id.as_ref().map_or(0, |s| s.len())
            + self.key_id.as_ref().map_or(0, |s| s.len());
        u32::try_from(std::mem::size_of::<Self>() + strings).unwrap_or(u32::MAX)
    }
}

/// Why a validated token may still not pass a route.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Insufficient {
    #[error("token lacks scope `{0}`")]
    Scope(String),
    #[error("token is not for audience `{0}`")]
    Audience(String),
}

/// What a route requires: every listed scope, and the audience if set.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Requirement {
    pub scopes: Vec<String>,
    pub audience: Option<String>,
}

impl Requirement {
    pub fn none() -> Self {
        Self::default()
    }

    pub fn scopes<I, S>(scopes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self {
            scopes: scopes.into_iter().map(Into::into).collect(),
            audience: None,
        }
    }

    pub fn with_audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// Parses a space-separated scope list (the form OAuth uses).
    pub fn from_scope_list(list: &str) -> Self {
        Self::scopes(list.split_ascii_whitespace())
    }

    /// Checks a session against this requirement. Runs on every hit.
    pub fn check(&self, session: &Validated) -> Result<(), Insufficient> {
        if let Some(missing) = self.scopes.iter().find(|s| !session.scopes.contains(s)) {
            return Err(Insufficient::Scope(missing.clone()));
        }
        match &self.audience {
            Some(aud) if !session.audience.contains(aud) => {
                Err(Insufficient::Audience(aud.clone()))
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> Validated {
        Validated {
            subject: "alice".into(),
            scopes: vec!["read".into(), "write".into()],
            audience: vec!["api".into()],
            expires_at: 10,
            session_id: None,
            key_id: None,
        }
    }

    #[test]
    fn requirements_check_every_scope_and_the_audience() {
        assert_eq!(Requirement::none().check(&session()), Ok(()));
        assert_eq!(
            Requirement::from_scope_list("read  write").check(&session()),
            Ok(())
        );
        assert_eq!(
            Requirement::scopes(["admin"]).check(&session()),
            Err(Insufficient::Scope("admin".into()))
        );
        assert_eq!(
            Requirement::none().with_audience("api").check(&session()),
            Ok(())
        );
        assert_eq!(
            Requirement::none()
                .with_audience("billing")
                .check(&session()),
            Err(Insufficient::Audience("billing".into()))
        );
    }
}
