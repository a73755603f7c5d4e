//! tower-sessions with its Redis store (`tower-sessions-redis-store`, on a
//! fred connection pool): `POST /login?user=ID` sets a session cookie,
//! `GET /me` answers its user id. `--redis URL` names the server.

use std::process::ExitCode;

use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool};
use tower_sessions_redis_store::RedisStore;

/// Connections in the pool: the size the store's README and example use.
const POOL_SIZE: usize = 6;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match postern_peers::Args::parse("sessions-redis") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sessions-redis: {e}");
            return ExitCode::FAILURE;
        }
    };
    let Some(url) = args.redis.as_deref() else {
        eprintln!("sessions-redis: --redis URL is required");
        return ExitCode::FAILURE;
    };
    let pool = match Config::from_url(url).and_then(|c| Pool::new(c, None, None, None, POOL_SIZE)) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("sessions-redis: bad Redis configuration: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = pool.init().await {
        eprintln!("sessions-redis: cannot connect to Redis: {e}");
        return ExitCode::FAILURE;
    }
    let app = postern_peers::sessions::router(RedisStore::new(pool));
    postern_peers::serve("sessions-redis", args.listen, app).await
}
