//! Telling people from scripts at registration and password reset: a [`HumanCheck`]
//! verifies the token a challenge widget gave the browser.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use url::Url;
use zeroize::Zeroizing;

use crate::transport::{HttpMethod, HttpRequest, Transport};

/// Verifies a challenge token (reCAPTCHA-style). Consulted by `/auth/newuser` and
/// `/auth/resetpassword` when one is configured
/// ([`EngineBuilder::human_check`](crate::EngineBuilder::human_check)).
#[async_trait]
pub trait HumanCheck: Send + Sync {
    /// Whether `token` proves a human, for a request from `remote`.
    async fn verify(&self, token: &str, remote: Option<IpAddr>) -> Result<bool, HumanCheckError>;
}

/// The verification service could not be asked or gave no usable answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("human check unavailable: {0}")]
pub struct HumanCheckError(pub String);

/// Google reCAPTCHA (v2 or v3) siteverify, through the engine's [`Transport`]: `POST
/// secret, response, remoteip` as a form, `{"success": true}` passes.
pub struct Recaptcha {
    secret: Zeroizing<String>,
    endpoint: Option<Url>,
    transport: Arc<dyn Transport>,
}

impl fmt::Debug for Recaptcha {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Recaptcha")
            .field(
                "endpoint",
                &self.endpoint.as_ref().map_or(Self::SITEVERIFY, Url::as_str),
            )
            .finish_non_exhaustive()
    }
}

impl Recaptcha {
    /// Google's endpoint.
    pub const SITEVERIFY: &'static str = "https://www.google.com/recaptcha/api/siteverify";

    /// A check with the site's `secret`, asking [`Self::SITEVERIFY`] through `transport`.
    pub fn new(secret: impl Into<String>, transport: Arc<dyn Transport>) -> Self {
        Self {
            secret: Zeroizing::new(secret.into()),
            endpoint: None,
            transport,
        }
    }

    /// The same, asking `endpoint` instead (a compatible service, or a test double).
    pub fn with_endpoint(mut self, endpoint: Url) -> Self {
        self.endpoint = Some(endpoint);
        self
    }
}

#[async_trait]
impl HumanCheck for Recaptcha {
    async fn verify(&self, token: &str, remote: Option<IpAddr>) -> Result<bool, HumanCheckError> {
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("secret", &self.secret);
            form.append_pair("response", token);
            if let Some(remote) = remote {
                form.append_pair("remoteip", &remote.to_string());
            }
            Zeroizing::new(form.finish())
        };
        let url = match &self.endpoint {
            Some(url) => url.clone(),
            None => Url::parse(Self::SITEVERIFY).map_err(|e| HumanCheckError(e.to_string()))?,
        };
        let request = HttpRequest {
            method: HttpMethod::Post,
            url,
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: body.as_bytes().to_vec(),
        };
        let response = self
            .transport
            .send(request)
            .await
            .map_err(|e| HumanCheckError(e.to_string()))?;
        if response.status != 200 {
            return Err(HumanCheckError(format!("status {}", response.status)));
        }
        let body: serde_json::Value = serde_json::from_slice(&response.body)
            .map_err(|_| HumanCheckError("the answer is not JSON".into()))?;
        Ok(body.get("success").and_then(serde_json::Value::as_bool) == Some(true))
    }
}
