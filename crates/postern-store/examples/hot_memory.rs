//! Resident memory per active session in the hot tier, at 1,000,000 sessions.
//!
//! The hot tier holds decoded, already-verified contexts (the ML-DSA-65
//! signature is checked on entry and not kept), so this probe builds
//! `SessionContext` values directly instead of signing a million of them,
//! which would take minutes and change nothing in memory. Each context is
//! realistic: a random 16-byte id, an 8-20 character user id, and the two
//! claims `SessionAuthority::mint` adds (identity and device). Each is wrapped
//! in a `HotSession` and inserted as `Slot::Live(Arc<_>)`, as minting and
//! restoring do.
//!
//! Memory is the process's resident set (`VmRSS` from `/proc/self/status`)
//! before and after filling the tier; nothing temporary is alive at the second
//! reading. `unsafe` is forbidden in the workspace, so there is no counting
//! global allocator: the figure includes allocator overhead and the map's
//! spare capacity, as a real server would pay.
//!
//! Run (release; a debug build measures the wrong thing and is slow):
//! `cargo run --release -p postern-store --example hot_memory`

use std::sync::Arc;

use postern_core::claims::{Claim, ClaimKind};
use postern_core::context::{SessionContext, UserId, Verdict};
use postern_core::token::{SessionId, VerifierHash};
use postern_core::SECOND;
use postern_store::hot::{HotSession, HotTier, Slot};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};

const SESSIONS: usize = 1_000_000;
const PROGRESS_EVERY: usize = 200_000;
/// The seed system's measured hot-tier cost per session.
const SEED_BYTES_PER_SESSION: f64 = 3_368.0;
const T0: u64 = 1_700_000_000_000_000_000;
const TTL: u64 = 8 * 3_600 * SECOND;
const RESUME_WINDOW: u64 = 3_600 * SECOND;
const USER_CHARS: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789._-";

fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

fn random_user(rng: &mut StdRng) -> Option<UserId> {
    let len = rng.gen_range(8..=20);
    let text: String = (0..len)
        .map(|_| char::from(USER_CHARS[rng.gen_range(0..USER_CHARS.len())]))
        .collect();
    UserId::parse(&text).ok()
}

fn random_context(rng: &mut StdRng, id: SessionId) -> Option<SessionContext> {
    let auth_time = T0 + rng.gen_range(0..RESUME_WINDOW);
    let ttl_secs = (TTL / SECOND) as u32;
    let claim = |rng: &mut StdRng, kind| Claim {
        kind,
        value_digest: rng.gen(),
        verified_at: auth_time,
        ttl_secs,
    };
    // Exactly the two claims `mint` adds, in a vector of that capacity.
    let claims = vec![
        claim(rng, ClaimKind::Identity),
        claim(rng, ClaimKind::Device),
    ];
    Some(SessionContext {
        session_id: id,
        verifier_hash: VerifierHash::from_bytes(rng.gen()),
        user: random_user(rng)?,
        verdict: Verdict::new(true, 7),
        auth_time,
        expires_at: auth_time + TTL,
        resume_until: auth_time + RESUME_WINDOW,
        device_mac: rng.gen(),
        batch_slot: None,
        proof_digest: rng.gen(),
        credential: rng.gen(),
        claims,
        key_id: 1,
    })
}

fn main() {
    let mut rng = StdRng::from_entropy();
    let hot = HotTier::default();
    let Some(before) = rss_bytes() else {
        eprintln!("cannot read VmRSS from /proc/self/status");
        std::process::exit(1);
    };

    let mut inserted = 0usize;
    while inserted < SESSIONS {
        let mut raw = [0u8; SessionId::LEN];
        rng.fill_bytes(&mut raw);
        let id = SessionId::from_bytes(raw);
        let Some(context) = random_context(&mut rng, id) else {
            eprintln!("generated an invalid user id");
            std::process::exit(1);
        };
        let last_seen = context.auth_time;
        hot.insert(
            id,
            Slot::Live(Arc::new(HotSession::new(context, last_seen, None))),
        );
        inserted += 1;
        if inserted.is_multiple_of(PROGRESS_EVERY) {
            let rss = rss_bytes().unwrap_or(0);
            println!(
                "{inserted:>9} inserted, {:>9} in tier, RSS {:.1} MiB",
                hot.len(),
                rss as f64 / (1024.0 * 1024.0)
            );
        }
    }

    let sessions = hot.len();
    let Some(after) = rss_bytes() else {
        eprintln!("cannot read VmRSS from /proc/self/status");
        std::process::exit(1);
    };
    // Counted from the tier, not the draws (a 16-byte collision is ~10^-27).
    let total = after.saturating_sub(before);
    let per_session = total as f64 / sessions as f64;
    println!();
    println!("sessions in hot tier:   {sessions}");
    println!(
        "RSS before / after:     {:.1} MiB / {:.1} MiB",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    println!(
        "hot-tier total:         {total} bytes ({:.1} MiB)",
        total as f64 / 1048576.0
    );
    println!("bytes per session:      {per_session:.0}");
    println!(
        "seed system:            {SEED_BYTES_PER_SESSION:.0} bytes/session ({:.1}x Postern)",
        SEED_BYTES_PER_SESSION / per_session
    );
    println!(
        "struct sizes:           HotSession {} B, SessionContext {} B, Claim {} B, Slot {} B",
        std::mem::size_of::<HotSession>(),
        std::mem::size_of::<SessionContext>(),
        std::mem::size_of::<Claim>(),
        std::mem::size_of::<Slot>()
    );
    // Keep the tier alive until every reading is taken.
    drop(hot);
}
