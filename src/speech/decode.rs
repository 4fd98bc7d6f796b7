//! Audio decoding to what Whisper hears: 16 kHz mono `f32`. WhatsApp voice notes (OGG/Opus) are
//! decoded with libopus straight at 16 kHz; WAV, MP3 and M4A/AAC go through symphonia and are
//! resampled with rubato. The container is recognised from the bytes (the MIME type is only a
//! hint), and audio longer than the limit is refused before decoding whenever the container
//! states its length, otherwise as soon as decoding passes the limit.

use std::io::Cursor;

use symphonia::core::audio::SampleBuffer;
use symphonia::core::codecs::{DecoderOptions, CODEC_TYPE_NULL};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::FormatOptions;
use symphonia::core::io::{MediaSourceStream, MediaSourceStreamOptions};
use symphonia::core::meta::MetadataOptions;
use symphonia::core::probe::Hint;

use super::SpeechError;

/// The sample rate Whisper expects, in Hz.
pub const SAMPLE_RATE: u32 = 16_000;

/// Opus timestamps (granule positions, pre-skip) always count 48 kHz samples.
const OPUS_GRANULE_RATE: u64 = 48_000;

/// A container recognised from its first bytes or its MIME type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    /// OGG (WhatsApp voice notes carry Opus inside).
    Ogg,
    /// RIFF WAVE.
    Wav,
    /// MPEG audio layer III.
    Mp3,
    /// MP4 / M4A (usually AAC inside).
    Mp4,
    /// Raw AAC in ADTS frames.
    Adts,
    /// FLAC, recognised only to be refused by name.
    Flac,
    /// Matroska / WebM, recognised only to be refused by name.
    WebM,
    /// AMR, recognised only to be refused by name.
    Amr,
}

impl Container {
    fn label(self) -> &'static str {
        match self {
            Container::Ogg => "OGG",
            Container::Wav => "WAV",
            Container::Mp3 => "MP3",
            Container::Mp4 => "MP4/M4A",
            Container::Adts => "AAC (ADTS)",
            Container::Flac => "FLAC",
            Container::WebM => "WebM/Matroska",
            Container::Amr => "AMR",
        }
    }

    /// File extension symphonia's probe understands as a hint.
    fn extension(self) -> &'static str {
        match self {
            Container::Ogg => "ogg",
            Container::Wav => "wav",
            Container::Mp3 => "mp3",
            Container::Mp4 => "m4a",
            Container::Adts => "aac",
            Container::Flac => "flac",
            Container::WebM => "webm",
            Container::Amr => "amr",
        }
    }
}

/// Recognises the container from its magic numbers.
pub fn sniff(bytes: &[u8]) -> Option<Container> {
    let at = |offset: usize, magic: &[u8]| bytes.get(offset..offset + magic.len()) == Some(magic);
    if at(0, b"OggS") {
        Some(Container::Ogg)
    } else if at(0, b"RIFF") && at(8, b"WAVE") {
        Some(Container::Wav)
    } else if at(4, b"ftyp") {
        Some(Container::Mp4)
    } else if at(0, b"fLaC") {
        Some(Container::Flac)
    } else if at(0, &[0x1A, 0x45, 0xDF, 0xA3]) {
        Some(Container::WebM)
    } else if at(0, b"#!AMR") {
        Some(Container::Amr)
    } else if at(0, b"ID3") {
        Some(Container::Mp3)
    } else {
        match bytes {
            // Frame sync (11 bits) then the layer: 00 is ADTS (AAC), 01 is MPEG layer III.
            [0xFF, b1, ..] if b1 & 0xF6 == 0xF0 => Some(Container::Adts),
            [0xFF, b1, ..] if b1 & 0xE0 == 0xE0 && (b1 >> 1) & 0x03 == 0x01 => Some(Container::Mp3),
            _ => None,
        }
    }
}

/// The container a MIME type names (`audio/ogg; codecs=opus` -> OGG), if it is an audio type we
/// know.
pub fn container_from_mime(mime: &str) -> Option<Container> {
    let essence = mime
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    Some(match essence.as_str() {
        "audio/ogg" | "audio/opus" | "application/ogg" | "audio/x-ogg" => Container::Ogg,
        "audio/wav" | "audio/x-wav" | "audio/wave" | "audio/vnd.wave" => Container::Wav,
        "audio/mpeg" | "audio/mp3" | "audio/mpeg3" | "audio/x-mpeg-3" => Container::Mp3,
        "audio/mp4" | "audio/m4a" | "audio/x-m4a" | "video/mp4" => Container::Mp4,
        "audio/aac" | "audio/aacp" | "audio/x-aac" => Container::Adts,
        "audio/flac" | "audio/x-flac" => Container::Flac,
        "audio/webm" | "video/webm" => Container::WebM,
        "audio/amr" | "audio/amr-nb" | "audio/amr-wb" => Container::Amr,
        _ => return None,
    })
}

/// Decodes `bytes` (OGG/Opus, WAV, MP3 or M4A/AAC; `mime` is a hint) to 16 kHz mono samples and
/// returns them with their duration in seconds. Audio longer than `max_seconds` is refused with
/// [`SpeechError::TooLong`].
pub fn decode(
    bytes: &[u8],
    mime: Option<&str>,
    max_seconds: u64,
) -> Result<(Vec<f32>, f64), SpeechError> {
    if bytes.is_empty() {
        return Err(SpeechError::Empty);
    }
    let hinted = mime.and_then(container_from_mime);
    let container = match (sniff(bytes), hinted) {
        (Some(found), hint) => {
            if hint.is_some_and(|h| h != found) {
                tracing::debug!(
                    found = found.label(),
                    mime = mime.unwrap_or_default(),
                    "audio content differs from its MIME type; trusting the content"
                );
            }
            found
        }
        // MP3 and AAC streams may start with junk before the first frame; symphonia searches
        // for the sync word, so the hint is worth a try for them only.
        (None, Some(hint @ (Container::Mp3 | Container::Adts | Container::Mp4))) => hint,
        (None, Some(hint)) => {
            return Err(SpeechError::Corrupt(format!(
                "the data does not look like {} audio",
                hint.label()
            )))
        }
        (None, None) => {
            return Err(SpeechError::Unsupported(match mime {
                Some(m) => format!("unrecognised audio data (declared as {m})"),
                None => "unrecognised audio data".into(),
            }))
        }
    };
    let samples = match container {
        Container::Ogg => decode_ogg_opus(bytes, max_seconds)?,
        Container::Wav | Container::Mp3 | Container::Mp4 | Container::Adts => {
            decode_with_symphonia(bytes, container, max_seconds)?
        }
        Container::Flac | Container::WebM | Container::Amr => {
            return Err(SpeechError::Unsupported(format!(
                "{} audio is not supported (send OGG/Opus, WAV, MP3 or M4A)",
                container.label()
            )))
        }
    };
    if samples.is_empty() {
        return Err(SpeechError::Empty);
    }
    let seconds = samples.len() as f64 / f64::from(SAMPLE_RATE);
    Ok((samples, seconds))
}

fn too_long(seconds: f64, limit: u64) -> SpeechError {
    SpeechError::TooLong { seconds, limit }
}

// ---------------------------------------------------------------------------------------------
// OGG / Opus

/// The identification header of an Ogg Opus stream (RFC 7845, section 5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpusHead {
    /// Channels coded in the stream (1 or 2 for what we decode).
    channels: u8,
    /// Samples (at 48 kHz) to drop from the start of the decoded output.
    pre_skip: u16,
    /// Sample rate of the original input; informational only.
    input_rate: u32,
    /// Gain to apply to the output, Q7.8 dB.
    output_gain: i16,
}

impl OpusHead {
    fn parse(data: &[u8]) -> Result<Self, SpeechError> {
        let bad = |why: &str| SpeechError::Corrupt(format!("bad OpusHead: {why}"));
        if data.len() < 19 || !data.starts_with(b"OpusHead") {
            return Err(bad("header too short"));
        }
        let version = data[8];
        // Versions 0-15 are compatible with this layout; higher major versions are not.
        if version > 15 {
            return Err(bad(&format!("unknown version {version}")));
        }
        let channels = data[9];
        let pre_skip = u16::from_le_bytes([data[10], data[11]]);
        let input_rate = u32::from_le_bytes([data[12], data[13], data[14], data[15]]);
        let output_gain = i16::from_le_bytes([data[16], data[17]]);
        let family = data[18];
        if channels == 0 {
            return Err(bad("zero channels"));
        }
        let channels = match family {
            0 if channels <= 2 => channels,
            0 => return Err(bad(&format!("{channels} channels with mapping family 0"))),
            _ => {
                // Families 1 and 255 carry a stream table; a single stream of at most two
                // channels decodes like family 0.
                let table = data
                    .get(19..21)
                    .ok_or_else(|| bad("missing channel mapping"))?;
                let (streams, coupled) = (table[0], table[1]);
                if data.len() < 21 + usize::from(channels) {
                    return Err(bad("channel mapping table cut short"));
                }
                if streams != 1 || channels > 2 {
                    return Err(SpeechError::Unsupported(format!(
                        "multichannel Opus ({channels} channels in {streams} streams)"
                    )));
                }
                if coupled > 1 {
                    return Err(bad("more coupled streams than streams"));
                }
                coupled + 1
            }
        };
        Ok(Self {
            channels,
            pre_skip,
            input_rate,
            output_gain,
        })
    }
}

/// The granule position of the last page of `serial` that has one, found by scanning back from
/// the end for page headers (a page whose granule is -1 finishes no packet and is skipped).
fn last_granule(bytes: &[u8], serial: u32) -> Option<u64> {
    let mut end = bytes.len();
    while end >= 27 {
        let start = memrchr_oggs(&bytes[..end])?;
        let header = &bytes[start..];
        if header.len() >= 27 && header[4] == 0 {
            let granule = u64::from_le_bytes(header[6..14].try_into().ok()?);
            let page_serial = u32::from_le_bytes(header[14..18].try_into().ok()?);
            if page_serial == serial && granule != u64::MAX {
                return Some(granule);
            }
        }
        end = start + 3;
    }
    None
}

fn memrchr_oggs(hay: &[u8]) -> Option<usize> {
    hay.windows(4).rposition(|w| w == b"OggS")
}

fn ogg_error(e: ogg::OggReadError) -> SpeechError {
    match e {
        ogg::OggReadError::ReadError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            SpeechError::Corrupt("the OGG stream is cut short".into())
        }
        other => SpeechError::Corrupt(format!("invalid OGG stream: {other}")),
    }
}

fn decode_ogg_opus(bytes: &[u8], max_seconds: u64) -> Result<Vec<f32>, SpeechError> {
    let mut reader = ogg::PacketReader::new(Cursor::new(bytes));
    let first = reader
        .read_packet()
        .map_err(ogg_error)?
        .ok_or_else(|| SpeechError::Corrupt("the OGG stream has no packets".into()))?;
    let data = &first.data;
    if !data.starts_with(b"OpusHead") {
        let codec = if data.starts_with(b"\x01vorbis") {
            "OGG/Vorbis"
        } else if data.starts_with(b"\x7fFLAC") {
            "OGG/FLAC"
        } else if data.starts_with(b"Speex   ") {
            "OGG/Speex"
        } else {
            "an OGG stream without Opus"
        };
        return Err(SpeechError::Unsupported(format!(
            "{codec} is not supported (voice notes are OGG/Opus)"
        )));
    }
    let head = OpusHead::parse(data)?;
    let serial = first.stream_serial();
    tracing::debug!(?head, "Ogg Opus stream");

    if let Some(granule) = last_granule(bytes, serial) {
        let seconds =
            granule.saturating_sub(u64::from(head.pre_skip)) as f64 / OPUS_GRANULE_RATE as f64;
        if seconds > max_seconds as f64 {
            return Err(too_long(seconds, max_seconds));
        }
    }

    let mut tags_seen = false;
    let channels = usize::from(head.channels);
    let mut decoder = opus::Decoder::new(
        SAMPLE_RATE,
        if channels == 2 {
            opus::Channels::Stereo
        } else {
            opus::Channels::Mono
        },
    )
    .map_err(|e| SpeechError::Corrupt(format!("opus decoder: {e}")))?;
    if head.output_gain != 0 {
        decoder
            .set_gain(i32::from(head.output_gain))
            .map_err(|e| SpeechError::Corrupt(format!("bad OpusHead output gain: {e}")))?;
    }

    let rate = u64::from(SAMPLE_RATE);
    let pre_skip = (u64::from(head.pre_skip) * rate + OPUS_GRANULE_RATE / 2) / OPUS_GRANULE_RATE;
    // 120 ms is the longest Opus packet.
    let max_packet = SAMPLE_RATE as usize * 120 / 1000;
    // While decoding, allow one packet of encoder padding that the end trim will remove; the
    // exact length is checked once trimmed.
    let limit_samples = max_seconds
        .saturating_mul(rate)
        .saturating_add(pre_skip)
        .saturating_add(max_packet as u64);
    let mut frame = vec![0f32; max_packet * channels];
    let mut mono: Vec<f32> = Vec::new();
    let mut end_granule = None;
    let mut packets = 0usize;
    while let Some(packet) = reader.read_packet().map_err(ogg_error)? {
        if packet.stream_serial() != serial {
            continue;
        }
        if !tags_seen {
            if !packet.data.starts_with(b"OpusTags") {
                return Err(SpeechError::Corrupt(
                    "the Opus comment header (OpusTags) is missing".into(),
                ));
            }
            tags_seen = true;
            continue;
        }
        packets += 1;
        let n = decoder
            .decode_float(&packet.data, &mut frame, false)
            .map_err(|e| SpeechError::Corrupt(format!("Opus packet {packets}: {e}")))?;
        if channels == 2 {
            mono.extend(
                frame[..n * 2]
                    .chunks_exact(2)
                    .map(|lr| 0.5 * (lr[0] + lr[1])),
            );
        } else {
            mono.extend_from_slice(&frame[..n]);
        }
        if mono.len() as u64 > limit_samples {
            let seconds = (mono.len() as u64 - pre_skip) as f64 / rate as f64;
            return Err(too_long(seconds, max_seconds));
        }
        if packet.last_in_page() {
            end_granule = Some(packet.absgp_page());
        }
        if packet.last_in_stream() {
            break;
        }
    }
    if !tags_seen {
        return Err(SpeechError::Corrupt(
            "the OGG stream ends after its header".into(),
        ));
    }
    // The last granule position counts the samples that are really audio (pre-skip included);
    // the encoder pads the final packet, which this trims.
    if let Some(granule) = end_granule.filter(|&g| g != u64::MAX) {
        let keep =
            (granule.saturating_sub(u64::from(head.pre_skip)) * rate).div_ceil(OPUS_GRANULE_RATE);
        let end = usize::try_from(pre_skip + keep).unwrap_or(usize::MAX);
        if end < mono.len() {
            mono.truncate(end);
        }
    }
    let skip = usize::try_from(pre_skip)
        .unwrap_or(usize::MAX)
        .min(mono.len());
    mono.drain(..skip);
    let seconds = mono.len() as f64 / rate as f64;
    if seconds > max_seconds as f64 {
        return Err(too_long(seconds, max_seconds));
    }
    Ok(mono)
}

// ---------------------------------------------------------------------------------------------
// WAV, MP3, M4A/AAC through symphonia

fn symphonia_error(context: &str, e: SymphoniaError) -> SpeechError {
    match e {
        SymphoniaError::Unsupported(what) => {
            SpeechError::Unsupported(format!("{context}: unsupported {what}"))
        }
        SymphoniaError::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            SpeechError::Corrupt(format!("{context}: the file is cut short"))
        }
        other => SpeechError::Corrupt(format!("{context}: {other}")),
    }
}

fn decode_with_symphonia(
    bytes: &[u8],
    container: Container,
    max_seconds: u64,
) -> Result<Vec<f32>, SpeechError> {
    let label = container.label();
    let source = MediaSourceStream::new(
        Box::new(Cursor::new(bytes.to_vec())),
        MediaSourceStreamOptions::default(),
    );
    let mut hint = Hint::new();
    hint.with_extension(container.extension());
    let format_options = FormatOptions {
        enable_gapless: true,
        ..FormatOptions::default()
    };
    let probed = symphonia::default::get_probe()
        .format(&hint, source, &format_options, &MetadataOptions::default())
        .map_err(|e| match e {
            // The probe says "unsupported" for anything it cannot recognise, damaged or not.
            SymphoniaError::Unsupported(_) => {
                SpeechError::Corrupt(format!("not a readable {label} file"))
            }
            other => symphonia_error(label, other),
        })?;
    let mut format = probed.format;
    let track = format
        .tracks()
        .iter()
        .find(|t| t.codec_params.codec != CODEC_TYPE_NULL)
        .ok_or_else(|| SpeechError::Corrupt(format!("the {label} file has no audio track")))?;
    let track_id = track.id;
    let params = track.codec_params.clone();
    let declared_frames = params.n_frames;
    if let (Some(frames), Some(rate)) = (params.n_frames, params.sample_rate) {
        let seconds = frames as f64 / f64::from(rate.max(1));
        if seconds > max_seconds as f64 {
            return Err(too_long(seconds, max_seconds));
        }
    }
    let mut decoder = symphonia::default::get_codecs()
        .make(&params, &DecoderOptions::default())
        .map_err(|e| symphonia_error(label, e))?;

    let mut rate = params.sample_rate;
    let mut mono: Vec<f32> = Vec::new();
    let mut buffer: Option<SampleBuffer<f32>> = None;
    let mut bad_packets = 0usize;
    let mut last_error = None;
    loop {
        let packet = match format.next_packet() {
            Ok(p) => p,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break
            }
            Err(SymphoniaError::ResetRequired) => break,
            Err(e) => return Err(symphonia_error(label, e)),
        };
        if packet.track_id() != track_id {
            continue;
        }
        let decoded = match decoder.decode(&packet) {
            Ok(d) => d,
            // A damaged frame is skipped, as players do; a stream of nothing but damage is
            // reported below.
            Err(SymphoniaError::DecodeError(why)) => {
                bad_packets += 1;
                last_error = Some(why);
                continue;
            }
            Err(e) => return Err(symphonia_error(label, e)),
        };
        let spec = *decoded.spec();
        let packet_rate = *rate.get_or_insert(spec.rate);
        if packet_rate != spec.rate {
            return Err(SpeechError::Unsupported(format!(
                "{label} audio whose sample rate changes mid-stream"
            )));
        }
        let channels = spec.channels.count().max(1);
        let needed = decoded.capacity() as u64;
        let buf = match &mut buffer {
            Some(b) if b.capacity() as u64 >= needed * channels as u64 => b,
            slot => slot.insert(SampleBuffer::new(needed, spec)),
        };
        buf.copy_interleaved_ref(decoded);
        let samples = buf.samples();
        if channels == 1 {
            mono.extend_from_slice(samples);
        } else {
            let scale = 1.0 / channels as f32;
            mono.extend(
                samples
                    .chunks_exact(channels)
                    .map(|frame| frame.iter().sum::<f32>() * scale),
            );
        }
        let seconds = mono.len() as f64 / f64::from(packet_rate.max(1));
        if seconds > max_seconds as f64 {
            return Err(too_long(seconds, max_seconds));
        }
    }
    if mono.is_empty() {
        return Err(match last_error {
            Some(why) => SpeechError::Corrupt(format!("{label}: {why}")),
            None => SpeechError::Empty,
        });
    }
    if bad_packets > 0 {
        tracing::debug!(bad_packets, format = label, "skipped damaged audio frames");
    }
    // A WAV header states its exact length; fewer frames means the file was cut.
    if container == Container::Wav {
        if let Some(frames) = declared_frames {
            if (mono.len() as u64) < frames {
                return Err(SpeechError::Corrupt(format!(
                    "the WAV file is cut short ({} of {frames} frames)",
                    mono.len()
                )));
            }
        }
    }
    let rate = rate.ok_or_else(|| SpeechError::Corrupt(format!("{label}: no sample rate")))?;
    resample(&mono, rate)
}

/// Resamples mono audio to [`SAMPLE_RATE`], keeping its duration.
pub fn resample(input: &[f32], from_rate: u32) -> Result<Vec<f32>, SpeechError> {
    use rubato::{FftFixedIn, Resampler};

    if from_rate == SAMPLE_RATE || input.is_empty() {
        return Ok(input.to_vec());
    }
    if from_rate == 0 {
        return Err(SpeechError::Corrupt("sample rate of 0 Hz".into()));
    }
    let failed = |e: &dyn std::fmt::Display| SpeechError::Corrupt(format!("resampling: {e}"));
    let mut resampler =
        FftFixedIn::<f32>::new(from_rate as usize, SAMPLE_RATE as usize, 1024, 2, 1)
            .map_err(|e| failed(&e))?;
    let expected = usize::try_from(
        (input.len() as u64 * u64::from(SAMPLE_RATE)).div_ceil(u64::from(from_rate)),
    )
    .unwrap_or(usize::MAX);
    // The resampler's output starts with a fixed delay, trimmed below.
    let delay = resampler.output_delay();
    let mut out = Vec::with_capacity(expected + delay + resampler.output_frames_max());
    let mut rest = input;
    loop {
        let need = resampler.input_frames_next();
        if rest.len() < need {
            break;
        }
        let (chunk, tail) = rest.split_at(need);
        let produced = resampler.process(&[chunk], None).map_err(|e| failed(&e))?;
        out.extend_from_slice(&produced[0]);
        rest = tail;
    }
    if !rest.is_empty() {
        let produced = resampler
            .process_partial(Some(&[rest][..]), None)
            .map_err(|e| failed(&e))?;
        out.extend_from_slice(&produced[0]);
    }
    while out.len() < expected + delay {
        let produced = resampler
            .process_partial::<&[f32]>(None, None)
            .map_err(|e| failed(&e))?;
        if produced[0].is_empty() {
            break;
        }
        out.extend_from_slice(&produced[0]);
    }
    out.drain(..delay.min(out.len()));
    out.truncate(expected);
    Ok(out)
}

/// The MIME type an audio file's extension suggests (`note.ogg` -> `audio/ogg; codecs=opus`):
/// a hint for [`decode`], which goes by the bytes.
pub fn mime_for_path(path: &std::path::Path) -> Option<&'static str> {
    let ext = path.extension()?.to_str()?.to_ascii_lowercase();
    Some(match ext.as_str() {
        "ogg" | "oga" | "opus" => "audio/ogg; codecs=opus",
        "wav" => "audio/wav",
        "mp3" => "audio/mpeg",
        "m4a" | "mp4" => "audio/mp4",
        "aac" => "audio/aac",
        _ => return None,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A tone of `seconds` at `rate`, `channels` interleaved.
    pub(crate) fn tone(rate: u32, channels: usize, seconds: f64, hz: f64) -> Vec<f32> {
        let frames = (f64::from(rate) * seconds).round() as usize;
        (0..frames)
            .flat_map(|i| {
                let v = (0.3 * (2.0 * std::f64::consts::PI * hz * i as f64 / f64::from(rate)).sin())
                    as f32;
                std::iter::repeat_n(v, channels)
            })
            .collect()
    }

    /// A 16-bit PCM WAV file.
    pub(crate) fn wav(rate: u32, channels: u16, samples: &[f32]) -> Vec<u8> {
        let data_len = (samples.len() * 2) as u32;
        let mut out = Vec::with_capacity(44 + samples.len() * 2);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&(36 + data_len).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        out.extend_from_slice(&16u32.to_le_bytes());
        out.extend_from_slice(&1u16.to_le_bytes());
        out.extend_from_slice(&channels.to_le_bytes());
        out.extend_from_slice(&rate.to_le_bytes());
        out.extend_from_slice(&(rate * u32::from(channels) * 2).to_le_bytes());
        out.extend_from_slice(&(channels * 2).to_le_bytes());
        out.extend_from_slice(&16u16.to_le_bytes());
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data_len.to_le_bytes());
        for s in samples {
            out.extend_from_slice(&((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes());
        }
        out
    }

    /// Encodes interleaved 48 kHz audio as Ogg Opus the way opusenc does: OpusHead with a
    /// pre-skip, OpusTags, 20 ms packets, the last granule marking the true end.
    pub(crate) fn ogg_opus(
        channels: u8,
        samples48: &[f32],
        head_override: Option<&[u8]>,
    ) -> Vec<u8> {
        let ch = usize::from(channels);
        let mut enc = opus::Encoder::new(
            48_000,
            if ch == 2 {
                opus::Channels::Stereo
            } else {
                opus::Channels::Mono
            },
            opus::Application::Voip,
        )
        .unwrap();
        let pre_skip = enc.get_lookahead().unwrap() as u16;
        let mut head = b"OpusHead".to_vec();
        head.push(1);
        head.push(channels);
        head.extend_from_slice(&pre_skip.to_le_bytes());
        head.extend_from_slice(&48_000u32.to_le_bytes());
        head.extend_from_slice(&0i16.to_le_bytes());
        head.push(0);
        let head = head_override.map(<[u8]>::to_vec).unwrap_or(head);
        let mut tags = b"OpusTags".to_vec();
        tags.extend_from_slice(&4u32.to_le_bytes());
        tags.extend_from_slice(b"test");
        tags.extend_from_slice(&0u32.to_le_bytes());

        let mut out = Vec::new();
        let serial = 0x5EED;
        {
            let mut w = ogg::PacketWriter::new(&mut out);
            w.write_packet(head, serial, ogg::PacketWriteEndInfo::EndPage, 0)
                .unwrap();
            w.write_packet(tags, serial, ogg::PacketWriteEndInfo::EndPage, 0)
                .unwrap();
            // The encoder delays its output by `pre_skip`; feeding that much silence after the
            // audio flushes it, and the last granule (pre-skip + audio) marks where it ends.
            let frame = 960 * ch;
            let total = pre_skip as usize + samples48.len() / ch;
            let mut padded = samples48.to_vec();
            padded.resize((total * ch).div_ceil(frame) * frame, 0.0);
            let chunks: Vec<&[f32]> = padded.chunks(frame).collect();
            for (i, chunk) in chunks.iter().enumerate() {
                let packet = enc.encode_vec_float(chunk, 4000).unwrap();
                let last = i + 1 == chunks.len();
                let granule = if last {
                    total as u64
                } else {
                    ((i + 1) * 960) as u64
                };
                let end = if last {
                    ogg::PacketWriteEndInfo::EndStream
                } else if i % 10 == 9 {
                    ogg::PacketWriteEndInfo::EndPage
                } else {
                    ogg::PacketWriteEndInfo::NormalPacket
                };
                w.write_packet(packet, serial, end, granule).unwrap();
            }
        }
        out
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
    }

    #[test]
    fn sniffs_containers_from_magic_numbers() {
        let cases: &[(&[u8], Option<Container>)] = &[
            (b"OggS\0\x02rest", Some(Container::Ogg)),
            (b"RIFF\x24\0\0\0WAVEfmt ", Some(Container::Wav)),
            (b"\0\0\0\x20ftypM4A ", Some(Container::Mp4)),
            (b"ID3\x04\0\0", Some(Container::Mp3)),
            (&[0xFF, 0xFB, 0x90, 0x64], Some(Container::Mp3)),
            (&[0xFF, 0xF1, 0x50, 0x80], Some(Container::Adts)),
            (b"fLaC\0\0\0\x22", Some(Container::Flac)),
            (&[0x1A, 0x45, 0xDF, 0xA3, 0x9F], Some(Container::WebM)),
            (b"#!AMR\n", Some(Container::Amr)),
            (b"hello, this is text", None),
            (b"RIFF\x24\0\0\0AVI ", None),
            (b"Og", None),
            (b"", None),
        ];
        for (bytes, want) in cases {
            assert_eq!(sniff(bytes), *want, "{bytes:?}");
        }
    }

    #[test]
    fn reads_mime_types_with_parameters() {
        let cases = [
            ("audio/ogg; codecs=opus", Some(Container::Ogg)),
            ("AUDIO/OGG", Some(Container::Ogg)),
            ("audio/mpeg", Some(Container::Mp3)),
            ("audio/mp4", Some(Container::Mp4)),
            ("audio/x-wav", Some(Container::Wav)),
            ("audio/aac", Some(Container::Adts)),
            ("audio/amr", Some(Container::Amr)),
            ("image/jpeg", None),
            ("", None),
        ];
        for (mime, want) in cases {
            assert_eq!(container_from_mime(mime), want, "{mime}");
        }
    }

    #[test]
    fn opus_head_parsing_checks_every_field() {
        let good = |channels: u8, family: u8, extra: &[u8]| {
            let mut h = b"OpusHead\x01".to_vec();
            h.push(channels);
            h.extend_from_slice(&312u16.to_le_bytes());
            h.extend_from_slice(&44_100u32.to_le_bytes());
            h.extend_from_slice(&(-256i16).to_le_bytes());
            h.push(family);
            h.extend_from_slice(extra);
            h
        };
        let head = OpusHead::parse(&good(2, 0, &[])).unwrap();
        assert_eq!(
            head,
            OpusHead {
                channels: 2,
                pre_skip: 312,
                input_rate: 44_100,
                output_gain: -256
            }
        );
        assert_eq!(
            OpusHead::parse(&good(1, 1, &[1, 0, 0])).unwrap().channels,
            1
        );
        let corrupt: &[(&str, Vec<u8>)] = &[
            ("short", b"OpusHead\x01\x01".to_vec()),
            ("zero channels", good(0, 0, &[])),
            ("3 channels family 0", good(3, 0, &[])),
            ("version 16", {
                let mut h = good(1, 0, &[]);
                h[8] = 16;
                h
            }),
            ("family 1 without table", good(2, 1, &[])),
            ("family 1 short table", good(2, 1, &[1, 1, 0])),
        ];
        for (what, bytes) in corrupt {
            assert!(
                matches!(OpusHead::parse(bytes), Err(SpeechError::Corrupt(_))),
                "{what}"
            );
        }
        assert!(matches!(
            OpusHead::parse(&good(6, 1, &[4, 2, 0, 4, 1, 2, 3, 5])),
            Err(SpeechError::Unsupported(_))
        ));
    }

    #[test]
    fn ogg_opus_keeps_exact_length_after_pre_skip_and_end_trim() {
        for (channels, seconds) in [(1u8, 1.013), (2, 2.5), (1, 0.05)] {
            let pcm = tone(48_000, usize::from(channels), seconds, 440.0);
            let ogg = ogg_opus(channels, &pcm, None);
            let (samples, secs) = decode(&ogg, Some("audio/ogg; codecs=opus"), 60).unwrap();
            let want = (seconds * 16_000.0).round() as usize;
            assert!(
                samples.len().abs_diff(want) <= 1,
                "{channels} ch {seconds} s: {} samples, want {want}",
                samples.len()
            );
            assert!((secs - seconds).abs() < 0.001, "{secs} vs {seconds}");
            // A 440 Hz tone at amplitude 0.3 has an RMS of ~0.21; silence or garbage would not.
            let level = rms(&samples[samples.len() / 4..samples.len() * 3 / 4]);
            assert!((0.15..0.27).contains(&level), "rms {level}");
        }
    }

    #[test]
    fn ogg_opus_pre_skip_removes_the_encoder_delay() {
        // Silence then a tone: after the pre-skip the tone starts where it was put, not later.
        let mut pcm = vec![0f32; 48_000 / 2];
        pcm.extend(tone(48_000, 1, 0.5, 300.0));
        let ogg = ogg_opus(1, &pcm, None);
        let (samples, _) = decode(&ogg, None, 60).unwrap();
        let onset = samples.iter().position(|s| s.abs() > 0.05).unwrap();
        assert!(
            onset.abs_diff(8_000) < 40,
            "tone starts at sample {onset}, expected ~8000"
        );
    }

    #[test]
    fn overlong_ogg_is_refused_from_its_last_granule() {
        let pcm = tone(48_000, 1, 3.0, 440.0);
        let ogg = ogg_opus(1, &pcm, None);
        match decode(&ogg, None, 2) {
            Err(SpeechError::TooLong { seconds, limit }) => {
                assert_eq!(limit, 2);
                assert!((seconds - 3.0).abs() < 0.01, "{seconds}");
            }
            other => panic!("expected TooLong, got {other:?}"),
        }
        assert!(decode(&ogg, None, 3).is_ok());
    }

    #[test]
    fn overlong_ogg_without_a_usable_granule_is_stopped_while_decoding() {
        let pcm = tone(48_000, 1, 3.0, 440.0);
        let mut ogg = ogg_opus(1, &pcm, None);
        // Hide every granule position (-1 means "no packet ends here") and fix the CRCs, so
        // only decoding can tell the length.
        let mut at = 0;
        while let Some(p) = ogg[at..].windows(4).position(|w| w == b"OggS") {
            let start = at + p;
            let n_segments = ogg[start + 26] as usize;
            let body: usize = ogg[start + 27..start + 27 + n_segments]
                .iter()
                .map(|&b| b as usize)
                .sum();
            let end = start + 27 + n_segments + body;
            if u64::from_le_bytes(ogg[start + 6..start + 14].try_into().unwrap()) != 0 {
                ogg[start + 6..start + 14].copy_from_slice(&u64::MAX.to_le_bytes());
            }
            ogg[start + 22..start + 26].fill(0);
            let crc = ogg_crc(&ogg[start..end]);
            ogg[start + 22..start + 26].copy_from_slice(&crc.to_le_bytes());
            at = end;
        }
        match decode(&ogg, None, 2) {
            Err(SpeechError::TooLong { seconds, .. }) => assert!(seconds > 2.0, "{seconds}"),
            other => panic!("expected TooLong, got {other:?}"),
        }
    }

    fn ogg_crc(page: &[u8]) -> u32 {
        let mut crc = 0u32;
        for &b in page {
            crc ^= u32::from(b) << 24;
            for _ in 0..8 {
                crc = if crc & 0x8000_0000 != 0 {
                    (crc << 1) ^ 0x04C1_1DB7
                } else {
                    crc << 1
                };
            }
        }
        crc
    }

    #[test]
    fn broken_ogg_gives_clean_errors() {
        let pcm = tone(48_000, 1, 1.0, 440.0);
        let ogg = ogg_opus(1, &pcm, None);
        for cut in [30, ogg.len() / 2, ogg.len() - 7] {
            assert!(
                matches!(decode(&ogg[..cut], None, 60), Err(SpeechError::Corrupt(_))),
                "truncated at {cut}"
            );
        }
        let mut bad_head = b"OpusHead\x01\x00\x38\x01".to_vec();
        bad_head.extend_from_slice(&[0; 11]);
        let ogg = ogg_opus(1, &pcm, Some(&bad_head));
        match decode(&ogg, Some("audio/ogg"), 60) {
            Err(SpeechError::Corrupt(msg)) => assert!(msg.contains("OpusHead"), "{msg}"),
            other => panic!("expected a bad OpusHead error, got {other:?}"),
        }
        let vorbis = ogg_opus(1, &pcm, Some(b"\x01vorbis\0\0\0\0\x01\x44\xac\0\0"));
        assert!(matches!(
            decode(&vorbis, None, 60),
            Err(SpeechError::Unsupported(m)) if m.contains("Vorbis")
        ));
        let mut flipped = ogg_opus(1, &pcm, None);
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x55;
        assert!(matches!(
            decode(&flipped, None, 60),
            Err(SpeechError::Corrupt(_))
        ));
    }

    #[test]
    fn damaged_input_never_panics() {
        // Cheap deterministic fuzzing: flip bytes and cut at many places across every format.
        let pcm = tone(48_000, 2, 0.4, 440.0);
        let mono16 = tone(22_050, 1, 0.4, 440.0);
        let samples: Vec<Vec<u8>> = vec![ogg_opus(2, &pcm, None), wav(22_050, 1, &mono16)];
        let mut state = 0x1234_5678u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for original in &samples {
            for _ in 0..150 {
                let mut bytes = original.clone();
                let flips = 1 + next() as usize % 8;
                for _ in 0..flips {
                    let i = next() as usize % bytes.len();
                    bytes[i] = next() as u8;
                }
                let cut = next() as usize % (bytes.len() + 1);
                let _ = decode(&bytes[..cut.max(1)], None, 60);
                let _ = decode(&bytes, Some("audio/ogg"), 60);
            }
        }
        for len in [1usize, 4, 27, 100, 5000] {
            let junk: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let _ = decode(&junk, None, 60);
            let _ = decode(&junk, Some("audio/mpeg"), 60);
            let mut oggish = b"OggS".to_vec();
            oggish.extend_from_slice(&junk);
            assert!(decode(&oggish, None, 60).is_err());
        }
    }

    #[test]
    fn empty_text_and_random_bytes_are_refused() {
        assert!(matches!(decode(b"", None, 60), Err(SpeechError::Empty)));
        assert!(matches!(
            decode(b"", Some("audio/ogg"), 60),
            Err(SpeechError::Empty)
        ));
        let text = b"Dear customer,\nthis is a text file and not a voice note.\n";
        assert!(matches!(
            decode(text, None, 60),
            Err(SpeechError::Unsupported(_))
        ));
        assert!(matches!(
            decode(text, Some("audio/ogg; codecs=opus"), 60),
            Err(SpeechError::Corrupt(_))
        ));
        let random: Vec<u8> = (0u32..4096)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        assert!(decode(&random, None, 60).is_err());
        assert!(matches!(
            decode(b"fLaC\0\0\0\x22rest", None, 60),
            Err(SpeechError::Unsupported(m)) if m.contains("FLAC")
        ));
    }

    #[test]
    fn wav_is_downmixed_and_resampled() {
        for (rate, channels) in [(16_000u32, 1u16), (44_100, 2), (8_000, 1), (48_000, 2)] {
            let seconds = 1.5;
            let pcm = tone(rate, usize::from(channels), seconds, 500.0);
            let bytes = wav(rate, channels, &pcm);
            let (samples, secs) = decode(&bytes, Some("audio/wav"), 60).unwrap();
            let want = (seconds * 16_000.0) as usize;
            assert!(
                samples.len().abs_diff(want) <= 1,
                "{rate} Hz x{channels}: {} samples, want {want}",
                samples.len()
            );
            assert!((secs - seconds).abs() < 0.001);
            let level = rms(&samples[4000..20000]);
            assert!((0.19..0.23).contains(&level), "{rate} Hz: rms {level}");
            // Same phase as the tone generated directly at 16 kHz: no delay was added.
            let reference = tone(16_000, 1, seconds, 500.0);
            let err = rms(&samples[4000..20000]
                .iter()
                .zip(&reference[4000..20000])
                .map(|(a, b)| a - b)
                .collect::<Vec<_>>());
            assert!(err < 0.02, "{rate} Hz: resampled differs by rms {err}");
        }
    }

    #[test]
    fn wav_length_is_checked_before_and_after_decoding() {
        let pcm = tone(16_000, 1, 3.0, 500.0);
        let bytes = wav(16_000, 1, &pcm);
        assert!(matches!(
            decode(&bytes, None, 2),
            Err(SpeechError::TooLong { seconds, limit: 2 }) if (seconds - 3.0).abs() < 0.01
        ));
        assert!(matches!(
            decode(&bytes[..bytes.len() / 2], None, 60),
            Err(SpeechError::Corrupt(m)) if m.contains("cut short")
        ));
        assert!(matches!(
            decode(&bytes[..30], None, 60),
            Err(SpeechError::Corrupt(_))
        ));
    }

    /// Energy of each 20 ms frame of 16 kHz audio.
    fn envelope(x: &[f32]) -> Vec<f32> {
        x.chunks(320).map(rms).collect()
    }

    fn correlation(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mean = |x: &[f32]| x.iter().sum::<f32>() / n as f32;
        let (ma, mb) = (mean(a), mean(b));
        let cov: f32 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let var = |x: &[f32], m: f32| x.iter().map(|v| (v - m) * (v - m)).sum::<f32>();
        cov / (var(a, ma) * var(b, mb)).sqrt()
    }

    /// A real opusenc voice note decodes to the same length and timing as the WAV it was
    /// made from: pre-skip and end trim are honoured on files we did not write ourselves.
    #[tokio::test]
    async fn opusenc_notes_line_up_with_their_source() {
        use crate::speech::synth;
        let dir = tempfile::tempdir().unwrap();
        let required = std::env::var("PALAVER_REQUIRE_MODELS").is_ok_and(|v| v == "1");
        let wav = match synth::speak_wav(synth::SHORT_EN, "en-us", dir.path()).await {
            Ok(w) => w,
            Err(synth::SynthError::Missing(tool)) if !required => {
                eprintln!("skipping: `{tool}` is not installed");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let ogg = match synth::voice_note(synth::SHORT_EN, "en-us", dir.path()).await {
            Ok(o) => o,
            Err(synth::SynthError::Missing(tool)) if !required => {
                eprintln!("skipping: `{tool}` is not installed");
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let (from_wav, wav_secs) = decode(&wav, None, 60).unwrap();
        let (from_ogg, ogg_secs) = decode(&ogg, Some("audio/ogg; codecs=opus"), 60).unwrap();
        assert!(
            (wav_secs - ogg_secs).abs() < 0.002,
            "wav {wav_secs} s, ogg {ogg_secs} s"
        );
        let (ew, eo) = (envelope(&from_wav), envelope(&from_ogg));
        let aligned = correlation(&ew, &eo);
        assert!(aligned > 0.95, "envelopes correlate at {aligned}");
        // Shifted by a frame either way they match worse: the timing is exact.
        assert!(correlation(&ew[1..], &eo) < aligned);
        assert!(correlation(&ew, &eo[1..]) < aligned);
    }

    #[test]
    fn audio_types_from_file_names() {
        use std::path::Path;
        assert_eq!(
            mime_for_path(Path::new("a/b.ogg")),
            Some("audio/ogg; codecs=opus")
        );
        assert_eq!(mime_for_path(Path::new("x.WAV")), Some("audio/wav"));
        assert_eq!(mime_for_path(Path::new("x.txt")), None);
        assert_eq!(mime_for_path(Path::new("noext")), None);
    }
}
