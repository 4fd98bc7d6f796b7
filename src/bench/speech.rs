//! Speech, step by step: each way of transcribing a voice note measured against the one before
//! it in the same run, starting from the previous settings (whisper-base with f16 weights,
//! hearing the whole note, a new whisper state per note). A step is one change: the state kept
//! warm between notes, language detection hearing a window cut to the note (in 5 s steps)
//! instead of 10 s, the quiet around the speech cut, the weights quantized (q8_0, then q5_1
//! instead), the encoder's window sized to the note plus 2 s or 10 s, and English-only tiny.en
//! for reference. Every
//! step transcribes an espeak-ng note of about 5 s and one of about 30 s (the median of the
//! repeats, steps interleaved so the machine's other work falls on all of them alike), and
//! the shipped voice suite (`eval/audio`) plus synthetic Spanish and Portuguese notes for the
//! word error rate and language detection per language.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use crate::config::SpeechSettings;
use crate::models::{ModelStatus, ModelStore};
use crate::speech::synth::{self, SynthError};
use crate::speech::whisper::WhisperTranscriber;
use crate::speech::{SpeechError, Transcriber};

/// The goal for a 30 s note with the default model and 2 threads.
pub const TARGET_RTF: f64 = 0.1;

/// The goal for a 5 s note with the default model and 2 threads, in milliseconds.
pub const TARGET_SHORT_MS: f64 = 1000.0;

/// The shipped voice notes of `eval/voice.yaml` (in `eval/audio`): file, language, words said.
pub const VOICE_SUITE: &[(&str, &str, &str)] = &[
    (
        "saturday-hours.ogg",
        "en",
        "Hello, I would like to know the opening hours of your shop on Saturday.",
    ),
    (
        "payment-methods.ogg",
        "en",
        "Which payment methods do you accept?",
    ),
    (
        "damaged-cake-refund.ogg",
        "en",
        "Can I get a refund if my cake arrives damaged?",
    ),
    (
        "minimum-order.ogg",
        "en",
        "Hello. What is the minimum order for home delivery?",
    ),
    (
        "humano-es.ogg",
        "es",
        "Quiero hablar con un humano, por favor.",
    ),
    (
        "talk-to-human.ogg",
        "en",
        "I want to talk to a human, please.",
    ),
];

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum SpeechBenchError {
    /// The voice notes could not be made.
    #[error(transparent)]
    Synth(#[from] SynthError),
    /// Loading or running a model failed.
    #[error(transparent)]
    Speech(#[from] SpeechError),
    /// A shipped voice note could not be read.
    #[error("{path}: {reason}")]
    Suite {
        /// The note.
        path: String,
        /// Why.
        reason: String,
    },
}

/// One way of transcribing, measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// What changed from the step before.
    pub label: &'static str,
    /// Model name in the catalogue.
    pub model: &'static str,
    /// Whether the quiet around the speech was cut.
    pub trim_silence: bool,
    /// Whether transcription states were kept between notes.
    pub warm_state: bool,
    /// Whether language detection heard a window cut to the note.
    pub detect_to_note: bool,
    /// Seconds of encoder window beyond the note (`None`: the whole 30 s window).
    pub window_margin: Option<u64>,
}

impl Step {
    /// Whether `settings` transcribe as this step does.
    pub fn chosen_by(&self, settings: &SpeechSettings) -> bool {
        self.model == settings.model
            && self.trim_silence == settings.trim_silence
            && self.warm_state == settings.warm_state
            && self.detect_to_note == settings.detect_to_note
            && self.window_margin == settings.window_margin_secs
    }
}

/// The steps in order: the previous settings first, each later one changing one thing.
pub const STEPS: &[Step] = &[
    Step {
        label: "previous settings",
        model: "whisper-base",
        trim_silence: false,
        warm_state: false,
        detect_to_note: false,
        window_margin: None,
    },
    Step {
        label: "+ warm state",
        model: "whisper-base",
        trim_silence: false,
        warm_state: true,
        detect_to_note: false,
        window_margin: None,
    },
    Step {
        label: "+ detection cut to note",
        model: "whisper-base",
        trim_silence: false,
        warm_state: true,
        detect_to_note: true,
        window_margin: None,
    },
    Step {
        label: "+ trim silence",
        model: "whisper-base",
        trim_silence: true,
        warm_state: true,
        detect_to_note: true,
        window_margin: None,
    },
    Step {
        label: "q8_0 weights, no trim",
        model: "whisper-base-q8_0",
        trim_silence: false,
        warm_state: true,
        detect_to_note: true,
        window_margin: None,
    },
    Step {
        label: "q5_1 for q8_0",
        model: "whisper-base-q5_1",
        trim_silence: false,
        warm_state: true,
        detect_to_note: true,
        window_margin: None,
    },
    Step {
        label: "f16, window note+2 s",
        model: "whisper-base",
        trim_silence: false,
        warm_state: true,
        detect_to_note: true,
        window_margin: Some(2),
    },
    Step {
        label: "window note+10 s",
        model: "whisper-base",
        trim_silence: false,
        warm_state: true,
        detect_to_note: true,
        window_margin: Some(10),
    },
    Step {
        label: "tiny.en (English only)",
        model: "whisper-tiny.en",
        trim_silence: false,
        warm_state: true,
        detect_to_note: true,
        window_margin: None,
    },
];

/// Word errors against reference words, summed over notes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Wer {
    /// Word edits (substitutions, insertions, deletions), summed.
    pub errors: f64,
    /// Reference words, summed.
    pub words: usize,
}

impl Wer {
    /// Errors over words.
    pub fn rate(&self) -> f64 {
        self.errors / self.words.max(1) as f64
    }

    fn add(&mut self, reference: &str, hypothesis: &str) {
        let words = synth::normalised_words(reference).len();
        self.errors += synth::word_error_rate(reference, hypothesis) * words as f64;
        self.words += words;
    }
}

/// What one language's notes gave under one step.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct LanguageScore {
    /// Word error rate over the language's notes.
    pub wer: Wer,
    /// Notes whose language was detected right.
    pub detected: usize,
    /// Notes whose language was detected (0 when it was given or the model is English-only).
    pub detections: usize,
}

/// One step's measurements.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRun {
    /// The step.
    pub step: Step,
    /// Decode + transcription of the ~5 s note, median, in milliseconds.
    pub short_ms: f64,
    /// Length of the ~5 s note, in seconds.
    pub short_seconds: f64,
    /// Decode + transcription of the ~30 s note, median, in milliseconds.
    pub long_ms: f64,
    /// Length of the ~30 s note, in seconds.
    pub long_seconds: f64,
    /// Word error rate of the two timed notes (English).
    pub timed_wer: f64,
    /// The voice suite and synthetic notes, by language (ISO 639-1).
    pub languages: BTreeMap<String, LanguageScore>,
    /// Whether the model hears only English.
    pub english_only: bool,
}

impl StepRun {
    /// Processing seconds per audio second on the ~30 s note.
    pub fn long_rtf(&self) -> f64 {
        self.long_ms / 1000.0 / self.long_seconds.max(f64::EPSILON)
    }

    /// Word error rate over every language the model hears.
    pub fn wer(&self) -> Wer {
        let mut total = Wer::default();
        for score in self.languages.values() {
            total.errors += score.wer.errors;
            total.words += score.wer.words;
        }
        total
    }

    /// Right detections and detections, over every language.
    pub fn detection(&self) -> (usize, usize) {
        self.languages
            .values()
            .fold((0, 0), |(r, n), s| (r + s.detected, n + s.detections))
    }
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone, Default)]
pub struct SpeechReport {
    /// Measured steps, in order.
    pub runs: Vec<StepRun>,
    /// Steps not measured, with the reason.
    pub skipped: Vec<(String, String)>,
    /// Timed repetitions per note (the median is kept).
    pub repeats: usize,
    /// Threads per transcription.
    pub threads: usize,
    /// The 1-minute load average when the benchmark started, when known: ggml's threads
    /// busy-wait, so a busy machine slows every figure down a lot.
    pub load_average: Option<f64>,
    /// The language given to the models, or `None` when multilingual models detected it.
    pub language: Option<String>,
    /// The speech settings: the step they choose is the one the targets are read from.
    pub settings: SpeechSettings,
    /// Shipped voice notes not found (the suite's directory is missing).
    pub suite_missing: Option<String>,
}

impl SpeechReport {
    /// The step the settings choose, if measured.
    pub fn default_run(&self) -> Option<&StepRun> {
        self.runs.iter().find(|r| r.step.chosen_by(&self.settings))
    }

    /// The previous settings' step, if measured.
    pub fn previous_run(&self) -> Option<&StepRun> {
        self.runs.iter().find(|r| r.step == STEPS[0])
    }
}

fn ratio(a: f64, b: f64) -> String {
    format!("{:.2}x", a / b.max(f64::EPSILON))
}

impl fmt::Display for SpeechReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "speech, step by step: each step against the one before, measured in the same run \
             (median of {} interleaved run(s), {} thread(s))",
            self.repeats, self.threads
        )?;
        match &self.language {
            Some(l) => writeln!(f, "language given: {l}")?,
            None => writeln!(f, "language detected by multilingual models")?,
        }
        if let Some(load) = self.load_average {
            writeln!(f, "load average at start: {load:.2}")?;
        }
        writeln!(
            f,
            "{:<24} {:<18} {:>9} {:>7} {:>10} {:>7} {:>7} {:>8} {:>8}",
            "step",
            "model",
            "5 s note",
            "vs prev",
            "30 s RTF",
            "vs prev",
            "WER",
            "detected",
            "vs base"
        )?;
        let base = self.previous_run();
        for (i, r) in self.runs.iter().enumerate() {
            let previous = i.checked_sub(1).and_then(|p| self.runs.get(p));
            let (short_vs, long_vs) = match previous {
                Some(p) => (ratio(r.short_ms, p.short_ms), ratio(r.long_ms, p.long_ms)),
                None => ("-".into(), "-".into()),
            };
            let (right, n) = r.detection();
            let detected = if n == 0 {
                "-".to_string()
            } else {
                format!("{right}/{n}")
            };
            let vs_base = match base {
                Some(b) if b.step != r.step => ratio(r.short_ms, b.short_ms),
                _ => "-".into(),
            };
            writeln!(
                f,
                "{:<24} {:<18} {:>6.0} ms {:>7} {:>10.3} {:>7} {:>7.3} {:>8} {:>8}",
                r.step.label,
                r.step.model,
                r.short_ms,
                short_vs,
                r.long_rtf(),
                long_vs,
                r.wer().rate(),
                detected,
                vs_base
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "per language: WER (words) and language detected right, voice suite + synthetic notes"
        )?;
        for r in &self.runs {
            let parts: Vec<String> = r
                .languages
                .iter()
                .map(|(language, s)| {
                    let detected = if s.detections == 0 {
                        String::new()
                    } else {
                        format!(", detected {}/{}", s.detected, s.detections)
                    };
                    format!(
                        "{language} {:.3} ({} words{detected})",
                        s.wer.rate(),
                        s.wer.words
                    )
                })
                .collect();
            let only = if r.english_only {
                " [English only]"
            } else {
                ""
            };
            writeln!(
                f,
                "  {:<24} {}{only}; timed notes WER {:.3}",
                r.step.label,
                parts.join("; "),
                r.timed_wer
            )?;
        }
        if let Some(missing) = &self.suite_missing {
            writeln!(f, "voice suite not measured: {missing}")?;
        }
        for (step, why) in &self.skipped {
            writeln!(f, "skipped {step}: {why}")?;
        }
        let verdict = |met: bool| if met { "met" } else { "missed" };
        let Some(d) = self.default_run() else {
            return write!(
                f,
                "targets: the default ({}, trim silence {}, warm state {}, window margin {:?}) was \
                 not measured",
                self.settings.model,
                self.settings.trim_silence,
                self.settings.warm_state,
                self.settings.window_margin_secs
            );
        };
        writeln!(
            f,
            "target 5 s note with the default ({}): {:.0} ms (goal <= {TARGET_SHORT_MS:.0} ms: {})",
            d.step.model,
            d.short_ms,
            verdict(d.short_ms <= TARGET_SHORT_MS)
        )?;
        write!(
            f,
            "target 30 s note with the default: RTF {:.3} (goal <= {TARGET_RTF}: {})",
            d.long_rtf(),
            verdict(d.long_rtf() <= TARGET_RTF)
        )?;
        if let Some(b) = base {
            let (dr, dn) = d.detection();
            let (br, bn) = b.detection();
            write!(
                f,
                "\ntarget WER no worse than the previous settings: {:.3} against {:.3} ({})",
                d.wer().rate(),
                b.wer().rate(),
                verdict(d.wer().rate() <= b.wer().rate() + 1e-9)
            )?;
            if bn > 0 {
                write!(
                    f,
                    "\ntarget language detection no worse: {dr}/{dn} against {br}/{bn} ({})",
                    verdict(dr * bn >= br * dn)
                )?;
            }
        }
        Ok(())
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

/// A note to score: its audio, language and the words said.
struct ScoredNote {
    audio: Vec<u8>,
    language: &'static str,
    text: &'static str,
}

/// Measures every step whose model is in `models` (none is fetched) with `threads` threads:
/// the ~5 s and ~30 s English notes `repeats` times each after one warm-up, steps interleaved,
/// then the voice notes in `suite_dir` (the shipped `eval/audio`) and synthetic Spanish and
/// Portuguese notes once each. `language` is passed to the models (`None`: detect it, as agents
/// set to auto-detect do). `scratch` holds the generated audio while it is made.
pub async fn run(
    models: &ModelStore,
    settings: &SpeechSettings,
    threads: usize,
    repeats: usize,
    language: Option<&str>,
    suite_dir: &Path,
    scratch: &Path,
) -> Result<SpeechReport, SpeechBenchError> {
    let repeats = repeats.max(1);
    let threads = threads.max(1);
    let mut report = SpeechReport {
        repeats,
        threads,
        load_average: load_average(),
        language: language.map(str::to_owned),
        settings: settings.clone(),
        ..SpeechReport::default()
    };
    let short = synth::voice_note(synth::SHORT_EN, "en-us", scratch).await?;
    let long = synth::voice_note(synth::LONG_EN, "en-us", scratch).await?;
    let mut notes = Vec::new();
    if suite_dir.is_dir() {
        for (file, language, text) in VOICE_SUITE {
            let path = suite_dir.join(file);
            let audio = std::fs::read(&path).map_err(|e| SpeechBenchError::Suite {
                path: path.display().to_string(),
                reason: e.to_string(),
            })?;
            notes.push(ScoredNote {
                audio,
                language,
                text,
            });
        }
    } else {
        report.suite_missing = Some(format!("{} is not a directory", suite_dir.display()));
    }
    for (text, voice, language) in [
        (synth::SPANISH, "es", "es"),
        (synth::PORTUGUESE, "pt", "pt"),
    ] {
        notes.push(ScoredNote {
            audio: synth::voice_note(text, voice, scratch).await?,
            language,
            text,
        });
    }

    let mut loaded: Vec<(Step, WhisperTranscriber)> = Vec::new();
    let mut cache: BTreeMap<&str, WhisperTranscriber> = BTreeMap::new();
    for step in STEPS {
        let model = match cache.get(step.model) {
            Some(m) => m.clone(),
            None => {
                match models.status(step.model).await {
                    Ok(ModelStatus::Ready { .. } | ModelStatus::Override { .. }) => {}
                    Ok(status) => {
                        report.skipped.push((
                            step.label.to_string(),
                            format!(
                                "{} {status:?} (fetch it with `palaver models fetch {}`)",
                                step.model, step.model
                            ),
                        ));
                        continue;
                    }
                    Err(e) => {
                        report.skipped.push((step.label.to_string(), e.to_string()));
                        continue;
                    }
                }
                let model_settings = SpeechSettings {
                    model: step.model.to_string(),
                    max_concurrent: 1,
                    threads,
                    ..settings.clone()
                };
                let m = WhisperTranscriber::load(models, &model_settings).await?;
                cache.insert(step.model, m.clone());
                m
            }
        };
        let transcriber = model
            .with_trim_silence(step.trim_silence)
            .with_warm_state(step.warm_state)
            .with_detect_to_note(step.detect_to_note)
            .with_window_margin(step.window_margin);
        // The first run allocates whisper's buffers (and a detection state) and warms the
        // caches.
        transcriber.transcribe(&short, None, language).await?;
        loaded.push((*step, transcriber));
    }

    // Interleaved: every step's notes once per round, so load from elsewhere spreads evenly.
    let mut timings = vec![Timings::default(); loaded.len()];
    for round in 0..repeats {
        for (i, (step, t)) in loaded.iter().enumerate() {
            let a = t.transcribe(&short, None, language).await?;
            let b = t.transcribe(&long, None, language).await?;
            let slot = &mut timings[i];
            slot.short_ms.push(a.decode_ms + a.transcribe_ms);
            slot.long_ms.push(b.decode_ms + b.transcribe_ms);
            slot.short_seconds = a.audio_seconds;
            slot.long_seconds = b.audio_seconds;
            if round == 0 {
                slot.wer = (synth::word_error_rate(synth::SHORT_EN, &a.text)
                    + synth::word_error_rate(synth::LONG_EN, &b.text))
                    / 2.0;
            }
            tracing::info!(step = step.label, round, "speech benchmark round");
        }
    }

    for ((step, t), mut timed) in loaded.into_iter().zip(timings) {
        let english_only = !t.multilingual();
        let mut languages: BTreeMap<String, LanguageScore> = BTreeMap::new();
        for note in &notes {
            if english_only && note.language != "en" {
                continue;
            }
            let got = t.transcribe(&note.audio, None, language).await?;
            tracing::debug!(
                step = step.label,
                said = note.text,
                heard = got.text,
                "speech benchmark note"
            );
            let score = languages.entry(note.language.to_string()).or_default();
            score.wer.add(note.text, &got.text);
            if got.language_probability.is_some() {
                score.detections += 1;
                score.detected += usize::from(got.language.as_deref() == Some(note.language));
            }
        }
        report.runs.push(StepRun {
            step,
            short_ms: median(&mut timed.short_ms),
            short_seconds: timed.short_seconds,
            long_ms: median(&mut timed.long_ms),
            long_seconds: timed.long_seconds,
            timed_wer: timed.wer,
            languages,
            english_only,
        });
    }
    Ok(report)
}

/// One step's timed notes over the rounds.
#[derive(Debug, Clone, Default)]
struct Timings {
    short_ms: Vec<f64>,
    long_ms: Vec<f64>,
    short_seconds: f64,
    long_seconds: f64,
    wer: f64,
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_row(step: usize, short_ms: f64, long_ms: f64, errors: f64, detected: usize) -> StepRun {
        let mut languages = BTreeMap::new();
        languages.insert(
            "en".to_string(),
            LanguageScore {
                wer: Wer { errors, words: 50 },
                detected: detected.min(5),
                detections: 5,
            },
        );
        languages.insert(
            "es".to_string(),
            LanguageScore {
                wer: Wer {
                    errors: 0.0,
                    words: 10,
                },
                detected: detected.saturating_sub(5),
                detections: 2,
            },
        );
        StepRun {
            step: STEPS[step],
            short_ms,
            short_seconds: 5.0,
            long_ms,
            long_seconds: 30.0,
            timed_wer: 0.0,
            languages,
            english_only: false,
        }
    }

    fn report(runs: Vec<StepRun>, default_model: &str) -> SpeechReport {
        SpeechReport {
            runs,
            skipped: vec![("tiny.en (English only)".into(), "Missing".into())],
            repeats: 3,
            threads: 2,
            load_average: Some(0.42),
            language: None,
            settings: SpeechSettings {
                model: default_model.into(),
                ..SpeechSettings::default()
            },
            suite_missing: None,
        }
    }

    #[test]
    fn each_step_is_shown_against_the_one_before_and_the_targets_against_the_first() {
        let r = report(
            vec![
                run_row(0, 2000.0, 3600.0, 1.0, 7),
                run_row(1, 1800.0, 3600.0, 1.0, 7),
                run_row(4, 900.0, 2700.0, 1.0, 7),
            ],
            "whisper-base-q8_0",
        );
        assert!((r.runs[2].long_rtf() - 0.09).abs() < 1e-9);
        assert!((r.runs[0].wer().rate() - 1.0 / 60.0).abs() < 1e-9);
        let text = r.to_string();
        assert!(text.contains("median of 3"), "{text}");
        assert!(text.contains("load average at start: 0.42"), "{text}");
        // Warm against the previous settings, then q8_0 against warm; q8_0 against the first.
        assert!(text.contains("0.90x"), "{text}");
        assert!(text.contains("0.50x"), "{text}");
        assert!(text.contains("0.75x"), "{text}");
        assert!(text.contains("0.45x"), "{text}");
        assert!(text.contains("en 0.020 (50 words, detected 5/5)"), "{text}");
        assert!(text.contains("skipped tiny.en"), "{text}");
        assert!(
            text.contains("whisper-base-q8_0): 900 ms (goal <= 1000 ms: met)"),
            "{text}"
        );
        assert!(text.contains("RTF 0.090 (goal <= 0.1: met)"), "{text}");
        assert!(text.contains("0.017 against 0.017 (met)"), "{text}");
        assert!(text.ends_with("7/7 against 7/7 (met)"), "{text}");
    }

    #[test]
    fn a_default_that_is_slower_less_accurate_or_detects_worse_misses() {
        let r = report(
            vec![
                run_row(0, 2000.0, 3600.0, 1.0, 7),
                run_row(1, 1800.0, 3400.0, 1.0, 7),
                run_row(5, 1100.0, 3300.0, 3.0, 6),
            ],
            "whisper-base-q5_1",
        );
        let text = r.to_string();
        assert!(text.contains("1100 ms (goal <= 1000 ms: missed)"), "{text}");
        assert!(text.contains("RTF 0.110 (goal <= 0.1: missed)"), "{text}");
        assert!(text.contains("0.050 against 0.017 (missed)"), "{text}");
        assert!(text.ends_with("6/7 against 7/7 (missed)"), "{text}");

        let unmeasured = report(
            vec![run_row(0, 2000.0, 3600.0, 1.0, 7)],
            "whisper-base-q8_0",
        );
        assert!(unmeasured.to_string().ends_with("was not measured"));
    }

    #[test]
    fn word_errors_add_up_over_notes() {
        let mut wer = Wer::default();
        wer.add("one two three four", "one two three four");
        wer.add("five six", "five seven");
        assert_eq!(wer.words, 6);
        assert!((wer.rate() - 1.0 / 6.0).abs() < 1e-9);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), 2.0);
    }
}
