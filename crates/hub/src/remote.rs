//! Talking to the hub beyond what hf-hub offers: file metadata from a HEAD that stops at the
//! CDN redirect (where `X-Linked-Etag` lives), and turning hub answers into actionable errors.

use reqwest::header::{HeaderMap, AUTHORIZATION, LOCATION};
use reqwest::{StatusCode, Url};

use crate::error::HubError;

/// What a HEAD on `resolve/<rev>/<path>` says about a file.
#[derive(Clone, Debug)]
pub(crate) struct FileMeta {
    /// `X-Linked-Etag` (LFS: the SHA-256) or `ETag` (git SHA-1), unquoted.
    pub etag: String,
    /// `X-Linked-Size` or `Content-Length`.
    pub size: Option<u64>,
    /// Whether the hub named an LFS object (`X-Linked-Etag` present).
    pub lfs: bool,
}

/// What a failed request was about, to name the right 404.
#[derive(Clone, Debug)]
pub(crate) enum Subject<'a> {
    Revision(&'a str),
    File { revision: &'a str, path: &'a str },
}

/// Facts needed to phrase an error.
#[derive(Clone, Debug)]
pub(crate) struct ErrorContext<'a> {
    pub endpoint: &'a str,
    pub repo_id: &'a str,
    pub token_sent: bool,
    pub subject: Subject<'a>,
}

/// Builds the error for a non-success hub answer, using `X-Error-Code` as huggingface_hub does.
pub(crate) fn status_error(
    ctx: &ErrorContext<'_>,
    status: StatusCode,
    error_code: Option<&str>,
    message: &str,
    url: &str,
) -> HubError {
    let gated = || HubError::Gated {
        repo_id: ctx.repo_id.to_string(),
        url: format!("{}/{}", ctx.endpoint, ctx.repo_id),
        token_sent: ctx.token_sent,
    };
    let repo_missing = || HubError::RepoNotFound {
        repo_id: ctx.repo_id.to_string(),
        endpoint: ctx.endpoint.to_string(),
    };
    let not_found = || match ctx.subject {
        // Without an error code, a 404 on the default branch means the repository is missing.
        Subject::Revision(crate::model_ref::DEFAULT_REVISION) => repo_missing(),
        Subject::Revision(revision) => HubError::RevisionNotFound {
            repo_id: ctx.repo_id.to_string(),
            revision: revision.to_string(),
        },
        Subject::File { revision, path } => HubError::FileNotFound {
            repo_id: ctx.repo_id.to_string(),
            revision: revision.to_string(),
            path: path.to_string(),
        },
    };
    match error_code {
        Some("GatedRepo") => return gated(),
        Some("RepoNotFound") => return repo_missing(),
        Some("RevisionNotFound") => {
            let revision = match ctx.subject {
                Subject::Revision(r) | Subject::File { revision: r, .. } => r,
            };
            return HubError::RevisionNotFound {
                repo_id: ctx.repo_id.to_string(),
                revision: revision.to_string(),
            };
        }
        Some("EntryNotFound") => return not_found(),
        _ => {}
    }
    let lower = message.to_ascii_lowercase();
    match status.as_u16() {
        401 => HubError::Unauthorized {
            repo_id: ctx.repo_id.to_string(),
            file: match ctx.subject {
                Subject::File { path, .. } => Some(path.to_string()),
                Subject::Revision(_) => None,
            },
            endpoint: ctx.endpoint.to_string(),
            token_sent: ctx.token_sent,
        },
        403 if lower.contains("gated")
            || lower.contains("restricted")
            || lower.contains("authorized list") =>
        {
            gated()
        }
        404 => not_found(),
        code => HubError::Server {
            status: code,
            url: url.to_string(),
            message: if message.is_empty() {
                status.canonical_reason().unwrap_or("error").to_string()
            } else {
                message.chars().take(300).collect()
            },
        },
    }
}

/// Builds the error for a failed response, reading the hub's message headers and body.
pub(crate) async fn response_error(
    ctx: &ErrorContext<'_>,
    response: reqwest::Response,
) -> HubError {
    let status = response.status();
    let url = response.url().to_string();
    let code = header(response.headers(), "x-error-code");
    let header_message = header(response.headers(), "x-error-message");
    let body = response.text().await.unwrap_or_default();
    let message = header_message
        .or_else(|| {
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
        })
        .unwrap_or(body);
    status_error(ctx, status, code.as_deref(), &message, &url)
}

/// HEAD on a file's resolve URL, following only relative redirects (renamed repos)
/// so the `X-Linked-*` headers of the hub's own answer are read, not those of the CDN, and the
/// token (sent on every hop here) never reaches another host. The ETag is checked to be a
/// content hash, since it names the blob file.
pub(crate) async fn head_file(
    client: &reqwest::Client,
    url: Url,
    token: Option<&str>,
    ctx: &ErrorContext<'_>,
) -> Result<FileMeta, HeadFailure> {
    let mut url = url;
    for _ in 0..5 {
        let mut req = client.head(url.clone());
        if let Some(t) = token {
            req = req.header(AUTHORIZATION, format!("Bearer {t}"));
        }
        let response = req.send().await.map_err(HeadFailure::Transport)?;
        let status = response.status();
        if status.is_redirection() {
            // Only a path on this host: `//host/...` is another host without a scheme.
            let next = header(response.headers(), LOCATION.as_str())
                .filter(|l| l.starts_with('/') && !l.starts_with("//"))
                .and_then(|l| url.join(&l).ok())
                .filter(|next| same_origin(next, &url));
            if let Some(next) = next {
                url = next;
                continue;
            }
        } else if !status.is_success() {
            return Err(HeadFailure::Hub(response_error(ctx, response).await));
        }
        let meta = meta_from_headers(response.headers())
            .ok_or_else(|| HeadFailure::Hub(protocol(&url, "no ETag in the answer".to_string())))?;
        crate::cache_layout::check_etag(&meta.etag, url.as_str()).map_err(HeadFailure::Hub)?;
        return Ok(meta);
    }
    Err(HeadFailure::Hub(protocol(
        &url,
        "too many redirects".to_string(),
    )))
}

/// Why a HEAD failed: a hub answer (final) or the transport (maybe offline).
#[derive(Debug)]
pub(crate) enum HeadFailure {
    Hub(HubError),
    Transport(reqwest::Error),
}

/// Whether two URLs share scheme, host and port: where a token sent to one may also go.
pub(crate) fn same_origin(a: &Url, b: &Url) -> bool {
    a.scheme() == b.scheme()
        && a.host_str() == b.host_str()
        && a.port_or_known_default() == b.port_or_known_default()
}

fn protocol(url: &Url, detail: String) -> HubError {
    HubError::Protocol {
        url: url.to_string(),
        detail,
    }
}

fn meta_from_headers(h: &HeaderMap) -> Option<FileMeta> {
    let linked = header(h, "x-linked-etag");
    let lfs = linked.is_some();
    let raw = linked.or_else(|| header(h, "etag"))?;
    let etag = raw
        .strip_prefix("W/")
        .unwrap_or(&raw)
        .trim_matches('"')
        .to_string();
    let size = header(h, "x-linked-size")
        // An LFS answer is a redirect: its Content-Length is that of the redirect, not the file.
        .or_else(|| (!lfs).then(|| header(h, "content-length")).flatten())
        .and_then(|v| v.parse().ok());
    Some(FileMeta { etag, size, lfs })
}

pub(crate) fn header(h: &HeaderMap, name: &str) -> Option<String> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `{endpoint}/{repo}/resolve/{revision}/{path}` with each path segment escaped.
pub(crate) fn resolve_url(
    endpoint: &str,
    repo_id: &str,
    revision: &str,
    path: &str,
) -> Result<Url, HubError> {
    let mut url = Url::parse(&format!("{endpoint}/"))
        .map_err(|e| HubError::Client(format!("bad endpoint {endpoint}: {e}")))?;
    {
        let mut segs = url
            .path_segments_mut()
            .map_err(|_| HubError::Client(format!("bad endpoint {endpoint}")))?;
        segs.pop_if_empty();
        segs.extend(repo_id.split('/'));
        segs.push("resolve");
        segs.push(revision);
        segs.extend(path.split('/'));
    }
    Ok(url)
}

/// Whether a transport error means the hub is unreachable (rather than a broken transfer).
pub(crate) fn is_unreachable(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolve_url_escapes_segments() {
        let u = resolve_url(
            "http://127.0.0.1:9/base",
            "org/name",
            "refs/pr/1",
            "sub dir/a#b.json",
        )
        .unwrap();
        assert_eq!(
            u.as_str(),
            "http://127.0.0.1:9/base/org/name/resolve/refs%2Fpr%2F1/sub%20dir/a%23b.json"
        );
    }

    #[test]
    fn only_same_origin_redirects_are_followed_with_the_token() {
        let base = Url::parse("https://hub.example/org/name/resolve/main/a.json").unwrap();
        for (location, same) in [
            ("/org/renamed/resolve/main/a.json", true),
            ("https://hub.example:443/x", true),
            ("//evil.example/steal", false),
            ("https://evil.example/x", false),
            ("http://hub.example/x", false),
            ("https://hub.example:8443/x", false),
        ] {
            let next = base.join(location).unwrap();
            assert_eq!(same_origin(&next, &base), same, "{location}");
        }
    }

    #[test]
    fn error_codes_win_over_status() {
        let ctx = ErrorContext {
            endpoint: "https://huggingface.co",
            repo_id: "meta-llama/Llama-3.2-1B",
            token_sent: false,
            subject: Subject::Revision("main"),
        };
        let e = status_error(&ctx, StatusCode::UNAUTHORIZED, Some("GatedRepo"), "", "u");
        assert!(e
            .to_string()
            .contains("accept the license at https://huggingface.co/meta-llama/Llama-3.2-1B"));
        let e = status_error(
            &ctx,
            StatusCode::UNAUTHORIZED,
            Some("RepoNotFound"),
            "",
            "u",
        );
        assert!(matches!(e, HubError::RepoNotFound { .. }));
        let e = status_error(&ctx, StatusCode::UNAUTHORIZED, None, "", "u");
        assert!(e.to_string().contains("HF_TOKEN"));
    }

    #[test]
    fn a_401_on_a_file_names_the_file() {
        let ctx = ErrorContext {
            endpoint: "https://huggingface.co",
            repo_id: "org/model",
            token_sent: true,
            subject: Subject::File {
                revision: "main",
                path: "model-00002-of-00002.safetensors",
            },
        };
        let e = status_error(&ctx, StatusCode::UNAUTHORIZED, None, "", "u").to_string();
        assert!(
            e.contains("org/model (file `model-00002-of-00002.safetensors`) (401)"),
            "{e}"
        );
    }
}
