//! Pages people read: the candidate's page at `/` (static, embedded in the binary).
//! The report page is rendered by `report_html` from `GET /api/interviews/{id}/report?format=html`.

use actix_web::HttpResponse;

const INDEX: &str = include_str!("assets/index.html");

/// `GET /`.
pub async fn index() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(INDEX)
}
