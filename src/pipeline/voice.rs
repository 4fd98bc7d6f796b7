//! Stage 2, voice: a voice note is fetched through its provider (or read inline), transcribed,
//! and its transcript stored on the message, after which the turn is handled like text. When the
//! agent does not transcribe, or transcription fails, the agent's default voice reply is sent.

use std::sync::Arc;

use super::{Pipeline, PipelineError};
use crate::channels::{MediaError, MediaSource};
use crate::domain::{AgentConfig, Conversation, Message, MessageKind};
use crate::speech::{SpeechError, Transcriber};

/// Transcription and the media it needs.
pub struct Voice {
    /// The speech model.
    pub transcriber: Arc<dyn Transcriber>,
    /// Media download.
    pub media: Arc<dyn MediaSource>,
}

/// Why a turn's voice note was not heard (the turn then gets the agent's default voice reply).
pub type Unheard = String;

/// Transcribes the turn's voice notes in place. `Ok(Err(why))` means: answer with the agent's
/// default voice reply instead of handling the turn.
pub async fn transcribe_turn(
    pipeline: &Pipeline,
    conversation: &Conversation,
    config: &AgentConfig,
    turn: &mut [Message],
) -> Result<Result<(), Unheard>, PipelineError> {
    let pending: Vec<usize> = turn
        .iter()
        .enumerate()
        .filter(|(_, m)| m.kind == MessageKind::Audio && m.transcript.is_none())
        .map(|(i, _)| i)
        .collect();
    if pending.is_empty() {
        return Ok(Ok(()));
    }
    let Some(voice) = pipeline.voice.as_ref().filter(|_| config.voice.transcribe) else {
        return Ok(Err("the agent does not transcribe voice notes".into()));
    };
    for i in pending {
        let message = &mut turn[i];
        let Some(media) = message.details.media.clone() else {
            return Ok(Err("the voice note came without its media".into()));
        };
        let audio = match voice.media.fetch(conversation, &media).await {
            Ok(audio) => audio,
            Err(MediaError::Unavailable(e)) => return Err(PipelineError::Media(e)),
            Err(MediaError::Gone(e)) => {
                tracing::warn!(message = %message.id, error = %e, "voice note cannot be fetched");
                return Ok(Err(e));
            }
        };
        let language = config.voice.language.as_deref();
        match voice
            .transcriber
            .transcribe(&audio, media.mime_type.as_deref(), language)
            .await
        {
            Ok(t) if !t.text.trim().is_empty() => {
                tracing::info!(
                    message = %message.id,
                    seconds = t.audio_seconds,
                    transcribe_ms = t.transcribe_ms,
                    language = t.language.as_deref().unwrap_or("-"),
                    "voice note transcribed"
                );
                message.details.transcript_language = t.language.clone();
                message.details.transcript_language_probability = t.language_probability;
                message.transcript = Some(t.text.trim().to_string());
                pipeline
                    .store
                    .set_transcript(message.id, t.text.trim(), &message.details)
                    .await?;
            }
            Ok(_) => {
                tracing::info!(message = %message.id, "voice note had no speech");
                return Ok(Err("no speech was heard in the voice note".into()));
            }
            Err(e @ (SpeechError::Model(_) | SpeechError::Transcription(_))) => {
                tracing::error!(message = %message.id, error = %e, "transcription failed");
                return Ok(Err(e.to_string()));
            }
            Err(e) => {
                tracing::warn!(message = %message.id, error = %e, "voice note refused");
                return Ok(Err(e.to_string()));
            }
        }
    }
    Ok(Ok(()))
}
