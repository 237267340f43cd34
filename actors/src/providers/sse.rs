//! Server-sent events from a provider's HTTP answer, parsed by `eventsource-stream`.
//! Formats map each event to [`StreamChunk`]s; a stream that ends without its final event is an error.

use std::collections::VecDeque;

use eventsource_stream::{Event, Eventsource};
use futures::StreamExt;

use super::{ChunkStream, ProviderError, StreamChunk};

/// What one event's `data:` carries, read the same way for every format.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// Nothing (a keep-alive or an empty line): no chunks.
    Empty,
    /// The `[DONE]` sentinel of OpenAI-shaped streams.
    Done,
    /// A JSON value.
    Json(serde_json::Value),
}

/// Reads an event's `data:`; text that is not JSON is [`ProviderError::Malformed`].
pub fn data(ev: &Event) -> Result<Data, ProviderError> {
    match ev.data.trim() {
        "" => Ok(Data::Empty),
        "[DONE]" => Ok(Data::Done),
        text => serde_json::from_str(text)
            .map(Data::Json)
            .map_err(|e| ProviderError::Malformed(format!("bad stream event: {e}"))),
    }
}

/// Turns the SSE body of `resp` into chunks with `map`, which returns the chunks one event yields
/// (possibly none). The stream ends after a [`StreamChunk::Done`]. A body that stops before `Done`
/// yields a final [`ProviderError::Malformed`] ("stream cut"), so a cut is never mistaken for a
/// complete answer.
pub fn chunks<F>(resp: reqwest::Response, map: F) -> ChunkStream
where
    F: FnMut(&Event) -> Result<Vec<StreamChunk>, ProviderError> + Send + 'static,
{
    let events = resp.bytes_stream().eventsource().boxed();
    let state = State {
        events,
        map,
        pending: VecDeque::new(),
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        let item = st.next_item().await?;
        Some((item, st))
    }))
}

struct State<F> {
    events: futures::stream::BoxStream<
        'static,
        Result<Event, eventsource_stream::EventStreamError<reqwest::Error>>,
    >,
    map: F,
    pending: VecDeque<StreamChunk>,
    finished: bool,
}

impl<F> State<F>
where
    F: FnMut(&Event) -> Result<Vec<StreamChunk>, ProviderError>,
{
    async fn next_item(&mut self) -> Option<Result<StreamChunk, ProviderError>> {
        loop {
            if self.finished {
                return None;
            }
            if let Some(chunk) = self.pending.pop_front() {
                if matches!(chunk, StreamChunk::Done { .. }) {
                    self.finished = true;
                }
                return Some(Ok(chunk));
            }
            match self.events.next().await {
                None => {
                    self.finished = true;
                    return Some(Err(ProviderError::Malformed(
                        "stream cut before its end".into(),
                    )));
                }
                Some(Err(e)) => {
                    self.finished = true;
                    return Some(Err(ProviderError::Malformed(format!(
                        "event stream broken: {e}"
                    ))));
                }
                Some(Ok(ev)) => match (self.map)(&ev) {
                    Ok(chunks) => self.pending.extend(chunks),
                    Err(e) => {
                        self.finished = true;
                        return Some(Err(e));
                    }
                },
            }
        }
    }
}
