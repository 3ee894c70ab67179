//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz): each takes arbitrary bytes,
//! drives the parsers that face untrusted input the way a request does, and must never panic.
//! Not an API; compiled always so that they cannot rot.

/// Request bodies: every JSON body the API reads, and the checks a sign request goes through.
pub fn request_bodies(data: &[u8]) {
    crate::api::fuzz_request_bodies(data);
}

/// Names from requests and policies: bucket and object names, logical bucket names, project
/// slugs, grant principals.
pub fn names(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let _ = crate::signing::BucketName::parse(&text);
    let _ = crate::signing::ObjectName::parse(&text);
    let _ = crate::policy::LogicalBucketName::parse(&text);
    let _ = crate::policy::ProjectSlug::parse(&text);
    let _ = crate::policy::GrantPrincipal::parse(&text);
}

/// Bearer tokens: the JWT header and the claims as the verifier reads them.
pub fn token(data: &[u8]) {
    crate::identity::fuzz_token(data);
}

/// Policy files: `roles.toml` and `classes.toml`, split at the first NUL byte.
pub fn policies(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (roles, classes) = text.split_once('\0').unwrap_or((&text, ""));
    if let Ok(policies) = crate::policy::Policies::parse(roles, classes) {
        // What a loaded policy is asked at start and on every request.
        let classes = &policies.classes;
        for class in classes.iter() {
            let _ = class.render_prefix(
                Some("alice"),
                crate::policy::ProjectSlug::parse("vision").ok().as_ref(),
            );
            let _ = class.allows_content_type("image/png");
        }
        let _ = policies.roles.names().count();
    }
}
