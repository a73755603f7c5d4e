//! Replays the seed's gate workload against the real upstream and reports
//! the cache hit rate and the upstream-call reduction factor.
//!
//! **What.** About 10,000 requests/s offered to `GET /v1/check` of a real
//! `postern serve` in gate mode, over 1,200 active sessions with Zipf-like
//! popularity (s = 1.0), each session holding a token minted by the real
//! reference IdP (`postern-demo-idp --latency 20ms`) with a lifetime drawn
//! uniformly from 60 s to 15 min. A session whose token is within 1 s of
//! expiry gets a new token (a refresh), as a client would. With
//! `--bogus-ratio K`, every valid request is accompanied by K requests
//! carrying random, never-valid, JWT-shaped tokens (a flood): they must all
//! be refused (401), and the hit rate on the live sessions must stay high.
//!
//! **Why.** The seed reports a 99.41% hit rate and a 168x reduction in
//! upstream calls for this workload; this driver measures the same figures
//! for Postern, end to end over real HTTP, on this machine.
//!
//! **How it measures.** Cache hits and misses come from Postern's own
//! `/metrics` (`postern_gate_cache_hits_total`, `postern_gate_cache_misses_total`),
//! upstream calls from the IdP's `/stats` (`introspect`), both read before
//! and after the traffic (and again at every progress report, so the
//! steady state after the cold start is reported too). The hit rate is
//! `hits / (hits + misses)`; the reduction factor is
//! `valid requests / upstream introspection calls`. In a flood every bogus
//! request is exactly one cache miss (failures are never cached), so the
//! hit rate on live sessions is `hits / (hits + (misses - bogus requests
//! answered))`.
//!
//! The load generator, Postern and the IdP share the same machine. The
//! pacing is open-loop-ish: `--workers` tasks tick at their share of
//! `--rate` and spawn each request (at most `--max-in-flight` at once), so
//! a slow answer does not slow the offered rate until that cap is reached.
//! The achieved rate is reported as measured.
//!
//! **How to run.**
//!
//! ```sh
//! cargo build --release -p postern-server --bins --examples
//! target/release/examples/seed_workload --seconds 120
//! target/release/examples/seed_workload --seconds 60 --bogus-ratio 10 --rate 6000 --prime
//! ```
//!
//! Figures are given for the whole run and for the steady state after a
//! `--warmup` (10 s by default; the load pauses a moment to drain so both
//! snapshots are exact). With `--prime`, one request per session is sent
//! before measuring, so no figure includes the cold start: use it when the
//! valid rate is too low (as in a flood on a small machine) to reach every
//! session within the warm-up.
//!
//! The binaries `postern` and `postern-demo-idp` are taken from the
//! directory above the example's own (`target/release/`), or `--bin-dir`.

// A benchmark driver, not library code: when setup fails (a binary missing,
// a child that never prints its listening line, an IdP that will not mint)
// there is nothing to measure, so aborting with the reason is what we want.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use clap::Parser;
use parking_lot::{Mutex, RwLock};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use serde_json::{json, Value};
use tokio::sync::Semaphore;

#[derive(Debug, Parser)]
#[command(
    name = "seed_workload",
    about = "Replay of the seed's gate workload against the real upstream."
)]
struct Args {
    /// How long to send traffic, in seconds.
    #[arg(long, default_value_t = 120)]
    seconds: u64,
    /// Total offered rate, valid and bogus requests together, per second.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// Active sessions (token slots).
    #[arg(long, default_value_t = 1_200)]
    sessions: usize,
    /// Zipf exponent of session popularity.
    #[arg(long, default_value_t = 1.0)]
    zipf_s: f64,
    /// Shortest token lifetime, seconds.
    #[arg(long, default_value_t = 60)]
    min_lifetime: u64,
    /// Longest token lifetime, seconds.
    #[arg(long, default_value_t = 900)]
    max_lifetime: u64,
    /// Bogus requests sent for every valid request (a flood).
    #[arg(long, default_value_t = 0)]
    bogus_ratio: u32,
    /// Pacing tasks sharing the offered rate.
    #[arg(long, default_value_t = 64)]
    workers: usize,
    /// Cap on requests in flight at once.
    #[arg(long, default_value_t = 4_096)]
    max_in_flight: usize,
    /// Seconds of traffic (part of `--seconds`) before the steady-state
    /// measurement starts; the load pauses briefly to drain in-flight
    /// requests so both snapshots are exact.
    #[arg(long, default_value_t = 10)]
    warmup: u64,
    /// Before measuring, send one valid request per session (64 at a time)
    /// so every live session starts cached, as in a long-running steady
    /// state; the priming requests are counted in no figure.
    #[arg(long)]
    prime: bool,
    /// Latency of every IdP validation (`postern-demo-idp --latency`).
    #[arg(long, default_value = "20ms")]
    latency: String,
    /// Directory holding `postern` and `postern-demo-idp` [default: the
    /// directory above this example's].
    #[arg(long)]
    bin_dir: Option<PathBuf>,
}

/// Log lines of a child at WARN or ERROR, and the first few of them.
#[derive(Default)]
struct LogTally {
    warnings: AtomicU64,
    samples: Mutex<Vec<String>>,
}

/// A child process, killed when dropped.
struct Proc {
    name: &'static str,
    child: Child,
    base: String,
    log: Arc<LogTally>,
}

impl Proc {
    /// Spawns `command` and waits (30 s at most) for its first stdout line,
    /// which must start with `prefix` followed by the base URL.
    fn start(name: &'static str, mut command: Command, prefix: &str) -> Proc {
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            // Keep draining so the child never blocks on a full pipe.
            for _ in lines {}
        });
        let log = Arc::new(LogTally::default());
        let tally = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let expected = line.contains("created a new instance key");
                if (line.contains("WARN") || line.contains("ERROR")) && !expected {
                    tally.warnings.fetch_add(1, Ordering::Relaxed);
                    let mut samples = tally.samples.lock();
                    if samples.len() < 5 {
                        samples.push(line);
                    }
                }
            }
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{name} did not print its listening line in 30 s"));
        let base = line
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("unexpected first line from {name}: {line}"))
            .trim()
            .to_string();
        Proc {
            name,
            child,
            base,
            log,
        }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Responses by status, for one kind of request.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    unauthorized: AtomicU64,
    forbidden: AtomicU64,
    unavailable: AtomicU64,
    other: AtomicU64,
    errors: AtomicU64,
}

impl Tally {
    fn record(&self, result: Result<u16, reqwest::Error>) {
        let counter = match result {
            Ok(200) => &self.ok,
            Ok(401) => &self.unauthorized,
            Ok(403) => &self.forbidden,
            Ok(503) => &self.unavailable,
            Ok(_) => &self.other,
            Err(_) => &self.errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests answered with any status.
    fn answered(&self) -> u64 {
        [
            &self.ok,
            &self.unauthorized,
            &self.forbidden,
            &self.unavailable,
            &self.other,
        ]
        .iter()
        .map(|c| c.load(Ordering::Relaxed))
        .sum()
    }

    fn total(&self) -> u64 {
        self.answered() + self.errors.load(Ordering::Relaxed)
    }

    fn describe(&self) -> String {
        let l = |c: &AtomicU64| group(c.load(Ordering::Relaxed));
        format!(
            "200: {}, 401: {}, 403: {}, 503: {}, other: {}, transport errors: {}",
            l(&self.ok),
            l(&self.unauthorized),
            l(&self.forbidden),
            l(&self.unavailable),
            l(&self.other),
            l(&self.errors)
        )
    }
}

/// One active session: its current token and that token's expiry.
struct Slot {
    token: Arc<str>,
    exp: u64,
}

struct Shared {
    client: reqwest::Client,
    check_url: String,
    idp_base: String,
    slots: Vec<RwLock<Slot>>,
    cdf: Vec<f64>,
    min_lifetime: u64,
    max_lifetime: u64,
    valid: Tally,
    bogus: Tally,
    refreshes: AtomicU64,
    refresh_failures: AtomicU64,
}

/// Figures read from the two servers at one moment.
#[derive(Clone, Copy, Debug, Default)]
struct Snapshot {
    hits: u64,
    misses: u64,
    introspect: u64,
    valid: u64,
    bogus_answered: u64,
}

fn now_secs_f64() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// `1234567` → `1,234,567`.
fn group(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn percent(num: u64, den: u64) -> String {
    if den == 0 {
        "n/a".into()
    } else {
        format!("{:.4}%", 100.0 * num as f64 / den as f64)
    }
}

fn ratio(num: u64, den: u64) -> String {
    if den == 0 {
        "inf (no upstream call)".into()
    } else {
        let r = num as f64 / den as f64;
        if r < 10.0 {
            format!("{r:.2}x")
        } else {
            format!("{r:.0}x")
        }
    }
}

/// Cumulative Zipf(s) distribution over `n` ranks.
fn zipf_cdf(n: usize, s: f64) -> Vec<f64> {
    let weights: Vec<f64> = (1..=n).map(|k| 1.0 / (k as f64).powf(s)).collect();
    let total: f64 = weights.iter().sum();
    let mut acc = 0.0;
    weights
        .iter()
        .map(|w| {
            acc += w / total;
            acc
        })
        .collect()
}

/// A random, never-minted token shaped like the IdP's (~700 bytes), with an
/// `exp` in the future so the gate has to ask upstream.
fn bogus_token(rng: &mut StdRng) -> String {
    let mut random = |n: usize| {
        let mut bytes = vec![0u8; n];
        rng.fill_bytes(&mut bytes);
        URL_SAFE_NO_PAD.encode(bytes)
    };
    let header = json!({ "alg": "EdDSA", "typ": "JWT", "kid": "demo-key-1" });
    let exp = now_secs_f64() as u64 + 600;
    let claims = json!({ "iss": "https://idp.demo", "sub": format!("bogus-{}", random(6)), "exp": exp,
        "iat": exp - 600, "sid": random(12), "scope": "read", "jti": random(16), "ctx": random(180) });
    format!(
        "{}.{}.{}",
        URL_SAFE_NO_PAD.encode(header.to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string()),
        random(64)
    )
}

impl Shared {
    /// Mints a token at the IdP; returns it with its expiry.
    async fn mint(&self, sub: &str, expires_in: u64) -> Result<(Arc<str>, u64), String> {
        let body: Value = self
            .client
            .post(format!("{}/admin/tokens", self.idp_base))
            .json(&json!({ "sub": sub, "scope": "read", "expires_in": expires_in }))
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        let token = body["token"].as_str().ok_or("no token in mint answer")?;
        let exp = body["exp"].as_u64().ok_or("no exp in mint answer")?;
        Ok((Arc::from(token), exp))
    }

    fn lifetime(&self, rng: &mut StdRng) -> u64 {
        rng.gen_range(self.min_lifetime..=self.max_lifetime)
    }

    /// Replaces every token within 1 s of its expiry.
    async fn refresh_due(&self, rng: &mut StdRng) {
        let now = now_secs_f64();
        for (i, slot) in self.slots.iter().enumerate() {
            let exp = slot.read().exp;
            if exp as f64 - now > 1.0 {
                continue;
            }
            let lifetime = self.lifetime(rng);
            match self.mint(&format!("user-{i}"), lifetime).await {
                Ok((token, exp)) => {
                    *slot.write() = Slot { token, exp };
                    self.refreshes.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => {
                    if self.refresh_failures.fetch_add(1, Ordering::Relaxed) == 0 {
                        eprintln!("refresh failed: {e}");
                    }
                }
            }
        }
    }

    fn pick(&self, rng: &mut StdRng) -> Arc<str> {
        let u: f64 = rng.gen();
        let rank = self
            .cdf
            .partition_point(|&c| c < u)
            .min(self.slots.len() - 1);
        Arc::clone(&self.slots[rank].read().token)
    }

    async fn check(&self, token: &str) -> Result<u16, reqwest::Error> {
        let response = self
            .client
            .get(&self.check_url)
            .bearer_auth(token)
            .send()
            .await?;
        let status = response.status().as_u16();
        // Read the body so the connection goes back to the pool.
        response.bytes().await?;
        Ok(status)
    }
}

async fn get_text(client: &reqwest::Client, url: &str) -> String {
    client
        .get(url)
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"))
}

/// The value of an unlabelled metric line `name N`.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
            rest.trim().parse::<f64>().ok()
        })
        .unwrap_or_else(|| panic!("metric {name} missing from /metrics"))
        .round() as u64
}

const GATE_CACHE_METRICS: [&str; 7] = [
    "postern_gate_cache_hits_total",
    "postern_gate_cache_misses_total",
    "postern_gate_cache_admissions_rejected_total",
    "postern_gate_cache_evictions_total",
    "postern_gate_cache_expired_reaped_total",
    "postern_gate_cache_entries",
    "postern_gate_cache_bytes",
];

async fn gate_metrics(shared: &Shared, postern_base: &str) -> Vec<(&'static str, u64)> {
    let text = get_text(&shared.client, &format!("{postern_base}/metrics")).await;
    GATE_CACHE_METRICS
        .iter()
        .map(|&name| (name, metric(&text, name)))
        .collect()
}

async fn snapshot(shared: &Shared, postern_base: &str) -> Snapshot {
    // Client-side counts first: a request counted here was already counted
    // by the servers. (Exact only when nothing is in flight, which is how
    // the reported figures are taken.)
    let valid = shared.valid.answered();
    let bogus_answered = shared.bogus.answered();
    let metrics = gate_metrics(shared, postern_base).await;
    let stats: Value = serde_json::from_str(
        &get_text(&shared.client, &format!("{}/stats", shared.idp_base)).await,
    )
    .expect("IdP /stats is JSON");
    Snapshot {
        hits: metrics[0].1,
        misses: metrics[1].1,
        introspect: stats["introspect"].as_u64().expect("introspect count"),
        valid,
        bogus_answered,
    }
}

/// The headline figures between two snapshots, formatted.
struct Figures {
    hit_rate: String,
    live_hit_rate: String,
    upstream: u64,
    reduction: String,
}

/// Prints the figures between two snapshots.
fn report(title: &str, from: &Snapshot, to: &Snapshot, bogus_ratio: u32) -> Figures {
    let hits = to.hits - from.hits;
    let misses = to.misses - from.misses;
    let upstream = to.introspect - from.introspect;
    let valid = to.valid - from.valid;
    let bogus = to.bogus_answered - from.bogus_answered;
    let hit_rate = percent(hits, hits + misses);
    println!("  {title}:");
    println!(
        "    cache hits {}, misses {}: hit rate hits/(hits+misses) = {hit_rate}",
        group(hits),
        group(misses)
    );
    let live_hit_rate = if bogus_ratio > 0 {
        let live_misses = misses.saturating_sub(bogus);
        let live_upstream = upstream.saturating_sub(bogus);
        let rate = percent(hits, hits + live_misses);
        println!(
            "    live hit rate = hits / (hits + (misses - bogus answered)) = {} / ({} + ({} - {})) = {rate}",
            group(hits),
            group(hits),
            group(misses),
            group(bogus)
        );
        println!(
            "    cross-check from upstream calls: 1 - (introspect - bogus answered) / valid requests = 1 - {} / {} = {}",
            group(live_upstream),
            group(valid),
            percent(valid.saturating_sub(live_upstream), valid)
        );
        rate
    } else {
        hit_rate.clone()
    };
    println!(
        "    upstream introspection calls {}; reduction factor valid requests / upstream calls = {} / {} = {}",
        group(upstream),
        group(valid),
        group(upstream),
        ratio(valid, upstream)
    );
    if bogus_ratio > 0 {
        let live_upstream = upstream.saturating_sub(bogus);
        println!(
            "    live upstream calls (introspect - bogus answered) {}; live reduction factor {}",
            group(live_upstream),
            ratio(valid, live_upstream)
        );
    }
    Figures {
        hit_rate,
        live_hit_rate,
        upstream,
        reduction: ratio(valid, upstream),
    }
}

/// Offers the workload for `duration`, then waits for every request still
/// in flight. Returns how long it sent for.
async fn drive(
    shared: &Arc<Shared>,
    args: &Args,
    in_flight: &Arc<Semaphore>,
    duration: Duration,
) -> Duration {
    let k = args.bogus_ratio;
    let workers = args.workers;
    let period = Duration::from_secs_f64(workers as f64 * f64::from(1 + k) / args.rate);
    let began = tokio::time::Instant::now();
    let deadline = began + duration;
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers {
        let shared = Arc::clone(shared);
        let in_flight = Arc::clone(in_flight);
        tasks.push(tokio::spawn(async move {
            let mut rng = StdRng::from_entropy();
            // Stagger the workers across one period.
            let offset = period.mul_f64(w as f64 / workers as f64);
            let mut tick = tokio::time::interval_at(began + offset, period);
            loop {
                tick.tick().await;
                // Late ticks are sent in a burst (to catch up), but never
                // after the deadline.
                if tokio::time::Instant::now() >= deadline {
                    break;
                }
                let token = shared.pick(&mut rng);
                let permit = Arc::clone(&in_flight).acquire_owned().await.expect("open");
                let s = Arc::clone(&shared);
                tokio::spawn(async move {
                    let result = s.check(&token).await;
                    s.valid.record(result);
                    drop(permit);
                });
                for _ in 0..k {
                    let token = bogus_token(&mut rng);
                    let permit = Arc::clone(&in_flight).acquire_owned().await.expect("open");
                    let s = Arc::clone(&shared);
                    tokio::spawn(async move {
                        let result = s.check(&token).await;
                        s.bogus.record(result);
                        drop(permit);
                    });
                }
            }
        }));
    }
    for task in tasks {
        task.await.expect("worker");
    }
    let sent_for = began.elapsed();
    // Every permit back means nothing is in flight.
    let all = u32::try_from(args.max_in_flight).expect("max in flight fits u32");
    drop(in_flight.acquire_many(all).await.expect("open"));
    sent_for
}

async fn run(args: Args) {
    assert!(args.sessions > 0 && args.workers > 0 && args.rate > 0.0);
    assert!(args.min_lifetime >= 2 && args.min_lifetime <= args.max_lifetime);
    let bin_dir = args.bin_dir.clone().unwrap_or_else(|| {
        let exe = std::env::current_exe().expect("current_exe");
        exe.parent()
            .and_then(|examples| examples.parent())
            .expect("the example lives in <target>/<profile>/examples/")
            .to_path_buf()
    });
    let (postern_bin, idp_bin) = (bin_dir.join("postern"), bin_dir.join("postern-demo-idp"));
    for bin in [&postern_bin, &idp_bin] {
        assert!(
            bin.exists(),
            "{} not found; build with `cargo build --release -p postern-server --bins --examples` or pass --bin-dir",
            bin.display()
        );
    }

    let mut idp_command = Command::new(&idp_bin);
    idp_command.args(["--listen", "127.0.0.1:0", "--latency", &args.latency]);
    let idp = Proc::start(
        "postern-demo-idp",
        idp_command,
        "postern-demo-idp listening on ",
    );
    let data = tempfile::tempdir().expect("temporary data directory");
    let mut postern_command = Command::new(&postern_bin);
    postern_command
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data.path())
        .args([
            "--upstream-introspection",
            &format!("{}/oauth/introspect", idp.base),
            "--client-id",
            "demo",
            "--client-secret",
            "demo-secret",
        ])
        .env("RUST_LOG", "warn");
    for (key, _) in std::env::vars() {
        if key.starts_with("POSTERN_") {
            postern_command.env_remove(key);
        }
    }
    let postern = Proc::start("postern", postern_command, "postern listening on ");
    let postern_base = postern.base.clone();

    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.max_in_flight)
        .timeout(Duration::from_secs(10))
        .build()
        .expect("HTTP client");
    let mut rng = StdRng::from_entropy();
    let mut shared = Shared {
        client,
        check_url: format!("{postern_base}/v1/check"),
        idp_base: idp.base.clone(),
        slots: Vec::with_capacity(args.sessions),
        cdf: zipf_cdf(args.sessions, args.zipf_s),
        min_lifetime: args.min_lifetime,
        max_lifetime: args.max_lifetime,
        valid: Tally::default(),
        bogus: Tally::default(),
        refreshes: AtomicU64::new(0),
        refresh_failures: AtomicU64::new(0),
    };
    for i in 0..args.sessions {
        let lifetime = shared.lifetime(&mut rng);
        let (token, exp) = shared
            .mint(&format!("user-{i}"), lifetime)
            .await
            .expect("mint");
        shared.slots.push(RwLock::new(Slot { token, exp }));
    }
    let shared = Arc::new(shared);

    let k = args.bogus_ratio;
    let ticks_per_second = args.rate / f64::from(1 + k);
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "seed workload: {} sessions, Zipf s = {}, token lifetimes U[{}, {}] s, IdP latency {}",
        group(args.sessions as u64),
        args.zipf_s,
        args.min_lifetime,
        args.max_lifetime,
        args.latency
    );
    println!(
        "offered: {:.0} requests/s in total = {:.0} valid/s + {:.0} bogus/s (bogus ratio {k}), {} workers, at most {} in flight, for {} s",
        args.rate,
        ticks_per_second,
        ticks_per_second * f64::from(k),
        args.workers,
        args.max_in_flight,
        args.seconds
    );
    println!("machine: {cores} cores shared by the load generator, postern and postern-demo-idp");
    println!("postern {postern_base}, IdP {}", idp.base);
    let _ = std::io::stdout().flush();

    if args.prime {
        let gate = Arc::new(Semaphore::new(64));
        let mut primes = Vec::with_capacity(shared.slots.len());
        for slot in &shared.slots {
            let token = Arc::clone(&slot.read().token);
            let permit = Arc::clone(&gate).acquire_owned().await.expect("open");
            let s = Arc::clone(&shared);
            primes.push(tokio::spawn(async move {
                let status = s.check(&token).await.expect("priming request");
                drop(permit);
                status
            }));
        }
        let mut ok = 0;
        for prime in primes {
            ok += u64::from(prime.await.expect("priming task") == 200);
        }
        println!(
            "primed: one request per session before measuring ({} of {} answered 200; not counted below)",
            group(ok),
            group(shared.slots.len() as u64)
        );
    }
    let start_snapshot = snapshot(&shared, &postern_base).await;
    let start_metrics = gate_metrics(&shared, &postern_base).await;
    let in_flight = Arc::new(Semaphore::new(args.max_in_flight));
    let started = Instant::now();

    let refresher = {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let mut rng = StdRng::from_entropy();
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                shared.refresh_due(&mut rng).await;
            }
        })
    };
    let progress = {
        let shared = Arc::clone(&shared);
        let postern_base = postern_base.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(
                tokio::time::Instant::now() + Duration::from_secs(10),
                Duration::from_secs(10),
            );
            let mut last = (start_snapshot.valid, start_snapshot.bogus_answered);
            loop {
                tick.tick().await;
                let s = snapshot(&shared, &postern_base).await;
                let elapsed = started.elapsed().as_secs_f64();
                println!(
                    "[{elapsed:5.0} s] valid {} ({:.0}/s last 10 s), bogus {} ({:.0}/s), hits {}, misses {}, upstream calls {}, refreshes {}",
                    group(s.valid),
                    (s.valid - last.0) as f64 / 10.0,
                    group(s.bogus_answered),
                    (s.bogus_answered - last.1) as f64 / 10.0,
                    group(s.hits - start_snapshot.hits),
                    group(s.misses - start_snapshot.misses),
                    group(s.introspect - start_snapshot.introspect),
                    shared.refreshes.load(Ordering::Relaxed),
                );
                let _ = std::io::stdout().flush();
                last = (s.valid, s.bogus_answered);
            }
        })
    };

    let warmup = args.warmup.min(args.seconds);
    let mut sending = drive(&shared, &args, &in_flight, Duration::from_secs(warmup)).await;
    let warm_snapshot = snapshot(&shared, &postern_base).await;
    let warm_at = started.elapsed();
    sending += drive(
        &shared,
        &args,
        &in_flight,
        Duration::from_secs(args.seconds - warmup),
    )
    .await;
    let elapsed = started.elapsed();
    refresher.abort();
    progress.abort();
    let end_snapshot = snapshot(&shared, &postern_base).await;
    let end_metrics = gate_metrics(&shared, &postern_base).await;

    let valid = shared.valid.total();
    let bogus = shared.bogus.total();
    let secs = elapsed.as_secs_f64();
    println!();
    println!(
        "sent for {:.1} s in all; {:.1} s including the drains before each snapshot",
        sending.as_secs_f64(),
        secs
    );
    println!(
        "valid requests {} ({:.0}/s achieved), {}",
        group(valid),
        valid as f64 / secs,
        shared.valid.describe()
    );
    if k > 0 {
        println!(
            "bogus requests {} ({:.0}/s achieved), {}",
            group(bogus),
            bogus as f64 / secs,
            shared.bogus.describe()
        );
    }
    println!(
        "total achieved {:.0} requests/s (offered {:.0}/s)",
        (valid + bogus) as f64 / secs,
        args.rate
    );
    println!(
        "refreshes (tokens re-minted within 1 s of expiry): {}, refresh failures: {}",
        shared.refreshes.load(Ordering::Relaxed),
        shared.refresh_failures.load(Ordering::Relaxed)
    );
    println!("gate cache metrics, start -> end:");
    for ((name, before), (_, after)) in start_metrics.iter().zip(&end_metrics) {
        println!("    {name}: {} -> {}", group(*before), group(*after));
    }
    let whole = report(
        if args.prime {
            "whole run (every session primed into the cache before the start)"
        } else {
            "whole run (cache cold at the start)"
        },
        &start_snapshot,
        &end_snapshot,
        k,
    );
    let steady = report(
        &format!(
            "steady state (after the {warmup} s warm-up, from {:.1} s to the end)",
            warm_at.as_secs_f64()
        ),
        &warm_snapshot,
        &end_snapshot,
        k,
    );
    for proc in [&postern, &idp] {
        let warnings = proc.log.warnings.load(Ordering::Relaxed);
        println!("{} WARN/ERROR log lines: {warnings}", proc.name);
        for line in proc.log.samples.lock().iter() {
            println!("    {line}");
        }
    }

    let ok = shared.valid.ok.load(Ordering::Relaxed);
    let bogus_401 = shared.bogus.unauthorized.load(Ordering::Relaxed);
    println!();
    println!("| run | offered/s | achieved valid/s | achieved bogus/s | valid requests | hit rate (whole / steady) | live hit rate (whole / steady) | upstream calls (whole / steady) | reduction (whole / steady) | refreshes | valid 200 / other | bogus 401 / other |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} s, {} sessions, bogus x{k}{} | {:.0} | {:.0} | {:.0} | {} | {} / {} | {} / {} | {} / {} | {} / {} | {} | {} / {} | {} / {} |",
        args.seconds,
        group(args.sessions as u64),
        if args.prime { ", primed" } else { "" },
        args.rate,
        valid as f64 / secs,
        bogus as f64 / secs,
        group(valid),
        whole.hit_rate,
        steady.hit_rate,
        whole.live_hit_rate,
        steady.live_hit_rate,
        group(whole.upstream),
        group(steady.upstream),
        whole.reduction,
        steady.reduction,
        shared.refreshes.load(Ordering::Relaxed),
        group(ok),
        group(valid - ok),
        group(bogus_401),
        group(bogus - bogus_401),
    );
    postern.stop();
    idp.stop();
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    tokio::select! {
        () = run(args) => {}
        _ = tokio::signal::ctrl_c() => {
            // The children are dropped (and killed) with `run`'s future.
            eprintln!("interrupted");
        }
    }
}
