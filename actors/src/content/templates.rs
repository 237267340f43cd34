//! Interviewer templates (greetings, acknowledgements, transitions, closings, written feedback),
//! loaded from `templates/*.toml`, validated, and chosen deterministically by seed and turn.

use std::collections::BTreeMap;

use super::scoring::Note;
use super::{stable_hash, ContentError, Track, Verdict};

/// The template files, as embedded at build time: (path relative to the repository, TOML text).
pub const EMBEDDED: [(&str, &str); 5] = [
    (
        "templates/greetings.toml",
        include_str!("../../../templates/greetings.toml"),
    ),
    (
        "templates/acknowledgements.toml",
        include_str!("../../../templates/acknowledgements.toml"),
    ),
    (
        "templates/transitions.toml",
        include_str!("../../../templates/transitions.toml"),
    ),
    (
        "templates/closings.toml",
        include_str!("../../../templates/closings.toml"),
    ),
    (
        "templates/feedback.toml",
        include_str!("../../../templates/feedback.toml"),
    ),
];

/// Fewest variants a list may have.
pub const MIN_VARIANTS: usize = 8;

/// Fewest variants of a feedback note list (one line about an answer's shape).
pub const MIN_NOTE_VARIANTS: usize = 4;

/// One list of a template file: its key, the placeholders every variant must use, those allowed,
/// and the fewest variants.
struct ListSpec {
    key: &'static str,
    required: &'static [&'static str],
    allowed: &'static [&'static str],
    min: usize,
}

/// A list with no placeholders and [`MIN_NOTE_VARIANTS`] variants: a feedback note.
const fn note(key: &'static str) -> ListSpec {
    ListSpec {
        key,
        required: &[],
        allowed: &[],
        min: MIN_NOTE_VARIANTS,
    }
}

/// The note list of each [`Note`].
fn note_key(n: Note) -> &'static str {
    match n {
        Note::TermList => "feedback.note_term_list",
        Note::OffTopic => "feedback.note_off_topic",
        Note::TooShort => "feedback.note_too_short",
        Note::NoReasons => "feedback.note_no_reasons",
        Note::NoExample => "feedback.note_no_example",
        Note::NoContext => "feedback.note_no_context",
        Note::NoOwnActions => "feedback.note_no_own_actions",
        Note::NoResult => "feedback.note_no_result",
        Note::Instructions => "feedback.note_instructions",
    }
}

/// file name → its lists.
const SPEC: [(&str, &[ListSpec]); 5] = [
    (
        "greetings.toml",
        &[
            ListSpec {
                key: "technical",
                required: &["name", "role"],
                allowed: &["name", "role"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "behavioral",
                required: &["name", "role"],
                allowed: &["name", "role"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "mixed",
                required: &["name", "role"],
                allowed: &["name", "role"],
                min: MIN_VARIANTS,
            },
        ],
    ),
    (
        "acknowledgements.toml",
        &[
            ListSpec {
                key: "solid",
                required: &[],
                allowed: &["name"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "partial",
                required: &[],
                allowed: &["name"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "not_yet",
                required: &[],
                allowed: &["name"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "empty",
                required: &[],
                allowed: &["name"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "skipped",
                required: &[],
                allowed: &["name"],
                min: MIN_VARIANTS,
            },
        ],
    ),
    (
        "transitions.toml",
        &[
            ListSpec {
                key: "next",
                required: &[],
                allowed: &[],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "follow_up",
                required: &[],
                allowed: &[],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "last",
                required: &[],
                allowed: &[],
                min: MIN_VARIANTS,
            },
        ],
    ),
    (
        "closings.toml",
        &[
            ListSpec {
                key: "closing",
                required: &["name"],
                allowed: &["name"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "early_end",
                required: &["name"],
                allowed: &["name"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "expired",
                required: &["name"],
                allowed: &["name"],
                min: MIN_VARIANTS,
            },
        ],
    ),
    (
        "feedback.toml",
        &[
            ListSpec {
                key: "solid",
                required: &["covered"],
                allowed: &["covered", "missing"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "partial",
                required: &["covered", "missing"],
                allowed: &["covered", "missing"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "not_yet",
                required: &["missing"],
                allowed: &["covered", "missing"],
                min: MIN_VARIANTS,
            },
            ListSpec {
                key: "off_topic",
                required: &["missing"],
                allowed: &["missing"],
                min: MIN_VARIANTS,
            },
            note("note_term_list"),
            note("note_off_topic"),
            note("note_too_short"),
            note("note_no_reasons"),
            note("note_no_example"),
            note("note_no_context"),
            note("note_no_own_actions"),
            note("note_no_result"),
            note("note_instructions"),
        ],
    ),
];

/// The interviewer's fixed lines, all lists validated (present, at least [`MIN_VARIANTS`] variants,
/// required placeholders used, no unknown placeholders).
#[derive(Debug, Clone)]
pub struct Templates {
    /// `"greetings.technical"` → variants, and so on for every list of every file.
    lists: BTreeMap<String, Vec<String>>,
}

/// Most covered points named in a feedback sentence.
pub const FEEDBACK_COVERED: usize = 3;

/// Most missing points named in a feedback sentence.
pub const FEEDBACK_MISSING: usize = 2;

/// What the interviewer reacts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ack {
    /// An answer graded in a band.
    Graded(Verdict),
    /// Nothing usable, or nothing about the question.
    Empty,
    /// The candidate skipped the question.
    Skipped,
}

/// What written feedback is made from.
#[derive(Debug, Clone, Copy)]
pub struct Feedback<'a> {
    /// The band.
    pub verdict: Verdict,
    /// Noun phrases of the points stated.
    pub covered: &'a [String],
    /// Noun phrases of the points not stated.
    pub missing: &'a [String],
    /// What the scorer noticed about the answer's shape, most important first.
    pub notes: &'a [Note],
}

/// The lead-in spoken before a question.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Before the next main question.
    Next,
    /// Before a follow-up on the same question.
    FollowUp,
    /// Before the last question.
    Last,
}

/// How an interview ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// All questions answered; the report is ready.
    Completed,
    /// The candidate ended it.
    EarlyEnd,
    /// Closed after inactivity.
    Expired,
}

impl Templates {
    /// The templates embedded at build time (`templates/*.toml`), validated.
    pub fn load_embedded() -> Result<Templates, ContentError> {
        Self::parse(&EMBEDDED)
    }

    /// Parses and validates template files given as (path, TOML text); the path's file name
    /// (`greetings.toml`, ...) says which file it is. All five files must be present.
    pub fn parse(files: &[(&str, &str)]) -> Result<Templates, ContentError> {
        let mut lists = BTreeMap::new();
        for (fname, specs) in SPEC.iter() {
            let Some((path, text)) = files.iter().find(|(p, _)| file_name(p) == *fname) else {
                return Err(ContentError {
                    path: format!("templates/{fname}"),
                    line: 0,
                    message: "missing template file".into(),
                });
            };
            let table: toml::Table =
                toml::from_str(text).map_err(|e| toml_error(path, text, &e))?;
            let stem = fname.trim_end_matches(".toml");
            for spec in specs.iter() {
                let variants = parse_list(path, text, &table, spec)?;
                lists.insert(format!("{stem}.{}", spec.key), variants);
            }
            for key in table.keys() {
                if !specs.iter().any(|s| s.key == key) {
                    return Err(ContentError {
                        path: path.to_string(),
                        line: key_line(text, key),
                        message: format!("unexpected key {key:?}"),
                    });
                }
            }
        }
        Ok(Templates { lists })
    }

    /// The opening line for a track, with `{name}` and `{role}` filled in.
    pub fn greeting(&self, track: Track, seed: &str, name: &str, role: &str) -> String {
        let key = match track {
            Track::Technical => "greetings.technical",
            Track::Behavioral => "greetings.behavioral",
            Track::Mixed => "greetings.mixed",
        };
        let t = self.pick(key, seed, 0);
        let role = if role.trim().is_empty() {
            "software engineer"
        } else {
            role.trim()
        };
        finish(&fill_name(&t.replace("{role}", role), name))
    }

    /// A short reaction to an answer (never mentions a score, never announces what comes next, so
    /// it fits before the next question and before the closing alike).
    pub fn acknowledgement(&self, ack: Ack, seed: &str, turn: u32, name: &str) -> String {
        let key = match ack {
            Ack::Graded(Verdict::Solid) => "acknowledgements.solid",
            Ack::Graded(Verdict::Partial) => "acknowledgements.partial",
            Ack::Graded(Verdict::NotYet) => "acknowledgements.not_yet",
            Ack::Empty => "acknowledgements.empty",
            Ack::Skipped => "acknowledgements.skipped",
        };
        finish(&fill_name(self.pick(key, seed, turn), name))
    }

    /// The lead-in before a question.
    pub fn transition(&self, kind: Transition, seed: &str, turn: u32) -> String {
        let key = match kind {
            Transition::Next => "transitions.next",
            Transition::FollowUp => "transitions.follow_up",
            Transition::Last => "transitions.last",
        };
        self.pick(key, seed, turn).to_string()
    }

    /// The closing line, with `{name}` filled in.
    pub fn closing(&self, kind: Closing, seed: &str, name: &str) -> String {
        let key = match kind {
            Closing::Completed => "closings.closing",
            Closing::EarlyEnd => "closings.early_end",
            Closing::Expired => "closings.expired",
        };
        finish(&fill_name(self.pick(key, seed, 0), name))
    }

    /// Written feedback on an answer the rubric scorer graded, in the second person: a variant of
    /// the verdict's list with the covered and missing points as noun phrases from the pool (at most
    /// [`FEEDBACK_COVERED`] and [`FEEDBACK_MISSING`] of them; the full lists go with the grade), then
    /// one line for the answer's most important [`Note`]. A variant that needs an empty list is
    /// skipped for the next one; when none fits, a built-in sentence is used. Never leaves a
    /// placeholder.
    pub fn feedback(&self, fb: &Feedback<'_>, seed: &str, slot: u32) -> String {
        let off_topic = fb.notes.contains(&Note::OffTopic) && fb.covered.is_empty();
        let key = match fb.verdict {
            _ if off_topic => "feedback.off_topic",
            Verdict::Solid => "feedback.solid",
            Verdict::Partial => "feedback.partial",
            Verdict::NotYet => "feedback.not_yet",
        };
        let covered = join_natural(&fb.covered[..fb.covered.len().min(FEEDBACK_COVERED)]);
        let missing = join_natural(&fb.missing[..fb.missing.len().min(FEEDBACK_MISSING)]);
        let variants = self.list(key);
        let mut out = None;
        if !variants.is_empty() {
            let start = choose(seed, key, slot, variants.len());
            for k in 0..variants.len() {
                let v = &variants[(start + k) % variants.len()];
                if (v.contains("{covered}") && covered.is_empty())
                    || (v.contains("{missing}") && missing.is_empty())
                {
                    continue;
                }
                out = Some(finish(
                    &v.replace("{covered}", &covered)
                        .replace("{missing}", &missing),
                ));
                break;
            }
        }
        let mut text = out.unwrap_or_else(|| fallback_feedback(fb.verdict, &covered, &missing));
        // The most important note, but not the one the main line already says.
        let note = fb.notes.iter().copied().find(|n| {
            let said = off_topic && *n == Note::OffTopic;
            let minor = fb.verdict == Verdict::Solid && *n == Note::TooShort;
            !(said || minor)
        });
        if let Some(n) = note {
            let line = self.pick(note_key(n), seed, slot);
            if !line.is_empty() {
                text.push(' ');
                text.push_str(line);
            }
        }
        text
    }

    /// Feedback for points that are not noun phrases (a generated question's rubric): labelled
    /// lists, which read correctly whatever the points' grammar.
    pub fn feedback_as_lists(&self, fb: &Feedback<'_>) -> String {
        let mut out = match fb.verdict {
            Verdict::Solid => "Solid answer.",
            Verdict::Partial => "A partial answer.",
            Verdict::NotYet => "Not there yet.",
        }
        .to_string();
        let list = |xs: &[String]| {
            xs.iter()
                .map(|x| x.trim().trim_end_matches('.'))
                .collect::<Vec<_>>()
                .join("; ")
        };
        if !fb.covered.is_empty() {
            out.push_str(&format!(" Covered: {}.", list(fb.covered)));
        }
        if !fb.missing.is_empty() {
            out.push_str(&format!(" Still to cover: {}.", list(fb.missing)));
        }
        out
    }

    /// All variants of a list (`"greetings.technical"`, `"feedback.weak"`, ...); empty if unknown.
    pub fn list(&self, key: &str) -> &[String] {
        self.lists.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    fn pick(&self, key: &str, seed: &str, turn: u32) -> &str {
        let variants = self.list(key);
        if variants.is_empty() {
            return "";
        }
        &variants[choose(seed, key, turn, variants.len())]
    }
}

/// index = (stable_hash([seed, kind]) + slot) % len: a per-interview rotation of the list, so that
/// consecutive slots (turns) of one interview never get the same variant while the list lasts.
fn choose(seed: &str, kind: &str, slot: u32, len: usize) -> usize {
    if len == 0 {
        return 0;
    }
    ((stable_hash(&[seed, kind]) % len as u64 + u64::from(slot)) % len as u64) as usize
}

fn fallback_feedback(verdict: Verdict, covered: &str, missing: &str) -> String {
    let mut out = match verdict {
        Verdict::Solid => "A solid answer.",
        Verdict::Partial => "A partial answer.",
        Verdict::NotYet => "Not there yet.",
    }
    .to_string();
    if !covered.is_empty() {
        out.push_str(&format!(" You covered {covered}."));
    }
    if !missing.is_empty() {
        out.push_str(&format!(" Still missing: {missing}."));
    }
    out
}

/// Joins noun phrases naturally: "a", "a and b", "a, b and c". When a phrase itself contains a
/// comma, a colon, " and " or " or ", phrases are separated by semicolons instead ("a; b; and c") so
/// the list stays readable. Phrases are trimmed and trailing full stops removed; their casing is the
/// pool's (they are written as they should read inside a sentence).
pub fn join_natural(items: &[String]) -> String {
    let parts: Vec<&str> = items
        .iter()
        .map(|s| s.trim().trim_end_matches('.').trim())
        .filter(|s| !s.is_empty())
        .collect();
    let complex = parts
        .iter()
        .any(|p| p.contains(',') || p.contains(':') || p.contains(" and ") || p.contains(" or "));
    match parts.len() {
        0 => String::new(),
        1 => parts[0].to_string(),
        2 if complex => format!("{}; and {}", parts[0], parts[1]),
        n if complex => format!("{}; and {}", parts[..n - 1].join("; "), parts[n - 1]),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// Fills `{name}`; with an empty name, removes it with the punctuation around it.
fn fill_name(t: &str, name: &str) -> String {
    let name = name.trim();
    if !name.is_empty() {
        return t.replace("{name}", name);
    }
    let mut s = t
        .replace(", {name},", ",")
        .replace(", {name}", "")
        .replace(" {name},", ",")
        .replace(" {name}!", "!")
        .replace(" {name}.", ".")
        .replace("{name}, ", "")
        .replace(" {name}", "")
        .replace("{name}", "");
    s = s.replace(" ,", ",");
    s
}

/// Trims and capitalises the first letter.
fn finish(s: &str) -> String {
    let s = s.trim();
    let mut chars = s.chars();
    match chars.next() {
        Some(c) if c.is_lowercase() => c.to_uppercase().chain(chars).collect(),
        _ => s.to_string(),
    }
}

fn file_name(path: &str) -> &str {
    path.rsplit(['/', '\\']).next().unwrap_or(path)
}

fn parse_list(
    path: &str,
    text: &str,
    table: &toml::Table,
    spec: &ListSpec,
) -> Result<Vec<String>, ContentError> {
    let err = |line: usize, message: String| ContentError {
        path: path.to_string(),
        line,
        message,
    };
    let kline = key_line(text, spec.key);
    let Some(value) = table.get(spec.key) else {
        return Err(err(0, format!("missing list {:?}", spec.key)));
    };
    let Some(array) = value.as_array() else {
        return Err(err(
            kline,
            format!("{:?} must be an array of strings", spec.key),
        ));
    };
    let mut out = Vec::with_capacity(array.len());
    for (i, v) in array.iter().enumerate() {
        let Some(s) = v.as_str() else {
            return Err(err(kline, format!("{}[{i}] must be a string", spec.key)));
        };
        let line = entry_line(text, kline, s);
        if s.trim().is_empty() {
            return Err(err(line, format!("{}[{i}] is empty", spec.key)));
        }
        let found = match placeholders(s) {
            Ok(found) => found,
            Err(m) => return Err(err(line, format!("{}[{i}]: {m}", spec.key))),
        };
        for p in &found {
            if !spec.allowed.contains(&p.as_str()) {
                return Err(err(
                    line,
                    format!("{}[{i}]: placeholder {{{p}}} not allowed here", spec.key),
                ));
            }
        }
        for r in spec.required {
            if !found.iter().any(|p| p == r) {
                return Err(err(
                    line,
                    format!("{}[{i}]: missing required placeholder {{{r}}}", spec.key),
                ));
            }
        }
        out.push(s.to_string());
    }
    if out.len() < spec.min {
        return Err(err(
            kline,
            format!(
                "{:?} has {} variants, need at least {}",
                spec.key,
                out.len(),
                spec.min
            ),
        ));
    }
    Ok(out)
}

/// The `{placeholder}` names in `s`; an error for stray or nested braces.
pub(crate) fn placeholders(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find(['{', '}']) {
        if rest[i..].starts_with('}') {
            return Err(format!("stray '}}' in {s:?}"));
        }
        let after = &rest[i + 1..];
        let Some(j) = after.find(['{', '}']) else {
            return Err(format!("unclosed '{{' in {s:?}"));
        };
        if after[j..].starts_with('{') {
            return Err(format!("nested '{{' in {s:?}"));
        }
        let name = &after[..j];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
            return Err(format!("bad placeholder {{{name}}} in {s:?}"));
        }
        out.push(name.to_string());
        rest = &after[j + 1..];
    }
    Ok(out)
}

/// 1-based line of `key = ...` at the start of a line, 0 when not found.
pub(crate) fn key_line(text: &str, key: &str) -> usize {
    for (i, line) in text.lines().enumerate() {
        let l = line.trim_start();
        if let Some(rest) = l.strip_prefix(key) {
            let rest = rest.trim_start();
            if rest.starts_with('=') {
                return i + 1;
            }
        }
    }
    0
}

/// 1-based line of the entry whose text starts like `entry`, searched from `from` (1-based); falls
/// back to `from`.
pub(crate) fn entry_line(text: &str, from: usize, entry: &str) -> usize {
    // A prefix free of characters that TOML may have escaped.
    let probe: String = entry
        .chars()
        .take_while(|c| *c != '"' && *c != '\\' && *c != '\n')
        .take(40)
        .collect();
    if probe.trim().is_empty() {
        return from;
    }
    for (i, line) in text.lines().enumerate().skip(from.saturating_sub(1)) {
        if line.contains(probe.as_str()) {
            return i + 1;
        }
    }
    from
}

/// A `toml` parse error as a [`ContentError`] with the line of its span.
pub(crate) fn toml_error(path: &str, text: &str, e: &toml::de::Error) -> ContentError {
    let line = e.span().map(|r| line_of_offset(text, r.start)).unwrap_or(0);
    ContentError {
        path: path.to_string(),
        line,
        message: e.message().trim().to_string(),
    }
}

/// 1-based line of a byte offset.
pub(crate) fn line_of_offset(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn embedded() -> Templates {
        Templates::load_embedded().unwrap()
    }

    #[test]
    fn embedded_templates_load() {
        let t = embedded();
        for key in [
            "greetings.technical",
            "acknowledgements.empty",
            "transitions.follow_up",
            "closings.expired",
            "feedback.solid",
        ] {
            assert!(t.list(key).len() >= MIN_VARIANTS, "{key}");
        }
    }

    #[test]
    fn greeting_fills_name_and_role_deterministically() {
        let t = embedded();
        let a = t.greeting(Track::Technical, "iv-1", "Ada", "Backend Engineer");
        let b = t.greeting(Track::Technical, "iv-1", "Ada", "Backend Engineer");
        assert_eq!(a, b);
        assert!(a.contains("Ada") && a.contains("Backend Engineer"));
        assert!(!a.contains('{'));
        // Different seeds spread over the variants.
        let distinct: std::collections::HashSet<String> = (0..40)
            .map(|i| t.greeting(Track::Mixed, &format!("s{i}"), "Ada", "SRE"))
            .collect();
        assert!(distinct.len() >= 5);
    }

    #[test]
    fn empty_name_leaves_no_gap() {
        let t = embedded();
        for i in 0..50 {
            let seed = format!("s{i}");
            for s in [
                t.greeting(Track::Behavioral, &seed, "", "PM"),
                t.closing(Closing::Expired, &seed, " "),
                t.acknowledgement(Ack::Graded(Verdict::Solid), &seed, i, ""),
            ] {
                assert!(
                    !s.contains('{') && !s.contains(" ,") && !s.contains("  "),
                    "{s}"
                );
                assert!(!s.starts_with(','), "{s}");
            }
        }
    }

    #[test]
    fn choice_is_the_documented_hash() {
        let t = embedded();
        let list = t.list("transitions.next");
        let n = list.len() as u64;
        let idx = ((stable_hash(&["seed", "transitions.next"]) % n + 3) % n) as usize;
        assert_eq!(t.transition(Transition::Next, "seed", 3), list[idx]);
        // Consecutive slots are different variants.
        for i in 0..20 {
            assert_ne!(
                t.transition(Transition::Next, "seed", i),
                t.transition(Transition::Next, "seed", i + 1)
            );
        }
    }

    #[test]
    fn feedback_never_leaves_placeholders() {
        let t = embedded();
        let cov = vec!["the cache invalidation strategy".to_string()];
        let miss = vec![
            "TTLs, eviction and stampedes".to_string(),
            "metrics".to_string(),
        ];
        let none: Vec<String> = Vec::new();
        let notes = [Note::NoReasons];
        for verdict in [Verdict::Solid, Verdict::Partial, Verdict::NotYet] {
            for slot in 0..30 {
                for (c, m) in [(&cov, &miss), (&none, &miss), (&cov, &none), (&none, &none)] {
                    for n in [&notes[..], &[]] {
                        let fb = Feedback {
                            verdict,
                            covered: c,
                            missing: m,
                            notes: n,
                        };
                        let f = t.feedback(&fb, "iv", slot);
                        assert!(!f.contains('{') && !f.contains('}'), "{f}");
                        assert!(!f.trim().is_empty());
                        assert!(!f.contains(": .") && !f.contains("()"), "{f}");
                    }
                }
            }
        }
        let fb = Feedback {
            verdict: Verdict::Partial,
            covered: &cov,
            missing: &miss,
            notes: &notes,
        };
        let f = t.feedback(&fb, "iv", 1);
        assert!(f.contains("the cache invalidation strategy"), "{f}");
        assert!(
            f.contains("TTLs, eviction and stampedes; and metrics"),
            "{f}"
        );
        assert!(
            t.list("feedback.note_no_reasons")
                .iter()
                .any(|l| f.ends_with(l.as_str())),
            "{f}"
        );
        // Off topic: its own list, and the note is not repeated.
        let off = Feedback {
            verdict: Verdict::NotYet,
            covered: &none,
            missing: &miss,
            notes: &[Note::OffTopic],
        };
        let f = t.feedback(&off, "iv", 2);
        assert!(
            t.list("feedback.off_topic")
                .iter()
                .any(|v| f.starts_with(v.split('{').next().unwrap_or(""))),
            "{f}"
        );
    }

    #[test]
    fn reactions_never_announce_what_comes_next() {
        // The reaction to the last answer is followed by the closing, so no reaction may say
        // "let's move on" or "next".
        let t = embedded();
        for key in [
            "acknowledgements.solid",
            "acknowledgements.partial",
            "acknowledgements.not_yet",
            "acknowledgements.empty",
            "acknowledgements.skipped",
        ] {
            for v in t.list(key) {
                let low = v.to_lowercase();
                for phrase in [
                    "move on",
                    "moving on",
                    "keep going",
                    "let's continue",
                    "next question",
                    "on to the next",
                    "let's go on",
                    "next one",
                    "something else",
                ] {
                    assert!(
                        !low.contains(phrase),
                        "{key}: {v:?} announces what comes next"
                    );
                }
            }
        }
    }

    #[test]
    fn joins_naturally() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(join_natural(&v(&[])), "");
        assert_eq!(join_natural(&v(&["Indexes"])), "Indexes");
        assert_eq!(join_natural(&v(&["a", "b"])), "a and b");
        assert_eq!(join_natural(&v(&["a", "b", "c."])), "a, b and c");
        assert_eq!(join_natural(&v(&["API design", "b"])), "API design and b");
        assert_eq!(
            join_natural(&v(&["a and b", "c", "d"])),
            "a and b; c; and d"
        );
        assert_eq!(join_natural(&v(&["a, b", "c"])), "a, b; and c");
    }

    #[test]
    fn errors_name_file_and_line() {
        let mut files: Vec<(&str, String)> =
            EMBEDDED.iter().map(|(p, t)| (*p, t.to_string())).collect();
        // Drop the {name} from one closing variant.
        let closings = &mut files[3].1;
        let bad = closings.replacen("Thank you, {name}, that's", "Thank you, that's", 1);
        let expected_line = bad
            .lines()
            .position(|l| l.contains("Thank you, that's"))
            .unwrap()
            + 1;
        *closings = bad;
        let refs: Vec<(&str, &str)> = files.iter().map(|(p, t)| (*p, t.as_str())).collect();
        let e = Templates::parse(&refs).unwrap_err();
        assert_eq!(e.path, "templates/closings.toml");
        assert_eq!(e.line, expected_line);
        assert!(e.message.contains("{name}"), "{e}");

        // A syntax error carries the line from the toml crate.
        let mut files2: Vec<(&str, String)> =
            EMBEDDED.iter().map(|(p, t)| (*p, t.to_string())).collect();
        files2[2].1 = "next = [\n  \"a\",\n  oops\n]\n".into();
        let refs: Vec<(&str, &str)> = files2.iter().map(|(p, t)| (*p, t.as_str())).collect();
        let e = Templates::parse(&refs).unwrap_err();
        assert_eq!(e.path, "templates/transitions.toml");
        assert_eq!(e.line, 3, "{e}");

        // Too few variants.
        let mut files3: Vec<(&str, String)> =
            EMBEDDED.iter().map(|(p, t)| (*p, t.to_string())).collect();
        files3[2].1 = format!(
            "# c\nnext = [\"a.\"]\nfollow_up = {0}\nlast = {0}\n",
            "[\"a.\", \"b.\", \"c.\", \"d.\", \"e.\", \"f.\", \"g.\", \"h.\"]"
        );
        let refs: Vec<(&str, &str)> = files3.iter().map(|(p, t)| (*p, t.as_str())).collect();
        let e = Templates::parse(&refs).unwrap_err();
        assert_eq!((e.path.as_str(), e.line), ("templates/transitions.toml", 2));

        // A missing file.
        let e = Templates::parse(&EMBEDDED[..4]).unwrap_err();
        assert_eq!(e.path, "templates/feedback.toml");
    }
}
