//! Policy lifecycle between the store and the runtime: upload (validate,
//! compile on a blocking worker, store), deploy (active, canary, shadow), roll
//! back, take out a canary or shadow that fails, and restore every
//! deployment after a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::clock;
use crate::fair::{FairGate, Shares};
use crate::model::{
    CallRecord, CanarySpec, Demotion, DemotionRule, DeploymentRecord, FailureMode,
    MAX_DEMOTIONS_KEPT, Policy, PolicyKv, PolicyVersion, SampleInput, World,
};
use crate::policy::{
    ArtifactCache, CompiledPolicy, Compiler, Demote, Deployment, DeploymentError, LoadError,
    MemoryKv, MissingInput, PolicyEngine, PolicyRegistry, SampleReport, compile_and_load,
    run_sample,
};
use crate::replay::{
    JobError, JobState, KvSource, ReplayError, ReplayJob, ReplayJobs, ReplayRange, ReplayReport,
    StartRefusal,
};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum LifecycleError {
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no version {0} of this policy")]
    UnknownVersion(String),
    #[error(transparent)]
    Deployment(#[from] DeploymentError),
    #[error("a deployment needs an active version before a canary or a shadow")]
    NoActive,
    #[error("nothing to roll back to")]
    NoHistory,
    #[error("the compile worker failed: {0}")]
    Worker(String),
    #[error("the compiler is busy with other uploads; try again in a few seconds")]
    Busy,
    #[error("too many dry runs and test vectors are waiting; try again in a few seconds")]
    SamplesBusy,
    #[error("version {version} fails the replay gate: {detail}")]
    ReplayGate { version: String, detail: String },
    #[error("version {version} fails its test vector `{name}`: expected {expected}, got {got}")]
    TestVector {
        version: String,
        name: String,
        expected: String,
        got: String,
    },
}

/// What the operator asks a deployment to be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeploymentSpec {
    pub active: Option<String>,
    pub canary: Option<CanarySpec>,
    pub shadow: Option<String>,
    pub failure_mode: FailureMode,
    pub demotion: DemotionRule,
    /// Checked before a version starts serving (active or canary), beside
    /// its test vectors.
    pub replay_gate: Option<ReplayGate>,
}

/// A version may serve only if a replay of the last `calls` calls changes
/// the first bid to ring on at most `max_winners_changed_percent` of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayGate {
    pub calls: usize,
    pub max_winners_changed_percent: u8,
    /// Whose calls: a marketer's own campaigns', or every campaign's.
    pub calls_of: Option<String>,
}

pub struct PolicyLifecycle {
    store: Arc<Store>,
    engine: PolicyEngine,
    artifacts: ArtifactCache,
    registry: Arc<PolicyRegistry>,
    /// Compiled versions by world and SHA-256, shared by every deployment
    /// using them. The world is part of the key: the same bytes uploaded as
    /// another world must meet that world's checks, not find the first
    /// upload's verdict.
    compiled: Mutex<HashMap<(World, String), Arc<CompiledPolicy>>>,
    /// Compiles run one at a time: each takes a core for up to seconds, and
    /// the calls need the others. Tenants take turns, each with at most
    /// two uploads waiting, so a tenant uploading in a
    /// loop delays others by one compile at most.
    compiles: FairGate,
    /// Where uploads compile: a child process under a budget, on a server.
    compiler: Compiler,
    /// Dry runs and test vectors: policy instances beside the calls', a
    /// few at once, one per tenant.
    samples: FairGate,
    replays: ReplayJobs,
}

/// Uploads, or sample runs, one tenant may have running and waiting.
const ONE_PER_TENANT: Shares = Shares {
    running: 1,
    waiting: 2,
};
/// Uploads, or sample runs, of all tenants that may wait at once.
const WAITING_IN_ALL: usize = 16;
/// Sample runs at once, across tenants.
const SAMPLES_AT_ONCE: usize = 2;

impl PolicyLifecycle {
    pub fn new(
        store: Arc<Store>,
        engine: PolicyEngine,
        artifacts: ArtifactCache,
        registry: Arc<PolicyRegistry>,
        compiler: Compiler,
    ) -> Self {
        PolicyLifecycle {
            compiler,
            store,
            engine,
            artifacts,
            registry,
            compiled: Mutex::new(HashMap::new()),
            compiles: FairGate::new(1, ONE_PER_TENANT, WAITING_IN_ALL),
            samples: FairGate::new(SAMPLES_AT_ONCE, ONE_PER_TENANT, WAITING_IN_ALL),
            replays: ReplayJobs::new(),
        }
    }

    pub fn registry(&self) -> &Arc<PolicyRegistry> {
        &self.registry
    }

    pub fn engine(&self) -> &PolicyEngine {
        &self.engine
    }

    /// Validates and compiles `bytes` off the async runtime's threads, in
    /// `tenant`'s turn.
    pub async fn compile(
        &self,
        tenant: &str,
        world: World,
        bytes: Arc<Vec<u8>>,
    ) -> Result<Arc<CompiledPolicy>, LifecycleError> {
        let sha = crate::policy::content_address(&bytes);
        if let Some(done) = self.cached(world, &sha) {
            return Ok(done);
        }
        let _turn = self
            .compiles
            .enter(tenant)
            .await
            .map_err(|_| LifecycleError::Busy)?;
        // Another upload of the same bytes may have compiled them meanwhile.
        if let Some(done) = self.cached(world, &sha) {
            return Ok(done);
        }
        let (engine, artifacts) = (self.engine.clone(), self.artifacts.clone());
        let compiler = self.compiler.clone();
        let compiled = tokio::task::spawn_blocking(move || {
            compile_and_load(&compiler, &engine, &artifacts, world, &bytes)
        })
        .await
        .map_err(|e| LifecycleError::Worker(e.to_string()))??;
        Ok(self.remember(compiled))
    }

    /// Runs `compiled` on `input` with a throwaway key-value store, in
    /// `tenant`'s turn among the sample runs.
    pub async fn dry_run(
        &self,
        tenant: &str,
        compiled: Arc<CompiledPolicy>,
        input: SampleInput,
    ) -> Result<Result<SampleReport, MissingInput>, LifecycleError> {
        let _turn = self
            .samples
            .enter(tenant)
            .await
            .map_err(|_| LifecycleError::SamplesBusy)?;
        tokio::task::spawn_blocking(move || {
            run_sample(&compiled, &input, Arc::new(MemoryKv::new()), "dry-run")
        })
        .await
        .map_err(|e| LifecycleError::Worker(e.to_string()))
    }

    fn cached(&self, world: World, sha: &str) -> Option<Arc<CompiledPolicy>> {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&(world, sha.to_owned()))
            .cloned()
    }

    fn remember(&self, compiled: CompiledPolicy) -> Arc<CompiledPolicy> {
        let compiled = Arc::new(compiled);
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry((compiled.world(), compiled.sha256().to_owned()))
            .or_insert(compiled)
            .clone()
    }

    /// Stores a new version of `policy` (creating the policy if new). The
    /// version's name is the first 16 hex digits of its SHA-256.
    pub async fn add_version(
        &self,
        policy: &Policy,
        bytes: Vec<u8>,
    ) -> Result<PolicyVersion, LifecycleError> {
        let bytes = Arc::new(bytes);
        let compiled = self
            .compile(&policy.tenant_id, policy.world, bytes.clone())
            .await?;
        let version = PolicyVersion {
            policy_id: policy.id.clone(),
            version: compiled.sha256()[..16].to_owned(),
            sha256: compiled.sha256().to_owned(),
            size: bytes.len() as u64,
            uploaded_at: clock::unix_now(),
            test_vectors: Vec::new(),
        };
        if let Some(existing) = self.store.policy_version(&policy.id, &version.version)? {
            return Ok(existing);
        }
        self.store.put_policy_version(policy, &version, &bytes)?;
        Ok(version)
    }

    /// The compiled form of a stored version, compiling (or loading the cached
    /// artifact) when this process has not yet.
    pub async fn version(
        &self,
        policy: &Policy,
        version: &str,
    ) -> Result<Arc<CompiledPolicy>, LifecycleError> {
        let record = self
            .store
            .policy_version(&policy.id, version)?
            .ok_or_else(|| LifecycleError::UnknownVersion(version.to_owned()))?;
        if let Some(done) = self.cached(policy.world, &record.sha256) {
            return Ok(done);
        }
        let bytes = self
            .store
            .blob(&record.sha256)?
            .ok_or_else(|| LifecycleError::UnknownVersion(version.to_owned()))?;
        self.compile(&policy.tenant_id, policy.world, Arc::new(bytes))
            .await
    }

    /// Applies `spec` to the registry, then records it; the previous active
    /// version joins the rollback history.
    pub async fn deploy(
        &self,
        policy: &Policy,
        spec: DeploymentSpec,
    ) -> Result<DeploymentRecord, LifecycleError> {
        let serving = [
            spec.active.as_ref(),
            spec.canary.as_ref().map(|c| &c.version),
        ];
        let previous = self.store.deployment(&policy.id)?;
        let new_to_serving = |version: &String| {
            previous.as_ref().is_none_or(|p| {
                p.active.as_ref() != Some(version)
                    && p.canary.as_ref().is_none_or(|c| &c.version != version)
            })
        };
        for version in serving.into_iter().flatten() {
            self.check_vectors(policy, version).await?;
            if let Some(gate) = &spec.replay_gate
                && new_to_serving(version)
            {
                self.check_replay(policy, version, gate).await?;
            }
        }
        let mut history = previous
            .as_ref()
            .map(|p| p.history.clone())
            .unwrap_or_default();
        if let Some(old) = previous.and_then(|p| p.active)
            && spec.active.as_ref() != Some(&old)
        {
            history.push(old);
        }
        self.apply(policy, spec, history).await
    }

    /// Builds the deployment (compiling what is needed), records it, then
    /// swaps it into the registry: a failure anywhere changes nothing.
    async fn apply(
        &self,
        policy: &Policy,
        spec: DeploymentSpec,
        history: Vec<String>,
    ) -> Result<DeploymentRecord, LifecycleError> {
        let deployment = self.build(policy, &spec).await?;
        let demotions = self
            .store
            .deployment(&policy.id)?
            .map(|previous| previous.demotions)
            .unwrap_or_default();
        let record = DeploymentRecord {
            policy_id: policy.id.clone(),
            active: spec.active,
            canary: spec.canary,
            shadow: spec.shadow,
            failure_mode: spec.failure_mode,
            history,
            updated_at: clock::unix_now(),
            demotion: spec.demotion,
            demotions,
        };
        self.store.put_deployment(&record)?;
        self.install(&policy.id, deployment);
        Ok(record)
    }

    /// Rolls back the last change: a canary is dropped (the active version
    /// stays); without one, the previous active version is active again
    /// (shadow cleared).
    pub async fn rollback(&self, policy: &Policy) -> Result<DeploymentRecord, LifecycleError> {
        let current = self
            .store
            .deployment(&policy.id)?
            .ok_or(LifecycleError::NoHistory)?;
        if current.canary.is_some() {
            let spec = DeploymentSpec {
                active: current.active.clone(),
                canary: None,
                shadow: current.shadow.clone(),
                failure_mode: current.failure_mode,
                demotion: current.demotion,
                replay_gate: None,
            };
            return self.deploy(policy, spec).await;
        }
        let mut history = current.history.clone();
        let target = history.pop().ok_or(LifecycleError::NoHistory)?;
        let spec = DeploymentSpec {
            active: Some(target),
            canary: None,
            shadow: None,
            failure_mode: current.failure_mode,
            demotion: current.demotion,
            replay_gate: None,
        };
        // The version served before: its test vectors passed then.
        self.apply(policy, spec, history).await
    }

    /// Runs a version's test vectors; the first that fails refuses it.
    async fn check_vectors(&self, policy: &Policy, version: &str) -> Result<(), LifecycleError> {
        let record = self
            .store
            .policy_version(&policy.id, version)?
            .ok_or_else(|| LifecycleError::UnknownVersion(version.to_owned()))?;
        if record.test_vectors.is_empty() {
            return Ok(());
        }
        let compiled = self.version(policy, version).await?;
        let vectors = record.test_vectors;
        let _turn = self
            .samples
            .enter(&policy.tenant_id)
            .await
            .map_err(|_| LifecycleError::SamplesBusy)?;
        let outcomes = tokio::task::spawn_blocking(move || {
            vectors
                .into_iter()
                .map(|vector| {
                    let kv: Arc<dyn PolicyKv> = Arc::new(MemoryKv::new());
                    let report = run_sample(&compiled, &vector.input, kv, "test-vector");
                    (vector, report)
                })
                .collect::<Vec<_>>()
        })
        .await
        .map_err(|e| LifecycleError::Worker(e.to_string()))?;
        for (vector, report) in outcomes {
            let got = match report {
                Ok(report) => match (report.result, report.failure) {
                    (Some(result), _) => result,
                    (None, Some(failure)) => serde_json::json!({ "failure": failure }),
                    (None, None) => serde_json::Value::Null,
                },
                Err(missing) => serde_json::json!({ "input_error": missing.to_string() }),
            };
            if got != vector.expect {
                return Err(LifecycleError::TestVector {
                    version: version.to_owned(),
                    name: vector.name,
                    expected: vector.expect.to_string(),
                    got: got.to_string(),
                });
            }
        }
        Ok(())
    }

    /// Replays the last calls through `version`; too many changed first
    /// bids, or no call to judge it on, refuse it.
    async fn check_replay(
        &self,
        policy: &Policy,
        version: &str,
        gate: &ReplayGate,
    ) -> Result<(), LifecycleError> {
        let compiled = self.version(policy, version).await?;
        let range = ReplayRange {
            limit: gate.calls,
            newest: true,
            kv: KvSource::Policy {
                policy_id: policy.id.clone(),
                owner_tenant: policy.tenant_id.clone(),
            },
            ..ReplayRange::default()
        };
        let calls_of = gate.calls_of.clone();
        let refused = |detail: String| LifecycleError::ReplayGate {
            version: version.to_owned(),
            detail,
        };
        let report = self
            .replay(&policy.tenant_id, compiled, range, move |record| {
                calls_of.as_ref().is_none_or(|t| &record.tenant_id == t)
            })
            .await?
            .map_err(|e| match e {
                ReplayError::Store(e) => LifecycleError::Store(e),
                ReplayError::Empty => refused("no stored call to replay it on".to_owned()),
                other => refused(other.to_string()),
            })?;
        let replayed = report.calls_replayed;
        if replayed == 0 {
            return Err(refused(
                "no stored call kept the inputs to replay it on".to_owned(),
            ));
        }
        let allowed = u64::from(gate.max_winners_changed_percent);
        if report.winners_changed * 100 > allowed * replayed {
            let failures: u64 = report.failures.values().sum();
            return Err(refused(format!(
                "it changed the first bid to ring on {} of the last {replayed} calls ({:.1} %), \
                 more than the {allowed} % allowed; it failed on {failures}",
                report.winners_changed,
                report.winners_changed as f64 * 100.0 / replayed as f64,
            )));
        }
        Ok(())
    }

    async fn build(
        &self,
        policy: &Policy,
        spec: &DeploymentSpec,
    ) -> Result<Option<Deployment>, LifecycleError> {
        let Some(active) = &spec.active else {
            if spec.canary.is_some() || spec.shadow.is_some() {
                return Err(LifecycleError::NoActive);
            }
            return Ok(None);
        };
        let mut deployment = Deployment::new(self.version(policy, active).await?)
            .with_failure_mode(spec.failure_mode)
            .with_demotion(spec.demotion);
        if let Some(canary) = &spec.canary {
            deployment = deployment
                .with_canary(self.version(policy, &canary.version).await?, canary.percent)?;
        }
        if let Some(shadow) = &spec.shadow {
            deployment = deployment.with_shadow(self.version(policy, shadow).await?)?;
        }
        Ok(Some(deployment))
    }

    fn install(&self, policy_id: &str, deployment: Option<Deployment>) {
        match deployment {
            Some(deployment) => self.registry.deploy(policy_id, deployment),
            None => {
                self.registry.remove(policy_id);
            }
        }
    }

    /// Replays stored calls through `compiled` off the async runtime's
    /// threads, in `tenant`'s turn at the same gate as dry runs, so that a
    /// tenant replaying in a loop waits behind itself.
    pub async fn replay(
        &self,
        tenant: &str,
        compiled: Arc<CompiledPolicy>,
        range: ReplayRange,
        visible: impl Fn(&CallRecord) -> bool + Send + 'static,
    ) -> Result<Result<ReplayReport, ReplayError>, LifecycleError> {
        let _turn = self
            .samples
            .enter(tenant)
            .await
            .map_err(|_| LifecycleError::SamplesBusy)?;
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || {
            crate::replay::replay(&store, &compiled, &range, &visible, &mut |_| {})
        })
        .await
        .map_err(|e| LifecycleError::Worker(e.to_string()))
    }

    /// Starts a replay as a job of `tenant`'s, read back with
    /// [`PolicyLifecycle::replay_job`]; it waits for the tenant's turn as a
    /// synchronous replay does.
    pub fn start_replay(
        self: &Arc<Self>,
        tenant: &str,
        job_id: String,
        (policy_id, version): (&str, &str),
        compiled: Arc<CompiledPolicy>,
        range: ReplayRange,
        visible: impl Fn(&CallRecord) -> bool + Send + 'static,
    ) -> Result<ReplayJob, StartRefusal> {
        let job = ReplayJob {
            id: job_id,
            policy_id: policy_id.to_owned(),
            version: version.to_owned(),
            state: JobState::Queued,
            calls_done: 0,
            calls_limit: range.limit as u64,
            started_at: clock::unix_now(),
            finished_at: None,
            report: None,
            error: None,
        };
        let (job, handle) = self.replays.start(tenant, job)?;
        let (lifecycle, tenant) = (self.clone(), tenant.to_owned());
        tokio::spawn(async move {
            let outcome = match lifecycle.samples.enter(&tenant).await {
                Err(_) => Err(job_error("policy.busy", &LifecycleError::SamplesBusy)),
                Ok(_turn) => {
                    handle.running();
                    let (store, progress) = (lifecycle.store.clone(), handle.clone());
                    tokio::task::spawn_blocking(move || {
                        crate::replay::replay(&store, &compiled, &range, &visible, &mut |done| {
                            progress.progress(done)
                        })
                    })
                    .await
                    .map_err(|e| job_error("internal", &e))
                    .and_then(|ran| ran.map_err(|e| job_error(e.code(), &e)))
                }
            };
            handle.finish(outcome, clock::unix_now());
        });
        Ok(job)
    }

    /// `tenant`'s replay job as it stands.
    pub fn replay_job(&self, tenant: &str, id: &str) -> Option<ReplayJob> {
        self.replays.get(tenant, id)
    }

    /// Takes a failing canary or shadow out of `policy_id`'s deployment,
    /// on the call path's say-so: at once in the registry, then in the
    /// record with when and why. Whether it was still there to take out
    /// (an operator's change since, or another call's demotion, wins).
    pub fn demote(&self, policy_id: &str, demote: &Demote) -> Result<bool, StoreError> {
        let Some(current) = self.registry.get(policy_id) else {
            return Ok(false);
        };
        if current.version_in(demote.role) != Some(demote.version.as_str()) {
            return Ok(false);
        }
        self.registry
            .deploy(policy_id, current.without(demote.role));
        let Some(mut record) = self.store.deployment(policy_id)? else {
            return Ok(true);
        };
        let named = |version: &str| demote.version.starts_with(version);
        match demote.role {
            "canary" if record.canary.as_ref().is_some_and(|c| named(&c.version)) => {
                record.canary = None;
            }
            "shadow" if record.shadow.as_deref().is_some_and(named) => record.shadow = None,
            _ => {}
        }
        let now = clock::unix_now();
        record.demotions.push(Demotion {
            version: demote.version.chars().take(16).collect(),
            role: demote.role.to_owned(),
            at: now,
            reason: demote.reason.clone(),
        });
        let excess = record.demotions.len().saturating_sub(MAX_DEMOTIONS_KEPT);
        record.demotions.drain(..excess);
        record.updated_at = now;
        self.store.put_deployment(&record)?;
        Ok(true)
    }

    /// Re-creates every stored deployment in the registry (after a restart).
    /// A deployment that cannot be restored is logged and skipped: the host
    /// still starts, and calls use the failure mode's fallback.
    pub async fn restore(&self) -> Result<usize, StoreError> {
        let mut restored = 0;
        for record in self.store.deployments()? {
            let Some(policy) = self.store.policy(&record.policy_id)? else {
                continue;
            };
            let spec = DeploymentSpec {
                active: record.active.clone(),
                canary: record.canary.clone(),
                shadow: record.shadow.clone(),
                failure_mode: record.failure_mode,
                demotion: record.demotion,
                replay_gate: None,
            };
            match self.build(&policy, &spec).await {
                Ok(deployment) => {
                    self.install(&policy.id, deployment);
                    restored += 1;
                }
                Err(error) => {
                    tracing::error!(policy = %policy.id, %error, "cannot restore deployment")
                }
            }
        }
        Ok(restored)
    }
}

/// What a failed job says: an internal failure's detail goes to the log.
fn job_error(code: &str, error: &dyn std::fmt::Display) -> JobError {
    if code == "internal" {
        tracing::error!(%error, "a replay job failed");
        return JobError {
            code: code.to_owned(),
            message: "internal error".to_owned(),
        };
    }
    JobError {
        code: code.to_owned(),
        message: error.to_string(),
    }
}
