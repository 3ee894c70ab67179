//! Every bad key file gets its own typed error, and no error shows key material.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use serde_json::json;
use storage_broker::signing::{SigningError, load_signer, signer_from_json};

fn service_account(pem: &str) -> Vec<u8> {
    json!({"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com", "private_key": pem})
        .to_string()
        .into_bytes()
}

fn pem(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

fn code(result: Result<impl Sized, SigningError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(err) => err.code(),
    }
}

#[test]
fn unreadable_file() {
    assert_eq!(
        code(load_signer("/nonexistent/key.json".as_ref())),
        "key_file_unreadable"
    );
}

#[test]
fn not_a_key_file() {
    for text in [
        "",
        "not json",
        "[1,2]",
        "{}",
        r#"{"metadata": {"accessId": "GOOG1X"}}"#,
        r#"{"secret": "s"}"#,
    ] {
        assert_eq!(
            code(signer_from_json(text.as_bytes())),
            "key_file_invalid",
            "{text}"
        );
    }
    let other_type = json!({"type": "authorized_user", "client_email": "a@b", "private_key": "x"});
    assert_eq!(
        code(signer_from_json(other_type.to_string().as_bytes())),
        "key_file_invalid"
    );
    let no_email = json!({"type": "service_account", "private_key": "x"});
    assert_eq!(
        code(signer_from_json(no_email.to_string().as_bytes())),
        "key_file_invalid"
    );
}

#[test]
fn non_rsa_keys_are_named() {
    let rng = SystemRandom::new();
    let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("ec key");
    let err = signer_from_json(&service_account(&pem("PRIVATE KEY", ec.as_ref()))).expect_err("EC");
    assert_eq!(err.code(), "key_not_rsa");
    assert!(err.to_string().contains("EC P-256"), "{err}");

    let ed = Ed25519KeyPair::generate_pkcs8(&rng).expect("ed25519 key");
    let err =
        signer_from_json(&service_account(&pem("PRIVATE KEY", ed.as_ref()))).expect_err("Ed25519");
    assert_eq!(err.code(), "key_not_rsa");

    assert_eq!(
        code(signer_from_json(&service_account(&pem(
            "EC PRIVATE KEY",
            b"x"
        )))),
        "key_not_rsa"
    );
}

#[test]
fn broken_private_keys() {
    for bad in [
        "",
        "-----BEGIN PRIVATE KEY-----\nnot base64!\n-----END PRIVATE KEY-----\n",
    ] {
        assert_eq!(
            code(signer_from_json(&service_account(bad))),
            "key_invalid",
            "{bad:?}"
        );
    }
    let garbage = pem("PRIVATE KEY", b"\x30\x03\x02\x01\x00 secret-bytes");
    let err = signer_from_json(&service_account(&garbage)).expect_err("garbage");
    assert_eq!(err.code(), "key_invalid");
    assert!(!err.to_string().contains("secret-bytes"));
    assert_eq!(
        code(signer_from_json(&service_account(&pem(
            "CERTIFICATE",
            b"x"
        )))),
        "key_invalid"
    );
}
