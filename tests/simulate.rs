//! The simulated day at a reduced size (issue 15): 500 interviews of the built-in catalogue, one key
//! per free provider, on the virtual clock, in this process. What the issue promises: every interview
//! completes, no provider answers 429, no window of any key is exceeded, and the interviews per level
//! agree with `plan`'s arithmetic within 5 %. Calls per interview at each level are checked against
//! `plan`'s assumption from above: no level may cost more than `plan` counts for it.

use interview_engine::cli::simulate;
use interview_engine::config::Config;
use interview_engine::sim::SimOptions;

#[test]
#[allow(clippy::unwrap_used, clippy::panic)]
fn a_reduced_day_completes_every_interview_within_every_window_and_agrees_with_plan() {
    let config = Config::load(None).unwrap();
    let opts = SimOptions {
        interviews: 500,
        ..SimOptions::default()
    };
    let s = simulate::run(&config, &opts).unwrap();
    let r = &s.report;
    assert_eq!(r.interviews, 500);
    assert_eq!(r.completed, 500, "failures: {:?}", r.failures);
    assert_eq!(r.provider_429s, 0, "providers: {:?}", r.providers);
    assert!(r.windows_exceeded.is_empty(), "{:?}", r.windows_exceeded);
    assert!(
        s.invariant_failures.is_empty(),
        "{:?}",
        s.invariant_failures
    );
    // Every key's every window stayed at or under its limit (the fake refuses past it, so this and
    // "no 429" say the same from both sides).
    for p in &r.providers {
        for (w, used) in &p.peak_use {
            assert!(*used <= 1.0, "{} {w} {used}", p.provider);
        }
    }
    // Work really went to the providers, hour by hour, and the hours add up.
    assert!(r.provider_calls > 0);
    assert_eq!(r.hours.iter().map(|h| h.arrivals).sum::<u64>(), 500);
    assert_eq!(
        r.hours.iter().map(|h| h.provider_calls).sum::<u64>(),
        r.provider_calls
    );
    assert_eq!(r.admitted.iter().sum::<u64>(), 500);
    assert_eq!(r.finished.iter().sum::<u64>(), 500);
    // Interviews per level: within 5 % of plan's mix.
    let per_level: Vec<_> = s
        .compared
        .iter()
        .filter(|c| c.figure.ends_with(" interviews"))
        .collect();
    assert_eq!(per_level.len(), 4);
    for c in per_level {
        assert!(c.agrees, "{c:?}");
    }
    // Calls per interview per level: never above plan's figure.
    for c in s
        .compared
        .iter()
        .filter(|c| c.figure.starts_with("calls per"))
    {
        assert!(c.simulated <= c.plan, "{c:?}");
    }
}
