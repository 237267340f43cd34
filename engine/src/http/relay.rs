//! Cluster mode: a WebSocket relay to the node that owns an interview. A load balancer without
//! stickiness may send a client to any node; a node that does not hold the interview's lease opens a
//! WebSocket to the owner's `advertise_url` (with the client's token, the client's address in
//! `X-Forwarded-For`, and `x-ie-relay` so the owner never relays again) and copies frames both ways
//! until either side closes. It holds no interview state: when the owner dies, the client's socket
//! closes, and its reconnection (to any node) takes the interview over once the lease expires.

use actix_ws::{CloseCode, CloseReason, Message};
use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tokio_tungstenite::tungstenite::Message as TMessage;

use super::ws_frames::{Assembled, Reassembler};

/// The header a relaying node adds: the owner serves the connection itself or refuses it.
pub const RELAY_HEADER: &str = "x-ie-relay";

/// A connection to the owner.
pub type Upstream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens the interview's WebSocket on the owner node (`advertise_url` is `http://host:port`).
pub async fn connect_owner(
    advertise_url: &str,
    interview: &str,
    token: &str,
    forwarded_for: &str,
    from_node: &str,
) -> Result<Upstream, String> {
    let base = advertise_url
        .strip_prefix("http://")
        .map(|r| format!("ws://{r}"))
        .or_else(|| {
            advertise_url
                .strip_prefix("https://")
                .map(|r| format!("wss://{r}"))
        })
        .ok_or_else(|| format!("advertise_url {advertise_url:?} is not http(s)"))?;
    let url = format!("{}/ws/interviews/{interview}", base.trim_end_matches('/'));
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
    let h = req.headers_mut();
    let bearer = format!("Bearer {token}");
    for (name, value) in [
        ("authorization", bearer.as_str()),
        ("x-forwarded-for", forwarded_for),
        (RELAY_HEADER, from_node),
    ] {
        h.insert(
            name,
            value
                .parse()
                .map_err(|_| format!("header {name} is not valid"))?,
        );
    }
    let connect = tokio_tungstenite::connect_async(req);
    match tokio::time::timeout(std::time::Duration::from_secs(3), connect).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("connection to the owner timed out".into()),
    }
}

/// Copies frames between the client and the owner until one side ends.
pub async fn pump(
    mut client: actix_ws::Session,
    mut frames: impl futures::Stream<Item = Result<Message, actix_ws::ProtocolError>> + Unpin,
    upstream: Upstream,
    max_message: usize,
) {
    let (mut up_tx, mut up_rx) = upstream.split();
    let mut parts = Reassembler::new(max_message);
    let reason: Option<CloseReason> = loop {
        tokio::select! {
            from_client = frames.next() => {
                let out = match from_client {
                    Some(Ok(Message::Text(t))) => Some(TMessage::Text(t.to_string().into())),
                    Some(Ok(Message::Binary(b))) => Some(TMessage::Binary(b)),
                    Some(Ok(Message::Continuation(item))) => match parts.push(item) {
                        Some(Assembled::Text(t)) => Some(TMessage::Text(t.into())),
                        Some(Assembled::TooLarge(_)) => {
                            break Some(CloseReason { code: CloseCode::Size, description: Some("message too large".into()) });
                        }
                        _ => None,
                    },
                    Some(Ok(Message::Ping(p))) => {
                        if client.pong(&p).await.is_err() { break None; }
                        None
                    }
                    Some(Ok(Message::Pong(_) | Message::Nop)) => None,
                    Some(Ok(Message::Close(r))) => {
                        let _ = up_tx.send(TMessage::Close(None)).await;
                        break r;
                    }
                    Some(Err(_)) | None => {
                        let _ = up_tx.send(TMessage::Close(None)).await;
                        break None;
                    }
                };
                if let Some(m) = out {
                    if up_tx.send(m).await.is_err() {
                        break Some(CloseReason { code: CloseCode::Away, description: Some("the interview's node went away: reconnect and resume".into()) });
                    }
                }
            }
            from_owner = up_rx.next() => {
                let sent = match from_owner {
                    Some(Ok(TMessage::Text(t))) => client.text(t.as_str().to_string()).await,
                    Some(Ok(TMessage::Binary(b))) => client.binary(b).await,
                    Some(Ok(TMessage::Close(frame))) => {
                        break frame.map(|f| CloseReason {
                            code: close_code(f.code),
                            description: Some(f.reason.as_str().to_string()),
                        });
                    }
                    Some(Ok(_)) => Ok(()),
                    Some(Err(_)) | None => {
                        break Some(CloseReason { code: CloseCode::Away, description: Some("the interview's node went away: reconnect and resume".into()) });
                    }
                };
                if sent.is_err() {
                    let _ = up_tx.send(TMessage::Close(None)).await;
                    break None;
                }
            }
        }
    };
    let _ = client.close(reason).await;
}

fn close_code(c: TCloseCode) -> CloseCode {
    CloseCode::from(u16::from(c))
}
