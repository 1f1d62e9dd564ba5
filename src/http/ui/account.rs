//! The pages mailed links open — `/setpassword/{id}/{secret}`, `/verifyemail/{id}/{secret}` —
//! and the demo's `/outbox`. Opening a link changes nothing (mail scanners fetch links): the
//! page asks for the new password, or a click, and posts to `/auth/setpassword` or
//! `/auth/verifyemail`. The page then drops the secret from the address bar.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::{Html, STYLE, Ui, csp_nonce, html_page, render};

pub(super) const ACCOUNT: &str = include_str!("account.html");
const ACCOUNT_SCRIPT: &str = include_str!("account.js");
pub(super) const OUTBOX: &str = include_str!("outbox.html");

/// Whether a path segment can be a request id or a secret: short, URL-safe characters.
fn plausible(segment: &str) -> bool {
    (1..=128).contains(&segment.len())
        && segment
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn link_page(ui: &Ui, kind: &str, title: &str, id: &str, secret: &str) -> Response {
    if !plausible(id) || !plausible(secret) {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    }
    let nonce = match csp_nonce(&ui.engine) {
        Ok(nonce) => nonce,
        Err(status) => return status.into_response(),
    };
    let html = render(
        ACCOUNT,
        &[
            ("title", &Html::text(title)),
            ("product", &Html::text(&ui.config.product)),
            ("nonce", &nonce),
            ("style", &Html::trusted(STYLE)),
            ("kind", &Html::text(kind)),
            ("id", &Html::text(id)),
            ("secret", &Html::text(secret)),
            ("script", &Html::trusted(ACCOUNT_SCRIPT)),
        ],
    );
    html_page(&nonce, html)
}

/// `GET /setpassword/{id}/{secret}`: the page a reset or invitation link opens.
pub(super) async fn set_password_page(
    State(ui): State<Ui>,
    Path((id, secret)): Path<(String, String)>,
) -> Response {
    link_page(&ui, "set", "Choose a password", &id, &secret)
}

/// `GET /verifyemail/{id}/{secret}`: the page a verification link opens.
pub(super) async fn verify_email_page(
    State(ui): State<Ui>,
    Path((id, secret)): Path<(String, String)>,
) -> Response {
    link_page(&ui, "verify", "Verify your email", &id, &secret)
}

/// The `http(s)://` links in `text`, in order.
fn links_in(text: &str) -> Vec<&str> {
    text.split_whitespace()
        .filter(|w| w.starts_with("https://") || w.starts_with("http://"))
        .collect()
}

/// `GET /outbox` (only with [`UiConfig::outbox`](super::UiConfig::outbox)): the mail the
/// server sent, newest first, each link clickable.
pub(super) async fn outbox_page(State(ui): State<Ui>) -> Response {
    let Some(outbox) = &ui.config.outbox else {
        return (StatusCode::NOT_FOUND, "Not found").into_response();
    };
    let nonce = match csp_nonce(&ui.engine) {
        Ok(nonce) => nonce,
        Err(status) => return status.into_response(),
    };
    let mails = outbox.all();
    let mut list = String::new();
    if mails.is_empty() {
        list.push_str("<p>No mail yet.</p>");
    } else {
        list.push_str("<ul class=\"mails\">\n");
        for mail in mails.iter().rev() {
            list.push_str(&format!(
                "<li><p><strong>{}</strong><br><span class=\"muted\">to {}</span></p>\n<pre>{}</pre>\n",
                Html::text(&mail.subject).as_str(),
                Html::text(&mail.to).as_str(),
                Html::text(mail.text.trim()).as_str(),
            ));
            for link in links_in(&mail.text) {
                let link = Html::text(link);
                list.push_str(&format!(
                    "<p class=\"links\"><a href=\"{}\">Open the link</a></p>\n",
                    link.as_str()
                ));
            }
            list.push_str("</li>\n");
        }
        list.push_str("</ul>");
    }
    let html = render(
        OUTBOX,
        &[
            ("product", &Html::text(&ui.config.product)),
            ("nonce", &nonce),
            ("style", &Html::trusted(STYLE)),
            ("mails", &Html::trusted(list)),
        ],
    );
    html_page(&nonce, html)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plausible_segments_and_http_links() {
        assert!(plausible("0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(plausible("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!plausible(""));
        assert!(!plausible("<script>"));
        assert!(!plausible(&"a".repeat(129)));
        assert_eq!(
            links_in("Open https://x.example/a/b now\njavascript:alert(1) http://y"),
            vec!["https://x.example/a/b", "http://y"]
        );
    }
}
