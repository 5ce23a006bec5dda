//! Media tools: `generate_image`, `generate_speech`, `get_available_voices` and
//! `generate_sound_effects`, against the endpoints set in the console's settings
//! (`/api/config` sections `image`, `speech`, `sound_effects`).
//!
//! Images use the OpenAI-compatible `POST {base}/images/generations` (answers with `b64_json`
//! or a `url` that is then fetched); speech uses `POST {base}/audio/speech`; sound effects use
//! the ElevenLabs-style `POST {base}/sound-generation`. Results are written into the workspace
//! at the path the model chose and listed as artifacts of the reply. Without a configured
//! endpoint a tool says exactly which setting it needs. Keys are sent, never shown or logged.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use super::{save_artifact, NoArgs, ToolContext, ToolError, ToolOutput, TypedTool};
use crate::endpoints::{EndpointSettings, Endpoints};

/// Largest voice list read from a speech endpoint.
const MAX_VOICE_LIST: usize = 1024 * 1024;
/// Largest media answer accepted (bytes).
const MAX_MEDIA_BYTES: usize = 64 * 1024 * 1024;
/// Voices of OpenAI-compatible speech endpoints, when the endpoint cannot list its own.
const STANDARD_VOICES: [&str; 11] = [
    "alloy", "ash", "ballad", "coral", "echo", "fable", "nova", "onyx", "sage", "shimmer", "verse",
];

/// The HTTP side of the media tools, shared by every session.
pub struct MediaClient {
    /// For the configured endpoints: carries the key, follows no redirect (a redirect would
    /// hand the key to another host).
    http: reqwest::Client,
    /// For image addresses an endpoint answers with: no key, redirects followed.
    download: reqwest::Client,
    endpoints: Arc<Endpoints>,
}

#[derive(Clone, Copy)]
enum Section {
    Image,
    Speech,
    SoundEffects,
}

impl Section {
    fn key(self) -> &'static str {
        match self {
            Section::Image => "image",
            Section::Speech => "speech",
            Section::SoundEffects => "sound_effects",
        }
    }

    fn what(self) -> &'static str {
        match self {
            Section::Image => "image generation",
            Section::Speech => "speech generation",
            Section::SoundEffects => "sound effect generation",
        }
    }
}

impl MediaClient {
    pub fn new(endpoints: Arc<Endpoints>) -> Result<Self, reqwest::Error> {
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(10))
                .timeout(Duration::from_secs(300))
        };
        Ok(Self {
            http: builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            download: builder().build()?,
            endpoints,
        })
    }

    /// One line for `okcvm check` and the start-up log.
    pub fn readiness(&self) -> String {
        let set = self.endpoints.snapshot();
        let state = |endpoint: &Option<EndpointSettings>| match endpoint {
            Some(e) => e.model.clone(),
            None => "not set".into(),
        };
        format!(
            "image {}, speech {}, sound effects {} (set in Settings or /api/config)",
            state(&set.image),
            state(&set.speech),
            state(&set.sound_effects)
        )
    }

    fn endpoint(&self, section: Section) -> Result<EndpointSettings, ToolError> {
        let set = self.endpoints.snapshot();
        let endpoint = match section {
            Section::Image => set.image,
            Section::Speech => set.speech,
            Section::SoundEffects => set.sound_effects,
        };
        endpoint.ok_or_else(|| {
            ToolError::RespondToModel(format!(
                "{} needs an endpoint, and none is configured on this server: the user can set \
                 one in the console's Settings ({}) or with POST /api/config {{\"{}\": {{\"base_url\", \"model\", \"api_key\"}}}}",
                section.what(),
                section.key(),
                section.key()
            ))
        })
    }

    fn post(&self, endpoint: &EndpointSettings, path: &str) -> reqwest::RequestBuilder {
        let url = format!("{}/{path}", endpoint.base_url.trim_end_matches('/'));
        let request = self.http.post(url);
        match &endpoint.api_key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
    }

    /// Sends `request` and returns the body, or an error the model can act on.
    async fn fetch(
        &self,
        section: Section,
        request: reqwest::RequestBuilder,
    ) -> Result<(Vec<u8>, String), ToolError> {
        let what = section.what();
        let response = request.send().await.map_err(|e| {
            ToolError::RespondToModel(format!("the {what} endpoint cannot be reached: {e}"))
        })?;
        let status = response.status();
        let content_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = super::read_capped(response, MAX_MEDIA_BYTES)
            .await
            .map_err(|e| ToolError::RespondToModel(format!("the {what} endpoint: {e}")))?;
        if !status.is_success() {
            let detail: String = String::from_utf8_lossy(&body).chars().take(300).collect();
            return Err(ToolError::RespondToModel(format!(
                "the {what} endpoint answered {status}: {detail}"
            )));
        }
        Ok((body, content_type))
    }

    async fn image(&self, prompt: &str) -> Result<Vec<u8>, ToolError> {
        let endpoint = self.endpoint(Section::Image)?;
        let request = self
            .post(&endpoint, "images/generations")
            .json(&json!({"model": endpoint.model, "prompt": prompt, "n": 1}));
        let (body, _) = self.fetch(Section::Image, request).await?;
        let answer: Value = serde_json::from_slice(&body).map_err(|_| {
            ToolError::RespondToModel("the image endpoint did not answer with JSON".into())
        })?;
        let first = &answer["data"][0];
        if let Some(encoded) = first["b64_json"].as_str() {
            use base64::Engine;
            return base64::engine::general_purpose::STANDARD
                .decode(encoded.trim())
                .map_err(|_| {
                    ToolError::RespondToModel("the image endpoint sent broken base64".into())
                });
        }
        let Some(url) = first["url"].as_str() else {
            return Err(ToolError::RespondToModel(
                "the image endpoint's answer holds neither b64_json nor url".into(),
            ));
        };
        // A third-party address (often a CDN that redirects): no key goes there.
        let (image, _) = self.fetch(Section::Image, self.download.get(url)).await?;
        Ok(image)
    }

    async fn speech(&self, text: &str, voice: &str, format: &str) -> Result<Vec<u8>, ToolError> {
        let endpoint = self.endpoint(Section::Speech)?;
        let request = self.post(&endpoint, "audio/speech").json(&json!({
            "model": endpoint.model,
            "input": text,
            "voice": voice,
            "response_format": format,
        }));
        let (body, content_type) = self.fetch(Section::Speech, request).await?;
        refuse_json(&body, &content_type, Section::Speech)?;
        Ok(body)
    }

    async fn voices(&self) -> Result<Vec<String>, ToolError> {
        let endpoint = self.endpoint(Section::Speech)?;
        let url = format!("{}/audio/voices", endpoint.base_url.trim_end_matches('/'));
        let mut request = self.http.get(url);
        if let Some(key) = &endpoint.api_key {
            request = request.bearer_auth(key);
        }
        // Servers that can list their voices do (Kokoro, openedai-speech); others use the
        // standard names.
        let listed = match request.send().await {
            Ok(response) if response.status().is_success() => {
                super::read_capped(response, MAX_VOICE_LIST)
                    .await
                    .ok()
                    .and_then(|body| serde_json::from_slice::<Value>(&body).ok())
                    .map(|v| voice_names(&v))
            }
            _ => None,
        };
        Ok(listed
            .filter(|names| !names.is_empty())
            .unwrap_or_else(|| STANDARD_VOICES.iter().map(|v| v.to_string()).collect()))
    }

    async fn sound_effect(&self, description: &str, duration: f64) -> Result<Vec<u8>, ToolError> {
        let endpoint = self.endpoint(Section::SoundEffects)?;
        let mut request = self.post(&endpoint, "sound-generation");
        if let Some(key) = &endpoint.api_key {
            request = request.header("xi-api-key", key); // ElevenLabs' own header
        }
        let request = request.json(&json!({
            "text": description,
            "duration_seconds": duration,
            "model_id": endpoint.model,
        }));
        let (body, content_type) = self.fetch(Section::SoundEffects, request).await?;
        refuse_json(&body, &content_type, Section::SoundEffects)?;
        Ok(body)
    }
}

/// Audio endpoints answer errors as JSON with status 200 now and then.
fn refuse_json(body: &[u8], content_type: &str, section: Section) -> Result<(), ToolError> {
    if content_type.contains("json") || body.first() == Some(&b'{') {
        let detail: String = String::from_utf8_lossy(body).chars().take(300).collect();
        return Err(ToolError::RespondToModel(format!(
            "the {} endpoint sent JSON instead of audio: {detail}",
            section.what()
        )));
    }
    Ok(())
}

/// Voice names from `{"voices": [...]}` or `[...]`, each a string or `{id|voice_id|name}`.
fn voice_names(listing: &Value) -> Vec<String> {
    let items = listing
        .get("voices")
        .or_else(|| listing.get("data"))
        .unwrap_or(listing);
    items
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter_map(|v| match v {
                    Value::String(name) => Some(name.clone()),
                    other => ["voice_id", "id", "name"]
                        .iter()
                        .find_map(|k| other[*k].as_str().map(str::to_string)),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The audio format named by a file's extension (mp3 when it names none we know).
fn audio_format(path: &str) -> &'static str {
    let extension = Path::new(path)
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "wav" => "wav",
        "opus" | "ogg" => "opus",
        "aac" | "m4a" => "aac",
        "flac" => "flac",
        "pcm" => "pcm",
        _ => "mp3",
    }
}

fn require_text(tool: &str, field: &str, value: &str) -> Result<(), ToolError> {
    if value.trim().is_empty() {
        return Err(ToolError::RespondToModel(format!(
            "{tool}: {field} must not be empty"
        )));
    }
    Ok(())
}

pub struct GenerateImage;

#[derive(Deserialize)]
pub struct ImageArgs {
    description: String,
    output_file: String,
}

impl TypedTool for GenerateImage {
    const NAME: &'static str = "mshtools-generate_image";
    type Args = ImageArgs;

    async fn run(&self, args: ImageArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        require_text(Self::NAME, "description", &args.description)?;
        crate::workspace::ModelPath::parse(&args.output_file)?;
        let services = ctx.services.clone();
        let image = services.media.image(&args.description).await?;
        let Ok(size) = imagesize::blob_size(&image) else {
            return Err(ToolError::RespondToModel(
                "the image endpoint sent something that is not an image".into(),
            ));
        };
        let (path, bytes) = save_artifact(ctx, &args.output_file, image, "image").await?;
        Ok(ToolOutput::text(format!(
            "Generated a {}x{} image ({bytes}) at {path}",
            size.width, size.height
        )))
    }
}

pub struct GenerateSpeech;

#[derive(Deserialize)]
pub struct SpeechArgs {
    text: String,
    voice_id: String,
    output_path: String,
}

impl TypedTool for GenerateSpeech {
    const NAME: &'static str = "mshtools-generate_speech";
    type Args = SpeechArgs;

    async fn run(&self, args: SpeechArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        require_text(Self::NAME, "text", &args.text)?;
        crate::workspace::ModelPath::parse(&args.output_path)?;
        let format = audio_format(&args.output_path);
        let services = ctx.services.clone();
        let audio = services
            .media
            .speech(&args.text, args.voice_id.trim(), format)
            .await?;
        let (path, bytes) = save_artifact(ctx, &args.output_path, audio, "audio").await?;
        Ok(ToolOutput::text(format!(
            "Generated speech ({format}, {bytes}) with voice {} at {path}",
            args.voice_id.trim()
        )))
    }
}

pub struct GetAvailableVoices;

impl TypedTool for GetAvailableVoices {
    const NAME: &'static str = "mshtools-get_available_voices";
    type Args = NoArgs;

    async fn run(&self, _args: NoArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        let voices = ctx.services.media.voices().await?;
        Ok(ToolOutput::text(format!(
            "Voices of the speech endpoint (use one as voice_id): {}",
            voices.join(", ")
        )))
    }
}

pub struct GenerateSoundEffects;

#[derive(Deserialize)]
pub struct SoundArgs {
    description: String,
    #[serde(default)]
    duration: Option<f64>,
    output_path: String,
}

impl TypedTool for GenerateSoundEffects {
    const NAME: &'static str = "mshtools-generate_sound_effects";
    type Args = SoundArgs;

    async fn run(&self, args: SoundArgs, ctx: &mut ToolContext) -> Result<ToolOutput, ToolError> {
        require_text(Self::NAME, "description", &args.description)?;
        let duration = args.duration.unwrap_or(5.0);
        if !(0.5..=30.0).contains(&duration) {
            return Err(ToolError::RespondToModel(
                "duration must be between 0.5 and 30 seconds".into(),
            ));
        }
        crate::workspace::ModelPath::parse(&args.output_path)?;
        let services = ctx.services.clone();
        let audio = services
            .media
            .sound_effect(&args.description, duration)
            .await?;
        let (path, bytes) = save_artifact(ctx, &args.output_path, audio, "audio").await?;
        Ok(ToolOutput::text(format!(
            "Generated a {duration} s sound effect ({bytes}) at {path}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn voices_are_read_from_the_usual_listings() {
        assert_eq!(
            voice_names(&json!({"voices": ["af_bella", "am_adam"]})),
            ["af_bella", "am_adam"]
        );
        assert_eq!(
            voice_names(&json!({"voices": [{"voice_id": "v1", "name": "Rachel"}]})),
            ["v1"]
        );
        assert_eq!(voice_names(&json!([{"id": "alloy"}])), ["alloy"]);
        assert!(voice_names(&json!({"detail": "not found"})).is_empty());
    }

    #[test]
    fn the_file_extension_picks_the_audio_format() {
        assert_eq!(audio_format("/mnt/okcomputer/output/a.WAV"), "wav");
        assert_eq!(audio_format("a.ogg"), "opus");
        assert_eq!(audio_format("a"), "mp3");
        assert_eq!(audio_format("a.mp3"), "mp3");
    }

    #[test]
    fn json_is_not_audio() {
        assert!(refuse_json(b"{\"error\":1}", "audio/mpeg", Section::Speech).is_err());
        assert!(refuse_json(b"ID3...", "application/json", Section::Speech).is_err());
        assert!(refuse_json(b"ID3...", "audio/mpeg", Section::Speech).is_ok());
    }
}
