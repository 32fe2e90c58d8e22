//! MISP: an export as a MISP event (the format `PyMISP` and MISP load), and
//! phone numbers read from MISP events and feeds into submissions.
//!
//! Out: one event; per number a `phone-number` object (the misp-objects
//! template) whose `phone-number` attribute has `to_ids` set at band
//! medium and above, a sighting per reporting organization (type 0 for a
//! malicious report, 1 for a false positive), the kinds, band and
//! campaign as `sightline:` machine tags, and the TLP tag on the event.
//! A text attribute carries the export's scope statement.
//!
//! In: every `phone-number` attribute of an event, loose or inside an
//! object, that MISP marks for detection (`to_ids`) and has not deleted;
//! its times from the attribute's `first_seen`/`last_seen`, else its
//! `timestamp`, else the event's `date`; its kind from the first tag that
//! names one (on the attribute, its object, then the event).

use serde_json::{json, Value};
use sightline_protocol::{Kind, Verdict};
use uuid::Uuid;

use super::{date, timestamp, Picture, Tlp};
use crate::reputation::Band;
use crate::{Lookup, Submission};

/// Namespace of the MISP uuids Sightline derives.
const NAMESPACE: Uuid = uuid::uuid!("d0c2a1a4-4c1e-4b7e-9c55-6a8e1f0b5d13");

/// The misp-objects `phone-number` template.
const PHONE_NUMBER_TEMPLATE: &str = "c4b5a67c-63d2-11ec-90d6-0242ac120003";

fn uuid(name: &str) -> String {
    Uuid::new_v5(&NAMESPACE, name.as_bytes()).to_string()
}

fn tag(name: &str) -> Value {
    json!({ "name": name })
}

/// MISP's form of a time (`2026-12-07T18:00:00.000000+00:00`).
fn misp_time(secs: u64) -> String {
    timestamp(secs).replace(".000Z", ".000000+00:00")
}

/// The TLP tag (MISP's `tlp` taxonomy, TLP 2.0 names).
fn tlp_tag(tlp: Tlp) -> String {
    format!("tlp:{}", tlp.as_str())
}

/// MISP distribution for a TLP: amber and red stay in the receiving
/// organization, green goes to its community, clear to all.
fn distribution(tlp: Tlp) -> &'static str {
    match tlp {
        Tlp::Clear => "3",
        Tlp::Green => "1",
        Tlp::Amber | Tlp::Red => "0",
    }
}

/// One attribute of an object.
fn attribute(
    event: &str,
    relation: &str,
    kind: &str,
    category: &str,
    value: &str,
    at: u64,
) -> Value {
    json!({
        "uuid": uuid(&format!("{event}/{relation}/{value}")),
        "object_relation": relation,
        "type": kind,
        "category": category,
        "value": value,
        "to_ids": false,
        "distribution": "5",
        "disable_correlation": relation != "phone-number",
        "timestamp": at.to_string(),
    })
}

/// A number as a `phone-number` object.
fn object(p: &Picture, event: &str, lookup: &Lookup) -> Value {
    let s = &lookup.score;
    let mut number = attribute(
        event,
        "phone-number",
        "phone-number",
        "Financial fraud",
        &lookup.number,
        p.at,
    );
    number["to_ids"] = json!(s.band >= Band::Medium);
    if let (Some(first), Some(last)) = (s.first_seen, s.last_seen) {
        number["first_seen"] = json!(misp_time(first));
        number["last_seen"] = json!(misp_time(last.max(first)));
    }
    let mut tags = vec![tag(&format!("sightline:band=\"{}\"", s.band.as_str()))];
    tags.extend(
        s.kinds
            .iter()
            .map(|k| tag(&format!("sightline:kind=\"{k}\""))),
    );
    if let Some(c) = &lookup.campaign {
        tags.push(tag(&format!("sightline:campaign=\"{}\"", c.id)));
    }
    number["Tag"] = json!(tags);
    let sightings: Vec<Value> = s
        .reports
        .iter()
        .filter_map(|r| {
            let kind = match r.claim.verdict {
                Verdict::Malicious => "0",
                Verdict::FalsePositive => "1",
                _ => return None,
            };
            Some(json!({
                "uuid": uuid(&format!("{event}/{}/{}", r.origin, lookup.number)),
                "type": kind,
                "date_sighting": r.last_seen.to_string(),
                "source": r.org,
                "Organisation": { "name": r.org },
            }))
        })
        .collect();
    number["Sighting"] = json!(sightings);
    let cc = format!("+{}", lookup.cc);
    let text = format!(
        "Sightline score {:.2} ({}) from {} trusted organization(s); line type {}; {} number(s) of its 100-block reported over 30 days.",
        s.score,
        s.band.as_str(),
        s.orgs,
        lookup.line_type.as_str(),
        lookup.block_activity
    );
    json!({
        "uuid": uuid(&format!("{event}/object/{}", lookup.number)),
        "name": "phone-number",
        "meta-category": "mobile",
        "description": "Phone number based on the E.164 international public telecommunication numbering plan",
        "template_uuid": PHONE_NUMBER_TEMPLATE,
        "template_version": "1",
        "distribution": "5",
        "timestamp": p.at.to_string(),
        "comment": format!("Reported on Sightline network {:?}", p.network_name),
        "Attribute": [
            number,
            attribute(event, "country-code", "text", "Other", &lookup.country, p.at),
            attribute(event, "country-code-numeric", "text", "Other", &cc, p.at),
            attribute(event, "text", "text", "Other", &text, p.at),
        ],
    })
}

/// The picture as a MISP event (`{"Event": …}`).
pub fn event(p: &Picture) -> Value {
    let mut names: Vec<&str> = p.numbers.iter().map(|l| l.number.as_str()).collect();
    names.extend(p.campaigns.iter().map(|c| c.summary.id.as_str()));
    names.sort_unstable();
    let event = uuid(&format!("event/{}/{}", p.network, names.join(",")));
    let info = match (p.campaigns.as_slice(), p.numbers.len()) {
        ([c], _) if p.numbers.len() == c.named.len() => format!(
            "Sightline campaign {}: {} number(s), {} named here",
            c.summary.id,
            c.summary.numbers,
            c.named.len()
        ),
        (_, n) => format!(
            "Sightline: {n} scam phone number(s) reported on {:?}",
            p.network_name
        ),
    };
    let top = p
        .numbers
        .iter()
        .map(|l| l.score.band)
        .max()
        .unwrap_or(Band::None);
    let threat = match top {
        Band::High => "1",
        Band::Medium => "2",
        Band::Low | Band::None => "3",
    };
    let mut tags = vec![
        tag(&tlp_tag(p.tlp)),
        tag(&format!("sightline:network=\"{}\"", p.network)),
    ];
    for c in &p.campaigns {
        tags.push(tag(&format!("sightline:campaign=\"{}\"", c.summary.id)));
    }
    let mut scope = attribute(&event, "scope", "text", "Other", &p.scope_statement(), p.at);
    if let Some(map) = scope.as_object_mut() {
        map.remove("object_relation");
    }
    scope["comment"] = json!("What this export holds, and what it leaves hashed or out");
    let objects: Vec<Value> = p.numbers.iter().map(|l| object(p, &event, l)).collect();
    json!({
        "Event": {
            "uuid": event,
            "info": info,
            "date": date(p.at),
            "timestamp": p.at.to_string(),
            "published": false,
            "threat_level_id": threat,
            "analysis": "2",
            "distribution": distribution(p.tlp),
            "Orgc": { "name": p.exporter, "uuid": uuid(&format!("org/{}/{}", p.network, p.exporter)) },
            "Tag": tags,
            "Attribute": [scope],
            "Object": objects,
        }
    })
}

/// A phone number read from MISP, ready to submit.
#[derive(Debug, Clone)]
pub struct Found {
    /// Where it was: `event UUID, attribute UUID`.
    pub place: String,
    /// The submission (its number as MISP wrote it).
    pub submission: Submission,
}

/// An attribute not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// Where it was.
    pub place: String,
    /// Its value.
    pub value: String,
    /// Why, for a person.
    pub reason: String,
}

/// What [`read`] found in one or more events.
#[derive(Debug, Clone, Default)]
pub struct Read {
    /// Numbers to submit.
    pub found: Vec<Found>,
    /// Phone-number attributes left alone, and why.
    pub skipped: Vec<Skipped>,
}

/// Why a MISP document could not be read at all.
#[derive(Debug, thiserror::Error)]
pub enum MispError {
    /// Not a MISP event.
    #[error("not a MISP event: {0}")]
    NotAnEvent(&'static str),
    /// Not a MISP feed manifest.
    #[error("not a MISP feed manifest.json: {0}")]
    NotAManifest(&'static str),
}

/// The kind a tag names, if it names one: `sightline:kind="…"`, or a tag
/// whose words name the abuse (`smishing`, `vishing`, `callback`/`toad`,
/// `bec`/`business email compromise`, `robocall`, `sim-swap`).
pub fn kind_of_tag(name: &str) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    if let Some(rest) = lower.strip_prefix("sightline:kind=") {
        return rest.trim_matches('"').parse().ok();
    }
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has = |w: &str| words.contains(&w);
    if has("smishing") {
        Some(Kind::Smishing)
    } else if has("vishing") {
        Some(Kind::Vishing)
    } else if has("toad") || has("callback") {
        Some(Kind::Callback)
    } else if has("bec") || lower.contains("business email compromise") {
        Some(Kind::Bec)
    } else if has("robocall") {
        Some(Kind::Robocall)
    } else if lower.contains("sim-swap") || lower.contains("sim swap") || has("simswap") {
        Some(Kind::SimSwap)
    } else {
        None
    }
}

fn tags_kind(holder: &Value) -> Option<Kind> {
    holder["Tag"]
        .as_array()?
        .iter()
        .filter_map(|t| t["name"].as_str())
        .find_map(kind_of_tag)
}

fn text<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v[key].as_str().filter(|s| !s.is_empty())
}

/// A MISP boolean (`true`, `"1"`, `1`).
fn flag(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => s == "1" || s.eq_ignore_ascii_case("true"),
        Value::Number(n) => n.as_u64() == Some(1),
        _ => false,
    }
}

/// A MISP epoch (`"1796601600"` or a number).
fn epoch(v: &Value) -> Option<u64> {
    match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_u64(),
        _ => None,
    }
}

/// The events of a document: `{"Event": …}` (MISP's JSON export and
/// feeds), `{"response": [{"Event": …}]}` (its API), or a bare event
/// (`PyMISP`'s `to_json`).
fn events(doc: &Value) -> Result<Vec<&Value>, MispError> {
    if let Some(e) = doc.get("Event") {
        return Ok(vec![e]);
    }
    if let Some(list) = doc.get("response").and_then(Value::as_array) {
        return Ok(list.iter().filter_map(|r| r.get("Event")).collect());
    }
    if doc.get("info").is_some() && (doc.get("Attribute").is_some() || doc.get("Object").is_some())
    {
        return Ok(vec![doc]);
    }
    Err(MispError::NotAnEvent(
        "no \"Event\", \"response\" list of events, or event (info and attributes) at the top",
    ))
}

/// Reads the phone numbers of a MISP event document into `out`. Numbers
/// are not validated here: the node normalizes and checks each one, and
/// the caller reports those it refuses.
///
/// # Errors
/// [`MispError::NotAnEvent`] when `doc` is not a MISP event.
pub fn read(doc: &Value, default_kind: Kind, out: &mut Read) -> Result<(), MispError> {
    for event in events(doc)? {
        let id = text(event, "uuid").unwrap_or("(no uuid)");
        let event_kind = tags_kind(event);
        let event_time =
            text(event, "date").and_then(|d| super::parse_timestamp(&format!("{d}T00:00:00Z")));
        let loose = event["Attribute"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|a| (a, None));
        let in_objects = event["Object"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|o| {
                o["Attribute"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(move |a| (a, Some(o)))
            });
        for (attr, object) in loose.chain(in_objects) {
            if attr["type"].as_str() != Some("phone-number") {
                continue;
            }
            let value = text(attr, "value").unwrap_or_default().to_owned();
            let place = format!(
                "event {id}, attribute {}",
                text(attr, "uuid").unwrap_or("(no uuid)")
            );
            let skip = |reason: &str| Skipped {
                place: place.clone(),
                value: value.clone(),
                reason: reason.to_owned(),
            };
            if flag(&attr["deleted"]) || object.is_some_and(|o| flag(&o["deleted"])) {
                out.skipped.push(skip("deleted in MISP"));
                continue;
            }
            if !flag(&attr["to_ids"]) {
                out.skipped.push(skip(
                    "to_ids is off: MISP marks it as context, not for detection (a victim's or a brand's own number, say)",
                ));
                continue;
            }
            let kind = tags_kind(attr)
                .or_else(|| object.and_then(tags_kind))
                .or(event_kind)
                .unwrap_or(default_kind);
            let stamped = epoch(&attr["timestamp"]).or(event_time);
            let first = text(attr, "first_seen")
                .and_then(super::parse_timestamp)
                .or(stamped);
            let last = text(attr, "last_seen")
                .and_then(super::parse_timestamp)
                .or(first);
            let mut submission = Submission::new(value, kind);
            submission.first_seen = first;
            submission.last_seen = last.max(first);
            out.found.push(Found { place, submission });
        }
    }
    Ok(())
}

/// The event files a MISP feed's `manifest.json` lists (`UUID.json`
/// beside it), in a stable order.
///
/// # Errors
/// [`MispError::NotAManifest`] when it is not an object keyed by event uuid.
pub fn feed_files(manifest: &Value) -> Result<Vec<String>, MispError> {
    let map = manifest.as_object().ok_or(MispError::NotAManifest(
        "expected an object keyed by event uuid",
    ))?;
    let mut files = Vec::with_capacity(map.len());
    for key in map.keys() {
        if Uuid::parse_str(key).is_err() {
            return Err(MispError::NotAManifest("a key is not an event uuid"));
        }
        files.push(format!("{key}.json"));
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_name_kinds_where_they_say_so() {
        assert_eq!(
            kind_of_tag("sightline:kind=\"callback\""),
            Some(Kind::Callback)
        );
        assert_eq!(
            kind_of_tag("misp-galaxy:mitre-attack-pattern=\"Smishing\""),
            Some(Kind::Smishing)
        );
        assert_eq!(kind_of_tag("TOAD"), Some(Kind::Callback));
        assert_eq!(
            kind_of_tag("circl:incident-classification=\"sim-swap\""),
            Some(Kind::SimSwap)
        );
        assert_eq!(kind_of_tag("tlp:amber"), None);
        // A word inside another word names nothing.
        assert_eq!(kind_of_tag("debecker"), None);
    }

    #[test]
    fn an_event_gives_its_detection_numbers_and_says_why_it_skips_others() {
        let doc = json!({"Event": {
            "uuid": "e1", "date": "2026-12-07",
            "Tag": [{"name": "vishing"}],
            "Attribute": [
                {"uuid": "a1", "type": "phone-number", "value": "+14155550100", "to_ids": true, "timestamp": "1796605200"},
                {"uuid": "a2", "type": "phone-number", "value": "+14155550101", "to_ids": false},
                {"uuid": "a3", "type": "domain", "value": "example.com", "to_ids": true},
            ],
            "Object": [{"name": "phone-number", "Tag": [{"name": "sightline:kind=\"smishing\""}], "Attribute": [
                {"uuid": "a4", "type": "phone-number", "object_relation": "phone-number", "value": "+14155550102", "to_ids": "1",
                 "first_seen": "2026-12-01T00:00:00.000000+00:00", "last_seen": "2026-12-02T00:00:00+00:00"},
                {"uuid": "a5", "type": "phone-number", "value": "+14155550103", "to_ids": true, "deleted": true},
            ]}],
        }});
        let mut out = Read::default();
        read(&doc, Kind::Other, &mut out).unwrap();
        let found: Vec<_> = out
            .found
            .iter()
            .map(|f| {
                (
                    f.submission.number.as_str(),
                    f.submission.kind,
                    f.submission.first_seen,
                    f.submission.last_seen,
                )
            })
            .collect();
        assert_eq!(
            found,
            [
                (
                    "+14155550100",
                    Kind::Vishing,
                    Some(1_796_605_200),
                    Some(1_796_605_200)
                ),
                (
                    "+14155550102",
                    Kind::Smishing,
                    Some(1_796_083_200),
                    Some(1_796_169_600)
                ),
            ]
        );
        let skipped: Vec<_> = out
            .skipped
            .iter()
            .map(|s| (s.value.as_str(), &s.reason[..10]))
            .collect();
        assert_eq!(
            skipped,
            [
                ("+14155550101", "to_ids is "),
                ("+14155550103", "deleted in")
            ]
        );
        assert!(matches!(
            read(&json!({"event": {}}), Kind::Other, &mut out),
            Err(MispError::NotAnEvent(_))
        ));
    }

    #[test]
    fn a_manifest_lists_event_files() {
        let m = json!({"5f8c1e4a-0000-4000-8000-000000000001": {"info": "x"}, "5f8c1e4a-0000-4000-8000-000000000000": {}});
        assert_eq!(
            feed_files(&m).unwrap(),
            [
                "5f8c1e4a-0000-4000-8000-000000000000.json",
                "5f8c1e4a-0000-4000-8000-000000000001.json"
            ]
        );
        assert!(feed_files(&json!({"../etc/passwd": {}})).is_err());
    }
}
