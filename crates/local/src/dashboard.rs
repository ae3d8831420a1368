//! The dashboard that `ripcord up` serves at `/`: one server-rendered page with every
//! service, its live deployment (weights bar, step, gates, approvals) and the recent
//! history as a timeline, each deployment with an SVG chart of the new slot's weight
//! and 5xx rate over time. No JavaScript build step: the page reloads itself every
//! two seconds (`<meta http-equiv="refresh">`).
//!
//! The Approve and Roll back buttons are forms posting to
//! `/ui/deployments/{id}/{approve|rollback}` with the local token, which the page
//! carries only when it was opened with `/?token=...` (as `ripcord up` prints it).
//! The token is compared in constant time; without it the buttons are not shown and
//! the form posts are refused with 401.

use std::fmt::Write as _;
use std::time::Duration;

use http::{Method, Request, Response, StatusCode, header};
use ripcord_api::control::constant_time_eq;
use ripcord_api::error::ApiError;
use ripcord_core::deployment::{CommandKind, Deployment, PauseReason, State};
use ripcord_core::domain::{DeploymentId, Slot};
use ripcord_core::history::{Actor, Event};
use ripcord_core::ports::Store as _;
use ripcord_core::time::Timestamp;

use crate::runtime::Shared;

/// How many past deployments the timeline shows.
const TIMELINE_LENGTH: usize = 8;

/// How far back the timeline looks.
const TIMELINE_WINDOW: Duration = Duration::from_secs(7 * 86_400);

/// The chart's width and height, in SVG units.
const CHART_W: f64 = 600.0;
const CHART_H: f64 = 120.0;

/// Answers the dashboard's routes; `None` for any other path.
pub(crate) async fn route(shared: &Shared, request: &Request<Vec<u8>>) -> Option<Response<String>> {
    let path = request.uri().path();
    if path == "/" {
        if request.method() != Method::GET {
            return Some(method_not_allowed("GET /"));
        }
        let token = query_value(request.uri().query().unwrap_or_default(), "token")
            .filter(|t| constant_time_eq(t.as_bytes(), shared.token.as_bytes()));
        return Some(match page(shared, token.is_some()).await {
            Ok(html) => html_response(html),
            Err(error) => error.into_response(),
        });
    }
    let rest = path.strip_prefix("/ui/deployments/")?;
    let (id, action) = rest.split_once('/')?;
    if request.method() != Method::POST {
        return Some(method_not_allowed("POST"));
    }
    Some(match button(shared, id, action, request.body()).await {
        Ok(()) => Response::builder()
            .status(StatusCode::SEE_OTHER)
            .header(header::LOCATION, format!("/?token={}", shared.token))
            .body(String::new())
            .expect("a status and a location make a valid response"),
        Err(error) => error.into_response(),
    })
}

fn method_not_allowed(what: &str) -> Response<String> {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("use {what}"),
    )
    .into_response()
}

fn query_value<'q>(query: &'q str, key: &str) -> Option<&'q str> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

fn html_response(body: String) -> Response<String> {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/html; charset=utf-8")
        .header(header::CACHE_CONTROL, "no-store")
        // The token travels in the page's URL; never send it on to another origin.
        .header("referrer-policy", "no-referrer")
        .body(body)
        .expect("a status and headers make a valid response")
}

/// A button's form post: checks the token, queues the command and runs a pass.
async fn button(shared: &Shared, id: &str, action: &str, body: &[u8]) -> Result<(), ApiError> {
    let form = String::from_utf8_lossy(body);
    let token = query_value(&form, "token").unwrap_or_default();
    if shared.token.is_empty() || !constant_time_eq(token.as_bytes(), shared.token.as_bytes()) {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the dashboard's buttons need the local token: open the URL that `ripcord up` printed",
        ));
    }
    let id = DeploymentId::new(id).map_err(|e| ApiError::bad_request("deployment_id", e.0))?;
    let driver = shared.driver();
    let d = driver
        .store
        .deployment(&id)
        .await
        .map_err(ApiError::store)?
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_deployment",
                format!("no deployment {id}"),
            )
        })?;
    let kind = match (action, d.state) {
        ("rollback", _) => CommandKind::Rollback,
        ("approve", State::Paused { step, .. }) => CommandKind::Approve { step },
        ("approve", state) => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "not_awaiting_approval",
                format!("deployment {id} is {state}, not waiting for an approval"),
            ));
        }
        (other, _) => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_command",
                format!("unknown button {other:?}: the dashboard has approve and rollback"),
            ));
        }
    };
    if !d.is_active() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "finished",
            format!("deployment {id} has already {}", d.state.name()),
        ));
    }
    let actor = Actor::Cli {
        user: "dashboard".to_string(),
    };
    driver
        .store
        .enqueue_command(
            &id,
            actor,
            kind,
            Some("from the dashboard".into()),
            driver.clock.now(),
        )
        .await
        .map_err(ApiError::store)?;
    let _ = driver.reconcile(&id).await;
    shared.wake.notify_one();
    Ok(())
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:2rem;color:#1d2330;background:#f7f8fa}\
h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:2rem}\
.card{background:#fff;border:1px solid #d9dde5;border-radius:8px;padding:1rem;margin:1rem 0}.card h2{margin-top:0}\
.bar{display:flex;height:28px;border-radius:4px;overflow:hidden;font-size:.85rem;color:#fff;font-weight:600}\
.bar div{display:flex;align-items:center;justify-content:center;min-width:2px}\
.blue{background:#2f6fdb}.green{background:#2a9d5c}\
.state{font-weight:600}.muted{color:#667085}\
table{border-collapse:collapse;width:100%;font-size:.85rem}td{padding:2px 6px;border-bottom:1px solid #eef0f4;vertical-align:top;white-space:nowrap}td:last-child{white-space:normal}\
button{font-size:1rem;padding:.4rem 1rem;margin-right:.5rem;border-radius:4px;border:1px solid #888;cursor:pointer}\
button.rollback{background:#c62828;color:#fff;border-color:#c62828}";

async fn page(shared: &Shared, with_buttons: bool) -> Result<String, ApiError> {
    let store = &shared.store;
    let driver = shared.driver();
    let active = store.active_deployments().await.map_err(ApiError::store)?;
    let mut html = String::new();
    let _ = write!(
        html,
        "<!doctype html><html><head><meta charset=\"utf-8\"><meta http-equiv=\"refresh\" content=\"2\">\
         <title>Ripcord local</title><style>{STYLE}</style></head><body><h1>Ripcord: local mode</h1>"
    );
    for spec in shared.config.services.values() {
        let served = driver.providers.router(spec).read_weights(spec).await.ok();
        let _ = write!(
            html,
            "<div class=\"card\" id=\"service-{name}\"><h2>{name}</h2>",
            name = escape(spec.name.as_str())
        );
        if let Some(weights) = served {
            let _ = write!(
                html,
                "<p class=\"muted\">Served now:</p>{}",
                weights_bar(
                    weights.of(Slot::Blue).get(),
                    weights.of(Slot::Green).get(),
                    "served"
                )
            );
        }
        match active.iter().find(|d| d.service == spec.name) {
            Some(d) => live_deployment(&mut html, d, with_buttons, &shared.token),
            None => {
                html.push_str("<p class=\"muted\" id=\"no-active\">No deployment in progress.</p>")
            }
        }
        html.push_str("</div>");
    }
    html.push_str("<h2>History</h2>");
    let since = driver.clock.now().minus(TIMELINE_WINDOW);
    let mut recent = store
        .deployments_since(None, since)
        .await
        .map_err(ApiError::store)?;
    recent.reverse();
    recent.truncate(TIMELINE_LENGTH);
    if recent.is_empty() {
        html.push_str("<p class=\"muted\">No deployments yet: send one to POST /deployments.</p>");
    }
    for d in &recent {
        let events = store.events(&d.id).await.map_err(ApiError::store)?;
        let end = d.finished_at.unwrap_or_else(|| driver.clock.now());
        let errors = error_series(shared, d, end);
        let _ = write!(
            html,
            "<div class=\"card history\" id=\"history-{id}\"><b>{service} {version}</b> \
             <span class=\"state\">{state}</span> <span class=\"muted\">{id}, {at}</span>{chart}<table>",
            id = escape(d.id.as_str()),
            service = escape(d.service.as_str()),
            version = escape(&d.release.version),
            state = state_text(d.state),
            at = d.created_at,
            chart = chart(d, &events, &errors, end),
        );
        for e in &events {
            let weights = e
                .weights_after
                .map(|w| format!("{}% new", w.of(d.canary()).get()))
                .unwrap_or_default();
            let _ = write!(
                html,
                "<tr><td class=\"muted\">+{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                ripcord_core::time::format_duration(e.at.since(d.created_at)),
                escape(e.kind.name()),
                weights,
                escape(&e.reason)
            );
        }
        html.push_str("</table></div>");
    }
    html.push_str("</body></html>");
    Ok(html)
}

/// The state in words for a person, without the engine's internal names.
fn state_text(state: State) -> String {
    match state {
        State::Paused { reason, .. } => match reason {
            PauseReason::AwaitingApproval => "waiting for approval",
            PauseReason::AwaitingResume => "paused until resumed",
            PauseReason::Inconclusive => "paused: the judge was inconclusive",
            PauseReason::Manual => "paused by hand",
        }
        .to_string(),
        other => other.name().replace('_', " "),
    }
}

fn weights_bar(blue: u8, green: u8, id: &str) -> String {
    let part = |slot: &str, share: u8| {
        if share == 0 {
            String::new()
        } else {
            format!("<div class=\"{slot}\" style=\"width:{share}%\">{slot} {share}%</div>")
        }
    };
    format!(
        "<div class=\"bar\" id=\"{id}\" data-blue=\"{blue}\" data-green=\"{green}\">{}{}</div>",
        part("blue", blue),
        part("green", green)
    )
}

fn live_deployment(html: &mut String, d: &Deployment, with_buttons: bool, token: &str) {
    let blue = d.desired.of(Slot::Blue).get();
    let green = d.desired.of(Slot::Green).get();
    let step = d
        .state
        .step()
        .map(|s| format!("at step {} of {}", s + 1, d.spec.plan.steps.len()))
        .unwrap_or_default();
    let _ = write!(
        html,
        "<div id=\"live\" data-deployment=\"{id}\"><p><b>{version}</b> by {author} onto {canary}: \
         <span class=\"state\" id=\"state\">{state}</span> {step}</p>{bar}",
        id = escape(d.id.as_str()),
        version = escape(&d.release.version),
        author = escape(&d.release.author),
        canary = d.canary(),
        state = state_text(d.state),
        bar = weights_bar(blue, green, "desired"),
    );
    let gates = [
        ("health", true),
        ("smoke", !d.spec.smoke.is_empty()),
        ("alarms", !d.spec.alarms.names.is_empty()),
        ("metrics", !d.spec.metrics.is_empty()),
        ("judge", d.spec.judge.is_some()),
    ];
    let armed: Vec<&str> = gates
        .iter()
        .filter(|(_, on)| *on)
        .map(|(n, _)| *n)
        .collect();
    let _ = write!(html, "<p class=\"muted\">Gates: {}", armed.join(", "));
    if !d.spec.alarms.names.is_empty() {
        let _ = write!(
            html,
            " (alarms {})",
            escape(&d.spec.alarms.names.join(", "))
        );
    }
    html.push_str("</p>");
    if !d.approvals.is_empty() {
        let names: Vec<String> = d.approvals.iter().map(|a| escape(&a.name)).collect();
        let _ = write!(html, "<p>Approved by {}</p>", names.join(", "));
    }
    if with_buttons {
        let id = escape(d.id.as_str());
        let token = escape(token);
        if matches!(d.state, State::Paused { .. }) {
            let _ = write!(
                html,
                "<form method=\"post\" action=\"/ui/deployments/{id}/approve\" style=\"display:inline\">\
                 <input type=\"hidden\" name=\"token\" value=\"{token}\"><button id=\"approve\">Approve</button></form>"
            );
        }
        let _ = write!(
            html,
            "<form method=\"post\" action=\"/ui/deployments/{id}/rollback\" style=\"display:inline\">\
             <input type=\"hidden\" name=\"token\" value=\"{token}\"><button class=\"rollback\" id=\"rollback\">Roll back</button></form>"
        );
    }
    html.push_str("</div>");
}

/// The new slot's 5xx rate in buckets over the deployment, from the proxy's metrics
/// (which keep the last ten minutes): `(bucket start, percent)`.
fn error_series(shared: &Shared, d: &Deployment, end: Timestamp) -> Vec<(Timestamp, f64)> {
    let Some(proxy) = shared.providers.proxies.get(&d.service) else {
        return Vec::new();
    };
    let span = end.since(d.created_at).max(Duration::from_secs(1));
    let bucket = (span / 40).max(Duration::from_secs(1));
    let mut series = Vec::new();
    let mut at = d.created_at;
    while at < end {
        let next = at.plus(bucket);
        let m = proxy.metrics(d.canary(), at, next);
        if m.requests > 0 {
            series.push((at, m.errors_5xx as f64 * 100.0 / m.requests as f64));
        }
        at = next;
    }
    series
}

/// The new slot's weight (a step line) and 5xx rate (red) over the deployment.
fn chart(d: &Deployment, events: &[Event], errors: &[(Timestamp, f64)], end: Timestamp) -> String {
    let span = end.since(d.created_at).as_secs_f64().max(1.0);
    let x = |at: Timestamp| at.since(d.created_at).as_secs_f64() / span * CHART_W;
    let y = |percent: f64| CHART_H - percent.clamp(0.0, 100.0) / 100.0 * CHART_H;
    let canary = d.canary();
    let mut weight = String::new();
    let mut last = 0.0;
    let _ = write!(weight, "0,{:.1}", y(0.0));
    for e in events {
        if let Some(w) = e.weights_after {
            let share = f64::from(w.of(canary).get());
            let _ = write!(
                weight,
                " {:.1},{:.1} {:.1},{:.1}",
                x(e.at),
                y(last),
                x(e.at),
                y(share)
            );
            last = share;
        }
    }
    let _ = write!(weight, " {:.1},{:.1}", CHART_W, y(last));
    let errors: Vec<String> = errors
        .iter()
        .map(|(at, rate)| format!("{:.1},{:.1}", x(*at), y(*rate)))
        .collect();
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {CHART_W} {h}\" width=\"{CHART_W}\" height=\"{h}\" role=\"img\" \
         aria-label=\"weight of {canary} and its 5xx rate over time\">\
         <rect x=\"0\" y=\"0\" width=\"{CHART_W}\" height=\"{CHART_H}\" fill=\"#fafbfc\" stroke=\"#d9dde5\"/>\
         <polyline points=\"{weight}\" fill=\"none\" stroke=\"#2a9d5c\" stroke-width=\"2\"/>\
         <polyline points=\"{errors}\" fill=\"none\" stroke=\"#c62828\" stroke-width=\"1.5\"/>\
         <text x=\"4\" y=\"{label}\" font-size=\"11\" fill=\"#2a9d5c\">{canary} weight %</text>\
         <text x=\"120\" y=\"{label}\" font-size=\"11\" fill=\"#c62828\">{canary} 5xx %</text></svg>",
        h = CHART_H + 16.0,
        label = CHART_H + 13.0,
        errors = errors.join(" "),
    )
}
