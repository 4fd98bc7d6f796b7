//! Speech real-time factor: decode + transcribe time over audio time for espeak-ng voice notes
//! of about 5 and 30 seconds, for each Whisper model in the cache and each thread count.

use std::fmt;
use std::path::Path;

use crate::config::SpeechSettings;
use crate::models::{ModelStatus, ModelStore};
use crate::speech::synth::{self, SynthError};
use crate::speech::whisper::{whisper_models, WhisperTranscriber};
use crate::speech::{SpeechError, Transcriber};

/// The goal on a quiet machine: whisper-base, a 30 s note, 2 threads.
pub const TARGET_RTF: f64 = 0.1;

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum SpeechBenchError {
    /// The voice notes could not be made.
    #[error(transparent)]
    Synth(#[from] SynthError),
    /// Loading or running a model failed.
    #[error(transparent)]
    Speech(#[from] SpeechError),
}

/// One measured combination of model, clip and thread count.
#[derive(Debug, Clone)]
pub struct SpeechRun {
    /// Model name.
    pub model: String,
    /// Which clip ("5 s", "30 s").
    pub clip: &'static str,
    /// Length of the clip, in seconds.
    pub audio_seconds: f64,
    /// Threads per transcription.
    pub threads: usize,
    /// Decoding time of the median run, in milliseconds.
    pub decode_ms: f64,
    /// Transcription time of the median run, in milliseconds.
    pub transcribe_ms: f64,
    /// Word error rate of the transcript against the spoken text.
    pub wer: f64,
}

impl SpeechRun {
    /// Processing seconds per audio second.
    pub fn rtf(&self) -> f64 {
        (self.decode_ms + self.transcribe_ms) / 1000.0 / self.audio_seconds.max(f64::EPSILON)
    }
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone, Default)]
pub struct SpeechReport {
    /// Measurements, by model, clip and threads.
    pub runs: Vec<SpeechRun>,
    /// Models not measured, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Timed repetitions per measurement (the median is kept).
    pub repeats: usize,
    /// The 1-minute load average when the benchmark started, when known: ggml's threads
    /// busy-wait, so a busy machine slows every figure down a lot.
    pub load_average: Option<f64>,
    /// The language given to the models, or `None` when multilingual models detected it (one
    /// more encoder pass per note).
    pub language: Option<String>,
}

impl SpeechReport {
    /// The run the target is stated for, if it was measured.
    pub fn target_run(&self) -> Option<&SpeechRun> {
        self.runs
            .iter()
            .find(|r| r.model == "whisper-base" && r.clip == "30 s" && r.threads == 2)
    }
}

impl fmt::Display for SpeechReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "speech real-time factor: (decode + transcribe) / audio, median of {} run(s)",
            self.repeats
        )?;
        match &self.language {
            Some(l) => writeln!(f, "language given: {l}")?,
            None => writeln!(
                f,
                "language detected by multilingual models (one more encoder pass per note)"
            )?,
        }
        if let Some(load) = self.load_average {
            writeln!(f, "load average at start: {load:.2}")?;
        }
        writeln!(
            f,
            "{:<18} {:>5} {:>8} {:>7} {:>9} {:>12} {:>7} {:>6}",
            "model", "clip", "audio", "threads", "decode", "transcribe", "RTF", "WER"
        )?;
        for r in &self.runs {
            writeln!(
                f,
                "{:<18} {:>5} {:>6.1} s {:>7} {:>6.0} ms {:>9.0} ms {:>7.3} {:>6.3}",
                r.model,
                r.clip,
                r.audio_seconds,
                r.threads,
                r.decode_ms,
                r.transcribe_ms,
                r.rtf(),
                r.wer
            )?;
        }
        for (model, why) in &self.skipped {
            writeln!(f, "skipped {model}: {why}")?;
        }
        match self.target_run() {
            Some(r) => write!(
                f,
                "target whisper-base, 30 s, 2 threads: RTF {:.3} (goal <= {TARGET_RTF}: {})",
                r.rtf(),
                if r.rtf() <= TARGET_RTF {
                    "met"
                } else {
                    "missed"
                }
            ),
            None => write!(f, "target whisper-base, 30 s, 2 threads: not measured"),
        }
    }
}

fn load_average() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Measures every Whisper model present in `models` (none is fetched) on a ~5 s and a ~30 s
/// English voice note, with each of `threads`, `repeats` times each after one warm-up;
/// `language` is passed to the models (`None`: detect it, as agents set to auto-detect do).
/// `scratch` holds the generated audio while it is made.
pub async fn run(
    models: &ModelStore,
    settings: &SpeechSettings,
    threads: &[usize],
    repeats: usize,
    language: Option<&str>,
    scratch: &Path,
) -> Result<SpeechReport, SpeechBenchError> {
    let repeats = repeats.max(1);
    let mut report = SpeechReport {
        repeats,
        load_average: load_average(),
        language: language.map(str::to_owned),
        ..SpeechReport::default()
    };
    let clips = [
        (
            "5 s",
            synth::SHORT_EN,
            synth::voice_note(synth::SHORT_EN, "en-us", scratch).await?,
        ),
        (
            "30 s",
            synth::LONG_EN,
            synth::voice_note(synth::LONG_EN, "en-us", scratch).await?,
        ),
    ];
    for name in whisper_models() {
        match models.status(name).await {
            Ok(ModelStatus::Ready { .. } | ModelStatus::Override { .. }) => {}
            Ok(status) => {
                report.skipped.push((
                    name.to_string(),
                    format!("{status:?} (fetch it with `palaver models fetch {name}`)"),
                ));
                continue;
            }
            Err(e) => {
                report.skipped.push((name.to_string(), e.to_string()));
                continue;
            }
        }
        let model_settings = SpeechSettings {
            model: name.to_string(),
            max_concurrent: 1,
            ..settings.clone()
        };
        let base = WhisperTranscriber::load(models, &model_settings).await?;
        // The first run allocates whisper's buffers and warms the caches.
        base.transcribe(&clips[0].2, None, language).await?;
        for (clip, text, audio) in &clips {
            for &t in threads {
                let transcriber = base.with_threads(t);
                let mut samples = Vec::with_capacity(repeats);
                for _ in 0..repeats {
                    samples.push(transcriber.transcribe(audio, None, language).await?);
                }
                samples.sort_by(|a, b| {
                    (a.decode_ms + a.transcribe_ms).total_cmp(&(b.decode_ms + b.transcribe_ms))
                });
                let median = &samples[samples.len() / 2];
                let run = SpeechRun {
                    model: name.to_string(),
                    clip,
                    audio_seconds: median.audio_seconds,
                    threads: t,
                    decode_ms: median.decode_ms,
                    transcribe_ms: median.transcribe_ms,
                    wer: synth::word_error_rate(text, &median.text),
                };
                tracing::info!(
                    model = name,
                    clip,
                    threads = t,
                    rtf = run.rtf(),
                    "speech benchmark step"
                );
                report.runs.push(run);
            }
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_row(model: &str, clip: &'static str, threads: usize, ms: f64) -> SpeechRun {
        SpeechRun {
            model: model.into(),
            clip,
            audio_seconds: 30.0,
            threads,
            decode_ms: 20.0,
            transcribe_ms: ms,
            wer: 0.0,
        }
    }

    #[test]
    fn report_shows_each_run_and_the_target() {
        let report = SpeechReport {
            runs: vec![
                run_row("whisper-base", "30 s", 1, 4_000.0),
                run_row("whisper-base", "30 s", 2, 2_380.0),
            ],
            skipped: vec![("whisper-tiny.en".into(), "Missing".into())],
            repeats: 3,
            load_average: Some(0.42),
            language: None,
        };
        assert!((report.runs[1].rtf() - 0.08).abs() < 1e-9);
        let text = report.to_string();
        assert!(text.contains("median of 3"), "{text}");
        assert!(text.contains("load average at start: 0.42"), "{text}");
        assert!(text.contains("language detected"), "{text}");
        assert!(text.contains("0.134"), "{text}");
        assert!(text.contains("skipped whisper-tiny.en"), "{text}");
        assert!(text.ends_with("RTF 0.080 (goal <= 0.1: met)"), "{text}");

        let slow = SpeechReport {
            runs: vec![run_row("whisper-base", "30 s", 2, 9_000.0)],
            ..report.clone()
        };
        assert!(slow.to_string().ends_with("missed)"));
        let none = SpeechReport::default();
        assert!(none.to_string().ends_with("not measured"));
    }
}
