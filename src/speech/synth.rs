//! Synthetic voice notes for tests and benchmarks: English, Spanish and Portuguese speech made
//! with `espeak-ng`, encoded like a WhatsApp push-to-talk note with `opusenc` (16 kb/s, 20 ms
//! frames), and the word error rate that scores a transcript against the spoken text.

use std::path::Path;
use std::process::Stdio;

use tokio::process::Command;

/// About five seconds of English.
pub const SHORT_EN: &str =
    "Hello, I would like to know the opening hours of your shop on Saturday.";

/// About thirty seconds of English, the length of a typical voice note.
pub const LONG_EN: &str = "Good morning. I ordered a chocolate cake from your bakery last week \
    for my daughter's birthday party. The cake was delicious and everyone loved it. \
    Now I would like to order another one for my husband, but this time with strawberries \
    and fresh cream instead of chocolate. Could you tell me how much it costs, \
    and whether you can deliver it to my house on Friday afternoon? I am happy to pick it up \
    myself if delivery is not possible. Thank you very much.";

/// About seventy seconds of English: crosses whisper's 30-second windows twice.
pub const MINUTE_EN: &str = "Hello, this is Maria calling about the catering order for our \
    office party. We are expecting a lot of guests, so we will need a large amount of food. \
    First, we would like the vegetable sandwiches and the chicken sandwiches, with some cheese \
    on the side. Second, could you prepare three fruit tarts and two apple pies for dessert? \
    Several colleagues cannot eat gluten, so please tell me which of your cakes are safe for \
    them. The party starts at noon on Thursday, and the building has a loading entrance on \
    the north side, next to the parking garage. Please ask the driver to call the reception \
    desk when he arrives, because the main door stays locked during the day. Finally, I would \
    like to pay by bank transfer instead of by card. If that is possible, send me the invoice \
    and the account details by email. By the way, last year your team forgot the napkins and \
    the plastic forks, so please check that everything is packed before the van leaves the \
    shop. We also need a small card for our manager, because the party is for her retirement. \
    Thank you, and have a wonderful afternoon.";

/// A Spanish sentence.
pub const SPANISH: &str =
    "Buenos días, quisiera saber si la tienda está abierta el domingo por la mañana.";

/// A Portuguese sentence.
pub const PORTUGUESE: &str =
    "Bom dia, gostaria de saber se a loja está aberta no domingo de manhã.";

/// Why a voice note could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SynthError {
    /// `espeak-ng` or `opusenc` is not installed.
    #[error("`{0}` is not installed (Debian: apt-get install espeak-ng opus-tools)")]
    Missing(&'static str),
    /// A tool ran and failed.
    #[error("`{tool}` failed: {reason}")]
    Failed {
        /// The tool.
        tool: &'static str,
        /// Its exit status and error output.
        reason: String,
    },
    /// Reading or writing the scratch files failed.
    #[error("voice note scratch file: {0}")]
    Io(#[from] std::io::Error),
}

async fn run(tool: &'static str, args: &[&std::ffi::OsStr]) -> Result<(), SynthError> {
    let output = Command::new(tool)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => SynthError::Missing(tool),
            _ => SynthError::Io(e),
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(SynthError::Failed {
            tool,
            reason: format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
        })
    }
}

/// Speaks `text` with the espeak-ng `voice` (e.g. `en-us`, `es`, `pt`) at 150 words per
/// minute and returns the WAV file (22.05 kHz mono). `dir` holds the scratch file.
pub async fn speak_wav(text: &str, voice: &str, dir: &Path) -> Result<Vec<u8>, SynthError> {
    let wav = dir.join(format!("speech-{}.wav", uuid::Uuid::new_v4().simple()));
    run(
        "espeak-ng",
        &[
            "-v".as_ref(),
            voice.as_ref(),
            "-s".as_ref(),
            "150".as_ref(),
            "-w".as_ref(),
            wav.as_os_str(),
            text.as_ref(),
        ],
    )
    .await?;
    let bytes = tokio::fs::read(&wav).await?;
    let _ = tokio::fs::remove_file(&wav).await;
    Ok(bytes)
}

/// Speaks `text` like [`speak_wav`] and encodes it as a WhatsApp-like OGG/Opus voice note
/// (`opusenc --speech --bitrate 16 --framesize 20`).
pub async fn voice_note(text: &str, voice: &str, dir: &Path) -> Result<Vec<u8>, SynthError> {
    let stem = dir.join(format!("note-{}", uuid::Uuid::new_v4().simple()));
    let (wav, ogg) = (stem.with_extension("wav"), stem.with_extension("ogg"));
    tokio::fs::write(&wav, speak_wav(text, voice, dir).await?).await?;
    let encoded = run(
        "opusenc",
        &[
            "--quiet".as_ref(),
            "--speech".as_ref(),
            "--bitrate".as_ref(),
            "16".as_ref(),
            "--framesize".as_ref(),
            "20".as_ref(),
            wav.as_os_str(),
            ogg.as_os_str(),
        ],
    )
    .await;
    let _ = tokio::fs::remove_file(&wav).await;
    encoded?;
    let bytes = tokio::fs::read(&ogg).await?;
    let _ = tokio::fs::remove_file(&ogg).await;
    Ok(bytes)
}

/// Lowercase words without punctuation, for scoring ("Don't stop." -> `["dont", "stop"]`).
pub fn normalised_words(text: &str) -> Vec<String> {
    text.to_lowercase()
        .split(|c: char| c.is_whitespace() || c == '-' || c == '—')
        .map(|w| {
            w.chars()
                .filter(|c| c.is_alphanumeric())
                .collect::<String>()
        })
        .filter(|w| !w.is_empty())
        .collect()
}

/// Word error rate of `hypothesis` against `reference`: the word-level edit distance
/// (substitutions, insertions, deletions) over the number of reference words.
pub fn word_error_rate(reference: &str, hypothesis: &str) -> f64 {
    let r = normalised_words(reference);
    let h = normalised_words(hypothesis);
    if r.is_empty() {
        return if h.is_empty() { 0.0 } else { 1.0 };
    }
    let mut previous: Vec<usize> = (0..=h.len()).collect();
    let mut current = vec![0; h.len() + 1];
    for (i, rw) in r.iter().enumerate() {
        current[0] = i + 1;
        for (j, hw) in h.iter().enumerate() {
            let substitution = previous[j] + usize::from(rw != hw);
            current[j + 1] = substitution.min(previous[j + 1] + 1).min(current[j] + 1);
        }
        std::mem::swap(&mut previous, &mut current);
    }
    previous[h.len()] as f64 / r.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_drops_case_and_punctuation() {
        assert_eq!(
            normalised_words("Hello, World!  It's  a well-known fact."),
            ["hello", "world", "its", "a", "well", "known", "fact"]
        );
        assert_eq!(normalised_words("Está abierta?"), ["está", "abierta"]);
        assert!(normalised_words(" ... ").is_empty());
    }

    #[test]
    fn word_error_rate_counts_edits_over_reference_words() {
        let cases = [
            ("the cat sat", "the cat sat", 0.0),
            ("the cat sat", "The cat, sat.", 0.0),
            ("the cat sat", "the bat sat", 1.0 / 3.0),
            ("the cat sat", "the cat", 1.0 / 3.0),
            ("the cat sat", "the cat sat down", 1.0 / 3.0),
            ("the cat sat", "", 1.0),
            ("the cat sat", "a dog stood up here", 5.0 / 3.0),
            ("a b c d", "b c d a", 0.5),
            ("", "", 0.0),
            ("", "noise", 1.0),
        ];
        for (reference, hypothesis, want) in cases {
            let got = word_error_rate(reference, hypothesis);
            assert!(
                (got - want).abs() < 1e-12,
                "{reference:?} vs {hypothesis:?}: {got}, want {want}"
            );
        }
    }
}
