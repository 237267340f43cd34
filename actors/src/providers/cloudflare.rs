//! Cloudflare wire format (placeholder until implemented).

use async_trait::async_trait;

use super::{ChatRequest, ChatResponse, ChunkStream, FormatKind, ProviderError, Target, WireFormat};

/// The Cloudflare format.
pub struct Cloudflare;

#[async_trait]
impl WireFormat for Cloudflare {
    fn kind(&self) -> FormatKind {
        FormatKind::Cloudflare
    }

    async fn complete(
        &self,
        _http: &reqwest::Client,
        _target: &Target,
        _req: &ChatRequest,
    ) -> Result<ChatResponse, ProviderError> {
        Err(ProviderError::BadRequest { status: 501, message: "format not implemented yet".into() })
    }

    async fn stream(
        &self,
        _http: &reqwest::Client,
        _target: &Target,
        _req: &ChatRequest,
    ) -> Result<ChunkStream, ProviderError> {
        Err(ProviderError::BadRequest { status: 501, message: "format not implemented yet".into() })
    }
}
