//! Anthropic wire format (placeholder until implemented).

use async_trait::async_trait;

use super::{ChatRequest, ChatResponse, ChunkStream, FormatKind, ProviderError, Target, WireFormat};

/// The Anthropic format.
pub struct Anthropic;

#[async_trait]
impl WireFormat for Anthropic {
    fn kind(&self) -> FormatKind {
        FormatKind::Anthropic
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
