//! The capacity plan as text: the tables `interview-engine plan` prints (JSON output is the
//! [`Plan`]'s serialization).

use super::arithmetic::{Plan, ASSUMED_GPU_CALL_S, DEFAULT, HEURISTIC_NOTE};

fn show(v: Option<u64>) -> String {
    v.map_or_else(|| "unlimited".to_string(), |n| n.to_string())
}

fn show_budget(v: Option<u64>, basis: &str) -> String {
    match basis {
        "rpm" | "tpm" | "requests_per_month" | "tokens_per_month" | "daily_units"
        | "daily_spend_cap" => format!("{} (from {basis})", show(v)),
        "paid" => "0 (paid, no cap)".to_string(),
        "no keys" | "disabled" | "unlimited" => basis.to_string(),
        _ => show(v),
    }
}

/// Prints the plan as tables followed by its assumptions.
pub fn print(plan: &Plan) {
    println!("Capacity plan (interviews per day)\n");
    println!(
        "{:<16} {:>5} {:<7} {:>24} {:>26} {:>10} {:>10} {:>10}",
        "provider",
        "keys",
        "scope",
        "requests/day",
        "tokens/day",
        "economy",
        "balanced",
        "adaptive"
    );
    for p in &plan.providers {
        let [e, b, a] = p.interviews_per_day.values();
        println!(
            "{:<16} {:>5} {:<7} {:>24} {:>26} {:>10} {:>10} {:>10}",
            p.name,
            p.keys,
            p.quota_scope,
            show_budget(p.daily_requests, p.requests_basis),
            show_budget(p.daily_tokens, p.tokens_basis),
            show(e),
            show(b),
            show(a)
        );
    }
    println!();
    if plan.gpu_nodes.is_empty() {
        println!("GPU nodes: none");
    } else {
        println!(
            "{:<16} {:>15} {:>12} {:>10} {:>10} {:>10}",
            "gpu node", "max_concurrency", "calls/day", "economy", "balanced", "adaptive"
        );
        for n in &plan.gpu_nodes {
            let [e, b, a] = n.interviews_per_day.values();
            println!(
                "{:<16} {:>15} {:>12} {:>10} {:>10} {:>10}",
                n.name,
                n.max_concurrency,
                n.calls_per_day,
                show(e),
                show(b),
                show(a)
            );
        }
    }
    println!();
    let [e, b, a] = plan.totals.values();
    println!(
        "total interviews/day: economy {}, balanced {}, adaptive {}",
        show(e),
        show(b),
        show(a)
    );
    if plan.totals.values().iter().all(|v| *v == Some(0)) {
        println!("no provider keys and no GPU nodes: every interview runs at the heuristic level");
    }
    println!("heuristic interviews/day: unlimited\n  {HEURISTIC_NOTE}");
    let a = &plan.assumptions;
    println!(
        "\nAssumptions (per interview; defaults for {} questions):",
        a.questions_per_interview
    );
    let calls = a.calls_per_interview.values();
    let tokens = a.tokens_per_interview.values();
    let (calls_basis, tokens_basis) = (a.calls_basis.values(), a.tokens_basis.values());
    for (i, mode) in ["economy", "balanced", "adaptive"].iter().enumerate() {
        println!(
            "  {mode:<9} {:>4} calls ({}), {:>7} tokens ({})",
            show(calls[i]),
            calls_basis[i],
            show(tokens[i]),
            tokens_basis[i]
        );
    }
    if let Some(url) = &a.stats_url {
        if calls_basis.iter().all(|b| *b == DEFAULT) {
            println!(
                "  {url} has no completed economy, balanced or adaptive interview yet: every figure is a default"
            );
        }
    }
    println!("  one GPU call takes {ASSUMED_GPU_CALL_S} s");
    for n in &plan.assumptions.notes {
        println!("  {n}");
    }
}
