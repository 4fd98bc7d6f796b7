//! [`Transcriber`] backed by whisper.cpp (through whisper-rs). One model is loaded and shared;
//! every job decodes its audio and runs whisper with its own state on a blocking thread, and a
//! semaphore bounds how many run at once, because ggml's worker threads busy-wait and
//! oversubscribed cores make every job many times slower.
//!
//! Whisper's encoder reads a 30 s window whatever the note's length, and an agent that detects
//! languages runs it twice per note: once to detect, once to transcribe. Detection hears only
//! the first `speech.detect_seconds` (10 by default) through states kept for it
//! ([`detection_state`]): whisper.cpp sizes a detection's encoder by the context of the state's
//! last full run, so such a state is primed once with that size and then only detects. With
//! `speech.detect_to_note`, a shorter note is detected through a window cut to its own length,
//! rounded up to [`DETECT_STEP_SECONDS`]: the rest of the window would be padding silence, and
//! the encoder's work grows with the window.
//! Transcription keeps the whole window by default: sized to the note
//! (`speech.window_margin_secs`), whisper-base misheard whole words of the shipped voice notes.
//! States are kept warm between notes (`speech.warm_state`), so a note does not wait for
//! whisper's caches and buffers to be allocated.
//!
//! With `speech.trim_silence`, the quiet before and after a note's speech is cut first
//! ([`silence::speech_span`]): detection then hears speech from its first second, and a note a
//! little over 30 s of which seconds are quiet fits one window instead of two.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Semaphore;
use whisper_rs::{
    FullParams, SamplingStrategy, WhisperContext, WhisperContextParameters, WhisperState,
};

use super::{decode, silence, SpeechError, Transcriber, Transcript};
use crate::config::SpeechSettings;
use crate::models::{Conversion, ModelStore};

/// whisper.cpp's ggml files start with this magic (0x67676d6c, little-endian).
const GGML_MAGIC: [u8; 4] = *b"lmgg";

/// Whisper hears audio in windows of 30 seconds.
const WINDOW_SECONDS: u64 = 30;
const WINDOW_SAMPLES: usize = WINDOW_SECONDS as usize * decode::SAMPLE_RATE as usize;

/// Encoder positions per second of audio (1500 for a 30 s window).
const CTX_PER_SECOND: u64 = 50;

/// Detection windows cut to a note are whole multiples of this many seconds, so a few primed
/// states serve every note length.
pub const DETECT_STEP_SECONDS: u64 = 5;

/// Seconds of audio language detection hears for a note of `samples`: `detect_seconds`, or
/// with `to_note` the note's length rounded up to [`DETECT_STEP_SECONDS`] when that is shorter.
pub fn detect_window(samples: usize, detect_seconds: u64, to_note: bool) -> u64 {
    if !to_note {
        return detect_seconds;
    }
    let note = (samples as u64).div_ceil(u64::from(decode::SAMPLE_RATE));
    let stepped = note.div_ceil(DETECT_STEP_SECONDS).max(1) * DETECT_STEP_SECONDS;
    stepped.min(detect_seconds)
}

/// Whisper states kept between notes, one per job running at once, made when first needed: a
/// new state allocates its caches and compute buffers before it can hear anything.
#[derive(Default)]
struct States(Mutex<Vec<WhisperState>>);

/// Detection states kept between notes, by the seconds of window they were primed for.
#[derive(Default)]
struct Detectors(Mutex<BTreeMap<u64, Vec<WhisperState>>>);

impl Detectors {
    /// A kept state primed for `seconds`, or the one `make` makes.
    fn take(
        &self,
        seconds: u64,
        make: impl FnOnce() -> Result<WhisperState, SpeechError>,
    ) -> Result<WhisperState, SpeechError> {
        let kept = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&seconds)
            .and_then(Vec::pop);
        kept.map_or_else(make, Ok)
    }

    /// Keeps `state`, primed for `seconds`, for the next note.
    fn give_back(&self, seconds: u64, state: WhisperState) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(seconds)
            .or_default()
            .push(state);
    }
}

impl States {
    /// A kept state, or the one `make` makes.
    fn take(
        &self,
        make: impl FnOnce() -> Result<WhisperState, SpeechError>,
    ) -> Result<WhisperState, SpeechError> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner()).pop();
        kept.map_or_else(make, Ok)
    }

    /// Keeps `state` for the next note.
    fn give_back(&self, state: WhisperState) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(state);
    }
}

/// A state that detects languages from the first `seconds` of a note: primed by a full run over
/// silence with that context (whisper.cpp keeps it for the state's later detections).
fn detection_state(
    ctx: &WhisperContext,
    seconds: u64,
    threads: usize,
) -> Result<WhisperState, SpeechError> {
    let mut state = ctx.create_state().map_err(transcription_err)?;
    let mut params = quiet_params(SamplingStrategy::Greedy { best_of: 1 }, threads);
    params.set_language(Some("en"));
    params.set_audio_ctx(i32::try_from(seconds * CTX_PER_SECOND).unwrap_or(0));
    params.set_no_timestamps(true);
    params.set_single_segment(true);
    params.set_max_tokens(1);
    let silence = vec![0.0f32; 2 * decode::SAMPLE_RATE as usize];
    state.full(params, &silence).map_err(transcription_err)?;
    Ok(state)
}

/// Whisper run in-process on the CPU.
#[derive(Clone)]
pub struct WhisperTranscriber {
    name: String,
    ctx: Arc<WhisperContext>,
    permits: Arc<Semaphore>,
    threads: usize,
    max_audio_secs: u64,
    multilingual: bool,
    detect_seconds: u64,
    /// Whether detection hears only as much window as the note fills (see [`detect_window`]).
    detect_to_note: bool,
    /// Detection states, by the seconds they were primed for.
    detectors: Arc<Detectors>,
    trim_silence: bool,
    /// Transcription states kept between notes (`None`: a new state per note).
    warm: Option<Arc<States>>,
    /// Seconds of encoder window beyond the note's length (`None`: the whole 30 s window).
    window_margin: Option<u64>,
}

impl fmt::Debug for WhisperTranscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhisperTranscriber")
            .field("name", &self.name)
            .field("threads", &self.threads)
            .field("multilingual", &self.multilingual)
            .field("detect_seconds", &self.detect_seconds)
            .field("detect_to_note", &self.detect_to_note)
            .field("trim_silence", &self.trim_silence)
            .finish_non_exhaustive()
    }
}

fn model_err(e: impl fmt::Display) -> SpeechError {
    SpeechError::Model(e.to_string())
}

fn transcription_err(e: impl fmt::Display) -> SpeechError {
    SpeechError::Transcription(e.to_string())
}

fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The ggml file behind `model`: a catalogue name (fetched into the cache when missing) or a
/// path to a whisper.cpp model file. Returns the display name and the path.
pub async fn resolve_model(
    models: &ModelStore,
    model: &str,
) -> Result<(String, PathBuf), SpeechError> {
    match crate::models::spec(model) {
        Ok(spec) => {
            if !matches!(spec.conversion, Some(Conversion::WhisperCt2ToGgml { .. })) {
                return Err(SpeechError::Model(format!(
                    "`{model}` is not a speech model (choose one of {})",
                    whisper_models().join(", ")
                )));
            }
            let files = models.ensure(model).await.map_err(model_err)?;
            let output = spec
                .outputs()
                .first()
                .map(|f| f.name)
                .ok_or_else(|| SpeechError::Model(format!("`{model}` lists no model file")))?;
            let path = files.path(output).ok_or_else(|| {
                SpeechError::Model(format!("`{model}` is missing its file {output}"))
            })?;
            Ok((model.to_string(), path.to_path_buf()))
        }
        Err(_) if Path::new(model).is_file() => {
            let name = Path::new(model)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| model.to_string());
            Ok((name, PathBuf::from(model)))
        }
        Err(_) => Err(SpeechError::Model(format!(
            "`{model}` is neither a speech model of the catalogue ({}) nor a ggml file",
            whisper_models().join(", ")
        ))),
    }
}

/// Catalogue names of the Whisper models.
pub fn whisper_models() -> Vec<&'static str> {
    crate::models::catalogue()
        .iter()
        .filter(|s| matches!(s.conversion, Some(Conversion::WhisperCt2ToGgml { .. })))
        .map(|s| s.name)
        .collect()
}

impl WhisperTranscriber {
    /// Loads `s.model` (a catalogue name, fetched into the cache when missing, or a path to a
    /// ggml file) with the thread and concurrency limits of `s`.
    pub async fn load(models: &ModelStore, s: &SpeechSettings) -> Result<Self, SpeechError> {
        let (name, path) = resolve_model(models, &s.model).await?;
        Self::from_file(&path, &name, s).await
    }

    /// Loads the ggml model file at `path`, naming it `name` in logs.
    pub async fn from_file(
        path: &Path,
        name: &str,
        s: &SpeechSettings,
    ) -> Result<Self, SpeechError> {
        whisper_rs::install_logging_hooks();
        let path = path.to_path_buf();
        let started = Instant::now();
        let ctx = tokio::task::spawn_blocking(move || -> Result<WhisperContext, SpeechError> {
            let mut magic = [0u8; 4];
            std::io::Read::read_exact(
                &mut std::fs::File::open(&path)
                    .map_err(|e| SpeechError::Model(format!("{}: {e}", path.display())))?,
                &mut magic,
            )
            .map_err(|e| SpeechError::Model(format!("{}: {e}", path.display())))?;
            if magic != GGML_MAGIC {
                return Err(SpeechError::Model(format!(
                    "{} is not a whisper.cpp ggml model",
                    path.display()
                )));
            }
            let params = WhisperContextParameters {
                use_gpu: false,
                ..WhisperContextParameters::default()
            };
            WhisperContext::new_with_params(&path, params)
                .map_err(|e| SpeechError::Model(format!("{}: {e}", path.display())))
        })
        .await
        .map_err(model_err)??;
        let multilingual = ctx.is_multilingual();
        tracing::info!(
            model = name,
            multilingual,
            threads = s.threads,
            max_concurrent = s.max_concurrent,
            load_ms = millis(started.elapsed()),
            "speech model loaded"
        );
        Ok(Self {
            name: name.to_string(),
            ctx: Arc::new(ctx),
            permits: Arc::new(Semaphore::new(s.max_concurrent.max(1))),
            threads: s.threads.max(1),
            max_audio_secs: s.max_audio_secs,
            multilingual,
            detect_seconds: s.detect_seconds.clamp(1, WINDOW_SECONDS),
            detect_to_note: s.detect_to_note,
            detectors: Arc::default(),
            trim_silence: s.trim_silence,
            warm: s.warm_state.then(Arc::default),
            window_margin: s.window_margin_secs,
        })
    }

    /// The same loaded model, detecting languages from the first `seconds` of a note (30: a
    /// whole window).
    pub fn with_detect_seconds(&self, seconds: u64) -> Self {
        Self {
            detect_seconds: seconds.clamp(1, WINDOW_SECONDS),
            detectors: Arc::default(),
            ..self.clone()
        }
    }

    /// The same loaded model, detecting languages through a window cut to the note or not.
    pub fn with_detect_to_note(&self, to_note: bool) -> Self {
        Self {
            detect_to_note: to_note,
            ..self.clone()
        }
    }

    /// The same loaded model, cutting the quiet around a note's speech or not.
    pub fn with_trim_silence(&self, trim: bool) -> Self {
        Self {
            trim_silence: trim,
            ..self.clone()
        }
    }

    /// The same loaded model, keeping transcription states warm between notes or not.
    pub fn with_warm_state(&self, warm: bool) -> Self {
        Self {
            warm: warm.then(Arc::default),
            ..self.clone()
        }
    }

    /// The same loaded model, sizing the encoder's window to the note plus `margin` seconds
    /// (`None`: the whole 30 s window).
    pub fn with_window_margin(&self, margin: Option<u64>) -> Self {
        Self {
            window_margin: margin,
            ..self.clone()
        }
    }

    /// The same loaded model, run with `threads` threads per job.
    pub fn with_threads(&self, threads: usize) -> Self {
        Self {
            threads: threads.max(1),
            ..self.clone()
        }
    }

    /// Whether the model knows languages other than English.
    pub fn multilingual(&self) -> bool {
        self.multilingual
    }

    /// Decodes and transcribes on the calling thread (blocking, CPU-heavy); the async
    /// [`Transcriber::transcribe`] runs this on a blocking thread behind the semaphore.
    fn transcribe_blocking(
        &self,
        audio: &[u8],
        mime: Option<&str>,
        language: Option<&str>,
    ) -> Result<Transcript, SpeechError> {
        let started = Instant::now();
        let (samples, audio_seconds) = decode::decode(audio, mime, self.max_audio_secs)?;
        let span = if self.trim_silence {
            silence::speech_span(&samples)
        } else {
            0..samples.len()
        };
        let trimmed_seconds = (samples.len() - span.len()) as f64 / f64::from(decode::SAMPLE_RATE);
        let samples = &samples[span];
        let decode_ms = millis(started.elapsed());

        let started = Instant::now();
        let new_state = || self.ctx.create_state().map_err(transcription_err);
        let mut state = match &self.warm {
            Some(warm) => warm.take(new_state)?,
            None => new_state()?,
        };
        let language = language
            .map(str::trim)
            .filter(|l| !l.is_empty() && *l != "auto");
        let (language, language_probability) = match language {
            Some(code) => (self.requested_language(code)?, None),
            None if self.multilingual => {
                let seconds =
                    detect_window(samples.len(), self.detect_seconds, self.detect_to_note);
                let mut detector = self.detectors.take(seconds, || {
                    detection_state(&self.ctx, seconds, self.threads)
                })?;
                let detected = detect(&mut detector, samples, self.threads);
                self.detectors.give_back(seconds, detector);
                let (id, probabilities) = detected?;
                let code = whisper_rs::get_lang_str(id).ok_or_else(|| {
                    SpeechError::Transcription(format!("detected unknown language id {id}"))
                })?;
                let p = usize::try_from(id)
                    .ok()
                    .and_then(|i| probabilities.get(i))
                    .copied();
                (code, p)
            }
            None => ("en", None),
        };

        let mut params = quiet_params(SamplingStrategy::Greedy { best_of: 5 }, self.threads);
        params.set_language(Some(language));
        params.set_translate(false);
        // Longer notes keep timestamps: whisper moves from one 30 s window to the next by the
        // last timestamp it emitted, which is what keeps words at window edges. A note that fits
        // one window is decoded without them: fewer tokens, and no second pass over the audio
        // after the last timestamp (whisper would encode a whole padded window for the final
        // second of silence).
        params.set_no_timestamps(samples.len() <= WINDOW_SAMPLES);
        params.set_suppress_blank(true);
        params.set_suppress_nst(true);
        if let Some(margin) = self
            .window_margin
            .filter(|_| samples.len() <= WINDOW_SAMPLES)
        {
            let seconds = samples.len() as u64 / u64::from(decode::SAMPLE_RATE) + 1 + margin;
            let ctx = (seconds * CTX_PER_SECOND).min(WINDOW_SECONDS * CTX_PER_SECOND);
            params.set_audio_ctx(i32::try_from(ctx).unwrap_or(0));
        }
        state.full(params, samples).map_err(transcription_err)?;

        let mut text = String::new();
        for segment in state.as_iter() {
            let piece = segment.to_str_lossy().map_err(transcription_err)?;
            text.push_str(&piece);
        }
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if let Some(warm) = &self.warm {
            warm.give_back(state);
        }
        let transcribe_ms = millis(started.elapsed());
        tracing::debug!(
            model = %self.name,
            language,
            language_probability,
            audio_seconds,
            trimmed_seconds,
            decode_ms,
            transcribe_ms,
            chars = text.chars().count(),
            "voice note transcribed"
        );
        Ok(Transcript {
            text,
            language: Some(language.to_string()),
            language_probability,
            audio_seconds,
            decode_ms,
            transcribe_ms,
        })
    }

    /// Whisper's code for a requested language (`pt-BR` -> `pt`); English-only models always
    /// transcribe English.
    fn requested_language(&self, code: &str) -> Result<&'static str, SpeechError> {
        let base = code
            .split(['-', '_'])
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        let id = whisper_rs::get_lang_id(&base).ok_or_else(|| {
            SpeechError::Unsupported(format!("language `{code}` is not one Whisper knows"))
        })?;
        let known = whisper_rs::get_lang_str(id).ok_or_else(|| {
            SpeechError::Unsupported(format!("language `{code}` is not one Whisper knows"))
        })?;
        if !self.multilingual && known != "en" {
            tracing::warn!(
                model = %self.name,
                requested = known,
                "English-only speech model asked for another language; transcribing as English"
            );
            return Ok("en");
        }
        Ok(known)
    }
}

#[async_trait]
impl Transcriber for WhisperTranscriber {
    fn name(&self) -> &str {
        &self.name
    }

    #[tracing::instrument(skip_all, fields(model = %self.name, bytes = audio.len()))]
    async fn transcribe(
        &self,
        audio: &[u8],
        mime: Option<&str>,
        language: Option<&str>,
    ) -> Result<Transcript, SpeechError> {
        if audio.is_empty() {
            return Err(SpeechError::Empty);
        }
        let permit = self
            .permits
            .clone()
            .acquire_owned()
            .await
            .map_err(transcription_err)?;
        let job = self.clone();
        let audio = audio.to_vec();
        let mime = mime.map(str::to_owned);
        let language = language.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            job.transcribe_blocking(&audio, mime.as_deref(), language.as_deref())
        })
        .await
        .map_err(transcription_err)?
    }
}

/// Whisper's parameters for a run with `strategy` on `threads` threads, printing nothing to
/// stdout (the transcript is read from the state).
fn quiet_params<'a, 'b>(strategy: SamplingStrategy, threads: usize) -> FullParams<'a, 'b> {
    let mut params = FullParams::new(strategy);
    params.set_n_threads(i32::try_from(threads).unwrap_or(1));
    params.set_print_special(false);
    params.set_print_progress(false);
    params.set_print_realtime(false);
    params.set_print_timestamps(false);
    params
}

/// The language whisper hears in `samples`, with every language's probability, by `state`.
fn detect(
    state: &mut WhisperState,
    samples: &[f32],
    threads: usize,
) -> Result<(i32, Vec<f32>), SpeechError> {
    state
        .pcm_to_mel(samples, threads)
        .map_err(transcription_err)?;
    state.lang_detect(0, threads).map_err(transcription_err)
}

/// The configured Whisper model, loaded on the first voice note (and fetched into the cache
/// first when missing), then kept for every later one. A failed load is not remembered: the next
/// voice note tries again, so a model fetched or repaired meanwhile is picked up.
pub struct OnDemandWhisper {
    models: ModelStore,
    settings: SpeechSettings,
    loaded: tokio::sync::OnceCell<WhisperTranscriber>,
}

impl OnDemandWhisper {
    /// Loads `settings.model` from `models` when first needed.
    pub fn new(models: ModelStore, settings: SpeechSettings) -> Self {
        Self {
            models,
            settings,
            loaded: tokio::sync::OnceCell::new(),
        }
    }

    /// The model, loading it on the first call.
    pub async fn get(&self) -> Result<&WhisperTranscriber, SpeechError> {
        self.loaded
            .get_or_try_init(|| async {
                tracing::info!(model = %self.settings.model, "loading the speech model");
                WhisperTranscriber::load(&self.models, &self.settings).await
            })
            .await
    }
}

#[async_trait]
impl Transcriber for OnDemandWhisper {
    fn name(&self) -> &str {
        self.loaded
            .get()
            .map_or(self.settings.model.as_str(), |t| t.name())
    }

    async fn ready(&self) -> Result<(), SpeechError> {
        self.get().await.map(|_| ())
    }

    async fn transcribe(
        &self,
        audio: &[u8],
        mime: Option<&str>,
        language: Option<&str>,
    ) -> Result<Transcript, SpeechError> {
        if audio.is_empty() {
            return Err(SpeechError::Empty);
        }
        self.get().await?.transcribe(audio, mime, language).await
    }
}

/// The result of `palaver transcribe FILE`: the transcript and what it cost.
#[derive(Debug, Clone)]
pub struct FileTranscript {
    /// The audio file.
    pub file: PathBuf,
    /// Model used.
    pub model: String,
    /// Threads per job.
    pub threads: usize,
    /// Time to load the model, in milliseconds.
    pub load_ms: f64,
    /// What was said, with decode and transcription timings.
    pub transcript: Transcript,
}

impl FileTranscript {
    /// Processing time (decode + transcribe) over audio time.
    pub fn real_time_factor(&self) -> f64 {
        let t = &self.transcript;
        (t.decode_ms + t.transcribe_ms) / 1000.0 / t.audio_seconds.max(f64::EPSILON)
    }
}

impl fmt::Display for FileTranscript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = &self.transcript;
        writeln!(f, "{}", t.text)?;
        writeln!(f)?;
        let language = match (&t.language, t.language_probability) {
            (Some(l), Some(p)) => format!("{l} (detected, p={p:.2})"),
            (Some(l), None) => l.clone(),
            (None, _) => "unknown".into(),
        };
        writeln!(
            f,
            "model {} ({} threads), language {language}",
            self.model, self.threads
        )?;
        write!(
            f,
            "audio {:.1} s, load {:.0} ms, decode {:.0} ms, transcribe {:.0} ms, real-time factor {:.2}",
            t.audio_seconds,
            self.load_ms,
            t.decode_ms,
            t.transcribe_ms,
            self.real_time_factor()
        )
    }
}

/// Transcribes one audio file for `palaver transcribe FILE [--model NAME|PATH] [--language xx]`:
/// `model` overrides `settings.model`, `language` skips detection.
pub async fn transcribe_file(
    models: &ModelStore,
    settings: &SpeechSettings,
    file: &Path,
    model: Option<&str>,
    language: Option<&str>,
) -> Result<FileTranscript, SpeechError> {
    let audio = tokio::fs::read(file)
        .await
        .map_err(|e| SpeechError::Read(format!("{}: {e}", file.display())))?;
    let settings = SpeechSettings {
        model: model.map_or_else(|| settings.model.clone(), str::to_owned),
        ..settings.clone()
    };
    let started = Instant::now();
    let transcriber = WhisperTranscriber::load(models, &settings).await?;
    let load_ms = millis(started.elapsed());
    let transcript = transcriber
        .transcribe(&audio, decode::mime_for_path(file), language)
        .await?;
    Ok(FileTranscript {
        file: file.to_path_buf(),
        model: transcriber.name().to_string(),
        threads: transcriber.threads,
        load_ms,
        transcript,
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::models::ModelStatus;
    use crate::speech::synth::{self, SynthError};

    fn required() -> bool {
        std::env::var("PALAVER_REQUIRE_MODELS").is_ok_and(|v| v == "1")
    }

    /// Detection hears the note rounded up to 5 s, never more than `detect_seconds`, and the
    /// whole `detect_seconds` when not cut to the note.
    #[test]
    fn detection_window_follows_the_note_in_steps() {
        let rate = decode::SAMPLE_RATE as usize;
        for (samples, detect_seconds, to_note, window) in [
            (0, 10, true, 5),
            (rate / 2, 10, true, 5),
            (rate * 46 / 10, 10, true, 5),
            (rate * 5, 10, true, 5),
            (rate * 5 + 1, 10, true, 10),
            (rate * 8, 10, true, 10),
            (rate * 28, 10, true, 10),
            (rate * 12, 30, true, 15),
            (rate * 3, 3, true, 3),
            (rate * 3, 10, false, 10),
            (rate * 28, 30, false, 30),
        ] {
            assert_eq!(
                detect_window(samples, detect_seconds, to_note),
                window,
                "{samples} samples, detect_seconds {detect_seconds}, to_note {to_note}"
            );
        }
    }

    /// The cached model store when `name` is in it, or `None` with a note. With
    /// `PALAVER_REQUIRE_MODELS=1` a missing model is fetched, and failing that the test fails.
    async fn store_with(name: &str) -> Option<ModelStore> {
        let dir = std::env::var_os("PALAVER_MODELS_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| crate::Settings::default().models_dir());
        let store = ModelStore::new(dir, BTreeMap::new());
        if required() {
            store.ensure(name).await.unwrap_or_else(|e| {
                panic!("PALAVER_REQUIRE_MODELS=1 but {name} is unavailable: {e}")
            });
            return Some(store);
        }
        match store.status(name).await {
            Ok(ModelStatus::Ready { .. }) => Some(store),
            other => {
                eprintln!(
                    "skipping: {name} not in {} ({other:?}); set PALAVER_REQUIRE_MODELS=1 to fetch it",
                    store.dir().display()
                );
                None
            }
        }
    }

    async fn transcriber(name: &str) -> Option<WhisperTranscriber> {
        let store = store_with(name).await?;
        let settings = SpeechSettings {
            model: name.into(),
            // One thread: ggml's spinning threads collapse when tests share the cores.
            threads: 1,
            ..SpeechSettings::default()
        };
        Some(WhisperTranscriber::load(&store, &settings).await.unwrap())
    }

    /// An espeak-ng voice note as OGG/Opus, or `None` with a note when the tools are missing
    /// (a failure under `PALAVER_REQUIRE_MODELS=1`).
    async fn note(text: &str, voice: &str) -> Option<Vec<u8>> {
        let dir = tempfile::tempdir().unwrap();
        match synth::voice_note(text, voice, dir.path()).await {
            Ok(bytes) => Some(bytes),
            Err(SynthError::Missing(tool)) if !required() => {
                eprintln!("skipping: `{tool}` is not installed");
                None
            }
            Err(e) => panic!("could not make a voice note: {e}"),
        }
    }

    /// Detection from the first seconds hears the shipped voice notes' languages as a whole
    /// window does, and the transcripts do not change.
    #[tokio::test]
    async fn a_language_heard_in_the_first_seconds_is_the_whole_windows() {
        let Some(t) = transcriber("whisper-base").await else {
            return;
        };
        let audio = Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/audio");
        let first = t.with_detect_seconds(10);
        let whole = t.with_detect_seconds(30);
        for (note, language) in [
            ("humano-es.ogg", "es"),
            ("payment-methods.ogg", "en"),
            ("saturday-hours.ogg", "en"),
        ] {
            let bytes = std::fs::read(audio.join(note)).unwrap();
            let a = first.transcribe(&bytes, None, None).await.unwrap();
            let b = whole.transcribe(&bytes, None, None).await.unwrap();
            assert_eq!(a.language.as_deref(), Some(language), "{note}");
            assert_eq!(a.language, b.language, "{note}");
            assert_eq!(a.text, b.text, "{note}");
        }
    }

    /// A state kept between notes hears each note as a new state does: nothing of the note
    /// before (its words, its language, or the smaller encoder window a fitted note left) carries
    /// over.
    #[tokio::test]
    async fn a_warm_state_hears_each_note_as_a_new_one_does() {
        let Some(t) = transcriber("whisper-base").await else {
            return;
        };
        let audio = Path::new(env!("CARGO_MANIFEST_DIR")).join("eval/audio");
        let cold = t.with_warm_state(false);
        let warm = t.with_warm_state(true);
        let fitted = warm.with_window_margin(Some(2));
        for note in ["humano-es.ogg", "payment-methods.ogg", "saturday-hours.ogg"] {
            let bytes = std::fs::read(audio.join(note)).unwrap();
            let a = cold.transcribe(&bytes, None, None).await.unwrap();
            let b = warm.transcribe(&bytes, None, None).await.unwrap();
            assert_eq!(a.text, b.text, "{note}");
            assert_eq!(a.language, b.language, "{note}");
            // The same kept state after a note heard through a fitted window.
            fitted.transcribe(&bytes, None, None).await.unwrap();
            let c = warm.transcribe(&bytes, None, None).await.unwrap();
            assert_eq!(a.text, c.text, "{note}");
        }
    }

    #[tokio::test]
    async fn english_notes_are_transcribed_word_for_word() {
        for model in ["whisper-base", "whisper-tiny.en"] {
            let Some(t) = transcriber(model).await else {
                continue;
            };
            for text in [synth::SHORT_EN, synth::LONG_EN] {
                let Some(audio) = note(text, "en-us").await else {
                    return;
                };
                let got = t
                    .transcribe(&audio, Some("audio/ogg; codecs=opus"), None)
                    .await
                    .unwrap();
                let wer = synth::word_error_rate(text, &got.text);
                eprintln!(
                    "{model}: {:.1} s of audio, WER {:.3}, decode {:.0} ms, transcribe {:.0} ms",
                    got.audio_seconds, wer, got.decode_ms, got.transcribe_ms
                );
                assert!(
                    wer <= 0.10,
                    "{model}: WER {wer:.3}\n  said: {text}\n  got:  {}",
                    got.text
                );
                assert_eq!(got.language.as_deref(), Some("en"));
                if t.multilingual() {
                    let p = got.language_probability.unwrap();
                    assert!(p > 0.5, "{model}: English detected with p={p}");
                } else {
                    assert_eq!(got.language_probability, None);
                }
                assert!(got.decode_ms > 0.0 && got.transcribe_ms > 0.0);
            }
        }
    }

    /// Semi-global edit distance: the fewest word edits turning `needle` into some contiguous
    /// run of `hay`.
    fn best_match_distance(needle: &[String], hay: &[String]) -> usize {
        let mut previous = vec![0usize; hay.len() + 1];
        for (i, n) in needle.iter().enumerate() {
            let mut current = vec![i + 1; hay.len() + 1];
            for (j, h) in hay.iter().enumerate() {
                current[j + 1] = (previous[j] + usize::from(n != h))
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1);
            }
            previous = current;
        }
        previous.into_iter().min().unwrap_or(needle.len())
    }

    /// The longest run of consecutive reference words missing from the hypothesis, and of
    /// consecutive extra words in it, along a minimal word alignment. A window seam that loses
    /// or repeats speech shows up as a long run; a misheard word does not.
    fn longest_gaps(reference: &[String], hypothesis: &[String]) -> (usize, usize) {
        let (n, m) = (reference.len(), hypothesis.len());
        let mut d = vec![vec![0usize; m + 1]; n + 1];
        for (i, row) in d.iter_mut().enumerate() {
            row[0] = i;
        }
        for (j, cell) in d[0].iter_mut().enumerate() {
            *cell = j;
        }
        for i in 1..=n {
            for j in 1..=m {
                d[i][j] = (d[i - 1][j - 1] + usize::from(reference[i - 1] != hypothesis[j - 1]))
                    .min(d[i - 1][j] + 1)
                    .min(d[i][j - 1] + 1);
            }
        }
        let (mut i, mut j) = (n, m);
        let (mut deleted, mut inserted, mut run_del, mut run_ins) = (0, 0, 0, 0);
        while i > 0 || j > 0 {
            if i > 0
                && j > 0
                && d[i][j] == d[i - 1][j - 1] + usize::from(reference[i - 1] != hypothesis[j - 1])
            {
                (run_del, run_ins) = (0, 0);
                (i, j) = (i - 1, j - 1);
            } else if i > 0 && d[i][j] == d[i - 1][j] + 1 {
                run_del += 1;
                run_ins = 0;
                deleted = deleted.max(run_del);
                i -= 1;
            } else {
                run_ins += 1;
                run_del = 0;
                inserted = inserted.max(run_ins);
                j -= 1;
            }
        }
        (deleted, inserted)
    }

    #[test]
    fn gap_finder_tells_lost_speech_from_misheard_words() {
        let words = |s: &str| synth::normalised_words(s);
        let reference = words("one two three four five six seven eight");
        assert_eq!(longest_gaps(&reference, &reference), (0, 0));
        assert_eq!(
            longest_gaps(&reference, &words("one two tree four fife six seven eight")),
            (0, 0)
        );
        assert_eq!(
            longest_gaps(&reference, &words("one two six seven eight")),
            (3, 0)
        );
        assert_eq!(
            longest_gaps(
                &reference,
                &words("one two three four three four five six seven eight")
            ),
            (0, 2)
        );
        assert_eq!(
            best_match_distance(&words("three four five"), &reference),
            0
        );
        assert_eq!(best_match_distance(&words("three for five"), &reference), 1);
    }

    #[tokio::test]
    async fn long_note_keeps_the_words_at_30_and_60_seconds() {
        let Some(t) = transcriber("whisper-base").await else {
            return;
        };
        let Some(audio) = note(synth::MINUTE_EN, "en-us").await else {
            return;
        };
        let got = t.transcribe(&audio, None, Some("en")).await.unwrap();
        assert!(got.audio_seconds > 65.0, "{} s", got.audio_seconds);
        let wer = synth::word_error_rate(synth::MINUTE_EN, &got.text);
        eprintln!(
            "70 s note: WER {wer:.3}, transcribe {:.0} ms\n{}",
            got.transcribe_ms, got.text
        );
        assert!(wer <= 0.10, "WER {wer:.3}: {}", got.text);
        let reference = synth::normalised_words(synth::MINUTE_EN);
        let hypothesis = synth::normalised_words(&got.text);
        let (deleted, inserted) = longest_gaps(&reference, &hypothesis);
        assert!(
            deleted <= 2 && inserted <= 2,
            "{deleted} consecutive words lost, {inserted} repeated: {}",
            got.text
        );

        // espeak-ng speaks at an even pace, so the share of characters spoken estimates the time
        // at which each word is said.
        let words: Vec<&str> = synth::MINUTE_EN.split_whitespace().collect();
        let total_chars: usize = words.iter().map(|w| w.len() + 1).sum();
        for boundary in [30.0, 60.0] {
            let mut chars = 0usize;
            let at = words
                .iter()
                .position(|w| {
                    chars += w.len() + 1;
                    chars as f64 / total_chars as f64 * got.audio_seconds >= boundary
                })
                .unwrap();
            let window = words[at.saturating_sub(6)..(at + 6).min(words.len())].join(" ");
            let needle = synth::normalised_words(&window);
            let distance = best_match_distance(&needle, &hypothesis);
            // A few misheard words are tolerated (espeak-ng is no native speaker); lost speech
            // would leave most of the window unmatched.
            assert!(
                distance <= 3,
                "words around {boundary} s ({window:?}) missing ({distance} edits) in: {}",
                got.text
            );
        }
    }

    #[tokio::test]
    async fn spanish_is_detected_and_a_given_language_is_used() {
        let Some(t) = transcriber("whisper-base").await else {
            return;
        };
        let Some(spanish) = note(synth::SPANISH, "es").await else {
            return;
        };
        // "auto" asks for detection, like no language at all.
        let got = t.transcribe(&spanish, None, Some("auto")).await.unwrap();
        eprintln!(
            "es: {:?} p={:?}: {}",
            got.language, got.language_probability, got.text
        );
        assert_eq!(got.language.as_deref(), Some("es"), "{}", got.text);
        assert!(got.language_probability.unwrap() > 0.5);
        let wer = synth::word_error_rate(synth::SPANISH, &got.text);
        assert!(wer <= 0.2, "Spanish WER {wer:.3}: {}", got.text);

        // espeak-ng's Portuguese is too foreign-sounding for whisper-base to recognise the
        // language (see `portuguese_is_detected`), but told the language it transcribes it.
        let Some(portuguese) = note(synth::PORTUGUESE, "pt").await else {
            return;
        };
        let got = t
            .transcribe(&portuguese, None, Some("pt-BR"))
            .await
            .unwrap();
        eprintln!("pt (given): {}", got.text);
        assert_eq!(got.language.as_deref(), Some("pt"));
        assert_eq!(got.language_probability, None);
        let wer = synth::word_error_rate(synth::PORTUGUESE, &got.text);
        assert!(wer <= 0.35, "Portuguese WER {wer:.3}: {}", got.text);
    }

    /// Measured: whisper-base takes espeak-ng's Portuguese (voices `pt`, `pt-br`, klatt
    /// variants, slower rates) for Hungarian, Latin, Thai or Finnish; its French for
    /// Vietnamese. Spanish, German and Italian are recognised. Run with `--ignored` against
    /// recordings of natural speech.
    #[tokio::test]
    #[ignore = "espeak-ng Portuguese is not recognised as Portuguese by whisper-base"]
    async fn portuguese_is_detected() {
        let Some(t) = transcriber("whisper-base").await else {
            return;
        };
        let Some(audio) = note(synth::PORTUGUESE, "pt").await else {
            return;
        };
        let got = t.transcribe(&audio, None, None).await.unwrap();
        assert_eq!(got.language.as_deref(), Some("pt"), "{got:?}");
    }

    #[tokio::test]
    async fn broken_audio_and_bad_requests_fail_cleanly() {
        let Some(t) = transcriber("whisper-tiny.en").await else {
            return;
        };
        assert!(matches!(
            t.transcribe(b"", Some("audio/ogg"), None).await,
            Err(SpeechError::Empty)
        ));
        let random: Vec<u8> = (0u32..20_000)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        assert!(matches!(
            t.transcribe(&random, None, None).await,
            Err(SpeechError::Unsupported(_) | SpeechError::Corrupt(_))
        ));
        assert!(matches!(
            t.transcribe(b"just some text\n", Some("text/plain"), None)
                .await,
            Err(SpeechError::Unsupported(_))
        ));
        let Some(audio) = note(synth::SHORT_EN, "en-us").await else {
            return;
        };
        assert!(matches!(
            t.transcribe(&audio[..audio.len() * 2 / 3], Some("audio/ogg"), None)
                .await,
            Err(SpeechError::Corrupt(_))
        ));
        assert!(matches!(
            t.transcribe(&audio, None, Some("klingon")).await,
            Err(SpeechError::Unsupported(m)) if m.contains("klingon")
        ));
        // English-only model: another language is transcribed as English, and says so.
        let got = t.transcribe(&audio, None, Some("es")).await.unwrap();
        assert_eq!(got.language.as_deref(), Some("en"));

        let short = WhisperTranscriber {
            max_audio_secs: 2,
            ..t.clone()
        };
        assert!(matches!(
            short.transcribe(&audio, None, None).await,
            Err(SpeechError::TooLong { limit: 2, .. })
        ));
    }

    #[tokio::test]
    async fn models_resolve_by_name_or_path_and_refuse_the_rest() {
        let tmp = tempfile::tempdir().unwrap();
        let store = ModelStore::new(tmp.path().join("cache"), BTreeMap::new());
        let fake = tmp.path().join("fake.bin");
        std::fs::write(&fake, b"GGUF not whisper").unwrap();
        let (name, path) = resolve_model(&store, fake.to_str().unwrap()).await.unwrap();
        assert_eq!(
            (name.as_str(), path.as_path()),
            ("fake.bin", fake.as_path())
        );
        let settings = SpeechSettings {
            model: fake.to_string_lossy().into_owned(),
            ..SpeechSettings::default()
        };
        match WhisperTranscriber::load(&store, &settings).await {
            Err(SpeechError::Model(m)) => {
                assert!(m.contains("not a whisper.cpp ggml model"), "{m}")
            }
            other => panic!("expected a model error, got {other:?}"),
        }
        for bad in ["all-minilm-l6-v2", "whisper-huge", "/nonexistent/ggml.bin"] {
            match resolve_model(&store, bad).await {
                Err(SpeechError::Model(m)) => assert!(m.contains("whisper-base"), "{bad}: {m}"),
                other => panic!("{bad}: expected a model error, got {other:?}"),
            }
        }
        assert!(whisper_models().contains(&"whisper-tiny.en"));
    }

    #[tokio::test]
    async fn cli_helper_reports_text_and_timings() {
        let Some(store) = store_with("whisper-tiny.en").await else {
            return;
        };
        let Some(audio) = note(synth::SHORT_EN, "en-us").await else {
            return;
        };
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("note.ogg");
        std::fs::write(&file, &audio).unwrap();
        let settings = SpeechSettings {
            threads: 1,
            ..SpeechSettings::default()
        };
        let out = transcribe_file(&store, &settings, &file, Some("whisper-tiny.en"), None)
            .await
            .unwrap();
        assert_eq!(out.model, "whisper-tiny.en");
        assert!(out.real_time_factor() > 0.0);
        let printed = out.to_string();
        assert!(printed.starts_with(&out.transcript.text), "{printed}");
        assert!(printed.contains("real-time factor"), "{printed}");
        match transcribe_file(
            &store,
            &settings,
            &tmp.path().join("absent.ogg"),
            None,
            None,
        )
        .await
        {
            Err(SpeechError::Read(m)) => assert!(m.contains("absent.ogg"), "{m}"),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn converted_models_match_the_pinned_checksums() {
        use sha2::{Digest, Sha256};
        for (name, file, sha) in [
            (
                "whisper-tiny.en",
                "ggml-tiny.en.bin",
                "36f81832629183d276941724caa2619fca8886a9919121c83147adab9e39c959",
            ),
            (
                "whisper-base",
                "ggml-base.bin",
                "c81ca1c3f5660bc549ba251000f9ac09e4bf41a0b4a7d617e549009ab9c66b38",
            ),
            (
                "whisper-base-q8_0",
                "ggml-base-q8_0.bin",
                "364167dabed3601a49e3f26114c3b175b4d0742dc36f60a7a2b7241cc4c02947",
            ),
            (
                "whisper-base-q5_1",
                "ggml-base-q5_1.bin",
                "c8a178f15e34b6b9d5e05d36f9997351cd9e56d8ab9e35bf0623fa9f6521c3b7",
            ),
        ] {
            let Some(store) = store_with(name).await else {
                continue;
            };
            let files = store.ensure(name).await.unwrap();
            let bytes = std::fs::read(files.path(file).unwrap()).unwrap();
            assert_eq!(hex::encode(Sha256::digest(&bytes)), sha, "{name}");
        }
    }
}
