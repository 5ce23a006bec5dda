//! The third-party APIs of the tools, on loopback: OpenAI-style image generation (base64, or a
//! URL when the prompt says `URL`), speech and a voice list, ElevenLabs-style sound generation,
//! and search as SearXNG (`/search?format=json`) and Brave (`/brave/web/search`,
//! `/brave/images/search`, key in `X-Subscription-Token`) answer it. A prompt, text or query
//! containing `FAIL` gets a 400 with a JSON error. Every request is recorded with its path,
//! bearer token (or subscription token) and JSON body or query. `/pages/…` are small web
//! pages for the browser tools (links, a form, a button, a long page, cookies).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use serde_json::{json, Value};

/// A 1x1 PNG.
pub const PNG_1X1: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=";
/// What the audio routes answer.
pub const AUDIO: &[u8] = b"ID3\x03\x00fake-audio-frames";

#[derive(Debug, Clone)]
pub struct MediaRequest {
    pub path: String,
    pub bearer: Option<String>,
    pub body: Value,
}

pub struct MockApis {
    /// The media API base, ending in `/v1`.
    pub url: String,
    /// `http://127.0.0.1:<port>`: SearXNG's base; Brave's is `<origin>/brave`.
    pub origin: String,
    requests: Arc<Mutex<Vec<MediaRequest>>>,
    server: actix_web::dev::ServerHandle,
}

struct Shared {
    requests: Arc<Mutex<Vec<MediaRequest>>>,
    origin: String,
}

impl MockApis {
    pub fn start() -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let shared = web::Data::new(Shared {
            requests: requests.clone(),
            origin: origin.clone(),
        });
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            actix_rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(shared.clone())
                        .route("/v1/images/generations", web::post().to(images))
                        .route("/files/picture.png", web::get().to(picture))
                        .route("/v1/audio/speech", web::post().to(audio))
                        .route("/v1/audio/voices", web::get().to(voices))
                        .route("/v1/sound-generation", web::post().to(audio))
                        .route("/search", web::get().to(searxng))
                        .route("/pages/{name}", web::get().to(page))
                        .route(
                            "/data/v2/country/{country}/indicator/{indicator}",
                            web::get().to(indicator),
                        )
                        .route("/brave/web/search", web::get().to(brave_web))
                        .route("/brave/images/search", web::get().to(brave_images))
                })
                .workers(1)
                .disable_signals()
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            })
        });
        MockApis {
            url: format!("{origin}/v1"),
            origin: origin.clone(),
            requests,
            server: rx.recv().unwrap(),
        }
    }

    pub fn requests(&self) -> Vec<MediaRequest> {
        self.requests.lock().unwrap().clone()
    }
}

fn record(shared: &Shared, req: &HttpRequest, body: &[u8]) -> Value {
    let body: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let bearer = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .or_else(|| {
            req.headers()
                .get("x-subscription-token")
                .and_then(|v| v.to_str().ok())
        })
        .map(str::to_string);
    shared.requests.lock().unwrap().push(MediaRequest {
        path: req.path().to_string(),
        bearer,
        body: body.clone(),
    });
    body
}

fn refused() -> HttpResponse {
    HttpResponse::BadRequest().json(json!({"error": {"message": "refused by the content policy"}}))
}

async fn images(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let body = record(&shared, &req, &body);
    let prompt = body["prompt"].as_str().unwrap_or("");
    if prompt.contains("FAIL") {
        return refused();
    }
    if prompt.contains("URL") {
        let url = format!("{}/files/picture.png", shared.origin);
        return HttpResponse::Ok().json(json!({"data": [{"url": url}]}));
    }
    HttpResponse::Ok().json(json!({"data": [{"b64_json": PNG_1X1}]}))
}

async fn picture() -> HttpResponse {
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG_1X1)
        .unwrap();
    HttpResponse::Ok().content_type("image/png").body(png)
}

async fn audio(shared: web::Data<Shared>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let body = record(&shared, &req, &body);
    let text = body["input"]
        .as_str()
        .or(body["text"].as_str())
        .unwrap_or("");
    if text.contains("FAIL") {
        return refused();
    }
    HttpResponse::Ok().content_type("audio/mpeg").body(AUDIO)
}

async fn voices() -> HttpResponse {
    HttpResponse::Ok().json(json!({"voices": ["af_bella", "am_adam"]}))
}

/// The query string as a JSON object, recorded like a body.
fn query_of(req: &HttpRequest) -> Vec<u8> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let object: serde_json::Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    serde_json::to_vec(&object).unwrap()
}

async fn searxng(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let query = record(&shared, &req, &query_of(&req));
    let q = query["q"].as_str().unwrap_or("").to_string();
    if q.contains("FAIL") {
        return refused();
    }
    if query["format"] != "json" {
        return HttpResponse::Forbidden().body("format not allowed");
    }
    if query["categories"] == "images" {
        return HttpResponse::Ok().json(json!({"results": [
            {"title": format!("{q} photo"), "img_src": format!("https://img.example/{q}/1.jpg"),
             "url": format!("https://pages.example/{q}"), "resolution": "640 x 480"},
            {"title": "shared", "img_src": "https://img.example/shared.jpg", "url": "https://pages.example/shared"},
        ]}));
    }
    HttpResponse::Ok().json(json!({"results": [
        {"title": format!("<b>{q}</b> guide"), "url": format!("https://{q}.example/guide"),
         "content": format!("All about <em>{q}</em> &amp; more")},
        {"title": "Shared page", "url": "https://shared.example/", "content": "on every query"},
    ]}))
}

async fn brave_web(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let query = record(&shared, &req, &query_of(&req));
    let q = query["q"].as_str().unwrap_or("");
    HttpResponse::Ok().json(json!({"web": {"results": [
        {"title": format!("Brave {q}"), "url": format!("https://brave.example/{q}"), "description": "found by Brave"},
    ]}}))
}

async fn brave_images(shared: web::Data<Shared>, req: HttpRequest) -> HttpResponse {
    let query = record(&shared, &req, &query_of(&req));
    let q = query["q"].as_str().unwrap_or("");
    HttpResponse::Ok().json(json!({"results": [
        {"title": format!("Brave image {q}"), "url": "https://brave.example/page",
         "properties": {"url": format!("https://brave.example/{q}.png"), "width": 100, "height": 50}},
    ]}))
}

const HOME: &str = r#"<!doctype html><html><head><title>Fruit market</title></head><body>
<h1>Fruit market</h1>
<p id="status">Nothing pressed yet.</p>
<a href="/pages/about">About us</a>
<button id="press" onclick="document.getElementById('status').textContent = 'Pressed!'">Press me</button>
<form action="/pages/echo" method="get"><input name="q" placeholder="Search fruit"></form>
<p>The needle is here once.</p>
<div style="height: 3000px">Tall section</div>
<p>And the needle is here twice, far below.</p>
</body></html>"#;

async fn page(path: web::Path<String>, req: HttpRequest) -> HttpResponse {
    let query: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let html = match path.as_str() {
        "home" => HOME.to_string(),
        "about" => "<html><head><title>About</title></head><body><p>We sell fruit.</p></body></html>".into(),
        "echo" => format!(
            "<html><head><title>Results</title></head><body><p>You searched: {}</p></body></html>",
            param("q").replace('<', "&lt;")
        ),
        "setcookie" => format!(
            "<html><head><title>Set</title><script>document.cookie = 'who={}; path=/';</script></head><body>set</body></html>",
            param("v").replace(['\'', '<'], "")
        ),
        "redirect" => {
            return HttpResponse::Found()
                .insert_header(("location", param("to")))
                .finish()
        }
        // Reaches for `to` (a host:port) from a WebSocket, a worker and a service worker.
        "reach" => format!(
            "<html><head><title>Reach</title></head><body><p id=r>trying</p><script>\
             const to = '{}';\
             try {{ const s = new WebSocket('ws://' + to + '/'); s.onopen = () => document.getElementById('r').textContent = 'ws open'; }} catch (e) {{}}\
             try {{ new Worker(URL.createObjectURL(new Blob([\"fetch('http://\" + to + \"/w').catch(() => 0)\"]))); }} catch (e) {{}}\
             try {{ navigator.serviceWorker.register('/pages/sw?to=' + to); }} catch (e) {{}}\
             </script></body></html>",
            param("to").replace(['\'', '<', '\\'], "")
        ),
        // A service worker that reaches for `to` as soon as it runs.
        "sw" => {
            return HttpResponse::Ok()
                .content_type("application/javascript")
                .body(format!(
                    "fetch('http://{}/sw').catch(() => 0);",
                    param("to").replace(['\'', '<', '\\'], "")
                ))
        }
        "showcookie" => "<html><head><title>Show</title></head><body><p id=c></p><script>document.getElementById('c').textContent = 'cookie=[' + document.cookie + ']';</script></body></html>".into(),
        _ => return HttpResponse::NotFound().finish(),
    };
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .body(html)
}

/// World Bank-shaped indicator values.
async fn indicator(
    shared: web::Data<Shared>,
    req: HttpRequest,
    path: web::Path<(String, String)>,
) -> HttpResponse {
    record(&shared, &req, &query_of(&req));
    let (country, indicator) = path.into_inner();
    if indicator == "FAIL" {
        return HttpResponse::BadRequest()
            .json(json!([{"message": [{"value": "Invalid indicator"}]}]));
    }
    HttpResponse::Ok().json(json!([
        {"page": 1, "total": 1},
        [{"country": {"value": country}, "indicator": {"id": indicator}, "date": "2023", "value": 27_360_935_000_000u64}]
    ]))
}
