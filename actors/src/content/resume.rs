//! The offline resume extractor: skills from a lexicon of technologies, project names, years of
//! experience, seniority and suggested interview topics, without an LLM. Prefers precision to recall.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::stable_hash;

/// What a resume says, as used to personalise questions (`{technology}`, `{project_name}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeAnalysis {
    /// Technologies, canonical display names ("PostgreSQL"), most mentioned first (offline: tools
    /// before broad practices such as "Agile").
    pub skills: Vec<String>,
    /// Short project names.
    pub projects: Vec<String>,
    /// `junior` | `mid` | `senior` | `lead`.
    pub seniority: String,
    /// Years of professional experience, when stated or derivable from date ranges.
    pub years_experience: Option<f32>,
    /// Interview topics for the top skills (at most 6).
    pub suggested_topics: Vec<String>,
}

/// The current year, for "2019 - present".
const PRESENT_YEAR: i32 = 2026;
/// Most skills and projects kept.
const MAX_SKILLS: usize = 30;
const MAX_PROJECTS: usize = 8;
const MAX_TOPICS: usize = 6;

/// Lowercases, collapses whitespace and trims.
pub fn normalize(text: &str) -> String {
    text.split_whitespace()
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The cache key of a resume: hex of [`stable_hash`] over [`normalize`]d text.
pub fn resume_hash(text: &str) -> String {
    format!("{:016x}", stable_hash(&[&normalize(text)]))
}

/// How an alias must appear to count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Match {
    /// Any case.
    Any,
    /// Exactly as written in the lexicon (for words that are also English: "React", "Spark").
    Case,
    /// Exactly as written and in a skills-like context (a skills line, or next to other skills):
    /// single letters and "Go".
    Context,
}

/// One technology: canonical name, aliases (lowercase token sequences, space-separated, unless
/// `Case`/`Context`), how aliases match, and the interview topic it suggests.
struct Skill {
    name: &'static str,
    aliases: &'static [&'static str],
    how: Match,
    topic: &'static str,
}

const fn s(
    name: &'static str,
    aliases: &'static [&'static str],
    how: Match,
    topic: &'static str,
) -> Skill {
    Skill {
        name,
        aliases,
        how,
        topic,
    }
}

use Match::{Any, Case, Context};

/// The skills lexicon (one entry per line, hence no rustfmt). Aliases are token sequences: the
/// resume is split into tokens of letters, digits and `+ # .` (so "C++", "C#", "Node.js", ".NET"
/// stay whole); hyphens and slashes split. An alias with capitals must match exactly (`Case`,
/// `Context`); lowercase aliases match in any case.
#[rustfmt::skip]
static LEXICON: &[Skill] = &[
    // Languages.
    s("Python", &["python", "python3"], Any, "Python internals, concurrency and the GIL"),
    s("Java", &["java"], Any, "JVM memory management and garbage collection"),
    s("JavaScript", &["javascript", "js", "ecmascript", "es6"], Any, "JavaScript event loop and async patterns"),
    s("TypeScript", &["typescript"], Any, "TypeScript type system and API typing"),
    s("Go", &["golang", "Go"], Context, "Go concurrency with goroutines and channels"),
    s("Rust", &["Rust"], Case, "Rust ownership, borrowing and async"),
    s("C++", &["c++", "cpp"], Any, "C++ memory management and performance"),
    s("C#", &["c#", "csharp"], Any, "C# and .NET runtime fundamentals"),
    s("C", &["C"], Context, "C memory management and pointers"),
    s("Ruby", &["ruby"], Any, "Ruby object model and metaprogramming"),
    s("PHP", &["php"], Any, "PHP application architecture"),
    s("Kotlin", &["kotlin"], Any, "Kotlin coroutines and null safety"),
    s("Swift", &["Swift"], Case, "Swift memory management and concurrency"),
    s("Objective-C", &["objective c", "objc"], Any, "Objective-C runtime and memory management"),
    s("Scala", &["scala"], Any, "functional programming in Scala"),
    s("Elixir", &["elixir"], Any, "Elixir processes and OTP supervision"),
    s("Erlang", &["erlang"], Any, "Erlang OTP and fault tolerance"),
    s("Haskell", &["haskell"], Any, "functional programming and type systems"),
    s("Clojure", &["clojure"], Any, "functional programming and immutable data"),
    s("Dart", &["Dart"], Case, "Dart and Flutter app architecture"),
    s("R", &["R"], Context, "statistical modeling in R"),
    s("MATLAB", &["matlab"], Any, "numerical computing and modeling"),
    s("Perl", &["perl"], Any, "scripting and text processing"),
    s("Bash", &["bash", "shell scripting"], Any, "shell scripting and Unix tooling"),
    s("PowerShell", &["powershell"], Any, "automation with PowerShell"),
    s("SQL", &["sql", "t sql", "pl sql"], Any, "SQL query writing and optimization"),
    s("HTML", &["html", "html5"], Any, "semantic HTML and accessibility"),
    s("CSS", &["css", "css3"], Any, "CSS layout and responsive design"),
    s("Sass", &["sass", "scss"], Any, "CSS architecture and maintainable styles"),
    s("Solidity", &["solidity"], Any, "smart contract security"),
    // Backend frameworks and runtimes.
    s("Node.js", &["node.js", "nodejs", "node js"], Any, "Node.js event loop and backpressure"),
    s("Express", &["express.js", "expressjs", "Express"], Case, "REST API design with Express"),
    s("NestJS", &["nestjs", "nest.js"], Any, "modular backend architecture with NestJS"),
    s("Django", &["django"], Any, "Django ORM performance and query optimization"),
    s("Flask", &["flask"], Any, "designing REST APIs with Flask"),
    s("FastAPI", &["fastapi"], Any, "async API design with FastAPI"),
    s("Spring Boot", &["spring boot", "springboot", "spring framework", "spring mvc", ], Any, "Spring Boot services and dependency injection"),
    s("Ruby on Rails", &["rails", "ruby on rails", "ror"], Any, "Rails ActiveRecord and N+1 queries"),
    s("Laravel", &["laravel"], Any, "Laravel application architecture"),
    s(".NET", &[".net", "dotnet", "asp.net", ".net core", "asp.net core"], Any, ".NET web services and async/await"),
    s("gRPC", &["grpc"], Any, "gRPC and protobuf API design"),
    s("GraphQL", &["graphql"], Any, "GraphQL schema design and N+1 queries"),
    s("REST APIs", &["REST", "RESTful", "restful"], Case, "REST API design, versioning and idempotency"),
    s("Microservices", &["microservices", "microservice"], Any, "microservice boundaries and inter-service communication"),
    s("Celery", &["celery"], Any, "background job processing and retries"),
    s("Nginx", &["nginx"], Any, "reverse proxies and load balancing"),
    // Datastores.
    s("PostgreSQL", &["postgresql", "postgres", "psql"], Any, "database indexing and query planning"),
    s("MySQL", &["mysql"], Any, "database indexing and replication"),
    s("SQLite", &["sqlite"], Any, "embedded databases and transactions"),
    s("MongoDB", &["mongodb", "mongo"], Any, "document modeling and MongoDB indexing"),
    s("Redis", &["redis"], Any, "caching strategies and cache invalidation"),
    s("Memcached", &["memcached"], Any, "caching strategies and cache invalidation"),
    s("Cassandra", &["cassandra"], Any, "wide-column data modeling and consistency levels"),
    s("DynamoDB", &["dynamodb", "dynamo db"], Any, "DynamoDB key design and access patterns"),
    s("Elasticsearch", &["elasticsearch", "elastic search", "opensearch"], Any, "search indexing and relevance tuning"),
    s("Oracle Database", &["oracle db", "oracle database"], Any, "relational database tuning"),
    s("SQL Server", &["sql server", "mssql"], Any, "relational database tuning"),
    s("Neo4j", &["neo4j"], Any, "graph data modeling"),
    s("NoSQL", &["nosql"], Any, "choosing between SQL and NoSQL datastores"),
    // Messaging and streaming.
    s("Kafka", &["kafka", "apache kafka"], Any, "event streaming, partitions and consumer groups"),
    s("RabbitMQ", &["rabbitmq"], Any, "message queues, acknowledgements and retries"),
    s("Amazon SQS", &["sqs"], Any, "message queues, acknowledgements and retries"),
    s("Apache Flink", &["flink"], Any, "stream processing and windowing"),
    // Frontend.
    s("React", &["React", "react.js", "reactjs", "react js"], Case, "React rendering, state management and hooks"),
    s("Redux", &["redux"], Any, "state management patterns"),
    s("Next.js", &["next.js", "nextjs"], Any, "server-side rendering and hydration"),
    s("Angular", &["angular", "angularjs"], Any, "Angular change detection and RxJS"),
    s("Vue.js", &["vue", "vue.js", "vuejs"], Any, "Vue reactivity and component design"),
    s("Nuxt", &["nuxt", "nuxt.js"], Any, "server-side rendering and hydration"),
    s("Svelte", &["svelte", "sveltekit"], Any, "reactive UI frameworks and compilation"),
    s("jQuery", &["jquery"], Any, "DOM manipulation and legacy frontend migration"),
    s("Tailwind CSS", &["tailwind", "tailwindcss"], Any, "CSS architecture and design systems"),
    s("Bootstrap", &["Bootstrap"], Case, "responsive layouts"),
    s("Webpack", &["webpack"], Any, "bundling, code splitting and build performance"),
    s("Vite", &["vite"], Any, "frontend build tooling and bundling"),
    s("Storybook", &["storybook"], Any, "component libraries and design systems"),
    s("Jest", &["jest"], Any, "unit testing strategy and mocking"),
    s("Cypress", &["cypress"], Any, "end-to-end testing strategy"),
    s("Playwright", &["playwright"], Any, "end-to-end testing strategy"),
    s("Selenium", &["selenium"], Any, "browser test automation"),
    s("RxJS", &["rxjs"], Any, "reactive streams and async UI state"),
    s("Three.js", &["three.js", "threejs"], Any, "3D rendering performance in the browser"),
    s("D3.js", &["d3", "d3.js"], Any, "data visualization in the browser"),
    s("WebSockets", &["websocket", "websockets"], Any, "real-time communication and connection management"),
    s("Figma", &["figma"], Any, "design handoff and collaboration with design"),
    // Mobile.
    s("iOS", &["ios"], Any, "iOS app lifecycle and performance"),
    s("Android", &["android"], Any, "Android lifecycle and background work"),
    s("SwiftUI", &["swiftui"], Any, "declarative UI and state in SwiftUI"),
    s("UIKit", &["uikit"], Any, "UIKit view lifecycle and layout"),
    s("Jetpack Compose", &["jetpack compose", "compose ui"], Any, "declarative UI and state in Jetpack Compose"),
    s("React Native", &["react native"], Any, "React Native bridge and performance"),
    s("Flutter", &["flutter"], Any, "Flutter widget tree and state management"),
    s("Xcode", &["xcode"], Any, "iOS build and release tooling"),
    s("Firebase", &["firebase"], Any, "mobile backends and offline sync"),
    // Cloud, infrastructure and DevOps.
    s("AWS", &["aws", "amazon web services"], Any, "designing for AWS: availability zones, IAM and cost"),
    s("Google Cloud", &["gcp", "google cloud", "google cloud platform"], Any, "cloud architecture on Google Cloud"),
    s("Azure", &["azure", "microsoft azure"], Any, "cloud architecture on Azure"),
    s("AWS Lambda", &["aws lambda", "Lambda"], Case, "serverless design and cold starts"),
    s("Amazon EC2", &["ec2"], Any, "compute sizing and autoscaling"),
    s("Amazon S3", &["s3"], Any, "object storage design and consistency"),
    s("CloudFormation", &["cloudformation"], Any, "infrastructure as code"),
    s("Docker", &["docker", "dockerfile", "docker compose"], Any, "containerization and image optimization"),
    s("Kubernetes", &["kubernetes", "k8s", "eks", "gke", "aks"], Any, "Kubernetes scheduling, deployments and scaling"),
    s("Helm", &["Helm"], Case, "Kubernetes packaging and release management"),
    s("Terraform", &["terraform"], Any, "infrastructure as code and state management"),
    s("Pulumi", &["pulumi"], Any, "infrastructure as code"),
    s("Ansible", &["ansible"], Any, "configuration management and idempotent automation"),
    s("Jenkins", &["jenkins"], Any, "CI/CD pipeline design"),
    s("GitHub Actions", &["github actions"], Any, "CI/CD pipeline design"),
    s("GitLab CI", &["gitlab ci", "gitlab ci cd"], Any, "CI/CD pipeline design"),
    s("CircleCI", &["circleci"], Any, "CI/CD pipeline design"),
    s("Argo CD", &["argocd", "argo cd"], Any, "GitOps and progressive delivery"),
    s("CI/CD", &["ci cd", "continuous integration", "continuous delivery", "continuous deployment", ], Any, "CI/CD pipeline design and safe deployments"),
    s("Prometheus", &["prometheus"], Any, "metrics, alerting and SLOs"),
    s("Grafana", &["grafana"], Any, "observability dashboards and alerting"),
    s("Datadog", &["datadog"], Any, "observability and alerting"),
    s("OpenTelemetry", &["opentelemetry", "otel"], Any, "distributed tracing"),
    s("Splunk", &["splunk"], Any, "log analysis and incident investigation"),
    s("ELK Stack", &["elk", "kibana", "logstash"], Any, "centralized logging"),
    s("Istio", &["istio"], Any, "service mesh and traffic management"),
    s("Linux", &["linux", "ubuntu", "debian", "centos", "rhel"], Any, "Linux internals and troubleshooting"),
    s("Git", &["git"], Any, "version control workflows"),
    s("Vault", &["hashicorp vault"], Any, "secrets management"),
    s("Serverless", &["serverless"], Any, "serverless design and cold starts"),
    // Data and ML.
    s("Apache Spark", &["Spark", "pyspark", "apache spark"], Case, "distributed data processing with Spark"),
    s("Hadoop", &["hadoop", "hdfs", "mapreduce"], Any, "distributed batch processing"),
    s("Airflow", &["airflow", "apache airflow"], Any, "data pipeline orchestration and backfills"),
    s("dbt", &["dbt"], Any, "data modeling and transformation testing"),
    s("Snowflake", &["Snowflake"], Case, "data warehouse design and cost control"),
    s("BigQuery", &["bigquery"], Any, "data warehouse design and query cost"),
    s("Redshift", &["redshift"], Any, "data warehouse design and distribution keys"),
    s("Databricks", &["databricks"], Any, "lakehouse architecture"),
    s("Pandas", &["pandas"], Any, "data wrangling with pandas"),
    s("NumPy", &["numpy"], Any, "vectorized numerical computing"),
    s("SciPy", &["scipy"], Any, "scientific computing"),
    s("scikit-learn", &["scikit learn", "sklearn"], Any, "model selection and evaluation"),
    s("TensorFlow", &["tensorflow"], Any, "training and serving deep learning models"),
    s("PyTorch", &["pytorch"], Any, "training and serving deep learning models"),
    s("Keras", &["keras"], Any, "deep learning model design"),
    s("XGBoost", &["xgboost", "lightgbm"], Any, "gradient boosting and feature engineering"),
    s("MLflow", &["mlflow"], Any, "ML experiment tracking and model lifecycle"),
    s("Kubeflow", &["kubeflow"], Any, "ML pipelines on Kubernetes"),
    s("Hugging Face", &["hugging face", "huggingface", "transformers library"], Any, "transformer models and fine-tuning"),
    s("LangChain", &["langchain"], Any, "LLM application design and evaluation"),
    s("LLMs", &["llm", "llms", "large language models", "gpt"], Any, "LLM application design, evaluation and cost"),
    s("OpenCV", &["opencv"], Any, "computer vision pipelines"),
    s("Machine Learning", &["machine learning"], Any, "model evaluation, overfitting and data leakage"),
    s("Deep Learning", &["deep learning"], Any, "neural network training and regularization"),
    s("NLP", &["nlp", "natural language processing"], Any, "NLP models and text preprocessing"),
    s("Computer Vision", &["computer vision"], Any, "computer vision models and data augmentation"),
    s("Jupyter", &["jupyter"], Any, "reproducible analysis"),
    s("Tableau", &["tableau"], Any, "dashboard design and data storytelling"),
    s("Power BI", &["power bi", "powerbi"], Any, "dashboard design and data storytelling"),
    s("Looker", &["looker"], Any, "semantic data modeling and dashboards"),
    s("Excel", &["Excel"], Case, "spreadsheet modeling and analysis"),
    s("A/B Testing", &["a b testing", "ab testing", "a b tests", "experimentation"], Any, "experiment design and statistical significance"),
    s("Statistics", &["statistics", "statistical modeling"], Any, "statistical inference and hypothesis testing"),
    // Product and process.
    s("Jira", &["jira"], Any, "planning and tracking delivery"),
    s("Confluence", &["confluence"], Any, "written communication and documentation"),
    s("Agile", &["agile"], Any, "agile delivery and iteration planning"),
    s("Scrum", &["scrum"], Any, "agile delivery and iteration planning"),
    s("Kanban", &["kanban"], Any, "flow-based delivery"),
    s("OKRs", &["okr", "okrs"], Any, "goal setting and measuring outcomes"),
    s("Amplitude", &["Amplitude"], Case, "product analytics and funnels"),
    s("Mixpanel", &["mixpanel"], Any, "product analytics and funnels"),
    s("Google Analytics", &["google analytics"], Any, "product analytics and funnels"),
    s("Product Roadmapping", &["roadmap", "roadmaps", "roadmapping"], Any, "roadmap prioritization and tradeoffs"),
    s("User Research", &["user research", "user interviews", "usability testing"], Any, "user research and discovery"),
    // Practices and concepts.
    s("Distributed Systems", &["distributed systems"], Any, "consistency, partitioning and failure handling"),
    s("System Design", &["system design"], Any, "scalable system design tradeoffs"),
    s("TDD", &["tdd", "test driven development"], Any, "test strategy and test-driven development"),
    s("OAuth", &["oauth", "oauth2", "openid connect", "oidc"], Any, "authentication and authorization flows"),
    s("Security", &["owasp", "application security"], Any, "application security and threat modeling"),
];

/// Lexicon entries that are practices or fields rather than tools; listed after tools in `skills`.
const CONCEPTS: [&str; 22] = [
    "REST APIs",
    "Microservices",
    "CI/CD",
    "Serverless",
    "NoSQL",
    "Machine Learning",
    "Deep Learning",
    "NLP",
    "Computer Vision",
    "LLMs",
    "A/B Testing",
    "Statistics",
    "Agile",
    "Scrum",
    "Kanban",
    "OKRs",
    "Product Roadmapping",
    "User Research",
    "Distributed Systems",
    "System Design",
    "TDD",
    "Security",
];

/// Words that make a line "skills-like" (for context-only aliases).
const SKILL_LINE_WORDS: [&str; 9] = [
    "skills",
    "languages",
    "technologies",
    "stack",
    "tools",
    "tech",
    "proficient",
    "programming",
    "frameworks",
];

/// Section headings the extractor recognises (normalised: lowercase, letters and spaces).
const SECTION_HEADINGS: [&str; 32] = [
    "summary",
    "profile",
    "about",
    "about me",
    "objective",
    "experience",
    "work experience",
    "professional experience",
    "employment",
    "employment history",
    "work history",
    "career history",
    "education",
    "skills",
    "technical skills",
    "core skills",
    "skills and tools",
    "certifications",
    "certificates",
    "awards",
    "publications",
    "interests",
    "languages",
    "references",
    "volunteering",
    "volunteer experience",
    "achievements",
    "leadership",
    "courses",
    "training",
    "contact",
    "activities",
];

const PROJECT_HEADINGS: [&str; 9] = [
    "projects",
    "personal projects",
    "selected projects",
    "side projects",
    "key projects",
    "notable projects",
    "open source",
    "open source projects",
    "academic projects",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Projects,
    Education,
    Other,
}

/// A token of a line: lowercased text and text as written.
struct Tok<'a> {
    lower: String,
    raw: &'a str,
}

fn tokenize(line: &str) -> Vec<Tok<'_>> {
    let is_tok = |c: char| c.is_alphanumeric() || c == '+' || c == '#' || c == '.';
    let mut spans: Vec<(usize, usize)> = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in line.char_indices() {
        if is_tok(c) {
            if start.is_none() {
                start = Some(i);
            }
        } else if let Some(s) = start.take() {
            spans.push((s, i));
        }
    }
    if let Some(s) = start {
        spans.push((s, line.len()));
    }
    let mut out = Vec::with_capacity(spans.len());
    for (s, e) in spans {
        // Trailing dots end sentences; a leading dot only survives in ".net".
        let mut raw = line[s..e].trim_end_matches('.');
        if raw.starts_with('.') && !raw.to_lowercase().starts_with(".net") {
            raw = raw.trim_start_matches('.');
        }
        if raw.is_empty() || !raw.chars().any(char::is_alphanumeric) {
            continue;
        }
        out.push(Tok {
            lower: raw.to_lowercase(),
            raw,
        });
    }
    out
}

fn heading_of(line: &str) -> Option<Section> {
    let t = line.trim().trim_start_matches(['#', '*', '=', '-', ' ']);
    let t = t.trim_end_matches([':', '*', '=', '-', ' ']);
    if t.is_empty() || t.len() > 40 {
        return None;
    }
    let norm: String = t
        .to_lowercase()
        .chars()
        .map(|c| if c.is_alphabetic() { c } else { ' ' })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if PROJECT_HEADINGS.contains(&norm.as_str()) {
        return Some(Section::Projects);
    }
    if norm == "education" || norm == "academic background" {
        return Some(Section::Education);
    }
    if SECTION_HEADINGS.contains(&norm.as_str()) {
        return Some(Section::Other);
    }
    None
}

/// Extracts what it can from a resume without an LLM. Never panics; garbage gives empty lists,
/// seniority `mid` (unknown) and no years.
pub fn analyze_offline(text: &str) -> ResumeAnalysis {
    // Bound the work on absurd inputs.
    let text = truncate_chars(text, 60_000);
    let mut counts: HashMap<usize, (usize, usize)> = HashMap::new(); // lexicon index → (count, first position)
    let mut position = 0usize;
    let mut projects: Vec<String> = Vec::new();
    let mut section = Section::None;
    let mut ranges: Vec<(i32, i32)> = Vec::new();
    let mut stated_years: Option<f32> = None;
    let mut title_level = 0u8; // 0 none, 1 junior, 3 senior, 4 lead

    for line in text.lines() {
        if let Some(sec) = heading_of(line) {
            section = sec;
            continue;
        }
        let toks = tokenize(line);
        if toks.is_empty() {
            continue;
        }
        // Skills.
        let skills_line = {
            let head: String = line.split(':').next().unwrap_or("").to_lowercase();
            let head_has = line.contains(':') && SKILL_LINE_WORDS.iter().any(|w| head.contains(w));
            head_has || (section == Section::Other && line_is_list(line))
        };
        let found = match_skills(&toks, skills_line);
        for idx in found {
            let e = counts.entry(idx).or_insert((0, position));
            e.0 += 1;
            position += 1;
        }
        // Projects.
        if section == Section::Projects {
            if let Some(p) = project_from_heading_line(line) {
                push_project(&mut projects, p);
            }
        }
        for p in projects_from_phrases(line) {
            push_project(&mut projects, p);
        }
        // Years.
        if let Some(y) = stated_years_in(line) {
            stated_years = Some(stated_years.map_or(y, |s: f32| s.max(y)));
        }
        if section != Section::Education {
            ranges.extend(date_ranges(line));
        }
        title_level = title_level.max(title_level_of(&toks));
    }

    let mut ranked: Vec<(usize, (usize, usize))> = counts.into_iter().collect();
    ranked.sort_by(|a, b| b.1 .0.cmp(&a.1 .0).then(a.1 .1.cmp(&b.1 .1)));
    // Concrete tools first (they fill "{technology}"), broad practices after them.
    let mut by_kind: Vec<&Skill> = ranked.iter().filter_map(|(i, _)| LEXICON.get(*i)).collect();
    by_kind.sort_by_key(|s| CONCEPTS.contains(&s.name));
    let skills: Vec<String> = by_kind
        .iter()
        .map(|s| s.name.to_string())
        .take(MAX_SKILLS)
        .collect();
    let mut suggested_topics: Vec<String> = Vec::new();
    for (i, _) in &ranked {
        if let Some(sk) = LEXICON.get(*i) {
            if !suggested_topics.iter().any(|t| t == sk.topic) {
                suggested_topics.push(sk.topic.to_string());
            }
        }
        if suggested_topics.len() >= MAX_TOPICS {
            break;
        }
    }

    let years_experience = stated_years.or_else(|| years_from_ranges(&ranges));
    let years_level = years_experience.map(|y| {
        if y < 2.0 {
            1
        } else if y < 5.0 {
            2
        } else if y < 9.0 {
            3
        } else {
            4
        }
    });
    let level = match (years_level, title_level) {
        (Some(y), t) => y.max(t),
        (None, 0) => 2,
        (None, t) => t,
    };
    let seniority = match level {
        0 | 1 => "junior",
        2 => "mid",
        3 => "senior",
        _ => "lead",
    }
    .to_string();

    projects.truncate(MAX_PROJECTS);
    ResumeAnalysis {
        skills,
        projects,
        seniority,
        years_experience,
        suggested_topics,
    }
}

fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A comma/pipe/bullet-separated list line.
fn line_is_list(line: &str) -> bool {
    line.matches([',', '|', '\u{2022}', '/']).count() >= 2
}

/// Lexicon indexes found in a line (each at most once per line), in the order they appear.
fn match_skills(toks: &[Tok<'_>], skills_line: bool) -> Vec<usize> {
    let mut found: Vec<(usize, usize)> = Vec::new(); // (token position, lexicon index)
    let mut others = 0usize;
    let mut context_hits: Vec<(usize, usize)> = Vec::new(); // (lexicon idx, token idx)
    for (li, skill) in LEXICON.iter().enumerate() {
        for alias in skill.aliases {
            let parts: Vec<&str> = alias.split(' ').collect();
            let n = parts.len();
            if n == 0 || n > toks.len() {
                continue;
            }
            let mut hit: Option<usize> = None;
            for start in 0..=toks.len() - n {
                let window = &toks[start..start + n];
                let ok = match skill.how {
                    Any => window.iter().zip(&parts).all(|(t, p)| t.lower == *p),
                    // Case-sensitive aliases are written as they must appear; lowercase aliases of a
                    // case-sensitive skill (e.g. "react.js") match in any case.
                    Case | Context => window.iter().zip(&parts).all(|(t, p)| {
                        if p.chars().any(|c| c.is_uppercase()) {
                            t.raw == *p
                        } else {
                            t.lower == *p
                        }
                    }),
                };
                if ok {
                    hit = Some(start);
                    break;
                }
            }
            if let Some(at) = hit {
                let needs_context = skill.how == Context && alias.chars().any(|c| c.is_uppercase());
                if needs_context {
                    context_hits.push((li, at));
                } else if !found.iter().any(|(_, l)| *l == li) {
                    found.push((at, li));
                    others += 1;
                }
                break;
            }
        }
    }
    for (li, at) in context_hits {
        if found.iter().any(|(_, l)| *l == li) {
            continue;
        }
        // In a skills line, or written next to a preposition/conjunction on a line that names at
        // least one other skill ("services in Go and Python").
        let prev = at
            .checked_sub(1)
            .and_then(|i| toks.get(i))
            .map(|t| t.lower.as_str());
        let near = matches!(prev, Some("in" | "with" | "using" | "and" | "or"));
        if skills_line || (others >= 1 && near) {
            found.push((at, li));
        }
    }
    found.sort_unstable();
    found.into_iter().map(|(_, li)| li).collect()
}

const GENERIC_OBJECTS: [&str; 22] = [
    "it",
    "this",
    "that",
    "them",
    "features",
    "feature",
    "solutions",
    "software",
    "tools",
    "apps",
    "applications",
    "relationships",
    "strong relationships",
    "new features",
    "a team",
    "teams",
    "processes",
    "code",
    "reports",
    "documentation",
    "tests",
    "unit tests",
];

fn push_project(projects: &mut Vec<String>, p: String) {
    let p = clean_name(&p);
    if p.is_empty() || GENERIC_OBJECTS.contains(&p.to_lowercase().as_str()) {
        return;
    }
    let key = p.to_lowercase();
    let bare = key.trim_start_matches("the ");
    if projects
        .iter()
        .any(|x| x.to_lowercase().trim_start_matches("the ") == bare)
    {
        return;
    }
    projects.push(p);
}

/// Removes characters that must not reach question text (braces, control characters), trailing
/// punctuation and extra spaces.
pub(crate) fn clean_name(s: &str) -> String {
    let s: String = s
        .chars()
        .filter(|c| !c.is_control() && *c != '{' && *c != '}' && *c != '<' && *c != '>')
        .collect();
    let s = s.split_whitespace().collect::<Vec<_>>().join(" ");
    s.trim_matches(|c: char| !c.is_alphanumeric() && c != '+' && c != '#' && c != ')')
        .to_string()
}

/// A project line under a "Projects" heading: the name before a separator ("ShopFast - ...",
/// "Weather Dashboard: ..."), or the whole line when it is short and not a description.
fn project_from_heading_line(line: &str) -> Option<String> {
    let t = line
        .trim()
        .trim_start_matches(['-', '*', '\u{2022}', '\u{2013}', '\u{25aa}', '>', ' ']);
    if t.is_empty() {
        return None;
    }
    let first = t.split_whitespace().next().unwrap_or("").to_lowercase();
    // Bullets that describe the project ("Built ...", "Used ...") are left to the phrase rule.
    if first.ends_with("ed") || first.ends_with("ing") {
        return None;
    }
    let seps = [" - ", " \u{2013} ", " \u{2014} ", ": ", " | ", " (", ", "];
    let cut = seps
        .iter()
        .filter_map(|s| t.find(s))
        .min()
        .unwrap_or(t.len());
    let name = t[..cut].trim();
    let words = name.split_whitespace().count();
    if words == 0 || words > 6 {
        return None;
    }
    // A lone lowercase word is a description fragment, not a name.
    if words == 1 && !name.chars().next().is_some_and(|c| c.is_uppercase()) {
        return None;
    }
    Some(name.to_string())
}

const PROJECT_VERBS: [&str; 9] = [
    "built",
    "created",
    "developed",
    "designed",
    "launched",
    "implemented",
    "architected",
    "shipped",
    "founded",
];

/// Words that end a "built X" phrase: prepositions, conjunctions and participles that start a
/// description of X.
const PHRASE_STOPS: [&str; 48] = [
    "using",
    "with",
    "in",
    "for",
    "that",
    "which",
    "who",
    "to",
    "on",
    "at",
    "by",
    "from",
    "into",
    "across",
    "and",
    "or",
    "as",
    "while",
    "where",
    "when",
    "so",
    "via",
    "of",
    "serving",
    "used",
    "handling",
    "processing",
    "reducing",
    "enabling",
    "allowing",
    "adopted",
    "powering",
    "supporting",
    "improving",
    "increasing",
    "cutting",
    "saving",
    "resulting",
    "leading",
    "achieving",
    "running",
    "deployed",
    "written",
    "based",
    "now",
    "than",
    "over",
    "under",
];

/// "built X", "created X", "developed X": X up to 6 words, cut at a preposition or a participle.
fn projects_from_phrases(line: &str) -> Vec<String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let w = words[i]
            .trim_matches(|c: char| !c.is_alphanumeric())
            .to_lowercase();
        if !PROJECT_VERBS.contains(&w.as_str()) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        // "built and maintained X", "designed & built X".
        if let Some(next) = words.get(j) {
            let n = next.to_lowercase();
            if (n == "and" || n == "&") && words.get(j + 1).is_some() {
                j += 2;
            }
        }
        // Skip articles and possessives.
        while let Some(next) = words.get(j) {
            let n = next.to_lowercase();
            if matches!(
                n.as_str(),
                "a" | "an" | "the" | "our" | "my" | "its" | "their"
            ) {
                j += 1;
            } else {
                break;
            }
        }
        let had_article = words.get(j.saturating_sub(1)).is_some_and(|w| {
            matches!(
                w.to_lowercase().as_str(),
                "a" | "an" | "the" | "our" | "my" | "its" | "their"
            )
        }) && j > i + 1;
        let mut name: Vec<&str> = Vec::new();
        while let Some(raw) = words.get(j) {
            let clean = raw.trim_matches(|c: char| !c.is_alphanumeric() && c != '+' && c != '#');
            let low = clean.to_lowercase();
            if clean.is_empty() || PHRASE_STOPS.contains(&low.as_str()) {
                break;
            }
            // Numbers ("3M", "40") start a description, not a name.
            if low.starts_with(|c: char| c.is_ascii_digit()) {
                break;
            }
            name.push(clean);
            j += 1;
            // Punctuation after a word ends the phrase; 6 words at most, article included.
            let max = if had_article { 5 } else { 6 };
            if raw.ends_with([',', '.', ';', ':', ')', '(']) || name.len() >= max {
                break;
            }
        }
        i = j.max(i + 1);
        if name.is_empty() {
            continue;
        }
        let capitalised = name[0].chars().next().is_some_and(|c| c.is_uppercase());
        if name.len() == 1 && !capitalised {
            continue;
        }
        // A single capitalised word that is a known technology is not a project.
        if name.len() == 1 && LEXICON.iter().any(|s| s.name.eq_ignore_ascii_case(name[0])) {
            continue;
        }
        let joined = name.join(" ");
        if GENERIC_OBJECTS.contains(&joined.to_lowercase().as_str()) {
            continue;
        }
        if capitalised && !had_article {
            out.push(joined);
        } else {
            out.push(format!("the {joined}"));
        }
    }
    out
}

/// "N years", "N+ years", "N yrs": the largest N on the line (1-50).
fn stated_years_in(line: &str) -> Option<f32> {
    let low = line.to_lowercase();
    let words: Vec<&str> = low.split_whitespace().collect();
    let mut best: Option<f32> = None;
    for (i, w) in words.iter().enumerate() {
        let num = w.trim_end_matches('+').trim_start_matches(['(', '~']);
        let Ok(n) = num.parse::<f32>() else {
            // "5+years", "5years"
            continue;
        };
        let Some(next) = words.get(i + 1) else {
            continue;
        };
        let next = next.trim_matches(|c: char| !c.is_alphanumeric());
        if matches!(next, "years" | "year" | "yrs" | "yr" | "years'") && (1.0..=50.0).contains(&n) {
            // "3 years ago" is not experience.
            let after = words
                .get(i + 2)
                .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()));
            if after == Some("ago") {
                continue;
            }
            best = Some(best.map_or(n, |b: f32| b.max(n)));
        }
    }
    best
}

const MONTHS: [&str; 24] = [
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "sept",
    "oct",
    "nov",
    "dec",
    "january",
    "february",
    "march",
    "april",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// Year ranges on a line: "2018 - 2023", "Jan 2019 – present", "03/2017 to 05/2020".
fn date_ranges(line: &str) -> Vec<(i32, i32)> {
    #[derive(PartialEq)]
    enum T {
        Year(i32),
        Sep,
        Present,
        Skip,
        Other,
    }
    let mut toks: Vec<T> = Vec::new();
    let mut cur = String::new();
    let flush = |cur: &mut String, toks: &mut Vec<T>| {
        if cur.is_empty() {
            return;
        }
        let low = cur.to_lowercase();
        let t = if low.len() == 4 && low.bytes().all(|b| b.is_ascii_digit()) {
            match low.parse::<i32>() {
                Ok(y) if (1970..=PRESENT_YEAR).contains(&y) => T::Year(y),
                _ => T::Other,
            }
        } else if matches!(
            low.as_str(),
            "present" | "current" | "now" | "today" | "ongoing"
        ) {
            T::Present
        } else if low == "to" || low == "until" {
            T::Sep
        } else if MONTHS.contains(&low.trim_end_matches('.'))
            || (low.len() <= 2 && low.bytes().all(|b| b.is_ascii_digit()))
        {
            T::Skip
        } else {
            T::Other
        };
        toks.push(t);
        cur.clear();
    };
    for c in line.chars() {
        if c.is_alphanumeric() || c == '.' {
            cur.push(c);
        } else {
            flush(&mut cur, &mut toks);
            if matches!(c, '-' | '\u{2013}' | '\u{2014}' | '~') {
                toks.push(T::Sep);
            }
        }
    }
    flush(&mut cur, &mut toks);
    let toks: Vec<T> = toks.into_iter().filter(|t| *t != T::Skip).collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 2 < toks.len() {
        if let (Some(T::Year(a)), Some(T::Sep), Some(end)) =
            (toks.get(i), toks.get(i + 1), toks.get(i + 2))
        {
            let b = match end {
                T::Year(b) => Some(*b),
                T::Present => Some(PRESENT_YEAR),
                _ => None,
            };
            if let Some(b) = b {
                if b >= *a && b - *a <= 50 {
                    out.push((*a, b));
                    i += 3;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// Total years covered by the ranges, overlaps merged; None when there are none.
fn years_from_ranges(ranges: &[(i32, i32)]) -> Option<f32> {
    if ranges.is_empty() {
        return None;
    }
    let mut r = ranges.to_vec();
    r.sort_unstable();
    let mut total = 0i32;
    let (mut cs, mut ce) = r[0];
    for &(s, e) in &r[1..] {
        if s <= ce {
            ce = ce.max(e);
        } else {
            total += ce - cs;
            cs = s;
            ce = e;
        }
    }
    total += ce - cs;
    Some(total.max(0) as f32)
}

/// Level implied by job titles: 4 lead ("Lead", "Principal", "Staff", "Head of", "Director", "VP"),
/// 3 senior ("Senior", "Sr."), 1 junior ("Junior", "Intern"), 0 none.
fn title_level_of(toks: &[Tok<'_>]) -> u8 {
    let mut level = 0u8;
    let cap_next = |i: usize| {
        toks.get(i + 1)
            .is_some_and(|t| t.raw.chars().next().is_some_and(|c| c.is_uppercase()))
    };
    let cap_prev = |i: usize| {
        i > 0
            && toks
                .get(i - 1)
                .is_some_and(|t| t.raw.chars().next().is_some_and(|c| c.is_uppercase()))
    };
    for (i, t) in toks.iter().enumerate() {
        let next_of = toks.get(i + 1).is_some_and(|n| n.lower == "of");
        match t.raw {
            "Principal" | "Staff" if cap_next(i) => level = level.max(4),
            "Lead" if cap_next(i) || cap_prev(i) => level = level.max(4),
            "Director" | "VP" if cap_prev(i) || cap_next(i) || next_of => level = level.max(4),
            "Head" if next_of => level = level.max(4),
            "Senior" | "Sr" if cap_next(i) => level = level.max(3),
            "Junior" | "Jr" | "Intern" | "Trainee" => level = level.max(1),
            _ => {}
        }
    }
    level
}

#[cfg(test)]
mod tests {
    use super::*;

    const BACKEND: &str = "Jane Doe
Senior Backend Engineer | jane@example.com | Berlin

SUMMARY
Backend engineer with 7+ years of experience building APIs and data-heavy services in Go and Python.

SKILLS
Languages: Go, Python, SQL, Bash
Datastores: PostgreSQL, Redis, Kafka, Elasticsearch
Infrastructure: Docker, Kubernetes (k8s), Terraform, AWS (EC2, S3, Lambda), GitHub Actions

EXPERIENCE
Senior Backend Engineer, Acme Payments — Jan 2021 – Present
- Built a real-time fraud scoring service processing 3M events/day using Kafka and Go.
- Reduced p99 latency of the payments API from 800ms to 120ms by adding Redis caching and tuning Postgres indexes.
- Led migration of 40 services to Kubernetes.

Backend Engineer, ShopCo — 2017 - 2020
- Developed the order management API in Python (Django) and PostgreSQL.
- Created an internal feature flag platform used by 60 engineers.

PROJECTS
- LedgerLite: an open-source double-entry accounting library in Go
- Rate Limiter Playground - a toy token-bucket rate limiter with a web UI

EDUCATION
BSc Computer Science, TU Berlin, 2013 - 2017
";

    const FRONTEND: &str = "Carlos Rivera — Frontend Developer
carlos@mail.com

Profile
Frontend developer focused on accessible, fast web apps. I love React and TypeScript.

Work Experience
Frontend Developer at Brightly (03/2022 - 06/2024)
* Designed the component library in React, TypeScript and Storybook, adopted by 5 product teams.
* Improved Lighthouse performance score from 58 to 94 with code splitting (Webpack) and image optimization.
* Wrote end-to-end tests with Cypress and unit tests with Jest.

Junior Web Developer at Pixel Agency (2020 - 2022)
* Built marketing sites with Next.js, Tailwind and a headless CMS.
* Worked with designers in Figma.

Side Projects
Budget Buddy: a Vue.js expense tracker with offline support
";

    const DATA: &str = "PRIYA NAIR
Lead Data Scientist

Experience
Lead Data Scientist, RetailCorp, 2016 - present
  Developed demand forecasting models with XGBoost and PyTorch, cutting stockouts by 18%.
  Launched an experimentation platform for A/B testing used across 12 teams.
  Tools: Python, pandas, scikit-learn, Spark, Airflow, Snowflake, Tableau, SQL

Data Analyst, FinServe, 2012 - 2016
  Built churn dashboards in Tableau and R.

Education
MSc Statistics, 2010 - 2012
";

    #[test]
    fn backend_resume() {
        let a = analyze_offline(BACKEND);
        for s in [
            "Go",
            "Python",
            "PostgreSQL",
            "Redis",
            "Kafka",
            "Kubernetes",
            "Docker",
            "AWS",
            "Django",
            "Terraform",
            "AWS Lambda",
            "Amazon S3",
        ] {
            assert!(
                a.skills.iter().any(|x| x == s),
                "{s} missing in {:?}",
                a.skills
            );
        }
        assert!(
            !a.skills.iter().any(|x| x == "REST APIs" || x == "C"),
            "{:?}",
            a.skills
        );
        assert!(
            a.projects.iter().any(|p| p == "LedgerLite"),
            "{:?}",
            a.projects
        );
        assert!(
            a.projects.iter().any(|p| p == "Rate Limiter Playground"),
            "{:?}",
            a.projects
        );
        assert!(
            a.projects
                .iter()
                .any(|p| p.contains("real-time fraud scoring service")),
            "{:?}",
            a.projects
        );
        assert!(
            a.projects
                .iter()
                .any(|p| p.contains("order management API")),
            "{:?}",
            a.projects
        );
        assert!(a.projects.iter().all(|p| p.split_whitespace().count() <= 7));
        assert_eq!(a.years_experience, Some(7.0));
        assert_eq!(a.seniority, "senior");
        assert!(!a.suggested_topics.is_empty() && a.suggested_topics.len() <= 6);
        assert!(
            a.suggested_topics.iter().any(|t| t.contains("indexing")),
            "{:?}",
            a.suggested_topics
        );
    }

    #[test]
    fn frontend_resume() {
        let a = analyze_offline(FRONTEND);
        for s in [
            "React",
            "TypeScript",
            "Storybook",
            "Webpack",
            "Cypress",
            "Jest",
            "Next.js",
            "Tailwind CSS",
            "Figma",
            "Vue.js",
        ] {
            assert!(
                a.skills.iter().any(|x| x == s),
                "{s} missing in {:?}",
                a.skills
            );
        }
        assert_eq!(a.skills[0], "React", "{:?}", a.skills);
        assert!(
            !a.skills.iter().any(|x| x == "Go" || x == "C"),
            "{:?}",
            a.skills
        );
        assert!(
            a.projects.iter().any(|p| p == "Budget Buddy"),
            "{:?}",
            a.projects
        );
        assert!(
            a.projects.iter().any(|p| p.contains("component library")),
            "{:?}",
            a.projects
        );
        // 2020-2022 and 2022-2024 merge to 4 years.
        assert_eq!(a.years_experience, Some(4.0));
        assert_eq!(a.seniority, "mid");
    }

    #[test]
    fn data_resume() {
        let a = analyze_offline(DATA);
        for s in [
            "Python",
            "Pandas",
            "scikit-learn",
            "Apache Spark",
            "Airflow",
            "Snowflake",
            "Tableau",
            "SQL",
            "XGBoost",
            "PyTorch",
            "R",
            "A/B Testing",
        ] {
            assert!(
                a.skills.iter().any(|x| x == s),
                "{s} missing in {:?}",
                a.skills
            );
        }
        // 2012 - present, education excluded.
        assert_eq!(a.years_experience, Some(14.0));
        assert_eq!(a.seniority, "lead");
        assert!(
            a.projects
                .iter()
                .any(|p| p.contains("demand forecasting models")),
            "{:?}",
            a.projects
        );
        assert!(
            a.projects
                .iter()
                .any(|p| p.contains("experimentation platform")),
            "{:?}",
            a.projects
        );
    }

    #[test]
    fn garbage_and_empty() {
        for text in [
            "",
            "   \n\t ",
            "asdf qwer zxcv 123 !!! {{}} ...",
            "Go go go! Let's go to the park.",
            "C C C C",
            "\u{0}\u{1}\u{fffd}💥",
            "- \n-\n: : :",
        ] {
            let a = analyze_offline(text);
            assert!(a.skills.is_empty(), "{text:?}: {:?}", a.skills);
            assert!(a.projects.is_empty(), "{text:?}: {:?}", a.projects);
            assert!(a.suggested_topics.is_empty());
            assert_eq!(a.years_experience, None);
            assert_eq!(a.seniority, "mid");
        }
        let long = "built ".repeat(20_000);
        let _ = analyze_offline(&long);
    }

    #[test]
    fn tricky_tokens() {
        let a = analyze_offline(
            "Skills: C++, C#, .NET, Node.js, Golang, JS\nI react quickly to rest of the incidents.",
        );
        for s in ["C++", "C#", ".NET", "Node.js", "Go", "JavaScript"] {
            assert!(
                a.skills.iter().any(|x| x == s),
                "{s} missing in {:?}",
                a.skills
            );
        }
        assert!(
            !a.skills.iter().any(|x| x == "React" || x == "REST APIs"),
            "{:?}",
            a.skills
        );
    }

    #[test]
    fn hash_and_normalize() {
        assert_eq!(normalize("  Hello\n\tWORLD  "), "hello world");
        assert_eq!(resume_hash("Hello  World"), resume_hash("hello world\n"));
        assert_ne!(resume_hash("a"), resume_hash("b"));
        assert_eq!(resume_hash("x").len(), 16);
    }
}
