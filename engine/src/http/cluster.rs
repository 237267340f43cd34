//! `GET /api/cluster` (admin): the cluster as this node sees it: live nodes with their heartbeats,
//! live sessions and budget figures, Redis reachability and mode (shared or fallback), this node's
//! leases, and every shared quota scope's cluster-wide usage. A single node answers `{"mode":
//! "single"}`.

use actix_web::HttpResponse;
use serde_json::json;

use super::State;
use crate::error::ApiError;

/// `GET /api/cluster`.
pub async fn cluster(state: State) -> Result<HttpResponse, ApiError> {
    let Some(c) = state.cluster.clone() else {
        return Ok(HttpResponse::Ok().json(json!({
            "mode": "single",
            "nodes": [],
            "message": "clustering is off ([cluster] redis_url is empty)",
        })));
    };
    let doc = state.on_engine(async move { c.document().await }).await?;
    Ok(HttpResponse::Ok().json(doc))
}
