#!/usr/bin/env python3
"""Validate the interview-engine question pool and interviewer templates.

Usage: python3 question_pool/validate.py [repo_root]

Checks every question_pool/<domain>.toml and templates/*.toml file.
On failure prints one "path: message" line per problem and exits 1.
On success prints a summary table (questions per domain and category).
Standard library only (Python 3.11+, tomllib).
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections import Counter, defaultdict
from pathlib import Path

DOMAINS = [
    "backend",
    "frontend",
    "data_ml",
    "devops_sre",
    "mobile",
    "product_management",
    "general_swe",
    "behavioral",
]
CATEGORIES = [
    "introduction",
    "technical_easy",
    "technical_medium",
    "technical_hard",
    "behavioral",
    "project",
]
DIFFICULTIES = {"easy", "medium", "hard"}
# Technical categories must carry the matching difficulty.
REQUIRED_DIFFICULTY = {
    "technical_easy": "easy",
    "technical_medium": "medium",
    "technical_hard": "hard",
}
MIN_PER_DOMAIN = 40
MIN_TOTAL = 300
MIN_PER_CATEGORY = {
    "introduction": 3,
    "technical_easy": 8,
    "technical_medium": 10,
    "technical_hard": 8,
    "behavioral": 4,
    "project": 5,
}
# behavioral.toml is mostly behavioral questions; technical ones may be skipped.
MIN_PER_CATEGORY_BEHAVIORAL_DOMAIN = {
    "introduction": 3,
    "behavioral": 25,
    "project": 5,
}
QUESTION_KEYS = {"id", "category", "difficulty", "tags", "text", "rubric", "follow_ups",
                 "say", "concepts", "follow_up_points"}
# The rubric scorer's guide: a feedback phrase and concept groups per rubric point, and the
# expected points of the first follow-up (parsed and checked in full by the engine at start).
GUIDE_KEYS = {"say", "concepts", "follow_up_points"}
# Third-person words about the candidate that feedback phrases must not use.
THIRD_PERSON = {"they", "their", "them", "themselves", "he", "she", "his", "her", "candidate"}
QUESTION_PLACEHOLDERS = {"role", "technology", "project_name"}
RESUME_PLACEHOLDERS = {"technology", "project_name"}
# Share of questions per domain that reference the resume ({technology}/{project_name}).
RESUME_SHARE_RANGE = (0.15, 0.32)
RESUME_SHARE_TOTAL_RANGE = (0.18, 0.28)

MIN_VARIANTS = 10
MIN_NOTE_VARIANTS = 4
# file -> key -> (required placeholders, allowed placeholders)
TEMPLATE_SPEC: dict[str, dict[str, tuple[set[str], set[str]]]] = {
    "greetings.toml": {
        k: ({"name", "role"}, {"name", "role"}) for k in ("technical", "behavioral", "mixed")
    },
    "acknowledgements.toml": {
        k: (set(), {"name"}) for k in ("solid", "partial", "not_yet", "empty", "skipped")
    },
    "transitions.toml": {k: (set(), set()) for k in ("next", "follow_up", "last")},
    "closings.toml": {
        k: ({"name"}, {"name"}) for k in ("closing", "early_end", "expired")
    },
    "feedback.toml": {
        "solid": ({"covered"}, {"covered", "missing"}),
        "partial": ({"covered", "missing"}, {"covered", "missing"}),
        "not_yet": ({"missing"}, {"covered", "missing"}),
        "off_topic": ({"missing"}, {"missing"}),
        **{
            f"note_{n}": (set(), set())
            for n in ("term_list", "off_topic", "too_short", "no_reasons", "no_example",
                      "no_context", "no_own_actions", "no_result", "instructions")
        },
    },
}
MAX_TRANSITION_LEN = 90
MAX_ACK_LEN = 220

PLACEHOLDER_RE = re.compile(r"\{([^{}]*)\}")


class Report:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.errors: list[str] = []

    def err(self, path: Path, msg: str) -> None:
        try:
            rel = path.relative_to(self.root)
        except ValueError:
            rel = path
        self.errors.append(f"{rel}: {msg}")


def placeholders(s: str) -> list[str]:
    return PLACEHOLDER_RE.findall(s)


def check_braces(rep: Report, path: Path, where: str, s: str) -> None:
    """Flag unbalanced or nested braces that a formatter would choke on."""
    stripped = PLACEHOLDER_RE.sub("", s)
    if "{" in stripped or "}" in stripped:
        rep.err(path, f"{where}: stray or unbalanced brace in {s!r}")


def check_text(rep: Report, path: Path, where: str, s: str, allowed: set[str]) -> set[str]:
    if not s.strip():
        rep.err(path, f"{where}: empty string")
    if s != s.strip():
        rep.err(path, f"{where}: leading/trailing whitespace")
    if "  " in s:
        rep.err(path, f"{where}: double space")
    bad = [c for c in s if ord(c) > 126 or (ord(c) < 32)]
    if bad:
        rep.err(path, f"{where}: non-ASCII or control characters {sorted(set(bad))!r}")
    check_braces(rep, path, where, s)
    found = set(placeholders(s))
    for p in sorted(found - allowed):
        rep.err(path, f"{where}: placeholder {{{p}}} not allowed here")
    return found


def norm(s: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", s.lower()).strip()


def load(rep: Report, path: Path) -> dict | None:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as e:
        rep.err(path, f"TOML parse error: {e}")
    except OSError as e:
        rep.err(path, f"cannot read: {e}")
    return None


def validate_pool(rep: Report, pool_dir: Path) -> dict[str, Counter]:
    counts: dict[str, Counter] = {}
    seen_ids: dict[str, Path] = {}
    seen_texts: dict[str, tuple[Path, str]] = {}
    resume_counts: dict[str, int] = {}

    present = {p.stem for p in pool_dir.glob("*.toml")} - {"concepts"}
    for d in DOMAINS:
        if d not in present:
            rep.err(pool_dir / f"{d}.toml", "missing domain file")
    for extra in sorted(present - set(DOMAINS)):
        rep.err(pool_dir / f"{extra}.toml", "unexpected domain file (not a known domain)")

    for domain in DOMAINS:
        path = pool_dir / f"{domain}.toml"
        if not path.exists():
            continue
        data = load(rep, path)
        if data is None:
            continue
        if data.get("domain") != domain:
            rep.err(path, f"top-level domain = {data.get('domain')!r}, expected {domain!r}")
        for k in sorted(set(data) - {"domain", "questions"}):
            rep.err(path, f"unexpected top-level key {k!r}")
        questions = data.get("questions")
        if not isinstance(questions, list):
            rep.err(path, "missing [[questions]] array")
            continue
        cat_counter: Counter = Counter()
        id_re = re.compile(rf"^{re.escape(domain)}-\d{{3}}$")
        resume_q = 0
        for i, q in enumerate(questions):
            qid = q.get("id", f"#{i + 1}") if isinstance(q, dict) else f"#{i + 1}"
            where = f"question {qid}"
            if not isinstance(q, dict):
                rep.err(path, f"{where}: not a table")
                continue
            for k in sorted(QUESTION_KEYS - set(q)):
                rep.err(path, f"{where}: missing key {k!r}")
            for k in sorted(set(q) - QUESTION_KEYS):
                rep.err(path, f"{where}: unexpected key {k!r}")

            # id
            if isinstance(q.get("id"), str):
                if not id_re.match(q["id"]):
                    rep.err(path, f"{where}: id must look like '{domain}-NNN'")
                if q["id"] in seen_ids:
                    rep.err(path, f"{where}: duplicate id (also in {seen_ids[q['id']].name})")
                else:
                    seen_ids[q["id"]] = path
            elif "id" in q:
                rep.err(path, f"{where}: id must be a string")

            # enums
            cat = q.get("category")
            if cat not in CATEGORIES:
                rep.err(path, f"{where}: invalid category {cat!r}")
            else:
                cat_counter[cat] += 1
            diff = q.get("difficulty")
            if diff not in DIFFICULTIES:
                rep.err(path, f"{where}: invalid difficulty {diff!r}")
            elif cat in REQUIRED_DIFFICULTY and diff != REQUIRED_DIFFICULTY[cat]:
                rep.err(path, f"{where}: category {cat} requires difficulty {REQUIRED_DIFFICULTY[cat]!r}, got {diff!r}")

            # tags
            tags = q.get("tags")
            if not isinstance(tags, list) or not tags or not all(isinstance(t, str) and t for t in tags):
                rep.err(path, f"{where}: tags must be a non-empty list of non-empty strings")
            else:
                for t in tags:
                    if not re.fullmatch(r"[a-z0-9][a-z0-9+#.-]*", t):
                        rep.err(path, f"{where}: tag {t!r} should be lowercase kebab-case")
                if len(set(tags)) != len(tags):
                    rep.err(path, f"{where}: duplicate tags")

            used: set[str] = set()
            # text
            text = q.get("text")
            if not isinstance(text, str):
                rep.err(path, f"{where}: text must be a string")
            else:
                used |= check_text(rep, path, f"{where} text", text, QUESTION_PLACEHOLDERS)
                if len(text) < 25:
                    rep.err(path, f"{where}: text suspiciously short")
                key = norm(text)
                if key in seen_texts:
                    other_path, other_id = seen_texts[key]
                    rep.err(path, f"{where}: duplicate question text (same as {other_id} in {other_path.name})")
                else:
                    seen_texts[key] = (path, str(qid))

            # rubric
            rubric = q.get("rubric")
            if not isinstance(rubric, list) or not all(isinstance(r, str) for r in rubric):
                rep.err(path, f"{where}: rubric must be a list of strings")
            else:
                if not 3 <= len(rubric) <= 6:
                    rep.err(path, f"{where}: rubric has {len(rubric)} points, expected 3-6")
                for j, r in enumerate(rubric):
                    check_text(rep, path, f"{where} rubric[{j}]", r, set())
                    if len(r.split()) < 3:
                        rep.err(path, f"{where} rubric[{j}]: too vague ({r!r})")
                if len({norm(r) for r in rubric}) != len(rubric):
                    rep.err(path, f"{where}: duplicate rubric points")

            # follow-ups
            fus = q.get("follow_ups")
            if not isinstance(fus, list) or not all(isinstance(f, str) for f in fus):
                rep.err(path, f"{where}: follow_ups must be a list of strings")
            else:
                if not 1 <= len(fus) <= 2:
                    rep.err(path, f"{where}: follow_ups has {len(fus)} entries, expected 1-2")
                for j, f in enumerate(fus):
                    used |= check_text(rep, path, f"{where} follow_ups[{j}]", f, QUESTION_PLACEHOLDERS)
                    if not f.rstrip().endswith("?") and not f.rstrip().endswith("."):
                        rep.err(path, f"{where} follow_ups[{j}]: should end with '?' or '.'")

            # scoring guide
            n_rubric = len(rubric) if isinstance(rubric, list) else 0
            for key in ("say", "concepts"):
                vals = q.get(key)
                if vals is None:
                    rep.err(path, f"{where}: missing {key!r} (one per rubric point)")
                    continue
                if not isinstance(vals, list) or not all(isinstance(v, str) for v in vals):
                    rep.err(path, f"{where}: {key} must be a list of strings")
                    continue
                if len(vals) != n_rubric:
                    rep.err(path, f"{where}: {key} has {len(vals)} entries, the rubric {n_rubric}")
                for j, v in enumerate(vals):
                    check_text(rep, path, f"{where} {key}[{j}]", v, set())
                    if key == "say":
                        words = set(re.findall(r"[a-z']+", v.lower()))
                        if words & THIRD_PERSON:
                            rep.err(path, f"{where} say[{j}]: third person about the candidate ({sorted(words & THIRD_PERSON)})")
            fups = q.get("follow_up_points")
            if not isinstance(fups, list) or not fups:
                rep.err(path, f"{where}: missing follow_up_points (expected points of the first follow-up)")
            else:
                for j, fp in enumerate(fups):
                    if not isinstance(fp, dict) or set(fp) != {"say", "concepts"}:
                        rep.err(path, f"{where} follow_up_points[{j}]: needs exactly say and concepts")
                        continue
                    check_text(rep, path, f"{where} follow_up_points[{j}].say", fp["say"], set())
                    check_text(rep, path, f"{where} follow_up_points[{j}].concepts", fp["concepts"], set())

            if used & RESUME_PLACEHOLDERS:
                resume_q += 1

        counts[domain] = cat_counter
        resume_counts[domain] = resume_q
        total_domain = sum(cat_counter.values())
        if len(questions) < MIN_PER_DOMAIN:
            rep.err(path, f"only {len(questions)} questions, need at least {MIN_PER_DOMAIN}")
        mins = MIN_PER_CATEGORY_BEHAVIORAL_DOMAIN if domain == "behavioral" else MIN_PER_CATEGORY
        for cat, need in mins.items():
            if cat_counter[cat] < need:
                rep.err(path, f"category {cat}: {cat_counter[cat]} questions, need at least {need}")
        if total_domain:
            share = resume_q / total_domain
            lo, hi = RESUME_SHARE_RANGE
            if not lo <= share <= hi:
                rep.err(path, f"{resume_q}/{total_domain} ({share:.0%}) questions use {{technology}}/{{project_name}}, expected {lo:.0%}-{hi:.0%}")

    total = sum(sum(c.values()) for c in counts.values())
    if total < MIN_TOTAL:
        rep.err(pool_dir, f"only {total} questions in total, need at least {MIN_TOTAL}")
    if total:
        share = sum(resume_counts.values()) / total
        lo, hi = RESUME_SHARE_TOTAL_RANGE
        if not lo <= share <= hi:
            rep.err(pool_dir, f"overall resume-placeholder share {share:.0%}, expected {lo:.0%}-{hi:.0%}")
    counts["_resume"] = Counter(resume_counts)
    return counts


def validate_templates(rep: Report, tpl_dir: Path) -> dict[str, dict[str, int]]:
    summary: dict[str, dict[str, int]] = {}
    for fname, spec in TEMPLATE_SPEC.items():
        path = tpl_dir / fname
        if not path.exists():
            rep.err(path, "missing template file")
            continue
        data = load(rep, path)
        if data is None:
            continue
        summary[fname] = {}
        for k in sorted(set(data) - set(spec)):
            rep.err(path, f"unexpected key {k!r}")
        for key, (required, allowed) in spec.items():
            variants = data.get(key)
            if not isinstance(variants, list) or not all(isinstance(v, str) for v in variants):
                rep.err(path, f"key {key!r} missing or not an array of strings")
                continue
            summary[fname][key] = len(variants)
            need = MIN_NOTE_VARIANTS if key.startswith("note_") else MIN_VARIANTS
            if len(variants) < need:
                rep.err(path, f"key {key!r}: {len(variants)} variants, need at least {need}")
            if len({norm(v) for v in variants}) != len(variants):
                rep.err(path, f"key {key!r}: duplicate variants")
            for j, v in enumerate(variants):
                where = f"{key}[{j}]"
                found = check_text(rep, path, where, v, allowed)
                for p in sorted(required - found):
                    rep.err(path, f"{where}: missing required placeholder {{{p}}}")
                if fname == "greetings.toml" and "?" in v:
                    rep.err(path, f"{where}: greeting must not contain a question")
                if fname == "closings.toml" and key == "closing":
                    low = v.lower()
                    if "report" not in low or "feedback" not in low:
                        rep.err(path, f"{where}: closing must say a report with feedback is ready")
                if fname == "transitions.toml" and len(v) > MAX_TRANSITION_LEN:
                    rep.err(path, f"{where}: transition longer than {MAX_TRANSITION_LEN} chars")
                if fname == "acknowledgements.toml":
                    # A reaction may come right before the closing: it never announces what follows.
                    for phrase in ("move on", "moving on", "keep going", "next question", "on to the next"):
                        if phrase in v.lower():
                            rep.err(path, f"{where}: a reaction must not announce what comes next ({phrase!r})")
                    if len(v) > MAX_ACK_LEN:
                        rep.err(path, f"{where}: acknowledgement longer than {MAX_ACK_LEN} chars")
                    if re.search(r"\d", v) or re.search(r"\bscore", v, re.I):
                        rep.err(path, f"{where}: acknowledgements must not mention a score")
                if fname in ("feedback.toml", "acknowledgements.toml", "transitions.toml"):
                    sentences = len(re.findall(r"[.!?](\s|$)", v))
                    if sentences > 3:
                        rep.err(path, f"{where}: too long ({sentences} sentences)")
    return summary


def main() -> int:
    root = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent
    rep = Report(root)
    counts = validate_pool(rep, root / "question_pool")
    tpl = validate_templates(rep, root / "templates")

    if rep.errors:
        for e in rep.errors:
            print(e)
        print(f"\n{len(rep.errors)} problem(s) found", file=sys.stderr)
        return 1

    resume = counts.pop("_resume")
    short = {
        "introduction": "intro",
        "technical_easy": "easy",
        "technical_medium": "medium",
        "technical_hard": "hard",
        "behavioral": "behav",
        "project": "project",
    }
    header = f"{'domain':<20}" + "".join(f"{short[c]:>9}" for c in CATEGORIES) + f"{'total':>8}{'resume':>8}"
    print(header)
    print("-" * len(header))
    col_tot: Counter = Counter()
    for d in DOMAINS:
        c = counts.get(d, Counter())
        col_tot.update(c)
        tot = sum(c.values())
        print(f"{d:<20}" + "".join(f"{c[cat]:>9}" for cat in CATEGORIES) + f"{tot:>8}{resume[d]:>8}")
    print("-" * len(header))
    grand = sum(col_tot.values())
    print(f"{'TOTAL':<20}" + "".join(f"{col_tot[cat]:>9}" for cat in CATEGORIES) + f"{grand:>8}{sum(resume.values()):>8}")
    print()
    print("templates:")
    for fname, keys in tpl.items():
        print(f"  {fname:<24}" + ", ".join(f"{k}={n}" for k, n in keys.items()))
    print("\nOK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
