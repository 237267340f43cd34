//! `interview-engine simulate`: a day of interviews on a virtual clock (`engine/src/sim/`), printed
//! hour by hour, with the day's invariants and a comparison with `plan`'s arithmetic for the same
//! catalogue, keys and GPU node.
//!
//! The comparison: `plan` gives each provider's daily requests and tokens (and a GPU node's calls)
//! and each level's calls and tokens per interview (the budget's default costs). Spread over the
//! day's `N` interviews, the day's capacity pays for a mix of levels: all at the highest level whose
//! `N` interviews fit, or, when the capacity lies between two levels, as many at the upper one as the
//! rest pays for ([`plan_mix`]); the budget's share rule converges on that mix. Two figures must then
//! agree within 5 %: the interviews per level (difference over `N`), and the provider calls per
//! interview at each level that holds at least 5 % of the interviews (difference over `plan`'s figure).

use serde::Serialize;

use crate::cli::plan::{self, Costs, Plan};
use crate::config::Config;
use crate::sim::{self, SimOptions, SimReport};

/// Level names, lowest first (as `actors::budget::Level::ALL`).
pub const LEVELS: [&str; 4] = ["heuristic", "economy", "balanced", "adaptive"];

/// Agreement required between the simulation and `plan`.
pub const TOLERANCE: f64 = 0.05;

/// Levels holding less than this share of the interviews are not compared per interview (a handful
/// of interviews that stepped between levels make a noisy average).
pub const MIN_SHARE_COMPARED: f64 = 0.05;

/// One compared figure.
#[derive(Debug, Clone, Serialize)]
pub struct Compared {
    /// What is compared.
    pub figure: String,
    /// `plan`'s figure.
    pub plan: f64,
    /// The simulation's.
    pub simulated: f64,
    /// The difference, relative (see the module documentation).
    pub difference: f64,
    /// Within [`TOLERANCE`].
    pub agrees: bool,
}

/// The whole result.
#[derive(Debug, Clone, Serialize)]
pub struct Simulation {
    /// The day.
    pub report: SimReport,
    /// `plan` for the same inputs.
    pub plan: Plan,
    /// The day's capacity in requests and tokens by `plan`'s arithmetic (`null`: unlimited).
    pub plan_day_requests: Option<u64>,
    /// Tokens, likewise.
    pub plan_day_tokens: Option<u64>,
    /// The level mix `plan`'s arithmetic gives the day's interviews.
    pub plan_mix: [u64; 4],
    /// The comparisons.
    pub compared: Vec<Compared>,
    /// Invariants that failed (empty: all held).
    pub invariant_failures: Vec<String>,
}

impl Simulation {
    /// Whether every invariant held (what the exit code says).
    pub fn ok(&self) -> bool {
        self.invariant_failures.is_empty()
    }

    /// Whether every compared figure agreed with `plan` within [`TOLERANCE`].
    pub fn plan_agrees(&self) -> bool {
        self.compared.iter().all(|c| c.agrees)
    }
}

/// The mix of levels `plan`'s totals (interviews a day if every interview were at that level, `None`
/// unlimited; economy, balanced, adaptive) give a day of `n` interviews: each interview at a level
/// takes `1 / total` of the day's capacity; all `n` go to the highest level they fit at, and as many
/// of them one level up as the rest of the capacity pays for; past economy's total the rest are
/// heuristic.
pub fn plan_mix(totals: [Option<u64>; 3], n: u64) -> [u64; 4] {
    // Share of the day's capacity one interview takes at each level (heuristic: none).
    let share = |level: usize| -> f64 {
        match level {
            0 => 0.0,
            l => match totals[l - 1] {
                None => 0.0,
                Some(0) => f64::INFINITY,
                Some(t) => 1.0 / t as f64,
            },
        }
    };
    let nf = n as f64;
    let mut mix = [0u64; 4];
    for lower in (0..4).rev() {
        if nf * share(lower) > 1.0 + 1e-12 {
            continue;
        }
        if lower == 3 {
            mix[3] = n;
            return mix;
        }
        let (lo, hi) = (share(lower), share(lower + 1));
        let up = if hi.is_infinite() {
            0.0
        } else {
            ((1.0 - nf * lo) / (hi - lo)).floor().clamp(0.0, nf)
        };
        mix[lower + 1] = up as u64;
        mix[lower] = n - up as u64;
        return mix;
    }
    mix[0] = n;
    mix
}

/// The sum of the providers' daily requests and tokens and the GPU nodes' calls (`None` if any is
/// unlimited): what the hour table's "day used" divides by.
fn day_capacity(p: &Plan) -> (Option<u64>, Option<u64>) {
    let mut requests = Some(0u64);
    let mut tokens = Some(0u64);
    for pr in &p.providers {
        requests = requests.and_then(|r| Some(r + pr.daily_requests?));
        tokens = tokens.and_then(|t| Some(t + pr.daily_tokens?));
    }
    for n in &p.gpu_nodes {
        requests = requests.map(|r| r + n.calls_per_day);
        tokens = None;
    }
    (requests, tokens)
}

fn compare(figure: String, plan: f64, simulated: f64, scale: f64) -> Compared {
    let difference = if scale > 0.0 {
        (simulated - plan).abs() / scale
    } else {
        0.0
    };
    Compared {
        figure,
        plan,
        simulated,
        difference,
        agrees: difference <= TOLERANCE,
    }
}

/// Runs the simulation for `config` and compares it with `plan`.
pub fn run(config: &Config, opts: &SimOptions) -> Result<Simulation, sim::SimError> {
    let mut report = sim::run(config, opts)?;
    let (cfg, env) = sim::sim_config(config, opts.gpu_node_rps);
    let costs = Costs::defaults(cfg.interview.questions);
    let getenv = |k: &str| env.get(k).cloned();
    let p = plan::from_config(&cfg, &getenv, &costs);
    let (requests, tokens) = day_capacity(&p);
    sim::fill_day_share(&mut report, requests);
    let n = report.interviews;
    let t = &p.totals;
    let mix = plan_mix([t.economy, t.balanced, t.adaptive], n);
    let m = &costs.modes;
    let plan_calls = [0, m[0].calls, m[1].calls, m[2].calls];
    let mut compared = Vec::new();
    for (i, name) in LEVELS.iter().enumerate() {
        compared.push(compare(
            format!("{name} interviews"),
            mix[i] as f64,
            report.admitted[i] as f64,
            n as f64,
        ));
    }
    for (i, name) in LEVELS.iter().enumerate().skip(1) {
        let finished = report.finished[i];
        if n == 0 || (finished as f64) < MIN_SHARE_COMPARED * n as f64 {
            continue;
        }
        let per = report.level_calls[i] as f64 / finished as f64;
        compared.push(compare(
            format!("calls per {name} interview"),
            plan_calls[i] as f64,
            per,
            plan_calls[i] as f64,
        ));
    }
    let invariant_failures = report.invariant_failures();
    Ok(Simulation {
        report,
        plan: p,
        plan_day_requests: requests,
        plan_day_tokens: tokens,
        plan_mix: mix,
        compared,
        invariant_failures,
    })
}

fn pct(x: f64) -> String {
    format!("{:.1} %", x * 100.0)
}

/// Prints the hour table, the day and the comparison.
pub fn print(s: &Simulation) {
    let r = &s.report;
    println!(
        "Simulated day: {} interviews{}, virtual {:.1} h in {:.1} s of real time\n",
        r.interviews,
        r.gpu_node_rps
            .map(|rps| format!(
                ", one GPU node of {rps} calls/s ({} slots)",
                r.gpu_node_slots.unwrap_or(0)
            ))
            .unwrap_or_default(),
        r.virtual_s / 3600.0,
        r.real_s
    );
    println!(
        "{:>4} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>7} {:>10} {:>10} {:>10}",
        "hour",
        "arrived",
        "heuristic",
        "economy",
        "balanced",
        "adaptive",
        "calls",
        "gpu",
        "minute win",
        "day used",
        "LLM-graded"
    );
    for h in &r.hours {
        let graded = if h.answers > 0 {
            pct(h.llm_graded as f64 / h.answers as f64)
        } else {
            "-".into()
        };
        println!(
            "{:>4} {:>8} {:>9} {:>8} {:>8} {:>8} {:>9} {:>7} {:>10} {:>10} {:>10}",
            format!("{:02}", h.hour),
            h.arrivals,
            h.admitted[0],
            h.admitted[1],
            h.admitted[2],
            h.admitted[3],
            h.provider_calls,
            h.gpu_calls,
            pct(h.minute_window_peak),
            pct(h.day_requests_used),
            graded
        );
    }
    println!("  (admissions per level by arrival hour; calls answered by the cloud keys and the GPU node;");
    println!("   minute win = fullest rpm/tpm window of any key at an admission; day used = calls so far");
    println!("   over plan's daily requests; LLM-graded = answers graded by a model, by completion hour)\n");
    let completed = if r.interviews > 0 {
        r.completed as f64 / r.interviews as f64
    } else {
        1.0
    };
    println!("Day:");
    println!(
        "  completed              {} of {} ({})",
        r.completed,
        r.interviews,
        pct(completed)
    );
    println!("  provider 429s          {}", r.provider_429s);
    println!(
        "  windows exceeded       {}",
        if r.windows_exceeded.is_empty() {
            "none".to_string()
        } else {
            r.windows_exceeded.join(", ")
        }
    );
    println!(
        "  provider calls         {} cloud, {} GPU",
        r.provider_calls, r.gpu_calls
    );
    println!(
        "  LLM-graded answers     {} of {} ({})",
        r.llm_graded,
        r.answers,
        pct(if r.answers > 0 {
            r.llm_graded as f64 / r.answers as f64
        } else {
            0.0
        })
    );
    println!("  level steps            {}", r.steps);
    println!(
        "  {:<10} {:>9} {:>9} {:>18} {:>14}",
        "level", "admitted", "finished", "calls/interview", "plan calls"
    );
    let costs = &s.plan.assumptions.calls_per_interview;
    let plan_calls = [Some(0), costs.economy, costs.balanced, costs.adaptive];
    for (i, name) in LEVELS.iter().enumerate() {
        let per = if r.finished[i] > 0 {
            format!("{:.2}", r.level_calls[i] as f64 / r.finished[i] as f64)
        } else {
            "-".into()
        };
        println!(
            "  {:<10} {:>9} {:>9} {:>18} {:>14}",
            name,
            r.admitted[i],
            r.finished[i],
            per,
            plan_calls[i].map_or("-".into(), |c| c.to_string())
        );
    }
    println!("\nProviders (one key each):");
    for p in &r.providers {
        let peaks: Vec<String> = p
            .peak_use
            .iter()
            .map(|(w, u)| format!("{w} {}", pct(*u)))
            .collect();
        println!(
            "  {:<14} {:>7} calls {:>11} tokens  429s {:>3}  peak {}",
            p.provider,
            p.requests,
            p.tokens,
            p.refused.values().sum::<u64>(),
            peaks.join(", ")
        );
    }
    println!(
        "\nplan for the same keys{}: day capacity {} requests, {} tokens; level mix for {} interviews: {}",
        if s.plan.gpu_nodes.is_empty() { "" } else { " and node" },
        s.plan_day_requests.map_or("unlimited".into(), |v| v.to_string()),
        s.plan_day_tokens.map_or("unlimited".into(), |v| v.to_string()),
        r.interviews,
        LEVELS
            .iter()
            .zip(s.plan_mix)
            .map(|(l, n)| format!("{l} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  {:<34} {:>10} {:>10} {:>10}",
        "figure", "plan", "simulated", "difference"
    );
    for c in &s.compared {
        println!(
            "  {:<34} {:>10.2} {:>10.2} {:>10} {}",
            c.figure,
            c.plan,
            c.simulated,
            pct(c.difference),
            if c.agrees { "ok" } else { "DISAGREES" }
        );
    }
    if s.invariant_failures.is_empty() {
        println!("\ninvariants: all held (100 % completed, 0 provider 429s, no window exceeded)");
    } else {
        println!("\ninvariants FAILED: {}", s.invariant_failures.join("; "));
        for f in &r.failures {
            println!("  {f}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_fills_the_capacity_between_two_levels() {
        assert_eq!(plan_mix([None, None, None], 100), [0, 0, 0, 100]);
        assert_eq!(
            plan_mix([Some(400), Some(200), Some(100)], 100),
            [0, 0, 0, 100]
        );
        // 100 adaptive take 2/3 of the day: all fit at the top.
        assert_eq!(
            plan_mix([Some(400), Some(200), Some(150)], 100),
            [0, 0, 0, 100]
        );
        // 300 economy take 3/4 of the day; 1/4 buys (1/4) / (1/200 - 1/400) = 100 balanced.
        assert_eq!(
            plan_mix([Some(400), Some(200), Some(100)], 300),
            [0, 200, 100, 0]
        );
        // Past economy's total the rest are heuristic.
        assert_eq!(
            plan_mix([Some(50), Some(20), Some(10)], 100),
            [50, 50, 0, 0]
        );
        assert_eq!(plan_mix([Some(0), Some(0), Some(0)], 10), [10, 0, 0, 0]);
    }
}
