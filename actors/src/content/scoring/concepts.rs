//! Concept groups: what a rubric point needs an answer to say, as groups of alternatives.
//!
//! A point's concepts are written in the pool as one string: groups separated by `;`, alternatives
//! by `|`, e.g. `"put; replace | overwrite | whole | full; idempotent | same result | repeat"`. An
//! alternative is one or more words, matched on their stems in order with at most two other words
//! between them; `@name` (one per alternative, alone or inside a phrase: `"in @db"`) stands for each alternative of
//! the shared vocabulary entry `name`
//! (`question_pool/concepts.toml`). A point is stated when every group matches within one sentence
//! or two neighbouring ones.

use std::collections::HashMap;

use super::text::{stem, words};

/// Words between two words of one alternative that still count as a match.
const MAX_GAP: usize = 2;

/// The alternative that matches any figure: a word with a digit, or a number word.
const NUMBER: &str = "#number";

/// Number words (as stems) that [`NUMBER`] matches.
const NUMBER_WORDS: &[&str] = &[
    "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "twenti", "thirti",
    "fifti", "hundr", "thousand", "million", "billion", "percent", "half", "third", "quarter",
    "doubl", "tripl", "twice", "dozen",
];

fn same(want: &str, stem: &str) -> bool {
    if want == NUMBER {
        stem.chars().any(|c| c.is_ascii_digit()) || NUMBER_WORDS.contains(&stem)
    } else {
        want == stem
    }
}

/// One idea a point needs, and the ways candidates say it.
#[derive(Debug, Clone, PartialEq)]
pub struct Group {
    /// Each alternative as stems, in order.
    alts: Vec<Vec<String>>,
}

/// The shared vocabulary: name → alternatives (as written).
pub type Vocabulary = HashMap<String, Vec<String>>;

impl Group {
    /// A group of single stems (used for points without authored concepts).
    pub fn of_stem(stem: String) -> Group {
        Group {
            alts: vec![vec![stem]],
        }
    }

    /// Whether any alternative occurs in `stems`.
    pub fn matches(&self, stems: &[String]) -> bool {
        self.alts.iter().any(|alt| occurs(alt, stems))
    }

    /// How many alternatives it has.
    pub fn len(&self) -> usize {
        self.alts.len()
    }

    /// Whether it has none (never true for a parsed group).
    pub fn is_empty(&self) -> bool {
        self.alts.is_empty()
    }
}

/// Whether `alt` occurs in `stems`: its stems in order, at most [`MAX_GAP`] words apart.
fn occurs(alt: &[String], stems: &[String]) -> bool {
    let Some(first) = alt.first() else {
        return false;
    };
    'start: for (i, s) in stems.iter().enumerate() {
        if !same(first, s) {
            continue;
        }
        let mut at = i;
        for want in &alt[1..] {
            let mut window = stems.iter().enumerate().skip(at + 1).take(MAX_GAP + 1);
            match window.find(|(_, s)| same(want, s)) {
                Some((j, _)) => at = j,
                None => continue 'start,
            }
        }
        return true;
    }
    false
}

/// Parses a point's concept string (see the module doc). Errors name the problem.
pub fn parse(spec: &str, vocabulary: &Vocabulary) -> Result<Vec<Group>, String> {
    let mut groups = Vec::new();
    for raw_group in spec.split(';') {
        let raw_group = raw_group.trim();
        if raw_group.is_empty() {
            return Err(format!("empty group in {spec:?}"));
        }
        let mut alts = Vec::new();
        for alt in raw_group.split('|') {
            let alt = alt.trim();
            let parts: Vec<&str> = alt.split_whitespace().collect();
            let macros: Vec<usize> = (0..parts.len())
                .filter(|&i| parts[i].starts_with('@'))
                .collect();
            match macros.as_slice() {
                [] => alts.push(stems_of(alt)?),
                [at] => {
                    let name = &parts[*at][1..];
                    let Some(expansion) = vocabulary.get(name) else {
                        return Err(format!("unknown vocabulary entry @{name}"));
                    };
                    for e in expansion {
                        let mut phrase: Vec<&str> = parts.clone();
                        phrase[*at] = e;
                        alts.push(stems_of(&phrase.join(" "))?);
                    }
                }
                _ => return Err(format!("one vocabulary entry per alternative: {alt:?}")),
            }
        }
        groups.push(Group { alts });
    }
    Ok(groups)
}

fn stems_of(alt: &str) -> Result<Vec<String>, String> {
    if alt == NUMBER {
        return Ok(vec![NUMBER.to_string()]);
    }
    let ws = words(alt);
    if ws.is_empty() {
        return Err(format!("empty alternative {alt:?}"));
    }
    Ok(ws.iter().map(|w| stem(w)).collect())
}

/// Parses the vocabulary file's `[vocabulary]` table: name → "alt | alt | ...". Entries do not
/// refer to other entries.
pub fn parse_vocabulary(table: &toml::Table) -> Result<Vocabulary, String> {
    let mut out = Vocabulary::new();
    for (name, v) in table {
        let Some(s) = v.as_str() else {
            return Err(format!("vocabulary entry {name}: expected a string"));
        };
        let mut alts = Vec::new();
        for alt in s.split('|') {
            let alt = alt.trim();
            if alt.is_empty() {
                return Err(format!("vocabulary entry {name}: empty alternative"));
            }
            if alt.contains(';') {
                return Err(format!("vocabulary entry {name}: ';' is not allowed"));
            }
            if alt.starts_with('@') {
                return Err(format!(
                    "vocabulary entry {name}: entries cannot refer to other entries ({alt})"
                ));
            }
            alts.push(alt.to_string());
        }
        out.insert(name.clone(), alts);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stems(s: &str) -> Vec<String> {
        words(s).iter().map(|w| stem(w)).collect()
    }

    #[test]
    fn alternatives_match_in_order_with_small_gaps() {
        let v = Vocabulary::new();
        let g = parse("invalidate cache | delete key; write | update", &v).unwrap();
        assert_eq!(g.len(), 2);
        assert!(g[0].matches(&stems("we invalidate the cache entry")));
        assert!(g[0].matches(&stems("invalidating cached values")));
        assert!(!g[0].matches(&stems("the cache we invalidate")));
        assert!(!g[0].matches(&stems("invalidate every single one of the cache")));
        assert!(g[1].matches(&stems("on every update")));
        let n = parse("#number | many; users", &v).unwrap();
        assert!(n[0].matches(&stems("about 40 of them")));
        assert!(n[0].matches(&stems("cut it in half")));
        assert!(!n[0].matches(&stems("a few of them")));
    }

    #[test]
    fn vocabulary_entries_expand() {
        let mut t = toml::Table::new();
        t.insert("db".into(), "database | postgres | mysql".into());
        let v = parse_vocabulary(&t).unwrap();
        let g = parse("@db | datastore; read", &v).unwrap();
        assert_eq!(g[0].len(), 4);
        t.insert("store".into(), "@db | datastore".into());
        assert!(parse_vocabulary(&t).is_err());
        assert!(g[0].matches(&stems("we read from Postgres")));
        assert!(parse("@nope", &v).unwrap_err().contains("@nope"));
        let g = parse("in the @db", &v).unwrap();
        assert_eq!(g[0].len(), 3);
        assert!(g[0].matches(&stems("it lives in the mysql instance")));
        assert!(parse("@db @db", &v).is_err());
        assert!(parse("a;;b", &v).is_err());
        assert!(parse("a | ", &v).is_err());
    }
}
