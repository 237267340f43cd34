//! Agreement between a grader and a labelled set of answers (`tests/data/labelled_answers.toml`):
//! Spearman's rank correlation between scores and bands, the highest score a bare keyword list gets,
//! the lowest a strong paraphrase gets, and how often the band matches. Used by the agreement test
//! and the scoring benchmark, for the rubric scorer and for a model grading through the provider path.

use serde::Deserialize;

use crate::content::Verdict;

/// One labelled answer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Labelled {
    /// Pool question id.
    pub question: String,
    /// strong | partial | weak | off_topic | keywords | paraphrase.
    pub kind: String,
    /// The band a fair interviewer would give.
    pub band: Verdict,
    /// The answer.
    pub text: String,
    /// Whether its question was held out while tuning (filled from the file's `held_out`).
    #[serde(default)]
    pub held_out: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    held_out: Vec<String>,
    answers: Vec<Labelled>,
}

/// Reads the labelled set.
pub fn load(text: &str) -> Result<Vec<Labelled>, String> {
    let f: File = toml::from_str(text).map_err(|e| e.to_string())?;
    let kinds = [
        "strong",
        "partial",
        "weak",
        "off_topic",
        "keywords",
        "paraphrase",
    ];
    let mut out = f.answers;
    for a in &mut out {
        if !kinds.contains(&a.kind.as_str()) {
            return Err(format!("{}: unknown kind {:?}", a.question, a.kind));
        }
        a.held_out = f.held_out.contains(&a.question);
    }
    Ok(out)
}

/// Ranks (1-based) with ties given their average rank.
fn ranks(xs: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..xs.len()).collect();
    idx.sort_by(|&a, &b| xs[a].total_cmp(&xs[b]));
    let mut out = vec![0.0; xs.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && xs[idx[j + 1]] == xs[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            out[k] = avg;
        }
        i = j + 1;
    }
    out
}

/// Spearman's rank correlation (Pearson on average ranks); 0 when either side is constant.
pub fn spearman(xs: &[f64], ys: &[f64]) -> f64 {
    let (rx, ry) = (ranks(xs), ranks(ys));
    let n = rx.len() as f64;
    if n < 2.0 {
        return 0.0;
    }
    let (mx, my) = (rx.iter().sum::<f64>() / n, ry.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in rx.iter().zip(&ry) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx) * (a - mx);
        syy += (b - my) * (b - my);
    }
    if sxx == 0.0 || syy == 0.0 {
        return 0.0;
    }
    sxy / (sxx * syy).sqrt()
}

/// Agreement figures of one grader over a set of labelled answers.
#[derive(Debug, Clone, PartialEq)]
pub struct Figures {
    /// Answers graded.
    pub n: usize,
    /// Spearman between scores and bands (not yet < partial < solid).
    pub spearman: f64,
    /// Share of answers whose band matches the label.
    pub band_agreement: f64,
    /// Keyword lists graded.
    pub keywords: usize,
    /// The highest score of a keyword list.
    pub keywords_max: u8,
    /// Keyword lists scored above 3.
    pub keywords_over_3: usize,
    /// Strong paraphrases graded.
    pub paraphrases: usize,
    /// The lowest score of a strong paraphrase.
    pub paraphrase_min: u8,
    /// Strong paraphrases scored below 6.
    pub paraphrases_under_6: usize,
    /// Mean score per kind, in the file's order of kinds.
    pub mean_by_kind: Vec<(String, f64)>,
}

/// The figures for `(answer, score)` pairs.
pub fn figures(graded: &[(&Labelled, u8)]) -> Figures {
    let rank = |v: Verdict| match v {
        Verdict::NotYet => 0.0,
        Verdict::Partial => 1.0,
        Verdict::Solid => 2.0,
    };
    let xs: Vec<f64> = graded.iter().map(|(_, s)| f64::from(*s)).collect();
    let ys: Vec<f64> = graded.iter().map(|(a, _)| rank(a.band)).collect();
    let of = |kind: &str| -> Vec<u8> {
        graded
            .iter()
            .filter(|(a, _)| a.kind == kind)
            .map(|(_, s)| *s)
            .collect()
    };
    let kw = of("keywords");
    let para = of("paraphrase");
    let agree = graded
        .iter()
        .filter(|(a, s)| Verdict::of(*s) == a.band)
        .count();
    let mean_by_kind = [
        "strong",
        "paraphrase",
        "partial",
        "weak",
        "off_topic",
        "keywords",
    ]
    .iter()
    .map(|k| {
        let v = of(k);
        let m = if v.is_empty() {
            0.0
        } else {
            v.iter().map(|s| f64::from(*s)).sum::<f64>() / v.len() as f64
        };
        (k.to_string(), m)
    })
    .collect();
    Figures {
        n: graded.len(),
        spearman: spearman(&xs, &ys),
        band_agreement: if graded.is_empty() {
            0.0
        } else {
            agree as f64 / graded.len() as f64
        },
        keywords: kw.len(),
        keywords_max: kw.iter().copied().max().unwrap_or(0),
        keywords_over_3: kw.iter().filter(|s| **s > 3).count(),
        paraphrases: para.len(),
        paraphrase_min: para.iter().copied().min().unwrap_or(0),
        paraphrases_under_6: para.iter().filter(|s| **s < 6).count(),
        mean_by_kind,
    }
}

impl std::fmt::Display for Figures {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "n={} spearman={:.3} band agreement={:.0}% keyword lists: max {}/10, {} of {} above 3; \
             strong paraphrases: min {}/10, {} of {} below 6; mean by kind:",
            self.n,
            self.spearman,
            self.band_agreement * 100.0,
            self.keywords_max,
            self.keywords_over_3,
            self.keywords,
            self.paraphrase_min,
            self.paraphrases_under_6,
            self.paraphrases,
        )?;
        for (k, m) in &self.mean_by_kind {
            write!(f, " {k} {m:.1}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spearman_with_ties() {
        assert!((spearman(&[1.0, 2.0, 3.0], &[1.0, 2.0, 3.0]) - 1.0).abs() < 1e-9);
        assert!((spearman(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]) + 1.0).abs() < 1e-9);
        assert_eq!(spearman(&[1.0, 1.0], &[1.0, 2.0]), 0.0);
        // Average ranks [1, 2.5, 2.5, 4, 5] and [1.5, 1.5, 3.5, 3.5, 5]: 8 / sqrt(9.5 * 9).
        let r = spearman(&[1.0, 2.0, 2.0, 3.0, 5.0], &[0.0, 0.0, 1.0, 1.0, 2.0]);
        assert!((r - 0.865_181).abs() < 1e-5, "{r}");
    }
}
