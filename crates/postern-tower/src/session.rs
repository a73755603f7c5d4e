//! What an upstream said about a token, and what a route requires of it.
//!
//! A [`Validated`] session also carries its identity already rendered for
//! a forward-auth answer ([`Rendered`]): the header values and the JSON
//! body are built once, when the gate admits the session, so answering a
//! cache hit copies reference-counted bytes and allocates nothing for them.

use axum::body::Bytes;
use axum::http::HeaderValue;

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
    /// The identity rendered for forward-auth answers; filled by
    /// [`Validated::render`] when the gate admits the session.
    pub(crate) rendered: Rendered,
}

/// A session's identity as a forward-auth answer carries it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rendered {
    /// The subject as a header value; `None` when it cannot travel in a
    /// header (a caller must then refuse, never pass the request silently).
    pub user: Option<HeaderValue>,
    /// The scopes, space-separated (`None` if not header-safe).
    pub scopes: Option<HeaderValue>,
    /// The upstream's session id, if any and header-safe.
    pub session: Option<HeaderValue>,
    /// `{"user":…,"scopes":[…],"session_id":…}` as JSON bytes.
    pub body: Bytes,
}

#[derive(serde::Serialize)]
struct RenderedBody<'a> {
    user: &'a str,
    scopes: &'a [String],
    session_id: Option<&'a str>,
}

impl Validated {
    /// A session as an upstream describes it (not yet rendered).
    pub fn new(
        subject: String,
        scopes: Vec<String>,
        audience: Vec<String>,
        expires_at: u64,
        session_id: Option<String>,
    ) -> Self {
        Self {
            subject,
            scopes,
            audience,
            expires_at,
            session_id,
            key_id: None,
            rendered: Rendered::default(),
        }
    }

    /// Renders the identity for forward-auth answers (see [`Rendered`]).
    /// Called once, when the gate admits the session.
    pub(crate) fn render(&mut self) {
        let header = |text: &str| HeaderValue::from_str(text).ok();
        let body = serde_json::to_vec(&RenderedBody {
            user: &self.subject,
            scopes: &self.scopes,
            session_id: self.session_id.as_deref(),
        })
        // Serialising strings into a Vec cannot fail; an empty body is the
        // fallback that a caller would notice rather than a panic.
        .unwrap_or_default();
        self.rendered = Rendered {
            user: header(&self.subject),
            scopes: header(&self.scopes.join(" ")),
            session: self.session_id.as_deref().and_then(header),
            body: Bytes::from(body),
        };
    }

    /// The identity rendered when the gate admitted this session.
    pub fn rendered(&self) -> &Rendered {
        &self.rendered
    }

    /// Approximate bytes held, for the cache's byte bound.
    pub fn weight(&self) -> u32 {
        let strings = self.subject.len()
            + self.scopes.iter().map(|s| s.len() + 24).sum::<usize>()
            + self.audience.iter().map(|s| s.len() + 24).sum::<usize>()
            + self.session_id.as_ref().map_or(0, |s| s.len())
            + self.key_id.as_ref().map_or(0, |s| s.len())
            // The rendered copy: the strings again, plus JSON punctuation.
            + self.rendered.body.len()
            + self.subject.len()
            + self.scopes.iter().map(|s| s.len() + 1).sum::<usize>()
            + self.session_id.as_ref().map_or(0, |s| s.len());
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
        Validated::new(
            "alice".into(),
            vec!["read".into(), "write".into()],
            vec!["api".into()],
            10,
            None,
        )
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

    #[test]
    fn rendering_builds_the_forward_auth_headers_and_body_once() {
        let mut s = session();
        s.session_id = Some("sid-1".into());
        assert_eq!(s.rendered(), &Rendered::default());
        s.render();
        let r = s.rendered();
        assert_eq!(r.user.as_ref().map(|v| v.as_bytes()), Some(&b"alice"[..]));
        assert_eq!(
            r.scopes.as_ref().map(|v| v.as_bytes()),
            Some(&b"read write"[..])
        );
        assert_eq!(
            r.session.as_ref().map(|v| v.as_bytes()),
            Some(&b"sid-1"[..])
        );
        assert_eq!(
            &r.body[..],
            br#"{"user":"alice","scopes":["read","write"],"session_id":"sid-1"}"#
        );
    }

    #[test]
    fn a_subject_that_cannot_be_a_header_renders_no_user_header() {
        let mut s = session();
        s.subject = "bad\nsubject".into();
        s.render();
        assert_eq!(s.rendered().user, None);
    }
}
