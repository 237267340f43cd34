//! The call budget: how much LLM work (adaptive → balanced → economy → heuristic) an interview can
//! afford, from the day's remaining quota, what live interviews have reserved, and today's pace.
//!
//! An interview's requested mode is the most it may use (`auto` may use everything). At creation the
//! budget admits it at the highest level its share of the remaining quota pays for and reserves that
//! level's expected calls and tokens; before every turn it decides again, so interviews step down as
//! quota runs low and back up when it returns (a daily reset, a GPU node coming up). Each step is
//! logged, kept in the interview's record and counted here for the status pages.
//!
//! The share: `free ÷ (1 + interviews expected for the rest of today)`, where `free` is the quota left
//! today minus every other live interview's reservation, and the expected interviews come from
//! today's pace (`created today ÷ hours elapsed (at least one) × hours left`). A level is chosen when
//! its expected cost fits the share in calls and in tokens; economy needs only its own cost to fit,
//! so the day's last quota still buys batched evaluations before everything falls to the rubric scorer.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::quota::DayLeft;

/// How much LLM work an interview does, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// No provider calls: rubric scorer, templates and the question pool.
    Heuristic,
    /// One batched evaluation of all answers at the end, plus the report's coach note.
    Economy,
    /// One evaluation call per answer, plus the coach note.
    Balanced,
    /// Balanced, with a generated greeting and LLM follow-up questions.
    Adaptive,
}

impl Level {
    /// Every level, lowest first.
    pub const ALL: [Level; 4] = [
        Level::Heuristic,
        Level::Economy,
        Level::Balanced,
        Level::Adaptive,
    ];

    /// The name used in records, status and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Heuristic => "heuristic",
            Level::Economy => "economy",
            Level::Balanced => "balanced",
            Level::Adaptive => "adaptive",
        }
    }

    fn index(self) -> usize {
        self as usize
    }

    fn below(self) -> Option<Level> {
        match self {
            Level::Heuristic => None,
            Level::Economy => Some(Level::Heuristic),
            Level::Balanced => Some(Level::Economy),
            Level::Adaptive => Some(Level::Balanced),
        }
    }
}

/// An interview's requested call-budget mode: the most LLM work it may use (`auto`: whatever the
/// budget admits). Written as its lowercase name everywhere (REST, config, records, cluster state);
/// a name that is not one of the four is an error naming what came, never a silent default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "&'static str")]
pub enum Mode {
    /// Fewest provider calls: a batched evaluation at the end.
    Economy,
    /// One evaluation call per answer.
    Balanced,
    /// Evaluation and follow-ups per answer.
    Adaptive,
    /// Chosen from quota headroom.
    Auto,
}

/// A mode name that is not one of the four.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected one of economy, balanced, adaptive, auto, got {0:?}")]
pub struct UnknownMode(pub String);

impl Mode {
    /// Every mode.
    pub const ALL: [Mode; 4] = [Mode::Economy, Mode::Balanced, Mode::Adaptive, Mode::Auto];

    /// The name used on the wire, in config and in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Economy => "economy",
            Mode::Balanced => "balanced",
            Mode::Adaptive => "adaptive",
            Mode::Auto => "auto",
        }
    }

    /// The most this mode may use.
    pub fn ceiling(self) -> Level {
        match self {
            Mode::Economy => Level::Economy,
            Mode::Balanced => Level::Balanced,
            Mode::Adaptive | Mode::Auto => Level::Adaptive,
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Mode, UnknownMode> {
        Mode::ALL
            .into_iter()
            .find(|m| m.as_str() == s)
            .ok_or_else(|| UnknownMode(s.to_string()))
    }
}

impl TryFrom<String> for Mode {
    type Error = UnknownMode;

    fn try_from(s: String) -> Result<Mode, UnknownMode> {
        s.parse()
    }
}

impl Mode {
    /// The mode of a stored record (its name, written when the interview was created and checked
    /// then). A name that is not a mode cannot come from this server; read as `auto`, which is what
    /// the untyped code did with it (the adaptive ceiling, counted as `auto`), and logged.
    pub fn from_stored(name: &str) -> Mode {
        name.parse().unwrap_or_else(|e: UnknownMode| {
            tracing::warn!(error = %e, "stored interview has an unknown mode; read as auto");
            Mode::Auto
        })
    }
}

impl From<Mode> for &'static str {
    fn from(m: Mode) -> &'static str {
        m.as_str()
    }
}

/// What an interview is expected to cost at a level: a part per interview (greeting, batched
/// evaluation, coach note) and a part per question (evaluations, follow-ups).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LevelCost {
    /// Provider calls per interview.
    pub calls_fixed: f64,
    /// Provider calls per question.
    pub calls_per_question: f64,
    /// Tokens (prompt and completion) per interview.
    pub tokens_fixed: f64,
    /// Tokens per question.
    pub tokens_per_question: f64,
}

impl LevelCost {
    /// Calls for `questions` questions.
    pub fn calls(&self, questions: f64) -> f64 {
        self.calls_fixed + self.calls_per_question * questions
    }
    /// Tokens for `questions` questions.
    pub fn tokens(&self, questions: f64) -> f64 {
        self.tokens_fixed + self.tokens_per_question * questions
    }
}

/// Expected costs with a cold cache, rounded up from `benches/mode_costs.sh` (docs/BENCHMARKS.md, where
/// 500 interviews measured 1.3 / 12.3 / 19.4 calls and 3.5k / 6.7k / 9.5k tokens with the caches
/// warming up, besides the resume analysis). Economy is one batched evaluation and the coach note;
/// balanced is one evaluation per answer and the coach note; adaptive adds the greeting, a question
/// generated on a resume topic and a follow-up for up to a third of the questions. The resume analysis
/// (balanced and up, one call per new resume) is left out: it is spent at creation, right after
/// admission, so the quota the next admission reads already holds it.
pub const DEFAULT_COSTS: [LevelCost; 4] = [
    LevelCost {
        calls_fixed: 0.0,
        calls_per_question: 0.0,
        tokens_fixed: 0.0,
        tokens_per_question: 0.0,
    },
    LevelCost {
        calls_fixed: 2.0,
        calls_per_question: 0.0,
        tokens_fixed: 900.0,
        tokens_per_question: 250.0,
    },
    LevelCost {
        calls_fixed: 1.0,
        calls_per_question: 1.0,
        tokens_fixed: 500.0,
        tokens_per_question: 550.0,
    },
    // Per question: the evaluation, and for a third of the questions a follow-up and its grading.
    LevelCost {
        calls_fixed: 3.0,
        calls_per_question: 5.0 / 3.0,
        tokens_fixed: 1_200.0,
        tokens_per_question: 700.0,
    },
];

/// The cost of `level` from [`DEFAULT_COSTS`].
pub fn default_cost(level: Level) -> LevelCost {
    DEFAULT_COSTS[level.index()]
}

/// What the providers can still serve today. `None` means no daily limit (or a GPU node is up).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Capacity {
    /// Requests left today over every usable key (each shared scope counted once).
    pub requests: Option<u64>,
    /// Tokens left today.
    pub tokens: Option<u64>,
}

impl Capacity {
    /// Nothing can be served (no key, no node).
    pub const NONE: Capacity = Capacity {
        requests: Some(0),
        tokens: Some(0),
    };
    /// No daily limit anywhere that matters.
    pub const UNLIMITED: Capacity = Capacity {
        requests: None,
        tokens: None,
    };

    /// The sum of what each quota scope can still serve today, each scope counted once (the keys
    /// of a shared scope draw on one budget). One scope without a daily limit makes it unlimited.
    pub fn over_scopes<'a>(scopes: impl IntoIterator<Item = (&'a str, DayLeft)>) -> Capacity {
        let mut seen = std::collections::HashSet::new();
        let mut total = Capacity {
            requests: Some(0),
            tokens: Some(0),
        };
        for (scope, left) in scopes {
            if !seen.insert(scope) {
                continue;
            }
            let add = |sum: Option<u64>, n: Option<u64>| Some(sum?.saturating_add(n?));
            total.requests = add(total.requests, left.requests);
            total.tokens = add(total.tokens, left.tokens);
        }
        total
    }
}

/// Reads the providers' remaining capacity (the pool in the engine; a fixed value in tests).
pub trait CapacitySource: Send + Sync {
    /// What can still be served today.
    fn capacity(&self) -> Capacity;
    /// Whether any provider key or GPU node is configured at all (without one, every interview is
    /// heuristic by design, and that is not a step down).
    fn configured(&self) -> bool {
        true
    }
}

/// One level change of one interview.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    /// Interview id.
    pub interview_id: String,
    /// The turn before which it happened (0 = at creation).
    pub turn: u32,
    /// Level before.
    pub from: Level,
    /// Level after.
    pub to: Level,
    /// Why, in words.
    pub reason: String,
    /// When (RFC 3339).
    pub at: String,
}

/// Counts and recent steps, as status pages show them.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetSnapshot {
    /// Live interviews per current level.
    pub live_by_level: HashMap<&'static str, u64>,
    /// Interviews admitted today per starting level.
    pub admitted_by_level: HashMap<&'static str, u64>,
    /// Steps down since start.
    pub steps_down: u64,
    /// Steps up since start.
    pub steps_up: u64,
    /// The latest steps, newest last.
    pub recent_steps: Vec<Step>,
    /// Remaining capacity today as last read.
    pub capacity: Capacity,
    /// Calls reserved by live interviews.
    pub reserved_calls: f64,
    /// Tokens reserved by live interviews.
    pub reserved_tokens: f64,
    /// Interviews created today.
    pub created_today: u64,
    /// Interviews expected for the rest of today at today's pace.
    pub expected_rest_of_day: f64,
    /// Since when today's pace is counted (RFC 3339): midnight UTC, or this process's first decision
    /// of the day when it started later. The pace divides by at least one hour.
    pub pace_since: Option<String>,
}

impl Hold {
    /// What `questions_left` questions at `level` cost, held from `now`.
    fn of(level: Level, cost: LevelCost, questions_left: f64, now: DateTime<Utc>) -> Hold {
        Hold {
            level,
            calls: cost.calls(questions_left),
            tokens: cost.tokens(questions_left),
            touched: now,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Hold {
    level: Level,
    calls: f64,
    tokens: f64,
    /// When the interview last decided (a hold not renewed within the hold lifetime is dropped: an
    /// interview created and never opened must not keep quota reserved).
    touched: DateTime<Utc>,
}

#[derive(Default)]
struct Inner {
    holds: HashMap<String, Hold>,
    reserved_calls: f64,
    reserved_tokens: f64,
    day: Option<chrono::NaiveDate>,
    day_started: Option<DateTime<Utc>>,
    created_today: u64,
    admitted_today: [u64; 4],
    steps_down: u64,
    steps_up: u64,
    recent: VecDeque<Step>,
}

impl Inner {
    fn release(&mut self, id: &str) -> Option<Hold> {
        let h = self.holds.remove(id)?;
        self.reserved_calls = (self.reserved_calls - h.calls).max(0.0);
        self.reserved_tokens = (self.reserved_tokens - h.tokens).max(0.0);
        Some(h)
    }

    /// Drops holds not renewed since `before` (interviews created and never opened, or abandoned).
    fn sweep(&mut self, before: DateTime<Utc>) {
        let stale: Vec<String> = self
            .holds
            .iter()
            .filter(|(_, h)| h.touched < before)
            .map(|(id, _)| id.clone())
            .collect();
        for id in stale {
            self.release(&id);
        }
    }

    fn hold(&mut self, id: &str, h: Hold) {
        self.release(id);
        self.reserved_calls += h.calls;
        self.reserved_tokens += h.tokens;
        self.holds.insert(id.to_string(), h);
    }

    /// Starts a new (UTC) day's counts when `now` is past the current one.
    fn roll_day(&mut self, now: DateTime<Utc>) {
        let day = now.date_naive();
        if self.day != Some(day) {
            self.day = Some(day);
            self.day_started = Some(now);
            self.created_today = 0;
            self.admitted_today = [0; 4];
        }
    }

    /// Releases `interview_id`'s hold and returns the room everything else leaves it: capacity,
    /// the other interviews' reservations, and the interviews expected for the rest of the day.
    fn room_without(&mut self, interview_id: &str, cap: Capacity, now: DateTime<Utc>) -> Room {
        let expected_rest = self.expected_rest(now);
        self.release(interview_id);
        Room {
            cap,
            others: (self.reserved_calls, self.reserved_tokens),
            expected_rest,
        }
    }

    /// Interviews expected for the rest of the day at today's pace.
    fn expected_rest(&self, now: DateTime<Utc>) -> f64 {
        let started = self.day_started.unwrap_or(now);
        let elapsed_h = ((now - started).num_seconds() as f64 / 3600.0).max(1.0);
        let midnight = (now.date_naive() + chrono::Days::new(1))
            .and_hms_opt(0, 0, 0)
            .map(|m| m.and_utc())
            .unwrap_or(now);
        let left_h = (midnight - now).num_seconds().max(0) as f64 / 3600.0;
        self.created_today as f64 / elapsed_h * left_h
    }
}

/// What a decision sees: capacity left today, what other live interviews hold (calls, tokens), and
/// the interviews expected for the rest of the day.
#[derive(Debug, Clone, Copy)]
struct Room {
    cap: Capacity,
    others: (f64, f64),
    expected_rest: f64,
}

const RECENT_STEPS: usize = 50;
/// Stepping up needs this much more share than the level's cost, so levels do not flap.
const STEP_UP_MARGIN: f64 = 1.25;

/// The budget. One per engine, shared by the HTTP layer (admission) and the sessions (turns).
pub struct Budget {
    source: Box<dyn CapacitySource>,
    costs: [LevelCost; 4],
    clock: fn() -> DateTime<Utc>,
    hold_ttl: chrono::Duration,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Budget").finish_non_exhaustive()
    }
}

/// The decision for one interview at one point.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The level to use.
    pub level: Level,
    /// The step taken, when the level changed.
    pub step: Option<Step>,
}

impl Budget {
    /// A budget over `source` with the default costs.
    pub fn new(source: Box<dyn CapacitySource>) -> Self {
        Self::with_costs(source, DEFAULT_COSTS)
    }

    /// A budget with explicit per-level costs.
    pub fn with_costs(source: Box<dyn CapacitySource>, costs: [LevelCost; 4]) -> Self {
        Self {
            source,
            costs,
            clock: crate::clock::Clock::wall,
            hold_ttl: chrono::Duration::hours(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// The same budget dropping holds not renewed for `ttl` (the engine passes the interview idle
    /// timeout: a live session renews its hold every turn and when it restarts).
    pub fn with_hold_ttl(mut self, ttl: std::time::Duration) -> Self {
        self.hold_ttl = chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::hours(1));
        self
    }

    fn lock_at(&self, now: DateTime<Utc>) -> std::sync::MutexGuard<'_, Inner> {
        let mut g = self.lock();
        g.roll_day(now);
        g.sweep(now - self.hold_ttl);
        g
    }

    /// The same budget reading the time from `clock` (tests pin the time of day, which the pace uses).
    pub fn with_clock(mut self, clock: fn() -> DateTime<Utc>) -> Self {
        self.clock = clock;
        self
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cost of `level` in this budget.
    pub fn cost(&self, level: Level) -> LevelCost {
        self.costs[level.index()]
    }

    /// The highest level ≤ `ceiling` the rest of an interview (`questions_left` of `questions`) can
    /// afford, given the
    /// capacity, what others hold and the expected rest of the day; `current` (when stepping per
    /// turn) gets the step-up margin applied to levels above it.
    fn afford(
        &self,
        ceiling: Level,
        current: Option<Level>,
        room: Room,
        questions: f64,
        questions_left: f64,
    ) -> (Level, String) {
        let Room {
            cap,
            others,
            expected_rest,
        } = room;
        let share = |limit: Option<u64>, reserved: f64| -> Option<(f64, f64)> {
            limit.map(|l| {
                let free = (l as f64 - reserved).max(0.0);
                (free, free / (1.0 + expected_rest))
            })
        };
        let calls = share(cap.requests, others.0);
        let tokens = share(cap.tokens, others.1);
        let mut level = ceiling;
        loop {
            let cost = self.cost(level);
            let margin = match current {
                Some(cur) if level > cur => STEP_UP_MARGIN,
                _ => 1.0,
            };
            // What is left of this interview must fit in what is free; a new interview (or a step up)
            // must also fit a whole interview at this level in the share (economy needs only the first).
            // A started interview keeps a level it already has (or steps down to one) while what is
            // left of it fits in what is free: its reservation was made for that.
            let kept = current.is_some_and(|cur| level <= cur);
            let fits = |dim: Option<(f64, f64)>, left: f64, whole: f64| match dim {
                None => true,
                Some((free, _)) if kept || level == Level::Economy => left * margin <= free,
                Some((free, per)) => left <= free && whole * margin <= per,
            };
            let calls_ok = fits(calls, cost.calls(questions_left), cost.calls(questions));
            let tokens_ok = fits(tokens, cost.tokens(questions_left), cost.tokens(questions));
            if level == Level::Heuristic || (calls_ok && tokens_ok) {
                let why = match (calls, tokens) {
                    (None, None) => "no daily limit applies".to_string(),
                    (c, t) => format!(
                        "free today: {} calls, {} tokens; share per expected interview: {} calls, {} tokens",
                        c.map_or("unlimited".into(), |(f, _)| format!("{f:.0}")),
                        t.map_or("unlimited".into(), |(f, _)| format!("{f:.0}")),
                        c.map_or("unlimited".into(), |(_, p)| format!("{p:.1}")),
                        t.map_or("unlimited".into(), |(_, p)| format!("{p:.0}")),
                    ),
                };
                return (level, why);
            }
            match level.below() {
                Some(b) => level = b,
                None => return (Level::Heuristic, "no capacity".into()),
            }
        }
    }

    /// The level [`Budget::admit`] would give a new interview of `questions` questions now, without
    /// reserving anything or counting it in today's pace: what creation tells the client. The
    /// interview is admitted (and its reservation made) when its candidate first connects, so
    /// interviews that are created and never opened hold no quota.
    pub fn preview(&self, ceiling: Level, questions: usize) -> Level {
        if !self.source.configured() {
            return Level::Heuristic;
        }
        let q = questions as f64;
        let cap = self.source.capacity();
        let now = (self.clock)();
        let mut g = self.lock_at(now);
        // As admission would see it: counted in the pace itself.
        g.created_today += 1;
        let room = g.room_without("", cap, now);
        g.created_today -= 1;
        self.afford(ceiling, None, room, q, q).0
    }

    /// Admits a new interview of `questions` questions whose requested mode allows up to `ceiling`:
    /// chooses its level, reserves that level's cost for the whole interview and counts it in
    /// today's pace (once: admitting an interview that holds a reservation again only moves it).
    pub fn admit(&self, interview_id: &str, ceiling: Level, questions: usize) -> Decision {
        let q = questions as f64;
        let cap = self.source.capacity();
        let now = (self.clock)();
        let mut g = self.lock_at(now);
        let fresh = !g.holds.contains_key(interview_id);
        // The interview counts in today's pace itself, so its first turn agrees with its admission.
        if fresh {
            g.created_today += 1;
        }
        let room = g.room_without(interview_id, cap, now);
        let (level, why) = if self.source.configured() {
            self.afford(ceiling, None, room, q, q)
        } else {
            (Level::Heuristic, String::new())
        };
        g.hold(interview_id, Hold::of(level, self.cost(level), q, now));
        if fresh {
            g.admitted_today[level.index()] += 1;
        }
        let step = (level < ceiling && !why.is_empty()).then(|| Step {
            interview_id: interview_id.to_string(),
            turn: 0,
            from: ceiling,
            to: level,
            reason: format!("admitted below its mode: {why}"),
            at: now.to_rfc3339(),
        });
        if let Some(s) = &step {
            g.steps_down += 1;
            Self::remember(&mut g, s.clone());
            tracing::info!(interview = %interview_id, from = ceiling.as_str(), to = level.as_str(), reason = %s.reason, "interview admitted at a lower level");
        }
        Decision { level, step }
    }

    /// Decides the level for turn `turn` of a live interview of `questions` questions currently at
    /// `current`, with `questions_left` still to be answered, and moves its reservation to match.
    pub fn turn(
        &self,
        interview_id: &str,
        ceiling: Level,
        current: Level,
        turn: u32,
        (questions, questions_left): (usize, usize),
    ) -> Decision {
        let (q, left) = (questions as f64, questions_left as f64);
        let cap = self.source.capacity();
        let now = (self.clock)();
        let mut g = self.lock_at(now);
        let room = g.room_without(interview_id, cap, now);
        if !self.source.configured() {
            let none = self.cost(Level::Heuristic);
            g.hold(interview_id, Hold::of(Level::Heuristic, none, left, now));
            return Decision {
                level: Level::Heuristic,
                step: None,
            };
        }
        let (level, why) = self.afford(ceiling, Some(current), room, q, left);
        g.hold(interview_id, Hold::of(level, self.cost(level), left, now));
        let step = (level != current).then(|| Step {
            interview_id: interview_id.to_string(),
            turn,
            from: current,
            to: level,
            reason: why,
            at: now.to_rfc3339(),
        });
        if let Some(s) = &step {
            if s.to < s.from {
                g.steps_down += 1;
            } else {
                g.steps_up += 1;
            }
            Self::remember(&mut g, s.clone());
            tracing::info!(interview = %interview_id, turn, from = current.as_str(), to = level.as_str(), reason = %s.reason, "interview changed level");
        }
        Decision { level, step }
    }

    /// A live interview holds its reservation for `questions_left` questions again: after a restart,
    /// or when creation planned fewer questions than were admitted.
    pub fn resume(&self, interview_id: &str, level: Level, questions_left: usize) {
        let now = (self.clock)();
        let hold = Hold::of(level, self.cost(level), questions_left as f64, now);
        self.lock_at(now).hold(interview_id, hold);
    }

    /// The interview finished: its reservation is released.
    pub fn release(&self, interview_id: &str) {
        self.lock().release(interview_id);
    }

    fn remember(g: &mut Inner, s: Step) {
        if g.recent.len() == RECENT_STEPS {
            g.recent.pop_front();
        }
        g.recent.push_back(s);
    }

    /// Counts and recent steps.
    pub fn snapshot(&self) -> BudgetSnapshot {
        let cap = self.source.capacity();
        let now = (self.clock)();
        let g = self.lock_at(now);
        let rest = g.expected_rest(now);
        let mut live: HashMap<&'static str, u64> =
            Level::ALL.iter().map(|l| (l.as_str(), 0)).collect();
        for h in g.holds.values() {
            *live.entry(h.level.as_str()).or_default() += 1;
        }
        BudgetSnapshot {
            live_by_level: live,
            admitted_by_level: Level::ALL
                .iter()
                .map(|l| (l.as_str(), g.admitted_today[l.index()]))
                .collect(),
            steps_down: g.steps_down,
            steps_up: g.steps_up,
            recent_steps: g.recent.iter().cloned().collect(),
            capacity: cap,
            reserved_calls: g.reserved_calls,
            reserved_tokens: g.reserved_tokens,
            created_today: g.created_today,
            expected_rest_of_day: rest,
            pace_since: g.day_started.map(|d| d.to_rfc3339()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    /// Requests left, settable from the test; tokens unlimited.
    struct Fixed(Arc<AtomicU64>);
    impl CapacitySource for Fixed {
        fn capacity(&self) -> Capacity {
            match self.0.load(Ordering::Relaxed) {
                u64::MAX => Capacity::UNLIMITED,
                n => Capacity {
                    requests: Some(n),
                    tokens: None,
                },
            }
        }
    }

    /// One second before midnight: nothing is expected for the rest of the day, so only capacity
    /// and reservations decide.
    fn late() -> DateTime<Utc> {
        Utc::now()
            .date_naive()
            .and_hms_opt(23, 59, 59)
            .map(|t| t.and_utc())
            .unwrap_or_default()
    }

    fn noon() -> DateTime<Utc> {
        Utc::now()
            .date_naive()
            .and_hms_opt(12, 0, 0)
            .map(|t| t.and_utc())
            .unwrap_or_default()
    }

    fn budget(requests: u64) -> (Budget, Arc<AtomicU64>) {
        let n = Arc::new(AtomicU64::new(requests));
        (Budget::new(Box::new(Fixed(n.clone()))).with_clock(late), n)
    }

    #[test]
    fn capacity_sums_each_scope_once_and_one_unlimited_scope_makes_it_unlimited() {
        let left = |r: Option<u64>, t: Option<u64>| DayLeft {
            requests: r,
            tokens: t,
        };
        let c = Capacity::over_scopes([
            ("groq#1", left(Some(10), Some(1000))),
            ("gemini:shared", left(Some(5), Some(500))),
            ("gemini:shared", left(Some(5), Some(500))),
        ]);
        assert_eq!((c.requests, c.tokens), (Some(15), Some(1500)));
        let c = Capacity::over_scopes([
            ("groq#1", left(Some(10), Some(1000))),
            ("cerebras#1", left(None, Some(7))),
        ]);
        assert_eq!((c.requests, c.tokens), (None, Some(1007)));
        assert_eq!(
            Capacity::over_scopes(std::iter::empty()),
            Capacity {
                requests: Some(0),
                tokens: Some(0)
            }
        );
    }

    #[test]
    fn a_preview_reserves_nothing_and_agrees_with_admission() {
        let (b, _) = budget(40);
        for i in 0..50 {
            assert_eq!(b.preview(Level::Adaptive, 12), Level::Adaptive, "{i}");
        }
        let s = b.snapshot();
        assert_eq!((s.reserved_calls, s.created_today), (0.0, 0));
        let d = b.admit("a", Level::Adaptive, 12);
        assert_eq!(d.level, Level::Adaptive);
        let reserved = b.snapshot().reserved_calls;
        assert!(reserved > 0.0);
        // Admitted again (a restarted session): the reservation moves, nothing is counted twice.
        b.admit("a", Level::Adaptive, 12);
        let s = b.snapshot();
        assert_eq!((s.reserved_calls, s.created_today), (reserved, 1));
        assert_eq!(s.admitted_by_level["adaptive"], 1);
    }

    #[test]
    fn todays_pace_shrinks_the_share() {
        // At noon, one interview created so far means twelve more are expected by midnight: 40 calls
        // are then about 3 per interview, enough for economy only. Near midnight the same 40 calls
        // buy the whole adaptive interview.
        let n = Arc::new(AtomicU64::new(40));
        let at_noon = Budget::new(Box::new(Fixed(n.clone()))).with_clock(noon);
        let d = at_noon.admit("a", Level::Adaptive, 12);
        assert_eq!(d.level, Level::Economy, "{d:?}");
        assert!((at_noon.snapshot().expected_rest_of_day - 12.0).abs() < 0.01);
        let late_b = Budget::new(Box::new(Fixed(n))).with_clock(late);
        assert_eq!(
            late_b.admit("a", Level::Adaptive, 12).level,
            Level::Adaptive
        );
    }

    struct Nothing;
    impl CapacitySource for Nothing {
        fn capacity(&self) -> Capacity {
            Capacity::NONE
        }
        fn configured(&self) -> bool {
            false
        }
    }

    #[test]
    fn without_any_provider_interviews_are_heuristic_without_steps() {
        let b = Budget::new(Box::new(Nothing)).with_clock(late);
        let d = b.admit("a", Level::Adaptive, 12);
        assert_eq!((d.level, d.step), (Level::Heuristic, None));
        let t = b.turn("a", Level::Adaptive, Level::Heuristic, 1, (12, 12));
        assert_eq!((t.level, t.step), (Level::Heuristic, None));
        assert_eq!(b.snapshot().steps_down, 0);
    }

    #[test]
    fn unlimited_capacity_gives_the_ceiling() {
        let (b, _) = budget(u64::MAX);
        assert_eq!(b.admit("a", Level::Adaptive, 12).level, Level::Adaptive);
        assert_eq!(b.admit("b", Level::Economy, 12).level, Level::Economy);
        assert!(b.admit("a", Level::Adaptive, 12).step.is_none());
    }

    #[test]
    fn admission_reserves_so_started_interviews_can_finish() {
        // 35 calls: the first adaptive interview (23 calls) fits (nothing created yet, so no pace).
        let (b, _) = budget(35);
        assert_eq!(b.admit("a", Level::Adaptive, 12).level, Level::Adaptive);
        // Only 12 are free after a's 23: the next is admitted lower, and the step says why.
        let d = b.admit("b", Level::Adaptive, 12);
        assert!(d.level < Level::Adaptive, "{d:?}");
        let step = d.step.expect("a step down at admission");
        assert_eq!(step.turn, 0);
        assert!(step.reason.contains("free today"), "{}", step.reason);
        let s = b.snapshot();
        assert_eq!(s.created_today, 2);
        assert!(s.reserved_calls >= 23.0);
    }

    #[test]
    fn zero_capacity_is_heuristic_and_economy_needs_only_its_own_cost() {
        let (b, n) = budget(0);
        assert_eq!(b.admit("a", Level::Adaptive, 12).level, Level::Heuristic);
        b.release("a");
        // Two free calls pay for economy (2 calls) but not for stepping up to it (2 × 1.25): no flapping
        // at the edge.
        n.store(2, Ordering::Relaxed);
        let d = b.turn("a", Level::Adaptive, Level::Heuristic, 1, (12, 12));
        assert_eq!(d.level, Level::Heuristic);
        // Three do, whatever the share: the day's last calls still buy batched evaluations.
        n.store(3, Ordering::Relaxed);
        let d = b.turn("a", Level::Adaptive, Level::Heuristic, 1, (12, 12));
        assert_eq!(d.level, Level::Economy);
        // Its reservation now holds two of them: the next interview gets nothing.
        assert_eq!(b.admit("c", Level::Adaptive, 12).level, Level::Heuristic);
    }

    #[test]
    fn a_started_interview_keeps_its_level_while_its_rest_fits() {
        // At noon the pace makes the share small: a new interview would only get economy. One already
        // balanced keeps balanced while its remaining calls fit in what is free.
        let n = Arc::new(AtomicU64::new(200));
        let b = Budget::new(Box::new(Fixed(n.clone()))).with_clock(noon);
        for i in 0..5 {
            b.admit(&format!("other-{i}"), Level::Economy, 12);
        }
        assert_eq!(b.admit("new", Level::Balanced, 12).level, Level::Economy);
        let d = b.turn("a", Level::Balanced, Level::Balanced, 11, (12, 2));
        assert_eq!((d.level, d.step), (Level::Balanced, None));
        // When even the rest does not fit, it steps down.
        n.store(12, Ordering::Relaxed);
        assert!(
            b.turn("a", Level::Balanced, Level::Balanced, 12, (12, 1))
                .level
                < Level::Balanced
        );
    }

    #[test]
    fn holds_not_renewed_expire() {
        // An interview created and never opened keeps nothing reserved past the hold lifetime.
        // A clock that moves one second each time it is read.
        static TICKS: AtomicU64 = AtomicU64::new(0);
        fn ticking() -> DateTime<Utc> {
            let n = TICKS.fetch_add(1, Ordering::Relaxed) as i64;
            noon() + chrono::Duration::seconds(n)
        }
        let b = Budget::new(Box::new(Fixed(Arc::new(AtomicU64::new(u64::MAX)))))
            .with_clock(ticking)
            .with_hold_ttl(std::time::Duration::from_secs(0));
        b.admit("never-opened", Level::Adaptive, 12);
        assert_eq!(b.snapshot().reserved_calls, 0.0);
    }

    #[test]
    fn turns_step_down_and_back_up_with_capacity() {
        let (b, n) = budget(u64::MAX);
        let mut level = b.admit("a", Level::Adaptive, 12).level;
        assert_eq!(level, Level::Adaptive);
        n.store(5, Ordering::Relaxed);
        let d = b.turn("a", Level::Adaptive, level, 3, (12, 9));
        assert!(d.level < level);
        assert!(d.step.as_ref().is_some_and(|s| s.from == Level::Adaptive));
        level = d.level;
        n.store(u64::MAX, Ordering::Relaxed);
        let up = b.turn("a", Level::Adaptive, level, 4, (12, 8));
        assert_eq!(up.level, Level::Adaptive);
        let s = b.snapshot();
        assert_eq!((s.steps_down, s.steps_up), (1, 1));
        assert_eq!(s.recent_steps.len(), 2);
        assert_eq!(s.live_by_level["adaptive"], 1);
        b.release("a");
        assert_eq!(b.snapshot().live_by_level["adaptive"], 0);
        assert_eq!(b.snapshot().reserved_calls, 0.0);
    }

    #[test]
    fn a_ceiling_is_never_exceeded() {
        let (b, _) = budget(u64::MAX);
        let d = b.turn("a", Level::Balanced, Level::Economy, 2, (12, 6));
        assert_eq!(d.level, Level::Balanced);
        assert_eq!(Mode::Auto.ceiling(), Level::Adaptive);
        assert_eq!(Mode::Economy.ceiling(), Level::Economy);
    }

    #[test]
    fn modes_are_their_names_and_nothing_else() {
        for m in Mode::ALL {
            assert_eq!(m.as_str().parse::<Mode>(), Ok(m));
            assert_eq!(serde_json::to_value(m).unwrap(), m.as_str());
            let back: Mode = serde_json::from_value(serde_json::json!(m.as_str())).unwrap();
            assert_eq!(back, m);
        }
        // A typo is an error that says what came, not the adaptive ceiling.
        assert_eq!(
            "adaptve".parse::<Mode>().unwrap_err().to_string(),
            "expected one of economy, balanced, adaptive, auto, got \"adaptve\""
        );
        assert!(serde_json::from_value::<Mode>(serde_json::json!("Auto")).is_err());
        // Stored as the name, as the untyped record stored it (layout 2 records are bincode).
        let as_string = bincode::serde::encode_to_vec("balanced", bincode::config::standard());
        let as_mode = bincode::serde::encode_to_vec(Mode::Balanced, bincode::config::standard());
        assert_eq!(as_string.unwrap(), as_mode.unwrap());
    }

    #[test]
    fn step_up_needs_a_margin() {
        // Balanced costs 13 calls. A share of 14 keeps a balanced interview balanced but does not
        // lift an economy one (it needs 13 × 1.25).
        let (b, _) = budget(14);
        assert_eq!(
            b.turn("a", Level::Balanced, Level::Balanced, 1, (12, 12))
                .level,
            Level::Balanced
        );
        b.release("a");
        assert_eq!(
            b.turn("a", Level::Balanced, Level::Economy, 1, (12, 12))
                .level,
            Level::Economy
        );
    }
}
