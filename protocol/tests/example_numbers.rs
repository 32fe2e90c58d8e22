//! Every example number of the libphonenumber release Sightline's metadata
//! comes from (`metadata/examples.tsv`, written by `metadata/generate.py`
//! from the same release) must parse to the E.164 form, region and line type
//! that release gives it: a number a member's gateway sees must never be
//! refused, or typed differently, because of stale or misread metadata.

use sightline_protocol::parse_number;

const EXAMPLES: &str = include_str!("../metadata/examples.tsv");

struct Example<'a> {
    plan: &'a str,
    descriptor: &'a str,
    input: &'a str,
    e164: &'a str,
    region: &'a str,
    line: &'a str,
    /// The national significant number (`-` for non-geographic plans).
    national: &'a str,
}

fn examples() -> Vec<Example<'static>> {
    EXAMPLES
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let fields: Vec<&str> = line.split('\t').collect();
            let [plan, descriptor, input, e164, region, line, national] = fields[..] else {
                panic!("examples.tsv: not seven fields: {line:?}");
            };
            Example {
                plan,
                descriptor,
                input,
                e164,
                region,
                line,
                national,
            }
        })
        .collect()
}

#[test]
fn every_example_number_of_the_metadata_release_parses_as_libphonenumber_says() {
    let examples = examples();
    assert!(examples.len() > 1_000, "only {} examples", examples.len());
    let mut disagreements = Vec::new();
    for ex in &examples {
        let got = match parse_number(ex.input, None) {
            Ok(parsed) => (
                parsed.e164.as_str().to_owned(),
                parsed.region,
                parsed.line.as_str().to_owned(),
            ),
            Err(e) => (format!("refused: {e}"), String::new(), String::new()),
        };
        let want = (ex.e164.to_owned(), ex.region.to_owned(), ex.line.to_owned());
        if got != want {
            disagreements.push(format!(
                "{} {} {}: got {got:?}, libphonenumber says {want:?}",
                ex.plan, ex.descriptor, ex.input
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} example numbers disagree:\n{}",
        disagreements.len(),
        examples.len(),
        disagreements.join("\n")
    );
}

#[test]
fn national_forms_of_the_example_numbers_parse_in_their_region() {
    // The same numbers as a gateway in that country writes them: the national
    // significant number, with the plan's region as the default. A national
    // prefix must not be stripped from a number that is already complete
    // (Russia's toll-free 800 numbers start with the national prefix 8).
    let examples = examples();
    let national: Vec<_> = examples.iter().filter(|ex| ex.national != "-").collect();
    assert!(
        national.len() > 1_000,
        "only {} national forms",
        national.len()
    );
    let mut disagreements = Vec::new();
    for ex in &national {
        match parse_number(ex.national, Some(ex.plan)) {
            Ok(parsed) if parsed.e164.as_str() == ex.e164 => {}
            Ok(parsed) => disagreements.push(format!(
                "{} {} {}: read as {}, libphonenumber says {}",
                ex.plan, ex.descriptor, ex.national, parsed.e164, ex.e164
            )),
            Err(e) => disagreements.push(format!(
                "{} {} {}: refused ({e}), libphonenumber says {}",
                ex.plan, ex.descriptor, ex.national, ex.e164
            )),
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} national forms disagree:\n{}",
        disagreements.len(),
        national.len(),
        disagreements.join("\n")
    );
}

#[test]
fn a_number_of_a_possible_length_is_never_refused_for_its_length() {
    // Every example has a length its plan allows, and so does the same
    // number with another last digit: whether or not the plan assigns it,
    // it is never "too short" or "too long".
    let mut wrong = Vec::new();
    for ex in &examples() {
        for digit in '0'..='9' {
            let mut input = ex.input.to_owned();
            input.pop();
            input.push(digit);
            if let Err(e) = parse_number(&input, None) {
                if matches!(e.code(), "too_short" | "too_long") {
                    wrong.push(format!(
                        "{} {}: {input} refused as {e}",
                        ex.plan, ex.descriptor
                    ));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn the_e164_fast_path_gives_what_the_full_parse_gives() {
    use sightline_protocol::e164_as_given;
    // Every example number in E.164 form takes the fast path unchanged.
    let mut fast = 0;
    for e in examples() {
        if let Some(given) = e164_as_given(e.e164) {
            assert_eq!(given.as_str(), e.e164, "{}", e.e164);
            fast += 1;
        }
    }
    assert!(
        fast * 10 >= examples().len() * 9,
        "only {fast} took the fast path"
    );
    // Digit strings after every calling code, and the same with a national
    // prefix written after the code (`+44 0 20…`): whenever the fast path
    // answers and the full parse accepts, they agree; a national prefix is
    // never kept.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut compared = 0;
    for e in examples() {
        let code_len = e.e164.len() - 1 - e.national.len();
        if e.national == "-" || code_len == 0 || code_len > 3 {
            continue;
        }
        let code = &e.e164[1..=code_len];
        for prefix in ["", "0", "1", "8", "06", "80"] {
            let mut digits: String = e.national.to_owned();
            // Vary the last digits: other numbers of the same ranges.
            let len = digits.len();
            let tail = format!("{:04}", next() % 10_000);
            digits.replace_range(len.saturating_sub(4).., &tail[4 - len.min(4)..]);
            let input = format!("+{code}{prefix}{digits}");
            if let (Some(given), Ok(parsed)) = (e164_as_given(&input), parse_number(&input, None)) {
                assert_eq!(given.as_str(), parsed.e164.as_str(), "{input}");
                compared += 1;
            }
        }
    }
    assert!(compared > 1_000, "only {compared} compared");
}
