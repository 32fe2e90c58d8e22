"""Reads Sightline's exports with the libraries analysts' tools are built on,
and writes MISP inputs with PyMISP. Run by cli/tests/cli/interop.rs with the
tools venv that scripts/test.sh installs.

  check.py stix BUNDLE          validate (OASIS stix2-validator), parse (stix2);
                                print a JSON summary
  check.py misp EVENT OUT       load with PyMISP, check it round-trips, write
                                PyMISP's own serialization to OUT; print a summary
  check.py feed DIR             write a MISP feed (manifest.json + event) with PyMISP
"""

import json
import re
import sys

# Warnings the validator gives that Sightline's exports carry on purpose,
# as (code, text the warning must contain):
ALLOWED_WARNINGS = [
    # "{103} Given ID value ... is not a valid UUIDv4 ID": ids are UUIDv5,
    # derived from the network, number, organization or campaign, so that a
    # second export updates the objects of the first instead of duplicating
    # them (OpenCTI derives its own ids the same way).
    ("103", "is not a valid UUIDv4 ID"),
    # "{202} 'phone-number' is permitted, but not a suggested relationship
    # target object for 'indicator' objects with the 'based-on'
    # relationship": STIX suggests based-on for observed-data; OpenCTI ties
    # an indicator to its observable with exactly this relationship, and
    # shows the number under the indicator because of it.
    ("202", "'phone-number' is permitted, but not a suggested relationship target object for 'indicator' objects with the 'based-on' relationship"),
]


def allowed(warning):
    code = re.search(r"\{(\d+)\}", warning).group(1)
    return any(code == c and text in warning for c, text in ALLOWED_WARNINGS)


def stix(path):
    import stix2
    from stix2.properties import StringProperty
    from stix2validator import ValidationOptions, validate_file

    results = validate_file(path, ValidationOptions(version="2.1"))
    errors = [str(e) for r in results.object_results for e in r.errors]
    assert results.is_valid and not errors, errors
    warnings = [str(w) for r in results.object_results for w in r.warnings]
    unexpected = [w for w in warnings if not allowed(w)]
    assert not unexpected, "unexpected validator warnings:\n" + "\n".join(unexpected)

    bundle_json = json.load(open(path))
    ext = next(o for o in bundle_json["objects"] if o["type"] == "extension-definition")

    # The phone-number observable as the extension defines it: parsing then
    # needs no allow_custom.
    @stix2.v21.CustomObservable(
        "phone-number",
        [("value", StringProperty(required=True))],
        ["value"],
        extension_name=ext["id"],
    )
    class PhoneNumber:
        pass

    bundle = stix2.parse(bundle_json, allow_custom=False)
    by_type = {}
    for o in bundle.objects:
        by_type.setdefault(o.type, []).append(o)
    ids = {o.id: o for o in bundle.objects}
    # Every reference points at an object of the bundle (a revoked object
    # may name one this bundle no longer holds: it withdraws what an earlier
    # export said).
    for o in bundle.objects:
        if o.get("revoked"):
            continue
        for key, value in o.items():
            refs = value if key.endswith("_refs") else [value] if key.endswith("_ref") else []
            for ref in refs:
                assert ref in ids, f"{o.id}.{key} -> {ref} not in the bundle"
    for phone in by_type.get("phone-number", []):
        # The deterministic SCO id any STIX tool derives from its value.
        again = PhoneNumber(value=phone.value)
        assert again.id == phone.id, (again.id, phone.id)
    orgs = {o.id: o.name for o in by_type.get("identity", [])}
    sightings = {}
    for s in by_type.get("sighting", []):
        if s.get("revoked"):
            continue
        indicator = ids[s.sighting_of_ref]
        number = indicator.pattern.split("'")[1]
        sightings.setdefault(number, []).append(
            {"org": orgs[s.where_sighted_refs[0]], "count": s.count, "confidence": s.confidence}
        )
    revoked = {}
    for o in bundle.objects:
        if o.get("revoked"):
            revoked[o.type] = revoked.get(o.type, 0) + 1
    summary = {
        "types": {t: len([o for o in v if not o.get("revoked")]) for t, v in sorted(by_type.items())},
        "revoked": revoked,
        "warnings": len(warnings),
        "organizations": sorted(o.name for o in by_type.get("identity", []) if o.identity_class == "organization"),
        "numbers": sorted(o.value for o in by_type.get("phone-number", [])),
        "indicators": sorted(i.pattern for i in by_type.get("indicator", [])),
        "sightings": sightings,
        "campaigns": sorted(c.aliases[0] for c in by_type.get("campaign", [])),
        "relationships": sorted(r.relationship_type for r in by_type.get("relationship", [])),
        "markings": sorted(m.name for m in by_type.get("marking-definition", [])),
        "marked": all(
            o.get("object_marking_refs") for o in bundle.objects
            if o.type not in ("marking-definition", "extension-definition", "identity")
        ),
        "note": [n.content for n in by_type.get("note", [])],
    }
    print(json.dumps(summary))


def misp(path, out):
    from pymisp import MISPEvent

    event = MISPEvent()
    event.load_file(path)
    original = json.load(open(path))["Event"]
    # Round trip: everything the file says survives PyMISP's reading.
    again = json.loads(event.to_json())
    assert again["uuid"] == original["uuid"] and again["info"] == original["info"]
    assert sorted(t["name"] for t in again["Tag"]) == sorted(t["name"] for t in original["Tag"])

    def attrs(e):
        out = {}
        for o in e.get("Object", []):
            for a in o["Attribute"]:
                out[(o["uuid"], a["object_relation"])] = (
                    a["type"], a["value"], bool(a["to_ids"]),
                    sorted(t["name"] for t in a.get("Tag", [])),
                    sorted((s["source"], str(s["type"])) for s in a.get("Sighting", [])),
                )
        for a in e.get("Attribute", []):
            out[(a["uuid"], None)] = (a["type"], a["value"], bool(a["to_ids"]), [], [])
        return out

    assert attrs(again) == attrs(original), (attrs(again), attrs(original))
    with open(out, "w") as f:
        f.write(event.to_json())
    numbers = {}
    for o in event.objects:
        assert o.name == "phone-number" and o.template_uuid
        a = o.get_attributes_by_relation("phone-number")[0]
        numbers[a.value] = {
            "to_ids": a.to_ids,
            "tags": sorted(t.name for t in a.tags),
            "sightings": sorted(s.source for s in a.sightings),
            "first_seen": a.first_seen.isoformat() if a.first_seen else None,
        }
    summary = {
        "tags": sorted(t.name for t in event.tags),
        "numbers": numbers,
        "distribution": int(event.distribution),
        "threat_level_id": int(event.threat_level_id),
        "notes": [a.value for a in event.attributes],
    }
    print(json.dumps(summary))


def feed(directory):
    """A MISP feed of one event, as MISP's feed generator writes it."""
    import os
    from datetime import datetime, timedelta, timezone

    from pymisp import MISPEvent, MISPObject, MISPOrganisation

    event = MISPEvent()
    org = MISPOrganisation()
    org.name = "Retail ISAC"
    org.uuid = "6a1b6c5e-3f0e-4c4d-9a7e-2b1f0c9d8e7f"
    event.Orgc = org
    event.info = "Callback phishing wave, subscription renewal lures"
    event.date = "2026-12-05"
    event.add_tag("tlp:green")
    event.add_tag('circl:incident-classification="phishing"')
    a = event.add_attribute("phone-number", "+1 888 555 0100", to_ids=True)
    a.add_tag("TOAD")
    # Days ago, whole seconds: the node keeps a year and refuses the future.
    now = datetime.now(timezone.utc).replace(microsecond=0)
    a.first_seen = now - timedelta(days=6, hours=3)
    a.last_seen = now - timedelta(days=2, hours=1)
    # A number the event names as context, not for detection.
    event.add_attribute("phone-number", "+1 800 555 0199", to_ids=False, comment="the brand's real support line")
    # Not a number at all.
    event.add_attribute("phone-number", "call us", to_ids=True)
    # A national number: read in the importer's --region.
    event.add_attribute("phone-number", "(415) 555-0177", to_ids=True)
    obj = MISPObject("phone-number")
    number = obj.add_attribute("phone-number", value="+442079460018", to_ids=True)
    number.add_tag('sightline:kind="vishing"')
    obj.add_attribute("country-code", value="GB")
    event.add_object(obj)
    feed = event.to_feed(with_meta=True)
    # As MISP's feed generator does: the manifest and hashes go beside the
    # event file.
    manifest = feed["Event"].pop("_manifest")
    feed["Event"].pop("_hashes", None)
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    for uuid in manifest:
        with open(os.path.join(directory, f"{uuid}.json"), "w") as f:
            json.dump(feed, f)
    print(json.dumps({
        "events": list(manifest),
        "first_seen": int(a.first_seen.timestamp()),
        "last_seen": int(a.last_seen.timestamp()),
    }))


def taxii(url, token, read_token):
    """Reads the node's TAXII 2.1 server with the OASIS taxii2-client."""
    import requests
    from taxii2client.exceptions import TAXIIServiceException
    from taxii2client.v21 import Server, as_pages

    class Bearer(requests.auth.AuthBase):
        def __init__(self, token):
            self.token = token

        def __call__(self, r):
            r.headers["Authorization"] = f"Bearer {self.token}"
            return r

    server = Server(url + "/taxii2/", auth=Bearer(token))
    root = server.default
    collections = {c.alias: c for c in root.collections}
    own = collections["own-reports"]
    assert own.can_read and not own.can_write
    # Page through own-reports a few objects at a time.
    objects, pages = [], 0
    for envelope in as_pages(own.get_objects, per_request=4):
        pages += 1
        objects.extend(envelope.get("objects", []))
    numbers = sorted({o["value"] for o in objects if o["type"] == "phone-number"})
    revoked = sorted({o["type"] for o in objects if o.get("revoked")})
    # One object an entry: every page boundary falls between entries, and
    # no entry is lost to it.
    one_by_one = [
        o["value"]
        for envelope in as_pages(own.get_objects, per_request=1, type="phone-number")
        for o in envelope.get("objects", [])
    ]
    # The manifest gives each object's date added; polling after the last
    # one returns nothing new.
    manifest = own.get_manifest()
    last = max(m["date_added"] for m in manifest["objects"])
    after = own.get_objects(added_after=last)
    first = min(m["date_added"] for m in manifest["objects"])
    since_first = own.get_objects(added_after=first)
    campaigns = collections["campaigns"].get_objects()
    campaign_types = sorted({o["type"] for o in campaigns.get("objects", [])})
    only_campaigns = collections["campaigns"].get_objects(type="campaign")
    # A read-only token sees the collection but may not read own-reports.
    reader = Server(url + "/taxii2/", auth=Bearer(read_token)).default
    own_reader = {c.alias: c for c in reader.collections}["own-reports"]
    # The client refuses to ask (can_read is false); the server refuses too.
    try:
        own_reader.get_objects()
        refused = False
    except TAXIIServiceException:
        refused = True
    status = requests.get(
        own_reader.url + "objects/",
        headers={"Authorization": f"Bearer {read_token}", "Accept": "application/taxii+json;version=2.1"},
    ).status_code
    forbidden = refused and status == 403
    print(json.dumps({
        "title": server.title,
        "versions": root.versions,
        "own_numbers": numbers,
        "revoked": revoked,
        "one_by_one": one_by_one,
        "pages": pages,
        "objects": len(objects),
        "after_last": len(after.get("objects", [])),
        "since_first": len({o["value"] for o in since_first.get("objects", []) if o["type"] == "phone-number"}),
        "campaign_types": campaign_types,
        "only_campaigns": sorted({o["type"] for o in only_campaigns.get("objects", [])}),
        "reader_can_read_own": own_reader.can_read,
        "reader_forbidden": forbidden,
    }))


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    {"stix": stix, "misp": misp, "feed": feed, "taxii": taxii}[command](*args)
