//! Where the speech of a voice note starts and ends, by the loudness of short frames: the
//! silence a customer leaves before speaking and after the last word (finding the button,
//! letting go of it) is cut before whisper hears the note.
//!
//! A frame counts as speech when it is louder than the note's own quiet (its quietest frames) by
//! a margin, so a note recorded in a noisy street is judged against its street, and a note with
//! no quiet at all is left whole. Speech must last a few frames in a row: a tap on the phone is no start. A little
//! of the quiet is kept on both sides, for the breath before a word and the fading of the last.

use std::ops::Range;

use super::decode::SAMPLE_RATE;

/// Samples per frame: 20 ms.
const FRAME: usize = SAMPLE_RATE as usize / 50;

/// Frames in a row that make speech (100 ms): shorter bursts are clicks and taps.
const MIN_SPEECH_FRAMES: usize = 5;

/// Quiet kept before the first and after the last speech, in frames (300 ms).
const PAD_FRAMES: usize = 15;

/// A frame this far above the note's quiet (its 5th-percentile frame) is speech. In a note
/// without quiet that percentile is speech too, and nothing stands out: the note stays whole.
const ABOVE_QUIET_DB: f32 = 12.0;

/// Frames quieter than this are silence whatever the note (digital near-silence).
const FLOOR_DBFS: f32 = -60.0;

/// The samples of `samples` (16 kHz mono) from shortly before its first speech to shortly after
/// its last. A note in which no speech stands out is returned whole: whisper decides then.
pub fn speech_span(samples: &[f32]) -> Range<usize> {
    let whole = 0..samples.len();
    let levels: Vec<f32> = samples.chunks(FRAME).map(frame_dbfs).collect();
    if levels.len() < MIN_SPEECH_FRAMES {
        return whole;
    }
    let mut sorted = levels.clone();
    sorted.sort_by(f32::total_cmp);
    let quiet = sorted[sorted.len() / 20];
    let threshold = (quiet + ABOVE_QUIET_DB).max(FLOOR_DBFS);

    let mut first = None;
    let mut last = None;
    let mut run = 0usize;
    for (i, &level) in levels.iter().enumerate() {
        if level > threshold {
            run += 1;
            if run >= MIN_SPEECH_FRAMES {
                first.get_or_insert(i + 1 - run);
                last = Some(i);
            }
        } else {
            run = 0;
        }
    }
    let (Some(first), Some(last)) = (first, last) else {
        return whole;
    };
    let start = first.saturating_sub(PAD_FRAMES) * FRAME;
    let end = ((last + 1 + PAD_FRAMES) * FRAME).min(samples.len());
    start..end
}

/// The loudness of one frame, in dB below full scale (RMS).
fn frame_dbfs(frame: &[f32]) -> f32 {
    let energy = frame.iter().map(|s| s * s).sum::<f32>() / frame.len().max(1) as f32;
    10.0 * (energy + 1e-12).log10()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: usize = SAMPLE_RATE as usize;

    /// A deterministic noise-like signal of RMS `rms`.
    fn noise(seconds: f32, rms: f32, seed: u32) -> Vec<f32> {
        let n = (seconds * SECOND as f32) as usize;
        let mut x = seed.wrapping_mul(2_654_435_761).max(1);
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                // Uniform in [-1, 1] has RMS 1/sqrt(3).
                ((x as f32 / u32::MAX as f32) * 2.0 - 1.0) * rms * 3f32.sqrt()
            })
            .collect()
    }

    /// "Speech": a 200 Hz tone whose loudness swells like syllables, RMS around `rms`.
    fn voice(seconds: f32, rms: f32) -> Vec<f32> {
        let n = (seconds * SECOND as f32) as usize;
        (0..n)
            .map(|i| {
                let t = i as f32 / SECOND as f32;
                let syllable = 0.6 + 0.4 * (t * 2.0 * std::f32::consts::PI * 4.0).sin().abs();
                (t * 2.0 * std::f32::consts::PI * 200.0).sin() * rms * 2f32.sqrt() * syllable
            })
            .collect()
    }

    fn join(parts: &[Vec<f32>]) -> Vec<f32> {
        parts.concat()
    }

    fn seconds(r: &Range<usize>) -> (f32, f32) {
        (r.start as f32 / SECOND as f32, r.end as f32 / SECOND as f32)
    }

    #[test]
    fn quiet_before_and_after_speech_is_cut_with_a_margin() {
        // Room noise at -60 dBFS, speech at -20 dBFS: 1.5 s before, 3 s of speech, 2 s after.
        let note = join(&[noise(1.5, 0.001, 1), voice(3.0, 0.1), noise(2.0, 0.001, 2)]);
        let (start, end) = seconds(&speech_span(&note));
        assert!((1.1..=1.5).contains(&start), "starts at {start} s");
        assert!((4.5..=4.9).contains(&end), "ends at {end} s");
    }

    #[test]
    fn digital_silence_and_a_noisy_street_are_both_judged_against_their_own_quiet() {
        let cases = [
            // (quiet level, speech level)
            (0.0, 0.05),    // opusenc of a synthesiser: exact zeros around the words
            (0.02, 0.2),    // a street: quiet at -34 dBFS, speech 20 dB above it
            (0.0005, 0.01), // a soft speaker far from the phone
        ];
        for (quiet, loud) in cases {
            let note = join(&[noise(1.0, quiet, 3), voice(2.0, loud), noise(1.0, quiet, 4)]);
            let (start, end) = seconds(&speech_span(&note));
            assert!(
                (0.6..=1.0).contains(&start) && (3.0..=3.4).contains(&end),
                "quiet {quiet}, speech {loud}: kept {start}..{end} s"
            );
        }
    }

    #[test]
    fn a_tap_on_the_phone_is_not_speech() {
        // A 40 ms click at 0.5 s, then quiet, then speech from 2 s.
        let mut note = join(&[noise(2.0, 0.001, 5), voice(2.0, 0.1), noise(1.0, 0.001, 6)]);
        for s in &mut note[SECOND / 2..SECOND / 2 + SECOND / 25] {
            *s = 0.5;
        }
        let (start, _) = seconds(&speech_span(&note));
        assert!((1.6..=2.0).contains(&start), "starts at {start} s");
    }

    #[test]
    fn notes_without_quiet_or_without_speech_stay_whole() {
        let speech_only = voice(4.0, 0.1);
        assert_eq!(speech_span(&speech_only), 0..speech_only.len());
        // Speech that pauses in the middle keeps its pause.
        let paused = join(&[voice(2.0, 0.1), noise(1.0, 0.001, 7), voice(2.0, 0.1)]);
        assert_eq!(speech_span(&paused), 0..paused.len());
        for silent in [vec![0.0; 3 * SECOND], noise(3.0, 0.001, 8), Vec::new()] {
            assert_eq!(speech_span(&silent), 0..silent.len());
        }
    }
}
