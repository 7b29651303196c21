//! Topic names and patterns: the one set of naming rules and the one matcher.
//!
//! A name is 1 to 255 bytes of UTF-8 with no whitespace or control characters. Its
//! segments are separated by `.`. A name that has `*` or `#` as a whole segment is a
//! pattern: `*` matches exactly one segment, `#` matches zero or more (AMQP topic
//! rules). Every other character is literal: `?`, `[` or `\` never act as globs.

use std::sync::Arc;

use crate::{Error, Result};

/// The longest topic name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// One segment of a [`Pattern`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// A literal segment, matched byte for byte.
    Literal(String),
    /// `*`: exactly one segment.
    One,
    /// `#`: zero or more segments.
    Many,
}

/// Checks a name against the naming rules and tells whether it is a pattern.
///
/// ```
/// use pubsub_core::name::validate;
///
/// assert_eq!(validate("changed_task.alice").unwrap(), false);
/// assert_eq!(validate("sync.*").unwrap(), true);
/// assert!(validate("").is_err());
/// assert!(validate("has space").is_err());
/// ```
pub fn validate(name: &str) -> Result<bool> {
    if name.is_empty() {
        return Err(Error::invalid_topic(name, "a topic name cannot be empty"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(Error::invalid_topic(
            name,
            "a topic name is at most 255 bytes long",
        ));
    }
    if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid_topic(
            name,
            "a topic name cannot hold whitespace or control characters",
        ));
    }
    Ok(name.split('.').any(|s| s == "*" || s == "#"))
}

/// Checks that `name` is valid and concrete (not a pattern), as publishing needs.
pub fn validate_concrete(name: &str) -> Result<()> {
    if validate(name)? {
        return Err(Error::invalid_topic(
            name,
            "cannot publish to a pattern: `*` and `#` segments are for subscribing",
        ));
    }
    Ok(())
}

/// Checks a group name: the rules of a concrete topic name, since brokers build
/// queue names from it.
pub fn validate_group(group: &str) -> Result<()> {
    validate_concrete(group).map_err(|e| match e {
        Error::InvalidTopic { name, reason } => Error::InvalidTopic {
            name: format!("group {name}"),
            reason,
        },
        other => other,
    })
}

/// The topic a reply to `address` is published to, on a backend whose reply
/// addresses are topic names (in-process, Redis): an address that is no concrete
/// topic name is [`Error::InvalidTopic`] naming it as a reply-to.
///
/// ```
/// use pubsub_core::name::reply_topic;
///
/// assert_eq!(reply_topic("_inbox.1").unwrap().as_str(), "_inbox.1");
/// let err = reply_topic("has space").unwrap_err().to_string();
/// assert!(err.contains("reply-to has space"), "{err}");
/// ```
pub fn reply_topic(address: &str) -> Result<TopicName> {
    TopicName::new(address).map_err(|e| match e {
        Error::InvalidTopic { name, reason } => Error::InvalidTopic {
            name: format!("reply-to {name}"),
            reason,
        },
        other => other,
    })
}

/// A concrete topic name, checked once: what publishing needs.
///
/// Cheap to clone (one reference count). `*` and `#` segments make a pattern, not a
/// name: use [`Pattern`] for those.
///
/// ```
/// use pubsub_core::TopicName;
///
/// let name = TopicName::new(format!("changed_task.{}", "alice")).unwrap();
/// assert_eq!(name.as_str(), "changed_task.alice");
/// assert!(TopicName::new("sync.*").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(Arc<str>);

impl TopicName {
    /// Checks `name` against the naming rules; a pattern is refused.
    pub fn new(name: impl AsRef<str> + Into<Arc<str>>) -> Result<Self> {
        validate_concrete(name.as_ref())?;
        Ok(TopicName(name.into()))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name as a shared string, for backends that keep it without copying.
    pub fn as_arc(&self) -> &Arc<str> {
        &self.0
    }

    /// The same name in an allocation of its own, checked already. A holder that clones
    /// the name for every message (a subscription stamping its deliveries) then keeps
    /// its reference count away from the clones other threads make.
    ///
    /// ```
    /// use pubsub_core::TopicName;
    ///
    /// let name = TopicName::new("jobs").unwrap();
    /// let own = name.unshared();
    /// assert_eq!(own, name);
    /// assert!(!std::sync::Arc::ptr_eq(own.as_arc(), name.as_arc()));
    /// ```
    pub fn unshared(&self) -> TopicName {
        TopicName(Arc::from(self.as_str()))
    }
}

impl std::ops::Deref for TopicName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for TopicName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::borrow::Borrow<str> for TopicName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for TopicName {
    fn eq(&self, other: &str) -> bool {
        &*self.0 == other
    }
}

impl PartialEq<&str> for TopicName {
    fn eq(&self, other: &&str) -> bool {
        &*self.0 == *other
    }
}

impl PartialEq<String> for TopicName {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl std::fmt::Display for TopicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Debug for TopicName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.0, f)
    }
}

impl TryFrom<&str> for TopicName {
    type Error = Error;

    fn try_from(name: &str) -> Result<Self> {
        TopicName::new(name)
    }
}

impl TryFrom<String> for TopicName {
    type Error = Error;

    fn try_from(name: String) -> Result<Self> {
        TopicName::new(name)
    }
}

/// A parsed subscription pattern, or a concrete name, which matches only itself.
///
/// Cheap to clone. Backends receive patterns already parsed and translate
/// [`segments`](Self::segments) to their broker's syntax.
///
/// ```
/// use pubsub_core::Pattern;
///
/// let p = Pattern::parse("task.*.#").unwrap();
/// assert!(p.matches("task.42"));
/// assert!(p.matches("task.42.done.ok"));
/// assert!(!p.matches("task"));
/// assert!(!Pattern::parse("a.?").unwrap().matches("a.b"));
/// assert_eq!(Pattern::parse("a.b").unwrap().as_name().unwrap().as_str(), "a.b");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    source: Arc<str>,
    segments: Arc<[Segment]>,
    wildcard: bool,
}

impl Pattern {
    /// Parses and validates a name or pattern.
    pub fn parse(name: impl AsRef<str> + Into<Arc<str>>) -> Result<Self> {
        let wildcard = validate(name.as_ref())?;
        let segments = name
            .as_ref()
            .split('.')
            .map(|s| match s {
                "*" => Segment::One,
                "#" => Segment::Many,
                lit => Segment::Literal(lit.to_owned()),
            })
            .collect();
        Ok(Pattern {
            source: name.into(),
            segments,
            wildcard,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Its segments, for backends that translate patterns to their broker's syntax.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether it has a `*` or `#` segment.
    pub fn is_wildcard(&self) -> bool {
        self.wildcard
    }

    /// The concrete name, when this is not a wildcard pattern.
    pub fn as_name(&self) -> Option<TopicName> {
        (!self.wildcard).then(|| TopicName(Arc::clone(&self.source)))
    }

    /// Whether the concrete topic `topic` matches this pattern.
    pub fn matches(&self, topic: &str) -> bool {
        if !self.wildcard {
            return *self.source == *topic;
        }
        matches_segments(&self.segments, topic)
    }
}

impl From<TopicName> for Pattern {
    fn from(name: TopicName) -> Self {
        let segments = name
            .as_str()
            .split('.')
            .map(|s| Segment::Literal(s.to_owned()))
            .collect();
        Pattern {
            source: name.0,
            segments,
            wildcard: false,
        }
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::fmt::Debug for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&*self.source, f)
    }
}

/// Splits off the segment that starts at byte `at`: the segment and where the next
/// one starts (`None` once the topic is used up).
fn segment_at(topic: &str, at: usize) -> (&str, Option<usize>) {
    match topic[at..].find('.') {
        Some(dot) => (&topic[at..at + dot], Some(at + dot + 1)),
        None => (&topic[at..], None),
    }
}

/// Greedy matching with one backtrack point, as for `*` in globs: `#` first takes no
/// segment and takes one more each time the rest fails. Linear in practice, never
/// exponential, and allocation free.
fn matches_segments(pattern: &[Segment], topic: &str) -> bool {
    let mut p = 0;
    let mut t = Some(0);
    let mut backtrack: Option<(usize, Option<usize>)> = None;
    loop {
        if let Some(Segment::Many) = pattern.get(p) {
            backtrack = Some((p, t));
            p += 1;
            continue;
        }
        match (t, pattern.get(p)) {
            (None, None) => return true,
            (Some(at), Some(seg)) => {
                let (word, next) = segment_at(topic, at);
                let fits = match seg {
                    Segment::One => true,
                    Segment::Literal(lit) => lit == word,
                    Segment::Many => unreachable!("handled above"),
                };
                if fits {
                    p += 1;
                    t = next;
                    continue;
                }
            }
            _ => {}
        }
        // Mismatch: let the last `#` swallow one more segment, if any are left.
        match backtrack {
            Some((star, Some(at))) => {
                let next = segment_at(topic, at).1;
                backtrack = Some((star, next));
                p = star + 1;
                t = next;
            }
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pattern: &str, topic: &str) -> bool {
        Pattern::parse(pattern).unwrap().matches(topic)
    }

    #[test]
    fn hash_alone_matches_everything() {
        for t in ["a", "a.b", "a.b.c", ".", "a..b"] {
            assert!(m("#", t), "{t}");
        }
    }

    #[test]
    fn star_is_exactly_one_segment() {
        assert!(m("a.*", "a.b"));
        assert!(!m("a.*", "a.b.c"));
        assert!(!m("a.*", "a"));
        assert!(m("*", "a"));
        assert!(!m("*", "a.b"));
        assert!(m("*.*", "a.b"));
    }

    #[test]
    fn hash_in_the_middle() {
        assert!(m("a.#.b", "a.b"));
        assert!(m("a.#.b", "a.x.b"));
        assert!(m("a.#.b", "a.x.y.z.b"));
        assert!(!m("a.#.b", "a.x.y.c"));
        assert!(!m("a.#.b", "b.a.b"));
        assert!(m("a.#.b.#.c", "a.b.x.b.y.c"));
    }

    #[test]
    fn hash_matches_zero_segments_at_either_end() {
        assert!(m("#.a", "a"));
        assert!(m("a.#", "a"));
        assert!(m("#.a.#", "a"));
        assert!(m("a.#", "a.b.c"));
        assert!(m("#.c", "a.b.c"));
        assert!(!m("#.c", "a.b.c.d"));
        assert!(m("#.#", "a"));
    }

    #[test]
    fn empty_segments_are_literal() {
        assert!(m("a..b", "a..b"));
        assert!(m("a.*.b", "a..b"));
        assert!(!m("a.*.b", "a.b"));
        assert!(m("*", ""));
        assert!(m("a.*", "a."));
        assert!(m("#", ""));
    }

    #[test]
    fn glob_characters_are_literal() {
        assert!(m("a.?", "a.?"));
        assert!(!m("a.?", "a.b"));
        assert!(!m("a.[bc]", "a.b"));
        assert!(m("a.[bc]", "a.[bc]"));
        assert!(m("a\\*", "a\\*"));
        assert!(!m("a*", "ab"));
        assert!(m("a*.*", "a*.x"));
    }

    #[test]
    fn names_are_validated() {
        assert!(validate("").is_err());
        assert!(validate(&"a".repeat(255)).is_ok());
        assert!(validate(&"a".repeat(256)).is_err());
        assert!(validate("a b").is_err());
        assert!(validate("a\tb").is_err());
        assert!(validate("a\u{0}b").is_err());
        assert!(validate("message:stored").is_ok());
        assert!(validate("__general__").is_ok());
        assert!(validate_concrete("a.#").is_err());
        assert!(validate_concrete("a.b#").is_ok());
    }

    /// The obvious recursive matcher, exponential but clearly right.
    fn reference(pattern: &[&str], topic: &[&str]) -> bool {
        match pattern.split_first() {
            None => topic.is_empty(),
            Some((&"#", rest)) => (0..=topic.len()).any(|i| reference(rest, &topic[i..])),
            Some((&"*", rest)) => !topic.is_empty() && reference(rest, &topic[1..]),
            Some((lit, rest)) => topic.first() == Some(lit) && reference(rest, &topic[1..]),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn agrees_with_the_reference(
            pattern in prop::collection::vec(prop::sample::select(vec!["a", "b", "", "*", "#"]), 1..7),
            topic in prop::collection::vec(prop::sample::select(vec!["a", "b", ""]), 1..8),
        ) {
            let p = pattern.join(".");
            let t = topic.join(".");
            prop_assume!(!p.is_empty(), "an empty name is invalid, not a pattern");
            prop_assert_eq!(m(&p, &t), reference(&pattern, &topic), "pattern {:?} topic {:?}", p, t);
        }
    }
}
