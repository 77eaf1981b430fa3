//! Real-time bids over HTTP: the bid request POSTed to every bidder's
//! endpoint at once, each answer read until the auction's one deadline, and
//! whatever is not back by then counted late.

use std::time::Duration;

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::task::JoinSet;
use tokio::time::Instant;

use crate::auction::real_time::{Answer, BidRequest, Failure, MAX_ANSWER_BYTES, parse_answer};
use crate::model::{Bidder, Offer};

/// One bidder's answer, or why there is none.
pub type RealTimeAnswer = (Bidder, Result<Answer, Failure>);

/// An HTTP client with its pool of kept-alive connections; one per SIP loop.
#[derive(Clone)]
pub struct RealTimeBids {
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Default for RealTimeBids {
    fn default() -> Self {
        Self::new()
    }
}

impl RealTimeBids {
    pub fn new() -> Self {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(1)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(connector);
        RealTimeBids { client }
    }

    /// Asks each of `bidders` about `offer`, all at once, until `deadline`.
    pub async fn ask(
        &self,
        bidders: Vec<Bidder>,
        offer: &Offer,
        floor_price_micros: u64,
        deadline: Instant,
    ) -> Vec<RealTimeAnswer> {
        let deadline_ms = u32::try_from(
            deadline
                .saturating_duration_since(Instant::now())
                .as_millis(),
        )
        .unwrap_or(u32::MAX);
        let mut asking = JoinSet::new();
        let mut waiting: Vec<Option<Bidder>> = Vec::with_capacity(bidders.len());
        for (index, bidder) in bidders.into_iter().enumerate() {
            let request = BidRequest::new(offer, &bidder.id, floor_price_micros, deadline_ms);
            let url = bidder.rtb_url.clone().unwrap_or_default();
            let client = self.client.clone();
            asking.spawn(async move { (index, post(&client, &url, &request).await) });
            waiting.push(Some(bidder));
        }
        let mut answers = Vec::with_capacity(waiting.len());
        while let Ok(Some(joined)) = tokio::time::timeout_at(deadline, asking.join_next()).await {
            if let Ok((index, answer)) = joined
                && let Some(bidder) = waiting.get_mut(index).and_then(Option::take)
            {
                answers.push((bidder, answer));
            }
        }
        asking.abort_all();
        answers.extend(
            waiting
                .into_iter()
                .flatten()
                .map(|bidder| (bidder, Err(Failure::Late))),
        );
        answers
    }
}

async fn post(
    client: &Client<HttpConnector, Full<Bytes>>,
    url: &str,
    request: &BidRequest,
) -> Result<Answer, Failure> {
    let body = serde_json::to_vec(request).map_err(|e| Failure::Unreachable(e.to_string()))?;
    let http = hyper::Request::post(url)
        .header("content-type", "application/json")
        .header("x-plugboard-deadline-ms", request.deadline_ms.to_string())
        .body(Full::new(Bytes::from(body)))
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    let response = client
        .request(http)
        .await
        .map_err(|e| Failure::Unreachable(e.to_string()))?;
    let status = response.status().as_u16();
    let bytes = Limited::new(response.into_body(), MAX_ANSWER_BYTES + 1)
        .collect()
        .await
        .map_err(|e| Failure::Malformed(e.to_string()))?
        .to_bytes();
    parse_answer(status, &bytes)
}
