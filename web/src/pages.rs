//! Server-rendered HTML: sign-in, lookup (one number, a list, or the numbers
//! in a pasted message), recent sightings, peers, node status. The markup is
//! in `pages/view.rs` (maud templates, escaped by default); the CSS is
//! compiled into the binary; there is no JavaScript (the
//! Content-Security-Policy allows none). Analysts sign in with a token on
//! `/login` and carry a session cookie; numbers are posted in form bodies,
//! never put in URLs.

use axum::extract::rejection::FormRejection;
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode, Uri};
use axum::response::{Html, IntoResponse, Response};
use axum::Form;
use maud::Markup;
use serde::Deserialize;
use sightline_node::config::Scope;
use sightline_node::node::letters;
use sightline_node::{Lookup, LookupError};
use sightline_protocol::links::{sender_in, urls_in};
use sightline_protocol::parse_number;
use sightline_protocol::phone::candidates_in;

use crate::auth::{Caller, ClientAddr};
use crate::{ApiError, AppState};

mod view;

pub use view::utc;
use view::{Answer, Basis, Checked, Filled, ReportOffer, Reported};

const CSS: &str = include_str!("style.css");

/// Most numbers in one "check several numbers" form.
const MAX_FORM_NUMBERS: usize = 1000;

/// `GET /style.css`.
pub async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

fn page(title: &str, caller: Option<&Caller>, body: &Markup) -> Html<String> {
    Html(view::layout(title, caller, body).into_string())
}

/// A local path to return to after signing in: `/…`, never another site.
fn local_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/')
                && !p.starts_with("//")
                && p.len() <= 256
                && p.bytes().all(|b| b.is_ascii_graphic() && b != b'\\') =>
        {
            p
        }
        _ => "/",
    }
}

/// The sign-in page: a password field for a token, posted (never in a URL).
fn sign_in_page(status: StatusCode, error: Option<&str>, next: &str) -> Response {
    (status, page("Sign in", None, &view::sign_in(error, next))).into_response()
}

/// A refusal rendered as a page: 401 shows the sign-in form (returning to
/// `next`), 403 and 429 say why.
fn denied(e: &crate::ApiError, next: &str) -> Response {
    if e.status() == StatusCode::UNAUTHORIZED {
        return sign_in_page(StatusCode::UNAUTHORIZED, Some(e.detail()), next);
    }
    let body = view::denied(e.detail());
    let mut response = (e.status(), page("Access denied", None, &body)).into_response();
    if let Some(secs) = e.retry_after() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, secs.into());
    }
    response
}

/// The caller, if it may read pages; otherwise the page that says why.
#[allow(clippy::result_large_err)] // the refusal is the page itself, returned at once
fn reader(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    next: &str,
) -> Result<Caller, Response> {
    let caller = caller.map_err(|e| denied(&e, next))?;
    state
        .auth()
        .admit(&caller, Scope::Read, 1)
        .map_err(|e| denied(&e, next))?;
    Ok(caller)
}

/// `GET /login`.
pub async fn login_form(Query(q): Query<NextQuery>) -> Response {
    sign_in_page(StatusCode::OK, None, local_path(q.next.as_deref()))
}

/// Where to go after signing in.
#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Body of `POST /login`.
#[derive(Debug, Deserialize)]
pub struct SignIn {
    token: String,
    next: Option<String>,
}

/// `POST /login`: exchanges a token for a session cookie (`HttpOnly`,
/// `SameSite=Strict`, `Secure` where configured), then 303 to `next`.
pub async fn login(
    State(state): State<AppState>,
    ClientAddr(address): ClientAddr,
    form: Result<Form<SignIn>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return sign_in_page(StatusCode::BAD_REQUEST, Some("send the token field"), "/");
    };
    let next = local_path(form.next.as_deref()).to_owned();
    match state.auth().sign_in(&form.token, address).await {
        Ok((_, cookie)) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, next), (header::SET_COOKIE, cookie)],
        )
            .into_response(),
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => sign_in_page(
            StatusCode::UNAUTHORIZED,
            Some("That token is not valid for this node."),
            &next,
        ),
        Err(e) => denied(&e, &next),
    }
}

/// `POST /logout`: ends the session, clears the cookie, back to sign-in.
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let cookie = state.auth().sign_out(&headers);
    (
        StatusCode::SEE_OTHER,
        [
            (header::LOCATION, "/login".to_owned()),
            (header::SET_COOKIE, cookie),
        ],
    )
        .into_response()
}

/// The single-number form (`POST /`): the number travels in the body,
/// never in a URL.
#[derive(Debug, Deserialize)]
pub struct LookupForm {
    number: String,
    region: Option<String>,
    /// A checked "vanity number" box.
    vanity: Option<String>,
}

/// The "check several numbers" form (`POST /bulk`): one number per line.
#[derive(Debug, Deserialize)]
pub struct BulkForm {
    numbers: String,
    region: Option<String>,
}

/// The "check a message" form (`POST /message`): the text as received.
#[derive(Debug, Deserialize)]
pub struct MessageForm {
    message: String,
    region: Option<String>,
}

fn basis(state: &AppState) -> Basis<'_> {
    let config = state.node().config();
    #[allow(clippy::cast_precision_loss)]
    let half_life_days = sightline_node::reputation::HalfLives::DEFAULT_DAYS
        .iter()
        .map(|(kind, _)| (*kind, config.half_lives.of(*kind) as f64 / 86_400.0))
        .collect();
    Basis {
        org: state.node().org(),
        half_life_days,
    }
}

fn lookup_page(
    status: StatusCode,
    caller: &Caller,
    filled: &Filled<'_>,
    answer: &Answer<'_>,
) -> Response {
    (
        status,
        page("Lookup", Some(caller), &view::lookup(filled, answer)),
    )
        .into_response()
}

/// The page for a lookup the store could not answer.
fn store_failed(caller: &Caller, filled: &Filled<'_>, error: &impl std::fmt::Display) -> Response {
    tracing::error!(%error, "lookup failed");
    let answer = Answer::Error(view::alert(None, "The lookup failed; see the node's log."));
    lookup_page(StatusCode::INTERNAL_SERVER_ERROR, caller, filled, &answer)
}

/// The caller and the posted lookup form, or the page that says why not:
/// the sign-in or refusal page, or the lookup page asking for `missing`.
#[allow(clippy::result_large_err)] // the refusal is the page itself, returned at once
fn caller_and_form<T>(
    state: &AppState,
    caller: Result<Caller, ApiError>,
    form: Result<Form<T>, FormRejection>,
    missing: &str,
) -> Result<(Caller, T), Response> {
    let caller = reader(state, caller, "/")?;
    if let Ok(Form(form)) = form {
        return Ok((caller, form));
    }
    let answer = Answer::Error(view::alert(Some("lookup-error"), missing));
    Err(lookup_page(
        StatusCode::BAD_REQUEST,
        &caller,
        &Filled::default(),
        &answer,
    ))
}

/// `GET /`: the empty lookup forms. A number in the query string is
/// refused: it would sit in browser history and proxy logs.
pub async fn lookup_form(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    uri: Uri,
) -> Response {
    let caller = match reader(&state, caller, "/") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let in_url = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p.starts_with("number=")));
    if in_url {
        let answer = Answer::Error(view::alert(
            Some("lookup-error"),
            "Numbers are not taken from URLs (they would stay in browser history and proxy logs): type the number into the form.",
        ));
        return lookup_page(
            StatusCode::BAD_REQUEST,
            &caller,
            &Filled::default(),
            &answer,
        );
    }
    lookup_page(
        StatusCode::OK,
        &caller,
        &Filled::default(),
        &Answer::Nothing,
    )
}

/// `POST /`: the lookup page with the answer for one number.
pub async fn lookup(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    form: Result<Form<LookupForm>, FormRejection>,
) -> Response {
    let (caller, form) = match caller_and_form(&state, caller, form, "Type a number to look up.") {
        Ok(both) => both,
        Err(refusal) => return refusal,
    };
    let filled = Filled {
        number: form.number.trim(),
        region: form.region.as_deref().unwrap_or("").trim(),
        vanity: form.vanity.is_some(),
        ..Filled::default()
    };
    if filled.number.is_empty() {
        return lookup_page(StatusCode::OK, &caller, &filled, &Answer::Nothing);
    }
    let region = (!filled.region.is_empty()).then_some(filled.region);
    match state
        .node()
        .lookup_with(filled.number, region, letters(filled.vanity))
        .await
    {
        Ok(found) => {
            let basis = basis(&state);
            lookup_page(
                StatusCode::OK,
                &caller,
                &filled,
                &Answer::One(&found, &basis),
            )
        }
        Err(LookupError::Number { input, error }) => {
            let answer = Answer::Error(view::alert(
                Some("lookup-error"),
                &format!("“{input}” is not a number Sightline can look up: {error}."),
            ));
            lookup_page(StatusCode::BAD_REQUEST, &caller, &filled, &answer)
        }
        Err(LookupError::Store(e)) => store_failed(&caller, &filled, &e),
    }
}

/// Looks `inputs` up and renders them as one table, after charging the
/// caller's rate limit for each.
async fn check_many(
    state: &AppState,
    caller: &Caller,
    filled: &Filled<'_>,
    heading: &str,
    inputs: Vec<String>,
    skipped: Vec<&str>,
    offer: Option<ReportOffer<'_>>,
) -> Response {
    if let Err(e) = state.auth().charge(caller, inputs.len()) {
        return denied(&e, "/");
    }
    let region = (!filled.region.is_empty()).then(|| filled.region.to_owned());
    let results = state
        .node()
        .lookup_many(inputs.clone(), region, letters(false))
        .await;
    let mut found: Vec<Result<Lookup, String>> = Vec::with_capacity(results.len());
    for result in results {
        found.push(match result {
            Ok(l) => Ok(l),
            Err(LookupError::Number { error, .. }) => Err(error.to_string()),
            Err(LookupError::Store(e)) => return store_failed(caller, filled, &e),
        });
    }
    let rows = inputs
        .iter()
        .zip(&found)
        .map(|(input, result)| Checked {
            input,
            result: result.as_ref().map_err(Clone::clone),
        })
        .collect();
    let basis = basis(state);
    let answer = Answer::Many {
        heading,
        rows,
        basis: &basis,
        skipped,
        offer,
    };
    lookup_page(StatusCode::OK, caller, filled, &answer)
}

/// `POST /bulk`: several numbers, one per line.
pub async fn bulk(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    form: Result<Form<BulkForm>, FormRejection>,
) -> Response {
    let (caller, form) = match caller_and_form(
        &state,
        caller,
        form,
        "Type the numbers to check, one per line.",
    ) {
        Ok(both) => both,
        Err(refusal) => return refusal,
    };
    let filled = Filled {
        region: form.region.as_deref().unwrap_or("").trim(),
        numbers: form.numbers.trim(),
        ..Filled::default()
    };
    let mut inputs: Vec<String> = Vec::new();
    for line in filled
        .numbers
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
    {
        if !inputs.iter().any(|i| i == line) {
            inputs.push(line.to_owned());
        }
    }
    if inputs.len() > MAX_FORM_NUMBERS {
        let answer = Answer::Error(view::alert(
            Some("lookup-error"),
            &format!(
                "{} numbers: this form checks up to {MAX_FORM_NUMBERS} at a time (the API's POST /api/v1/lookup takes more).",
                inputs.len()
            ),
        ));
        return lookup_page(StatusCode::BAD_REQUEST, &caller, &filled, &answer);
    }
    let heading = format!("{} number(s) checked", inputs.len());
    check_many(&state, &caller, &filled, &heading, inputs, Vec::new(), None).await
}

/// `POST /message`: every phone number in a pasted message.
pub async fn message(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    form: Result<Form<MessageForm>, FormRejection>,
) -> Response {
    let (caller, form) = match caller_and_form(&state, caller, form, "Paste the message to check.")
    {
        Ok(both) => both,
        Err(refusal) => return refusal,
    };
    let filled = Filled {
        region: form.region.as_deref().unwrap_or("").trim(),
        message: &form.message,
        ..Filled::default()
    };
    let region = (!filled.region.is_empty()).then_some(filled.region);
    // Digit runs that are not numbers (dates, amounts, references) are
    // listed apart, not as failed lookups; a number written twice counts once.
    let mut numbers: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut skipped = Vec::new();
    for candidate in candidates_in(&form.message) {
        match parse_number(candidate, region) {
            Ok(parsed) if seen.contains(&parsed.e164) => {}
            Ok(parsed) => {
                seen.push(parsed.e164);
                numbers.push(candidate.to_owned());
            }
            Err(_) => skipped.push(candidate),
        }
    }
    let heading = format!("{} number(s) found in the message", numbers.len());
    // A caller that may submit is offered to report the message's numbers
    // as one campaign, with its links, sender and fingerprint.
    let offer = caller.has(Scope::Submit).then(|| ReportOffer {
        numbers: seen.iter().map(|e| e.as_str().to_owned()).collect(),
        urls: urls_in(&form.message)
            .into_iter()
            .take(MAX_OFFERED_URLS)
            .collect(),
        sender: sender_in(&form.message),
        message: &form.message,
        region: filled.region,
    });
    check_many(&state, &caller, &filled, &heading, numbers, skipped, offer).await
}

/// Links a pasted message's report carries at most: with the 1,000-block,
/// the sender, a campaign name and the fingerprint, a record's eight.
const MAX_OFFERED_URLS: usize = 4;

/// The form of `POST /report`.
#[derive(Debug, Deserialize)]
pub struct ReportForm {
    numbers: String,
    #[serde(default)]
    urls: String,
    region: Option<String>,
    message: Option<String>,
    kind: String,
    channel: String,
    brand: Option<String>,
    sender: Option<String>,
    campaign: Option<String>,
}

fn non_empty(text: Option<&str>) -> Option<String> {
    text.map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// `POST /report`: a pasted message's numbers, reported as one campaign
/// (links, sender, campaign name, the message's fingerprint). Needs the
/// submit scope.
pub async fn report(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    form: Result<Form<ReportForm>, FormRejection>,
) -> Response {
    let caller = match reader(&state, caller, "/") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let Ok(Form(form)) = form else {
        let body = view::reported(&Reported::Refused(vec!["the form was incomplete".into()]));
        return (
            StatusCode::BAD_REQUEST,
            page("Report", Some(&caller), &body),
        )
            .into_response();
    };
    let numbers: Vec<&str> = form
        .numbers
        .lines()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect();
    if let Err(e) = state
        .auth()
        .admit(&caller, Scope::Submit, numbers.len().max(1))
    {
        return denied(&e, "/");
    }
    let (Ok(kind), Ok(channel)) = (form.kind.parse(), form.channel.parse()) else {
        let body = view::reported(&Reported::Refused(vec!["unknown kind or channel".into()]));
        return (
            StatusCode::BAD_REQUEST,
            page("Report", Some(&caller), &body),
        )
            .into_response();
    };
    let urls: Vec<String> = form
        .urls
        .lines()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(str::to_owned)
        .collect();
    let batch: Vec<sightline_node::Submission> = numbers
        .iter()
        .map(|n| {
            let mut s = sightline_node::Submission::new(*n, kind);
            s.channel = channel;
            s.region = non_empty(form.region.as_deref());
            s.brand = non_empty(form.brand.as_deref());
            s.urls.clone_from(&urls);
            s.sender = non_empty(form.sender.as_deref());
            s.campaign = non_empty(form.campaign.as_deref());
            s.message = non_empty(form.message.as_deref());
            s
        })
        .collect();
    let (status, outcome) = match state.node().submit(batch).await {
        Ok(receipts) => (
            StatusCode::OK,
            Reported::Done(receipts.into_iter().map(|r| (r.number, r.seq)).collect()),
        ),
        Err(sightline_node::SubmitError::Invalid(items)) => (
            StatusCode::BAD_REQUEST,
            Reported::Refused(
                items
                    .into_iter()
                    .map(|i| format!("{}: {}", i.number, i.reason))
                    .collect(),
            ),
        ),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Reported::Refused(vec![e.to_string()]),
        ),
    };
    (
        status,
        page("Report", Some(&caller), &view::reported(&outcome)),
    )
        .into_response()
}

/// `GET /recent`. Never anonymous; raw numbers only for callers that may
/// see this organization's own submissions.
pub async fn recent(State(state): State<AppState>, caller: Result<Caller, ApiError>) -> Response {
    let caller = match reader(&state, caller, "/recent") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    if let Err(e) = caller.require_signed_in() {
        return denied(&e, "/recent");
    }
    let list = crate::api::recent_for(&state, &caller, 100).await.ok();
    page("Recent", Some(&caller), &view::recent(list.as_deref())).into_response()
}

/// `GET /campaigns`: the campaigns of the latest reports.
pub async fn campaigns(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
) -> Response {
    let caller = match reader(&state, caller, "/campaigns") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let list = match state.node().campaigns(None, 100).await {
        Ok(list) => Some(list),
        Err(e) => {
            tracing::error!(error = %e, "campaign list failed");
            None
        }
    };
    page(
        "Campaigns",
        Some(&caller),
        &view::campaigns(list.as_deref()),
    )
    .into_response()
}

/// The form of `POST /export`.
#[derive(Debug, Deserialize)]
pub struct ExportForm {
    /// A number (the lookup page's).
    #[serde(default)]
    numbers: Option<String>,
    /// A campaign id (the campaign page's).
    #[serde(default)]
    campaign: Option<String>,
    /// `stix` or `misp`.
    format: String,
}

/// `POST /export`: what a lookup or campaign page shows, downloaded as a
/// STIX 2.1 bundle or a MISP event (the API's export, for a signed-in
/// analyst: a campaign's raw numbers only for those who may see them).
pub async fn export(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    form: Result<Form<ExportForm>, FormRejection>,
) -> Response {
    let caller = match reader(&state, caller, "/") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    if let Err(e) = caller.require_signed_in() {
        return denied(&e, "/");
    }
    let refused = |status: StatusCode, text: &str| {
        (
            status,
            page(
                "Export",
                Some(&caller),
                &view::alert(Some("export-error"), text),
            ),
        )
            .into_response()
    };
    let Ok(Form(form)) = form else {
        return refused(StatusCode::BAD_REQUEST, "The export form was incomplete.");
    };
    let numbers: Vec<String> = form
        .numbers
        .iter()
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    if (numbers.is_empty() && form.campaign.is_none())
        || !["stix", "misp"].contains(&form.format.as_str())
    {
        return refused(
            StatusCode::BAD_REQUEST,
            "Choose a STIX bundle or a MISP event of a number or a campaign.",
        );
    }
    if let Err(e) = state
        .auth()
        .admit(&caller, Scope::Read, numbers.len().max(1))
    {
        return denied(&e, "/");
    }
    let found = state
        .node()
        .export(
            numbers,
            None,
            form.campaign.as_deref(),
            caller.sees_own_numbers(),
        )
        .await;
    let picture = match found {
        Ok(Some(p)) => p,
        Ok(None) => {
            return refused(
                StatusCode::NOT_FOUND,
                "No campaign has this id on this node any more.",
            )
        }
        Err(LookupError::Number { input, error }) => {
            return refused(
                StatusCode::BAD_REQUEST,
                &format!("“{input}” is not a number: {error}."),
            )
        }
        Err(LookupError::Store(e)) => {
            tracing::error!(error = %e, "export failed");
            return refused(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Could not read the store; see the node's log.",
            );
        }
    };
    let (body, media_type, name) = if form.format == "stix" {
        (
            sightline_node::interop::stix::bundle(&picture),
            crate::api::STIX_MEDIA_TYPE,
            "sightline.stix.json",
        )
    } else {
        (
            sightline_node::interop::misp::event(&picture),
            "application/json",
            "sightline.misp.json",
        )
    };
    (
        [
            (header::CONTENT_TYPE, media_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        body.to_string(),
    )
        .into_response()
}

/// `GET /campaigns/{id}`. Never anonymous; raw numbers only for callers
/// that may see this organization's own submissions.
pub async fn campaign(
    State(state): State<AppState>,
    caller: Result<Caller, ApiError>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> Response {
    let here = format!("/campaigns/{id}");
    let caller = match reader(&state, caller, &here) {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    if let Err(e) = caller.require_signed_in() {
        return denied(&e, &here);
    }
    match state.node().campaign(&id).await {
        Ok(mut found) => {
            if !caller.sees_own_numbers() {
                for r in found.iter_mut().flat_map(|c| c.reports.iter_mut()) {
                    r.number = None;
                }
            }
            let status = if found.is_some() {
                StatusCode::OK
            } else {
                StatusCode::NOT_FOUND
            };
            (
                status,
                page("Campaign", Some(&caller), &view::campaign(found.as_ref())),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "campaign failed");
            let body = view::alert(None, "Could not read the store; see the node's log.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                page("Campaign", Some(&caller), &body),
            )
                .into_response()
        }
    }
}

/// `GET /peers`.
pub async fn peers(State(state): State<AppState>, caller: Result<Caller, ApiError>) -> Response {
    let caller = match reader(&state, caller, "/peers") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    let list = state.node().peers().await;
    page("Peers", Some(&caller), &view::peers(&list)).into_response()
}

/// `GET /status`.
pub async fn status(State(state): State<AppState>, caller: Result<Caller, ApiError>) -> Response {
    let caller = match reader(&state, caller, "/status") {
        Ok(c) => c,
        Err(refusal) => return refusal,
    };
    match state.node().status().await {
        Ok(s) => page("Status", Some(&caller), &view::status(&s)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "status failed");
            let body = view::alert(None, "Could not read the status; see the node's log.");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                page("Status", Some(&caller), &body),
            )
                .into_response()
        }
    }
}
