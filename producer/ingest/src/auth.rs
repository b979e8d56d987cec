//! Who may send, and under which `source`.
//!
//! Every request is made by a [`Caller`], which may send events only under its own
//! sources (an app cannot write events that claim to come from another app). How the
//! caller is known is the deployment's choice ([`Auth`]):
//! - [`Auth::Open`]: anyone, any source (a laptop on 127.0.0.1, the default of
//!   `flyhigh serve` without `--api-keys`);
//! - [`Auth::ApiKeys`]: `Authorization: Bearer KEY`, keys from a file ([`ApiKeys`]);
//! - [`Auth::FromHost`]: the host has already authenticated the request and put a
//!   [`Caller`] in its extensions (`ingest-lambda`: API Gateway's JWT authorizer
//!   verified the token, the Lambda maps its claims to a caller).

use std::path::Path;

/// Who is sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// For logs: the key's label or the token's client.
    pub name: String,
    /// The `source` values it may send; `None`: any.
    pub sources: Option<Vec<String>>,
}

impl Caller {
    /// A caller that may send any source.
    pub fn anyone(name: impl Into<String>) -> Caller {
        Caller {
            name: name.into(),
            sources: None,
        }
    }

    /// A caller limited to `sources`.
    pub fn with_sources(name: impl Into<String>, sources: Vec<String>) -> Caller {
        Caller {
            name: name.into(),
            sources: Some(sources),
        }
    }

    /// Whether it may send an event whose `source` is `source`.
    pub fn may_send(&self, source: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|s| s == source))
    }

    /// The reason an event of `source` is refused, for the `source` field's error.
    pub fn refusal(&self, source: &str) -> String {
        match &self.sources {
            Some(allowed) => format!(
                "this caller may send only source {}, not {source:?}",
                allowed
                    .iter()
                    .map(|s| format!("{s:?}"))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
            None => String::new(),
        }
    }
}

/// How requests are authenticated.
#[derive(Debug, Clone, Default)]
pub enum Auth {
    /// No authentication: every request may send any source.
    #[default]
    Open,
    /// `Authorization: Bearer KEY` with a key of this set.
    ApiKeys(ApiKeys),
    /// The host put a [`Caller`] in the request's extensions; a request without one
    /// is refused (401).
    FromHost,
}

/// Shortest key accepted: 16 characters (about 96 bits as base64).
pub const MIN_KEY_CHARS: usize = 16;

/// API keys and the sources each may send.
///
/// The file has one key a line: the key, then the sources it may send, comma-separated,
/// or `*` for any; `#` starts a comment.
///
/// ```text
/// # key                       sources
/// ios-4f9a0c1d2e3b4a5f      ios-app
/// web-77c1e2d3f4a5b6c7      web-app,web-beta
/// ops-0b1c2d3e4f5a6b7c      *
/// ```
#[derive(Clone, Default)]
pub struct ApiKeys {
    keys: Vec<(String, Caller)>,
}

impl std::fmt::Debug for ApiKeys {
    /// Never prints a key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKeys")
            .field("keys", &self.keys.len())
            .finish()
    }
}

/// A keys file that cannot be used, with the line at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {reason}")]
pub struct KeysError {
    /// The file (or `(text)`).
    pub path: String,
    /// What is wrong, with the line number.
    pub reason: String,
}

impl ApiKeys {
    /// Reads a keys file.
    ///
    /// # Errors
    ///
    /// The file cannot be read, or a line is not `KEY SOURCES`.
    pub fn load(path: &Path) -> Result<ApiKeys, KeysError> {
        let text = std::fs::read_to_string(path).map_err(|e| KeysError {
            path: path.display().to_string(),
            reason: format!("cannot read the keys file: {e}"),
        })?;
        ApiKeys::parse(&text).map_err(|reason| KeysError {
            path: path.display().to_string(),
            reason,
        })
    }

    /// Parses the file's text.
    ///
    /// # Errors
    ///
    /// A line that is not `KEY SOURCES`, a key shorter than [`MIN_KEY_CHARS`], a key
    /// given twice, or no key at all.
    pub fn parse(text: &str) -> Result<ApiKeys, String> {
        let mut keys: Vec<(String, Caller)> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let mut parts = line.split_whitespace();
            let (Some(key), Some(sources), None) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(format!(
                    "line {}: expected `KEY SOURCES` (sources comma-separated, or *)",
                    n + 1
                ));
            };
            if key.chars().count() < MIN_KEY_CHARS {
                return Err(format!(
                    "line {}: a key must have at least {MIN_KEY_CHARS} characters",
                    n + 1
                ));
            }
            if keys.iter().any(|(k, _)| k == key) {
                return Err(format!("line {}: this key is given twice", n + 1));
            }
            let name = format!("key {}…", key.chars().take(4).collect::<String>());
            let caller = if sources == "*" {
                Caller::anyone(name)
            } else {
                Caller::with_sources(name, sources.split(',').map(str::to_string).collect())
            };
            keys.push((key.to_string(), caller));
        }
        if keys.is_empty() {
            return Err("no key in the file".into());
        }
        Ok(ApiKeys { keys })
    }

    /// The caller an `Authorization` header value names, if its bearer key is known.
    /// Compares against every key in constant time per key.
    pub fn caller(&self, authorization: Option<&str>) -> Option<&Caller> {
        let presented = authorization?
            .strip_prefix("Bearer ")
            .or_else(|| authorization?.strip_prefix("bearer "))?
            .trim();
        let mut found = None;
        for (key, caller) in &self.keys {
            if constant_time_eq(key.as_bytes(), presented.as_bytes()) {
                found = Some(caller);
            }
        }
        found
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether there are none (never, once parsed).
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# key sources\nios-4f9a0c1d2e3b4a5f   ios-app\n\
                        web-77c1e2d3f4a5b6c7 web-app,web-beta # two\n\nops-0b1c2d3e4f5a6b7c *\n";

    #[test]
    fn a_key_names_its_caller_and_sources() {
        let keys = ApiKeys::parse(FILE).unwrap();
        assert_eq!(keys.len(), 3);
        let web = keys.caller(Some("Bearer web-77c1e2d3f4a5b6c7")).unwrap();
        assert!(web.may_send("web-beta") && !web.may_send("ios-app"));
        assert!(
            web.refusal("ios-app")
                .contains("\"web-app\" or \"web-beta\"")
        );
        let ops = keys.caller(Some("Bearer ops-0b1c2d3e4f5a6b7c")).unwrap();
        assert!(ops.may_send("anything"));
        assert!(keys.caller(Some("Bearer ios-4f9a0c1d2e3b4a5")).is_none());
        assert!(keys.caller(Some("ios-4f9a0c1d2e3b4a5f")).is_none());
        assert!(keys.caller(None).is_none());
        assert!(!format!("{keys:?}").contains("4f9a"));
    }

    #[test]
    fn a_bad_file_names_its_line() {
        assert_eq!(
            ApiKeys::parse("short web-app").unwrap_err(),
            "line 1: a key must have at least 16 characters"
        );
        assert!(
            ApiKeys::parse("\nios-4f9a0c1d2e3b4a5f")
                .unwrap_err()
                .starts_with("line 2")
        );
        assert!(ApiKeys::parse("# nothing").is_err());
    }
}
