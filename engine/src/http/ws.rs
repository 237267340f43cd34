//! `GET /ws/interviews/{id}`: the WebSocket connection, a thin actix actor. It checks the token before
//! the upgrade, parses client frames and forwards them to the interview's session actor (which outlives
//! it), writes the session's events, and keeps a heartbeat. It holds no interview state.

use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, StreamHandler};
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use actors::conn::{ConnHandle, Outbound};
use actors::session::{ClientMsg, SessionMsg};
use actors::supervisor::SupervisorMsg;
use ractor::rpc::CallResult;
use ractor::ActorRef;
use serde_json::{json, Value};

use super::interviews::authorized_record;
use super::State;
use crate::error::ApiError;

const HEARTBEAT: Duration = Duration::from_secs(15);
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);

/// One WebSocket connection.
pub struct WsConn {
    handle: ConnHandle,
    rx: Option<tokio::sync::mpsc::UnboundedReceiver<Outbound>>,
    ready: Option<String>,
    session: ActorRef<SessionMsg>,
    supervisor: ActorRef<SupervisorMsg>,
    interview_id: String,
    engine: tokio::runtime::Handle,
    max_frame: usize,
    last_heard: Instant,
}

fn error_frame(code: &str, message: &str) -> String {
    json!({"type": "error", "seq": null, "ephemeral": true, "code": code, "message": message})
        .to_string()
}

/// Parses a client frame into a message, or an error code and message.
pub fn parse_client(text: &str) -> Result<ClientMsg, (&'static str, String)> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| ("invalid_json", format!("frame is not JSON: {e}")))?;
    let ty = v["type"]
        .as_str()
        .ok_or(("invalid_message", "missing \"type\"".to_string()))?;
    match ty {
        "answer" => {
            let text = v["text"].as_str().ok_or((
                "invalid_message",
                "answer needs a string \"text\"".to_string(),
            ))?;
            let audio = match &v["audio_duration_s"] {
                Value::Null => None,
                x => match x.as_f64() {
                    Some(d) if d.is_finite() && (0.0..=3600.0).contains(&d) => Some(d),
                    _ => {
                        return Err((
                            "invalid_message",
                            "audio_duration_s: a number of seconds, 0-3600".into(),
                        ))
                    }
                },
            };
            Ok(ClientMsg::Answer {
                text: text.to_string(),
                audio_duration_s: audio,
            })
        }
        "resume" => {
            let last = v["last_seq"].as_u64().ok_or((
                "invalid_message",
                "resume needs a non-negative integer \"last_seq\"".to_string(),
            ))?;
            Ok(ClientMsg::Resume { last_seq: last })
        }
        "skip" => {
            let turn = match &v["turn"] {
                Value::Null => None,
                t => Some(t.as_u64().ok_or((
                    "invalid_message",
                    "skip: \"turn\" must be a non-negative integer".to_string(),
                ))?),
            };
            Ok(ClientMsg::Skip { turn })
        }
        "end" => Ok(ClientMsg::End),
        "interrupt" => Ok(ClientMsg::Interrupt),
        "ping" => Ok(ClientMsg::Ping),
        "audio_end" => Err((
            "audio_unsupported",
            "speech-to-text is not configured on this server: send the answer as text".into(),
        )),
        other => Err(("unknown_type", format!("unknown message type {other:?}"))),
    }
}

impl WsConn {
    fn forward(&mut self, msg: ClientMsg, ctx: &mut ws::WebsocketContext<Self>) {
        let id = self.handle.id;
        if self
            .session
            .cast(SessionMsg::Client(id, msg.clone()))
            .is_ok()
        {
            return;
        }
        // The session was restarted by its supervisor: find the new one and re-send.
        let sup = self.supervisor.clone();
        let iid = self.interview_id.clone();
        let addr = ctx.address();
        self.engine.spawn(async move {
            if let Ok(CallResult::Success(Ok(actor))) = sup
                .call(|r| SupervisorMsg::Get(iid, r), Some(Duration::from_secs(5)))
                .await
            {
                let _ = actor.cast(SessionMsg::Client(id, msg));
                addr.do_send(NewSession(actor));
            }
        });
    }
}

/// The connection's session was replaced (after a restart).
struct NewSession(ActorRef<SessionMsg>);

impl actix::Message for NewSession {
    type Result = ();
}

impl actix::Handler<NewSession> for WsConn {
    type Result = ();
    fn handle(&mut self, msg: NewSession, _ctx: &mut Self::Context) {
        self.session = msg.0;
    }
}

impl Actor for WsConn {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(ready) = self.ready.take() {
            ctx.text(ready);
        }
        if let Some(mut rx) = self.rx.take() {
            ctx.add_stream(futures::stream::poll_fn(move |cx| rx.poll_recv(cx)));
        }
        ctx.run_interval(HEARTBEAT, |act, ctx| {
            if act.last_heard.elapsed() > CLIENT_TIMEOUT {
                ctx.stop();
                return;
            }
            ctx.ping(b"");
        });
    }

    fn stopped(&mut self, _ctx: &mut Self::Context) {
        let _ = self.session.cast(SessionMsg::Detach(self.handle.id));
    }
}

impl StreamHandler<Outbound> for WsConn {
    fn handle(&mut self, item: Outbound, ctx: &mut Self::Context) {
        match item {
            Outbound::Text(t) => ctx.text(t.to_string()),
            Outbound::Close(reason) => {
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Normal,
                    description: Some(reason),
                }));
                ctx.stop();
            }
        }
    }

    fn finished(&mut self, _ctx: &mut Self::Context) {}
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsConn {
    fn handle(&mut self, item: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match item {
            Ok(ws::Message::Text(text)) => {
                if text.len() > self.max_frame {
                    ctx.text(error_frame(
                        "frame_too_large",
                        &format!("text frames are limited to {} bytes", self.max_frame),
                    ));
                    return;
                }
                match parse_client(&text) {
                    Ok(msg) => self.forward(msg, ctx),
                    Err((code, message)) => ctx.text(error_frame(code, &message)),
                }
            }
            Ok(ws::Message::Binary(_)) => ctx.text(error_frame(
                "audio_unsupported",
                "speech-to-text is not configured on this server: send the answer as text",
            )),
            Ok(ws::Message::Ping(p)) => ctx.pong(&p),
            Ok(ws::Message::Pong(_)) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Continuation(_)) => ctx.text(error_frame(
                "fragmented_frame",
                "fragmented frames are not supported",
            )),
            Ok(ws::Message::Nop) => {}
            Err(e) => {
                tracing::debug!(error = %e, "websocket protocol error");
                ctx.stop();
            }
        }
    }
}

/// `GET /ws/interviews/{id}`: 401 before the upgrade without the interview's token.
pub async fn connect(
    state: State,
    req: HttpRequest,
    path: web::Path<String>,
    stream: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let _record = authorized_record(&state, &req, &id)?;
    let sup = state.supervisor.clone();
    let (handle, rx) = ConnHandle::new();
    let h = handle.clone();
    let iid = id.clone();
    let (session, ready) = state
        .on_engine(async move {
            let session = match sup
                .call(
                    |r| SupervisorMsg::Get(iid, r),
                    Some(Duration::from_secs(10)),
                )
                .await
            {
                Ok(CallResult::Success(Ok(s))) => s,
                Ok(CallResult::Success(Err(e))) => {
                    return Err(ApiError::Unavailable(e.to_string()))
                }
                _ => {
                    return Err(ApiError::Unavailable(
                        "interview supervisor not answering".into(),
                    ))
                }
            };
            match session
                .call(|r| SessionMsg::Attach(h, r), Some(Duration::from_secs(10)))
                .await
            {
                Ok(CallResult::Success(ready)) => Ok((session, ready)),
                _ => Err(ApiError::Unavailable(
                    "interview session not answering".into(),
                )),
            }
        })
        .await??;
    let max_frame = state.config.server.max_ws_frame_bytes;
    let conn = WsConn {
        handle,
        rx: Some(rx),
        ready: Some(ready.to_string()),
        session,
        supervisor: state.supervisor.clone(),
        interview_id: id,
        engine: state.engine.clone(),
        max_frame,
        last_heard: Instant::now(),
    };
    // The codec accepts frames up to 4x the limit so that an oversized frame gets an error event
    // instead of a dropped connection; beyond that the connection is closed (protocol error).
    ws::WsResponseBuilder::new(conn, &req, stream)
        .frame_size(max_frame.saturating_mul(4))
        .start()
        .map_err(|e| ApiError::BadRequest(format!("websocket upgrade failed: {e}")))
}
