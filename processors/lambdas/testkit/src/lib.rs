//! Test support for the Lambda binaries' `tests/runtime_api.rs`: each invokes its real
//! binary through the Lambda Runtime API that `cargo lambda watch` serves, against
//! moto.
//!
//! `scripts/test.sh` starts moto and `cargo lambda watch` (see
//! `scripts/lib/services.sh`) and exports `FLYHIGH_MOTO_URL`, where to invoke the
//! functions, and the resources the functions are configured with, under the names
//! the functions read; [`env`] reads them, [`moto_config`] builds SDK clients' config
//! for moto, [`invoke`] calls a function by its binary name.
//!
//! `cargo lambda watch --package P` runs `cargo run --package P`, so that a function
//! is built with exactly its own features, and `cargo run` takes one package: one
//! `cargo lambda watch` per Lambda package. [`invoke`] finds the function `f` at
//! `FLYHIGH_LAMBDA_URL_<F>` (`f` in upper case, `-` as `_`: for `demand-lambda`,
//! `FLYHIGH_LAMBDA_URL_DEMAND_LAMBDA`), else at `FLYHIGH_LAMBDA_URL` (one
//! `cargo lambda watch` serving every function).
//!
//! ```no_run
//! # async fn example() {
//! let config = lambda_testkit::moto_config().await;
//! let dynamodb = aws_sdk_dynamodb::Client::new(&config);
//! # let _ = dynamodb;
//! let (status, body) = lambda_testkit::invoke("alerts-lambda", "{}").await;
//! assert_eq!(status, 200, "{body}");
//! # }
//! ```

use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_dynamodb::config::Credentials;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one invocation may take: the first one may compile the function.
const INVOCATION_TIMEOUT: Duration = Duration::from_secs(900);

/// The environment variable `name`.
///
/// # Panics
///
/// When it is not set: the test runs outside `scripts/test.sh`.
pub fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: scripts/lib/services.sh exports it when it starts the services; \
             run this test through scripts/test.sh"
        )
    })
}

/// SDK config for moto at `FLYHIGH_MOTO_URL`, with static test credentials in
/// `us-east-1` (moto's queue URLs and ARNs then name account 123456789012 and that
/// region).
pub async fn moto_config() -> SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .endpoint_url(env("FLYHIGH_MOTO_URL"))
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "static"))
        .load()
        .await
}

/// Invokes the function `function` (its binary name) with `payload`, through the
/// `cargo lambda watch` at [`lambda_url`]`(function)`; returns the HTTP status and
/// the response body (the function's JSON answer on 200).
pub async fn invoke(function: &str, payload: &str) -> (u16, String) {
    post(
        &lambda_url(function),
        &format!("/2015-03-31/functions/{function}/invocations"),
        payload,
    )
    .await
}

/// Where `cargo lambda watch` serves `function`: `FLYHIGH_LAMBDA_URL_<FUNCTION>`
/// when set, else `FLYHIGH_LAMBDA_URL`.
///
/// # Panics
///
/// When neither is set.
pub fn lambda_url(function: &str) -> String {
    std::env::var(function_url_variable(function)).unwrap_or_else(|_| env("FLYHIGH_LAMBDA_URL"))
}

/// `FLYHIGH_LAMBDA_URL_` and the function's name in upper case, `-` as `_`.
fn function_url_variable(function: &str) -> String {
    let name: String = function
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("FLYHIGH_LAMBDA_URL_{name}")
}

/// POSTs `body` to `url` (plain HTTP on loopback) and returns the status and body.
///
/// # Panics
///
/// When the server cannot be reached or does not answer within 15 minutes.
pub async fn post(url: &str, path: &str, body: &str) -> (u16, String) {
    let authority = url.trim_start_matches("http://").trim_end_matches('/');
    let mut stream = tokio::net::TcpStream::connect(authority)
        .await
        .unwrap_or_else(|e| panic!("connect to {authority}: {e}"));
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .unwrap_or_else(|e| panic!("send to {authority}: {e}"));
    let mut response = Vec::new();
    tokio::time::timeout(INVOCATION_TIMEOUT, stream.read_to_end(&mut response))
        .await
        .unwrap_or_else(|_| panic!("POST {path}: no answer within {INVOCATION_TIMEOUT:?}"))
        .unwrap_or_else(|e| panic!("read from {authority}: {e}"));
    let text = String::from_utf8_lossy(&response).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_string()
    };
    (status, body)
}

/// The payload of a chunked HTTP/1.1 body.
fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{dechunk, function_url_variable};

    #[test]
    fn a_function_s_url_variable_is_its_name_in_upper_case() {
        assert_eq!(
            function_url_variable("demand-lambda"),
            "FLYHIGH_LAMBDA_URL_DEMAND_LAMBDA"
        );
    }

    #[test]
    fn a_chunked_body_is_joined_and_a_short_chunk_ends_it() {
        assert_eq!(dechunk("4\r\n{\"a\"\r\n3\r\n:1}\r\n0\r\n\r\n"), "{\"a\":1}");
        assert_eq!(dechunk("9\r\nshort"), "");
    }
}
