//! STIX 2.1 bundles (OASIS STIX 2.1, the format `OpenCTI` and TAXII clients
//! read).
//!
//! A bundle holds: the TLP marking; an `identity` per reporting
//! organization and for the exporter; each number as a `phone-number`
//! observable (STIX 2.1 defines none: [`PHONE_NUMBER_EXTENSION`] defines
//! it, under the type and property `OpenCTI`'s `Phone-Number` observable
//! uses); an `indicator` with a STIX pattern when the band is medium or
//! high; per organization's report a `sighting` of that indicator (or,
//! below medium, an `observed-data` of the number) and, for a
//! false-positive report, an `opinion`; for a false-positive or withdrawn
//! report, that organization's sighting and observed-data of the number
//! again with `revoked: true` (a consumer that imported them drops them);
//! the campaigns with `indicates` and `related-to` relationships; and a
//! `note` saying what the export leaves hashed or out.
//!
//! Ids are `UUIDv5`, derived from the network, the number, the organization
//! or the campaign: exporting the same picture again gives the same ids,
//! so a consumer updates its objects instead of duplicating them. Every
//! version of an object keeps the same `created` (a fixed epoch), and
//! `modified` (the export time) says which is newer. STIX recommends `UUIDv4`
//! for domain objects; deterministic ids are what `OpenCTI` itself uses for
//! them, for the same reason.

use std::collections::BTreeSet;
use std::fmt::Write;

use serde_json::{json, Value};
use sightline_protocol::Verdict;
use uuid::Uuid;

use super::{timestamp, CampaignPart, Picture, Tlp};
use crate::reputation::{Band, Contribution};
use crate::Lookup;

/// Namespace of the ids Sightline derives for domain and relationship
/// objects.
const NAMESPACE: Uuid = uuid::uuid!("98f11dff-ecb0-4e02-be29-98a7540dd175");

/// STIX 2.1 §2.9: the namespace of deterministic observable ids.
const SCO_NAMESPACE: Uuid = uuid::uuid!("00abedb4-aa42-466c-9c01-fed23315a9b7");

/// The extension definition of the `phone-number` observable.
pub const PHONE_NUMBER_EXTENSION: &str =
    "extension-definition--4d245c66-f917-458a-891e-2c2978056f07";

/// The identity that publishes [`PHONE_NUMBER_EXTENSION`].
const SIGHTLINE_IDENTITY: &str = "identity--5e7863c4-06a2-4906-8687-28e6bc27cf32";

/// `created` of the objects that do not come from a report (the extension,
/// organizations' identities): fixed, so that every export's copy is the
/// same version of the same object.
const EPOCH: u64 = 1_767_225_600; // 2026-01-01T00:00:00Z

/// The OASIS-predefined TLP 1.0 marking definitions (STIX 2.1 §7.2.1.4):
/// the ids and `created` every STIX tool knows.
fn marking(tlp: Tlp) -> Value {
    let (id, name) = match tlp {
        Tlp::Clear => ("613f2e26-407d-48c7-9eca-b8e91df99dc9", "white"),
        Tlp::Green => ("34098fce-860f-48ae-8e50-ebd3cc5e41da", "green"),
        Tlp::Amber => ("f88d31f6-486f-44da-b317-01333bde0b82", "amber"),
        Tlp::Red => ("5e57c739-391a-4eb3-b6be-7d15ca92d5ed", "red"),
    };
    json!({
        "type": "marking-definition",
        "spec_version": "2.1",
        "id": format!("marking-definition--{id}"),
        "created": "2017-01-20T00:00:00.000Z",
        "definition_type": "tlp",
        "name": format!("TLP:{}", name.to_ascii_uppercase()),
        "definition": {"tlp": name},
    })
}

/// A derived id of `kind` for `name`.
fn id(kind: &str, name: &str) -> String {
    format!("{kind}--{}", Uuid::new_v5(&NAMESPACE, name.as_bytes()))
}

/// The `phone-number` observable's id: STIX's deterministic SCO id over its
/// id-contributing property, `value` (the same id any tool derives).
pub fn phone_number_id(e164: &str) -> String {
    let contributing = json!({ "value": e164 }).to_string();
    format!(
        "phone-number--{}",
        Uuid::new_v5(&SCO_NAMESPACE, contributing.as_bytes())
    )
}

/// Builds one bundle.
struct Bundle<'a> {
    picture: &'a Picture,
    objects: Vec<Value>,
    ids: BTreeSet<String>,
    marking: String,
    exporter: String,
}

impl Bundle<'_> {
    /// Adds an object once (by id).
    fn push(&mut self, object: Value) {
        let id = object["id"].as_str().unwrap_or_default().to_owned();
        if self.ids.insert(id) {
            self.objects.push(object);
        }
    }

    /// The common properties of a domain or relationship object. Every
    /// version of an object has the same id and `created` (STIX 2.1 §3.6),
    /// so `created` is [`EPOCH`] for all of them; `modified`, the export
    /// time, orders the versions.
    fn sdo(&self, kind: &str, id: &str, created_by: &str) -> Value {
        json!({
            "type": kind,
            "spec_version": "2.1",
            "id": id,
            "created": timestamp(EPOCH),
            "modified": timestamp(self.picture.at.max(EPOCH)),
            "created_by_ref": created_by,
            "object_marking_refs": [self.marking],
        })
    }

    /// The identity of a member organization.
    fn organization(&mut self, org: &str) -> String {
        let id = id("identity", &format!("{}/{org}", self.picture.network));
        self.push(json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": id,
            "created": timestamp(EPOCH),
            "modified": timestamp(EPOCH),
            "name": org,
            "identity_class": "organization",
            "description": format!(
                "Member organization of the Sightline sharing network {:?} ({}).",
                self.picture.network_name, self.picture.network
            ),
        }));
        id
    }

    fn relationship(&mut self, source: &str, kind: &str, target: &str) {
        let rid = id("relationship", &format!("{source}/{kind}/{target}"));
        let mut o = self.sdo("relationship", &rid, &self.exporter.clone());
        o["relationship_type"] = json!(kind);
        o["source_ref"] = json!(source);
        o["target_ref"] = json!(target);
        self.push(o);
    }

    /// The fixed objects: marking, the Sightline identity, the extension,
    /// the exporter.
    fn preamble(&mut self) {
        self.push(marking(self.picture.tlp));
        self.push(json!({
            "type": "identity",
            "spec_version": "2.1",
            "id": SIGHTLINE_IDENTITY,
            "created": timestamp(EPOCH),
            "modified": timestamp(EPOCH),
            "name": "Sightline",
            "identity_class": "system",
            "description": "Sightline, a peer-to-peer sharing node for scam phone-number indicators; publisher of the phone-number observable extension.",
        }));
        self.push(json!({
            "type": "extension-definition",
            "spec_version": "2.1",
            "id": PHONE_NUMBER_EXTENSION,
            "created": timestamp(EPOCH),
            "modified": timestamp(EPOCH),
            "created_by_ref": SIGHTLINE_IDENTITY,
            "name": "phone-number",
            "description": "A telephone number as a cyber observable (the type OpenCTI names Phone-Number).",
            "schema": "Object type phone-number. Property value (string, required): the number in E.164 form, for example +14155550100. Id-contributing property: value.",
            "version": "1.0.0",
            "extension_types": ["new-sco"],
        }));
        let exporter = self.organization(&self.picture.exporter.clone());
        self.exporter = exporter;
    }

    /// A number: its observable, indicator, reports and campaign ties.
    /// Returns the ids a note may refer to.
    fn number(&mut self, lookup: &Lookup) -> Vec<String> {
        let observable = phone_number_id(&lookup.number);
        self.push(json!({
            "type": "phone-number",
            "spec_version": "2.1",
            "id": observable,
            "value": lookup.number,
            "object_marking_refs": [self.marking],
            "extensions": { PHONE_NUMBER_EXTENSION: { "extension_type": "new-sco" } },
        }));
        let score = &lookup.score;
        let first = score.first_seen.unwrap_or(self.picture.at);
        let mut refs = vec![observable.clone()];
        let indicator = (score.band >= Band::Medium).then(|| {
            let iid = id(
                "indicator",
                &format!("{}/{}", self.picture.network, lookup.number),
            );
            let mut o = self.sdo("indicator", &iid, &self.exporter.clone());
            let kinds: Vec<&str> = score.kinds.iter().map(|k| k.as_str()).collect();
            o["name"] = json!(format!("Scam phone number {}", lookup.number));
            o["description"] = json!(describe(lookup, &self.picture.network_name));
            o["indicator_types"] = json!(["malicious-activity"]);
            o["pattern"] = json!(format!("[phone-number:value = '{}']", lookup.number));
            o["pattern_type"] = json!("stix");
            o["valid_from"] = json!(timestamp(first));
            o["confidence"] = json!(percent(score.score));
            if !kinds.is_empty() {
                o["labels"] = json!(kinds);
            }
            self.push(o);
            self.relationship(&iid, "based-on", &observable);
            iid
        });
        if let Some(iid) = &indicator {
            refs.push(iid.clone());
        }
        for report in &score.reports {
            self.report(lookup, report, &observable, indicator.as_deref());
        }
        if let Some(campaign) = &lookup.campaign {
            let cid = self.campaign_id(&campaign.id);
            if let Some(iid) = &indicator {
                self.relationship(iid, "indicates", &cid);
            }
            self.relationship(&observable, "related-to", &cid);
        }
        refs
    }

    /// One organization's report of a number.
    fn report(
        &mut self,
        lookup: &Lookup,
        report: &Contribution,
        observable: &str,
        indicator: Option<&str>,
    ) {
        let org = self.organization(&report.org);
        let name = format!(
            "{}/{}/{}",
            self.picture.network, report.origin, lookup.number
        );
        let claim = &report.claim;
        let what = format!(
            "{} reported {} as {} (channel {}{}), confidence {}, {} observation(s).",
            report.org,
            lookup.number,
            claim.kind,
            claim.channel,
            claim
                .brand
                .as_ref()
                .map(|b| format!(", brand {b}"))
                .unwrap_or_default(),
            claim.confidence,
            claim.count,
        );
        let (first, last) = (report.first_seen, report.last_seen.max(report.first_seen));
        let sighting = |b: &Self, indicator: &str| {
            let mut o = b.sdo("sighting", &id("sighting", &name), &org);
            o["sighting_of_ref"] = json!(indicator);
            o["where_sighted_refs"] = json!([org]);
            o["first_seen"] = json!(timestamp(first));
            o["last_seen"] = json!(timestamp(last));
            o["count"] = json!(claim.count.min(999_999_999));
            o
        };
        let observed = |b: &Self| {
            let mut o = b.sdo("observed-data", &id("observed-data", &name), &org);
            o["first_observed"] = json!(timestamp(first));
            o["last_observed"] = json!(timestamp(last));
            o["number_observed"] = json!(claim.count.clamp(1, 999_999_999));
            o["object_refs"] = json!([observable]);
            o
        };
        match claim.verdict {
            Verdict::Malicious => {
                let mut o = match indicator {
                    Some(indicator) => {
                        let mut o = sighting(self, indicator);
                        o["description"] = json!(what);
                        o
                    }
                    None => observed(self),
                };
                o["confidence"] = json!(claim.confidence.min(100));
                self.push(o);
            }
            Verdict::FalsePositive | Verdict::Withdrawn => {
                // The organization no longer says the number is a scam:
                // whatever an earlier export said in its name (a sighting,
                // or below medium an observed-data) is revoked, so that a
                // consumer that imported it drops it.
                let indicator_id = id(
                    "indicator",
                    &format!("{}/{}", self.picture.network, lookup.number),
                );
                for mut o in [sighting(self, &indicator_id), observed(self)] {
                    o["revoked"] = json!(true);
                    self.push(o);
                }
                if claim.verdict == Verdict::FalsePositive {
                    let mut o = self.sdo("opinion", &id("opinion", &name), &org);
                    o["opinion"] = json!("strongly-disagree");
                    o["explanation"] = json!(format!(
                        "{} reports {} as a false positive: not a scam number.",
                        report.org, lookup.number
                    ));
                    o["authors"] = json!([report.org]);
                    let mut refs = vec![observable.to_owned()];
                    refs.extend(indicator.map(str::to_owned));
                    o["object_refs"] = json!(refs);
                    self.push(o);
                }
            }
            // A protected number is never exported.
            Verdict::Protected => {}
        }
    }

    fn campaign_id(&self, campaign: &str) -> String {
        id("campaign", &format!("{}/{campaign}", self.picture.network))
    }

    fn campaign(&mut self, part: &CampaignPart) -> String {
        let c = &part.summary;
        let cid = self.campaign_id(&c.id);
        let mut o = self.sdo("campaign", &cid, &self.exporter.clone());
        let mut name = format!("Sightline {}", c.id);
        if !c.brands.is_empty() {
            let brands: Vec<&str> = c.brands.iter().map(String::as_str).collect();
            let _ = write!(name, " ({})", brands.join(", "));
        }
        let kinds: Vec<&str> = c.kinds.iter().map(|k| k.as_str()).collect();
        o["name"] = json!(name);
        o["aliases"] = json!([c.id]);
        o["description"] = json!(format!(
            "Numbers linked into one operation by shared link tokens and 100-block activity on Sightline network {:?}: {}{} number(s) in {} block(s), reported by {} organization(s) as {}; state {:?}. {} of its numbers are in this export; {} are known to the exporter only by their keyed hash.",
            self.picture.network_name,
            if c.complete { "" } else { "at least " },
            c.numbers,
            c.blocks,
            c.orgs.len(),
            kinds.join(", "),
            c.state,
            part.named.len(),
            part.hashed(),
        ));
        o["first_seen"] = json!(timestamp(c.first_seen));
        o["last_seen"] = json!(timestamp(c.last_seen.max(c.first_seen)));
        self.push(o);
        cid
    }
}

/// A score as a STIX confidence, 0–100.
fn percent(score: f64) -> u8 {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let p = (score.clamp(0.0, 1.0) * 100.0).round() as u8;
    p
}

/// What a lookup says, in a sentence.
fn describe(lookup: &Lookup, network: &str) -> String {
    let s = &lookup.score;
    let kinds: Vec<&str> = s.kinds.iter().map(|k| k.as_str()).collect();
    let brands: Vec<&str> = s.brands.iter().map(String::as_str).collect();
    let mut text = format!(
        "Sightline score {:.2} ({}) on network {network:?}, from {} trusted organization(s); kinds {}; line type {}, {}.",
        s.score,
        s.band.as_str(),
        s.orgs,
        kinds.join(", "),
        lookup.line_type.as_str(),
        lookup.country,
    );
    if !brands.is_empty() {
        let _ = write!(text, " Brands impersonated: {}.", brands.join(", "));
    }
    if lookup.block_activity > 1 {
        let _ = write!(
            text,
            " {} numbers of its 100-block were reported over 30 days.",
            lookup.block_activity
        );
    }
    text
}

/// The picture as a STIX 2.1 bundle.
pub fn bundle(picture: &Picture) -> Value {
    let tlp = marking(picture.tlp);
    let mut b = Bundle {
        picture,
        objects: Vec::new(),
        ids: BTreeSet::new(),
        marking: tlp["id"].as_str().unwrap_or_default().to_owned(),
        exporter: String::new(),
    };
    b.preamble();
    let mut refs = Vec::new();
    for lookup in &picture.numbers {
        refs.extend(b.number(lookup));
    }
    for part in &picture.campaigns {
        refs.push(b.campaign(part));
    }
    if !refs.is_empty() {
        let mut names: Vec<&str> = refs.iter().map(String::as_str).collect();
        names.sort_unstable();
        let nid = id("note", &format!("{}/{}", picture.network, names.join(",")));
        let mut o = b.sdo("note", &nid, &b.exporter.clone());
        o["abstract"] = json!("What this export holds, and what it leaves hashed or out");
        o["content"] = json!(picture.scope_statement());
        o["object_refs"] = json!(refs);
        b.push(o);
    }
    let mut names: Vec<&str> = b.ids.iter().map(String::as_str).collect();
    names.push(&picture.network);
    let at = picture.at.to_string();
    names.push(&at);
    json!({
        "type": "bundle",
        "id": id("bundle", &names.join(",")),
        "objects": b.objects,
    })
}
