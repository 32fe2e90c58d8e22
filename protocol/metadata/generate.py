#!/usr/bin/env python3
"""Regenerate Sightline's phone-number metadata from one libphonenumber release.

The `phonenumber` crate on crates.io carries libphonenumber metadata that lags
the upstream releases. Sightline parses with its own copy instead, written by
this script from the PyPI package `phonenumbers` (the Python port of
libphonenumber, pinned in ../conformance/requirements.txt, the same release the
conformance check uses), so the node and the independent check read the same
numbering plans.

Writes, next to this file:
  * PhoneNumberMetadata.xml: libphonenumber's metadata format, which the
    crate's loader reads (protocol/src/phone.rs embeds it);
  * examples.tsv: every example number the release carries (each region and
    non-geographic entity, each number type), with the E.164 form, region and
    line type libphonenumber gives it; protocol/tests/example_numbers.rs requires
    the node to agree on every one.

  python3 generate.py          write both files
  python3 generate.py --check  exit 1 if the committed files differ from what
                               this release generates (run by scripts/test.sh)
"""

from __future__ import annotations

import os
import re
import sys
from xml.sax.saxutils import escape, quoteattr

import phonenumbers
from phonenumbers import PhoneNumberType
from phonenumbers.phonemetadata import PhoneMetadata

HERE = os.path.dirname(os.path.abspath(__file__))
XML_PATH = os.path.join(HERE, "PhoneNumberMetadata.xml")
EXAMPLES_PATH = os.path.join(HERE, "examples.tsv")

# Descriptor attribute in the Python metadata -> element name in the XML, in
# the order libphonenumber's XML lists them.
DESCRIPTORS = [
    ("general_desc", "generalDesc"),
    ("fixed_line", "fixedLine"),
    ("mobile", "mobile"),
    ("pager", "pager"),
    ("toll_free", "tollFree"),
    ("premium_rate", "premiumRate"),
    ("shared_cost", "sharedCost"),
    ("personal_number", "personalNumber"),
    ("voip", "voip"),
    ("uan", "uan"),
    ("voicemail", "voicemail"),
    ("no_international_dialling", "noInternationalDialling"),
]

# Descriptors that carry an example number of one line type.
TYPED = {
    "fixed_line", "mobile", "pager", "toll_free", "premium_rate", "shared_cost",
    "personal_number", "voip", "uan", "voicemail",
}

# libphonenumber's number type -> the line type on the wire (SPEC.md §2);
# everything else (UNKNOWN, VOICEMAIL) is "unknown".
LINE_FROM_TYPE = {
    PhoneNumberType.MOBILE: "mobile",
    PhoneNumberType.FIXED_LINE: "fixed",
    PhoneNumberType.FIXED_LINE_OR_MOBILE: "fixed-or-mobile",
    PhoneNumberType.VOIP: "voip",
    PhoneNumberType.TOLL_FREE: "toll-free",
    PhoneNumberType.PREMIUM_RATE: "premium",
    PhoneNumberType.SHARED_COST: "shared-cost",
    PhoneNumberType.PAGER: "pager",
    PhoneNumberType.UAN: "uan",
    PhoneNumberType.PERSONAL_NUMBER: "personal",
}

GROUP = re.compile(r"\\(\d)")


def dollars(text: str) -> str:
    """Python's metadata writes group references as \\1; the XML as $1."""
    return GROUP.sub(r"$\1", text)


def first_group(rule: str) -> str:
    """The Python build expanded $NP and $FG in formatting rules; writing the
    first group back as $FG gives the crate's formatter what it expects (it
    replaces $NP, $FG and $CC itself)."""
    return rule.replace("\\1", "$FG")


def lengths(values) -> str:
    return ",".join(str(v) for v in values)


def descriptor(out: list[str], element: str, desc) -> None:
    if desc is None or desc.national_number_pattern is None:
        return
    out.append(f"      <{element}>")
    out.append(f"        <nationalNumberPattern>{escape(desc.national_number_pattern)}</nationalNumberPattern>")
    if desc.possible_length and tuple(desc.possible_length) != (-1,):
        attrs = f"national={quoteattr(lengths(desc.possible_length))}"
        if desc.possible_length_local_only:
            attrs += f" localOnly={quoteattr(lengths(desc.possible_length_local_only))}"
        out.append(f"        <possibleLengths {attrs}/>")
    if desc.example_number:
        out.append(f"        <exampleNumber>{escape(desc.example_number)}</exampleNumber>")
    out.append(f"      </{element}>")


def same_shape(a, b) -> bool:
    return a.pattern == b.pattern and list(a.leading_digits_pattern or []) == list(
        b.leading_digits_pattern or []
    )


def formats(out: list[str], meta) -> None:
    national = list(meta.number_format or [])
    intl = list(meta.intl_number_format or [])
    if not national:
        return
    out.append("      <availableFormats>")
    for fmt in national:
        attrs = f"pattern={quoteattr(fmt.pattern)}"
        if fmt.national_prefix_formatting_rule:
            attrs += f" nationalPrefixFormattingRule={quoteattr(first_group(fmt.national_prefix_formatting_rule))}"
        if fmt.national_prefix_optional_when_formatting:
            attrs += ' nationalPrefixOptionalWhenFormatting="true"'
        if fmt.domestic_carrier_code_formatting_rule:
            attrs += f" carrierCodeFormattingRule={quoteattr(first_group(fmt.domestic_carrier_code_formatting_rule))}"
        out.append(f"        <numberFormat {attrs}>")
        for leading in fmt.leading_digits_pattern or []:
            out.append(f"          <leadingDigits>{escape(leading)}</leadingDigits>")
        out.append(f"          <format>{escape(dollars(fmt.format))}</format>")
        if intl:
            # An explicit international list: this format's international
            # form is its entry there, or "NA" (not dialled from abroad).
            match = next((i for i in intl if same_shape(i, fmt)), None)
            intl_format = dollars(match.format) if match is not None else "NA"
            if match is None or intl_format != dollars(fmt.format):
                out.append(f"          <intlFormat>{escape(intl_format)}</intlFormat>")
        out.append("        </numberFormat>")
    out.append("      </availableFormats>")


def territory(out: list[str], meta) -> None:
    attrs = [f"id={quoteattr(meta.id)}", f'countryCode="{meta.country_code}"']
    optional = [
        ("mainCountryForCode", "true" if meta.main_country_for_code else None),
        ("leadingDigits", meta.leading_digits),
        ("internationalPrefix", meta.international_prefix),
        ("preferredInternationalPrefix", meta.preferred_international_prefix),
        ("nationalPrefix", meta.national_prefix),
        ("nationalPrefixForParsing", meta.national_prefix_for_parsing),
        (
            "nationalPrefixTransformRule",
            dollars(meta.national_prefix_transform_rule)
            if meta.national_prefix_transform_rule
            else None,
        ),
        ("preferredExtnPrefix", meta.preferred_extn_prefix),
        ("mobileNumberPortableRegion", "true" if meta.mobile_number_portable_region else None),
    ]
    attrs += [f"{name}={quoteattr(value)}" for name, value in optional if value]
    out.append(f"    <territory {' '.join(attrs)}>")
    formats(out, meta)
    for attr, element in DESCRIPTORS:
        descriptor(out, element, getattr(meta, attr))
    out.append("    </territory>")


def all_metadata():
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        yield PhoneMetadata.metadata_for_region(region)
    for code in sorted(phonenumbers.COUNTRY_CODES_FOR_NON_GEO_REGIONS):
        yield PhoneMetadata.metadata_for_nongeo_region(code)


def metadata_xml() -> str:
    out = [
        f"<!-- Generated by protocol/metadata/generate.py from the PyPI package"
        f" phonenumbers {phonenumbers.__version__} (libphonenumber metadata). Do not edit. -->",
        "<phoneNumberMetadata>",
        "  <territories>",
    ]
    for meta in all_metadata():
        territory(out, meta)
    out += ["  </territories>", "</phoneNumberMetadata>", ""]
    return "\n".join(out)


def examples_tsv() -> str:
    rows = [
        f"# Example numbers of libphonenumber {phonenumbers.__version__} (PyPI phonenumbers),"
        " generated by protocol/metadata/generate.py. Do not edit.",
        "# plan\tdescriptor\tinput\te164\tregion\tline\tnational",
        "# national: the national significant number, which parsed with the plan's"
        " region as default gives the same E.164 number (\"-\" for non-geographic plans)",
    ]
    for meta in all_metadata():
        for attr, _ in DESCRIPTORS:
            desc = getattr(meta, attr)
            if attr not in TYPED or desc is None or not desc.example_number:
                continue
            text = f"+{meta.country_code}{desc.example_number}"
            number = phonenumbers.parse(text, None)
            e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
            region = phonenumbers.region_code_for_number(number) or "ZZ"
            line = LINE_FROM_TYPE.get(phonenumbers.number_type(number), "unknown")
            valid = phonenumbers.is_valid_number(number)
            if not valid:
                raise SystemExit(f"{meta.id} {attr}: example {text} is not valid in its own release")
            national = "-"
            if meta.id != "001":
                again = phonenumbers.parse(desc.example_number, meta.id)
                if phonenumbers.format_number(again, phonenumbers.PhoneNumberFormat.E164) != e164:
                    raise SystemExit(f"{meta.id} {attr}: national form reads differently")
                national = desc.example_number
            rows.append("\t".join([meta.id, attr, text, e164, region, line, national]))
    rows.append("")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    outputs = {XML_PATH: metadata_xml(), EXAMPLES_PATH: examples_tsv()}
    if argv[1:] == ["--check"]:
        stale = []
        for path, text in outputs.items():
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() == text:
                        continue
            except FileNotFoundError:
                pass
            stale.append(os.path.relpath(path))
        if stale:
            print(f"stale (regenerate with generate.py): {', '.join(stale)}")
            return 1
        print(f"metadata matches phonenumbers {phonenumbers.__version__}")
        return 0
    if argv[1:]:
        print(__doc__)
        return 2
    for path, text in outputs.items():
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    print(f"wrote metadata and examples of phonenumbers {phonenumbers.__version__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
