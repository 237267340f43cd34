//! The interview report: a fixed JSON shape read by the HTML renderer and the candidate page,
//! with scores per question and category, strengths, improvements, speaking stats and a summary.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::scoring::speaking_stats;
use super::{Difficulty, Track};

/// Everything the report is built from.
#[derive(Debug, Clone, Copy)]
pub struct ReportInput<'a> {
    /// Interview id.
    pub interview_id: &'a str,
    /// Candidate id.
    pub candidate_id: &'a str,
    /// Candidate display name.
    pub candidate_name: &'a str,
    /// Role applied for.
    pub role: &'a str,
    /// Track.
    pub track: Track,
    /// Difficulty.
    pub difficulty: Difficulty,
    /// Call-budget mode.
    pub mode: &'a str,
    /// `completed` | `ended_early` | `expired`.
    pub state: &'a str,
    /// RFC 3339 start time.
    pub started_at: &'a str,
    /// RFC 3339 end time.
    pub finished_at: &'a str,
    /// One item per question asked.
    pub items: &'a [ReportItem],
    /// The interview's seed (its id).
    pub seed: &'a str,
}

/// One question of the interview as it went.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReportItem {
    /// 1-based position.
    pub index: u32,
    /// Pool id.
    pub question_id: String,
    /// Category name (`technical_medium`).
    pub category: String,
    /// Difficulty name (`medium`).
    pub difficulty: String,
    /// The question as asked.
    pub question: String,
    /// The answer, if any.
    pub answer: Option<String>,
    /// Audio length of a spoken answer, seconds (not in the report JSON; feeds speaking stats).
    pub audio_duration_s: Option<f64>,
    /// 0-10, once evaluated.
    pub score: Option<u8>,
    /// Written feedback.
    pub feedback: String,
    /// Rubric points covered.
    pub rubric_covered: Vec<String>,
    /// Rubric points missed.
    pub rubric_missed: Vec<String>,
    /// Who scored it (`heuristic`, `llm:groq`, ...).
    pub source: String,
    /// The follow-up, if one was asked.
    pub follow_up: Option<FollowUpItem>,
}

/// A follow-up question and its answer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FollowUpItem {
    /// The follow-up as asked.
    pub question: String,
    /// The answer, if any.
    pub answer: Option<String>,
    /// 0-10, once evaluated.
    pub score: Option<u8>,
}

/// Most strengths and improvements listed (improvements may add "Answer every question").
const MAX_POINTS: usize = 4;

/// Builds the report JSON:
/// `{"interview_id","candidate":{"id","name"},"role","track","difficulty","mode","state",
/// "started_at","finished_at","overall_score","category_scores","questions","strengths",
/// "improvements","speaking","summary"}`. `overall_score` is the mean of scored items (1 decimal,
/// null if none); `category_scores` the mean per category; `questions` the items without
/// `audio_duration_s`; `speaking` the speaking stats of answers with audio, or null. Deterministic.
pub fn build(input: &ReportInput) -> Value {
    let items = input.items;
    let scored: Vec<(&ReportItem, u8)> = items
        .iter()
        .filter_map(|i| i.score.map(|s| (i, s)))
        .collect();
    let overall = mean(scored.iter().map(|(_, s)| *s));

    let mut by_cat: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (item, s) in &scored {
        by_cat.entry(item.category.as_str()).or_default().push(*s);
    }
    let category_means: BTreeMap<&str, f64> = by_cat
        .iter()
        .filter_map(|(c, v)| mean(v.iter().copied()).map(|m| (*c, m)))
        .collect();

    let questions: Vec<Value> = items
        .iter()
        .map(|item| {
            let mut v = serde_json::to_value(item).unwrap_or(Value::Null);
            if let Value::Object(o) = &mut v {
                o.remove("audio_duration_s");
            }
            v
        })
        .collect();

    let strengths = strengths(&scored);
    let improvements = improvements(items, &scored);

    let spoken: Vec<(&str, f64)> = items
        .iter()
        .filter_map(|i| match (&i.answer, i.audio_duration_s) {
            (Some(a), Some(d)) => Some((a.as_str(), d)),
            _ => None,
        })
        .collect();
    let speaking = speaking_stats(&spoken)
        .and_then(|s| serde_json::to_value(s).ok())
        .unwrap_or(Value::Null);

    let summary = summary(input, overall, &category_means);

    json!({
        "interview_id": input.interview_id,
        "candidate": {"id": input.candidate_id, "name": input.candidate_name},
        "role": input.role,
        "track": input.track,
        "difficulty": input.difficulty,
        "mode": input.mode,
        "state": input.state,
        "started_at": input.started_at,
        "finished_at": input.finished_at,
        "overall_score": overall,
        "category_scores": category_means,
        "questions": questions,
        "strengths": strengths,
        "improvements": improvements,
        "speaking": speaking,
        "summary": summary,
    })
}

/// The result profile a coach note is written for: the overall band (`strong` | `solid` | `weak`)
/// and the strongest and weakest categories in words (the same when only one was scored). `None`
/// when nothing was scored. Few profiles exist, so notes written for one are reused (cache kind `summary`).
pub fn profile(items: &[ReportItem]) -> Option<(&'static str, String, String)> {
    let scored: Vec<(&ReportItem, u8)> = items
        .iter()
        .filter_map(|i| i.score.map(|s| (i, s)))
        .collect();
    let overall = mean(scored.iter().map(|(_, s)| *s))?;
    let band = if overall >= 8.0 {
        "strong"
    } else if overall >= 5.0 {
        "solid"
    } else {
        "weak"
    };
    let mut by_cat: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
    for (item, s) in &scored {
        by_cat.entry(item.category.as_str()).or_default().push(*s);
    }
    let means: Vec<(&str, f64)> = by_cat
        .iter()
        .filter_map(|(c, v)| mean(v.iter().copied()).map(|m| (*c, m)))
        .collect();
    let best = means.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    let worst = means.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    Some((band, category_words(best.0), category_words(worst.0)))
}

/// Mean with one decimal; None for no values.
fn mean(values: impl Iterator<Item = u8>) -> Option<f64> {
    let (sum, n) = values.fold((0u32, 0u32), |(s, n), v| (s + u32::from(v), n + 1));
    if n == 0 {
        return None;
    }
    Some((f64::from(sum) / f64::from(n) * 10.0).round() / 10.0)
}

fn answered(item: &ReportItem) -> bool {
    item.answer.as_deref().is_some_and(|a| !a.trim().is_empty())
}

/// Picks up to [`MAX_POINTS`] points round-robin over the ordered items (first point of each item,
/// then the second, ...), without duplicates.
fn round_robin(lists: &[&[String]]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let longest = lists.iter().map(|l| l.len()).max().unwrap_or(0);
    for k in 0..longest {
        for l in lists {
            if let Some(p) = l.get(k) {
                let p = p.trim().trim_end_matches('.').to_string();
                if !p.is_empty() && !out.iter().any(|o| o.eq_ignore_ascii_case(&p)) {
                    out.push(p);
                }
                if out.len() >= MAX_POINTS {
                    return out;
                }
            }
        }
    }
    out
}

/// Rubric points covered in the best-scored answers (score 5 and up), best first.
fn strengths(scored: &[(&ReportItem, u8)]) -> Vec<String> {
    let mut best: Vec<&(&ReportItem, u8)> = scored.iter().filter(|(_, s)| *s >= 5).collect();
    best.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.index.cmp(&b.0.index)));
    let lists: Vec<&[String]> = best
        .iter()
        .map(|(i, _)| i.rubric_covered.as_slice())
        .collect();
    round_robin(&lists)
}

/// Rubric points missed in the lowest-scored answered questions, lowest first, plus "Answer every
/// question" when some were left unanswered.
fn improvements(items: &[ReportItem], scored: &[(&ReportItem, u8)]) -> Vec<String> {
    let mut worst: Vec<&(&ReportItem, u8)> = scored
        .iter()
        .filter(|(i, s)| *s < 10 && answered(i))
        .collect();
    worst.sort_by(|a, b| a.1.cmp(&b.1).then(a.0.index.cmp(&b.0.index)));
    let lists: Vec<&[String]> = worst
        .iter()
        .map(|(i, _)| i.rubric_missed.as_slice())
        .collect();
    let mut out = round_robin(&lists);
    if items.iter().any(|i| !answered(i)) {
        out.push("Answer every question".to_string());
    }
    out
}

/// A category as words for the summary.
fn category_words(c: &str) -> String {
    match c {
        "introduction" => "the introduction".into(),
        "technical_easy" => "the foundational technical questions".into(),
        "technical_medium" => "the intermediate technical questions".into(),
        "technical_hard" => "the advanced technical questions".into(),
        "behavioral" => "the behavioral questions".into(),
        "project" => "the questions about your projects".into(),
        other => format!("the {} questions", other.replace('_', " ")),
    }
}

fn summary(input: &ReportInput, overall: Option<f64>, cats: &BTreeMap<&str, f64>) -> String {
    let total = input.items.len();
    let answered_n = input.items.iter().filter(|i| answered(i)).count();
    let mut s = match overall {
        None => "No answers were scored, so there is no overall score yet.".to_string(),
        Some(o) => {
            let band = if o >= 8.0 {
                "a strong performance"
            } else if o >= 5.0 {
                "a solid performance with room to grow"
            } else if o > 0.0 {
                "a performance that needs more preparation"
            } else {
                "a session without usable answers"
            };
            format!("Overall score {o:.1} out of 10: {band}.")
        }
    };
    if cats.len() >= 2 {
        // Highest mean wins; ties go to the category that sorts first.
        let mut best: Option<(&str, f64)> = None;
        let mut worst: Option<(&str, f64)> = None;
        for (c, m) in cats {
            if best.is_none_or(|(_, b)| *m > b) {
                best = Some((c, *m));
            }
            if worst.is_none_or(|(_, w)| *m < w) {
                worst = Some((c, *m));
            }
        }
        if let (Some((bc, bm)), Some((wc, wm))) = (best, worst) {
            if bm > wm {
                s.push_str(&format!(
                    " You were strongest on {} ({bm:.1}) and weakest on {} ({wm:.1}).",
                    category_words(bc),
                    category_words(wc)
                ));
            } else {
                s.push_str(" Your scores were even across categories.");
            }
        }
    } else if let Some((c, m)) = cats.iter().next() {
        s.push_str(&format!(
            " All scored answers were in {} ({m:.1}).",
            category_words(c)
        ));
    }
    match input.state {
        "ended_early" => s.push_str(&format!(
            " The interview was ended early, after {answered_n} of {total} questions were answered."
        )),
        "expired" => s.push_str(&format!(
            " The interview closed after inactivity, with {answered_n} of {total} questions answered."
        )),
        _ if answered_n < total => s.push_str(&format!(
            " You answered {answered_n} of {total} questions; answering every one gives a fuller picture."
        )),
        _ => {}
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(index: u32, category: &str, score: Option<u8>, answer: Option<&str>) -> ReportItem {
        ReportItem {
            index,
            question_id: format!("backend-{index:03}"),
            category: category.into(),
            difficulty: "medium".into(),
            question: format!("Question {index}?"),
            answer: answer.map(str::to_string),
            audio_duration_s: None,
            score,
            feedback: "fb".into(),
            rubric_covered: vec![
                format!("Covered point {index}a"),
                format!("Covered point {index}b"),
            ],
            rubric_missed: vec![
                format!("Missed point {index}a"),
                format!("Missed point {index}b"),
            ],
            source: "heuristic".into(),
            follow_up: None,
        }
    }

    fn input<'a>(items: &'a [ReportItem], state: &'static str) -> ReportInput<'a> {
        ReportInput {
            interview_id: "iv-1",
            candidate_id: "c-1",
            candidate_name: "Ada",
            role: "Backend Engineer",
            track: Track::Technical,
            difficulty: Difficulty::Medium,
            mode: "balanced",
            state,
            started_at: "2026-01-01T10:00:00Z",
            finished_at: "2026-01-01T10:30:00Z",
            items,
            seed: "iv-1",
        }
    }

    #[test]
    fn shape_and_scores() {
        let mut items = vec![
            item(1, "introduction", Some(9), Some("I built things")),
            item(2, "technical_medium", Some(6), Some("an answer")),
            item(3, "technical_medium", Some(3), Some("meh")),
            item(4, "technical_hard", None, None),
        ];
        items[1].audio_duration_s = Some(6.0);
        items[1].answer = Some("um so basically we use an index um".into());
        items[1].follow_up = Some(FollowUpItem {
            question: "Why?".into(),
            answer: Some("Because".into()),
            score: Some(5),
        });
        let r = build(&input(&items, "completed"));
        for k in [
            "interview_id",
            "candidate",
            "role",
            "track",
            "difficulty",
            "mode",
            "state",
            "started_at",
            "finished_at",
            "overall_score",
            "category_scores",
            "questions",
            "strengths",
            "improvements",
            "speaking",
            "summary",
        ] {
            assert!(r.get(k).is_some(), "{k}");
        }
        assert_eq!(r["candidate"], json!({"id": "c-1", "name": "Ada"}));
        assert_eq!(r["track"], "technical");
        assert_eq!(r["difficulty"], "medium");
        assert_eq!(r["overall_score"], json!(6.0));
        assert_eq!(r["category_scores"]["technical_medium"], json!(4.5));
        assert_eq!(r["category_scores"]["introduction"], json!(9.0));
        assert!(r["category_scores"].get("technical_hard").is_none());
        let qs = r["questions"].as_array().unwrap();
        assert_eq!(qs.len(), 4);
        assert!(qs[0].get("audio_duration_s").is_none());
        assert_eq!(qs[1]["follow_up"]["score"], 5);
        assert_eq!(qs[3]["score"], Value::Null);
        assert_eq!(
            r["strengths"],
            json!([
                "Covered point 1a",
                "Covered point 2a",
                "Covered point 1b",
                "Covered point 2b"
            ])
        );
        let imp = r["improvements"].as_array().unwrap();
        assert_eq!(imp[0], "Missed point 3a");
        assert_eq!(imp.last().unwrap(), "Answer every question");
        assert!(imp.len() <= 5);
        assert_eq!(r["speaking"]["words_per_minute"], json!(80.0));
        assert_eq!(r["speaking"]["filler_words"]["um"], 2);
        let summary = r["summary"].as_str().unwrap();
        assert!(summary.contains("6.0"), "{summary}");
        assert!(
            summary.contains("strongest on the introduction"),
            "{summary}"
        );
        assert!(
            summary.contains("weakest on the intermediate technical questions"),
            "{summary}"
        );
        assert!(summary.contains("3 of 4"), "{summary}");
        // Deterministic.
        assert_eq!(r, build(&input(&items, "completed")));
    }

    #[test]
    fn nothing_scored() {
        let items = vec![item(1, "introduction", None, None)];
        let r = build(&input(&items, "expired"));
        assert_eq!(r["overall_score"], Value::Null);
        assert_eq!(r["category_scores"], json!({}));
        assert_eq!(r["speaking"], Value::Null);
        assert_eq!(r["strengths"], json!([]));
        assert_eq!(r["improvements"], json!(["Answer every question"]));
        let s = r["summary"].as_str().unwrap();
        assert!(
            s.contains("No answers were scored") && s.contains("inactivity"),
            "{s}"
        );
        let r = build(&input(&[], "ended_early"));
        assert_eq!(r["questions"], json!([]));
    }
}
