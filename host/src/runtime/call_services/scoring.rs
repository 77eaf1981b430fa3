//! The first work of a call: which campaign its number belongs to, the
//! visitor session's attribution, the caller's geography and local time,
//! and the campaign's scorer.

use super::*;

impl CallServices {
    /// The campaign of the number called; none for an unknown number.
    pub fn destination(&self, request: &ScoreRequest) -> Option<Destination> {
        let called = normalize_e164(&request.called).ok()?;
        let owner = match self.store.number_owner(&called) {
            Ok(owner) => owner?,
            Err(error) => {
                tracing::error!(%error, "number lookup failed");
                return None;
            }
        };
        let campaign = self.store.campaign(owner.campaign_id()).ok()??;
        Some(Destination {
            called,
            owner,
            campaign,
        })
    }

    /// DNI attribution, then the campaign's scorer, for a call to `destination`.
    pub fn score_for(&self, request: &ScoreRequest, destination: Destination) -> Scored {
        let Destination {
            called,
            owner,
            campaign,
        } = destination;
        // Whether or not the call runs a policy of its own, its tenant has
        // calls that the other tenants' policies must leave CPU for.
        self.cpu.note_call(&campaign.tenant_id);
        let at = request.received_at_ms.div_euclid(1000);
        let attribution = match owner {
            NumberOwner::Pool(_) => self
                .store
                .pool(&campaign.id)
                .ok()
                .flatten()
                .and_then(|pool| {
                    crate::dni::session_at(pool.holders.values(), &called, at)
                        .map(|s| s.attributes.clone())
                })
                .unwrap_or_default(),
            NumberOwner::Campaign(_) => Vec::new(),
        };
        let caller = normalize_e164(&request.caller).unwrap_or_else(|_| request.caller.clone());
        let geography = crate::geography::of_number(&caller);
        let facts = CallFacts {
            id: request.call_id.clone(),
            campaign_id: campaign.id.clone(),
            caller: caller.clone(),
            called: called.clone(),
            time: call_time(request.received_at_ms, &geography.time_zone),
            caller_geography: geography,
            headers: request
                .headers
                .iter()
                .take(MAX_SCORED_HEADERS)
                .map(|h| Header {
                    name: h.name.clone(),
                    value: h.value.clone(),
                })
                .collect(),
            attribution: attribution.clone(),
        };
        let mut scoring = Scoring {
            history: self.history(&caller, request.received_at_ms.div_euclid(1000)),
            call: facts,
            campaign,
            called,
            quality: DEFAULT_QUALITY,
            tags: Vec::new(),
            policies: Vec::new(),
            attribution,
        };
        let owner = scoring.campaign.tenant_id.clone();
        let deployment = scoring
            .campaign
            .scorer_policy_id
            .as_deref()
            .and_then(|id| {
                usable(
                    &self.market(),
                    id,
                    &owner,
                    World::Scorer,
                    &mut scoring.policies,
                )
            })
            .and_then(|id| {
                let deployment = self.policies.registry().get(id);
                if deployment.is_none() {
                    self.without_active_version(
                        id,
                        &owner,
                        "the call kept the default quality",
                        &mut scoring.policies,
                    );
                }
                Some((id.to_owned(), deployment?))
            });
        if let Some((policy_id, deployment)) = deployment {
            let ctx = InvocationContext {
                history: scoring.history,
                kv: self.store.clone() as Arc<dyn PolicyKv>,
                kv_namespace: Store::kv_namespace(&policy_id, &scoring.campaign.tenant_id),
            };
            let run = self
                .cpu
                .run(&owner, || deployment.score(&ctx, &scoring.call))
                .unwrap_or_else(|| deployment.not_run(&scoring.call.id, PolicyFailure::CpuShare));
            scoring.policies = self.traces(&policy_id, &owner, &run);
            match run.invocation.outcome {
                Ok(quality) => {
                    scoring.quality = quality.score;
                    scoring.tags = quality.tags;
                }
                Err(_) => {
                    // A policy failure never loses the call: `skip` scores it
                    // as unknown (0), so only bids that take any quality remain.
                    scoring.quality = match deployment.failure_mode() {
                        FailureMode::Fallback => DEFAULT_QUALITY,
                        FailureMode::Skip => 0,
                    };
                }
            }
        }
        Scored::Campaign(Box::new(scoring))
    }
}

/// Headers a scorer sees at most (a hostile INVITE may carry hundreds).
const MAX_SCORED_HEADERS: usize = 64;

/// The call's time in the caller's zone (UTC when unknown).
pub(super) fn call_time(unix_ms: i64, time_zone: &str) -> CallTime {
    let zone = jiff::tz::TimeZone::get(time_zone).unwrap_or(jiff::tz::TimeZone::UTC);
    let timestamp =
        jiff::Timestamp::from_millisecond(unix_ms).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let local = zone.to_datetime(timestamp);
    CallTime {
        unix_seconds: timestamp.as_second(),
        local_weekday: u8::try_from(local.weekday().to_monday_zero_offset()).unwrap_or(0),
        local_hour: u8::try_from(local.hour()).unwrap_or(0),
        local_minute: u8::try_from(local.minute()).unwrap_or(0),
    }
}
