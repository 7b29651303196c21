//! From a topic pattern to a Redis glob that matches at least what it matches.

use pubsub_core::name::Segment;
use pubsub_core::Pattern;

/// The glob for `pattern` under `prefix`. `*` and `#` both become `*` (which in Redis
/// crosses dots), and `#` also swallows the dots around it since it may match no
/// segment; the core matcher removes the extra matches.
pub(crate) fn glob(prefix: &str, pattern: &Pattern) -> String {
    let mut out = escape(prefix);
    let mut previous: Option<&Segment> = None;
    for segment in pattern.segments() {
        let joins_hash =
            matches!(segment, Segment::Many) || matches!(previous, Some(Segment::Many));
        if previous.is_some() && !joins_hash {
            out.push('.');
        }
        match segment {
            Segment::Literal(text) => out.push_str(&escape(text)),
            Segment::One | Segment::Many => out.push('*'),
        }
        previous = Some(segment);
    }
    out
}

/// `text` with Redis glob characters made literal.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '?' | '*' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(pattern: &str) -> String {
        glob("", &Pattern::parse(pattern).unwrap())
    }

    #[test]
    fn wildcards() {
        assert_eq!(g("sync.*"), "sync.*");
        assert_eq!(g("task.*.#"), "task.**");
        assert_eq!(g("a.#.b"), "a*b");
        assert_eq!(g("#.a"), "*a");
        assert_eq!(g("#"), "*");
    }

    #[test]
    fn glob_characters_are_escaped() {
        assert_eq!(g("a?.[x].*"), "a\\?.\\[x\\].*");
        assert_eq!(g("a\\b*.#"), "a\\\\b\\**");
        assert_eq!(
            glob("p[1].", &Pattern::parse("x.*").unwrap()),
            "p\\[1\\].x.*"
        );
    }
}
