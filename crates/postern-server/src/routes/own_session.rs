//! The request's own Postern session, as an axum extractor: the seed's
//! `req.auth`.
//!
//! A handler that acts for a signed-in user takes an [`OwnSession`] among
//! its arguments instead of checking the session by hand: the session is
//! then checked exactly as `/v1/check` checks it (token from
//! `Authorization: Bearer` or the session cookie, its device, the resume
//! policy: `session::authenticated`), and a refusal is the same
//! error. The marker says what the request is about to do: [`Reading`], or
//! [`Changing`], for which a cookie-authenticated request must also come
//! from a configured origin. The in-process layer builds on the same
//! check.

use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::HeaderMap;
use postern_core::context::UserId;
use postern_core::UnixNanos;
use postern_store::hot::HotSession;

use super::session::{authenticated, Intent};
use super::user_id;
use crate::error::ApiError;
use crate::state::AppState;

/// What a request does with its session.
pub trait SessionIntent: Send + Sync + 'static {
    /// The intent `session::authenticated` checks the session for.
    const INTENT: Intent;
}

/// The request only reads.
pub enum Reading {}

/// The request changes state: a cookie-authenticated one must come from a
/// configured origin (`403 cross_origin` otherwise).
pub enum Changing {}

impl SessionIntent for Reading {
    const INTENT: Intent = Intent::Read;
}

impl SessionIntent for Changing {
    const INTENT: Intent = Intent::Change;
}

/// The request's session, checked as `/v1/check` checks it.
pub struct OwnSession<I: SessionIntent> {
    session: Arc<HotSession>,
    intent: PhantomData<I>,
}

impl<I: SessionIntent> OwnSession<I> {
    /// The session the request's headers present, checked.
    pub fn from_headers(state: &AppState, headers: &HeaderMap) -> Result<Self, ApiError> {
        Ok(Self {
            session: authenticated(state, headers, I::INTENT)?,
            intent: PhantomData,
        })
    }

    /// The session, which must be `user`'s: `400 invalid_user` for a user
    /// id that cannot be one, `403 forbidden` for another user's.
    pub fn of_user(self, user: &str) -> Result<(UserId, Arc<HotSession>), ApiError> {
        let user = user_id(user)?;
        if self.session.context().user != user {
            return Err(ApiError::Forbidden);
        }
        Ok((user, self.session))
    }
}

impl OwnSession<Changing> {
    /// As [`OwnSession::of_user`], for account changes that need a recent
    /// full authentication: the session's must be at most `reauth_max_age`
    /// old (else `403 reauth_required`). Also returns the time it was
    /// judged at.
    pub fn recent_of_user(
        self,
        state: &AppState,
        user: &str,
    ) -> Result<(UserId, Arc<HotSession>, UnixNanos), ApiError> {
        let (user, session) = self.of_user(user)?;
        let now = state.clock.now();
        if now.saturating_sub(session.context().auth_time) > state.reauth_max_age {
            return Err(ApiError::ReauthRequired);
        }
        Ok((user, session, now))
    }
}

impl<I: SessionIntent> FromRequestParts<AppState> for OwnSession<I> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        Self::from_headers(state, &parts.headers)
    }
}
