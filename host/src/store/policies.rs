//! Policies, their versions and bytes, and their deployments.

use sled::transaction::Transactional;

use crate::model::{DeploymentRecord, Policy, PolicyVersion};

use super::{Store, StoreError, codec};

impl Store {
    /// Stores a policy (new or not) with a version and its bytes, together.
    pub fn put_policy_version(
        &self,
        policy: &Policy,
        version: &PolicyVersion,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let policy_bytes = codec::encode(policy)?;
        let version_bytes = codec::encode(version)?;
        let version_key = format!("{}/{}", policy.id, version.version);
        (&self.policies.tree, &self.versions.tree, &self.blobs).transaction(
            |(policies, versions, blobs)| {
                policies.insert(policy.id.as_bytes(), policy_bytes.clone())?;
                versions.insert(version_key.as_bytes(), version_bytes.clone())?;
                blobs.insert(version.sha256.as_bytes(), bytes)?;
                Ok(())
            },
        )?;
        // Auctions check who may run which policy against the market.
        self.market_changed();
        Ok(())
    }

    pub fn policy(&self, id: &str) -> Result<Option<Policy>, StoreError> {
        self.policies.get(id)
    }

    pub fn policies(&self) -> Result<Vec<Policy>, StoreError> {
        self.policies.scan("")
    }

    pub fn policy_version(
        &self,
        policy_id: &str,
        version: &str,
    ) -> Result<Option<PolicyVersion>, StoreError> {
        self.versions.get(&format!("{policy_id}/{version}"))
    }

    pub fn policy_versions(&self, policy_id: &str) -> Result<Vec<PolicyVersion>, StoreError> {
        let mut versions: Vec<PolicyVersion> = self.versions.scan(&format!("{policy_id}/"))?;
        versions.sort_by(|a, b| {
            a.uploaded_at
                .cmp(&b.uploaded_at)
                .then(a.version.cmp(&b.version))
        });
        Ok(versions)
    }

    /// Replaces a version's test vectors (the version itself stays immutable).
    pub fn put_test_vectors(&self, version: &PolicyVersion) -> Result<(), StoreError> {
        self.versions.put(
            &format!("{}/{}", version.policy_id, version.version),
            version,
        )
    }

    /// The component bytes of a version, by SHA-256.
    pub fn blob(&self, sha256: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.blobs.get(sha256.as_bytes())?.map(|b| b.to_vec()))
    }

    pub fn put_deployment(&self, deployment: &DeploymentRecord) -> Result<(), StoreError> {
        self.deployments.put(&deployment.policy_id, deployment)
    }

    pub fn deployment(&self, policy_id: &str) -> Result<Option<DeploymentRecord>, StoreError> {
        self.deployments.get(policy_id)
    }

    pub fn deployments(&self) -> Result<Vec<DeploymentRecord>, StoreError> {
        self.deployments.scan("")
    }
}
