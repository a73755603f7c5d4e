//! An axum app whose routes sit behind Postern's gate.
//!
//! Every request to `/me` must carry a bearer token the upstream identity
//! provider vouches for (RFC 7662 introspection) with the `profile` scope;
//! the handler receives the validated session through the `Authenticated`
//! extractor. Hits are answered from the in-process cache; a miss asks the
//! upstream once, however many requests are waiting for the same token.
//!
//! Try it against the reference IdP shipped with the server:
//!
//! ```text
//! cargo run -p postern-server --bin postern-demo-idp -- --listen 127.0.0.1:9000 &
//! TOKEN=$(curl -s localhost:9000/admin/tokens -H 'content-type: application/json' \
//!   -d '{"sub":"alice","scope":"profile"}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
//! cargo run -p postern-tower --example gate_app -- http://127.0.0.1:9000/oauth/introspect &
//! curl -s localhost:3000/me -H "Authorization: Bearer $TOKEN"     # hello alice
//! curl -si localhost:3000/me | head -1                            # 401
//! ```

use std::process::ExitCode;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use postern_tower::upstream::Upstream;
use postern_tower::{Authenticated, Gate, GateConfig, GateLayer, Requirement};

async fn me(Authenticated(session): Authenticated) -> String {
    // The user, or the client of a client-credentials token.
    format!(
        "hello {} (scopes: {})\n",
        session.principal().unwrap_or_default(),
        session.scopes.join(" ")
    )
}

#[tokio::main]
async fn main() -> ExitCode {
    let introspect = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "http://127.0.0.1:9000/oauth/introspect".into());
    let upstream = match Upstream::introspection(&introspect, None, "demo", "demo-secret") {
        Ok(u) => u,
        Err(e) => {
            eprintln!("gate_app: {e}");
            return ExitCode::FAILURE;
        }
    };
    let gate = Arc::new(Gate::new(upstream, GateConfig::default()));
    let app = Router::new()
        .route("/me", get(me))
        .layer(GateLayer::new(gate).with_requirement(Requirement::scopes(["profile"])));
    let listener = match tokio::net::TcpListener::bind("127.0.0.1:3000").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("gate_app: cannot listen on 127.0.0.1:3000: {e}");
            return ExitCode::FAILURE;
        }
    };
    println!("gate_app listening on http://127.0.0.1:3000 (upstream {introspect})");
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("gate_app: {e}");
            ExitCode::FAILURE
        }
    }
}
