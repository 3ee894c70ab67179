#![no_main]
//! `storage_broker::fuzz::request_bodies` on arbitrary bytes: must never panic.

libfuzzer_sys::fuzz_target!(|data: &[u8]| storage_broker::fuzz::request_bodies(data));
