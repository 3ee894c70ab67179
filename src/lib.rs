//! storage-broker: decides who may touch which object in Google Cloud Storage and answers with
//! short-lived V4-signed URLs, so that apps move bytes straight to and from GCS.

pub mod cli;
pub mod signing;
