//! Interviewer templates (greetings, acknowledgements, transitions, closings, written feedback),
//! loaded from `templates/*.toml`, validated, and chosen deterministically by seed and turn.

use std::collections::BTreeMap;

use super::{stable_hash, Band, ContentError, Track};

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

/// One list of a template file: its key, the placeholders every variant must use, and those allowed.
struct ListSpec {
    key: &'static str,
    required: &'static [&'static str],
    allowed: &'static [&'static str],
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
            },
            ListSpec {
                key: "behavioral",
                required: &["name", "role"],
                allowed: &["name", "role"],
            },
            ListSpec {
                key: "mixed",
                required: &["name", "role"],
                allowed: &["name", "role"],
            },
        ],
    ),
    (
        "acknowledgements.toml",
        &[
            ListSpec {
                key: "strong",
                required: &[],
                allowed: &["name"],
            },
            ListSpec {
                key: "solid",
                required: &[],
                allowed: &["name"],
            },
            ListSpec {
                key: "weak",
                required: &[],
                allowed: &["name"],
            },
            ListSpec {
                key: "empty",
                required: &[],
                allowed: &["name"],
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
            },
            ListSpec {
                key: "follow_up",
                required: &[],
                allowed: &[],
            },
            ListSpec {
                key: "last",
                required: &[],
                allowed: &[],
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
            },
            ListSpec {
                key: "early_end",
                required: &["name"],
                allowed: &["name"],
            },
            ListSpec {
                key: "expired",
                required: &["name"],
                allowed: &["name"],
            },
        ],
    ),
    (
        "feedback.toml",
        &[
            ListSpec {
                key: "strong",
                required: &["covered"],
                allowed: &["covered", "missing"],
            },
            ListSpec {
                key: "solid",
                required: &["covered", "missing"],
                allowed: &["covered", "missing"],
            },
            ListSpec {
                key: "weak",
                required: &["covered", "missing"],
                allowed: &["covered", "missing"],
            },
            ListSpec {
                key: "empty",
                required: &["missing"],
                allowed: &["covered", "missing"],
            },
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

    /// A short reaction to an answer of the given band (never mentions a score).
    pub fn acknowledgement(&self, band: Band, seed: &str, turn: u32, name: &str) -> String {
        let key = match band {
            Band::Strong => "acknowledgements.strong",
            Band::Solid => "acknowledgements.solid",
            Band::Weak => "acknowledgements.weak",
            Band::Empty => "acknowledgements.empty",
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

    /// Written feedback for one answer. Lists are joined naturally ("a, b and c"). A variant that
    /// needs a list that is empty is skipped for the next one of the band; when none fits, a
    /// built-in sentence that uses only what is available is returned. Never leaves a placeholder.
    pub fn feedback(
        &self,
        band: Band,
        seed: &str,
        turn: u32,
        covered: &[String],
        missing: &[String],
    ) -> String {
        let key = match band {
            Band::Strong => "feedback.strong",
            Band::Solid => "feedback.solid",
            Band::Weak => "feedback.weak",
            Band::Empty => "feedback.empty",
        };
        let phrases =
            |xs: &[String]| -> Vec<String> { xs.iter().map(|x| rubric_phrase(x)).collect() };
        let covered_s = join_natural(&phrases(covered));
        let missing_s = join_natural(&phrases(missing));
        let variants = self.list(key);
        if !variants.is_empty() {
            let start = choose(seed, key, turn, variants.len());
            for k in 0..variants.len() {
                let v = &variants[(start + k) % variants.len()];
                let needs_covered = v.contains("{covered}");
                let needs_missing = v.contains("{missing}");
                if (needs_covered && covered_s.is_empty())
                    || (needs_missing && missing_s.is_empty())
                {
                    continue;
                }
                let out = v
                    .replace("{covered}", &covered_s)
                    .replace("{missing}", &missing_s);
                return finish(&out);
            }
        }
        fallback_feedback(band, &covered_s, &missing_s)
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

fn fallback_feedback(band: Band, covered: &str, missing: &str) -> String {
    let opener = match band {
        Band::Strong => "Strong answer.",
        Band::Solid => "A solid answer.",
        Band::Weak => "This answer needs more depth.",
        Band::Empty => "The answer did not address the question.",
    };
    let mut out = opener.to_string();
    if !covered.is_empty() {
        out.push_str(&format!(" You covered {covered}."));
    }
    if !missing.is_empty() {
        if covered.is_empty() {
            out.push_str(&format!(" Key points to prepare: {missing}."));
        } else {
            out.push_str(&format!(" To make it stronger, also address {missing}."));
        }
    }
    out
}

/// Joins items naturally: "a", "a and b", "a, b and c". When an item itself contains a comma,
/// " and " or " or ", items are separated by semicolons instead ("a, b; c and d") so the list stays
/// readable. Items are trimmed, trailing full stops removed, and a leading capital lowercased unless
/// the first word looks like an acronym or a name.
pub fn join_natural(items: &[String]) -> String {
    let parts: Vec<String> = items
        .iter()
        .map(|s| s.trim().trim_end_matches('.').trim())
        .filter(|s| !s.is_empty())
        .map(lower_first)
        .collect();
    let complex = parts
        .iter()
        .any(|p| p.contains(',') || p.contains(" and ") || p.contains(" or "));
    match parts.len() {
        0 => String::new(),
        1 => parts[0].clone(),
        _ if complex => parts.join("; "),
        n => format!("{} and {}", parts[..n - 1].join(", "), parts[n - 1]),
    }
}

/// Verbs that open rubric points and only say "the answer talks about"; dropped in feedback.
const META_VERBS: [&str; 24] = [
    "describes",
    "explains",
    "names",
    "mentions",
    "gives",
    "identifies",
    "considers",
    "shows",
    "states",
    "defines",
    "knows",
    "distinguishes",
    "discusses",
    "acknowledges",
    "notes",
    "recognizes",
    "understands",
    "covers",
    "lists",
    "summarizes",
    "clarifies",
    "contrasts",
    "compares",
    "uses",
];

/// A rubric point as a phrase for written feedback: a leading meta-verb is dropped ("Describes
/// cache-aside reads" → "cache-aside reads"), another third-person verb becomes a gerund
/// ("Invalidates cache entries" → "invalidating cache entries"); other points are kept.
pub fn rubric_phrase(point: &str) -> String {
    let point = point.trim().trim_end_matches('.').trim();
    let Some(first) = point.split_whitespace().next() else {
        return String::new();
    };
    let rest = point[first.len()..].trim_start();
    let low = first.to_lowercase();
    let is_word = first.len() > 3
        && first.chars().next().is_some_and(|c| c.is_ascii_uppercase())
        && first.chars().skip(1).all(|c| c.is_ascii_lowercase());
    if !is_word || rest.is_empty() {
        return point.to_string();
    }
    // "Invalidates or deletes ..." → "invalidating or deleting ...".
    let mut rest_words = rest.splitn(3, ' ');
    let conj = rest_words.next().unwrap_or("");
    let second = rest_words.next().unwrap_or("");
    let tail = rest_words.next().unwrap_or("");
    let second_gerund = if matches!(conj, "and" | "or") && !tail.is_empty() {
        gerund(second)
    } else {
        None
    };
    if META_VERBS.contains(&low.as_str()) && second_gerund.is_none() {
        return rest.to_string();
    }
    match (gerund(&low), second_gerund) {
        (Some(g), Some(g2)) => format!("{g} {conj} {g2} {tail}"),
        (Some(g), None) => format!("{g} {rest}"),
        _ => point.to_string(),
    }
}

/// "invalidates" → "invalidating", "checks" → "checking", "applies" → "applying", "sets" →
/// "setting", "plans" → "planning"; None for words that are not a third-person verb form.
fn gerund(w: &str) -> Option<String> {
    let base = if let Some(b) = w.strip_suffix("ies") {
        format!("{b}y")
    } else if w.ends_with("sses")
        || w.ends_with("shes")
        || w.ends_with("ches")
        || w.ends_with("xes")
        || w.ends_with("zes")
    {
        w[..w.len() - 2].to_string()
    } else if let Some(b) = w.strip_suffix('s') {
        if b.ends_with('s') || b.ends_with('u') || b.ends_with('i') {
            return None;
        }
        b.to_string()
    } else {
        return None;
    };
    let bytes = base.as_bytes();
    let n = bytes.len();
    if n < 2 {
        return None;
    }
    let vowel = |b: u8| matches!(b, b'a' | b'e' | b'i' | b'o' | b'u');
    if base.ends_with("ee") || base.ends_with("ye") || base.ends_with("oe") {
        return Some(format!("{base}ing"));
    }
    if let Some(stem) = base.strip_suffix("ie") {
        return Some(format!("{stem}ying"));
    }
    if base.ends_with('e') {
        return Some(format!("{}ing", &base[..n - 1]));
    }
    // One-syllable consonant-vowel-consonant: double the final consonant ("set" → "setting").
    let vowel_groups = bytes
        .windows(2)
        .filter(|w| !vowel(w[0]) && vowel(w[1]))
        .count()
        + usize::from(vowel(bytes[0]));
    let last = bytes[n - 1];
    if n >= 3
        && vowel_groups == 1
        && !vowel(last)
        && !matches!(last, b'w' | b'x' | b'y')
        && vowel(bytes[n - 2])
        && !vowel(bytes[n - 3])
    {
        return Some(format!("{base}{}ing", last as char));
    }
    Some(format!("{base}ing"))
}

/// Lowercases the first letter when the first word is an ordinary capitalised word ("Names the
/// ..." → "names the ..."), not an acronym ("API", "gRPC") or a single letter.
fn lower_first(s: &str) -> String {
    let first_word = s.split_whitespace().next().unwrap_or("");
    let mut chars = first_word.chars();
    let Some(c0) = chars.next() else {
        return s.to_string();
    };
    let rest: String = chars.collect();
    let ordinary = c0.is_ascii_uppercase()
        && rest.len() >= 2
        && rest
            .chars()
            .all(|c| c.is_ascii_lowercase() || c == '-' || c == '\'');
    if ordinary {
        let mut out = String::with_capacity(s.len());
        out.push(c0.to_ascii_lowercase());
        out.push_str(&s[c0.len_utf8()..]);
        out
    } else {
        s.to_string()
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
    if out.len() < MIN_VARIANTS {
        return Err(err(
            kline,
            format!(
                "{:?} has {} variants, need at least {MIN_VARIANTS}",
                spec.key,
                out.len()
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
                t.acknowledgement(Band::Solid, &seed, i, ""),
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
        let cov = vec!["Names the cache invalidation strategy".to_string()];
        let miss = vec![
            "Explains TTLs, eviction and stampedes".to_string(),
            "Mentions metrics".to_string(),
        ];
        let none: Vec<String> = Vec::new();
        for band in [Band::Strong, Band::Solid, Band::Weak, Band::Empty] {
            for turn in 0..30 {
                for (c, m) in [(&cov, &miss), (&none, &miss), (&cov, &none), (&none, &none)] {
                    let f = t.feedback(band, "iv", turn, c, m);
                    assert!(!f.contains('{') && !f.contains('}'), "{f}");
                    assert!(!f.trim().is_empty());
                    assert!(!f.contains(": .") && !f.contains("()"), "{f}");
                }
            }
        }
        let f = t.feedback(Band::Solid, "iv", 1, &cov, &miss);
        assert!(f.contains("the cache invalidation strategy"), "{f}");
        assert!(f.contains("TTLs, eviction and stampedes; metrics"), "{f}");
        assert!(!f.contains("{"), "{f}");
    }

    #[test]
    fn joins_naturally() {
        let v = |xs: &[&str]| xs.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(join_natural(&v(&[])), "");
        assert_eq!(join_natural(&v(&["Indexes"])), "indexes");
        assert_eq!(join_natural(&v(&["a", "b"])), "a and b");
        assert_eq!(join_natural(&v(&["a", "b", "c."])), "a, b and c");
        assert_eq!(join_natural(&v(&["API design", "b"])), "API design and b");
        assert_eq!(join_natural(&v(&["a and b", "c", "d"])), "a and b; c; d");
    }

    #[test]
    fn rubric_phrases() {
        let cases = [
            (
                "Describes cache-aside (lazy loading) and read-through caching",
                "cache-aside (lazy loading) and read-through caching",
            ),
            (
                "Uses TTL expiration to bound staleness.",
                "TTL expiration to bound staleness",
            ),
            (
                "Invalidates or deletes cache entries on writes",
                "invalidating or deleting cache entries on writes",
            ),
            (
                "Describes and justifies the choice",
                "describing and justifying the choice",
            ),
            ("Names users and sessions", "users and sessions"),
            ("Checks the query plan", "checking the query plan"),
            ("Applies backpressure", "applying backpressure"),
            ("Sets a timeout", "setting a timeout"),
            ("Plans a rollback", "planning a rollback"),
            ("Caches hot keys", "caching hot keys"),
            (
                "Communicated the decision early",
                "Communicated the decision early",
            ),
            ("API keys are rotated", "API keys are rotated"),
            ("A clear owner for each step", "A clear owner for each step"),
        ];
        for (input, want) in cases {
            assert_eq!(rubric_phrase(input), want, "{input}");
        }
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
