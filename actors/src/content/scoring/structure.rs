//! The shape of an answer beyond its rubric points: whether a story has the four parts of STAR
//! (situation, task, action, result), and whether an explanation gives reasons, examples and
//! figures. Phrase lists, matched on whole lowercase words.

use super::text::Sentence;

/// Phrases that set the scene of a story.
const SITUATION: &[&str] = &[
    "at my last",
    "at my previous",
    "in my last",
    "in my previous",
    "at my current",
    "on my last",
    "on my team",
    "on our team",
    "our team",
    "my team",
    "last year",
    "last quarter",
    "last spring",
    "last summer",
    "last month",
    "last week",
    "years ago",
    "months ago",
    "a year ago",
    "at the time",
    "when i was",
    "when i joined",
    "we were",
    "we had",
    "there was",
    "one time",
    "once",
    "a week before",
    "just before",
    "one evening",
    "one week",
    "on a friday",
    "at a",
    "at my",
    "on my",
    "in my",
    "a colleague",
    "a coworker",
    "a teammate",
    "a designer",
    "our",
    "the project",
    "a project",
];

/// Phrases that say what the candidate had to do or owned.
const TASK: &[&str] = &[
    "my job",
    "my role",
    "my task",
    "my responsibility",
    "i was responsible",
    "i owned",
    "i was asked",
    "i had to",
    "i needed to",
    "i was on call",
    "the goal",
    "our goal",
    "my goal",
    "i committed",
    "i promised",
    "was supposed to",
    "assigned",
    "i was told",
    "asked me",
    "i was leading",
    "i led",
    "i was in charge",
    "deadline",
    "i wanted to",
    "the task",
    "needed to",
    "had to",
];

/// Phrases that report how things turned out.
const RESULT: &[&str] = &[
    "as a result",
    "in the end",
    "ended up",
    "the result",
    "the outcome",
    "afterwards",
    "after that",
    "since then",
    "since that",
    "eventually",
    "finally",
    "we shipped",
    "it shipped",
    "shipped",
    "launched",
    "went from",
    "dropped",
    "reduced",
    "increased",
    "improved",
    "saved",
    "closed",
    "won",
    "succeeded",
    "percent",
    "learned",
    "now i",
    "now we",
    "turned out",
    "went well",
    "was fixed",
    "got fixed",
    "recovered",
    "we agreed",
    "agreed",
    "signed",
    "accepted",
    "thanked",
    "came back",
    "worked out",
    "on time",
    "still",
    "later",
    "happy",
    "kept",
    "survived",
];

/// Irregular past tenses that report an action.
const IRREGULAR_PAST: &[&str] = &[
    "took",
    "made",
    "wrote",
    "told",
    "sat",
    "spoke",
    "set",
    "built",
    "ran",
    "led",
    "brought",
    "met",
    "got",
    "gave",
    "put",
    "kept",
    "sent",
    "found",
    "chose",
    "held",
    "thought",
    "felt",
    "saw",
    "said",
    "began",
    "went",
    "did",
    "dug",
    "drew",
    "broke",
    "caught",
    "cut",
    "fought",
    "left",
    "lost",
    "paid",
    "read",
    "rewrote",
    "shut",
    "split",
    "spent",
    "stood",
    "taught",
    "threw",
    "understood",
    "won",
    "came",
    "knew",
    "let",
    "became",
    "fixed",
    "sought",
    "rolled",
];

/// Phrases that give a reason or a consequence.
const REASONS: &[&str] = &[
    "because",
    "so that",
    "which means",
    "that means",
    "this means",
    "otherwise",
    "the reason",
    "that way",
    "trade off",
    "tradeoff",
    "tradeoffs",
    "downside",
    "the catch",
    "flip side",
    "at the cost",
    "the cost",
    "which is why",
    "that s why",
    "so you",
    "so we",
    "so i",
    "so the",
    "so it",
    "so nothing",
    "so a",
    "since",
    "whereas",
    "unless",
    "in order to",
    "to avoid",
    "to prevent",
    "to keep",
    "to stop",
    "risk",
];

/// Phrases that introduce an example or first-hand experience.
const EXAMPLES: &[&str] = &[
    "for example",
    "for instance",
    "e g",
    "such as",
    "say",
    "like",
    "in my last",
    "at my last",
    "we had",
    "in one",
    "once",
    "last year",
    "in production",
    "i ve seen",
    "i once",
    "we once",
    "imagine",
    "suppose",
    "concrete case",
    "classic example",
];

/// What the four parts of a story look like in an answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Star {
    /// The scene is set (when, where, who).
    pub situation: bool,
    /// What the candidate had to do or owned.
    pub task: bool,
    /// At least two things the candidate did, in the first person and past tense.
    pub action: bool,
    /// How it turned out.
    pub result: bool,
}

impl Star {
    /// How many of the four parts are there.
    pub fn count(self) -> u8 {
        u8::from(self.situation)
            + u8::from(self.task)
            + u8::from(self.action)
            + u8::from(self.result)
    }
}

/// Reasons, examples and figures in an explanation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Depth {
    /// Gives a reason or a consequence.
    pub reasons: bool,
    /// Gives an example or first-hand experience.
    pub example: bool,
    /// Has figures.
    pub figures: bool,
    /// Has at least three statements.
    pub developed: bool,
}

/// " word word " of the prose sentences, for phrase search on whole words.
fn joined(sentences: &[&Sentence]) -> String {
    let mut s = String::from(" ");
    for sentence in sentences {
        for w in &sentence.words {
            s.push_str(w);
            s.push(' ');
        }
    }
    s
}

fn has_any(text: &str, phrases: &[&str]) -> bool {
    phrases.iter().any(|p| text.contains(&format!(" {p} ")))
}

/// The STAR parts of the prose sentences of an answer.
pub fn star(prose: &[&Sentence]) -> Star {
    let text = joined(prose);
    let actions = prose
        .iter()
        .filter(|s| {
            s.words.windows(3).any(|w| {
                (w[0] == "i" || w[0] == "we")
                    && (is_past(&w[1]) || (w[1].len() <= 6 && is_past(&w[2])))
            }) || s.words.first().is_some_and(|w| is_past(w))
        })
        .count();
    Star {
        situation: has_any(&text, SITUATION),
        task: has_any(&text, TASK),
        action: actions >= 2,
        result: has_any(&text, RESULT),
    }
}

fn is_past(word: &str) -> bool {
    (word.len() > 4 && word.ends_with("ed")) || IRREGULAR_PAST.contains(&word)
}

/// The depth signals of the prose sentences of an answer.
pub fn depth(prose: &[&Sentence]) -> Depth {
    let text = joined(prose);
    Depth {
        reasons: has_any(&text, REASONS),
        example: has_any(&text, EXAMPLES),
        figures: prose.iter().any(|s| {
            s.words
                .iter()
                .any(|w| w.chars().any(|c| c.is_ascii_digit()))
        }),
        developed: prose.len() >= 3,
    }
}
