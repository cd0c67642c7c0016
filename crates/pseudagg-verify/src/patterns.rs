//! Shapes of values that must never be published, whatever column they are in.

use std::sync::LazyLock;

use regex::Regex;

use crate::finding::Rule;

struct Shape {
    rule: Rule,
    regex: Regex,
    what: &'static str,
}

static SHAPES: LazyLock<Vec<Shape>> = LazyLock::new(|| {
    let shape = |rule, pattern: &str, what| Shape {
        rule,
        regex: Regex::new(pattern).expect("valid pattern"),
        what,
    };
    vec![
        // 325D123456: 3 digits, a capital letter, 6 digits; also inside longer text.
        shape(
            Rule::Kundennummer,
            r"(?:^|[^0-9A-Za-z])[0-9]{3}[A-Z][0-9]{6}(?:$|[^0-9A-Za-z])",
            "a Kundennummer",
        ),
        shape(
            Rule::BgNummer,
            r"(?:^|[^0-9A-Za-z])[0-9]{5}BG[0-9]{7}(?:$|[^0-9A-Za-z])",
            "a BG-Nummer",
        ),
        shape(
            Rule::Email,
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            "an e-mail address",
        ),
        // +49 221 1234567, 0221/1234567, 0171-1234567, (0221) 12 34 56: a leading 0 or +49, then
        // at least 7 more digits in groups.
        shape(
            Rule::Phone,
            r"(?:^|[^0-9A-Za-z])(?:\+49|0049|\(0[1-9][0-9]{1,4}\)|0[1-9][0-9]{1,4})(?:[ ./-]?[0-9]{2,}){2,}(?:$|[^0-9A-Za-z])",
            "a phone number",
        ),
        // DE89 3704 0044 0532 0130 00, with or without spaces; other countries too.
        shape(
            Rule::Iban,
            r"(?:^|[^0-9A-Za-z])[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){3,7}(?: ?[A-Z0-9]{1,4})?(?:$|[^0-9A-Za-z])",
            "an IBAN",
        ),
    ]
});

/// The shapes a value has, with a description for the finding.
pub(crate) fn shapes_of(value: &str) -> impl Iterator<Item = (Rule, &'static str)> + '_ {
    // Short values (codes, numbers, bands) cannot hold any of the shapes; skip the regexes.
    let long_enough = value.len() >= 9;
    SHAPES
        .iter()
        .filter(move |s| long_enough && s.regex.is_match(value))
        .map(|s| (s.rule, s.what))
}

/// Words of a text that could be a name: three letters or more, with a capital (`Müller`,
/// `d'Alembert`).
pub(crate) fn name_like_words(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_alphanumeric() || c == '-' || c == '\''))
        .map(|w| w.trim_matches(|c| c == '-' || c == '\''))
        .filter(|w| w.chars().count() >= 3 && w.chars().any(char::is_uppercase))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(v: &str) -> Vec<Rule> {
        shapes_of(v).map(|(r, _)| r).collect()
    }

    #[test]
    fn personal_shapes_are_found_inside_text() {
        assert_eq!(rules("Kunde 325D123456 rief an"), [Rule::Kundennummer]);
        assert_eq!(rules("325D123456"), [Rule::Kundennummer]);
        assert_eq!(rules("BG 12345BG1234567"), [Rule::BgNummer]);
        assert_eq!(rules("m.mueller@example.de"), [Rule::Email]);
        assert_eq!(rules("Tel. 0221/1234567"), [Rule::Phone]);
        assert_eq!(rules("+49 171 2345678"), [Rule::Phone]);
        assert_eq!(rules("(0221) 12 34 56"), [Rule::Phone]);
        // Spaced IBAN digits look like a phone number too; either finding stops the output.
        assert!(rules("DE89 3704 0044 0532 0130 00").contains(&Rule::Iban));
        assert_eq!(rules("DE89370400440532013000"), [Rule::Iban]);
    }

    #[test]
    fn published_shapes_are_not_mistaken_for_personal_data() {
        for ok in [
            "78f0399c47c50cb7fe24900a9391b415a79563dd14e7aa7d46e30e178974358e",
            "2025-03-31",
            "31501",
            "Asylherkunftslaender",
            "Jobcenter Köln (31501)",
            "Regionaldirektion NRW",
            "ik_abgeschlossen_ohne_beratung_6w",
            "65 und aelter",
            "Berufssprachkurs",
            "1234567",
        ] {
            assert!(rules(ok).is_empty(), "{ok}: {:?}", rules(ok));
        }
    }

    #[test]
    fn name_like_words_of_a_note() {
        let words: Vec<_> =
            name_like_words("Rückruf bei Frau Müller-Lüdenscheidt (d'Alembert), Tel. 0221")
                .collect();
        assert_eq!(
            words,
            [
                "Rückruf",
                "Frau",
                "Müller-Lüdenscheidt",
                "d'Alembert",
                "Tel"
            ]
        );
    }
}
