//! tower-sessions with its memory store (`tower_sessions::MemoryStore`):
//! `POST /login?user=ID` sets a session cookie, `GET /me` answers its user id.

use std::process::ExitCode;

use tower_sessions::MemoryStore;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match postern_peers::Args::parse("sessions-memory") {
        Ok(a) => a,
        Err(e) => {
            eprintln!("sessions-memory: {e}");
            return ExitCode::FAILURE;
        }
    };
    let app = postern_peers::sessions::router(MemoryStore::default());
    postern_peers::serve("sessions-memory", args.listen, app).await
}
