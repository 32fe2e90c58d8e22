//! The bulk import format: CSV with a header naming the columns
//! `number,kind[,channel,brand,confidence,first_seen,last_seen,count,url,sender,campaign,message]`
//! (the last four are record version 2's links, SPEC.md §13; `url` may
//! hold several URLs separated by white space).
//! Pure: rows become typed, validated reports or a reason with a line
//! number, so bad rows never stop the good ones.

use std::io::Read;

use crate::links::{normalize_campaign, normalize_sender, script_words, url_domain, LinkInput};
use crate::phone::parse_number;
use crate::sighting::{validate_brand, Channel, Kind};

/// The columns a header may name (lower-case; order free).
pub const COLUMNS: [&str; 12] = [
    "number",
    "kind",
    "channel",
    "brand",
    "confidence",
    "first_seen",
    "last_seen",
    "count",
    "url",
    "sender",
    "campaign",
    "message",
];

/// One valid row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// 1-based line in the input.
    pub line: u64,
    /// The number as written (valid; normalized again where it is used).
    pub number: String,
    /// Kind.
    pub kind: Kind,
    /// Channel, if given.
    pub channel: Option<Channel>,
    /// Brand, if given.
    pub brand: Option<String>,
    /// Confidence 0–100, if given.
    pub confidence: Option<u8>,
    /// Observations, if given.
    pub count: Option<u32>,
    /// Unix seconds, if given.
    pub first_seen: Option<u64>,
    /// Unix seconds, if given.
    pub last_seen: Option<u64>,
    /// Links, if given (each checked as the node will normalize it).
    pub links: LinkInput,
}

/// One row that cannot be imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    /// 1-based line in the input.
    pub line: u64,
    /// The number column as written (may be empty).
    pub number: String,
    /// Why.
    pub reason: String,
}

/// The header is unusable; nothing can be imported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    /// No header could be read.
    #[error("cannot read the CSV header: {0}")]
    Unreadable(String),
    /// A column this format does not define.
    #[error("unknown column {0:?}; expected some of: number, kind, channel, brand, confidence, first_seen, last_seen, count, url, sender, campaign, message")]
    UnknownColumn(String),
    /// `number` or `kind` is missing.
    #[error("the header must name the column {0}")]
    MissingColumn(&'static str),
}

/// The parsed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Import {
    /// Valid rows, in file order.
    pub rows: Vec<ImportRow>,
    /// Invalid rows, in file order.
    pub errors: Vec<RowError>,
}

/// Parses CSV import data. Lines starting with `#` are comments; fields are
/// trimmed; quoted fields may contain commas.
///
/// # Errors
/// [`HeaderError`] if the header is unusable.
pub fn parse_csv<R: Read>(reader: R, region: Option<&str>) -> Result<Import, HeaderError> {
    let mut csv = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .comment(Some(b'#'))
        .from_reader(reader);
    let headers: Vec<String> = csv
        .headers()
        .map_err(|e| HeaderError::Unreadable(e.to_string()))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    if let Some(unknown) = headers.iter().find(|h| !COLUMNS.contains(&h.as_str())) {
        return Err(HeaderError::UnknownColumn(unknown.clone()));
    }
    for required in ["number", "kind"] {
        if !headers.iter().any(|h| h == required) {
            return Err(HeaderError::MissingColumn(required));
        }
    }
    let number_at = headers.iter().position(|h| h == "number").unwrap_or(0);
    let mut import = Import::default();
    for record in csv.records() {
        match record {
            Ok(record) => {
                let line = record.position().map_or(0, csv::Position::line);
                let number = record.get(number_at).unwrap_or("").to_owned();
                match parse_row(&headers, &record, region, line) {
                    Ok(row) => import.rows.push(row),
                    Err(reason) => import.errors.push(RowError {
                        line,
                        number,
                        reason,
                    }),
                }
            }
            Err(e) => {
                let line = e.position().map_or(0, csv::Position::line);
                import.errors.push(RowError {
                    line,
                    number: String::new(),
                    reason: format!("unreadable row: {e}"),
                });
            }
        }
    }
    Ok(import)
}

fn parse_row(
    headers: &[String],
    record: &csv::StringRecord,
    region: Option<&str>,
    line: u64,
) -> Result<ImportRow, String> {
    let mut row = ImportRow {
        line,
        number: String::new(),
        kind: Kind::Other,
        channel: None,
        brand: None,
        confidence: None,
        count: None,
        first_seen: None,
        last_seen: None,
        links: LinkInput::default(),
    };
    let mut kind = None;
    for (name, value) in headers.iter().zip(record.iter()) {
        let value = value.trim();
        if value.is_empty() {
            continue;
        }
        match name.as_str() {
            "number" => {
                parse_number(value, region)
                    .map_err(|e| format!("invalid number {value:?}: {e}"))?;
                value.clone_into(&mut row.number);
            }
            "kind" => kind = Some(value.parse::<Kind>().map_err(|e| e.to_string())?),
            "channel" => row.channel = Some(value.parse::<Channel>().map_err(|e| e.to_string())?),
            "brand" => {
                validate_brand(value).map_err(|e| e.to_string())?;
                row.brand = Some(value.to_owned());
            }
            "confidence" => {
                row.confidence = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|c| *c <= 100)
                        .ok_or_else(|| format!("confidence {value:?} is not 0-100"))?,
                );
            }
            "count" => {
                row.count = Some(
                    value
                        .parse()
                        .ok()
                        .filter(|c| *c >= 1)
                        .ok_or_else(|| format!("count {value:?} is not a positive integer"))?,
                );
            }
            "first_seen" => {
                row.first_seen = Some(
                    value
                        .parse()
                        .map_err(|_| format!("first_seen {value:?} is not unix seconds"))?,
                );
            }
            "last_seen" => {
                row.last_seen = Some(
                    value
                        .parse()
                        .map_err(|_| format!("last_seen {value:?} is not unix seconds"))?,
                );
            }
            "url" => {
                for url in value.split_whitespace() {
                    url_domain(url).map_err(|e| e.to_string())?;
                    row.links.urls.push(url.to_owned());
                }
            }
            "sender" => {
                normalize_sender(value).map_err(|e| e.to_string())?;
                row.links.sender = Some(value.to_owned());
            }
            "campaign" => {
                normalize_campaign(value).map_err(|e| e.to_string())?;
                row.links.campaign = Some(value.to_owned());
            }
            "message" => {
                if script_words(value).is_empty() {
                    return Err("message holds no words to fingerprint".into());
                }
                row.links.message = Some(value.to_owned());
            }
            _ => {}
        }
    }
    if row.number.is_empty() {
        return Err("missing number".into());
    }
    row.kind = kind.ok_or("missing kind")?;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_columns_are_checked_per_row() {
        let csv = "number,kind,url,sender,campaign,message\n\
                   +1 415 555 0101,smishing,https://a.example.com/x http://b.example.org,72723,Parcel wave,Your parcel is held\n\
                   +1 415 555 0102,smishing,http://localhost/,,,\n\
                   +1 415 555 0103,smishing,,,,\" ,; \"\n\
                   +1 415 555 0104,smishing,,,,\n";
        let import = parse_csv(csv.as_bytes(), None).unwrap();
        assert_eq!(import.rows.len(), 2, "{:?}", import.errors);
        let links = &import.rows[0].links;
        assert_eq!(
            links.urls,
            ["https://a.example.com/x", "http://b.example.org"]
        );
        assert_eq!(links.sender.as_deref(), Some("72723"));
        assert_eq!(links.campaign.as_deref(), Some("Parcel wave"));
        assert_eq!(links.message.as_deref(), Some("Your parcel is held"));
        assert!(import.rows[1].links.is_empty());
        let bad: Vec<u64> = import.errors.iter().map(|e| e.line).collect();
        assert_eq!(bad, vec![3, 4]);
        assert!(
            import.errors[0].reason.contains("registrable domain"),
            "{}",
            import.errors[0].reason
        );
    }

    #[test]
    fn good_and_bad_rows_with_line_numbers() {
        let csv = "# exported from the gateway\nnumber,kind,channel,brand,confidence,count\n\
                   +1 415 555 0101,smishing,sms,\"Bank, Inc.\",80,3\n\
                   +1 415 555 010,smishing,sms,,80,1\n\
                   +44 20 7946 0958,phishing,voice,,70,1\n\
                   +61 491 570 156,sim-swap,other,,101,1\n\
                   ,vishing,voice,,50,1\n\
                   +33 9 87 65 43 21,bec\n";
        let import = parse_csv(csv.as_bytes(), None).unwrap();
        assert_eq!(import.rows.len(), 2);
        assert_eq!(import.rows[0].brand.as_deref(), Some("Bank, Inc."));
        assert_eq!(import.rows[0].line, 3);
        assert_eq!(import.rows[1].kind, Kind::Bec);
        let lines: Vec<u64> = import.errors.iter().map(|e| e.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7]);
        assert!(import.errors[0].reason.contains("too short"));
        assert!(import.errors[1].reason.contains("phishing"));
        assert!(import.errors[3].reason.contains("missing number"));
    }

    #[test]
    fn header_problems_stop_everything() {
        assert_eq!(
            parse_csv("number,kind,colour\n".as_bytes(), None),
            Err(HeaderError::UnknownColumn("colour".into()))
        );
        assert_eq!(
            parse_csv("number,brand\n".as_bytes(), None),
            Err(HeaderError::MissingColumn("kind"))
        );
    }

    #[test]
    fn invalid_utf8_is_a_row_error_not_a_crash() {
        let mut data = b"number,kind\n+14155550101,smishing\n".to_vec();
        data.extend_from_slice(b"+1415555\xff0102,smishing\n");
        let import = parse_csv(data.as_slice(), None).unwrap();
        assert_eq!(import.rows.len(), 1);
        assert_eq!(import.errors.len(), 1);
        assert!(
            import.errors[0].reason.contains("unreadable"),
            "{:?}",
            import.errors
        );
    }

    #[test]
    fn national_numbers_use_the_region() {
        let import = parse_csv(
            "number,kind\n(415) 555-0101,vishing\n".as_bytes(),
            Some("US"),
        )
        .unwrap();
        assert_eq!(import.rows.len(), 1);
        let import = parse_csv("number,kind\n(415) 555-0101,vishing\n".as_bytes(), None).unwrap();
        assert_eq!(import.errors.len(), 1);
    }
}
