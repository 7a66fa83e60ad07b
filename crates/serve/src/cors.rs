//! Cross-origin access: off unless the user names the web origins that may call the server.
//!
//! Why off: a page the user happens to visit could otherwise drive the local model (and read
//! its answers) through the browser. A web app the user trusts (e.g. a chat UI on
//! `http://localhost:3000`) is allowed by naming its origin, as Ollama's `OLLAMA_ORIGINS`
//! does; `*` allows every origin and is the user's explicit choice.

use axum::http::{header, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::ServeError;

/// The CORS layer for `origins` (none: no layer, so no CORS headers are ever sent). Each
/// origin must be `*` or `scheme://host[:port]` with no path.
pub(crate) fn layer(origins: &[String]) -> Result<Option<CorsLayer>, ServeError> {
    if origins.is_empty() {
        return Ok(None);
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let values = origins
            .iter()
            .map(|o| parse(o))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(values)
    };
    Ok(Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST, Method::OPTIONS])
            .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]),
    ))
}

/// An origin as browsers send it: `scheme://host[:port]`.
fn parse(origin: &str) -> Result<HeaderValue, ServeError> {
    let bad = || ServeError::BadOrigin(origin.to_owned());
    let (scheme, rest) = origin.split_once("://").ok_or_else(bad)?;
    let host_ok = !rest.is_empty()
        && rest
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c));
    if !matches!(scheme, "http" | "https") || !host_ok {
        return Err(bad());
    }
    HeaderValue::from_str(origin).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert!(layer(&[]).unwrap().is_none());
        assert!(layer(&["http://localhost:3000".into()]).unwrap().is_some());
        assert!(layer(&["https://[::1]:8443".into(), "*".into()]).is_ok());
        for bad in [
            "localhost:3000",
            "http://a/path",
            "ftp://x",
            "http://",
            "http://a b",
        ] {
            assert!(
                matches!(layer(&[bad.into()]), Err(ServeError::BadOrigin(_))),
                "{bad}"
            );
        }
    }
}
