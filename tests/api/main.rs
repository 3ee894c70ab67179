//! The broker through its HTTP API, against a real PostgreSQL (a fresh database per test) and a
//! real issuer serving its JWKS on loopback: no mocked database, no mocked auth.

mod attacks;
mod audit;
mod audit_days;
mod auth;
mod authorize;
mod azure_emulator;
mod azurite;
mod backends;
mod batch;
mod consistency;
mod console;
mod cors;
mod credentials;
mod dev;
mod fetch_manifest;
mod grants;
mod helpers;
mod keyless;
mod objects;
mod ops;
mod pgbouncer;
mod rate_limit;
mod s3_control_plane;
mod s3_emulator;
mod sharing;
mod sign;
mod signing_keys;
mod traces;
mod upload_policy;
