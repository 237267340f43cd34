//! Model routing for the OpenAI-compatible gateway: what a client's `model` means, and
//! `GET /v1/models` listing every name a client may send, in OpenAI's list shape.
//!
//! `model` is resolved, first match wins:
//! 1. absent, empty or `auto`: any key, each provider's configured model;
//! 2. an alias from `[models.<alias>] targets = ["provider/model", ...]`: those targets, preferred in
//!    order (the next takes over when one has no room in time or fails), like LiteLLM's model groups;
//! 3. a provider name: that provider's keys with its configured model;
//! 4. a bare model id that one or more providers serve (their `model`, or their `models = [...]`):
//!    every key of those providers alike, each asked for that model (ids may contain `/`, such as
//!    `openai/gpt-4o-mini` on GitHub Models, so this comes before the split below);
//! 5. `provider/model`: that provider's keys, asked for that model;
//! 6. anything else: 404 `model_not_found`.
//!
//! Only providers that have keys count; an alias target or a model of a provider without keys is not
//! listed and does not resolve.

use std::collections::BTreeMap;

use actix_web::HttpResponse;
use actors::pool::Route;
use serde_json::{json, Value};

use super::State;
use crate::config::Config;
use crate::error::ApiError;

/// Where a resolved `model` may go.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    /// The routes (empty: any key).
    pub routes: Vec<Route>,
    /// Prefer the routes in order (an alias).
    pub ordered: bool,
}

/// The names clients may send as `model`, built once from the config and the providers with keys.
#[derive(Debug, Clone, Default)]
pub struct ModelCatalog {
    /// Providers with keys, by name.
    providers: Vec<String>,
    /// Providers configured without keys (for a helpful 404).
    keyless: Vec<String>,
    /// Bare model id → the providers (with keys) that serve it, in provider order.
    served: BTreeMap<String, Vec<String>>,
    /// Alias → its targets whose provider has keys, in order.
    aliases: BTreeMap<String, Vec<Route>>,
}

/// Splits an alias target (`provider/model` or `provider`) into a route.
fn route_of(target: &str) -> Route {
    match target.split_once('/') {
        Some((p, m)) if !m.is_empty() => Route {
            provider: p.to_string(),
            model: Some(m.to_string()),
        },
        Some((p, _)) => Route {
            provider: p.to_string(),
            model: None,
        },
        None => Route {
            provider: target.to_string(),
            model: None,
        },
    }
}

impl ModelCatalog {
    /// The catalogue for `config`, where `active` are the providers that have keys.
    pub fn new(config: &Config, active: &[String]) -> Self {
        let mut served: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut keyless = Vec::new();
        for (name, prov) in &config.providers {
            if !active.contains(name) {
                keyless.push(name.clone());
                continue;
            }
            for m in prov.served_models() {
                if !m.is_empty() {
                    served.entry(m).or_default().push(name.clone());
                }
            }
        }
        let aliases = config
            .models
            .iter()
            .map(|(alias, a)| {
                let routes = a
                    .targets
                    .iter()
                    .map(|t| route_of(t))
                    .filter(|r| active.contains(&r.provider))
                    .collect();
                (alias.clone(), routes)
            })
            .collect();
        Self {
            providers: active.to_vec(),
            keyless,
            served,
            aliases,
        }
    }

    /// What `model` means (see the module doc), or 404 `model_not_found`.
    pub fn resolve(&self, model: Option<&str>) -> Result<Resolved, ApiError> {
        let m = match model.map(str::trim) {
            None | Some("") | Some("auto") => return Ok(Resolved::default()),
            Some(m) => m,
        };
        if let Some(routes) = self.aliases.get(m) {
            if routes.is_empty() {
                return Err(ApiError::ModelNotFound(format!(
                    "{m} (an alias none of whose targets has keys)"
                )));
            }
            return Ok(Resolved {
                routes: routes.clone(),
                ordered: true,
            });
        }
        if self.providers.iter().any(|p| p == m) {
            return Ok(Resolved {
                routes: vec![Route {
                    provider: m.to_string(),
                    model: None,
                }],
                ordered: false,
            });
        }
        if let Some(providers) = self.served.get(m) {
            return Ok(Resolved {
                routes: providers
                    .iter()
                    .map(|p| Route {
                        provider: p.clone(),
                        model: Some(m.to_string()),
                    })
                    .collect(),
                ordered: false,
            });
        }
        if let Some((p, rest)) = m.split_once('/') {
            if self.providers.iter().any(|x| x == p) {
                return Ok(Resolved {
                    routes: vec![Route {
                        provider: p.to_string(),
                        model: (!rest.is_empty()).then(|| rest.to_string()),
                    }],
                    ordered: false,
                });
            }
        }
        let provider = m.split_once('/').map_or(m, |(p, _)| p);
        if self.keyless.iter().any(|p| p == provider) {
            return Err(ApiError::ModelNotFound(format!(
                "{m} (provider {provider} has no keys configured)"
            )));
        }
        Err(ApiError::ModelNotFound(m.to_string()))
    }

    /// Every name a client may send, with who provides it: `auto`, the aliases, the bare model ids,
    /// the providers and each `provider/model`.
    pub fn ids(&self) -> Vec<(String, String)> {
        let mut out = vec![("auto".to_string(), "interview-engine".to_string())];
        for (alias, routes) in &self.aliases {
            if !routes.is_empty() {
                out.push((alias.clone(), "alias".into()));
            }
        }
        for (model, providers) in &self.served {
            out.push((model.clone(), providers.join(",")));
        }
        for p in &self.providers {
            out.push((p.clone(), p.clone()));
        }
        for (model, providers) in &self.served {
            for p in providers {
                out.push((format!("{p}/{model}"), p.clone()));
            }
        }
        let mut seen = std::collections::HashSet::new();
        out.retain(|(id, _)| seen.insert(id.clone()));
        out
    }
}

/// The list document of `GET /v1/models`.
pub fn list_document(catalog: &ModelCatalog) -> Value {
    let data: Vec<Value> = catalog
        .ids()
        .into_iter()
        .map(|(id, owner)| json!({"id": id, "object": "model", "created": 0, "owned_by": owner}))
        .collect();
    json!({"object": "list", "data": data})
}

/// `GET /v1/models` (admin).
pub async fn list(state: State) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(list_document(&state.models)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(extra: &str) -> ModelCatalog {
        use figment::providers::Format;
        let toml = format!(
            "[providers.groq]\nmodels = [\"llama-3.3-70b-versatile\"]\n\
             [providers.cerebras]\nmodel = \"llama-3.3-70b-versatile\"\n\
             [providers.github]\n\
             [models.fast]\ntargets = [\"groq/llama-3.1-8b-instant\", \"cerebras\", \"mistral/x\"]\n{extra}"
        );
        let cfg: Config = figment::Figment::from(figment::providers::Toml::string(
            crate::config::DEFAULT_TOML,
        ))
        .merge(figment::providers::Toml::string(&toml))
        .extract()
        .unwrap_or_else(|e| unreachable!("{e}"));
        let active: Vec<String> = ["cerebras", "github", "groq"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        ModelCatalog::new(&cfg, &active)
    }

    fn route(p: &str, m: Option<&str>) -> Route {
        Route {
            provider: p.into(),
            model: m.map(str::to_string),
        }
    }

    #[test]
    fn every_form_of_model_resolves() {
        let c = catalog("");
        let ok = |m: &str| {
            c.resolve(Some(m))
                .unwrap_or_else(|e| unreachable!("{m}: {e}"))
        };
        assert_eq!(ok("auto"), Resolved::default());
        assert_eq!(c.resolve(None).ok(), Some(Resolved::default()));
        // The alias keeps its order and drops the target without keys (mistral).
        let fast = ok("fast");
        assert!(fast.ordered);
        assert_eq!(
            fast.routes,
            vec![
                route("groq", Some("llama-3.1-8b-instant")),
                route("cerebras", None)
            ]
        );
        assert_eq!(ok("groq").routes, vec![route("groq", None)]);
        // A bare id two providers serve goes to both.
        let big = ok("llama-3.3-70b-versatile");
        assert!(!big.ordered);
        assert_eq!(
            big.routes,
            vec![
                route("cerebras", Some("llama-3.3-70b-versatile")),
                route("groq", Some("llama-3.3-70b-versatile"))
            ]
        );
        // A bare id with a slash (GitHub Models' default) is a model, not a provider.
        assert_eq!(
            ok("openai/gpt-4o-mini").routes,
            vec![route("github", Some("openai/gpt-4o-mini"))]
        );
        assert_eq!(
            ok("groq/some-new-model").routes,
            vec![route("groq", Some("some-new-model"))]
        );
        for unknown in ["gpt-5", "nosuch/model", "mistral", "mistral/x"] {
            assert!(
                matches!(c.resolve(Some(unknown)), Err(ApiError::ModelNotFound(_))),
                "{unknown}"
            );
        }
        let ids: Vec<String> = c.ids().into_iter().map(|(id, _)| id).collect();
        for id in [
            "auto",
            "fast",
            "llama-3.3-70b-versatile",
            "groq",
            "groq/llama-3.3-70b-versatile",
        ] {
            assert!(ids.contains(&id.to_string()), "{id} in {ids:?}");
        }
        assert!(!ids.contains(&"mistral".to_string()));
    }
}
