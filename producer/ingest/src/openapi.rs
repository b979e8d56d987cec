//! The OpenAPI 3.1 document of the ingest API, served at `GET /openapi.json`.
//!
//! Generated, not written: the request's event is the contract's JSON Schema
//! ([`flyhigh_schemas::json_schema::envelope_schema`], with `event_id` optional, as
//! the ingest assigns one), and the answers are the schemas schemars derives from
//! [`crate::response`]'s types. A field added to either shows up here with no edit.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::limits::{
    MAX_EVENT_BYTES, MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES, RETRY_AFTER_BUSY_SECONDS,
    RETRY_AFTER_UNAVAILABLE_SECONDS,
};
use crate::response::{ErrorResponse, IngestResponse};

const SCHEMAS: &str = "#/components/schemas/";

/// The document.
pub fn document() -> Value {
    let mut schemas = Map::new();
    // The contract's envelope: its definitions become components, its references
    // follow them there.
    let mut envelope = flyhigh_schemas::json_schema::envelope_schema();
    if let Some(object) = envelope.as_object_mut() {
        object.remove("$schema");
        object.remove("$id");
        if let Some(Value::Object(defs)) = object.remove("$defs") {
            schemas.extend(defs);
        }
    }
    let mut event = envelope.clone();
    if let Some(required) = event.get_mut("required").and_then(Value::as_array_mut) {
        required.retain(|f| f != "event_id");
    }
    event["title"] = "An event as sent to the ingest API".into();
    event["description"] = "The contract's envelope (Envelope); `event_id` may be omitted, \
                            and the ingest then assigns a UUIDv7 and returns it."
        .into();
    schemas.insert("Envelope".into(), envelope);
    schemas.insert("IngestEvent".into(), event);
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = "/components/schemas".into();
    let mut generator = settings.into_generator();
    let ingest_response = generator.subschema_for::<IngestResponse>().to_value();
    let error_response = generator.subschema_for::<ErrorResponse>().to_value();
    schemas.extend(generator.take_definitions(true));
    let mut document = json!({
        "openapi": "3.1.0",
        "jsonSchemaDialect": "https://json-schema.org/draft/2020-12/schema",
        "info": {
            "title": "FlyHigh ingest API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Send booking-app events (searches, bookings, cancellations) into \
                the FlyHigh pipeline. A 2xx means every event of the request is durable in \
                the stream; each event's result says what happened to it. See docs/ingest.md."
        },
        "paths": {
            "/v1/events": {
                "post": {
                    "operationId": "postEvents",
                    "summary": "Send events",
                    "description": format!(
                        "A JSON array of events, one event, or NDJSON. At most \
                         {MAX_EVENTS_PER_REQUEST} events, {MAX_REQUEST_BYTES} bytes per \
                         request and {MAX_EVENT_BYTES} bytes per event (413 beyond). \
                         Retrying a request with the same event_ids is harmless: events \
                         already durable are answered `duplicate`."
                    ),
                    "security": [{"bearer": []}, {}],
                    "requestBody": {
                        "required": true,
                        "content": {
                            "application/json": {"schema": {"oneOf": [
                                {"type": "array", "maxItems": MAX_EVENTS_PER_REQUEST,
                                 "items": {"$ref": format!("{SCHEMAS}IngestEvent")}},
                                {"$ref": format!("{SCHEMAS}IngestEvent")}
                            ]}},
                            "application/x-ndjson": {"schema": {
                                "type": "string",
                                "description": "One IngestEvent as JSON a line; blank lines \
                                                are ignored. `index` counts events, not lines."
                            }}
                        }
                    },
                    "responses": {
                        "200": results("Every event accepted or duplicate: all durable.", &ingest_response, None),
                        "422": results("Some events rejected (see their errors; do not resend them as they are); the others are durable.", &ingest_response, None),
                        "429": results("Back-pressure: the events with status `retry` were not written; send them again after Retry-After.", &ingest_response, Some(RETRY_AFTER_BUSY_SECONDS)),
                        "503": results("The stream did not take the events with status `retry` in time; send them again after Retry-After.", &ingest_response, Some(RETRY_AFTER_UNAVAILABLE_SECONDS)),
                        "400": failure("The body cannot be read (not JSON or NDJSON, or another Content-Type).", &error_response),
                        "401": failure("No API key, or an unknown one.", &error_response),
                        "413": failure("Over a limit: `limit` names it, `max` gives it, `index` the event over the per-event limit.", &error_response)
                    }
                }
            },
            "/healthz": {"get": {
                "operationId": "health",
                "summary": "The process is up",
                "responses": {"200": {"description": "Up."}}
            }},
            "/readyz": {"get": {
                "operationId": "ready",
                "summary": "The stream can be reached",
                "responses": {
                    "200": {"description": "Ready to take events."},
                    "503": {"description": "The stream cannot be reached; `reason` says why."}
                }
            }},
            "/openapi.json": {"get": {
                "operationId": "openapi",
                "summary": "This document",
                "responses": {"200": {"description": "The OpenAPI 3.1 document."}}
            }}
        },
        "components": {
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "`flyhigh serve --api-keys FILE`: an app's key; on AWS, a \
                                Cognito access token (API Gateway's JWT authorizer)."
            }}
        }
    });
    let mut schemas = Value::Object(schemas);
    rewrite_refs(&mut schemas);
    document["components"]["schemas"] = schemas;
    document
}

fn results(description: &str, schema: &Value, retry_after: Option<u32>) -> Value {
    let mut response = json!({
        "description": description,
        "content": {"application/json": {"schema": schema}}
    });
    if let Some(seconds) = retry_after {
        response["headers"] = json!({"Retry-After": {
            "description": format!("Seconds to wait before sending the `retry` events again ({seconds})."),
            "schema": {"type": "integer"}
        }});
    }
    response
}

fn failure(description: &str, schema: &Value) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": schema}}})
}

/// Points the envelope's `#/$defs/X` references at `#/components/schemas/X`.
fn rewrite_refs(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, v) in map.iter_mut() {
                if key == "$ref"
                    && let Value::String(r) = v
                    && let Some(name) = r.strip_prefix("#/$defs/")
                {
                    *r = format!("{SCHEMAS}{name}");
                } else {
                    rewrite_refs(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(rewrite_refs),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `$ref` in the document points at a schema it defines.
    #[test]
    fn every_reference_resolves() {
        let doc = document();
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        assert!(refs.len() > 5, "{refs:?}");
        for r in refs {
            let pointer = r.trim_start_matches('#');
            assert!(doc.pointer(pointer).is_some(), "unresolved {r}");
        }
        let event = &doc["components"]["schemas"]["IngestEvent"];
        assert!(
            !event["required"]
                .as_array()
                .unwrap()
                .contains(&"event_id".into())
        );
        assert!(
            doc["components"]["schemas"]["Envelope"]["required"]
                .as_array()
                .unwrap()
                .contains(&"event_id".into())
        );
        assert_eq!(doc["openapi"], "3.1.0");
    }

    fn collect_refs(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("$ref", Value::String(r)) => out.push(r.clone()),
                        _ => collect_refs(v, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
            _ => {}
        }
    }
}
