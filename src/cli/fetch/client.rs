//! The broker's signing API as the CLI speaks it: the API's own request and answer types
//! (`crate::api`) over HTTP, so that the two cannot drift apart.

use crate::api::{
    BatchRequest, BatchResponse, CredentialsRequest, CredentialsResponse, ManifestEntry,
    PrefixRequest, Problem,
};
use reqwest::StatusCode;
use serde::Serialize;

/// Why a call got no answer the CLI can use.
#[derive(Debug)]
pub(crate) enum ClientError {
    /// No HTTP answer at all.
    Unreachable(reqwest::Error),
    /// 401: the token is expired, revoked or not for this broker.
    TokenRefused,
    /// Any other refusal, with the problem's detail when the broker sent one.
    Refused { status: StatusCode, detail: String },
    /// The answer started and then broke off.
    Broken(String),
    /// The answer is not what the API describes.
    Garbled(String),
}

/// A broker at `base` called with one bearer token.
pub(crate) struct Broker {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Broker {
    pub(crate) fn new(base: &str, token: String) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.trim_end_matches('/').to_owned(),
            token,
        }
    }

    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `POST /v1/sign/batch`, answered as one JSON document.
    pub(super) async fn sign_batch(
        &self,
        request: &BatchRequest,
    ) -> Result<BatchResponse, ClientError> {
        self.post("/v1/sign/batch", request)
            .await?
            .json()
            .await
            .map_err(|e| {
                ClientError::Garbled(format!("an answer that is not a batch result ({e})"))
            })
    }

    /// `POST /v1/sign/prefix`: the manifest's lines as they stream in.
    pub(super) async fn sign_prefix(
        &self,
        request: &PrefixRequest,
    ) -> Result<Manifest, ClientError> {
        Ok(Manifest {
            response: self.post("/v1/sign/prefix", request).await?,
            pending: Vec::new(),
        })
    }

    /// `POST /v1/credentials`.
    pub(crate) async fn credentials(
        &self,
        request: &CredentialsRequest,
    ) -> Result<CredentialsResponse, ClientError> {
        self.post("/v1/credentials", request)
            .await?
            .json()
            .await
            .map_err(|e| ClientError::Garbled(format!("an answer that is not credentials ({e})")))
    }

    async fn post(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<reqwest::Response, ClientError> {
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(body)
            .send()
            .await
            .map_err(ClientError::Unreachable)?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            return Err(ClientError::TokenRefused);
        }
        let detail = match response.json::<Problem>().await {
            Ok(problem) => format!("{} ({})", problem.detail, problem.code),
            Err(_) => "no problem details".to_owned(),
        };
        Err(ClientError::Refused { status, detail })
    }
}

/// A prefix manifest being received, one entry at a time.
pub(super) struct Manifest {
    response: reqwest::Response,
    pending: Vec<u8>,
}

impl Manifest {
    /// The next entry, or `None` when the broker has sent them all.
    pub(super) async fn next(&mut self) -> Result<Option<ManifestEntry>, ClientError> {
        loop {
            if let Some(end) = self.pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = self.pending.drain(..=end).collect();
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                return serde_json::from_slice(&line).map(Some).map_err(|e| {
                    ClientError::Garbled(format!("a manifest line that is not an entry ({e})"))
                });
            }
            match self.response.chunk().await {
                Ok(Some(chunk)) => self.pending.extend_from_slice(&chunk),
                Ok(None) if self.pending.is_empty() => return Ok(None),
                Ok(None) => {
                    return Err(ClientError::Broken(
                        "the answer ended in the middle of a line".to_owned(),
                    ));
                }
                Err(e) => return Err(ClientError::Broken(e.to_string())),
            }
        }
    }
}
