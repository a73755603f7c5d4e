//! Minting in batches: concurrent full authentications that finish together
//! (turbo mode releases up to 32 users from one homomorphic evaluation) share
//! one ML-DSA signature and one durable write
//! ([`SessionAuthority::mint_batch`]).
//!
//! Callers block in [`MintBatcher::mint`] (call it from a blocking thread).
//! A worker thread takes the first waiting request, gathers more until the
//! batch is full or `deadline` has passed since that first one, mints them
//! all at once and answers each caller with its own session. A lone request
//! therefore waits at most `deadline`; a full batch does not wait at all.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use postern_core::context::MAX_BATCH;
use postern_core::UnixNanos;
use rand::rngs::OsRng;

use crate::authority::{MintError, Minted, NewSession, SessionAuthority};

/// Why a batched mint failed. Nothing was stored for the whole batch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchMintError {
    #[error("the session store is unavailable")]
    StoreUnavailable,
    #[error("the session could not be minted: {0}")]
    Failed(String),
    #[error("the mint batcher has stopped")]
    Stopped,
}

impl From<&MintError> for BatchMintError {
    fn from(e: &MintError) -> Self {
        match e {
            MintError::Store(_) => BatchMintError::StoreUnavailable,
            other => BatchMintError::Failed(other.to_string()),
        }
    }
}

type Reply = SyncSender<Result<Minted, BatchMintError>>;

struct Job {
    new: NewSession,
    reply: Reply,
}

/// How batches are formed.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most sessions per batch (at most `MAX_BATCH`).
    pub max: usize,
    /// Longest a request waits for company.
    pub deadline: Duration,
}

/// Gathers concurrent mints into batches. Dropping it stops the worker
/// after the batch in hand.
pub struct MintBatcher {
    jobs: Mutex<Option<Sender<Job>>>,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for MintBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MintBatcher").finish_non_exhaustive()
    }
}

impl MintBatcher {
    /// Starts the worker. `clock` gives the mint time of each batch.
    pub fn start(
        authority: Arc<SessionAuthority>,
        config: BatchConfig,
        clock: Arc<dyn Fn() -> UnixNanos + Send + Sync>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let max = config.max.clamp(1, MAX_BATCH);
        let deadline = config.deadline;
        let worker = std::thread::Builder::new()
            .name("postern-mint-batcher".into())
            .spawn(move || run(&authority, &rx, max, deadline, clock.as_ref()))?;
        Ok(Self {
            jobs: Mutex::new(Some(tx)),
            worker: Some(worker),
        })
    }

    /// Mints `new` in the next batch; blocks until that batch is stored.
    pub fn mint(&self, new: NewSession) -> Result<Minted, BatchMintError> {
        let (reply, answer) = mpsc::sync_channel(1);
        {
            let jobs = self.jobs.lock();
            let sender = jobs.as_ref().ok_or(BatchMintError::Stopped)?;
            sender
                .send(Job { new, reply })
                .map_err(|_| BatchMintError::Stopped)?;
        }
        answer.recv().map_err(|_| BatchMintError::Stopped)?
    }
}

impl MintBatcher {
    /// Whether the worker is still taking mints (readiness).
    pub fn is_running(&self) -> bool {
        self.jobs.lock().is_some() && self.worker.as_ref().is_some_and(|w| !w.is_finished())
    }
}

impl Drop for MintBatcher {
    fn drop(&mut self) {
        self.jobs.lock().take();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

fn run(
    authority: &SessionAuthority,
    jobs: &Receiver<Job>,
    max: usize,
    deadline: Duration,
    clock: &(dyn Fn() -> UnixNanos + Send + Sync),
) {
    let mut rng = OsRng;
    while let Ok(first) = jobs.recv() {
        let closes_at = Instant::now() + deadline;
        let mut batch = vec![first];
        while batch.len() < max {
            let left = closes_at.saturating_duration_since(Instant::now());
            match jobs.recv_timeout(left) {
                Ok(job) => batch.push(job),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => break,
            }
        }
        let (news, replies): (Vec<NewSession>, Vec<Reply>) =
            batch.into_iter().map(|j| (j.new, j.reply)).unzip();
        match authority.mint_batch(news, clock(), &mut rng) {
            Ok(minted) => {
                for (reply, m) in replies.into_iter().zip(minted) {
                    // A caller that went away loses only its own answer.
                    let _ = reply.send(Ok(m));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "a mint batch failed; nothing was stored");
                let err = BatchMintError::from(&e);
                for reply in replies {
                    let _ = reply.send(Err(err.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MemoryStore;
    use crate::AuthorityConfig;
    use postern_core::context::UserId;
    use postern_core::device::Fingerprint;
    use postern_core::keyring::Keyring;
    use postern_core::policy::Decision;

    const T0: u64 = 1_700_000_000 * postern_core::SECOND;

    fn authority() -> Arc<SessionAuthority> {
        let keyring = Arc::new(Keyring::generate(T0, &mut rand::thread_rng()));
        let store = Arc::new(MemoryStore::default());
        let (auth, _) =
            SessionAuthority::restore(keyring, store, AuthorityConfig::default(), T0).unwrap();
        Arc::new(auth)
    }

    fn new(i: usize) -> NewSession {
        NewSession::verified(
            UserId::parse(&format!("u{i}")).unwrap(),
            &Fingerprint::single("laptop").unwrap(),
        )
    }

    #[test]
    fn concurrent_mints_share_batches_and_each_gets_its_own_session() {
        let auth = authority();
        let batcher = Arc::new(
            MintBatcher::start(
                auth.clone(),
                BatchConfig {
                    max: 32,
                    deadline: Duration::from_millis(200),
                },
                Arc::new(|| T0),
            )
            .unwrap(),
        );
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let b = batcher.clone();
                std::thread::spawn(move || b.mint(new(i)).unwrap())
            })
            .collect();
        let minted: Vec<Minted> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut users: Vec<String> = minted
            .iter()
            .map(|m| m.session.context().user.to_string())
            .collect();
        users.sort();
        users.dedup();
        assert_eq!(users.len(), 32);
        let laptop = Fingerprint::single("laptop").unwrap();
        for m in &minted {
            let out = auth.resume(&m.token, Some(&laptop), None, None, T0 + 1);
            assert_eq!(out.decision, Decision::Resumed);
        }
    }

    #[test]
    #[allow(clippy::panic)]
    fn a_dead_worker_answers_stopped_and_is_not_running() {
        let batcher = MintBatcher::start(
            authority(),
            BatchConfig {
                max: 4,
                deadline: Duration::from_millis(1),
            },
            Arc::new(|| panic!("the clock failed")),
        )
        .unwrap();
        assert!(batcher.is_running());
        assert_eq!(batcher.mint(new(1)).unwrap_err(), BatchMintError::Stopped);
        let started = Instant::now();
        while batcher.is_running() && started.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        assert!(!batcher.is_running());
        assert_eq!(batcher.mint(new(2)).unwrap_err(), BatchMintError::Stopped);
    }

    #[test]
    fn a_lone_request_is_minted_when_the_deadline_passes() {
        let batcher = MintBatcher::start(
            authority(),
            BatchConfig {
                max: 32,
                deadline: Duration::from_millis(5),
            },
            Arc::new(|| T0),
        )
        .unwrap();
        let started = Instant::now();
        let minted = batcher.mint(new(1)).unwrap();
        assert_eq!(minted.session.context().user.as_str(), "u1");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_failed_batch_answers_every_caller_and_stores_nothing() {
        let auth = authority();
        let batcher = MintBatcher::start(
            auth.clone(),
            BatchConfig {
                max: 4,
                deadline: Duration::from_millis(5),
            },
            Arc::new(|| T0),
        )
        .unwrap();
        let mut failing = new(1);
        failing.verdict = postern_core::context::Verdict::new(false, 0);
        assert!(matches!(
            batcher.mint(failing),
            Err(BatchMintError::Failed(_))
        ));
        assert!(auth
            .list_user(&UserId::parse("u1").unwrap())
            .unwrap()
            .is_empty());
    }
}
