//! Voice notes: audio decoding (WhatsApp's OGG/Opus and common formats, to 16 kHz mono), the
//! quiet around a note's speech, and the [`Transcriber`] trait with its whisper.cpp
//! implementation.

pub mod convert;
pub mod decode;
pub mod silence;
pub mod synth;
pub mod whisper;

pub use whisper::{transcribe_file, FileTranscript, OnDemandWhisper, WhisperTranscriber};

use async_trait::async_trait;
use serde::Serialize;

/// A speech failure.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SpeechError {
    /// The audio is empty.
    #[error("the audio is empty")]
    Empty,
    /// The audio is damaged or cut short.
    #[error("the audio is damaged: {0}")]
    Corrupt(String),
    /// The format is not one we decode.
    #[error("unsupported audio format: {0}")]
    Unsupported(String),
    /// Longer than the configured limit.
    #[error("the audio is {seconds:.0} s long, over the limit of {limit} s")]
    TooLong {
        /// Its duration.
        seconds: f64,
        /// The limit.
        limit: u64,
    },
    /// The model could not be loaded.
    #[error("speech model unavailable: {0}")]
    Model(String),
    /// Transcription failed.
    #[error("transcription failed: {0}")]
    Transcription(String),
    /// The audio file could not be read.
    #[error("cannot read the audio: {0}")]
    Read(String),
}

/// What a voice note said.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Transcript {
    /// The text.
    pub text: String,
    /// Language spoken (ISO 639-1), given or detected.
    pub language: Option<String>,
    /// Probability of the detected language (when detected).
    pub language_probability: Option<f32>,
    /// Length of the audio, in seconds.
    pub audio_seconds: f64,
    /// Time spent decoding, in milliseconds.
    pub decode_ms: f64,
    /// Time spent transcribing, in milliseconds.
    pub transcribe_ms: f64,
}

/// Turns speech into text.
#[async_trait]
pub trait Transcriber: Send + Sync {
    /// Model name, for logs.
    fn name(&self) -> &str;
    /// Whether the model can be used: loads it now if it loads lazily.
    async fn ready(&self) -> Result<(), SpeechError> {
        Ok(())
    }
    /// Decodes and transcribes `audio` (any supported container; `mime` is a hint). `language`
    /// is an ISO 639-1 code, or `None` to detect it.
    async fn transcribe(
        &self,
        audio: &[u8],
        mime: Option<&str>,
        language: Option<&str>,
    ) -> Result<Transcript, SpeechError>;
}
