//! storage-broker: decides who may touch which object in object storage (GCS, S3-compatible
//! stores, Azure Blob) and answers with short-lived signed URLs, so that apps move bytes
//! straight to and from storage.
//!
//! Data flows one way: request → [`identity`] → ([`store`] → [`policy`]) → [`signer`] → audit
//! → response. Every rule is a pure function of [`policy`]; every decision a handler acts on is
//! settled (recorded, counted, answered) by the one path in `api::access`. [`signing`] is pure (canonical requests, policies, local keys); [`cloud`] holds
//! what needs a cloud's identity services (metadata server, IAM `signBlob`, OAuth tokens);
//! [`signer`] composes the two, one signer per backend; [`backends`] are the storage control
//! planes. [`app::Application`]
//! builds it all from a [`config::Config`].

pub mod api;
pub mod app;
pub mod backends;
pub mod cli;
pub mod cloud;
pub mod config;
#[doc(hidden)]
pub mod fuzz;
pub mod identity;
pub mod policy;
pub mod signer;
pub mod signing;
pub mod store;
pub mod telemetry;
