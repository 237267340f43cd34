//! What an answer is graded against and how its grade is shown: the target of a main answer (the
//! question's rubric points from the pool) and of a follow-up (the follow-up's own expected points
//! when the pool has them, else the parent's points the first answer missed), and the per-point view
//! of a grade (the noun phrase, covered or not, and the candidate's words) for the rubric scorer and
//! for a model's grade alike. Pure functions of the question, the answer and the embedded pool, so
//! the report can rebuild a live grade's detail from the stored answer.

use serde::{Deserialize, Serialize};

use super::question_pool::{self, Question};
use super::scoring::{self, Coverage, Point, PointGrade, Rubric, RubricScore, Semantic};

/// Who graded an answer, as a candidate sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Grader {
    /// The rubric scorer: the key points an answer states.
    Rubric,
    /// A language model, through a provider or a local node.
    Model,
}

impl Grader {
    /// The grader of a stored `source` (`heuristic` is the rubric scorer).
    pub fn of_source(source: &str) -> Grader {
        if source == "heuristic" || source.is_empty() || source == "pool" {
            Grader::Rubric
        } else {
            Grader::Model
        }
    }
}

/// What one answer is graded against.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The question (or follow-up) as asked.
    pub question: String,
    /// Its points.
    pub points: Vec<Point>,
    /// Whether it asks for a story (STAR counts).
    pub behavioral: bool,
}

impl Target {
    /// The points as text, for a model's prompt.
    pub fn rubric(&self) -> Vec<String> {
        self.points.iter().map(|p| p.text.clone()).collect()
    }

    /// Grades `answer` with the rubric scorer.
    pub fn grade(&self, answer: &str) -> RubricScore {
        self.grade_with(answer, None)
    }

    /// Grades `answer` with the rubric scorer and, when given, the semantic signal.
    pub fn grade_with(&self, answer: &str, semantic: Option<&Semantic>) -> RubricScore {
        scoring::score(
            Rubric {
                points: &self.points,
                behavioral: self.behavioral,
            },
            answer,
            semantic,
        )
    }
}

/// The points of `q` as the scorer reads them: the embedded pool's guide, or points derived from
/// the rubric text (a generated question, or a pool that does not load).
pub fn points_of(q: &Question) -> Vec<Point> {
    match question_pool::embedded() {
        Some(pool) => pool.scoring_points(q),
        None => q.rubric.iter().map(|r| Point::derived(r)).collect(),
    }
}

/// The target of the main answer to `q`.
pub fn main_target(q: &Question) -> Target {
    Target {
        question: q.text.clone(),
        points: points_of(q),
        behavioral: q.asks_for_story(),
    }
}

/// The target of the answer to the follow-up `asked` about `q`: the pool's expected points of that
/// follow-up when it is the pool's; otherwise the parent's points the first answer missed
/// (`parent_missed`, rubric texts), or all of the parent's points when it missed none.
pub fn follow_up_target(q: &Question, asked: &str, parent_missed: &[String]) -> Target {
    let own = question_pool::embedded().and_then(|p| p.follow_up_points(q, asked));
    let points = own.unwrap_or_else(|| {
        let parent = points_of(q);
        let missed: Vec<Point> = parent
            .iter()
            .filter(|p| parent_missed.contains(&p.text))
            .cloned()
            .collect();
        if missed.is_empty() {
            parent
        } else {
            missed
        }
    });
    Target {
        question: asked.to_string(),
        points,
        behavioral: scoring::asks_for_story(asked),
    }
}

/// The per-point view of a model's grade: a point is covered when the model listed its text.
pub fn model_points(points: &[Point], covered: &[String]) -> Vec<PointGrade> {
    points
        .iter()
        .map(|p| PointGrade {
            say: p.say.clone(),
            coverage: if covered.contains(&p.text) {
                Coverage::Stated
            } else {
                Coverage::Missing
            },
            quote: None,
        })
        .collect()
}

/// The noun phrases of the points stated, and of those not stated.
pub fn phrases(points: &[PointGrade]) -> (Vec<String>, Vec<String>) {
    let covered = points
        .iter()
        .filter(|p| p.coverage == Coverage::Stated)
        .map(|p| p.say.clone())
        .collect();
    let missing = points
        .iter()
        .filter(|p| p.coverage != Coverage::Stated)
        .map(|p| p.say.clone())
        .collect();
    (covered, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool_question(id: &str) -> Question {
        question_pool::embedded()
            .and_then(|p| p.get(id))
            .cloned()
            .expect("pool question")
    }

    #[test]
    fn follow_ups_are_graded_on_their_own_points() {
        // The example: renaming a column that several services read directly.
        let q = pool_question("backend-019");
        let asked = q.follow_ups[0].clone();
        assert!(asked.contains("rename a column"), "{asked}");
        let t = follow_up_target(&q, &asked, &[]);
        assert!(t.points.len() >= 2);
        assert!(t.points.iter().all(|p| !q.rubric.contains(&p.text)));
        let answer = "I'd do it in phases. First I add a new column with the new name next to the old one, \
            and a trigger or dual writes keep both in sync while a backfill copies the existing rows. \
            Then each service that reads the table is updated to read the new column, one team at a time. \
            Only when nothing reads the old column any more do I drop it, in a separate release.";
        let g = t.grade(answer);
        assert!(g.score >= 7, "{g:?}");
        assert!(
            g.points.iter().all(|p| p.coverage == Coverage::Stated),
            "{g:?}"
        );
        // The parent's rubric would not have been the right measure.
        let as_parent = main_target(&q).grade(answer);
        assert!(as_parent.score < g.score, "{as_parent:?}");
    }

    #[test]
    fn other_follow_ups_use_the_points_the_first_answer_missed() {
        let q = pool_question("backend-010");
        let missed = vec![q.rubric[2].clone(), q.rubric[3].clone()];
        let t = follow_up_target(&q, "And how would that work across regions?", &missed);
        assert_eq!(t.rubric(), missed);
        let t = follow_up_target(&q, "Something else?", &[]);
        assert_eq!(t.points.len(), q.rubric.len());
    }
}
