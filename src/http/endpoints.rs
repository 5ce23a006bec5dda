//! `GET/POST /api/config`: the model endpoints, changed at runtime. Keys go in, never out.
//! Every signed-in user may read them; only an administrator may change them.

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::Value;

use super::error::ApiError;
use super::AppState;

pub async fn get(state: web::Data<AppState>, req: HttpRequest) -> Result<HttpResponse, ApiError> {
    super::identity::caller(&req)?;
    Ok(HttpResponse::Ok().json(state.services.endpoints.public_view()))
}

pub async fn update(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<Value>,
) -> Result<HttpResponse, ApiError> {
    super::identity::admin(&req)?;
    let services = state.services.clone();
    let body = body.into_inner();
    super::blocking(move || {
        services
            .endpoints
            .update(&body, &services.store, &services.llm)
            .map(|()| services.endpoints.public_view())
    })
    .await
    .map(|view| HttpResponse::Ok().json(view))
}
