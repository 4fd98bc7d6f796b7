//! Speech real-time factor: decode + transcribe time over audio time for espeak-ng voice notes
//! of about 5 and 30 seconds, for each Whisper model in the cache and each thread count. A
//! multilingual model is measured twice in the same run: detecting the language from the first
//! `speech.detect_seconds` of the note (the settings') and from a whole 30 s window (the earlier
//! way).

use std::fmt;
use std::path::Path;

use crate::config::SpeechSettings;
use crate::models::{ModelStatus, ModelStore};
use crate::speech::synth::{self, SynthError};
use crate::speech::whisper::{whisper_models, WhisperTranscriber};
use crate::speech::{SpeechError, Transcriber};

/// The goal on a quiet machine: whisper-base, a 30 s note, 2 threads.
pub const TARGET_RTF: f64 = 0.1;

/// The goal for a 5 s note with whisper-base and 2 threads, in milliseconds.
pub const TARGET_SHORT_MS: f64 = 1000.0;

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
    /// Seconds of the note that language detection heard (30: a whole window), or `None` for
    /// a model that detects nothing.
    pub detect_seconds: Option<u64>,
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
        self.total_ms() / 1000.0 / self.audio_seconds.max(f64::EPSILON)
    }

    /// Decoding and transcription time, in milliseconds.
    pub fn total_ms(&self) -> f64 {
        self.decode_ms + self.transcribe_ms
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
    /// The settings' run of whisper-base with 2 threads on `clip` (the first measured, not the
    /// whole-window one unless the settings say so), if it was measured.
    pub fn target_run(&self, clip: &str) -> Option<&SpeechRun> {
        self.runs
            .iter()
            .find(|r| r.model == "whisper-base" && r.clip == clip && r.threads == 2)
    }

    /// The whole-window detection run matching `run` (same model, clip and threads) when `run`
    /// detected from fewer seconds, if measured.
    fn whole(&self, run: &SpeechRun) -> Option<&SpeechRun> {
        run.detect_seconds.filter(|s| *s < 30)?;
        self.runs.iter().find(|r| {
            r.detect_seconds == Some(30)
                && r.model == run.model
                && r.clip == run.clip
                && r.threads == run.threads
        })
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
            "{:<18} {:>5} {:>8} {:>7} {:>7} {:>9} {:>12} {:>7} {:>6} {:>9}",
            "model",
            "clip",
            "audio",
            "threads",
            "detect",
            "decode",
            "transcribe",
            "RTF",
            "WER",
            "vs 30 s"
        )?;
        for r in &self.runs {
            let ratio = match self.whole(r) {
                Some(w) => format!("{:.2}x", r.total_ms() / w.total_ms().max(f64::EPSILON)),
                None => "-".into(),
            };
            writeln!(
                f,
                "{:<18} {:>5} {:>6.1} s {:>7} {:>7} {:>6.0} ms {:>9.0} ms {:>7.3} {:>6.3} {:>9}",
                r.model,
                r.clip,
                r.audio_seconds,
                r.threads,
                r.detect_seconds
                    .map_or("-".to_string(), |s| format!("{s} s")),
                r.decode_ms,
                r.transcribe_ms,
                r.rtf(),
                r.wer,
                ratio
            )?;
        }
        for (model, why) in &self.skipped {
            writeln!(f, "skipped {model}: {why}")?;
        }
        let verdict = |met: bool| if met { "met" } else { "missed" };
        match self.target_run("5 s") {
            Some(r) => writeln!(
                f,
                "target whisper-base, 5 s, 2 threads: {:.0} ms (goal <= {TARGET_SHORT_MS:.0} ms: {})",
                r.total_ms(),
                verdict(r.total_ms() <= TARGET_SHORT_MS)
            )?,
            None => writeln!(f, "target whisper-base, 5 s, 2 threads: not measured")?,
        }
        match self.target_run("30 s") {
            Some(r) => write!(
                f,
                "target whisper-base, 30 s, 2 threads: RTF {:.3} (goal <= {TARGET_RTF}: {})",
                r.rtf(),
                verdict(r.rtf() <= TARGET_RTF)
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
        let loaded = WhisperTranscriber::load(models, &model_settings).await?;
        // The settings' detection first, then the whole window's, when there is any choice.
        let detections: Vec<Option<u64>> = match (loaded.multilingual(), language) {
            (true, None) if settings.detect_seconds < 30 => {
                vec![Some(settings.detect_seconds), Some(30)]
            }
            (true, None) => vec![Some(30)],
            _ => vec![None],
        };
        for (clip, text, audio) in &clips {
            for (&t, detect) in threads
                .iter()
                .flat_map(|t| detections.iter().map(move |d| (t, *d)))
            {
                let transcriber = loaded
                    .with_threads(t)
                    .with_detect_seconds(detect.unwrap_or(30));
                // The first run allocates whisper's buffers (and a detection state) and warms
                // the caches.
                transcriber.transcribe(audio, None, language).await?;
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
                    detect_seconds: detect,
                    decode_ms: median.decode_ms,
                    transcribe_ms: median.transcribe_ms,
                    wer: synth::word_error_rate(text, &median.text),
                };
                tracing::info!(
                    model = name,
                    clip,
                    threads = t,
                    detect_seconds = detect,
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

    fn run_row(clip: &'static str, detect: u64, ms: f64) -> SpeechRun {
        SpeechRun {
            model: "whisper-base".into(),
            clip,
            audio_seconds: if clip == "5 s" { 5.0 } else { 30.0 },
            threads: 2,
            detect_seconds: Some(detect),
            decode_ms: 20.0,
            transcribe_ms: ms,
            wer: 0.0,
        }
    }

    #[test]
    fn report_shows_each_run_its_gain_and_the_targets() {
        let report = SpeechReport {
            runs: vec![
                run_row("5 s", 10, 730.0),
                run_row("5 s", 30, 2_980.0),
                run_row("30 s", 10, 2_380.0),
                run_row("30 s", 30, 4_000.0),
            ],
            skipped: vec![("whisper-tiny.en".into(), "Missing".into())],
            repeats: 3,
            load_average: Some(0.42),
            language: None,
        };
        assert!((report.runs[2].rtf() - 0.08).abs() < 1e-9);
        let text = report.to_string();
        assert!(text.contains("median of 3"), "{text}");
        assert!(text.contains("load average at start: 0.42"), "{text}");
        assert!(text.contains("language detected"), "{text}");
        // Detection from 10 s against the whole window's, on the same clip.
        assert!(text.contains("0.25x"), "{text}");
        assert!(text.contains("0.60x"), "{text}");
        assert!(text.contains("skipped whisper-tiny.en"), "{text}");
        assert!(
            text.contains("5 s, 2 threads: 750 ms (goal <= 1000 ms: met)"),
            "{text}"
        );
        assert!(text.ends_with("RTF 0.080 (goal <= 0.1: met)"), "{text}");

        // The targets are the settings' runs (measured first), not the whole window's.
        let whole_first = SpeechReport {
            runs: vec![run_row("30 s", 30, 2_380.0), run_row("30 s", 10, 9_000.0)],
            ..report.clone()
        };
        assert!(whole_first.to_string().ends_with("(goal <= 0.1: met)"));
        let slow = SpeechReport {
            runs: vec![run_row("5 s", 10, 1_500.0), run_row("30 s", 10, 9_000.0)],
            ..report.clone()
        };
        let text = slow.to_string();
        assert!(text.contains("1520 ms (goal <= 1000 ms: missed)"), "{text}");
        assert!(text.ends_with("missed)"), "{text}");
        assert!(SpeechReport::default()
            .to_string()
            .ends_with("not measured"));
    }
}
