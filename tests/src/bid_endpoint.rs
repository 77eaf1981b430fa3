//! A bidder's real-time bid endpoint for tests: an HTTP server on loopback
//! that keeps every request it gets and answers each the same way, after a
//! delay.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::post;

pub struct BidEndpoint {
    pub url: String,
    received: Arc<Mutex<Vec<String>>>,
    server: tokio::task::JoinHandle<()>,
}

impl BidEndpoint {
    /// Answers `status` with `body` after `delay`.
    pub async fn start(delay: Duration, status: u16, body: &str) -> Self {
        let received: Arc<Mutex<Vec<String>>> = Arc::default();
        let (kept, body) = (received.clone(), body.to_owned());
        let app = Router::new().route(
            "/bid",
            post(move |request: String| {
                let (kept, body) = (kept.clone(), body.clone());
                async move {
                    kept.lock().expect("lock").push(request);
                    tokio::time::sleep(delay).await;
                    let status = StatusCode::from_u16(status).expect("status");
                    (status, [("content-type", "application/json")], body)
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let url = format!("http://{}/bid", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        BidEndpoint {
            url,
            received,
            server,
        }
    }

    /// The request bodies received so far, parsed.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.received
            .lock()
            .expect("lock")
            .iter()
            .map(|body| serde_json::from_str(body).expect("the host sends JSON"))
            .collect()
    }
}

impl Drop for BidEndpoint {
    fn drop(&mut self) {
        self.server.abort();
    }
}
