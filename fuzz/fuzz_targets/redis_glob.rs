//! The Redis glob of a topic pattern: it is well formed (`*` its only wildcard, every
//! other special character escaped), and it matches every channel whose topic the
//! pattern matches, so a pattern subscription misses nothing; for a name, exactly
//! the name's channel.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use pubsub_core::name::Segment;
use pubsub_core::Pattern;
use pubsub_redis::fuzzing::glob;

#[derive(Debug, Arbitrary)]
struct Input {
    prefix: String,
    pattern: String,
    /// Rewrite the pattern over `a`, `?`, `[`, `\`, `.`, `*` and `#`.
    small_alphabet: bool,
    /// Segments to put where the pattern has `*` or `#`, and how many for each `#`.
    fillers: Vec<String>,
    counts: Vec<u8>,
    /// A topic that the pattern may or may not match.
    topic: String,
}

fuzz_target!(|input: Input| {
    let text = if input.small_alphabet {
        let alphabet = ['a', '?', '[', '\\', '.', '*', '#'];
        input
            .pattern
            .bytes()
            .map(|b| alphabet[usize::from(b) % alphabet.len()])
            .collect()
    } else {
        input.pattern
    };
    let Ok(pattern) = Pattern::parse(text.as_str()) else {
        return;
    };
    let redis_glob = Glob::parse(&glob(&input.prefix, &pattern));
    let channel = |topic: &str| format!("{}{topic}", input.prefix);

    let matched = instance(&pattern, &input.fillers, &input.counts);
    assert!(pattern.matches(&matched), "{pattern:?} vs {matched:?}");
    assert!(
        redis_glob.matches(&channel(&matched)),
        "{redis_glob:?} misses {matched:?}, which {pattern:?} matches"
    );
    if pattern.matches(&input.topic) {
        assert!(
            redis_glob.matches(&channel(&input.topic)),
            "{:?}",
            input.topic
        );
    }
    if !pattern.is_wildcard() {
        assert!(redis_glob.matches(&channel(&text)));
        assert_eq!(
            redis_glob.matches(&channel(&input.topic)),
            input.topic == text
        );
    }
});

/// A topic the pattern matches: `*` filled with one segment, `#` with zero or more.
fn instance(pattern: &Pattern, fillers: &[String], counts: &[u8]) -> String {
    let mut fillers = fillers.iter().map(|f| f.replace('.', "")).cycle();
    let mut counts = counts.iter().copied().cycle();
    let mut segments = Vec::new();
    for segment in pattern.segments() {
        match segment {
            Segment::Literal(text) => segments.push(text.clone()),
            Segment::One => segments.push(fillers.next().unwrap_or_default()),
            Segment::Many => {
                for _ in 0..counts.next().unwrap_or(0) % 4 {
                    segments.push(fillers.next().unwrap_or_default());
                }
            }
        }
    }
    if segments.is_empty() {
        // Only `#`s taking nothing: the topic still has its one (empty) segment.
        return String::new();
    }
    segments.join(".")
}

/// A Redis glob made of literal bytes and `*` (any bytes), as Redis reads it.
#[derive(Debug)]
struct Glob(Vec<Option<u8>>);

impl Glob {
    /// Reads `glob`; any wildcard other than `*` left unescaped is a bug of the
    /// translation.
    fn parse(glob: &str) -> Glob {
        let mut tokens = Vec::new();
        let mut bytes = glob.bytes();
        while let Some(b) = bytes.next() {
            tokens.push(match b {
                b'*' => None,
                b'\\' => Some(bytes.next().expect("a glob ends in a lone backslash")),
                b'?' | b'[' | b']' => panic!("unescaped {:?} in glob {glob:?}", b as char),
                literal => Some(literal),
            });
        }
        Glob(tokens)
    }

    /// Wildcard matching with one backtrack point: the last `*` takes one more byte
    /// each time the rest fails.
    fn matches(&self, channel: &str) -> bool {
        let (glob, text) = (&self.0, channel.as_bytes());
        let (mut g, mut t) = (0, 0);
        let mut star: Option<(usize, usize)> = None;
        while t < text.len() {
            match glob.get(g) {
                Some(None) => {
                    star = Some((g, t));
                    g += 1;
                }
                Some(Some(b)) if *b == text[t] => {
                    g += 1;
                    t += 1;
                }
                _ => match star {
                    Some((s, st)) => {
                        star = Some((s, st + 1));
                        g = s + 1;
                        t = st + 1;
                    }
                    None => return false,
                },
            }
        }
        glob[g..].iter().all(Option::is_none)
    }
}
