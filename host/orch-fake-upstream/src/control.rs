//! Control endpoints under `/_fake/`: stats, configuration, last request.

use bytes::Bytes;
use http::{Response, StatusCode};
use hyper::body::Incoming;
use serde::Serialize;

use crate::config::FakeConfig;
use crate::error::ApiError;
use crate::server::{ResponseBody, json_response, read_body};
use crate::state::Shared;

/// A control endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlRoute {
    /// `GET /_fake/stats`
    Stats,
    /// `GET /_fake/config`
    GetConfig,
    /// `POST /_fake/config` with a (partial) [`FakeConfig`] JSON body.
    SetConfig,
    /// `GET /_fake/last_request`: the last generation request, or `null`.
    LastRequest,
}

/// Serves a control endpoint (never counted in the stats).
pub(crate) async fn handle(
    shared: &Shared,
    route: ControlRoute,
    body: Incoming,
) -> Response<ResponseBody> {
    match route {
        ControlRoute::Stats => json(&shared.snapshot()),
        ControlRoute::GetConfig => json(&shared.config()),
        ControlRoute::LastRequest => json(&shared.recorder.last()),
        ControlRoute::SetConfig => {
            let body = match read_body(body).await {
                Ok(body) => body,
                Err(error) => return error.into_response(),
            };
            match serde_json::from_slice::<FakeConfig>(&body) {
                Ok(config) => {
                    tracing::info!("configuration replaced over HTTP");
                    let response = json(&config);
                    shared.set_config(config);
                    response
                }
                Err(err) => {
                    ApiError::invalid_request(format!("Invalid configuration: {err}"), None, None)
                        .into_response()
                }
            }
        }
    }
}

fn json(value: &impl Serialize) -> Response<ResponseBody> {
    match serde_json::to_vec(value) {
        Ok(body) => json_response(StatusCode::OK, Bytes::from(body)),
        Err(_) => ApiError::for_status(StatusCode::INTERNAL_SERVER_ERROR).into_response(),
    }
}
