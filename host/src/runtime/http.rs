//! The HTTP API's listener: each connection admitted against the API's own
//! connection budget, served by hyper with a header-read timeout that also
//! bounds how long a kept-alive connection may sit idle, so half-open and
//! idle connections give their places back. Graceful shutdown: stop
//! accepting, let requests in flight finish.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tower::ServiceExt;

use super::budget::{self, Budget};

/// Longest wait for a request's head, and for the next request on a
/// kept-alive connection (nginx's `client_header_timeout` is 60 s).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Serves `router` on `listener` until `shutdown` resolves.
pub async fn serve_http(
    listener: TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let budget = Budget::new(budget::HTTP);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    // Out of descriptors or a reset before accept: wait a
                    // little rather than spin.
                    Err(_) => {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                // Past the budget the connection is closed at once.
                let Some(ticket) = budget.admit(peer.ip()) else {
                    continue;
                };
                let service = TowerToHyperService::new(
                    router
                        .clone()
                        .map_request(|request: hyper::Request<Incoming>| request.map(axum::body::Body::new)),
                );
                let mut stopped = stopped.clone();
                connections.spawn(async move {
                    let _ticket = ticket;
                    let mut http = hyper::server::conn::http1::Builder::new();
                    http.timer(TokioTimer::new())
                        .header_read_timeout(HEADER_READ_TIMEOUT);
                    let connection = http.serve_connection(TokioIo::new(stream), service);
                    tokio::pin!(connection);
                    tokio::select! {
                        _ = connection.as_mut() => {}
                        _ = stopped.changed() => {
                            connection.as_mut().graceful_shutdown();
                            let _ = connection.await;
                        }
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}
