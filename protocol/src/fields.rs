//! The record's field types: the wire enumerations (kind, verdict, channel,
//! line type) with their codes and names, and the errors of out-of-range
//! fields. Depends on nothing else in the crate, so that number parsing,
//! hashing and the record can all use them.

use std::fmt;
use std::str::FromStr;

/// Longest brand text, in UTF-8 bytes.
pub const MAX_BRAND_BYTES: usize = 64;
/// Longest network id, in bytes.
pub const MAX_NETWORK_ID_BYTES: usize = 32;
/// Largest timestamp accepted: 9999-12-31T23:59:59Z. Anything later is a bug
/// or an attack, and rejecting it keeps every timestamp representable in
/// every language's date type.
pub const MAX_TIMESTAMP: u64 = 253_402_300_799;

/// A field that is present but out of range or of the wrong shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Network id is not 1–32 bytes of `a-z`, `0-9`, `-` starting with a letter or digit.
    #[error("network id must be 1-{MAX_NETWORK_ID_BYTES} characters of a-z, 0-9 and '-', not starting with '-'")]
    NetworkId,
    /// The field has the wrong CBOR type or length.
    #[error("{field}: expected {expected}")]
    WrongType {
        /// Field name as in SPEC.md.
        field: &'static str,
        /// What SPEC.md requires there.
        expected: &'static str,
    },
    /// Sequence numbers start at 1.
    #[error("seq must be at least 1")]
    SeqZero,
    /// Country calling codes are 1–999.
    #[error("cc {0} is not a country calling code (1-999)")]
    CountryCode(u64),
    /// An enumeration value this version does not define.
    #[error("{field}: unknown value {value}")]
    UnknownEnum {
        /// Field name as in SPEC.md.
        field: &'static str,
        /// The code that was found.
        value: u64,
    },
    /// Brand text is empty, too long, or contains control characters.
    #[error("brand must be 1-{MAX_BRAND_BYTES} bytes of UTF-8 without control characters")]
    Brand,
    /// Confidence is a percentage.
    #[error("confidence {0} is over 100")]
    Confidence(u64),
    /// A sighting counts at least one observation, at most 2^32-1.
    #[error("count {0} is out of range (1-4294967295)")]
    Count(u64),
    /// A timestamp is past [`MAX_TIMESTAMP`].
    #[error("{field} {value} is after year 9999")]
    Timestamp {
        /// Field name as in SPEC.md.
        field: &'static str,
        /// The value that was found.
        value: u64,
    },
    /// `last_seen` is before `first_seen`.
    #[error("last_seen {last_seen} is before first_seen {first_seen}")]
    SeenOrder {
        /// First observation.
        first_seen: u64,
        /// Last observation.
        last_seen: u64,
    },
    /// The links of a version-2 record break a rule of SPEC.md §13.2.
    #[error("links {0}")]
    Links(&'static str),
    /// A `protected` verdict without a role, a role without it, or it in
    /// a version-1 record (SPEC.md §13.5).
    #[error("verdict protected needs record version 2 and a role, and only it has a role")]
    Protection,
    /// `expires` is not after `last_seen`.
    #[error("expires {expires} is not after last_seen {last_seen}")]
    Expiry {
        /// Last observation.
        last_seen: u64,
        /// Expiry time.
        expires: u64,
    },
}

/// Defines a wire enumeration: variant ↔ CBOR code ↔ kebab-case name.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident, $field:literal { $($(#[$vmeta:meta])* $variant:ident = $code:literal, $text:tt;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The CBOR code (SPEC.md §4).
            pub const fn code(self) -> u8 {
                match self { $($name::$variant => $code,)+ }
            }

            /// The value for a CBOR code.
            ///
            /// # Errors
            /// [`FieldError::UnknownEnum`] for a code this version does not define.
            pub fn from_code(code: u64) -> Result<Self, FieldError> {
                match code {
                    $($code => Ok($name::$variant),)+
                    value => Err(FieldError::UnknownEnum { field: $field, value }),
                }
            }

            /// The kebab-case name used in JSON, CSV, the CLI and SPEC.md.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        field: $field,
                        given: s.to_owned(),
                        expected: &[$($text),+],
                    }),
                }
            }
        }
    };
}

/// A name that is not one of an enumeration's values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {field} {given:?}; expected one of: {}", expected.join(", "))]
pub struct UnknownName {
    /// Which enumeration.
    pub field: &'static str,
    /// What was given.
    pub given: String,
    /// The accepted names.
    pub expected: &'static [&'static str],
}

wire_enum!(
    /// What kind of abuse the number was used for.
    Kind, "kind" {
        /// Scam text messages.
        Smishing = 0, "smishing";
        /// Scam voice calls.
        Vishing = 1, "vishing";
        /// Callback phishing / telephone-oriented attack delivery (TOAD):
        /// a lure that makes the victim call the number.
        Callback = 2, "callback";
        /// Business e-mail compromise "verification" numbers.
        Bec = 3, "bec";
        /// Automated mass calls.
        Robocall = 4, "robocall";
        /// Number involved in SIM-swap fraud.
        SimSwap = 5, "sim-swap";
        /// Anything else.
        Other = 6, "other";
    }
);

wire_enum!(
    /// What the origin says about the number.
    Verdict, "verdict" {
        /// The number is used for abuse.
        Malicious = 0, "malicious";
        /// The origin checked and the number is legitimate.
        FalsePositive = 1, "false-positive";
        /// The origin takes back its earlier report of this number.
        Withdrawn = 2, "withdrawn";
        /// The origin operates this number (record version 2 only, with a
        /// `role`, SPEC.md §13.5): reports of abuse from it are spoofing.
        Protected = 3, "protected";
    }
);

wire_enum!(
    /// How the operator of a protected number uses it (SPEC.md §13.5).
    Role, "role" {
        /// The number only receives calls and messages (a bank's fraud
        /// line): any call or message from it is spoofed, as on the UK and
        /// US Do-Not-Originate lists.
        InboundOnly = 0, "inbound-only";
        /// The operator also calls or messages from it: a report of it may
        /// be spoofing, or a mistaken report of a legitimate caller.
        Outbound = 1, "outbound";
    }
);

wire_enum!(
    /// How the abuse reached the victim.
    Channel, "channel" {
        /// SMS / MMS / RCS.
        Sms = 0, "sms";
        /// Voice call.
        Voice = 1, "voice";
        /// E-mail containing the number.
        Email = 2, "email";
        /// Chat or messaging app.
        Chat = 3, "chat";
        /// Anything else.
        Other = 4, "other";
    }
);

wire_enum!(
    /// Line type from libphonenumber's numbering-plan metadata: a supporting
    /// signal only (VoIP is widely legitimate).
    LineType, "line" {
        /// The metadata does not say.
        Unknown = 0, "unknown";
        /// Mobile.
        Mobile = 1, "mobile";
        /// Fixed line.
        Fixed = 2, "fixed";
        /// The plan does not distinguish fixed and mobile (e.g. US/CA).
        FixedOrMobile = 3, "fixed-or-mobile";
        /// VoIP range.
        Voip = 4, "voip";
        /// Toll-free.
        TollFree = 5, "toll-free";
        /// Premium rate.
        Premium = 6, "premium";
        /// Shared cost.
        SharedCost = 7, "shared-cost";
        /// Pager.
        Pager = 8, "pager";
        /// Universal access number.
        Uan = 9, "uan";
        /// Personal number.
        Personal = 10, "personal";
    }
);
