//! The feedback a candidate reads, checked as language: every rubric point and follow-up point of
//! the question pool, rendered through every feedback template (as a covered and as a missing
//! point, with and without a note), and every reaction, transition, greeting and closing, must use
//! only words of Debian's american-english word list (package `wamerican`) or of the reviewed
//! technical vocabulary in `templates/vocabulary.txt`; must speak to the candidate in the second
//! person (no "they", "their", "he", "she", "the candidate"); and must be tidy sentences. This is
//! what stops "sizzing", "emiting" or "you covered offered a recovery plan" from reaching anyone.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, HashSet};

use actors::content::question_pool::QuestionPool;
use actors::content::scoring::Note;
use actors::content::templates::{Ack, Closing, Feedback, Templates, Transition};
use actors::content::{Track, Verdict};

const DICTIONARY: &str = "/usr/share/dict/american-english";
const VOCABULARY: &str = include_str!("../templates/vocabulary.txt");

/// Words about the candidate in the third person.
const THIRD_PERSON: &[&str] = &[
    "they",
    "them",
    "their",
    "theirs",
    "themselves",
    "he",
    "him",
    "his",
    "she",
    "her",
    "hers",
    "candidate",
    "candidate's",
];

const NOTES: [Note; 9] = [
    Note::TermList,
    Note::OffTopic,
    Note::TooShort,
    Note::NoReasons,
    Note::NoExample,
    Note::NoContext,
    Note::NoOwnActions,
    Note::NoResult,
    Note::Instructions,
];

struct Checker {
    words: HashSet<String>,
    lower: HashSet<String>,
    unknown: BTreeMap<String, String>,
    third_person: Vec<String>,
    untidy: Vec<String>,
    checked: usize,
}

impl Checker {
    fn new() -> Checker {
        let dict = std::fs::read_to_string(DICTIONARY).unwrap_or_else(|e| {
            panic!("{DICTIONARY}: {e}; install the word list (apt-get install -y wamerican)")
        });
        let mut words: HashSet<String> = dict.lines().map(str::to_string).collect();
        words.extend(
            VOCABULARY
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_string),
        );
        let lower = words.iter().map(|w| w.to_lowercase()).collect();
        Checker {
            words,
            lower,
            unknown: BTreeMap::new(),
            third_person: Vec::new(),
            untidy: Vec::new(),
            checked: 0,
        }
    }

    fn known(&self, w: &str) -> bool {
        let base = w.strip_suffix("'s").unwrap_or(w);
        [w, base]
            .iter()
            .any(|c| self.words.contains(*c) || self.lower.contains(&c.to_lowercase()))
    }

    /// Checks one rendered text; `text` may contain names given by the test ("Ada").
    fn check(&mut self, text: &str) {
        self.checked += 1;
        if text.contains('{') || text.contains('}') {
            self.untidy.push(format!("placeholder left: {text}"));
        }
        for bad in ["  ", " .", " ,", "..", ";;", ",,", ". .", " ;", ":."] {
            if text.contains(bad) {
                self.untidy.push(format!("{bad:?} in: {text}"));
            }
        }
        let first = text.chars().next().unwrap_or(' ');
        if !(first.is_uppercase() || first.is_ascii_digit()) {
            self.untidy
                .push(format!("does not start a sentence: {text}"));
        }
        if !text.trim_end().ends_with(['.', '!', '?', ':']) {
            self.untidy.push(format!("does not end a sentence: {text}"));
        }
        for token in text.split(|c: char| {
            !(c.is_alphanumeric() || c == '\'' || c == '-' || c == '.' || c == '/')
        }) {
            for w in token.split(['-', '.', '/']) {
                let w = w.trim_matches('\'');
                if w.is_empty() || w.chars().any(|c| c.is_ascii_digit()) || w == "Ada" {
                    continue;
                }
                if THIRD_PERSON.contains(&w.to_lowercase().as_str()) {
                    self.third_person.push(format!("{w:?} in: {text}"));
                }
                if !self.known(w) {
                    self.unknown
                        .entry(w.to_string())
                        .or_insert_with(|| text.to_string());
                }
            }
        }
    }
}

#[test]
fn every_pool_phrase_through_every_feedback_template_is_second_person_dictionary_english() {
    let pool = QuestionPool::load_embedded().unwrap();
    let t = Templates::load_embedded().unwrap();
    let mut c = Checker::new();
    let mut phrases: Vec<String> = Vec::new();
    for q in pool.questions() {
        let g = pool.guide(&q.id).unwrap();
        phrases.extend(g.points.iter().map(|p| p.say.clone()));
        phrases.extend(g.follow_up.iter().map(|p| p.say.clone()));
    }
    assert!(phrases.len() > 2000, "{} phrases", phrases.len());
    let lists = [
        "feedback.solid",
        "feedback.partial",
        "feedback.not_yet",
        "feedback.off_topic",
    ];
    let most = lists.iter().map(|k| t.list(k).len()).max().unwrap();
    for (i, p) in phrases.iter().enumerate() {
        // Each phrase as the covered point and as the missing one, alone and next to another
        // phrase (lists are joined), through every variant of every band.
        let other = &phrases[(i + 1) % phrases.len()];
        let one = vec![p.clone()];
        let two = vec![p.clone(), other.clone()];
        for verdict in [Verdict::Solid, Verdict::Partial, Verdict::NotYet] {
            for (covered, missing) in [(&one, &two), (&two, &one)] {
                for slot in 0..most as u32 {
                    for notes in [&[][..], &[Note::OffTopic][..]] {
                        let covered: &[String] = if notes.is_empty() { covered } else { &[] };
                        let fb = Feedback {
                            verdict,
                            covered,
                            missing,
                            notes,
                        };
                        c.check(&t.feedback(&fb, "seed", slot));
                    }
                }
            }
        }
    }
    // Every note line, after each band.
    for n in NOTES {
        for slot in 0..8 {
            let one = vec![phrases[0].clone()];
            let fb = Feedback {
                verdict: Verdict::Partial,
                covered: &one,
                missing: &one,
                notes: &[n],
            };
            c.check(&t.feedback(&fb, "seed", slot));
        }
    }
    // Reactions, transitions, greetings and closings.
    for slot in 0..16 {
        for ack in [
            Ack::Graded(Verdict::Solid),
            Ack::Graded(Verdict::Partial),
            Ack::Graded(Verdict::NotYet),
            Ack::Empty,
            Ack::Skipped,
        ] {
            c.check(&t.acknowledgement(ack, "seed", slot, "Ada"));
            c.check(&t.acknowledgement(ack, "seed", slot, ""));
        }
        for kind in [Transition::Next, Transition::FollowUp, Transition::Last] {
            c.check(&t.transition(kind, "seed", slot));
        }
        let seed = format!("s{slot}");
        for track in [Track::Technical, Track::Behavioral, Track::Mixed] {
            c.check(&t.greeting(track, &seed, "Ada", "Backend Engineer"));
        }
        for kind in [Closing::Completed, Closing::EarlyEnd, Closing::Expired] {
            c.check(&t.closing(kind, &seed, "Ada"));
        }
    }
    println!("checked {} rendered texts", c.checked);
    let unknown: Vec<String> = c
        .unknown
        .iter()
        .take(40)
        .map(|(w, t)| format!("{w:?} in: {t}"))
        .collect();
    assert!(
        unknown.is_empty(),
        "{} words are in neither the dictionary nor templates/vocabulary.txt:\n{}",
        c.unknown.len(),
        unknown.join("\n")
    );
    assert!(
        c.third_person.is_empty(),
        "third person about the candidate:\n{}",
        c.third_person[..c.third_person.len().min(20)].join("\n")
    );
    assert!(
        c.untidy.is_empty(),
        "untidy sentences:\n{}",
        c.untidy[..c.untidy.len().min(20)].join("\n")
    );
}

#[test]
fn the_checker_catches_what_it_should() {
    let mut c = Checker::new();
    c.check("You covered sizzing and emiting.");
    c.check("Their manager said so.");
    c.check("you covered the point .");
    assert!(c.unknown.contains_key("sizzing") && c.unknown.contains_key("emiting"));
    assert_eq!(c.third_person.len(), 1);
    assert_eq!(c.untidy.len(), 2, "{:?}", c.untidy);
}
