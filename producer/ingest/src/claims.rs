//! Callers from a verified token's claims, for hosts that authenticate requests
//! themselves ([`Auth::FromHost`](crate::Auth::FromHost)): behind API Gateway's JWT
//! authorizer, `ingest-lambda` reads the token's claims from the request context and
//! asks [`CallerSources::caller_for`] which [`Caller`] the request is.
//!
//! One claim names the caller (by default `client_id`, the OAuth client of the app),
//! and a map from that claim's values to the sources each may send:
//!
//! ```
//! use std::collections::HashMap;
//! use flyhigh_ingest::claims::CallerSources;
//!
//! let sources = CallerSources::parse("client_id", r#"{"3abc": ["ios-app"], "ops": ["*"]}"#)?;
//! let claims = HashMap::from([("client_id".to_string(), "3abc".to_string())]);
//! let caller = sources.caller_for(Some(&claims), false).unwrap();
//! assert!(caller.may_send("ios-app") && !caller.may_send("web-app"));
//! assert!(sources.caller_for(None, false).is_none()); // no token: 401
//! # Ok::<(), flyhigh_ingest::claims::ClaimsError>(())
//! ```

use std::collections::HashMap;

use crate::auth::Caller;

/// The claim naming the caller when none is configured.
pub const DEFAULT_SOURCE_CLAIM: &str = "client_id";

/// Which sources each value of one token claim may send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallerSources {
    claim: String,
    callers: HashMap<String, Vec<String>>,
}

/// A caller map that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("caller sources: {0}")]
pub struct ClaimsError(pub String);

impl CallerSources {
    /// Parses the map, a JSON object from the claim's values to lists of sources
    /// (`["*"]`: any source); an empty text is an empty map (nobody may send).
    ///
    /// # Errors
    ///
    /// The text is not such an object, a list is empty, or the claim name is empty.
    pub fn parse(claim: impl Into<String>, json: &str) -> Result<CallerSources, ClaimsError> {
        let claim = claim.into();
        if claim.trim().is_empty() {
            return Err(ClaimsError("the claim naming the caller is empty".into()));
        }
        let callers: HashMap<String, Vec<String>> = if json.trim().is_empty() {
            HashMap::new()
        } else {
            serde_json::from_str(json).map_err(|e| {
                ClaimsError(format!(
                    "expected a JSON object of claim values to lists of sources, \
                     e.g. {{\"3abc\": [\"ios-app\"]}}: {e}"
                ))
            })?
        };
        if let Some((value, _)) = callers.iter().find(|(_, sources)| sources.is_empty()) {
            return Err(ClaimsError(format!(
                "{claim} {value:?} has no source (give [\"*\"] for any)"
            )));
        }
        Ok(CallerSources { claim, callers })
    }

    /// The claim naming the caller.
    pub fn claim(&self) -> &str {
        &self.claim
    }

    /// Number of callers.
    pub fn len(&self) -> usize {
        self.callers.len()
    }

    /// Whether nobody may send.
    pub fn is_empty(&self) -> bool {
        self.callers.is_empty()
    }

    /// The caller a verified token's claims name, if its claim value is in the map.
    pub fn caller(&self, claims: &HashMap<String, String>) -> Option<Caller> {
        let value = claims.get(&self.claim)?;
        let sources = self.callers.get(value)?;
        let name = format!("{}={value}", self.claim);
        Some(if sources.iter().any(|s| s == "*") {
            Caller::anyone(name)
        } else {
            Caller::with_sources(name, sources.clone())
        })
    }

    /// The caller of a request: the one its token's claims name ([`caller`]); without
    /// a token, anyone when `allow_unauthenticated` (a function URL whose IAM auth the
    /// host already checked, or tests), else none (the router answers 401). A token
    /// whose claim is not in the map is never let through.
    ///
    /// [`caller`]: CallerSources::caller
    pub fn caller_for(
        &self,
        claims: Option<&HashMap<String, String>>,
        allow_unauthenticated: bool,
    ) -> Option<Caller> {
        match claims {
            Some(claims) => self.caller(claims),
            None if allow_unauthenticated => Some(Caller::anyone("unauthenticated")),
            None => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_token_names_its_caller_and_sources() {
        let map = CallerSources::parse(
            DEFAULT_SOURCE_CLAIM,
            r#"{"3abc": ["ios-app"], "7def": ["web-app", "web-beta"], "ops": ["*"]}"#,
        )
        .unwrap();
        assert_eq!(map.len(), 3);
        let ios = map
            .caller(&claims(&[("client_id", "3abc"), ("sub", "x")]))
            .unwrap();
        assert_eq!(
            ios,
            Caller::with_sources("client_id=3abc", vec!["ios-app".into()])
        );
        let web = map.caller(&claims(&[("client_id", "7def")])).unwrap();
        assert!(web.may_send("web-beta") && !web.may_send("ios-app"));
        assert!(
            map.caller(&claims(&[("client_id", "ops")]))
                .unwrap()
                .may_send("anything")
        );
        assert_eq!(map.caller(&claims(&[("client_id", "other")])), None);
        assert_eq!(map.caller(&claims(&[("sub", "3abc")])), None);
    }

    #[test]
    fn another_claim_can_name_the_caller() {
        let map = CallerSources::parse("azp", r#"{"web": ["web-app"]}"#).unwrap();
        assert_eq!(map.claim(), "azp");
        assert!(map.caller(&claims(&[("azp", "web")])).is_some());
        assert!(map.caller(&claims(&[("client_id", "web")])).is_none());
    }

    #[test]
    fn without_a_token_only_an_open_host_lets_anyone_in() {
        let map = CallerSources::parse(DEFAULT_SOURCE_CLAIM, r#"{"3abc": ["ios-app"]}"#).unwrap();
        assert_eq!(map.caller_for(None, false), None);
        assert_eq!(
            map.caller_for(None, true),
            Some(Caller::anyone("unauthenticated"))
        );
        // A token is judged by its claims even on an open host.
        assert_eq!(
            map.caller_for(Some(&claims(&[("client_id", "nope")])), true),
            None
        );
        assert!(
            map.caller_for(Some(&claims(&[("client_id", "3abc")])), false)
                .is_some()
        );
    }

    #[test]
    fn a_bad_map_is_refused_with_its_reason() {
        assert!(CallerSources::parse("client_id", "").unwrap().is_empty());
        assert!(
            CallerSources::parse("client_id", r#"["ios-app"]"#)
                .unwrap_err()
                .0
                .starts_with("expected a JSON object")
        );
        assert_eq!(
            CallerSources::parse("client_id", r#"{"3abc": []}"#)
                .unwrap_err()
                .0,
            "client_id \"3abc\" has no source (give [\"*\"] for any)"
        );
        assert!(CallerSources::parse(" ", "{}").is_err());
    }
}
