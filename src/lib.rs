//! storage-broker: decides who may touch which object in Google Cloud Storage and answers with
//! short-lived V4-signed URLs, so that apps move bytes straight to and from GCS.
//!
//! Data flows one way: request → [`identity`] → ([`store`] → [`policy`]) → [`signing`] → audit
//! → response. [`app::Application`] builds it all from a [`config::Config`].

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
#[doc(hidden)]
pub mod fuzz;
pub mod gcs;
pub mod identity;
pub mod policy;
pub mod signing;
pub mod store;
