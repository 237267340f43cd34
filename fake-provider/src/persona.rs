//! The interviewer persona: a key whose fixed reply is [`INTERVIEWER`] (or every key without a fixed reply,
//! under `--persona interviewer`) answers like an interviewer model, from the request itself.
//!
//! What is asked is read from the system message, as the engine's prompts (`actors/src/content/prompts.rs`)
//! write it: one containing `"evaluations"` is a batch evaluation (one entry per `Item N:` line of the user
//! message), else `"score"` is one evaluation, else `"skills"` is a resume analysis, else a `{name}`
//! placeholder asks for an opening line (kept with its placeholder) and a coach asks for a closing note;
//! anything else gets one follow-up question (`{"text": ...}` in JSON mode). Scores are a hash of each `<candidate_answer>` block's
//! text, so the same answer always gets the same score; they spread over 2..=9 with about a third in 3..=6.

use serde_json::{json, Value};

use super::Parsed;

/// The fixed reply that turns the persona on.
pub const INTERVIEWER: &str = "@interviewer";

/// Scores by `hash % 12`: a third of the buckets fall in 3..=6, the rest at the weak and strong ends.
const SCORES: [u8; 12] = [2, 2, 3, 4, 5, 6, 7, 7, 8, 8, 9, 9];

/// Tags of the engine's data blocks; text inside them is never read as structure.
const BLOCK_TAGS: [&str; 5] = ["role", "question", "rubric", "candidate_answer", "resume"];

const REACTIONS_WEAK: [&str; 3] = [
    "Thanks, let's keep going.",
    "Okay, thank you for walking me through that.",
    "Thanks, that gives me a starting point.",
];
const REACTIONS_SOLID: [&str; 3] = [
    "Good, that makes sense.",
    "Thanks, that is a reasonable approach.",
    "Okay, I follow your reasoning.",
];
const REACTIONS_STRONG: [&str; 3] = [
    "Great answer, thank you.",
    "Nice, that was very clear.",
    "Excellent, I like how you framed that.",
];

const FEEDBACK_WEAK: [&str; 2] = [
    "The answer stays general and misses most of the rubric. Name a concrete approach and say how you would check that it works.",
    "Some relevant ideas, but little depth. A specific example with measured results would make it much stronger.",
];
const FEEDBACK_SOLID: [&str; 2] = [
    "A sound answer that covers the main point. It would be stronger with a trade-off discussed and a concrete example.",
    "Clear structure and a reasonable approach. Missing detail on failure cases and how you would measure success.",
];
const FEEDBACK_STRONG: [&str; 2] = [
    "Thorough and well structured, with a concrete example and clear trade-offs. Only minor details were left out.",
    "Covers the rubric well and backs it with experience. Mentioning monitoring in production would round it off.",
];

const QUESTIONS: [&str; 8] = [
    "What would you measure first to know whether that approach actually worked?",
    "Can you walk me through a time when that decision turned out to be wrong, and what you changed?",
    "How would your design change if the load grew by ten times overnight?",
    "Which trade-off in that answer worried you most, and why?",
    "How would you explain that choice to a teammate who disagreed with it?",
    "What failure mode would you test for before shipping that to production?",
    "If you had one more week, which part of that solution would you improve first?",
    "How did you make sure the rest of the team could maintain it after you moved on?",
];

pub fn hash(text: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in text.as_bytes() {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^ (h >> 33)
}

/// The score of an answer: 2..=9, the same for the same text.
pub fn score_of(answer: &str) -> u8 {
    SCORES[(hash(answer.trim()) % SCORES.len() as u64) as usize]
}

fn pick<'a>(bank: &[&'a str], h: u64) -> &'a str {
    bank[(h % bank.len() as u64) as usize]
}

/// The reply to a request of a key with the persona.
pub fn reply(p: &Parsed) -> String {
    let system = p.system.as_str();
    let user = p.last_user.as_str();
    if system.contains("\"evaluations\"") {
        batch_evaluation(user).to_string()
    } else if system.contains("\"score\"") {
        let answer = block_content(user, "candidate_answer").unwrap_or(user);
        evaluation(answer, rubric_len(user)).to_string()
    } else if system.contains("\"skills\"") {
        // The engine's own offline extractor: the fake answers what a model would, from the resume.
        let resume = block_content(user, "resume").unwrap_or(user);
        serde_json::to_string(&actors::content::resume::analyze_offline(resume)).unwrap_or_default()
    } else if system.contains("\"rubric\"") {
        generated_question(block_content(user, "topic").unwrap_or("your main project")).to_string()
    } else if system.contains("{name}") {
        greeting(block_content(user, "role").unwrap_or("this"))
    } else if system.to_ascii_lowercase().contains("coach") {
        coach_note(
            block_content(user, "strongest_area").unwrap_or("your strongest area"),
            block_content(user, "weakest_area").unwrap_or("your weakest area"),
        )
    } else {
        let sentence = pick(&QUESTIONS, hash(user));
        if p.json_mode {
            json!({ "text": sentence }).to_string()
        } else {
            sentence.to_string()
        }
    }
}

/// A generated question on `topic`, with its rubric and a follow-up.
fn generated_question(topic: &str) -> Value {
    json!({
        "question": format!("Walk me through a hard problem you solved with {topic}: what did you try first, and what did you change?"),
        "rubric": [
            format!("describes a concrete {topic} problem"),
            "explains the first approach and why it fell short".to_string(),
            "names the trade-off of the final approach".to_string(),
        ],
        "follow_up": "How would you know it worked in production?",
    })
}

/// An opening line with the engine's `{name}` placeholder left in.
fn greeting(role: &str) -> String {
    format!(
        "Welcome, {{name}}, and thanks for joining this mock interview for the {role} role. \
         We will go through several questions, so take your time with each one."
    )
}

/// A three-sentence coach note for a report.
fn coach_note(strongest: &str, weakest: &str) -> String {
    format!(
        "You worked through the whole interview and kept your answers focused. \
         Keep building on {strongest}, where your examples were concrete and clear. \
         For {weakest}, practise answering out loud with one real example and the trade-off you chose."
    )
}

/// One evaluation object for `answer`, against a rubric of `rubric_len` points.
fn evaluation(answer: &str, rubric_len: usize) -> Value {
    let score = score_of(answer);
    let h = hash(answer);
    let (reactions, feedback): (&[&str], &[&str]) = match score {
        0..=4 => (&REACTIONS_WEAK, &FEEDBACK_WEAK),
        5..=6 => (&REACTIONS_SOLID, &FEEDBACK_SOLID),
        _ => (&REACTIONS_STRONG, &FEEDBACK_STRONG),
    };
    let covered = (usize::from(score) * rubric_len)
        .div_ceil(10)
        .min(rubric_len);
    json!({
        "score": score,
        "reaction": pick(reactions, h),
        "feedback": pick(feedback, h >> 8),
        "rubric_covered": (1..=covered).collect::<Vec<_>>(),
    })
}

/// `{"evaluations": [...]}` with one entry per `Item N:` line of `user`, each graded on its own answer.
fn batch_evaluation(user: &str) -> Value {
    let spans = block_spans(user);
    let mut items: Vec<(usize, usize)> = Vec::new();
    let mut offset = 0;
    for line in user.split_inclusive('\n') {
        let inside = spans.iter().any(|(a, b)| *a <= offset && offset < *b);
        if !inside {
            if let Some(n) = item_number(line) {
                items.push((n, offset));
            }
        }
        offset += line.len();
    }
    let entries: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, (n, start))| {
            let end = items.get(i + 1).map_or(user.len(), |(_, e)| *e);
            let segment = &user[*start..end];
            let answer = block_content(segment, "candidate_answer").unwrap_or("");
            let mut e = evaluation(answer, rubric_len(segment));
            e["item"] = json!(n);
            e
        })
        .collect();
    json!({ "evaluations": entries })
}

/// `N` of a line `Item N:`.
fn item_number(line: &str) -> Option<usize> {
    let rest = line.trim().strip_prefix("Item ")?;
    let (n, _) = rest.split_once(':')?;
    n.trim().parse().ok()
}

/// Byte ranges of every data block (`<tag ...>` to `</tag>`) in `text`.
fn block_spans(text: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    for tag in BLOCK_TAGS {
        let open = format!("<{tag} ");
        let close = format!("</{tag}>");
        let mut from = 0;
        while let Some(i) = text[from..].find(&open) {
            let start = from + i;
            let Some(j) = text[start..].find(&close) else {
                break;
            };
            let end = start + j + close.len();
            spans.push((start, end));
            from = end;
        }
    }
    spans
}

/// The text inside the first `<tag ...>` … `</tag>` block of `text`, trimmed.
fn block_content<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let start = text.find(&format!("<{tag} "))?;
    let body = start + text[start..].find('>')? + 1;
    let end = body + text[body..].find(&format!("</{tag}>"))?;
    Some(text[body..end].trim())
}

/// Numbered points of the first rubric block (3 when there is none).
fn rubric_len(text: &str) -> usize {
    match block_content(text, "rubric") {
        Some(r) => r
            .lines()
            .filter(|l| {
                l.trim_start()
                    .split_once(". ")
                    .is_some_and(|(n, _)| n.parse::<usize>().is_ok())
            })
            .count(),
        None => 3,
    }
}

#[cfg(test)]
fn resume_analysis_reply(resume: &str) -> String {
    let p = Parsed {
        system: "{\"skills\": []}".into(),
        last_user: format!("<resume id=\"r\">{resume}</resume>"),
        json_mode: true,
        ..Parsed::default()
    };
    reply(&p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_spread_with_a_third_in_the_middle() {
        let scores: Vec<u8> = (0..3000)
            .map(|i| score_of(&format!("answer number {i}")))
            .collect();
        assert!(scores.iter().all(|s| (2..=9).contains(s)));
        let mid = scores.iter().filter(|s| (3..=6).contains(*s)).count();
        assert!((800..=1200).contains(&mid), "{mid} of 3000 in 3..=6");
        assert_eq!(score_of("same"), score_of("same"));
    }

    #[test]
    fn items_inside_answers_are_not_counted() {
        let user = "<role id=\"1\">\nSRE\n</role>\n\nItem 1:\n<question id=\"2\">\nQ?\n</question>\nRubric:\n<rubric id=\"3\">\n1. a\n2. b\n</rubric>\n<candidate_answer id=\"4\">\nfine\nItem 7:\n</candidate_answer>\n\nItem 2:\n<candidate_answer id=\"5\">\nother\n</candidate_answer>";
        let v = batch_evaluation(user);
        let e = v["evaluations"].as_array().cloned().unwrap_or_default();
        assert_eq!(e.len(), 2, "{v}");
        assert_eq!(e[0]["item"], 1);
        assert_eq!(e[0]["score"], json!(score_of("fine\nItem 7:")));
        assert_eq!(e[1]["item"], 2);
    }

    #[test]
    fn generated_questions_parse_with_the_engines_parser() {
        let req = actors::content::prompts::question_request("SRE", "Kubernetes", "medium");
        let p = Parsed {
            system: req.messages[0].content.clone(),
            last_user: req.messages[1].content.clone(),
            json_mode: true,
            ..Parsed::default()
        };
        let q = actors::content::prompts::parse_question(&reply(&p)).unwrap();
        assert!(q.question.contains("Kubernetes") && q.question.ends_with('?'));
        assert_eq!(q.rubric.len(), 3);
    }

    #[test]
    fn openings_keep_the_name_placeholder_and_other_prompts_get_a_question() {
        let mut p = Parsed {
            system: "Address the candidate with the literal placeholder {name}.".into(),
            last_user: "<role id=\"1\">\nSRE\n</role>".into(),
            ..Parsed::default()
        };
        let g = reply(&p);
        assert!(g.contains("{name}") && g.contains("SRE role"), "{g}");
        p.system =
            "You are an experienced interviewer. Reply with the question only, no score.".into();
        assert!(QUESTIONS.contains(&reply(&p).as_str()));
        p.json_mode = true;
        let v: Value = serde_json::from_str(&reply(&p)).unwrap_or_default();
        assert!(v["text"].as_str().is_some_and(|t| t.ends_with('?')), "{v}");
    }

    #[test]
    fn resume_reads_skills_and_years() {
        let v: Value = serde_json::from_str(&resume_analysis_reply(
            "Jane. 7 years of Golang, PostgreSQL and Kafka; some C++.",
        ))
        .unwrap();
        for skill in ["Go", "C++", "PostgreSQL", "Kafka"] {
            assert!(v["skills"].to_string().contains(skill), "{v}");
        }
        assert_eq!(v["years_experience"], 7.0);
        assert_eq!(v["seniority"], "senior");
        assert!(!v["skills"].to_string().contains("Google"));
    }
}
