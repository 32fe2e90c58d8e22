//! Finding the phone numbers in a pasted message (an SMS, an email, a chat
//! message): the digit runs that could be numbers, as written, for
//! [`crate::parse_number`] to validate. Pure and conservative: a run glued to
//! letters (an order reference, a URL path word) is not a candidate, and
//! neither is one with too few or too many digits for any numbering plan.

/// Most candidates taken from one text.
pub const MAX_CANDIDATES: usize = 200;

/// Fewest digits of a candidate: shorter runs are codes, times and amounts.
const MIN_DIGITS: usize = 7;
/// Most digits: E.164's 15 plus an international or trunk prefix.
const MAX_DIGITS: usize = 17;

fn separator(c: char) -> bool {
    matches!(
        c,
        ' ' | '-' | '.' | '(' | ')' | '\u{a0}' | '\u{2010}'..='\u{2015}'
    )
}

/// The distinct phone-number candidates in `text`, in order of appearance,
/// as written (at most [`MAX_CANDIDATES`]): runs of digits and separators
/// (space, hyphen, dot, parentheses), optionally after a `+`, with 7–17
/// digits, not glued to letters or other digits, and broken by a gap of
/// more than two separators.
pub fn candidates_in(text: &str) -> Vec<&str> {
    let mut out: Vec<&str> = Vec::new();
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let mut i = 0;
    while i < chars.len() && out.len() < MAX_CANDIDATES {
        let (start, c) = chars[i];
        let glued = i > 0 && chars[i - 1].1.is_alphanumeric();
        let opens = c.is_ascii_digit() || c == '+' || c == '(';
        if !opens || glued {
            i += 1;
            continue;
        }
        // Extend over digits and short separator gaps.
        let mut j = i + usize::from(c == '+');
        let mut end = start;
        let mut digits = 0;
        let mut gap = 0;
        while j < chars.len() {
            let (at, d) = chars[j];
            if d.is_ascii_digit() {
                digits += 1;
                gap = 0;
                end = at + d.len_utf8();
            } else if separator(d) && gap < 2 {
                gap += 1;
                if d == ')' {
                    end = at + 1;
                }
            } else {
                break;
            }
            j += 1;
        }
        // What follows the last digit must not be a letter or digit.
        let next = text[end..].chars().next();
        let free = next.is_none_or(|n| !n.is_alphanumeric());
        if (MIN_DIGITS..=MAX_DIGITS).contains(&digits) && free {
            let found = text[start..end].trim_end_matches(|c: char| separator(c) && c != ')');
            if !out.contains(&found) {
                out.push(found);
            }
        }
        i = j.max(i + 1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_numbers_of_a_smishing_text() {
        let sms = "Your parcel is held. Call +44 7700 900123 or (020) 7946-0958 today, \
                   ref 88213. Reply STOP to 07700900456.";
        assert_eq!(
            candidates_in(sms),
            vec!["+44 7700 900123", "(020) 7946-0958", "07700900456"]
        );
    }

    #[test]
    fn skips_runs_glued_to_letters_and_short_codes() {
        let text = "Order AB1234567890 shipped; code 123456; visit x.io/9876543210abc at 10:30";
        assert!(candidates_in(text).is_empty(), "{:?}", candidates_in(text));
    }

    #[test]
    fn separate_numbers_stay_separate_and_repeats_count_once() {
        let text = "+1 415 555 0134, +1 415 555 0134; 415-555-0199";
        assert_eq!(candidates_in(text), vec!["+1 415 555 0134", "415-555-0199"]);
        // A wide gap ends a run.
        assert_eq!(
            candidates_in("0800 123   4567890"),
            vec!["0800 123", "4567890"]
        );
    }

    #[test]
    fn the_number_of_candidates_is_bounded() {
        let text = (0..500)
            .map(|i| format!("+1 415 555 {i:04}"))
            .collect::<Vec<_>>()
            .join(" / ");
        assert_eq!(candidates_in(&text).len(), MAX_CANDIDATES);
    }
}
