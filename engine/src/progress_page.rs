//! The candidate's progress across interviews (`GET /candidates/{id}`): a chart of scores over
//! interviews, overall and per area, drawn on the server as SVG (no script, nothing fetched), and
//! what keeps coming back: habits the rubric scorer noticed in several interviews, topics with low
//! scores and points missed more than once. Built from the finished interviews' report documents,
//! oldest first; the page is the embedded minijinja template with HTML auto-escaping on.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use actors::content::report::habit_advice;
use actors::content::scoring::Note;
use minijinja::context;
use minijinja::value::Value as TplValue;
use serde::Serialize;
use serde_json::Value;

const TEMPLATE: &str = include_str!("http/assets/progress.html.j2");

/// The areas a candidate reads, in chart order, with their colors and dash patterns (so the lines
/// stay apart in print and for color-blind readers).
const AREAS: [(&str, &str, &str, &str); 4] = [
    ("technical", "Technical", "#2449c2", ""),
    ("behavioral", "Behavioral", "#b86e00", "6 4"),
    ("introduction", "Introduction", "#17703f", "2 4"),
    ("project", "Your projects", "#8b3fb5", "10 4 2 4"),
];

/// One finished interview as the page shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// 1-based position, oldest first.
    pub n: usize,
    /// Date (`2026-01-03`).
    pub date: String,
    /// Role applied for.
    pub role: String,
    /// `completed` | `ended_early` | `expired`, as words.
    pub state: String,
    /// Overall score, when anything was graded.
    pub overall: Option<f64>,
    /// Overall band label ("Solid").
    pub band: Option<String>,
    /// Answered of asked.
    pub answered: u64,
    /// Asked.
    pub asked: u64,
}

/// Something that recurs, with how often.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Recurring {
    /// What to work on.
    pub text: String,
    /// In how many interviews (habits, points) or answers (topics).
    pub count: usize,
}

/// Everything the page shows, computed from reports (oldest first).
#[derive(Debug, Clone, Serialize)]
pub struct Progress {
    /// The candidate's latest name.
    pub name: String,
    /// Interviews shown.
    pub rows: Vec<Row>,
    /// The chart, as SVG markup built from numbers and fixed labels only.
    pub chart: String,
    /// Habits seen in at least two interviews, most frequent first.
    pub habits: Vec<Recurring>,
    /// Topics with a low mean score over at least two answers, weakest first.
    pub topics: Vec<Recurring>,
    /// Points missed in at least two interviews.
    pub points: Vec<Recurring>,
}

fn band_label(score: f64) -> &'static str {
    if score >= 7.0 {
        "Solid"
    } else if score >= 4.0 {
        "Partial"
    } else {
        "Not yet"
    }
}

/// The area of a stored category (older reports have only `category_scores`).
fn area_of(category: &str) -> &str {
    actors::content::report::area(category)
}

/// Per-area means of one report: `area_scores` when present, else folded from `category_scores`.
fn area_scores(report: &Value) -> BTreeMap<String, f64> {
    if let Some(o) = report["area_scores"].as_object() {
        return o
            .iter()
            .filter_map(|(k, v)| v.as_f64().map(|x| (k.clone(), x)))
            .collect();
    }
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for q in report["questions"].as_array().into_iter().flatten() {
        if let (Some(c), Some(s)) = (q["category"].as_str(), q["score"].as_f64()) {
            let e = sums.entry(area_of(c).to_string()).or_default();
            e.0 += s;
            e.1 += 1.0;
        }
    }
    sums.into_iter()
        .map(|(k, (s, n))| (k, (s / n * 10.0).round() / 10.0))
        .collect()
}

fn note_of(s: &str) -> Option<Note> {
    serde_json::from_value(Value::String(s.to_string())).ok()
}

/// Builds the page's content from finished reports, oldest first. `tags` gives a question id's
/// topic tags (from the pool).
pub fn progress(reports: &[Value], tags: impl Fn(&str) -> Vec<String>) -> Progress {
    let mut rows = Vec::new();
    let mut habits: BTreeMap<Note, usize> = BTreeMap::new();
    let mut topic_scores: BTreeMap<String, Vec<f64>> = BTreeMap::new();
    let mut missed: BTreeMap<String, usize> = BTreeMap::new();
    let mut series: Vec<(Option<f64>, BTreeMap<String, f64>)> = Vec::new();
    for (i, r) in reports.iter().enumerate() {
        let overall = r["overall_score"].as_f64();
        let counts = &r["counts"];
        let questions = r["questions"].as_array().cloned().unwrap_or_default();
        let asked = counts["asked"].as_u64().unwrap_or(questions.len() as u64);
        let answered = counts["answered"].as_u64().unwrap_or_else(|| {
            questions
                .iter()
                .filter(|q| q["answer"].as_str().is_some_and(|a| !a.trim().is_empty()))
                .count() as u64
        });
        rows.push(Row {
            n: i + 1,
            date: r["started_at"]
                .as_str()
                .map(|d| d.chars().take(10).collect())
                .unwrap_or_default(),
            role: r["role"].as_str().unwrap_or_default().to_string(),
            state: match r["state"].as_str().unwrap_or_default() {
                "completed" => "Completed",
                "ended_early" => "Ended early",
                "expired" => "Closed after inactivity",
                _ => "",
            }
            .to_string(),
            overall,
            band: overall.map(|o| band_label(o).to_string()),
            answered,
            asked,
        });
        series.push((overall, area_scores(r)));
        let mut notes_here: Vec<Note> = Vec::new();
        let mut missed_here: Vec<String> = Vec::new();
        for q in &questions {
            for n in q["notes"].as_array().into_iter().flatten() {
                if let Some(n) = n.as_str().and_then(note_of) {
                    if !notes_here.contains(&n) {
                        notes_here.push(n);
                    }
                }
            }
            if let Some(score) = q["score"].as_f64() {
                for t in tags(q["question_id"].as_str().unwrap_or_default()) {
                    topic_scores.entry(t).or_default().push(score);
                }
                for p in q["points"].as_array().into_iter().flatten() {
                    if p["coverage"] != "stated" {
                        if let Some(say) = p["say"].as_str() {
                            if !missed_here.iter().any(|m| m == say) {
                                missed_here.push(say.to_string());
                            }
                        }
                    }
                }
            }
        }
        for n in notes_here {
            *habits.entry(n).or_default() += 1;
        }
        for m in missed_here {
            *missed.entry(m).or_default() += 1;
        }
    }
    let mut habits: Vec<Recurring> = habits
        .into_iter()
        .filter(|(_, c)| *c >= 2)
        .filter_map(|(n, c)| {
            habit_advice(n).map(|t| Recurring {
                text: t.to_string(),
                count: c,
            })
        })
        .collect();
    habits.sort_by(|a, b| b.count.cmp(&a.count).then(a.text.cmp(&b.text)));
    let mut topics: Vec<(f64, Recurring)> = topic_scores
        .into_iter()
        .filter(|(_, v)| v.len() >= 2)
        .map(|(t, v)| (v.iter().sum::<f64>() / v.len() as f64, t, v.len()))
        .filter(|(m, _, _)| *m < 6.0)
        .map(|(m, t, n)| {
            (
                m,
                Recurring {
                    text: t.replace('-', " "),
                    count: n,
                },
            )
        })
        .collect();
    topics.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.text.cmp(&b.1.text)));
    let mut points: Vec<Recurring> = missed
        .into_iter()
        .filter(|(_, c)| *c >= 2)
        .map(|(text, count)| Recurring { text, count })
        .collect();
    points.sort_by(|a, b| b.count.cmp(&a.count).then(a.text.cmp(&b.text)));
    let name = reports
        .last()
        .and_then(|r| r["candidate"]["name"].as_str())
        .unwrap_or("Candidate")
        .to_string();
    let dates: Vec<String> = rows.iter().map(|r| r.date.clone()).collect();
    Progress {
        name,
        chart: chart_svg(&series, &dates),
        rows,
        habits: habits.into_iter().take(5).collect(),
        topics: topics.into_iter().map(|(_, r)| r).take(5).collect(),
        points: points.into_iter().take(6).collect(),
    }
}

/// The chart: scores 0-10 (with the bands shaded) against interviews, one line for the overall
/// score and one per area. Only numbers and the fixed labels above go into the markup.
pub fn chart_svg(series: &[(Option<f64>, BTreeMap<String, f64>)], dates: &[String]) -> String {
    const W: f64 = 720.0;
    const H: f64 = 300.0;
    const LEFT: f64 = 44.0;
    const RIGHT: f64 = 16.0;
    const TOP: f64 = 16.0;
    const BOTTOM: f64 = 48.0;
    let n = series.len();
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |i: usize| {
        if n <= 1 {
            LEFT + pw / 2.0
        } else {
            LEFT + pw * i as f64 / (n - 1) as f64
        }
    };
    let y = |s: f64| TOP + ph * (1.0 - s.clamp(0.0, 10.0) / 10.0);
    let mut out = String::new();
    let _ = write!(
        out,
        r##"<svg id="progress-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" role="img" aria-labelledby="chart-title chart-desc" data-interviews="{n}">"##
    );
    let _ = write!(
        out,
        r##"<title id="chart-title">Scores over your interviews</title><desc id="chart-desc">Overall score and score per area, from 0 to 10, for each of your {n} finished interviews, oldest on the left.</desc>"##
    );
    // Band shading: not yet (0-4), partial (4-7), solid (7-10).
    for (lo, hi, fill, label) in [
        (0.0, 4.0, "#fce9e7", "Not yet"),
        (4.0, 7.0, "#fcf0d8", "Partial"),
        (7.0, 10.0, "#e4f3ea", "Solid"),
    ] {
        let _ = write!(
            out,
            r##"<rect x="{LEFT}" y="{:.1}" width="{pw}" height="{:.1}" fill="{fill}"/><text x="{:.1}" y="{:.1}" font-size="10" fill="#5b6470" text-anchor="end">{label}</text>"##,
            y(hi),
            y(lo) - y(hi),
            LEFT + pw - 4.0,
            y(hi) + 12.0
        );
    }
    for s in [0.0, 2.0, 4.0, 6.0, 8.0, 10.0] {
        let _ = write!(
            out,
            r##"<line x1="{LEFT}" x2="{:.1}" y1="{:.1}" y2="{:.1}" stroke="#dfe3e9"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#5b6470" text-anchor="end">{s}</text>"##,
            LEFT + pw,
            y(s),
            y(s),
            LEFT - 6.0,
            y(s) + 4.0
        );
    }
    for (i, d) in dates.iter().enumerate() {
        let label: String = d
            .chars()
            .filter(|c| c.is_ascii_digit() || *c == '-')
            .collect();
        let _ = write!(
            out,
            r##"<text x="{:.1}" y="{:.1}" font-size="11" fill="#5b6470" text-anchor="middle">#{}</text><text x="{:.1}" y="{:.1}" font-size="9" fill="#5b6470" text-anchor="middle">{label}</text>"##,
            x(i),
            H - BOTTOM + 16.0,
            i + 1,
            x(i),
            H - BOTTOM + 29.0
        );
    }
    let mut legend: Vec<(&str, &str, &str, f64)> = Vec::new();
    for (key, label, color, dash) in AREAS {
        let pts: Vec<(usize, f64)> = series
            .iter()
            .enumerate()
            .filter_map(|(i, (_, a))| a.get(key).map(|s| (i, *s)))
            .collect();
        if pts.is_empty() {
            continue;
        }
        line(&mut out, &pts, &x, &y, color, dash, 2.0, key);
        legend.push((label, color, dash, 2.0));
    }
    let overall: Vec<(usize, f64)> = series
        .iter()
        .enumerate()
        .filter_map(|(i, (o, _))| o.map(|s| (i, s)))
        .collect();
    if !overall.is_empty() {
        line(&mut out, &overall, &x, &y, "#1a1d23", "", 3.5, "overall");
        legend.insert(0, ("Overall", "#1a1d23", "", 3.5));
    }
    let mut lx = LEFT;
    for (label, color, dash, width) in legend {
        let ly = H - 8.0;
        let _ = write!(
            out,
            r##"<line x1="{lx:.1}" x2="{:.1}" y1="{ly:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}"/><text x="{:.1}" y="{:.1}" font-size="11" fill="#1a1d23">{label}</text>"##,
            lx + 22.0,
            lx + 27.0,
            ly + 4.0
        );
        lx += 40.0 + 7.0 * label.len() as f64;
    }
    out.push_str("</svg>");
    out
}

#[allow(clippy::too_many_arguments)]
fn line(
    out: &mut String,
    pts: &[(usize, f64)],
    x: &dyn Fn(usize) -> f64,
    y: &dyn Fn(f64) -> f64,
    color: &str,
    dash: &str,
    width: f64,
    key: &str,
) {
    let path: Vec<String> = pts
        .iter()
        .map(|(i, s)| format!("{:.1},{:.1}", x(*i), y(*s)))
        .collect();
    let _ = write!(
        out,
        r##"<polyline class="series" data-series="{key}" points="{}" fill="none" stroke="{color}" stroke-width="{width}" stroke-dasharray="{dash}" stroke-linejoin="round"/>"##,
        path.join(" ")
    );
    for (i, s) in pts {
        let _ = write!(
            out,
            r##"<circle cx="{:.1}" cy="{:.1}" r="{:.1}" fill="{color}"><title>Interview {}: {s:.1}</title></circle>"##,
            x(*i),
            y(*s),
            width + 1.0,
            i + 1
        );
    }
}

/// The page for a candidate id and their finished reports (oldest first).
pub fn render(candidate_id: &str, p: &Progress) -> Result<String, minijinja::Error> {
    let env = crate::report_html::environment();
    let tpl = env.template_from_named_str("progress.html.j2", TEMPLATE)?;
    tpl.render(context! {
        candidate_id => candidate_id,
        p => TplValue::from_serialize(p),
        chart => TplValue::from_safe_string(p.chart.clone()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn report(
        day: u32,
        overall: f64,
        tech: f64,
        beh: Option<f64>,
        notes: &[&str],
        missing: &str,
    ) -> Value {
        let mut areas = json!({"technical": tech});
        if let Some(b) = beh {
            areas["behavioral"] = json!(b);
        }
        json!({
            "candidate": {"id": "c1", "name": "Ada <script>"},
            "role": "Backend Engineer", "state": "completed",
            "started_at": format!("2026-01-{day:02}T10:00:00Z"),
            "overall_score": overall, "area_scores": areas,
            "counts": {"asked": 3, "answered": 3},
            "questions": [
                {"question_id": "backend-010", "category": "technical_easy", "score": tech, "notes": notes,
                 "points": [{"say": "expiry times that bound staleness", "coverage": "stated"},
                            {"say": missing, "coverage": "missing"}]},
            ]
        })
    }

    #[test]
    fn recurring_habits_topics_and_points() {
        let reports = vec![
            report(
                1,
                4.0,
                3.0,
                Some(5.0),
                &["no_example", "no_result"],
                "the tradeoff between fresh data and database load",
            ),
            report(
                3,
                6.0,
                5.0,
                None,
                &["no_example"],
                "the tradeoff between fresh data and database load",
            ),
            report(5, 7.5, 8.0, Some(7.0), &["no_result"], "something else"),
        ];
        let p = progress(&reports, |id| {
            if id == "backend-010" {
                vec!["caching".into()]
            } else {
                vec![]
            }
        });
        assert_eq!(p.rows.len(), 3);
        assert_eq!(p.rows[0].band.as_deref(), Some("Partial"));
        assert_eq!(p.rows[2].band.as_deref(), Some("Solid"));
        assert_eq!(p.name, "Ada <script>");
        let habits: Vec<&str> = p.habits.iter().map(|h| h.text.as_str()).collect();
        assert_eq!(
            habits,
            [
                "Back answers with an example from your own work",
                "Finish each story with its outcome"
            ]
        );
        assert_eq!(
            p.topics,
            vec![Recurring {
                text: "caching".into(),
                count: 3
            }]
        );
        assert_eq!(p.points.len(), 1);
        assert_eq!(p.points[0].count, 2);
        // The chart has the overall line and one per area present, with one point per interview.
        assert!(p.chart.starts_with("<svg") && p.chart.ends_with("</svg>"));
        assert!(p.chart.contains(r#"data-series="overall""#));
        assert!(p.chart.contains(r#"data-series="technical""#));
        assert!(p.chart.contains(r#"data-series="behavioral""#));
        assert!(!p.chart.contains(r#"data-series="project""#));
        assert_eq!(p.chart.matches("<circle").count(), 3 + 3 + 2);
        // Everything from reports is escaped; the chart is markup of our own.
        let html = render("c1", &p).unwrap();
        assert!(html.contains("Ada &lt;script&gt;"), "name escaped");
        assert!(!html.contains("Ada <script>"));
        assert!(html.contains("<svg id=\"progress-chart\""));
    }

    #[test]
    fn one_or_no_interview() {
        let p = progress(&[], |_| vec![]);
        assert!(p.rows.is_empty() && p.habits.is_empty());
        assert!(render("c1", &p)
            .unwrap()
            .contains("No finished interviews yet"));
        let old = json!({"candidate": {"name": "Al"}, "overall_score": 5.0, "state": "completed",
            "questions": [{"category": "technical_hard", "score": 5, "answer": "x"}]});
        let p = progress(&[old], |_| vec![]);
        assert_eq!(p.rows[0].answered, 1);
        assert!(
            p.chart.contains(r#"data-series="technical""#),
            "older reports fold categories into areas"
        );
    }
}
