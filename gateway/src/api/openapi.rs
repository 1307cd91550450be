//! `/openapi.json`: the API described in OpenAPI 3.1, generated from the handlers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use super::auth::Action;
use super::{ApiError, Authenticates, Caller};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "emcomm control API",
        description = "Alerts, receipts, patches, satellite terminals, field reports and status of one emcomm node. Every request needs `Authorization: Bearer TOKEN`."
    ),
    paths(
        super::alerts::submit,
        super::alerts::list,
        super::alerts::get_one,
        super::alerts::confirm,
        super::alerts::update,
        super::alerts::cancel,
        super::alerts::report_receipts,
        super::broadcasts::start,
        super::broadcasts::stop,
        super::alerts::audit,
        super::alerts::status,
        super::patches::list,
        super::patches::upsert,
        super::patches::remove,
        super::patches::reload,
        super::terminals::list,
        super::terminals::send,
        super::terminals::messages,
        super::reports::send,
        super::reports::list,
    ),
    modifiers(&Bearer)
)]
pub struct ApiDoc;

struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn document<S: Authenticates + Send + Sync>(
    State(_): State<Arc<S>>,
    caller: Caller,
) -> Result<Json<utoipa::openapi::OpenApi>, ApiError> {
    caller.may(Action::Read)?;
    Ok(Json(ApiDoc::openapi()))
}
