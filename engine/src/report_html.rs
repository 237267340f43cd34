//! The interview report as a page a person reads (`GET /api/interviews/{id}/report?format=html`):
//! the report JSON rendered through the embedded minijinja template, HTML auto-escaping always on.

use chrono::{DateTime, Utc};
use minijinja::value::Value as TplValue;
use minijinja::{context, AutoEscape, Environment};
use serde_json::Value;

/// The template, embedded at build time.
const TEMPLATE: &str = include_str!("http/assets/report.html.j2");
const TEMPLATE_NAME: &str = "report.html.j2";

/// Renders `report` (the same object `GET /api/interviews/{id}/report` answers with) as a complete
/// HTML page, linking to the candidate's progress page when `progress_link` is given. Every string
/// from the report is escaped; missing or null fields render as absent.
pub fn render(report: &Value, progress_link: Option<&str>) -> Result<String, minijinja::Error> {
    let env = environment();
    let tpl = env.template_from_named_str(TEMPLATE_NAME, TEMPLATE)?;

    let started = parse_time(report.get("started_at"));
    let finished = parse_time(report.get("finished_at"));
    let questions = report
        .get("questions")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let answered = questions
        .iter()
        .filter(|q| {
            q.get("answer")
                .and_then(Value::as_str)
                .is_some_and(|a| !a.trim().is_empty())
        })
        .count();
    let pace = report
        .get("speaking")
        .and_then(|s| s.get("words_per_minute"))
        .and_then(Value::as_f64)
        .map(pace_label)
        .unwrap_or_default();

    tpl.render(context! {
        report => TplValue::from_serialize(report),
        state_label => state_label(report.get("state").and_then(Value::as_str).unwrap_or_default()),
        started => started.map(|t| t.format("%-d %b %Y, %H:%M UTC").to_string()),
        finished => finished.map(|f| match started {
            Some(s) if s.date_naive() == f.date_naive() => f.format("%H:%M UTC").to_string(),
            _ => f.format("%-d %b %Y, %H:%M UTC").to_string(),
        }),
        duration => started.zip(finished).and_then(|(s, f)| duration_label(f - s)),
        answered => answered,
        total => questions.len(),
        pace => pace,
        progress_link => progress_link,
    })
}

/// The engine's page environment (the report page and the operator dashboard): HTML auto-escaping
/// for every template, trimmed blocks, and the report's filters.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Whatever the template is called, its output is HTML and every value is untrusted.
    env.set_auto_escape_callback(|_| AutoEscape::Html);
    env.set_trim_blocks(true);
    env.set_lstrip_blocks(true);
    env.add_filter("score", score_filter);
    env.add_filter("pct", pct_filter);
    env.add_filter("humanize", humanize_filter);
    env.add_filter("area", area_filter);
    env
}

/// A score as people read it: at most one decimal, no trailing ".0" (7 → "7", 7.25 → "7.3").
fn score_filter(v: TplValue) -> String {
    match f64::try_from(v.clone()) {
        Ok(x) if x.is_finite() => {
            let r = (x * 10.0).round() / 10.0;
            if r.fract() == 0.0 {
                format!("{r:.0}")
            } else {
                format!("{r:.1}")
            }
        }
        _ => v.to_string(),
    }
}

/// A 0-10 score as a bar width in percent, clamped to 0..=100.
fn pct_filter(v: TplValue) -> String {
    let pct = match f64::try_from(v) {
        Ok(x) if x.is_finite() => ((x * 10.0).clamp(0.0, 100.0) * 10.0).round() / 10.0,
        _ => 0.0,
    };
    format!("{pct}")
}

/// `technical_medium` → `Technical medium`.
fn humanize_filter(s: String) -> String {
    let spaced = s.replace(['_', '-'], " ");
    let mut chars = spaced.trim().chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// A category or area as a candidate reads it: the technical levels are one area, "Technical".
fn area_filter(s: String) -> String {
    match actors::content::report::area(&s) {
        "technical" => "Technical".to_string(),
        "project" => "Your projects".to_string(),
        other => humanize_filter(other.to_string()),
    }
}

fn state_label(state: &str) -> String {
    match state {
        "completed" => "Completed".to_string(),
        "ended_early" => "Ended early".to_string(),
        "expired" => "Closed after inactivity".to_string(),
        other => humanize_filter(other.to_string()),
    }
}

fn parse_time(v: Option<&Value>) -> Option<DateTime<Utc>> {
    let s = v?.as_str()?;
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn duration_label(d: chrono::TimeDelta) -> Option<String> {
    let secs = d.num_seconds();
    if secs < 0 {
        return None;
    }
    let mins = (secs + 30) / 60;
    Some(if mins < 1 {
        "under a minute".to_string()
    } else if mins < 60 {
        format!("{mins} min")
    } else {
        format!("{} h {} min", mins / 60, mins % 60)
    })
}

fn pace_label(wpm: f64) -> String {
    if wpm < 110.0 {
        "on the slow side (aim for 120-160)".to_string()
    } else if wpm <= 170.0 {
        "a comfortable pace".to_string()
    } else {
        "on the fast side (aim for 120-160)".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> Value {
        json!({
            "interview_id": "iv-123",
            "candidate": {"id": "c1", "name": "Ada Lovelace"},
            "role": "Backend Engineer", "track": "technical", "difficulty": "medium", "mode": "balanced",
            "state": "completed",
            "started_at": "2025-11-23T09:00:00Z", "finished_at": "2025-11-23T09:24:10Z",
            "overall_score": 7.2,
            "category_scores": {"technical_medium": 6.5, "behavioral": 8.0},
            "questions": [
                {"index": 1, "question_id": "backend-012", "category": "technical_medium", "difficulty": "medium",
                 "question": "How would you design a rate limiter?", "answer": "A token bucket per key.",
                 "score": 7, "feedback": "Solid core idea.", "rubric_covered": ["token bucket"],
                 "rubric_missed": ["distributed state"], "source": "heuristic",
                 "follow_up": {"question": "And across nodes?", "answer": "Redis with Lua.", "score": 6}},
                {"index": 2, "question_id": "beh-001", "category": "behavioral", "difficulty": "medium",
                 "question": "Tell me about a conflict.", "answer": null, "score": null, "feedback": "",
                 "rubric_covered": [], "rubric_missed": ["situation"], "source": "heuristic", "follow_up": null}
            ],
            "strengths": ["Clear structure"],
            "improvements": ["Quantify impact"],
            "speaking": {"words_per_minute": 142.0, "filler_words": {"um": 3, "like": 2}, "filler_per_100_words": 2.1},
            "summary": "A good session."
        })
    }

    #[test]
    fn renders_the_main_parts() {
        let html = render(&sample(), None).unwrap();
        assert!(html.starts_with("<!doctype html>"), "{}", &html[..80]);
        assert!(html.contains("Ada Lovelace"));
        assert!(html.contains("Backend Engineer"));
        assert!(html.contains(">Solid<"), "overall band shown");
        assert!(!html.contains("/10"), "no x/10 for candidates");
        assert!(html.contains("Technical"));
        assert!(!html.contains("Technical medium"), "levels are one area");
        assert!(!html.contains("mode"), "no internal words");
        assert!(!html.contains("heuristic"));
        assert!(html.contains("width: 65%"), "category bar width");
        assert!(html.contains("How would you design a rate limiter?"));
        assert!(html.contains("Solid core idea."));
        assert!(html.contains("distributed state"));
        assert!(html.contains("And across nodes?"));
        assert!(html.contains("Clear structure"));
        assert!(html.contains("Quantify impact"));
        assert!(html.contains("24 min"));
        assert!(html.contains("1 of 2 questions answered"));
        assert!(!html.contains("<script"), "the page needs no script");
    }

    #[test]
    fn candidate_text_is_escaped() {
        let mut r = sample();
        r["questions"][0]["answer"] = json!("<script>alert('x')</script> & \"quotes\"");
        r["candidate"]["name"] = json!("<img src=x onerror=alert(1)>");
        r["questions"][0]["follow_up"]["answer"] = json!("</div><script>evil()</script>");
        r["category_scores"] = json!({"<b>cat</b>": 5.0});
        let html = render(&r, None).unwrap();
        assert!(!html.contains("<script"), "script tag leaked: {html}");
        assert!(!html.contains("<img"), "img tag leaked");
        assert!(!html.contains("<b>cat"), "category name leaked");
        assert!(html.contains("&lt;script&gt;alert("));
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"));
        assert!(html.contains("&amp; &quot;quotes&quot;"));
    }

    #[test]
    fn speaking_section_only_when_present() {
        let with = render(&sample(), None).unwrap();
        assert!(with.contains("id=\"speaking\""));
        assert!(with.contains("142"));
        assert!(with.contains("“um” × 3"));
        assert!(with.contains("2.1"));

        let mut r = sample();
        r["speaking"] = Value::Null;
        let without = render(&r, None).unwrap();
        assert!(!without.contains("id=\"speaking\""));
        assert!(!without.contains("words per minute"));

        let mut r = sample();
        r.as_object_mut().unwrap().remove("speaking");
        assert!(!render(&r, None).unwrap().contains("id=\"speaking\""));
    }

    #[test]
    fn speaking_section_shows_pauses_talk_time_and_barge_ins_from_voice() {
        let mut r = sample();
        r["speaking"]["long_pauses"] =
            json!({"threshold_s": 2.0, "count": 2, "longest_s": 3.4, "items": []});
        r["speaking"]["talk_time"] =
            json!({"candidate_s": 30.0, "interviewer_s": 70.0, "candidate_share": 0.3});
        r["speaking"]["barge_ins"] = json!({"count": 1, "items": []});
        let html = render(&r, None).unwrap();
        assert!(html.contains("id=\"long-pauses\""));
        assert!(html.contains("longest 3.4 s"));
        assert!(html.contains("<b>30%</b>"));
        assert!(html.contains("times you spoke over the interviewer"));
        // Without the voice figures (typed answers with a length only), none of them shows.
        let plain = render(&sample(), None).unwrap();
        assert!(!plain.contains("long-pauses") && !plain.contains("talk-share"));
    }

    #[test]
    fn unanswered_questions_say_so() {
        let html = render(&sample(), None).unwrap();
        assert_eq!(
            html.matches("Not answered").count(),
            1,
            "only question 2 is unanswered"
        );
        let mut r = sample();
        r["questions"][0]["answer"] = json!("   ");
        r["questions"][0]["follow_up"]["answer"] = Value::Null;
        assert_eq!(render(&r, None).unwrap().matches("Not answered").count(), 3);
    }

    #[test]
    fn sparse_reports_still_render() {
        let html = render(&json!({"state": "expired", "questions": []}), None).unwrap();
        assert!(html.contains("Closed after inactivity"));
        assert!(html.contains("No questions were asked."));
        assert!(html.contains("None noted this time."));
        let html = render(&json!({}), None).unwrap();
        assert!(html.contains("Candidate"));
    }

    #[test]
    fn bands_points_counts_and_regrades() {
        let mut r = sample();
        r["counts"] =
            json!({"planned": 3, "asked": 2, "answered": 1, "skipped": 1, "unanswered": 0});
        r["regraded"] = json!({"count": 1, "source": "llm:groq"});
        r["questions"][0]["band"] = json!("partial");
        r["questions"][0]["graded_by"] = json!("model");
        r["questions"][0]["regraded"] = json!(true);
        r["questions"][0]["points"] = json!([
            {"say": "a token bucket per key", "coverage": "stated", "quote": "A token bucket per key."},
            {"say": "shared counters in Redis", "coverage": "missing", "quote": null}
        ]);
        r["questions"][1]["skipped"] = json!(true);
        let html = render(&r, Some("/candidates/c1?interview=iv-123&token=t")).unwrap();
        assert!(html.contains(r#"data-band="partial""#));
        assert!(html.contains(r#"data-band="skipped""#));
        assert!(html.contains("<q>A token bucket per key.</q>"));
        assert!(html.contains("shared counters in Redis"));
        assert!(
            html.contains("2 of 3 questions asked · 1 answered · 1 skipped"),
            "counts"
        );
        assert!(html.contains("regraded after the interview by an AI reviewer"));
        assert!(html.contains("Regraded after the interview by an AI reviewer"));
        assert!(
            html.contains(r#"id="progress-link""#)
                && html.contains("c1?interview=iv-123&amp;token=t")
        );
        assert!(
            !html.contains("llm:groq"),
            "no provider names for candidates"
        );
    }

    #[test]
    fn filters() {
        assert_eq!(score_filter(TplValue::from(7)), "7");
        assert_eq!(score_filter(TplValue::from(7.25)), "7.3");
        assert_eq!(score_filter(TplValue::from(8.0)), "8");
        assert_eq!(pct_filter(TplValue::from(12)), "100");
        assert_eq!(pct_filter(TplValue::from(-1)), "0");
        assert_eq!(pct_filter(TplValue::from(6.55)), "65.5");
        assert_eq!(humanize_filter("system_design".into()), "System design");
        assert_eq!(pace_label(142.0), "a comfortable pace");
    }
}
