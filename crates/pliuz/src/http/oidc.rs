//! Single sign-on state the server keeps per process: the identity
//! provider's discovered metadata (endpoints, signing keys), shared by all
//! requests of the inbox's OpenID Connect log-in (`crate::inbox`).

use openidconnect::core::{
    CoreAuthDisplay, CoreClaimName, CoreClaimType, CoreClientAuthMethod, CoreGenderClaim,
    CoreGrantType, CoreJsonWebKey, CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm, CoreJwsSigningAlgorithm, CoreResponseMode, CoreResponseType,
    CoreSubjectIdentifierType,
};
use openidconnect::{AdditionalClaims, AdditionalProviderMetadata, IdToken, ProviderMetadata};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long discovered metadata (endpoints, signing keys) is reused.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);

/// `end_session_endpoint` is in the discovery document of providers that
/// support RP-initiated log-out (Keycloak, Okta, Entra ID...).
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct LogoutMetadata {
    pub end_session_endpoint: Option<String>,
}
impl AdditionalProviderMetadata for LogoutMetadata {}

pub type Metadata = ProviderMetadata<
    LogoutMetadata,
    CoreAuthDisplay,
    CoreClientAuthMethod,
    CoreClaimName,
    CoreClaimType,
    CoreGrantType,
    CoreJweContentEncryptionAlgorithm,
    CoreJweKeyManagementAlgorithm,
    CoreJsonWebKey,
    CoreResponseMode,
    CoreResponseType,
    CoreSubjectIdentifierType,
>;

/// Every claim besides the standard ones, to find the groups claim.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct OtherClaims(pub serde_json::Map<String, serde_json::Value>);
impl AdditionalClaims for OtherClaims {}

pub type GroupsIdToken = IdToken<
    OtherClaims,
    CoreGenderClaim,
    CoreJweContentEncryptionAlgorithm,
    CoreJwsSigningAlgorithm,
>;

/// Discovered provider metadata, shared by all requests.
#[derive(Default)]
pub struct OidcCache {
    pub metadata: Mutex<Option<(Instant, Arc<Metadata>)>>,
}

impl OidcCache {
    pub fn fresh(&self) -> Option<Arc<Metadata>> {
        let guard = self.metadata.lock().ok()?;
        guard
            .as_ref()
            .filter(|(at, _)| at.elapsed() < DISCOVERY_TTL)
            .map(|(_, m)| m.clone())
    }

    pub fn any(&self) -> Option<Arc<Metadata>> {
        self.metadata.lock().ok()?.as_ref().map(|(_, m)| m.clone())
    }
}
