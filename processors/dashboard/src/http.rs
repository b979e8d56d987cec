//! The dashboard's HTTP face: an axum [`Router`] that a service merges into its own.
//!
//! | path | what |
//! |---|---|
//! | `GET /` | the page |
//! | `GET /assets/...` | its script, style sheet and the vendored uPlot |
//! | `GET /v1/live` | server-sent events: one snapshot a second (`id:` unix ms) |
//! | `GET /v1/dashboard` | the newest snapshot as JSON |
//! | `GET /v1/flights/{flight_id}` | a flight's cabins as JSON |

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;

use crate::hub::Hub;
use crate::source::{Source, SourceError};

/// How often an idle stream sends a comment, so proxies and the browser keep it.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// What a tab's `EventSource` waits before reconnecting after the server went away.
const RECONNECT: Duration = Duration::from_secs(1);
/// Seconds a tab refused for too many streams waits.
const RETRY_AFTER_SECONDS: &str = "5";
/// Only what the server itself serves: the page can make no request elsewhere.
const CSP: &str = "default-src 'self'; script-src 'self'; worker-src 'self'; connect-src 'self'; \
     style-src 'self' 'unsafe-inline'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
     frame-ancestors 'none'";

static INDEX_HTML: &str = include_str!("../assets/index.html");
static APP_JS: &str = include_str!("../assets/app.js");
static APP_CSS: &str = include_str!("../assets/app.css");
static UPLOT_JS: &str = include_str!("../assets/vendor/uPlot.iife.min.js");
static UPLOT_CSS: &str = include_str!("../assets/vendor/uPlot.min.css");

/// The dashboard's routes over `hub` (fed by its sampler) and `source` (read for a
/// flight, and for the first snapshot before the sampler has published one).
pub fn router<S: Source>(hub: Arc<Hub>, source: Arc<S>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/assets/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/assets/vendor/uPlot.iife.min.js",
            get(|| async { asset(UPLOT_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/assets/vendor/uPlot.min.css",
            get(|| async { asset(UPLOT_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/v1/live",
            get({
                let hub = hub.clone();
                move |headers: HeaderMap, uri: Uri| live(hub.clone(), headers, uri)
            }),
        )
        .route(
            "/v1/dashboard",
            get({
                let (hub, source) = (hub.clone(), source.clone());
                move || dashboard(hub.clone(), source.clone())
            }),
        )
        .route(
            "/v1/flights/{flight_id}",
            get({
                let source = source.clone();
                move |Path(flight_id): Path<String>| flight(source.clone(), flight_id)
            }),
        )
}

fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        body,
    )
        .into_response()
}

/// `?last_event_id=N`, for a client that reconnects by itself (an `EventSource`
/// sends the `Last-Event-ID` header only on its own reconnections).
fn query_last_event_id(uri: &Uri) -> Option<u64> {
    uri.query()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("last_event_id="))
        .and_then(|v| v.parse().ok())
}

async fn live(hub: Arc<Hub>, headers: HeaderMap, uri: Uri) -> Response {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or_else(|| query_last_event_id(&uri));
    let Some(frames) = hub.stream(last) else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, RETRY_AFTER_SECONDS)],
            format!(
                "{} live streams are open, the most this server keeps; close a tab or retry in {RETRY_AFTER_SECONDS} s\n",
                hub.config().max_streams
            ),
        )
            .into_response();
    };
    let hello = futures::stream::once(async {
        Ok::<_, Infallible>(Event::default().retry(RECONNECT).comment("flyhigh live"))
    });
    let events =
        frames.map(|f| Ok::<_, Infallible>(Event::default().id(f.id.to_string()).data(&*f.json)));
    let mut response = Sse::new(hello.chain(events))
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

async fn dashboard<S: Source>(hub: Arc<Hub>, source: Arc<S>) -> Response {
    let json: Arc<str> = match hub.latest() {
        Some(frame) => frame.json,
        None => hub.publish(source.snapshot().await).json,
    };
    (
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        json.to_string(),
    )
        .into_response()
}

async fn flight<S: Source>(source: Arc<S>, flight_id: String) -> Response {
    let error = |status: StatusCode, message: String| {
        (status, axum::Json(serde_json::json!({ "error": message }))).into_response()
    };
    match source.flight(&flight_id).await {
        Ok(Some(view)) => axum::Json(view).into_response(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!(
                "no flight {} in the inventory",
                flight_id.trim().to_ascii_uppercase()
            ),
        ),
        Err(e @ SourceError::BadFlightId(_)) => error(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::HubConfig;
    use crate::model::{FlightView, Snapshot};
    use axum::body::Body;
    use axum::http::Request;
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    struct Empty;

    impl Source for Empty {
        async fn snapshot(&self) -> Snapshot {
            Snapshot::empty("empty")
        }
        async fn flight(&self, flight_id: &str) -> Result<Option<FlightView>, SourceError> {
            match flight_id {
                "BAD!" => Err(SourceError::BadFlightId(flight_id.into())),
                _ => Ok(None),
            }
        }
    }

    async fn get(router: &Router, path: &str) -> (StatusCode, HeaderMap, String) {
        let response = router
            .clone()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    #[tokio::test]
    async fn the_page_and_its_assets_are_served_from_the_binary() {
        let hub = Hub::new(HubConfig::default());
        let router = router(hub, Arc::new(Empty));
        for (path, kind) in [
            ("/", "text/html"),
            ("/assets/app.js", "text/javascript"),
            ("/assets/app.css", "text/css"),
            ("/assets/vendor/uPlot.iife.min.js", "text/javascript"),
            ("/assets/vendor/uPlot.min.css", "text/css"),
        ] {
            let (status, headers, body) = get(&router, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            assert!(
                headers[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with(kind),
                "{path}"
            );
            assert!(!body.is_empty(), "{path}");
        }
        let (_, _, page) = get(&router, "/").await;
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external reference"
        );
    }

    #[tokio::test]
    async fn the_snapshot_and_flight_answers() {
        let hub = Hub::new(HubConfig::default());
        let router = router(hub, Arc::new(Empty));
        let (status, _, body) = get(&router, "/v1/dashboard").await;
        assert_eq!(status, StatusCode::OK);
        let doc: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert!(doc["id"].as_u64().unwrap() > 0);
        assert_eq!(
            get(&router, "/v1/flights/FH0001-20261208").await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            get(&router, "/v1/flights/BAD!").await.0,
            StatusCode::BAD_REQUEST
        );
    }

    #[tokio::test]
    async fn beyond_the_cap_a_stream_is_refused_with_retry_after() {
        let hub = Hub::new(HubConfig {
            max_streams: 1,
            ..HubConfig::default()
        });
        let _held = hub.stream(None).unwrap();
        let router = router(hub, Arc::new(Empty));
        let response = router
            .oneshot(Request::get("/v1/live").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()[header::RETRY_AFTER], "5");
    }
}
