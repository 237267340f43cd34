//! `GET /ws/interviews/{id}`: the WebSocket connection, a thin task per socket (actix-ws). It checks
//! the token before the upgrade, reads client messages, forwards them to the interview's session actor
//! (which outlives it), writes the session's events, and keeps a heartbeat. It holds no interview state.
//!
//! Why actix-ws and not actix-web-actors: actix-web-actors' `WsStream` buffers whatever the client
//! sends and gives its actor no way to stop reading, so neither a frame's size nor a flood could be
//! bounded. With actix-ws the frames are a stream this task pulls, so:
//! - a frame header declaring more than 4× `server.max_ws_frame_bytes` ends the connection at the
//!   header (close 1009) before its payload is read ([`FrameGuard`]);
//! - fragmented messages are reassembled up to `server.max_ws_frame_bytes`; a bigger message is
//!   dropped as it arrives and answered with one `frame_too_large` ([`Reassembler`]);
//! - the task reads the next frame only when it holds one of [`IN_FLIGHT`] permits, and the session
//!   releases a permit when it has handled the message: a client that sends faster than its session
//!   works is slowed by TCP (its socket is not read), never buffered;
//! - writes wait for the socket, and the session's channel to the task is bounded (`ConnHandle`): a
//!   client that does not read is disconnected, and resumes from the log when it comes back.
//!
//! Audio (protocol version 2): `audio_start`, binary PCM16 frames and `audio_end` go to the
//! connection's `VoiceInput` actor (started at the first of them, on the engine runtime), which
//! endpoints, transcribes and hands spoken answers to the session; each binary frame holds its read
//! permit until the voice input has taken it, so audio is bounded like every other message. The
//! interviewer's speech comes back as binary frames from the session's speaker.

use std::cell::Cell;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::dev::Payload as DevPayload;
use actix_web::error::PayloadError;
use actix_web::{web, FromRequest, HttpRequest, HttpResponse};
use actix_ws::{CloseCode, CloseReason, Message};
use actors::conn::{ConnHandle, ConnWatch, Outbound};
use actors::protocol::{self, ClientMessage, ErrorCode, ServerEvent};
use actors::session::SessionMsg;
use actors::supervisor::{SessionError, SupervisorMsg};
use actors::voice::input::{Forward, VoiceInput, VoiceInputArgs, VoiceInputMsg};
use futures::StreamExt;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorRef};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::interviews::{authorized_record, Access};
use super::limits::{AnswerLimiter, SocketSlot};
use super::ws_frames::{Assembled, FrameGuard, Reassembler};
use super::State;
use crate::error::ApiError;

const HEARTBEAT: Duration = Duration::from_secs(15);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// Client messages a connection may have waiting for its session at once.
pub const IN_FLIGHT: usize = 8;
/// A single frame may declare at most this many times `server.max_ws_frame_bytes` (so that an
/// oversized message still gets an `error` event); a larger one closes the connection at its header.
pub const FRAME_FACTOR: usize = 4;

/// One connection's task: what it talks to.
struct Conn {
    handle_id: u64,
    session: ActorRef<SessionMsg>,
    supervisor: ActorRef<SupervisorMsg>,
    interview_id: String,
    engine: tokio::runtime::Handle,
    watch: ConnWatch,
    max_message: usize,
    ws: actix_ws::Session,
    /// Answers per second on this connection (None: not limited).
    answers: Option<AnswerLimiter>,
    /// This connection's place among its client's open sockets (freed when the task ends).
    _slot: SocketSlot,
    /// Speech-to-text, when configured: audio goes to the voice input.
    voice: Option<VoiceLink>,
}

/// What a connection needs to take audio.
struct VoiceLink {
    stt: actors::voice::stt_pool::SttPool,
    endpoint: actors::voice::vad::EndpointConfig,
    /// The connection's handle (the voice input's errors go to this client only).
    handle: ConnHandle,
    /// The voice input actor, once audio began.
    input: Option<ActorRef<VoiceInputMsg>>,
}

/// Why a connection ends.
enum End {
    /// The client closed, went away or broke the protocol: nothing more to send.
    Gone,
    /// Close with this code and reason.
    Close(CloseCode, String),
}

impl Conn {
    /// Sends an `error` event carrying the last logged seq.
    async fn error(&mut self, code: ErrorCode, message: &str) -> Result<(), End> {
        let ev = ServerEvent::error(code, message);
        let text = ev.ephemeral_text(Some(self.watch.logged_seq()));
        self.ws.text(text).await.map_err(|_| End::Gone)
    }

    /// Hands a parsed message to the session (finding the session again if it was restarted).
    async fn forward(&mut self, msg: ClientMessage, permit: OwnedSemaphorePermit) {
        let id = self.handle_id;
        let Err(e) = self.session.cast(SessionMsg::Client(id, msg, Some(permit))) else {
            return;
        };
        // The session was restarted by its supervisor: find the new one and send the message again.
        let ractor::MessagingErr::SendErr(SessionMsg::Client(_, msg, permit)) = e else {
            return;
        };
        let (sup, iid) = (self.supervisor.clone(), self.interview_id.clone());
        let found = self
            .engine
            .spawn(async move {
                match sup
                    .call(|r| SupervisorMsg::Get(iid, r), Some(Duration::from_secs(5)))
                    .await
                {
                    Ok(CallResult::Success(Ok(actor))) => Some(actor),
                    _ => None,
                }
            })
            .await;
        if let Ok(Some(actor)) = found {
            let _ = actor.cast(SessionMsg::Client(id, msg, permit));
            self.session = actor;
        }
    }

    /// Handles one text message.
    async fn text(&mut self, text: &str, permit: OwnedSemaphorePermit) -> Result<(), End> {
        if text.len() > self.max_message {
            let msg = format!(
                "messages are limited to {} bytes (this one had {})",
                self.max_message,
                text.len()
            );
            return self.error(ErrorCode::FrameTooLarge, &msg).await;
        }
        match protocol::parse(text) {
            Ok(msg @ (ClientMessage::AudioStart { .. } | ClientMessage::AudioEnd { .. }))
                if self.voice.is_some() =>
            {
                let m = match msg {
                    ClientMessage::AudioStart {
                        format,
                        sample_rate,
                        channels,
                        endpointing,
                    } => VoiceInputMsg::Start {
                        format,
                        sample_rate,
                        channels,
                        endpointing: endpointing.as_deref() != Some("client"),
                    },
                    _ => VoiceInputMsg::End,
                };
                self.send_voice(m).await;
                drop(permit);
                Ok(())
            }
            Ok(msg @ (ClientMessage::AudioStart { .. } | ClientMessage::AudioEnd { .. })) => {
                drop((msg, permit));
                self.audio_unsupported().await
            }
            Ok(ClientMessage::Ping) => {
                // Answered here: a ping needs nothing from the session.
                let pong = ServerEvent::Pong.ephemeral_text(Some(self.watch.logged_seq()));
                self.ws.text(pong).await.map_err(|_| End::Gone)
            }
            Ok(msg @ ClientMessage::Answer { .. }) => {
                if let Some(Err(why)) = self.answers.as_ref().map(AnswerLimiter::take) {
                    return self.error(ErrorCode::RateLimited, &why).await;
                }
                self.forward(msg, permit).await;
                Ok(())
            }
            Ok(msg) => {
                self.forward(msg, permit).await;
                Ok(())
            }
            Err(refusal) => self.error(refusal.code, &refusal.message).await,
        }
    }

    /// Handles one frame from the client.
    async fn frame(
        &mut self,
        msg: Message,
        permit: OwnedSemaphorePermit,
        parts: &mut Reassembler,
    ) -> Result<(), End> {
        match msg {
            Message::Text(text) => self.text(&text, permit).await,
            Message::Binary(b) => self.audio(b, permit).await,
            Message::Continuation(item) => match parts.push(item) {
                None => Ok(()),
                Some(Assembled::Text(text)) => self.text(&text, permit).await,
                Some(Assembled::TooLarge(seen)) => {
                    let msg = format!(
                        "messages are limited to {} bytes (this fragmented one had at least {seen}); nothing of it was kept",
                        self.max_message
                    );
                    self.error(ErrorCode::FrameTooLarge, &msg).await
                }
                Some(Assembled::Binary(b)) => self.audio(b, permit).await,
                Some(Assembled::NotUtf8) => {
                    self.error(ErrorCode::InvalidJson, "the message is not UTF-8 text")
                        .await
                }
            },
            Message::Ping(p) => self.ws.pong(&p).await.map_err(|_| End::Gone),
            Message::Pong(_) | Message::Nop => Ok(()),
            Message::Close(_) => Err(End::Close(CloseCode::Normal, String::new())),
        }
    }

    /// A binary frame: audio for the voice input, which releases the permit once it took the frame.
    async fn audio(
        &mut self,
        bytes: bytes::Bytes,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), End> {
        if self.voice.is_none() {
            drop(permit);
            return self.audio_unsupported().await;
        }
        self.send_voice(VoiceInputMsg::Frame(bytes, Some(permit)))
            .await;
        Ok(())
    }

    /// Sends to the voice input, starting it (on the engine runtime) at the first audio message.
    async fn send_voice(&mut self, msg: VoiceInputMsg) {
        let Some(link) = self.voice.as_mut() else {
            return;
        };
        if link.input.is_none() {
            let args = VoiceInputArgs {
                stt: link.stt.clone(),
                endpoint: link.endpoint,
                interview_id: self.interview_id.clone(),
                conn: link.handle.clone(),
                forward: session_forward(
                    self.session.clone(),
                    self.supervisor.clone(),
                    self.interview_id.clone(),
                    self.handle_id,
                ),
            };
            let started = self
                .engine
                .spawn(async move { Actor::spawn(None, VoiceInput, args).await })
                .await;
            match started {
                Ok(Ok((actor, _))) => link.input = Some(actor),
                _ => {
                    tracing::error!("voice input could not start");
                    return;
                }
            }
        }
        if let Some(input) = &link.input {
            let _ = input.cast(msg);
        }
    }

    async fn audio_unsupported(&mut self) -> Result<(), End> {
        self.error(
            ErrorCode::AudioUnsupported,
            "speech-to-text is not configured on this server: send the answer as text",
        )
        .await
    }
}

/// Runs one connection until it ends; then detaches it from its session.
async fn run(
    mut conn: Conn,
    ready: String,
    mut frames: impl futures::Stream<Item = Result<Message, actix_ws::ProtocolError>> + Unpin,
    mut outbound: mpsc::Receiver<Outbound>,
    tripped: Rc<Cell<Option<u64>>>,
) {
    let permits = Arc::new(Semaphore::new(IN_FLIGHT));
    let mut parts = Reassembler::new(conn.max_message);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut last_heard = Instant::now();
    let watch = conn.watch.clone();
    let end = if conn.ws.text(ready).await.is_err() {
        End::Gone
    } else {
        loop {
            let step: Result<(), End> = tokio::select! {
                biased;
                _ = watch.overflowed() => Err(End::Close(
                    CloseCode::Policy,
                    "the client is not reading its events: reconnect and resume".into(),
                )),
                out = outbound.recv() => match out {
                    Some(Outbound::Text(t)) => conn.ws.text(t.to_string()).await.map_err(|_| End::Gone),
                    Some(Outbound::Binary(b)) => conn.ws.binary(b).await.map_err(|_| End::Gone),
                    Some(Outbound::Close(reason)) => Err(End::Close(CloseCode::Normal, reason)),
                    None => Err(End::Close(CloseCode::Away, "the interview closed".into())),
                },
                input = async {
                    // No permit, no read: the client waits in TCP, not in our memory.
                    let permit = permits.clone().acquire_owned().await;
                    (permit, frames.next().await)
                } => {
                    last_heard = Instant::now();
                    match input {
                        (Ok(permit), Some(Ok(msg))) => conn.frame(msg, permit, &mut parts).await,
                        (_, Some(Err(e))) => {
                            tracing::debug!(error = %e, "websocket protocol error");
                            Err(End::Close(CloseCode::Protocol, "protocol error".into()))
                        }
                        (_, None) => Err(match tripped.get() {
                            Some(declared) => End::Close(
                                CloseCode::Size,
                                format!("frame of {declared} bytes refused: the limit is {} bytes", conn.max_message.saturating_mul(FRAME_FACTOR)),
                            ),
                            None => End::Gone,
                        }),
                        (Err(_), _) => Err(End::Gone),
                    }
                },
                _ = heartbeat.tick() => {
                    if last_heard.elapsed() > CLIENT_TIMEOUT {
                        Err(End::Close(CloseCode::Away, "no sign of life from the client".into()))
                    } else {
                        conn.ws.ping(b"").await.map_err(|_| End::Gone)
                    }
                },
            };
            if let Err(end) = step {
                break end;
            }
        }
    };
    if let End::Close(code, reason) = end {
        let _ = conn
            .ws
            .clone()
            .close(Some(CloseReason {
                code,
                description: Some(reason),
            }))
            .await;
    }
    if let Some(input) = conn.voice.as_ref().and_then(|v| v.input.as_ref()) {
        // What the candidate said before the socket closed is still transcribed and delivered.
        let _ = input.cast(VoiceInputMsg::Close);
    }
    let _ = conn.session.cast(SessionMsg::Detach(conn.handle_id));
}

/// The voice input's way to the session: a cast, and after a session restart the supervisor's new
/// session (remembered for the next event).
fn session_forward(
    session: ActorRef<SessionMsg>,
    supervisor: ActorRef<SupervisorMsg>,
    interview_id: String,
    conn_id: u64,
) -> Forward {
    let current = Arc::new(std::sync::Mutex::new(session));
    Arc::new(move |ev| {
        let actor = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let Err(ractor::MessagingErr::SendErr(SessionMsg::Voice(_, ev))) =
            actor.cast(SessionMsg::Voice(conn_id, ev))
        else {
            return;
        };
        let (sup, iid, current) = (supervisor.clone(), interview_id.clone(), current.clone());
        tokio::spawn(async move {
            if let Ok(CallResult::Success(Ok(actor))) = sup
                .call(|r| SupervisorMsg::Get(iid, r), Some(Duration::from_secs(5)))
                .await
            {
                let _ = actor.cast(SessionMsg::Voice(conn_id, ev));
                *current.lock().unwrap_or_else(|p| p.into_inner()) = actor;
            }
        });
    })
}

/// Why no local session was found for a connection.
enum Found {
    /// An error to answer.
    Api(ApiError),
    /// Cluster mode: another node holds the interview's lease.
    Elsewhere {
        url: Option<String>,
        expires_in: Duration,
    },
}

/// The interview's live session on this node (spawned from the log, the lease taken in cluster
/// mode) with the `ready` event for `handle`, or where it lives instead.
async fn find_session(
    state: &State,
    id: &str,
    handle: ConnHandle,
) -> Result<(ActorRef<SessionMsg>, serde_json::Value), Found> {
    let sup = state.supervisor.clone();
    let iid = id.to_string();
    let retry_after_s = state.config.limits.busy_retry_after_s;
    state
        .on_engine(async move {
            let session = match sup
                .call(
                    |r| SupervisorMsg::Get(iid, r),
                    Some(Duration::from_secs(10)),
                )
                .await
            {
                Ok(CallResult::Success(Ok(s))) => s,
                Ok(CallResult::Success(Err(SessionError::Busy))) => {
                    return Err(Found::Api(ApiError::Busy { retry_after_s }))
                }
                Ok(CallResult::Success(Err(SessionError::Elsewhere {
                    url, expires_in, ..
                }))) => return Err(Found::Elsewhere { url, expires_in }),
                Ok(CallResult::Success(Err(e))) => {
                    return Err(Found::Api(ApiError::Unavailable(e.to_string())))
                }
                _ => {
                    return Err(Found::Api(ApiError::Unavailable(
                        "interview supervisor not answering".into(),
                    )))
                }
            };
            match session
                .call(
                    |r| SessionMsg::Attach(handle, r),
                    Some(Duration::from_secs(10)),
                )
                .await
            {
                Ok(CallResult::Success(ready)) => Ok((session, ready)),
                _ => Err(Found::Api(ApiError::Unavailable(
                    "interview session not answering".into(),
                ))),
            }
        })
        .await
        .map_err(Found::Api)?
}

/// The client's address chain for the owner node: what came in, plus the peer.
fn forwarded_for(req: &HttpRequest) -> String {
    let mut hops: Vec<String> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .map(str::to_string)
        .collect();
    if let Some(p) = req.peer_addr() {
        hops.push(p.ip().to_string());
    }
    hops.join(", ")
}

/// `GET /ws/interviews/{id}`: 401 before the upgrade without the interview's token.
pub async fn connect(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    super::interviews::refresh_from_cluster(&state, &id).await?;
    let _record = authorized_record(&state, &req, &id, Access::Socket)?;
    let client = state.limits.client(&req);
    let slot = state.limits.open_socket(&client)?;
    let max_message = state.config.server.max_ws_frame_bytes;
    // The socket's bytes pass the frame guard before the codec sees them.
    let tripped = Rc::new(Cell::new(None));
    let guard = FrameGuard::new(
        payload.into_inner(),
        max_message.saturating_mul(FRAME_FACTOR),
        tripped.clone(),
    );
    let boxed: Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, PayloadError>>>> =
        Box::pin(guard);
    let mut guarded = DevPayload::Stream { payload: boxed };
    let guarded = web::Payload::from_request(&req, &mut guarded)
        .await
        .map_err(|_| ApiError::Internal)?;
    let (response, ws, frames) = actix_ws::handle(&req, guarded)
        .map_err(|e| ApiError::BadRequest(format!("websocket upgrade failed: {e}")))?;
    let frames = frames.max_frame_size(max_message.saturating_mul(FRAME_FACTOR));

    // Cluster mode: the session may live on another node (relay there), or on none while a dead
    // owner's lease runs out (wait, then take the interview over), bounded by one lease term.
    let relayed = req.headers().contains_key(super::relay::RELAY_HEADER);
    let deadline = Instant::now()
        + Duration::from_millis(state.config.cluster.lease_ms)
        + Duration::from_secs(2);
    let (handle_id, receiver, session, ready, handle) = loop {
        let (handle, receiver) = ConnHandle::new();
        let handle_id = handle.id;
        let kept = handle.clone();
        match find_session(&state, &id, handle).await {
            Ok((session, ready)) => break (handle_id, receiver, session, ready, kept),
            Err(Found::Api(e)) => return Err(e),
            Err(Found::Elsewhere { url, expires_in }) => {
                if let (false, Some(url)) = (relayed, url) {
                    let token = super::interviews::socket_token(&req).unwrap_or_default();
                    let xff = forwarded_for(&req);
                    let me = state
                        .cluster
                        .as_ref()
                        .map(|c| c.cluster.node_id().to_string())
                        .unwrap_or_default();
                    match super::relay::connect_owner(&url, &id, &token, &xff, &me).await {
                        Ok(upstream) => {
                            actix_web::rt::spawn(async move {
                                let _slot = slot;
                                super::relay::pump(ws, frames, upstream, max_message).await;
                            });
                            return Ok(response);
                        }
                        Err(e) => {
                            tracing::info!(interview = %id, owner = %url, error = %e, "owner unreachable; waiting for its lease to expire")
                        }
                    }
                }
                if Instant::now() >= deadline {
                    return Err(ApiError::Unavailable(
                        "the interview's node does not answer yet; reconnect in a few seconds"
                            .into(),
                    ));
                }
                let wait = expires_in.clamp(Duration::from_millis(50), Duration::from_millis(250));
                tokio::time::sleep(wait).await;
            }
        }
    };
    let voice = state.stt.clone().map(|stt| VoiceLink {
        stt,
        endpoint: state.config.endpoint_config(),
        handle,
        input: None,
    });
    let conn = Conn {
        handle_id,
        session,
        supervisor: state.supervisor.clone(),
        interview_id: id,
        engine: state.engine.clone(),
        watch: receiver.watch,
        max_message,
        ws,
        voice,
        answers: state.limits.answer_limiter(&client),
        _slot: slot,
    };
    actix_web::rt::spawn(run(conn, ready.to_string(), frames, receiver.rx, tripped));
    Ok(response)
}
