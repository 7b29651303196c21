//! Topic names and patterns from arbitrary text: the parser agrees with the naming
//! rules, a parsed name gives back its text, and the matcher agrees with a plain
//! reference matcher without ever panicking.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pubsub_core::name::{validate, Segment};
use pubsub_core::{Pattern, TopicName};

#[derive(Debug, Arbitrary)]
struct Input {
    pattern: String,
    topic: String,
    /// Rewrite both over `a`, `b`, `.`, `*` and `#`, where arbitrary text seldom
    /// lands on the segments that make a pattern.
    small_alphabet: bool,
}

fuzz_target!(|input: Input| {
    let (pattern, topic) = if input.small_alphabet {
        (small(&input.pattern), small(&input.topic))
    } else {
        (input.pattern, input.topic)
    };
    check_name(&pattern, &topic);
    check_name(&topic, &pattern);
});

fn small(text: &str) -> String {
    text.bytes()
        .map(|b| ['a', 'b', '.', '*', '#'][usize::from(b % 5)])
        .collect()
}

fn check_name(text: &str, other: &str) {
    let rules = validate(text);
    let parsed = Pattern::parse(text);
    let name = TopicName::new(text);
    assert_eq!(rules.is_ok(), parsed.is_ok(), "{text:?}");
    assert_eq!(
        name.is_ok(),
        matches!(rules, Ok(false)),
        "a name is exactly a valid text that is no pattern: {text:?}"
    );
    let Ok(pattern) = parsed else {
        return;
    };
    assert!(!text.is_empty() && text.len() <= pubsub_core::name::MAX_NAME_LEN);
    assert_eq!(pattern.as_str(), text);
    assert_eq!(pattern.to_string(), text);
    assert_eq!(
        joined(pattern.segments()),
        text,
        "segments rebuild the text"
    );
    let wildcard = pattern
        .segments()
        .iter()
        .any(|s| !matches!(s, Segment::Literal(_)));
    assert_eq!(pattern.is_wildcard(), wildcard, "{text:?}");
    // `*` matches the segment `*` and `#` matches `#`: a pattern matches its own text.
    assert!(pattern.matches(text), "{text:?} does not match itself");
    assert_eq!(
        pattern.matches(other),
        reference(pattern.segments(), other),
        "pattern {text:?}, topic {other:?}"
    );
    match name {
        Ok(name) => {
            assert_eq!(name.as_str(), text);
            assert_eq!(name.to_string(), text);
            assert_eq!(pattern.as_name().as_ref(), Some(&name));
            assert_eq!(Pattern::from(name.clone()), pattern);
            // A concrete name matches exactly itself.
            assert_eq!(
                pattern.matches(other),
                other == text,
                "{text:?} vs {other:?}"
            );
        }
        Err(_) => assert_eq!(pattern.as_name(), None),
    }
}

fn joined(segments: &[Segment]) -> String {
    let texts: Vec<&str> = segments
        .iter()
        .map(|s| match s {
            Segment::Literal(text) => text.as_str(),
            Segment::One => "*",
            Segment::Many => "#",
        })
        .collect();
    texts.join(".")
}

/// AMQP topic matching as a table: `fits[i][j]` tells whether the first `i` pattern
/// segments match the first `j` topic segments. Quadratic, and plainly right.
fn reference(pattern: &[Segment], topic: &str) -> bool {
    let words: Vec<&str> = topic.split('.').collect();
    let mut fits = vec![vec![false; words.len() + 1]; pattern.len() + 1];
    fits[0][0] = true;
    for (i, segment) in pattern.iter().enumerate() {
        for j in 0..=words.len() {
            fits[i + 1][j] = match segment {
                Segment::Many => fits[i][j] || (j > 0 && fits[i + 1][j - 1]),
                Segment::One => j > 0 && fits[i][j - 1],
                Segment::Literal(text) => j > 0 && fits[i][j - 1] && words[j - 1] == text,
            };
        }
    }
    fits[pattern.len()][words.len()]
}
