//! `GET /openapi.json`: the API description, generated from the handlers and types.

use axum::Json;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

#[derive(OpenApi)]
#[openapi(
    info(title = "storage-broker", description = "Signed-URL authorization broker for Google Cloud Storage"),
    paths(
        super::me::me,
        super::sign::sign,
        super::sign::batch,
        super::sign::upload_policy,
        super::buckets::list,
        super::objects::list,
        super::objects::sign_prefix,
        super::buckets::create,
        super::buckets::get,
        super::buckets::delete,
        super::grants::list,
        super::grants::create,
        super::grants::delete,
        super::projects::create,
        super::projects::list,
        super::projects::get,
        super::projects::put_member,
        super::projects::delete_member,
        super::health::healthz,
        super::health::readyz,
        super::metrics::metrics,
    ),
    modifiers(&Bearer)
)]
struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The OpenAPI 3.1 document.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The OpenAPI document.
pub async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(document())
}
