//! The pages' markup, as maud templates: compile-checked, and every value
//! interpolated with `(…)` is HTML-escaped by maud (there is no `PreEscaped`
//! here). One layout wraps every page. Pure: the handlers in `pages.rs`
//! fetch, these render.

use maud::{html, Markup, DOCTYPE};
use sightline_node::campaign::State;
use sightline_node::network::PeerInfo;
use sightline_node::node::{CampaignDetail, CampaignSummary, RecentSighting, Status};
use sightline_node::reputation::{BAND_HIGH, BAND_LOW, BAND_MEDIUM};
use sightline_node::Lookup;
use sightline_protocol::Verdict;
use time::macros::format_description;
use time::OffsetDateTime;

use crate::auth::{Caller, Via};

/// Unix seconds as `YYYY-MM-DD HH:MM UTC`.
pub fn utc(ts: u64) -> String {
    let format = format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    i64::try_from(ts)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
        .and_then(|d| d.format(format).ok())
        .unwrap_or_else(|| "—".to_owned())
}

fn or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "—".to_owned()
    } else {
        items.join(", ")
    }
}

/// The page around `body`: head, header with navigation for a signed-in
/// caller, main.
pub(crate) fn layout(title: &str, caller: Option<&Caller>, body: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Sightline" }
                link rel="stylesheet" href="/style.css";
            }
            body {
                header {
                    a.brand href="/" { "Sightline" }
                    @if let Some(c) = caller {
                        nav {
                            a href="/" { "Lookup" }
                            a href="/recent" { "Recent" }
                            a href="/campaigns" { "Campaigns" }
                            a href="/peers" { "Peers" }
                            a href="/status" { "Status" }
                        }
                        @if c.via == Via::Session {
                            form.sign-out method="post" action="/logout" {
                                span.who { (c.name) }
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main { (body) }
            }
        }
    }
}

/// An error line that screen readers announce.
pub(crate) fn alert(id: Option<&str>, text: &str) -> Markup {
    html! { p.error role="alert" id=[id] { (text) } }
}

/// The sign-in form: a password field for a token, posted (never in a URL).
pub(crate) fn sign_in(error: Option<&str>, next: &str) -> Markup {
    html! {
        h1 { "Sign in" }
        @if let Some(e) = error { (alert(Some("sign-in-error"), e)) }
        form.lookup method="post" action="/login" {
            label for="token" { "Access token" }
            input #token name="token" type="password" autocomplete="current-password" required;
            input type="hidden" name="next" value=(next);
            button type="submit" { "Sign in" }
        }
        p.note {
            "Use the analyst token from this node's " code { "sightline.toml" }
            " (" code { "sightline init" } " printed it). The sign-in lasts until you sign out or it expires; the token never appears in a URL."
        }
    }
}

/// A refusal that is not "sign in first".
pub(crate) fn denied(detail: &str) -> Markup {
    html! { h1 { "Access denied" } (alert(None, detail)) }
}

/// What the lookup forms were filled with, to show them again.
#[derive(Debug, Default)]
pub(crate) struct Filled<'a> {
    pub(crate) number: &'a str,
    pub(crate) region: &'a str,
    pub(crate) vanity: bool,
    pub(crate) numbers: &'a str,
    pub(crate) message: &'a str,
}

/// What this node's scores rest on, for the explanation under a result.
pub(crate) struct Basis<'a> {
    /// This node's organization.
    pub(crate) org: &'a str,
    /// Decay half-lives by kind, days.
    pub(crate) half_life_days: Vec<(sightline_protocol::Kind, f64)>,
}

/// One line of a bulk or message lookup: the text as written and what it gave.
pub(crate) struct Checked<'a> {
    pub(crate) input: &'a str,
    pub(crate) result: Result<&'a Lookup, String>,
}

/// What to show under the forms.
pub(crate) enum Answer<'a> {
    /// Nothing asked yet.
    Nothing,
    /// The request could not be answered.
    Error(Markup),
    /// One number.
    One(&'a Lookup, &'a Basis<'a>),
    /// Several numbers (a list, or those found in a message).
    Many {
        heading: &'a str,
        rows: Vec<Checked<'a>>,
        basis: &'a Basis<'a>,
        /// Digit runs of a message that were not valid numbers.
        skipped: Vec<&'a str>,
        /// For a pasted message and a caller that may submit: the offer to
        /// report its numbers as one campaign.
        offer: Option<ReportOffer<'a>>,
    },
}

/// What a pasted message gives to report as one campaign.
pub(crate) struct ReportOffer<'a> {
    /// Its valid numbers, E.164.
    pub(crate) numbers: Vec<String>,
    /// Its links, as written.
    pub(crate) urls: Vec<&'a str>,
    /// The sender of a pasted email, if it names one.
    pub(crate) sender: Option<&'a str>,
    /// The message, to fingerprint.
    pub(crate) message: &'a str,
    /// The default region the numbers were read with.
    pub(crate) region: &'a str,
}

/// What reporting a pasted message did.
pub(crate) enum Reported {
    /// Signed and shared: each number with its seq.
    Done(Vec<(String, u64)>),
    /// Refused, with why (per item or as a whole).
    Refused(Vec<String>),
}

fn region_field(id: &str, value: &str) -> Markup {
    html! {
        label for=(id) { "Default region " small { "(for national numbers, e.g. US)" } }
        input id=(id) name="region" type="text" maxlength="2" value=(value);
    }
}

/// The lookup page: one number, a list of numbers, or a pasted message.
pub(crate) fn lookup(filled: &Filled<'_>, answer: &Answer<'_>) -> Markup {
    html! {
        h1 { "Look up a number" }
        form.lookup method="post" action="/" {
            label for="number" { "Phone number" }
            input #number name="number" type="text" inputmode="tel" autocomplete="off"
                placeholder="+1 415 555 0134" value=(filled.number) required;
            (region_field("region", filled.region))
            label for="vanity" { "Vanity number " small { "(read letters as keypad digits, e.g. 1-800-FLOWERS)" } }
            input #vanity name="vanity" type="checkbox" value="on" checked[filled.vanity];
            button type="submit" { "Look up" }
        }
        @match answer {
            Answer::Nothing => {},
            Answer::Error(markup) => (markup),
            Answer::One(l, basis) => (one(l, basis)),
            Answer::Many { heading, rows, basis, skipped, offer } => (many(heading, rows, basis, skipped, offer.as_ref())),
        }
        details.more open[!filled.message.is_empty()] {
            summary { "Check a message" }
            form.lookup.wide method="post" action="/message" {
                label for="message" { "Message text " small { "(an SMS or email as received)" } }
                textarea #message name="message" rows="6" maxlength="20000" required { (filled.message) }
                (region_field("message-region", filled.region))
                button type="submit" { "Find and check its numbers" }
            }
        }
        details.more open[!filled.numbers.is_empty()] {
            summary { "Check several numbers" }
            form.lookup.wide method="post" action="/bulk" {
                label for="numbers" { "Numbers " small { "(one per line, up to 1,000)" } }
                textarea #numbers name="numbers" rows="6" required { (filled.numbers) }
                (region_field("numbers-region", filled.region))
                button type="submit" { "Check these numbers" }
            }
        }
    }
}

fn badge(l: &Lookup, id: Option<&str>) -> Markup {
    let band = l.score.band.as_str();
    html! {
        span class=(format!("badge band-{band}")) id=[id] data-band=(band) { (band.to_uppercase()) }
    }
}

/// How the score was reached, in this node's terms.
fn explanation(basis: &Basis<'_>) -> Markup {
    html! {
        details.explain {
            summary { "How this score is computed" }
            p {
                "Each organization's latest report counts once, with the strength "
                em { "trust × confidence × decay" } ". Decay halves every half-life of the report's kind ("
                (basis.half_life_days.iter().map(|(k, d)| format!("{k} {d:.0} days")).collect::<Vec<_>>().join(", "))
                ") since the organization first saw the number: re-reporting it does not refresh its weight, "
                "another organization's report counts from its own first sighting. "
                "Malicious reports combine as " em { "p = 1 − Π(1 − strength)" }
                ", so every independent trusted organization raises the score and it never passes 1; "
                "false-positive reports combine the same way into " em { "q" }
                " and pull it down: " em { "score = p × (1 − q)" } ". Withdrawn reports count zero."
            }
            p {
                "Bands: none below " (format!("{BAND_LOW:.2}")) ", low below " (format!("{BAND_MEDIUM:.2}"))
                ", medium below " (format!("{BAND_HIGH:.2}")) ", high from there."
            }
            p {
                "Trust is this node's (" (basis.org) "): its own reports count 1.0 and the others as "
                "network.toml and this node's overrides say (see Peers). Another member's node "
                "weighs organizations with its own trust settings and may show a different score "
                "for the same reports."
            }
        }
    }
}

fn one(l: &Lookup, basis: &Basis<'_>) -> Markup {
    let s = &l.score;
    let observations: u64 = s
        .reports
        .iter()
        .filter(|r| r.claim.verdict == Verdict::Malicious)
        .map(|r| u64::from(r.claim.count))
        .sum();
    let malicious = s
        .reports
        .iter()
        .any(|r| r.claim.verdict == Verdict::Malicious);
    html! {
        section.result aria-live="polite" {
            h2 { (l.number) }
            p.verdict {
                (badge(l, Some("verdict"))) " "
                span.score { "score " strong #score { (format!("{:.2}", s.score)) } }
                " · reported malicious by " strong { (s.orgs) } " trusted organization(s)"
                " · " strong #observations { (observations) } " observation(s)"
            }
            @if !malicious && (l.block_activity > 0 || l.neighbours.as_ref().is_some_and(|n| n.block1000 > 0)) {
                p.warning role="alert" #block-warning {
                    "No member reports this number as malicious, but "
                    strong { (l.block_activity) } " other number(s) in its 100-block (the same digits but the last two)"
                    @if let Some(n) = &l.neighbours {
                        " and " strong #block1000-activity { (n.block1000) } " in its 1,000-block (all but the last three)"
                    }
                    " were reported malicious in the last 30 days. Scam operations rotate through consecutive "
                    "numbers: treat this one with suspicion."
                }
            }
            @for p in &s.protected_by {
                p.warning.protected role="alert" #protected {
                    "Protected number: " strong { (p.org) } " operates it ("
                    (p.role) "). "
                    @if p.role == sightline_protocol::Role::InboundOnly {
                        "It never calls or messages anyone: calls and messages from it are spoofed. "
                    } @else {
                        "Reports of it may be spoofing of a legitimate caller. "
                    }
                    "Do not block it; warn about the impersonation."
                }
            }
            @if let Some(c) = &l.campaign {
                (campaign_box(c))
            }
            dl.facts {
                dt { "Line type" } dd { (l.line_type) }
                dt { "Country" } dd { (l.country) " (+" (l.cc) ")" }
                dt { "First seen" } dd { (s.first_seen.map_or_else(|| "—".into(), utc)) }
                dt { "Last seen" } dd { (s.last_seen.map_or_else(|| "—".into(), utc)) }
                dt { "Kinds" } dd { (or_dash(&s.kinds.iter().map(ToString::to_string).collect::<Vec<_>>())) }
                dt { "Channels" } dd { (or_dash(&s.channels.iter().map(ToString::to_string).collect::<Vec<_>>())) }
                dt { "Brands" } dd { (or_dash(&s.brands.iter().cloned().collect::<Vec<_>>())) }
                dt { "Same 100-block (30 days)" } dd #block-activity { (l.block_activity) " number(s) reported" }
            }
            @if s.reports.is_empty() {
                p #no-reports {
                    "No member has reported this number. That is not proof that it is safe: "
                    "members see only what reaches them, and a new scam number has no reports yet."
                }
            } @else {
                table {
                    caption { "Who reported it" }
                    thead { tr {
                        th { "Organization" } th { "Verdict" } th { "Kind" } th { "Channel" } th { "Brand" }
                        th { "Confidence" } th { "Observations" } th { "Trust" } th { "Decay" } th { "Weight" } th { "Last seen" }
                    } }
                    tbody {
                        @for r in &s.reports {
                            tr class=(verdict_class(r.claim.verdict)) {
                                td { (r.org) } td { (r.claim.verdict) } td { (r.claim.kind) } td { (r.claim.channel) }
                                td { (r.claim.brand.as_deref().unwrap_or("—")) }
                                td { (r.claim.confidence) } td { (r.claim.count) }
                                td { (format!("{:.2}", r.trust)) } td { (format!("{:.2}", r.decay)) }
                                td { (format!("{:+.2}", r.weight)) } td { (utc(r.last_seen)) }
                            }
                        }
                    }
                }
                p.note.legend {
                    span.false-positive { "Green rows" } " are false-positive reports: the organization says the number is not malicious, and they lower the score. "
                    span.withdrawn { "Struck-through rows" } " are withdrawn reports: they count zero. "
                    "Weight is each report's signed contribution; observations are how often the organization saw the number."
                }
            }
            @if !s.reports.is_empty() && s.protected_by.is_empty() {
                (export_form("numbers", &l.number))
            }
            (explanation(basis))
        }
    }
}

/// Buttons that download what is shown as a STIX 2.1 bundle or a MISP
/// event (posted: the number never goes in a URL).
fn export_form(field: &str, value: &str) -> Markup {
    html! {
        form.export #export method="post" action="/export" {
            input type="hidden" name=(field) value=(value);
            "Send to another tool: "
            button type="submit" name="format" value="stix" { "STIX 2.1 bundle (OpenCTI)" }
            " "
            button type="submit" name="format" value="misp" { "MISP event" }
        }
    }
}

/// The campaign a looked-up number belongs to.
fn campaign_box(c: &CampaignSummary) -> Markup {
    let href = format!("/campaigns/{}", c.id);
    html! {
        aside.campaign #campaign data-state=(state_name(c.state)) {
            h3 { "Part of a campaign" }
            p {
                "Linked to " strong #campaign-numbers { (c.numbers) } " number(s)"
                @if !c.complete { " (at least: the operation is larger than one lookup explores)" }
                " in " (c.blocks) " block(s), reported by " (c.orgs.iter().cloned().collect::<Vec<_>>().join(", "))
                ", from " (utc(c.first_seen)) " to " (utc(c.last_seen)) ". State: "
                strong { (state_name(c.state)) } ". Tied in by "
                (c.links.iter().map(|l| link_name(l)).collect::<Vec<_>>().join(", ")) "."
            }
            p { a #campaign-link href=(href) { "Open the campaign" } }
        }
    }
}

fn state_name(state: State) -> &'static str {
    match state {
        State::Rising => "rising",
        State::Active => "active",
        State::Cooling => "cooling",
        State::Dormant => "dormant",
    }
}

/// A link kind as people say it.
fn link_name(kind: &str) -> &str {
    match kind {
        "url_domain" => "a link's domain",
        "sender" => "the sender",
        "script" => "the message text",
        "campaign" => "an analyst's campaign tag",
        "block" => "activity in its 100-block",
        other => other,
    }
}

/// The campaigns of the latest reports; `None` if the store could not be read.
pub(crate) fn campaigns(list: Option<&[CampaignSummary]>) -> Markup {
    html! {
        h1 { "Campaigns" }
        @match list {
            None => (alert(None, "Could not read the store; see the node's log.")),
            Some([]) => p #no-campaigns { "No campaign among the latest reports: no two reported numbers are linked yet." },
            Some(list) => {
                table #campaigns {
                    thead { tr {
                        th { "Numbers" } th { "Blocks" } th { "State" } th { "Organizations" } th { "Brands" }
                        th { "Kinds" } th { "First report" } th { "Last report" }
                    } }
                    tbody {
                        @for c in list {
                            tr data-state=(state_name(c.state)) {
                                td { a href=(format!("/campaigns/{}", c.id)) { (c.numbers) @if !c.complete { "+" } } }
                                td { (c.blocks) } td { (state_name(c.state)) }
                                td { (or_dash(&c.orgs.iter().cloned().collect::<Vec<_>>())) }
                                td { (or_dash(&c.brands.iter().cloned().collect::<Vec<_>>())) }
                                td { (or_dash(&c.kinds.iter().map(ToString::to_string).collect::<Vec<_>>())) }
                                td { (utc(c.first_seen)) } td { (utc(c.last_seen)) }
                            }
                        }
                    }
                }
                p.note {
                    "Campaigns among the latest 2,000 stored reports, largest first. A campaign is the numbers "
                    "linked by what their trusted reports share; open one to see its numbers and links."
                }
            }
        }
    }
}

/// A campaign's page: what it is, when it ran, and which links join which numbers.
pub(crate) fn campaign(c: Option<&CampaignDetail>) -> Markup {
    let Some(c) = c else {
        return html! {
            h1 { "Campaign" }
            (alert(Some("no-campaign"), "No campaign has this id on this node: its reports may have been withdrawn or purged."))
        };
    };
    let s = &c.summary;
    let kinds = ["url_domain", "sender", "script", "campaign", "block"];
    let mut numbers: Vec<(&str, Option<&str>, &[String])> = Vec::new();
    for r in &c.reports {
        if !numbers.iter().any(|(h, _, _)| *h == r.number_hash) {
            numbers.push((&r.number_hash, r.number.as_deref(), &r.links));
        }
    }
    let mut blocks: Vec<(&str, usize)> = Vec::new();
    for r in &c.reports {
        match blocks.iter_mut().find(|(b, _)| *b == r.block) {
            Some(slot) => slot.1 += 1,
            None => blocks.push((&r.block, 1)),
        }
    }
    html! {
        h1 { "Campaign" }
        p.verdict data-state=(state_name(s.state)) {
            strong #campaign-numbers { (s.numbers) } " number(s)"
            @if !s.complete { " (at least)" }
            " · " (s.blocks) " block(s) · " (s.orgs.len()) " organization(s) · "
            strong #campaign-state { (state_name(s.state)) }
        }
        dl.facts {
            dt { "First report" } dd { (utc(s.first_seen)) }
            dt { "Last report" } dd { (utc(s.last_seen)) }
            dt { "Organizations" } dd { (or_dash(&s.orgs.iter().cloned().collect::<Vec<_>>())) }
            dt { "Brands" } dd { (or_dash(&s.brands.iter().cloned().collect::<Vec<_>>())) }
            dt { "Kinds" } dd { (or_dash(&s.kinds.iter().map(ToString::to_string).collect::<Vec<_>>())) }
            dt { "Channels" } dd { (or_dash(&s.channels.iter().map(ToString::to_string).collect::<Vec<_>>())) }
            dt { "Id" } dd.hash { (s.id) }
        }
        (export_form("campaign", &s.id))
        table #campaign-links {
            caption { "Which links join which numbers (the values never leave the reporting node: only their keyed hashes are shared)" }
            thead { tr { th { "Number" } @for k in kinds { th { (link_name(k)) } } } }
            tbody {
                @for (hash, shown, links) in &numbers {
                    tr data-number=(hash) {
                        td { @match shown {
                            Some(n) => (n),
                            None => span.hash title="privacy hash" { (hash.get(..12).unwrap_or(hash)) "…" },
                        } }
                        @for k in kinds { td { @if links.iter().any(|l| l == k) { "●" } } }
                    }
                }
            }
        }
        table #campaign-timeline {
            caption { "Reports, newest first" }
            thead { tr {
                th { "Last seen" } th { "First seen" } th { "Number" } th { "Organization" } th { "Kind" }
                th { "Channel" } th { "Brand" }
            } }
            tbody {
                @for r in &c.reports {
                    tr {
                        td { (utc(r.last_seen)) } td { (utc(r.first_seen)) }
                        td { @match &r.number {
                            Some(n) => (n),
                            None => span.hash title="privacy hash" { (r.number_hash.get(..12).unwrap_or(&r.number_hash)) "…" },
                        } }
                        td { (r.org) } td { (r.kind) } td { (r.channel) } td { (r.brand.as_deref().unwrap_or("—")) }
                    }
                }
            }
        }
        table #campaign-blocks {
            caption { "Blocks of 100 numbers (by privacy hash)" }
            thead { tr { th { "Block" } th { "Reports" } } }
            tbody {
                @for (block, n) in &blocks {
                    tr { td.hash { (block.get(..12).unwrap_or(block)) "…" } td { (n) } }
                }
            }
        }
        p.note {
            "A campaign is the numbers linked by what their trusted reports share: a link's domain, the sender, "
            "the message text (a keyed fingerprint), an analyst's tag, or a run of activity in one 100-block. "
            "Every node holding the same reports names it with the same id. Numbers reported by other "
            "organizations are shown by privacy hash."
        }
    }
}

fn verdict_class(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Malicious => "malicious",
        Verdict::FalsePositive => "false-positive",
        Verdict::Withdrawn => "withdrawn",
        Verdict::Protected => "protected",
    }
}

fn many(
    heading: &str,
    rows: &[Checked<'_>],
    basis: &Basis<'_>,
    skipped: &[&str],
    offer: Option<&ReportOffer<'_>>,
) -> Markup {
    html! {
        section.result #many aria-live="polite" {
            h2 { (heading) }
            @if rows.is_empty() {
                p #no-numbers { "No phone numbers found." }
            } @else {
                table #checked {
                    thead { tr {
                        th { "As written" } th { "Number" } th { "Band" } th { "Score" }
                        th { "Trusted orgs" } th { "Same 100-block" } th { "Kinds and brands" }
                    } }
                    tbody {
                        @for row in rows {
                            @match &row.result {
                                Ok(l) => tr {
                                    td { (row.input) } td.number { (l.number) }
                                    td { (badge(l, None)) }
                                    td { (format!("{:.2}", l.score.score)) } td { (l.score.orgs) }
                                    td {
                                        (l.block_activity)
                                        @if l.score.reports.is_empty() && l.block_activity > 0 { " " strong.warning { "(active block)" } }
                                    }
                                    td { (or_dash(&l.score.kinds.iter().map(ToString::to_string).chain(l.score.brands.iter().cloned()).collect::<Vec<_>>())) }
                                },
                                Err(reason) => tr.invalid {
                                    td { (row.input) } td colspan="6" { "not a number Sightline can look up: " (reason) }
                                },
                            }
                        }
                    }
                }
                p.note {
                    "Look a number up on its own to see who reported it and why. A number without reports is not proof of safety; "
                    "\"active block\" marks an unreported number whose 100-block has numbers reported in the last 30 days."
                }
            }
            @if !skipped.is_empty() {
                p.note #skipped {
                    "Digit runs that are not phone numbers, left out: " (skipped.join(", "))
                }
            }
            @if let Some(offer) = offer.filter(|o| !o.numbers.is_empty()) {
                (report_offer(offer))
            }
            (explanation(basis))
        }
    }
}

/// The form that reports a pasted message's numbers as one campaign.
fn report_offer(offer: &ReportOffer<'_>) -> Markup {
    html! {
        section.report #report-offer {
            h3 { "Report them as one campaign" }
            p {
                "Report " strong { (offer.numbers.len()) } " number(s) ("
                (offer.numbers.join(", ")) ") for this organization, linked by "
                @if offer.urls.is_empty() { "the message text" } @else {
                    "the message text and " (offer.urls.len()) " link(s) (" (offer.urls.join(", ")) ")"
                }
                ". Members receive only keyed hashes: the numbers, links and sender never leave this node, "
                "and the message is only fingerprinted."
            }
            form.lookup.wide method="post" action="/report" {
                input type="hidden" name="numbers" value=(offer.numbers.join("\n"));
                input type="hidden" name="urls" value=(offer.urls.join("\n"));
                input type="hidden" name="region" value=(offer.region);
                textarea name="message" hidden { (offer.message) }
                label for="report-kind" { "Kind" }
                select #report-kind name="kind" {
                    @for k in sightline_protocol::Kind::ALL { option value=(k.as_str()) selected[*k == sightline_protocol::Kind::Smishing] { (k.as_str()) } }
                }
                label for="report-channel" { "Channel" }
                select #report-channel name="channel" {
                    @for c in sightline_protocol::Channel::ALL { option value=(c.as_str()) selected[*c == sightline_protocol::Channel::Sms] { (c.as_str()) } }
                }
                label for="report-brand" { "Impersonated brand " small { "(optional)" } }
                input #report-brand name="brand" type="text" maxlength="64";
                label for="report-sender" { "Sender " small { "(address, sender id or short code, if known)" } }
                input #report-sender name="sender" type="text" maxlength="256" value=(offer.sender.unwrap_or(""));
                label for="report-campaign" { "Campaign name " small { "(optional: members using the same name link on it)" } }
                input #report-campaign name="campaign" type="text" maxlength="64";
                button type="submit" { "Report as one campaign" }
            }
        }
    }
}

/// The outcome of reporting a pasted message.
pub(crate) fn reported(outcome: &Reported) -> Markup {
    html! {
        h1 { "Report a message" }
        @match outcome {
            Reported::Done(receipts) => {
                p.verdict #reported {
                    "Reported " strong { (receipts.len()) } " number(s) as one campaign; members receive them now."
                }
                ul { @for (number, seq) in receipts { li { (number) " (seq " (seq) ")" } } }
                p { "Look one of them up to see the campaign." }
            },
            Reported::Refused(reasons) => {
                (alert(Some("report-error"), "Nothing was reported:"))
                ul { @for r in reasons { li { (r) } } }
            },
        }
    }
}

/// The recent sightings; `None` if the store could not be read.
pub(crate) fn recent(list: Option<&[RecentSighting]>) -> Markup {
    html! {
        h1 { "Recent sightings" }
        @match list {
            None => (alert(None, "Could not read the store; see the node's log.")),
            Some([]) => p { "No sightings stored yet." },
            Some(list) => {
                table {
                    thead { tr {
                        th { "Stored" } th { "Organization" } th { "Number" } th { "Verdict" } th { "Kind" }
                        th { "Channel" } th { "Brand" } th { "Confidence" } th { "Line" } th { "Last seen" }
                    } }
                    tbody {
                        @for (i, r) in list.iter().enumerate() {
                            tr {
                                td { (i + 1) } td { (r.org) }
                                td {
                                    @match &r.number {
                                        Some(n) => (n),
                                        None => span.hash title="privacy hash" { (r.number_hash.get(..12).unwrap_or(&r.number_hash)) "…" },
                                    }
                                }
                                td { (r.claim.verdict) } td { (r.claim.kind) } td { (r.claim.channel) }
                                td { (r.claim.brand.as_deref().unwrap_or("—")) } td { (r.claim.confidence) }
                                td { (r.line) " (+" (r.cc) ")" } td { (utc(r.last_seen)) }
                            }
                        }
                    }
                }
                p.note {
                    "Numbers reported by other organizations are shown by privacy hash: only the reporting node holds the raw number. "
                    "This organization's own numbers are shown to the submitting and operator tokens only. "
                    "Look a number up to see what is known about it."
                }
            }
        }
    }
}

/// Every member node, with this node's trust in its organization.
pub(crate) fn peers(list: &[PeerInfo]) -> Markup {
    html! {
        h1 { "Peers" }
        table.peers {
            thead { tr {
                th { "Organization" } th { "Trust" } th { "State" } th { "Last seen" } th { "Peer id" } th { "Addresses" }
            } }
            tbody {
                @for p in list {
                    tr {
                        td { (p.org) }
                        td { (p.trust.map_or_else(|| "—".to_owned(), |t| format!("{t:.2}"))) }
                        td {
                            @if p.connected { span.up { "connected" } } @else { span.down { "not connected" } }
                        }
                        td { (p.last_seen.map_or_else(|| "never".into(), utc)) }
                        td.id { code { (p.peer_id) } }
                        td.addresses {
                            @for (i, a) in p.addresses.iter().enumerate() {
                                @if i > 0 { br; }
                                (a)
                            }
                        }
                    }
                }
            }
        }
        p.note {
            "Trust weighs each organization's reports in this node's scores (0 ignores them; this organization's own count 1.0): "
            "network.toml sets it, and " code { "sightline trust" } " overrides it for this node only."
        }
    }
}

/// A status page section listing flagged organizations, if any.
fn flagged(title: &str, orgs: &[(String, u64)], what: impl Fn(u64) -> String) -> Markup {
    html! {
        @if !orgs.is_empty() {
            h2.error { (title) }
            ul { @for (org, n) in orgs { li { (org) " " (what(*n)) } } }
        }
    }
}

#[allow(clippy::cast_precision_loss)]
fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

/// The node's status.
pub(crate) fn status(s: &Status) -> Markup {
    html! {
        h1 { "Node status" }
        dl.facts {
            dt { "Organization" } dd { (s.org) }
            dt { "Network" } dd { (s.network_name) " (" (s.network) ")" }
            dt { "Peer id" } dd { code { (s.peer_id) } }
            dt { "Listening on" } dd {
                @for (i, a) in s.net.listen_addrs.iter().enumerate() { @if i > 0 { br; } (a) }
            }
            dt { "Peers connected" } dd { (s.net.connected) }
            dt { "Sightings stored" } dd { (s.records) }
            dt { "Own sequence" } dd { (s.own_seq) }
            dt { "Received from peers" } dd { (s.received) }
            dt { "Catch-up pages" } dd { (s.sync_pages) }
            dt { "Behind peers by" } dd { (s.sync_lag) " records" }
            dt { "Store on disk" } dd { (format!("{:.1} MiB", mib(s.disk_bytes))) }
        }
        h2 { "Per organization" }
        table {
            thead { tr { th { "Organization" } th { "Records" } th { "Highest seq" } th { "Contiguous to" } } }
            tbody {
                @for o in &s.origins {
                    tr { td { (o.org) } td { (o.count) } td { (o.max_seq) } td { (o.contiguous) } }
                }
            }
        }
        h2 { "Rejected from peers" }
        @if s.rejected.is_empty() {
            p { "None." }
        } @else {
            table {
                thead { tr { th { "Reason" } th { "Count" } } }
                tbody { @for (reason, n) in &s.rejected { tr { td { (reason) } td { (n) } } } }
            }
        }
        (flagged("Equivocation", &s.equivocations, |n| {
            format!("signed {n} conflicting record(s) with a reused sequence number")
        }))
        (flagged("Over limits", &s.over_limit, |n| {
            format!(
                "went over its limits ({} records an hour, {} numbers a day): {n} record(s) ignored",
                s.limits.records_per_hour, s.limits.numbers_per_day
            )
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00 UTC");
        assert_eq!(utc(1_763_700_000), "2025-11-21 04:40 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00 UTC");
        assert_eq!(utc(u64::MAX), "—");
    }

    #[test]
    fn one_class_attribute_per_element() {
        // maud would write `.a class=(…)` as two class attributes, and
        // browsers keep only the first.
        let source = include_str!("view.rs");
        for line in source.lines() {
            let code = line.trim_start();
            if code.starts_with("//") || code.starts_with("let ") {
                continue;
            }
            let shorthand = code
                .split_whitespace()
                .next()
                .is_some_and(|first| first.contains('.') && !first.contains('('));
            assert!(
                !(shorthand && code.contains(concat!("class", "="))),
                "two class attributes: {code}"
            );
        }
    }

    #[test]
    fn interpolated_text_is_escaped() {
        let page = denied("<script>alert('x')</script> & \"more\"").into_string();
        assert!(page.contains("&lt;script&gt;"), "{page}");
        assert!(!page.contains("<script>"), "{page}");
        let form = sign_in(None, "/\"><img src=x>").into_string();
        assert!(!form.contains("<img"), "{form}");
    }
}
