//! How the rubric scorer reads an answer: words (lowercased, "n't" read as "not"), their stems
//! (Snowball English, the `rust-stemmers` crate), sentences, and whether a sentence is prose (a
//! statement with the small words that hold a sentence together) or a bare list of terms.

use std::sync::OnceLock;

use rust_stemmers::{Algorithm, Stemmer};

/// The words that hold a sentence together: articles, pronouns, auxiliaries, prepositions and
/// conjunctions. A list of terms has almost none of them; a statement always has a few.
const FUNCTION_WORDS: &[&str] = &[
    "a", "an", "the", "to", "of", "in", "on", "at", "by", "for", "with", "from", "into", "onto",
    "about", "as", "than", "then", "so", "if", "when", "while", "because", "but", "or", "and",
    "that", "which", "who", "what", "where", "how", "why", "is", "are", "was", "were", "be",
    "been", "being", "am", "do", "does", "did", "have", "has", "had", "can", "could", "would",
    "should", "will", "shall", "may", "might", "must", "i", "we", "you", "it", "they", "he", "she",
    "me", "us", "him", "them", "my", "our", "your", "its", "their", "his", "her", "this", "these",
    "those", "there", "not", "no", "every", "each", "any", "some", "all", "one", "until", "after",
    "before", "since", "up", "out", "just", "only", "also", "too", "very", "s", "d", "ll", "ve",
    "re", "m", "let", "get", "got", "goes", "go", "went", "make", "makes", "made", "use", "used",
    "uses", "using", "instead", "whether", "both", "either", "over", "under", "between",
];

fn stemmer() -> &'static Stemmer {
    static STEMMER: OnceLock<Stemmer> = OnceLock::new();
    STEMMER.get_or_init(|| Stemmer::create(Algorithm::English))
}

/// The stem of one lowercase word ("caching", "cached", "caches" → "cach").
pub fn stem(word: &str) -> String {
    stemmer().stem(word).into_owned()
}

/// Whether a lowercase word is a function word (an article, pronoun, preposition, auxiliary…).
pub fn is_function_word(word: &str) -> bool {
    FUNCTION_WORDS.contains(&word)
}

/// The lowercase words of a text: runs of letters and digits; "don't" gives "do", "not"; other
/// apostrophes split ("it's" → "it", "s").
pub fn words(text: &str) -> Vec<String> {
    let low = text
        .to_lowercase()
        .replace(['\u{2019}', '\u{2018}', '`'], "'")
        .replace("can't", "can not")
        .replace("won't", "will not")
        .replace("n't", " not");
    low.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

/// One sentence of an answer, read.
#[derive(Debug, Clone)]
pub struct Sentence {
    /// The text as written (trimmed).
    pub text: String,
    /// Its lowercase words.
    pub words: Vec<String>,
    /// Their stems, one per word.
    pub stems: Vec<String>,
    /// Whether it is a statement rather than a bare list of terms.
    pub prose: bool,
}

impl Sentence {
    fn new(text: &str) -> Sentence {
        let words = words(text);
        let stems = words.iter().map(|w| stem(w)).collect();
        let prose = is_prose(text, &words);
        Sentence {
            text: text.trim().to_string(),
            words,
            stems,
            prose,
        }
    }
}

/// First words of a sentence that carries on from the one before ("It's idempotent because ...").
const CONTINUATIONS: &[&str] = &[
    "it",
    "its",
    "that",
    "this",
    "these",
    "those",
    "they",
    "them",
    "so",
    "which",
    "then",
    "and",
    "but",
    "because",
    "also",
    "otherwise",
    "here",
    "there",
    "such",
    "both",
    "each",
    "again",
    "instead",
    "plus",
    "since",
    "thus",
    "hence",
    "therefore",
    "meaning",
    "same",
    "doing",
    "without",
    "with",
    "if",
    "when",
    "once",
    "after",
    "before",
    "afterwards",
    "later",
    "now",
    "whatever",
    "either",
    "neither",
];

/// Whether a sentence (its words) carries on from the one before it: it opens with a pronoun, an
/// article or a connective rather than a new subject.
pub fn continues(words: &[String]) -> bool {
    words
        .first()
        .is_some_and(|w| CONTINUATIONS.contains(&w.as_str()))
}

/// Abbreviations whose full stop does not end a sentence.
const ABBREVIATIONS: &[&str] = &[
    "e.g", "i.e", "etc", "vs", "cf", "approx", "incl", "esp", "dr", "mr", "ms", "mrs", "no", "fig",
    "eg", "ie", "a.m", "p.m", "u.s",
];

/// Splits an answer into sentences: at `.`, `!` or `?` followed by a space (unless the full stop
/// ends an abbreviation such as "e.g." or "vs.") or the end; at line breaks; and at list bullets.
/// "0.5" and "v1.2" stay whole.
pub fn sentences(text: &str) -> Vec<Sentence> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line
            .trim()
            .trim_start_matches(['-', '*', '\u{2022}', '>'])
            .trim();
        let line = strip_numbering(line);
        let chars: Vec<(usize, char)> = line.char_indices().collect();
        let mut start = 0;
        for (k, (i, c)) in chars.iter().enumerate() {
            if !matches!(c, '.' | '!' | '?') {
                continue;
            }
            let next = chars.get(k + 1).map(|(_, c)| *c);
            let after = chars.get(k + 2).map(|(_, c)| *c);
            let ends = match (next, after) {
                (None, _) => true,
                (Some(n), Some(_)) if n.is_whitespace() => {
                    *c != '.' || !ends_abbreviation(&line[start..*i])
                }
                _ => false,
            };
            if ends {
                let end = i + c.len_utf8();
                push_sentence(&mut out, &line[start..end]);
                start = end;
            }
        }
        push_sentence(&mut out, &line[start..]);
    }
    out
}

/// Whether `before` (the text up to a full stop) ends with an abbreviation or a single letter.
fn ends_abbreviation(before: &str) -> bool {
    let last = before
        .rsplit(|c: char| c.is_whitespace() || c == '(')
        .next()
        .unwrap_or("")
        .to_lowercase();
    last.chars().count() == 1 || ABBREVIATIONS.contains(&last.as_str())
}

fn push_sentence(out: &mut Vec<Sentence>, text: &str) {
    if text.chars().any(char::is_alphanumeric) {
        out.push(Sentence::new(text));
    }
}

/// "1. text" or "2) text" → "text".
fn strip_numbering(line: &str) -> &str {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    if digits > 0 && digits <= 2 {
        let rest = &line[digits..];
        if let Some(r) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return r.trim_start();
        }
    }
    line
}

/// Whether a sentence states something: at least four words, at least two function words making
/// up at least a sixth of it, and not a run of comma-separated bare terms ("cache-aside,
/// write-through, TTLs, LRU, Redis").
fn is_prose(text: &str, words: &[String]) -> bool {
    if words.len() < 4 {
        return false;
    }
    let function = words.iter().filter(|w| is_function_word(w)).count();
    if function < 2 || function * 6 < words.len() {
        return false;
    }
    // A long run of terms with nothing between them ("I don't know. cache aside consistency
    // database delete eviction expiration ...") is a list with a sentence in front of it.
    let mut run = 0;
    let mut longest = 0;
    for w in words {
        run = if is_function_word(w) { 0 } else { run + 1 };
        longest = longest.max(run);
    }
    if longest >= 8 && longest * 2 >= words.len() {
        return false;
    }
    // Segments between separators: a list is mostly short segments without function words.
    let segments: Vec<Vec<String>> = text
        .split([',', ';', '/', '\u{2192}', '|', '+'])
        .map(self::words)
        .filter(|s| !s.is_empty())
        .collect();
    if segments.len() >= 4 {
        let bare = segments
            .iter()
            .filter(|s| s.len() <= 3 && !s.iter().any(|w| is_function_word(w)))
            .count();
        if bare * 5 >= segments.len() * 3 {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stems_meet() {
        for group in [
            &["cache", "caches", "caching", "cached"][..],
            &["replication", "replicate", "replicated"],
            &["index", "indexes", "indexing", "indexed"],
            &["idempotent", "idempotency"],
            &["partition", "partitions", "partitioning", "partitioned"],
            &["invalidation", "invalidate", "invalidated"],
        ] {
            let stems: std::collections::BTreeSet<String> = group.iter().map(|w| stem(w)).collect();
            assert_eq!(stems.len(), 1, "{group:?} → {stems:?}");
        }
    }

    #[test]
    fn words_read_negations() {
        assert_eq!(
            words("It isn't idempotent"),
            ["it", "is", "not", "idempotent"]
        );
        assert_eq!(words("can't, won't"), ["can", "not", "will", "not"]);
        assert_eq!(
            words("I’d use cache-aside"),
            ["i", "d", "use", "cache", "aside"]
        );
    }

    #[test]
    fn splits_sentences() {
        let s = sentences("PUT is idempotent, e.g. a retry is safe. PATCH is not! 99.9% of them. i don't know. bare terms\n- one bullet here\n2. numbered line");
        let texts: Vec<&str> = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(
            texts,
            [
                "PUT is idempotent, e.g. a retry is safe.",
                "PATCH is not!",
                "99.9% of them.",
                "i don't know.",
                "bare terms",
                "one bullet here",
                "numbered line"
            ]
        );
    }

    #[test]
    fn prose_or_list() {
        let prose = [
            "PUT replaces the whole resource at a known URI and is idempotent.",
            "Backfill in small batches to avoid long locks.",
            "The common patterns are cache-aside, read-through, write-through and write-behind.",
            "I told my manager the same day.",
        ];
        for p in prose {
            assert!(Sentence::new(p).prose, "{p}");
        }
        let lists = [
            "POST, PUT, PATCH, idempotent, idempotency, create, replace, partial update, 200, 201.",
            "cache aside consistency database delete eviction expiration freshness invalidation",
            "Action: talk privately, listen, understand perspective, shared goals, data.",
            "Move to head.",
            "I'd use cache-aside, write-through, write-behind, TTLs, LRU, Redis.",
            "Disagreement → user impact → understand intent → prototypes, user testing",
            "I know: cache aside consistency database delete eviction expiration freshness invalidation lazy load",
        ];
        for l in lists {
            assert!(!Sentence::new(l).prose, "{l}");
        }
    }
}
