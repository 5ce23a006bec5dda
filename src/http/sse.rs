//! Turning a turn's numbered events into an SSE response: one `id:` + `data:` frame per event,
//! a `: ping` comment every 15 s while nothing happens, and the end of the stream right after
//! `stop`. A subscription that ends without `stop` (the client fell too far behind, or the
//! session ended) still ends with `error` + `stop`, without ids, so the client re-attaches
//! from the last number it saw.

use std::convert::Infallible;

use futures_util::StreamExt;
use std::time::Duration;

use actix_web::{HttpRequest, HttpResponse, Responder};
use actix_web_lab::sse;
use tokio::time::{interval_at, Instant, Interval};

use crate::protocol::{ChatEvent, SeqEvent};
use crate::runtime::messages::Subscription;

/// Keeps idle streams open through proxies that cut silent connections.
const PING_EVERY: Duration = Duration::from_secs(15);

pub fn event_stream(events: Subscription, req: &HttpRequest) -> HttpResponse {
    rendered_stream(events, req, |event| vec![frame(event)])
}

/// The events of a turn as SSE, each rendered into zero or more frames by `render`, with the
/// keep-alive pings; the stream ends after the frames of `stop`.
pub fn rendered_stream(
    events: Subscription,
    req: &HttpRequest,
    render: impl Fn(&SeqEvent) -> Vec<sse::Event> + 'static,
) -> HttpResponse {
    let ping = interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    let render = std::rc::Rc::new(render);
    let frames = futures_util::stream::unfold(
        Some((events, ping)),
        move |state: Option<(Subscription, Interval)>| {
            let render = render.clone();
            async move {
                let (mut events, mut ping) = state?;
                tokio::select! {
                    event = events.recv() => {
                        let Some(event) = event else {
                            let frames = cut_short().iter().flat_map(|e| render(e)).collect();
                            return Some((frames, None));
                        };
                        let last = matches!(event.event, ChatEvent::Stop);
                        let frames = render(&event);
                        Some((frames, (!last).then_some((events, ping))))
                    }
                    _ = ping.tick() => Some((vec![sse::Event::Comment("ping".into())], Some((events, ping)))),
                }
            }
        },
    )
    .flat_map(|frames| futures_util::stream::iter(frames.into_iter().map(Ok::<_, Infallible>)));
    sse::Sse::from_stream(frames)
        .respond_to(req)
        .map_into_boxed_body()
}

/// The end of a stream whose events stopped coming before `stop`, numbered 0 (no real event
/// is), so its frames carry no id.
fn cut_short() -> [SeqEvent; 2] {
    let error = ChatEvent::Error {
        message: "this stream ended before the turn did (the client fell too far behind, or the session ended); re-attach with GET /api/chat/events and the last id seen".into(),
        reason: crate::protocol::TurnFailure::StreamCutShort,
    };
    [error, ChatEvent::Stop].map(|event| SeqEvent { seq: 0, event })
}

fn frame(event: &SeqEvent) -> sse::Event {
    let data = serde_json::to_string(&event.event).unwrap_or_else(|e| {
        format!("{{\"type\":\"error\",\"message\":\"cannot encode event: {e}\"}}")
    });
    let data = sse::Data::new(data);
    match event.seq {
        0 => sse::Event::Data(data),
        seq => sse::Event::Data(data.id(seq.to_string())),
    }
}
