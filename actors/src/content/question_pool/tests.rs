//! Tests of the question pool: the shipped pool loads with a scoring guide per question, validation
//! errors name file, line and field, and selection follows its rules.

use std::collections::HashSet;

use super::super::Track;
use super::select::rank;
use super::*;

#[test]
fn every_pool_question_has_a_scoring_guide() {
    let pool = QuestionPool::load_embedded().unwrap();
    let mut follow_up_points = 0;
    for q in pool.questions() {
        let g = pool.guide(&q.id).unwrap();
        assert_eq!(g.points.len(), q.rubric.len(), "{}", q.id);
        for p in &g.points {
            assert!(
                !p.groups.is_empty() && p.need == p.groups.len() && p.say != p.text,
                "{}: {:?} has no authored phrase and concepts",
                q.id,
                p.text
            );
        }
        assert!(!g.follow_up.is_empty(), "{}: no follow-up points", q.id);
        follow_up_points += g.follow_up.len();
        // Chosen (filled) questions find their guide by id and rubric.
        assert_eq!(pool.scoring_points(q), g.points, "{}", q.id);
        assert_eq!(
            pool.follow_up_points(q, &q.follow_ups[0]).as_deref(),
            Some(g.follow_up.as_slice())
        );
        assert_eq!(pool.follow_up_points(q, "Something else entirely?"), None);
    }
    assert!(follow_up_points >= 2 * pool.len(), "{follow_up_points}");
}

#[test]
fn guide_errors_name_the_field() {
    let q = |extra: &str| {
        format!(
            "domain = \"backend\"\n[[questions]]\nid = \"backend-001\"\ncategory = \"technical_easy\"\n\
             difficulty = \"easy\"\ntags = [\"x\"]\ntext = \"What is a thing?\"\n\
             rubric = [\"One point here\", \"Two point here\", \"Three point here\"]\n\
             follow_ups = [\"Why?\"]\n{extra}"
        )
    };
    let ok = q(
        "say = [\"a\", \"b\", \"c\"]\nconcepts = [\"one\", \"two; point\", \"three\"]\n\
                follow_up_points = [{ say = \"why\", concepts = \"because\" }]\n",
    );
    let pool = QuestionPool::parse(&[("question_pool/backend.toml", &ok)]).unwrap();
    assert_eq!(pool.guide("backend-001").unwrap().points[1].groups.len(), 2);
    let short = q("say = [\"a\"]\n");
    let e = QuestionPool::parse(&[("question_pool/backend.toml", &short)]).unwrap_err();
    assert!(e.message.contains("say has 1 entries"), "{e}");
    let bad = q("say = [\"a\", \"b\", \"c\"]\nconcepts = [\"one\", \"@nope\", \"three\"]\n");
    let e = QuestionPool::parse(&[("question_pool/backend.toml", &bad)]).unwrap_err();
    assert!(
        e.message.contains("concepts[1]") && e.message.contains("@nope"),
        "{e}"
    );
    assert!(e.line > 0, "{e}");
}

fn pool() -> QuestionPool {
    QuestionPool::load_embedded().unwrap()
}

fn sel<'a>(
    role: &'a str,
    track: Track,
    difficulty: Difficulty,
    count: usize,
    seed: &'a str,
    fill: Fill<'a>,
    exclude: &'a HashSet<String>,
) -> Selection<'a> {
    Selection {
        role,
        track,
        difficulty,
        count,
        seed,
        fill,
        exclude,
    }
}

const NO: &[String] = &[];

#[test]
fn interner_shares_equal_questions_and_keeps_different_ones_apart() {
    let p = pool();
    let q = p.get("backend-001").unwrap().clone();
    let interner = QuestionInterner::default();
    let first = interner.intern(Arc::new(q.clone()));
    let again = interner.intern(Arc::new(q.clone()));
    assert!(Arc::ptr_eq(&first, &again), "one copy for equal questions");
    let mut other = q;
    other.text.push_str(" (for a data engineer)");
    let other = interner.intern(Arc::new(other));
    assert!(!Arc::ptr_eq(&first, &other));
    assert_eq!(interner.len(), 2);
    // Full, it lets go of the questions no session holds, and keeps the ones in use.
    drop(again);
    let base = p.get("backend-002").unwrap().clone();
    for i in 0..QuestionInterner::MAX {
        let mut q = base.clone();
        q.text = format!("{} #{i}", base.text);
        interner.intern(Arc::new(q));
    }
    let mut last = base.clone();
    last.text.push_str(" (last)");
    interner.intern(Arc::new(last));
    // Pruned when it reached MAX: `first` and `other` (still held) stayed, and the questions
    // interned after the pruning (the last two of the loop, and `last`) joined them.
    assert_eq!(interner.len(), 5);
    let held_again = interner.intern(Arc::new((*first).clone()));
    assert!(Arc::ptr_eq(&first, &held_again));
    // Stored, a shared question is the plain question (serde's `rc`: the same bytes).
    let plain = serde_json::to_string(&*first).unwrap();
    assert_eq!(serde_json::to_string(&first).unwrap(), plain);
}

#[test]
fn embedded_pool_loads() {
    let p = pool();
    assert!(p.len() >= 300, "{}", p.len());
    let q = p.get("backend-001").unwrap();
    assert_eq!(q.category, Category::Introduction);
    assert_eq!(q.domain, "backend");
    for d in DOMAINS {
        assert!(p.questions().iter().any(|q| q.domain == d));
    }
}

#[test]
fn roles_map_to_domains() {
    let cases = [
        ("Senior Backend Engineer", "backend"),
        ("API Developer", "backend"),
        ("Back-end developer", "backend"),
        ("Frontend Engineer", "frontend"),
        ("React Developer", "frontend"),
        ("UI Engineer", "frontend"),
        ("Data Scientist", "data_ml"),
        ("ML Engineer", "data_ml"),
        ("Machine Learning Engineer", "data_ml"),
        ("DevOps Engineer", "devops_sre"),
        ("Site Reliability Engineer", "devops_sre"),
        ("SRE", "devops_sre"),
        ("Platform Engineer", "devops_sre"),
        ("Cloud Infrastructure Engineer", "devops_sre"),
        ("iOS Developer", "mobile"),
        ("Android Engineer", "mobile"),
        ("React Native Developer", "mobile"),
        ("Product Manager", "product_management"),
        ("Senior PM", "product_management"),
        ("Software Engineer", "general_swe"),
        ("Pmatic dev", "general_swe"),
        ("", "general_swe"),
    ];
    for (role, want) in cases {
        assert_eq!(QuestionPool::domain_for_role(role), want, "{role}");
    }
}

#[test]
fn technical_selection_follows_the_rules() {
    let p = pool();
    let ex = HashSet::new();
    let fill = Fill {
        role: "Backend Engineer",
        technologies: NO,
        projects: NO,
    };
    for count in 1..=12 {
        for d in [Difficulty::Easy, Difficulty::Medium, Difficulty::Hard] {
            let s = sel(
                "Backend Engineer",
                Track::Technical,
                d,
                count,
                "iv-42",
                fill,
                &ex,
            );
            let qs = p.select(&s);
            assert_eq!(qs.len(), count);
            assert_eq!(qs[0].question.category, Category::Introduction);
            let ids: HashSet<&str> = qs.iter().map(|q| q.original_id.as_str()).collect();
            assert_eq!(ids.len(), count, "no repeats");
            for q in &qs {
                assert_eq!(q.question.domain, "backend");
                assert!(!q.question.text.contains('{'), "{}", q.question.text);
                assert!(!q.question.uses("technology") && !q.question.uses("project_name"));
                assert_eq!(q.question.id, q.original_id);
            }
            let cats: Vec<Category> = qs.iter().map(|q| q.question.category).collect();
            // Domain project questions all need {project_name}: none without projects.
            assert!(!cats.contains(&Category::Project), "{cats:?}");
            assert_eq!(cats.contains(&Category::Behavioral), count >= 8, "{cats:?}");
            let techs: Vec<Difficulty> = qs
                .iter()
                .filter(|q| q.question.category.is_technical())
                .map(|q| q.question.difficulty)
                .collect();
            // A ramp: difficulties never go down.
            assert!(
                techs.windows(2).all(|w| rank(w[0]) <= rank(w[1])),
                "{techs:?}"
            );
            match d {
                Difficulty::Easy => assert!(!techs.contains(&Difficulty::Hard)),
                Difficulty::Hard => assert!(!techs.contains(&Difficulty::Easy)),
                Difficulty::Medium => {
                    if techs.len() >= 3 {
                        assert!(techs.contains(&Difficulty::Easy));
                        assert!(techs.contains(&Difficulty::Medium));
                        assert!(techs.contains(&Difficulty::Hard));
                    }
                }
            }
        }
    }
}

#[test]
fn project_question_with_projects() {
    let p = pool();
    let ex = HashSet::new();
    let projects = vec!["LedgerLite".to_string()];
    let fill = Fill {
        role: "Backend Engineer",
        technologies: NO,
        projects: &projects,
    };
    for count in 1..=10 {
        let qs = p.select(&sel(
            "Backend Engineer",
            Track::Technical,
            Difficulty::Medium,
            count,
            "p",
            fill,
            &ex,
        ));
        let n = qs
            .iter()
            .filter(|q| q.question.category == Category::Project)
            .count();
        assert_eq!(n, usize::from(count >= 6), "{count}");
        if count >= 6 {
            let q = qs
                .iter()
                .find(|q| q.question.category == Category::Project)
                .unwrap();
            assert!(
                q.question.text.contains("LedgerLite"),
                "{}",
                q.question.text
            );
        }
    }
}

#[test]
fn deterministic_and_seed_dependent() {
    let p = pool();
    let ex = HashSet::new();
    let fill = Fill {
        role: "Frontend Engineer",
        technologies: NO,
        projects: NO,
    };
    let a = p.select(&sel(
        "Frontend Engineer",
        Track::Mixed,
        Difficulty::Medium,
        8,
        "a",
        fill,
        &ex,
    ));
    let a2 = p.select(&sel(
        "Frontend Engineer",
        Track::Mixed,
        Difficulty::Medium,
        8,
        "a",
        fill,
        &ex,
    ));
    let b = p.select(&sel(
        "Frontend Engineer",
        Track::Mixed,
        Difficulty::Medium,
        8,
        "b",
        fill,
        &ex,
    ));
    assert_eq!(a, a2);
    assert_ne!(a, b);
}

#[test]
fn mixed_and_behavioral_tracks() {
    let p = pool();
    let ex = HashSet::new();
    let fill = Fill {
        role: "Data Scientist",
        technologies: NO,
        projects: NO,
    };
    let qs = p.select(&sel(
        "Data Scientist",
        Track::Mixed,
        Difficulty::Medium,
        10,
        "m",
        fill,
        &ex,
    ));
    assert_eq!(qs.len(), 10);
    assert_eq!(qs[0].question.category, Category::Introduction);
    assert_eq!(qs[0].question.domain, "data_ml");
    let from_behavioral = qs
        .iter()
        .filter(|q| q.question.domain == "behavioral")
        .count();
    assert_eq!(from_behavioral, 4);
    assert!(qs[1].question.domain == "data_ml");

    let qs = p.select(&sel(
        "Data Scientist",
        Track::Behavioral,
        Difficulty::Medium,
        9,
        "m",
        fill,
        &ex,
    ));
    assert_eq!(qs.len(), 9);
    assert_eq!(qs[0].question.category, Category::Introduction);
    assert!(qs.iter().all(|q| q.question.domain == "behavioral"));
    assert!(qs.iter().any(|q| q.question.category == Category::Project));
    assert_eq!(
        qs.iter()
            .filter(|q| q.question.category == Category::Introduction)
            .count(),
        1
    );
}

#[test]
fn placeholders_filled_from_resume() {
    let p = pool();
    let ex = HashSet::new();
    let techs = vec!["PostgreSQL".to_string(), "Kafka".to_string()];
    let projects = vec!["ShopFast".to_string()];
    let fill = Fill {
        role: "Backend Engineer",
        technologies: &techs,
        projects: &projects,
    };
    let mut saw = 0;
    for i in 0..30 {
        let seed = format!("seed-{i}");
        for q in p.select(&sel(
            "Backend Engineer",
            Track::Technical,
            Difficulty::Medium,
            10,
            &seed,
            fill,
            &ex,
        )) {
            let orig = p.get(&q.original_id).unwrap();
            assert!(!q.question.text.contains('{'));
            assert!(q.question.follow_ups.iter().all(|f| !f.contains('{')));
            if orig.uses("technology") || orig.uses("project_name") {
                saw += 1;
                assert!(
                    ["PostgreSQL", "Kafka", "ShopFast"]
                        .iter()
                        .any(|t| q.question.text.contains(t)
                            || q.question.follow_ups.iter().any(|f| f.contains(t))),
                    "{}",
                    q.question.text
                );
            }
        }
    }
    assert!(saw > 10, "{saw}");
}

#[test]
fn exclusions_are_used_last() {
    let p = pool();
    let fill = Fill {
        role: "Mobile Engineer",
        technologies: NO,
        projects: NO,
    };
    let none = HashSet::new();
    let first = p.select(&sel(
        "Mobile Engineer",
        Track::Technical,
        Difficulty::Medium,
        8,
        "x",
        fill,
        &none,
    ));
    let ex: HashSet<String> = first.iter().map(|q| q.original_id.clone()).collect();
    let second = p.select(&sel(
        "Mobile Engineer",
        Track::Technical,
        Difficulty::Medium,
        8,
        "x",
        fill,
        &ex,
    ));
    assert_eq!(second.len(), 8);
    assert!(second.iter().all(|q| !ex.contains(&q.original_id)));

    // Excluding the whole domain: questions still come, as many as possible.
    let all: HashSet<String> = p
        .questions()
        .iter()
        .filter(|q| q.domain == "mobile")
        .map(|q| q.id.clone())
        .collect();
    let third = p.select(&sel(
        "Mobile Engineer",
        Track::Technical,
        Difficulty::Medium,
        8,
        "x",
        fill,
        &all,
    ));
    assert_eq!(third.len(), 8);

    // Asking for more than the file holds returns what is possible, without repeats.
    let many = p.select(&sel(
        "Mobile Engineer",
        Track::Technical,
        Difficulty::Medium,
        200,
        "x",
        fill,
        &none,
    ));
    let fillable = p
        .questions()
        .iter()
        .filter(|q| q.domain == "mobile" && !q.uses("technology") && !q.uses("project_name"))
        .count();
    assert_eq!(many.len(), fillable);
    assert_eq!(many[0].question.category, Category::Introduction);
}

#[test]
fn zero_count_is_empty() {
    let p = pool();
    let ex = HashSet::new();
    let fill = Fill {
        role: "x",
        technologies: NO,
        projects: NO,
    };
    assert!(p
        .select(&sel("x", Track::Mixed, Difficulty::Easy, 0, "s", fill, &ex))
        .is_empty());
}

#[test]
fn validation_errors_carry_file_and_line() {
    let good = "domain = \"backend\"\n\n[[questions]]\nid = \"backend-001\"\ncategory = \"introduction\"\ndifficulty = \"easy\"\ntags = [\"a\"]\ntext = \"Tell me about yourself and this {role} role.\"\nrubric = [\"a b c\", \"d e f\", \"g h i\"]\nfollow_ups = [\"Why?\"]\n";
    assert_eq!(
        QuestionPool::parse(&[("question_pool/backend.toml", good)])
            .unwrap()
            .len(),
        1
    );

    let bad_cat = good.replace("\"introduction\"", "\"intro\"");
    let e = QuestionPool::parse(&[("question_pool/backend.toml", &bad_cat)]).unwrap_err();
    assert_eq!(e.path, "question_pool/backend.toml");
    assert_eq!(e.line, 5, "{e}");
    assert!(
        e.to_string().starts_with("question_pool/backend.toml:5:"),
        "{e}"
    );

    let syntax = good.replace("tags = [\"a\"]", "tags = [\"a\"");
    let e = QuestionPool::parse(&[("question_pool/backend.toml", &syntax)]).unwrap_err();
    assert!(e.line >= 7, "{e}");

    let short = good.replace(", \"g h i\"", "");
    let e = QuestionPool::parse(&[("question_pool/backend.toml", &short)]).unwrap_err();
    assert_eq!(e.line, 9, "{e}");

    let ph = good.replace("{role}", "{company}");
    let e = QuestionPool::parse(&[("question_pool/backend.toml", &ph)]).unwrap_err();
    assert_eq!(e.line, 8, "{e}");

    let dup = format!("{good}{}", &good[good.find("[[questions]]").unwrap()..]);
    let e = QuestionPool::parse(&[("question_pool/backend.toml", &dup)]).unwrap_err();
    assert!(e.message.contains("duplicate id"), "{e}");

    let e = QuestionPool::parse(&[("question_pool/frontend.toml", good)]).unwrap_err();
    assert!(e.message.contains("file name"), "{e}");

    let unknown = good.replace("tags = [\"a\"]", "tags = [\"a\"]\nweight = 3");
    let e = QuestionPool::parse(&[("question_pool/backend.toml", &unknown)]).unwrap_err();
    assert_eq!(e.line, 8, "{e}");
}
