//! Choosing an interview's questions from the pool: the role → domain mapping, the plan of slots
//! (difficulty ramp, track mix), and the deterministic, seeded pick with exclusions and resume fill.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

use super::super::{stable_hash, Difficulty, Track};
use super::{Category, Question, QuestionPool, TOP_TECHNOLOGIES};

/// What fills a question's placeholders: the role, and the resume's technologies and projects.
#[derive(Debug, Clone, Copy)]
pub struct Fill<'a> {
    /// Fills `{role}`.
    pub role: &'a str,
    /// Fills `{technology}` (from the first [`TOP_TECHNOLOGIES`], in rotation from a seeded start);
    /// questions that need one are skipped when empty.
    pub technologies: &'a [String],
    /// Fills `{project_name}` (in rotation from a seeded start); questions that need one are
    /// skipped when empty.
    pub projects: &'a [String],
}

/// A question chosen for an interview. `question.text` and `question.follow_ups` have every
/// placeholder filled; `question.id` stays the pool id, and `original_id` repeats it so callers
/// that rewrite `question.id` can still refer to the pool entry (and to exclusion history).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChosenQuestion {
    /// The question with its placeholders filled.
    pub question: Question,
    /// The pool id.
    pub original_id: String,
}

/// What to choose.
#[derive(Debug, Clone, Copy)]
pub struct Selection<'a> {
    /// The role applied for (picks the domain; see [`QuestionPool::domain_for_role`]).
    pub role: &'a str,
    /// Technical, behavioral or mixed.
    pub track: Track,
    /// Centre of the difficulty ramp.
    pub difficulty: Difficulty,
    /// How many questions.
    pub count: usize,
    /// Seed (the interview id): same seed, same questions.
    pub seed: &'a str,
    /// Placeholder values.
    pub fill: Fill<'a>,
    /// Ids asked in the candidate's recent interviews; used only when nothing else is left.
    pub exclude: &'a HashSet<String>,
}

/// Which kind of question a slot of the plan wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Group {
    Intro,
    Technical,
    Project,
    Behavioral,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    domain: &'static str,
    group: Group,
    pref: Difficulty,
}

impl QuestionPool {
    /// The domain file for a role, by keywords (whole words, case-insensitive): backend/api/server
    /// → `backend`; frontend/react/ui/web → `frontend`; data/ml/"machine learning"/scientist/ai →
    /// `data_ml`; devops/sre/platform/infrastructure/cloud → `devops_sre`; ios/android/mobile →
    /// `mobile`; "product manager"/pm → `product_management`; anything else `general_swe`.
    pub fn domain_for_role(role: &str) -> &'static str {
        let words: Vec<String> = role
            .to_lowercase()
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect();
        let has = |w: &str| words.iter().any(|x| x == w);
        let phrase = |p: &[&str]| {
            words
                .windows(p.len())
                .any(|win| win.iter().zip(p).all(|(a, b)| a == b))
        };
        // Specific phrases first: they would otherwise match a more general keyword.
        if phrase(&["react", "native"]) || has("flutter") {
            return "mobile";
        }
        if phrase(&["product", "manager"])
            || phrase(&["product", "management"])
            || phrase(&["product", "owner"])
            || has("pm")
        {
            return "product_management";
        }
        if phrase(&["site", "reliability"]) {
            return "devops_sre";
        }
        if has("backend") || phrase(&["back", "end"]) || has("api") || has("server") {
            return "backend";
        }
        if has("frontend") || phrase(&["front", "end"]) || has("react") || has("ui") || has("web") {
            return "frontend";
        }
        if has("data")
            || has("ml")
            || has("ai")
            || phrase(&["machine", "learning"])
            || has("scientist")
            || has("analytics")
        {
            return "data_ml";
        }
        if has("devops") || has("sre") || has("platform") || has("infrastructure") || has("cloud") {
            return "devops_sre";
        }
        if has("ios") || has("android") || has("mobile") {
            return "mobile";
        }
        "general_swe"
    }

    /// Chooses and fills an interview's questions (see the module's rules): deterministic for the
    /// same selection, never a repeated id, excluded ids only when nothing else is left, questions
    /// whose placeholders cannot be filled are skipped; may return fewer than `count`.
    pub fn select(&self, sel: &Selection) -> Vec<ChosenQuestion> {
        let domain = Self::domain_for_role(sel.role);
        let slots = plan(sel.track, domain, sel.difficulty, sel.count);
        let track_domains: Vec<&str> = match sel.track {
            Track::Technical => vec![domain],
            Track::Behavioral => vec!["behavioral"],
            Track::Mixed => vec![domain, "behavioral"],
        };
        let fillable = |q: &Question| {
            (!q.uses("technology") || !sel.fill.technologies.is_empty())
                && (!q.uses("project_name") || !sel.fill.projects.is_empty())
        };
        // Candidates: the track's files, fillable; each with its seeded order.
        let candidates: Vec<(usize, u64, bool)> = self
            .questions
            .iter()
            .enumerate()
            .filter(|(_, q)| track_domains.contains(&q.domain.as_str()) && fillable(q))
            .map(|(i, q)| {
                let h = mix(stable_hash(&[sel.seed, "question", &q.id]));
                (i, h, sel.exclude.contains(&q.id))
            })
            .collect();

        let mut chosen: Vec<Option<usize>> = vec![None; slots.len()];
        let mut used: HashSet<usize> = HashSet::new();
        // Pass 0: right kind, not excluded. 1: any kind of the track, not excluded.
        // 2: right kind, excluded allowed. 3: anything of the track.
        for pass in 0..4 {
            let strict = pass % 2 == 0;
            let allow_excluded = pass >= 2;
            for (si, slot) in slots.iter().enumerate() {
                if chosen[si].is_some() {
                    continue;
                }
                let best = candidates
                    .iter()
                    .filter(|(i, _, ex)| !used.contains(i) && (allow_excluded || !ex))
                    .filter_map(|&(i, h, ex)| {
                        let q = self.questions.get(i)?;
                        let fits = if strict {
                            q.domain == slot.domain && in_group(q.category, slot.group)
                        } else {
                            true
                        };
                        if !fits {
                            return None;
                        }
                        // Out of kind: prefer the slot's own file, then the nearest kind.
                        let off_file = u8::from(q.domain != slot.domain);
                        let off_kind = fallback_rank(slot.group, q.category);
                        let dist = rank(q.difficulty).abs_diff(rank(slot.pref));
                        Some(((u8::from(ex), off_file, off_kind, dist, h), i))
                    })
                    .min();
                if let Some((_, i)) = best {
                    used.insert(i);
                    chosen[si] = Some(i);
                }
            }
        }

        let mut tech_n = 0usize;
        let mut proj_n = 0usize;
        let tech_off = stable_hash(&[sel.seed, "technology"]) as usize;
        let proj_off = stable_hash(&[sel.seed, "project_name"]) as usize;
        let role = if sel.fill.role.trim().is_empty() {
            if sel.role.trim().is_empty() {
                "software engineer"
            } else {
                sel.role.trim()
            }
        } else {
            sel.fill.role.trim()
        };
        chosen
            .into_iter()
            .flatten()
            .filter_map(|i| self.questions.get(i))
            .map(|q| {
                let tech = if q.uses("technology") {
                    let top =
                        &sel.fill.technologies[..sel.fill.technologies.len().min(TOP_TECHNOLOGIES)];
                    let t = pick_rotating(top, tech_off, tech_n);
                    tech_n += 1;
                    t
                } else {
                    ""
                };
                let project = if q.uses("project_name") {
                    let p = pick_rotating(sel.fill.projects, proj_off, proj_n);
                    proj_n += 1;
                    p
                } else {
                    ""
                };
                let fill = |s: &str| {
                    s.replace("{role}", role)
                        .replace("{technology}", tech)
                        .replace("{project_name}", project)
                };
                let mut filled = q.clone();
                filled.text = fill(&q.text);
                filled.follow_ups = q.follow_ups.iter().map(|f| fill(f)).collect();
                ChosenQuestion {
                    question: filled,
                    original_id: q.id.clone(),
                }
            })
            .collect()
    }
}

/// A 64-bit finaliser (MurmurHash3's fmix64): FNV-1a's high bits barely change between ids that
/// differ only in their last digits, so sorting by the raw hash would follow id order.
fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

fn pick_rotating(list: &[String], offset: usize, n: usize) -> &str {
    if list.is_empty() {
        return "";
    }
    list[(offset % list.len() + n) % list.len()].trim()
}

/// 0 for the slot's own kind, then the nearest substitutes; another introduction comes last.
fn fallback_rank(g: Group, c: Category) -> u8 {
    if in_group(c, g) {
        return 0;
    }
    if c == Category::Introduction {
        return 3;
    }
    match (g, c) {
        (Group::Project, c) if c.is_technical() => 1,
        (Group::Technical, Category::Project) => 1,
        (Group::Behavioral, Category::Project) => 1,
        (Group::Intro, Category::TechnicalEasy) => 1,
        _ => 2,
    }
}

fn in_group(c: Category, g: Group) -> bool {
    match g {
        Group::Intro => c == Category::Introduction,
        Group::Technical => c.is_technical(),
        Group::Project => c == Category::Project,
        Group::Behavioral => c == Category::Behavioral,
    }
}

pub(super) fn rank(d: Difficulty) -> u8 {
    match d {
        Difficulty::Easy => 0,
        Difficulty::Medium => 1,
        Difficulty::Hard => 2,
    }
}

/// Difficulties for `k` questions, ascending: easy → mostly easy and some medium; medium → a few
/// easy, mostly medium, a few hard; hard → some medium, mostly hard.
fn ramp(d: Difficulty, k: usize) -> Vec<Difficulty> {
    let (e, m, h) = match d {
        Difficulty::Easy => {
            let m = (k * 3 + 5) / 10;
            (k - m, m, 0)
        }
        Difficulty::Medium => {
            let (mut e, mut h) = ((k + 1) / 4, k / 4);
            if k == 2 {
                e = 1;
            }
            if k >= 3 {
                e = e.max(1);
                h = h.max(1);
            }
            (e, k - e - h, h)
        }
        Difficulty::Hard => {
            let m = (k * 4 + 5) / 10;
            (0, m, k - m)
        }
    };
    let mut out = vec![Difficulty::Easy; e];
    out.extend(vec![Difficulty::Medium; m]);
    out.extend(vec![Difficulty::Hard; h]);
    out
}

/// Puts `extra` evenly among `main`, never before main's first item.
fn interleave(main: Vec<Slot>, extra: Vec<Slot>) -> Vec<Slot> {
    let (m, e) = (main.len(), extra.len());
    let mut out = Vec::with_capacity(m + e);
    let mut extra = extra.into_iter().enumerate().peekable();
    let mut main = main.into_iter();
    for i in 0..=m {
        while let Some((j, _)) = extra.peek() {
            let at = ((j + 1) * m).div_ceil(e + 1).max(1);
            if at > i && i < m {
                break;
            }
            if let Some((_, s)) = extra.next() {
                out.push(s);
            }
        }
        if let Some(s) = main.next() {
            out.push(s);
        }
    }
    out
}

/// Technical slots with the project slot in the middle.
fn technical_block(domain: &'static str, d: Difficulty, k: usize, project: bool) -> Vec<Slot> {
    let techs: Vec<Slot> = ramp(d, k)
        .into_iter()
        .map(|pref| Slot {
            domain,
            group: Group::Technical,
            pref,
        })
        .collect();
    let half = techs.len().div_ceil(2);
    let mut out: Vec<Slot> = techs[..half].to_vec();
    if project {
        out.push(Slot {
            domain,
            group: Group::Project,
            pref: d,
        });
    }
    out.extend_from_slice(&techs[half..]);
    out
}

/// The interview's slots, in order.
fn plan(track: Track, domain: &'static str, d: Difficulty, n: usize) -> Vec<Slot> {
    if n == 0 {
        return Vec::new();
    }
    let intro = |domain| Slot {
        domain,
        group: Group::Intro,
        pref: Difficulty::Easy,
    };
    let mut out = Vec::with_capacity(n);
    match track {
        Track::Technical => {
            out.push(intro(domain));
            let project = n >= 6;
            let behavioral = n >= 8;
            let k = (n - 1)
                .saturating_sub(usize::from(project))
                .saturating_sub(usize::from(behavioral));
            out.extend(technical_block(domain, d, k, project));
            if behavioral {
                out.push(Slot {
                    domain,
                    group: Group::Behavioral,
                    pref: d,
                });
            }
        }
        Track::Behavioral => {
            out.push(intro("behavioral"));
            let r = n - 1;
            let p = if r >= 3 { (r / 4).max(1) } else { 0 };
            let main: Vec<Slot> = ramp(d, r - p)
                .into_iter()
                .map(|pref| Slot {
                    domain: "behavioral",
                    group: Group::Behavioral,
                    pref,
                })
                .collect();
            let projects = vec![
                Slot {
                    domain: "behavioral",
                    group: Group::Project,
                    pref: d,
                };
                p
            ];
            out.extend(interleave(main, projects));
        }
        Track::Mixed => {
            out.push(intro(domain));
            let b = if n >= 2 { ((n * 4 + 5) / 10).max(1) } else { 0 };
            let rest = n - 1 - b;
            let project = n >= 6 && rest >= 2;
            let k = rest - usize::from(project);
            let main = technical_block(domain, d, k, project);
            let behav: Vec<Slot> = ramp(d, b)
                .into_iter()
                .map(|pref| Slot {
                    domain: "behavioral",
                    group: Group::Behavioral,
                    pref,
                })
                .collect();
            out.extend(interleave(main, behav));
        }
    }
    out
}
