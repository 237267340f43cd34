//! Interview creation as a service of the actors crate: the REST handler checks the request's
//! fields and the client's limits, then hands a [`NewInterview`] here. This does the domain work:
//! the level preview (admission itself happens at the first connection), the resume analysis, the
//! question selection (none of the candidate's last 5 interviews' questions), the record with a new
//! token, the durable write (created and flushed before the answer) and, in cluster mode, the
//! record's publication to the other nodes.

use std::collections::HashSet;
use std::sync::Arc;

use crate::budget::{Budget, Level, Mode};
use crate::cluster::ClusterSessions;
use crate::content::question_pool::{Fill, QuestionPool, Selection};
use crate::content::{Difficulty, Track};
use crate::interview::{sha256_hex, Candidate, InterviewRecord, Phase, VoiceRecord};
use crate::resumes::{ResumeAnalyzer, ResumeFor};
use crate::storage::{SessionLog, StorageError};

/// Past interviews of the candidate whose questions are not asked again.
const RECENT_INTERVIEWS: usize = 5;

/// A checked request for a new interview.
#[derive(Debug, Clone)]
pub struct NewInterview {
    /// The candidate's id.
    pub candidate_id: String,
    /// The candidate's name.
    pub name: String,
    /// The role applied for.
    pub role: String,
    /// The track.
    pub track: Track,
    /// The difficulty.
    pub difficulty: Difficulty,
    /// Questions asked for.
    pub questions: usize,
    /// The requested mode.
    pub mode: Mode,
    /// The resume (empty: none).
    pub resume_text: String,
    /// Whether the interviewer speaks.
    pub voice: bool,
}

/// A created interview.
#[derive(Debug, Clone)]
pub struct Created {
    /// Its id.
    pub id: String,
    /// The interview token (returned once; only its hash is stored).
    pub token: String,
    /// The requested mode.
    pub mode: Mode,
    /// The level its share of today's quota pays for now.
    pub level: Level,
    /// How many questions it has (fewer than asked for when the pool has fewer).
    pub questions_total: usize,
}

/// Why an interview could not be created.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The record could not be written.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

/// The service (cheap to clone: handles inside).
#[derive(Clone)]
pub struct Interviews {
    log: Arc<dyn SessionLog>,
    questions: Arc<QuestionPool>,
    budget: Arc<Budget>,
    resumes: ResumeAnalyzer,
    cluster: Option<Arc<ClusterSessions>>,
}

impl Interviews {
    /// A service over the session log, the question pool, the budget, resume analysis and (cluster
    /// mode) the shared sessions.
    pub fn new(
        log: Arc<dyn SessionLog>,
        questions: Arc<QuestionPool>,
        budget: Arc<Budget>,
        resumes: ResumeAnalyzer,
        cluster: Option<Arc<ClusterSessions>>,
    ) -> Self {
        Interviews {
            log,
            questions,
            budget,
            resumes,
            cluster,
        }
    }

    /// Creates the interview: stored and flushed when this returns.
    pub async fn create(&self, new: NewInterview) -> Result<Created, CreateError> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        // The level its share of today's quota would pay for now (it decides who reads the
        // resume). Nothing is reserved yet: the session admits the interview, and reserves its
        // share, when the candidate first connects (interviews nobody opens hold nothing).
        let level = self.budget.preview(new.mode.ceiling(), new.questions);
        let resume = if new.resume_text.trim().is_empty() {
            None
        } else {
            let asker = ResumeFor::Interview {
                mode: new.mode,
                level,
            };
            Some(self.resumes.analyze(&new.resume_text, asker).await.0)
        };
        let exclude = self.recent_questions(&new.candidate_id);
        let empty: Vec<String> = Vec::new();
        let chosen = self.questions.select(&Selection {
            role: &new.role,
            track: new.track,
            difficulty: new.difficulty,
            count: new.questions,
            seed: &id,
            fill: Fill {
                role: &new.role,
                technologies: resume.as_ref().map_or(&empty, |r| &r.skills),
                projects: resume.as_ref().map_or(&empty, |r| &r.projects),
            },
            exclude: &exclude,
        });
        let token = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let now = chrono::Utc::now().timestamp_millis();
        let record = InterviewRecord {
            id: id.clone(),
            token_sha256: sha256_hex(&token),
            candidate: Candidate {
                id: new.candidate_id,
                name: new.name,
            },
            role: new.role,
            track: new.track,
            difficulty: new.difficulty,
            mode: new.mode,
            created_ms: now,
            updated_ms: now,
            resume,
            questions: chosen.into_iter().map(|c| Arc::new(c.question)).collect(),
            items: Vec::new(),
            current: 0,
            in_follow_up: false,
            phase: Phase::Created,
            next_seq: 1,
            report: None,
            follow_ups_asked: 0,
            level,
            steps: Vec::new(),
            ending: None,
            voice: VoiceRecord {
                enabled: new.voice,
                ..Default::default()
            },
            report_seq: None,
            stored: Default::default(),
        };
        // Written and flushed here, not through the supervisor: creates then share group flushes
        // instead of queueing one fsync each behind a single actor.
        self.log.create(&record)?;
        self.log.flush().await?;
        // Cluster mode: every node can serve it from now on.
        if let Some(c) = &self.cluster {
            if let Err(e) = c.publish_created(&record).await {
                tracing::warn!(interview = %record.id, error = %e, "interview not yet visible to the other nodes (redis unreachable); it is once this node connects it");
            }
        }
        Ok(Created {
            id,
            token,
            mode: record.mode,
            level: record.level,
            questions_total: record.questions.len(),
        })
    }

    /// The question ids of the candidate's last [`RECENT_INTERVIEWS`] interviews.
    fn recent_questions(&self, candidate_id: &str) -> HashSet<String> {
        let mut exclude = HashSet::new();
        let past = self
            .log
            .candidate_interviews(candidate_id)
            .unwrap_or_default();
        for id in past.iter().rev().take(RECENT_INTERVIEWS) {
            if let Ok(Some(r)) = self.log.load(id) {
                exclude.extend(r.questions.iter().map(|q| q.id.clone()));
            }
        }
        exclude
    }
}
