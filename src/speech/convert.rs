//! Conversion of CTranslate2 (faster-whisper) Whisper weights into the ggml file whisper.cpp
//! loads. The registries ship Whisper only as CTranslate2 `model.bin` + `vocabulary.txt`; this
//! module reads that binary layout and writes the ggml layout byte for byte as the reference
//! converter does (header and hyper-parameters, Slaney mel filters, GPT-2 byte-level vocabulary,
//! tensors in whisper.cpp's order and names, f16 weights), streaming tensor by tensor so the
//! model is never held in memory twice. The weight matrices may instead be quantized into ggml's
//! 8-bit (`q8_0`) or 5-bit (`q5_1`) blocks, as whisper.cpp's own quantizer writes them.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

/// Why a CTranslate2 model could not be converted.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The input is not a well-formed CTranslate2 Whisper model.
    #[error("{path}: not a usable CTranslate2 Whisper model: {reason}")]
    Format {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The vocabulary file cannot be turned into ggml tokens.
    #[error("{path}: bad vocabulary: {reason}")]
    Vocabulary {
        /// The vocabulary file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A weight matrix whose rows do not divide into ggml's 32-value quantization blocks.
    #[error("{tensor}: rows of {row} values cannot be quantized in blocks of 32")]
    Unquantizable {
        /// The ggml tensor.
        tensor: String,
        /// Its row length.
        row: usize,
    },
    /// whisper.cpp's format has no key bias; a model with one cannot be converted faithfully.
    #[error("{variable}: non-zero key bias, which whisper.cpp's ggml format cannot represent")]
    KeyBias {
        /// The fused attention variable whose key part has a bias.
        variable: String,
    },
}

/// What a conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertSummary {
    /// Hyper-parameters written to the header, in ggml order.
    pub hparams: Hparams,
    /// Tensors written.
    pub tensors: usize,
    /// Vocabulary entries written (regular BPE tokens, up to `<|endoftext|>`).
    pub tokens: usize,
    /// Size of the output file in bytes.
    pub bytes: u64,
}

/// Whisper hyper-parameters as whisper.cpp's ggml header stores them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hparams {
    /// Vocabulary size (51864 English-only, 51865+ multilingual).
    pub n_vocab: i32,
    /// Audio context length (1500).
    pub n_audio_ctx: i32,
    /// Encoder width.
    pub n_audio_state: i32,
    /// Encoder attention heads.
    pub n_audio_head: i32,
    /// Encoder layers.
    pub n_audio_layer: i32,
    /// Text context length (448).
    pub n_text_ctx: i32,
    /// Decoder width.
    pub n_text_state: i32,
    /// Decoder attention heads.
    pub n_text_head: i32,
    /// Decoder layers.
    pub n_text_layer: i32,
    /// Mel bands (80, or 128 for large-v3).
    pub n_mels: i32,
    /// Weight type as ggml numbers it (1 = f16, 7 = q8_0, 9 = q5_1), plus 1000 times ggml's
    /// quantization version for quantized files.
    pub ftype: i32,
}

/// How the weight matrices are stored in the ggml file (vectors, biases and positional
/// embeddings stay f32, the convolutions f16, whatever the choice).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WeightType {
    /// 16-bit floats: the CTranslate2 values unchanged.
    #[default]
    F16,
    /// ggml's `q8_0`: blocks of 32 values as one f16 scale and 32 signed bytes (8.5 bits a
    /// value).
    Q8_0,
    /// ggml's `q5_1`: blocks of 32 values as an f16 scale, an f16 minimum and 32 five-bit
    /// steps (6 bits a value).
    Q5_1,
}

/// ggml's quantization format version, stored in the header's `ftype` of quantized files.
const GGML_QNT_VERSION: i32 = 2;
/// Values per quantization block (`QK8_0`, `QK5_1`).
const QUANT_BLOCK: usize = 32;

impl WeightType {
    /// The header's `ftype`: ggml's file type, with the quantization version for quantized
    /// files (as whisper.cpp's quantizer writes it).
    fn header_ftype(self) -> i32 {
        match self {
            WeightType::F16 => 1,
            WeightType::Q8_0 => 7 + GGML_QNT_VERSION * 1000,
            WeightType::Q5_1 => 9 + GGML_QNT_VERSION * 1000,
        }
    }

    /// The tensor type of a weight matrix.
    fn tensor_type(self) -> Ftype {
        match self {
            WeightType::F16 => Ftype::F16,
            WeightType::Q8_0 => Ftype::Q8_0,
            WeightType::Q5_1 => Ftype::Q5_1,
        }
    }
}

impl Hparams {
    fn as_array(&self) -> [i32; 11] {
        [
            self.n_vocab,
            self.n_audio_ctx,
            self.n_audio_state,
            self.n_audio_head,
            self.n_audio_layer,
            self.n_text_ctx,
            self.n_text_state,
            self.n_text_head,
            self.n_text_layer,
            self.n_mels,
            self.ftype,
        ]
    }

    /// Whether the model knows many languages (English-only models have 51864 tokens).
    pub fn multilingual(&self) -> bool {
        self.n_vocab >= 51865
    }
}

/// Converts a directory holding `model.bin` and `vocabulary.txt` into the ggml file `out`, with
/// the weight matrices stored as `weights`. The file appears only once complete (written beside
/// it, then renamed).
pub fn convert_dir(
    ct2_dir: &Path,
    out: &Path,
    weights: WeightType,
) -> Result<ConvertSummary, ConvertError> {
    convert(
        &ct2_dir.join("model.bin"),
        &ct2_dir.join("vocabulary.txt"),
        out,
        weights,
    )
}

/// Converts CTranslate2 Whisper weights (`model_bin`) and their vocabulary into the ggml file
/// `out`, with the weight matrices stored as `weights`. The file appears only once complete
/// (written beside it, then renamed).
pub fn convert(
    model_bin: &Path,
    vocabulary: &Path,
    out: &Path,
    weights: WeightType,
) -> Result<ConvertSummary, ConvertError> {
    let mut model = Ct2Model::open(model_bin)?;
    if model.spec != "WhisperSpec" {
        return Err(model.format_error(format!(
            "model spec is `{}`, expected `WhisperSpec`",
            model.spec
        )));
    }
    let hparams = Hparams {
        ftype: weights.header_ftype(),
        ..model.hparams()?
    };
    let plan = tensor_plan(&model, &hparams, weights)?;
    for tensor in &plan {
        if let Some(bias) = &tensor.zero_check {
            model.check_zero(bias)?;
        }
        let row = tensor.shape.last().copied().unwrap_or(1);
        if tensor.ftype.is_quantized() && row % QUANT_BLOCK != 0 {
            return Err(ConvertError::Unquantizable {
                tensor: tensor.name.clone(),
                row,
            });
        }
    }
    let tokens = read_vocabulary(vocabulary)?;
    let filters = mel_filters(hparams.n_mels as usize);
    tracing::info!(
        model = %model_bin.display(),
        n_vocab = hparams.n_vocab,
        layers = hparams.n_audio_layer,
        weights = ?weights,
        tensors = plan.len(),
        tokens = tokens.len(),
        "converting CTranslate2 Whisper model to ggml"
    );

    let file_name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ggml-model.bin".into());
    let partial = out.with_file_name(format!(".{file_name}.partial"));
    let written = (|| {
        let file = File::create(&partial).map_err(io_at(&partial))?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        let bytes = write_ggml(&mut model, &hparams, &filters, &tokens, &plan, &mut w)
            .map_err(|e| e.at(&partial))?;
        let file = w
            .into_inner()
            .map_err(|e| io_at(&partial)(e.into_error()))?;
        file.sync_all().map_err(io_at(&partial))?;
        std::fs::rename(&partial, out).map_err(io_at(out))?;
        Ok(bytes)
    })();
    let bytes = match written {
        Ok(bytes) => bytes,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e);
        }
    };
    Ok(ConvertSummary {
        hparams,
        tensors: plan.len(),
        tokens: tokens.len(),
        bytes,
    })
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> ConvertError + '_ {
    move |source| ConvertError::Io {
        path: path.to_path_buf(),
        source,
    }
}

// ---------------------------------------------------------------------------------------------
// CTranslate2 model.bin

/// Element type of a CTranslate2 variable (the numbering of `ctranslate2::DataType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DType {
    F32,
    I8,
    I16,
    I32,
    F16,
    BF16,
}

impl DType {
    fn from_id(id: u8) -> Option<Self> {
        Some(match id {
            0 => DType::F32,
            1 => DType::I8,
            2 => DType::I16,
            3 => DType::I32,
            4 => DType::F16,
            5 => DType::BF16,
            _ => return None,
        })
    }

    fn size(self) -> usize {
        match self {
            DType::I8 => 1,
            DType::I16 | DType::F16 | DType::BF16 => 2,
            DType::F32 | DType::I32 => 4,
        }
    }

    fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F16 | DType::BF16)
    }

    /// Decodes little-endian elements into `out` (as `f32`, integers by value).
    fn decode(self, raw: &[u8], out: &mut Vec<f32>) {
        out.clear();
        match self {
            DType::F32 => out.extend(
                raw.chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            DType::F16 => out.extend(
                raw.chunks_exact(2)
                    .map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            DType::BF16 => out.extend(
                raw.chunks_exact(2)
                    .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
            ),
            DType::I8 => out.extend(raw.iter().map(|&b| f32::from(b as i8))),
            DType::I16 => out.extend(
                raw.chunks_exact(2)
                    .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]]))),
            ),
            DType::I32 => out.extend(
                raw.chunks_exact(4)
                    .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32),
            ),
        }
    }
}

/// Where one variable's data lies in the file.
#[derive(Debug, Clone)]
struct Variable {
    dims: Vec<usize>,
    dtype: DType,
    offset: u64,
}

impl Variable {
    fn len(&self) -> usize {
        self.dims.iter().product()
    }

    /// Elements per index of the first axis (1 for vectors and scalars).
    fn row_len(&self) -> usize {
        self.dims.iter().skip(1).product()
    }

    fn rows(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }
}

/// An index of a CTranslate2 `model.bin`: names, shapes, types and offsets of its variables.
/// Data is read on demand.
struct Ct2Model {
    path: PathBuf,
    file: File,
    spec: String,
    variables: BTreeMap<String, Variable>,
    aliases: HashMap<String, String>,
}

/// Limits that keep a damaged header from asking for absurd allocations.
const MAX_RANK: u8 = 8;
const MAX_VARIABLES: u32 = 1_000_000;

impl Ct2Model {
    fn open(path: &Path) -> Result<Self, ConvertError> {
        let file = File::open(path).map_err(io_at(path))?;
        let file_len = file.metadata().map_err(io_at(path))?.len();
        let mut r = BufReader::new(file.try_clone().map_err(io_at(path))?);
        let bad = |reason: String| ConvertError::Format {
            path: path.to_path_buf(),
            reason,
        };
        let eof = |e: io::Error| -> ConvertError {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                bad("the file ends inside its header".into())
            } else {
                io_at(path)(e)
            }
        };

        let version = read_u32(&mut r).map_err(eof)?;
        if !(5..=6).contains(&version) {
            return Err(bad(format!(
                "binary version {version} (this converter reads versions 5 and 6)"
            )));
        }
        let spec = read_string(&mut r).map_err(eof)?;
        let _revision = read_u32(&mut r).map_err(eof)?;
        let count = read_u32(&mut r).map_err(eof)?;
        if count > MAX_VARIABLES {
            return Err(bad(format!("{count} variables")));
        }
        let mut variables = BTreeMap::new();
        for _ in 0..count {
            let name = read_string(&mut r).map_err(eof)?;
            let rank = read_u8(&mut r).map_err(eof)?;
            if rank > MAX_RANK {
                return Err(bad(format!("variable `{name}` has rank {rank}")));
            }
            let mut dims = Vec::with_capacity(usize::from(rank));
            for _ in 0..rank {
                dims.push(read_u32(&mut r).map_err(eof)? as usize);
            }
            let type_id = read_u8(&mut r).map_err(eof)?;
            let dtype = DType::from_id(type_id)
                .ok_or_else(|| bad(format!("variable `{name}` has unknown type {type_id}")))?;
            let nbytes = u64::from(read_u32(&mut r).map_err(eof)?);
            let expected = dims
                .iter()
                .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64));
            if expected != Some(nbytes) {
                return Err(bad(format!(
                    "variable `{name}` holds {nbytes} bytes, but its shape {dims:?} of {dtype:?} needs {}",
                    expected.map_or_else(|| "too many".to_string(), |e| e.to_string())
                )));
            }
            let offset = r.stream_position().map_err(io_at(path))?;
            if offset + nbytes > file_len {
                return Err(bad(format!(
                    "variable `{name}` runs past the end of the file (truncated?)"
                )));
            }
            r.seek_relative(nbytes as i64).map_err(io_at(path))?;
            variables.insert(
                name,
                Variable {
                    dims,
                    dtype,
                    offset,
                },
            );
        }
        let alias_count = read_u32(&mut r).map_err(eof)?;
        if alias_count > MAX_VARIABLES {
            return Err(bad(format!("{alias_count} aliases")));
        }
        let mut aliases = HashMap::new();
        for _ in 0..alias_count {
            let alias = read_string(&mut r).map_err(eof)?;
            let target = read_string(&mut r).map_err(eof)?;
            aliases.insert(alias, target);
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
            spec,
            variables,
            aliases,
        })
    }

    fn format_error(&self, reason: String) -> ConvertError {
        ConvertError::Format {
            path: self.path.clone(),
            reason,
        }
    }

    /// The name under which `name`'s data is stored (following aliases).
    fn resolve<'s>(&'s self, name: &str) -> Result<(&'s str, &'s Variable), ConvertError> {
        let mut current = name;
        // Aliases may chain; a loop longer than the table is a cycle.
        for _ in 0..=self.aliases.len() {
            if let Some((key, var)) = self.variables.get_key_value(current) {
                return Ok((key.as_str(), var));
            }
            match self.aliases.get(current) {
                Some(target) => current = target,
                None => break,
            }
        }
        Err(self.format_error(format!("missing variable `{name}`")))
    }

    fn var(&self, name: &str) -> Result<&Variable, ConvertError> {
        self.resolve(name).map(|(_, v)| v)
    }

    fn dims(&self, name: &str, rank: usize) -> Result<Vec<usize>, ConvertError> {
        let var = self.var(name)?;
        if var.dims.len() != rank {
            return Err(self.format_error(format!(
                "variable `{name}` has shape {:?}, expected rank {rank}",
                var.dims
            )));
        }
        Ok(var.dims.clone())
    }

    fn read_raw(
        &mut self,
        var: &Variable,
        elements: Range<usize>,
    ) -> Result<Vec<u8>, ConvertError> {
        let size = var.dtype.size();
        let mut raw = vec![0u8; (elements.end - elements.start) * size];
        self.file
            .seek(SeekFrom::Start(var.offset + (elements.start * size) as u64))
            .map_err(io_at(&self.path))?;
        self.file.read_exact(&mut raw).map_err(io_at(&self.path))?;
        Ok(raw)
    }

    /// All elements of a (small) variable as `f32`.
    fn read_f32(&mut self, name: &str) -> Result<Vec<f32>, ConvertError> {
        let var = self.var(name)?.clone();
        let raw = self.read_raw(&var, 0..var.len())?;
        let mut out = Vec::new();
        var.dtype.decode(&raw, &mut out);
        Ok(out)
    }

    fn scalar(&mut self, name: &str) -> Result<i32, ConvertError> {
        let values = self.read_f32(name)?;
        match values.as_slice() {
            [v] if v.fract() == 0.0 && *v > 0.0 && *v < 1e6 => Ok(*v as i32),
            _ => Err(self.format_error(format!(
                "variable `{name}` should be one positive integer, found {values:?}"
            ))),
        }
    }

    fn check_zero(&mut self, slice: &Slice) -> Result<(), ConvertError> {
        let var = self.var(&slice.variable)?.clone();
        let row = var.row_len();
        let raw = self.read_raw(&var, slice.rows.start * row..slice.rows.end * row)?;
        let mut values = Vec::new();
        var.dtype.decode(&raw, &mut values);
        if values.iter().any(|v| *v != 0.0) {
            return Err(ConvertError::KeyBias {
                variable: slice.variable.clone(),
            });
        }
        Ok(())
    }

    fn layer_count(&self, prefix: &str) -> Result<i32, ConvertError> {
        let layers: BTreeSet<usize> = self
            .variables
            .keys()
            .filter_map(|k| {
                let rest = k.strip_prefix(prefix)?;
                let (index, _) = rest.split_once('/')?;
                index.parse().ok()
            })
            .collect();
        let n = layers.len();
        if n == 0 || layers.last() != Some(&(n - 1)) {
            return Err(self.format_error(format!(
                "layers `{prefix}N` are missing or not numbered 0..N"
            )));
        }
        i32::try_from(n).map_err(|_| self.format_error(format!("{n} layers")))
    }

    fn hparams(&mut self) -> Result<Hparams, ConvertError> {
        let emb = self.dims("decoder/embeddings/weight", 2)?;
        let conv1 = self.dims("encoder/conv1/weight", 3)?;
        let audio_pos = self.dims("encoder/position_encodings/encodings", 2)?;
        let text_pos = self.dims("decoder/position_encodings/encodings", 2)?;
        let int = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        let (n_vocab, d) = (int(emb[0]), int(emb[1]));
        Ok(Hparams {
            n_vocab,
            n_audio_ctx: int(audio_pos[0]),
            n_audio_state: d,
            n_audio_head: self.scalar("encoder/num_heads")?,
            n_audio_layer: self.layer_count("encoder/layer_")?,
            n_text_ctx: int(text_pos[0]),
            n_text_state: d,
            n_text_head: self.scalar("decoder/num_heads")?,
            n_text_layer: self.layer_count("decoder/layer_")?,
            n_mels: int(conv1[1]),
            ftype: 1,
        })
    }
}

fn read_u8(r: &mut impl Read) -> io::Result<u8> {
    let mut b = [0u8; 1];
    r.read_exact(&mut b)?;
    Ok(b[0])
}

fn read_u16(r: &mut impl Read) -> io::Result<u16> {
    let mut b = [0u8; 2];
    r.read_exact(&mut b)?;
    Ok(u16::from_le_bytes(b))
}

fn read_u32(r: &mut impl Read) -> io::Result<u32> {
    let mut b = [0u8; 4];
    r.read_exact(&mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// A CTranslate2 string: u16 length (terminating NUL included), then the bytes.
fn read_string(r: &mut impl Read) -> io::Result<String> {
    let len = read_u16(r)?;
    let mut b = vec![0u8; usize::from(len)];
    r.read_exact(&mut b)?;
    if b.last() == Some(&0) {
        b.pop();
    }
    String::from_utf8(b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

// ---------------------------------------------------------------------------------------------
// The ggml layout

/// Rows `rows` (first axis) of a CTranslate2 variable.
#[derive(Debug, Clone)]
struct Slice {
    variable: String,
    rows: Range<usize>,
}

/// Storage type of a ggml tensor (ggml's `ggml_type` numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ftype {
    F32 = 0,
    F16 = 1,
    Q5_1 = 7,
    Q8_0 = 8,
}

impl Ftype {
    fn is_quantized(self) -> bool {
        matches!(self, Ftype::Q5_1 | Ftype::Q8_0)
    }
}

/// One tensor of the output: its ggml name, the data it comes from and the shape it is given.
#[derive(Debug, Clone)]
struct OutTensor {
    name: String,
    source: Slice,
    /// Shape in row-major order (written reversed, as ggml counts axes from the fastest).
    shape: Vec<usize>,
    /// The key bias of a fused projection, which must be zero since ggml has no slot for it.
    zero_check: Option<Slice>,
    /// How it is stored.
    ftype: Ftype,
}

/// whisper.cpp reads these as f32 whatever their rank.
const F32_TENSORS: [&str; 4] = [
    "encoder.conv1.bias",
    "encoder.conv2.bias",
    "encoder.positional_embedding",
    "decoder.positional_embedding",
];

/// How whisper.cpp reads the tensor `name` of rank `rank`: vectors and the listed tensors as
/// f32, the convolutions (rank 3) as f16, every other matrix in the file's weight type.
fn storage(name: &str, rank: usize, weights: WeightType) -> Ftype {
    if rank < 2 || F32_TENSORS.contains(&name) {
        Ftype::F32
    } else if rank == 2 {
        weights.tensor_type()
    } else {
        Ftype::F16
    }
}

/// Equal parts of a split variable, with the shape of each.
type Pieces = Vec<(Slice, Vec<usize>)>;

struct Planner<'a> {
    model: &'a Ct2Model,
    weights: WeightType,
    out: Vec<OutTensor>,
}

impl Planner<'_> {
    fn whole(&mut self, dst: &str, src: &str) -> Result<(), ConvertError> {
        let (key, var) = self.model.resolve(src)?;
        let shape = var.dims.clone();
        let slice = Slice {
            variable: key.to_string(),
            rows: 0..var.rows(),
        };
        self.push(dst, slice, shape, None);
        Ok(())
    }

    fn push(&mut self, dst: &str, source: Slice, shape: Vec<usize>, zero_check: Option<Slice>) {
        self.out.push(OutTensor {
            name: dst.to_string(),
            ftype: storage(dst, shape.len(), self.weights),
            source,
            shape,
            zero_check,
        });
    }

    fn linear(&mut self, dst: &str, src: &str, bias: bool) -> Result<(), ConvertError> {
        self.whole(&format!("{dst}.weight"), &format!("{src}/weight"))?;
        if bias {
            self.whole(&format!("{dst}.bias"), &format!("{src}/bias"))?;
        }
        Ok(())
    }

    fn layer_norm(&mut self, dst: &str, src: &str) -> Result<(), ConvertError> {
        self.whole(&format!("{dst}.weight"), &format!("{src}/gamma"))?;
        self.whole(&format!("{dst}.bias"), &format!("{src}/beta"))
    }

    /// Splits a fused projection along its first axis into `parts` equal pieces.
    fn split(&self, src: &str, parts: usize) -> Result<(Pieces, Pieces), ConvertError> {
        let piece = |name: String| -> Result<Pieces, ConvertError> {
            let (key, var) = self.model.resolve(&name)?;
            let rows = var.rows();
            if var.dims.is_empty() || rows % parts != 0 {
                return Err(self.model.format_error(format!(
                    "variable `{name}` of shape {:?} cannot be split in {parts}",
                    var.dims
                )));
            }
            let step = rows / parts;
            let mut shape = var.dims.clone();
            shape[0] = step;
            Ok((0..parts)
                .map(|i| {
                    (
                        Slice {
                            variable: key.to_string(),
                            rows: i * step..(i + 1) * step,
                        },
                        shape.clone(),
                    )
                })
                .collect())
        };
        Ok((
            piece(format!("{src}/weight"))?,
            piece(format!("{src}/bias"))?,
        ))
    }

    /// Fused [q; k; v] self-attention projection.
    fn qkv(&mut self, dst: &str, src: &str) -> Result<(), ConvertError> {
        let (w, b) = self.split(src, 3)?;
        let key_bias = b[1].0.clone();
        let [(wq, sq), (wk, sk), (wv, sv)] =
            <[_; 3]>::try_from(w).map_err(|_| self.model.format_error(src.into()))?;
        let [(bq, tq), _, (bv, tv)] =
            <[_; 3]>::try_from(b).map_err(|_| self.model.format_error(src.into()))?;
        self.push(&format!("{dst}.query.weight"), wq, sq, Some(key_bias));
        self.push(&format!("{dst}.query.bias"), bq, tq, None);
        self.push(&format!("{dst}.key.weight"), wk, sk, None);
        self.push(&format!("{dst}.value.weight"), wv, sv, None);
        self.push(&format!("{dst}.value.bias"), bv, tv, None);
        Ok(())
    }

    /// Fused [k; v] cross-attention projection.
    fn kv(&mut self, dst: &str, src: &str) -> Result<(), ConvertError> {
        let (w, b) = self.split(src, 2)?;
        let key_bias = b[0].0.clone();
        let [(wk, sk), (wv, sv)] =
            <[_; 2]>::try_from(w).map_err(|_| self.model.format_error(src.into()))?;
        let [_, (bv, tv)] =
            <[_; 2]>::try_from(b).map_err(|_| self.model.format_error(src.into()))?;
        self.push(&format!("{dst}.key.weight"), wk, sk, Some(key_bias));
        self.push(&format!("{dst}.value.weight"), wv, sv, None);
        self.push(&format!("{dst}.value.bias"), bv, tv, None);
        Ok(())
    }
}

/// The output tensors in whisper.cpp's order, with where each one's data comes from.
fn tensor_plan(
    model: &Ct2Model,
    hp: &Hparams,
    weights: WeightType,
) -> Result<Vec<OutTensor>, ConvertError> {
    let mut p = Planner {
        model,
        weights,
        out: Vec::new(),
    };
    p.whole(
        "encoder.positional_embedding",
        "encoder/position_encodings/encodings",
    )?;
    for conv in ["conv1", "conv2"] {
        p.whole(
            &format!("encoder.{conv}.weight"),
            &format!("encoder/{conv}/weight"),
        )?;
        // whisper.cpp expects the bias as a column: (n, 1).
        let src = format!("encoder/{conv}/bias");
        let (key, var) = model.resolve(&src)?;
        let n = var.len();
        p.push(
            &format!("encoder.{conv}.bias"),
            Slice {
                variable: key.to_string(),
                rows: 0..var.rows(),
            },
            vec![n, 1],
            None,
        );
    }
    for i in 0..hp.n_audio_layer {
        let (s, t) = (format!("encoder/layer_{i}"), format!("encoder.blocks.{i}"));
        p.qkv(
            &format!("{t}.attn"),
            &format!("{s}/self_attention/linear_0"),
        )?;
        p.linear(
            &format!("{t}.attn.out"),
            &format!("{s}/self_attention/linear_1"),
            true,
        )?;
        p.layer_norm(
            &format!("{t}.attn_ln"),
            &format!("{s}/self_attention/layer_norm"),
        )?;
        p.linear(&format!("{t}.mlp.0"), &format!("{s}/ffn/linear_0"), true)?;
        p.linear(&format!("{t}.mlp.2"), &format!("{s}/ffn/linear_1"), true)?;
        p.layer_norm(&format!("{t}.mlp_ln"), &format!("{s}/ffn/layer_norm"))?;
    }
    p.layer_norm("encoder.ln_post", "encoder/layer_norm")?;
    p.whole(
        "decoder.positional_embedding",
        "decoder/position_encodings/encodings",
    )?;
    p.whole(
        "decoder.token_embedding.weight",
        "decoder/embeddings/weight",
    )?;
    for i in 0..hp.n_text_layer {
        let (s, t) = (format!("decoder/layer_{i}"), format!("decoder.blocks.{i}"));
        p.qkv(
            &format!("{t}.attn"),
            &format!("{s}/self_attention/linear_0"),
        )?;
        p.linear(
            &format!("{t}.attn.out"),
            &format!("{s}/self_attention/linear_1"),
            true,
        )?;
        p.layer_norm(
            &format!("{t}.attn_ln"),
            &format!("{s}/self_attention/layer_norm"),
        )?;
        p.linear(
            &format!("{t}.cross_attn.query"),
            &format!("{s}/attention/linear_0"),
            true,
        )?;
        p.kv(
            &format!("{t}.cross_attn"),
            &format!("{s}/attention/linear_1"),
        )?;
        p.linear(
            &format!("{t}.cross_attn.out"),
            &format!("{s}/attention/linear_2"),
            true,
        )?;
        p.layer_norm(
            &format!("{t}.cross_attn_ln"),
            &format!("{s}/attention/layer_norm"),
        )?;
        p.linear(&format!("{t}.mlp.0"), &format!("{s}/ffn/linear_0"), true)?;
        p.linear(&format!("{t}.mlp.2"), &format!("{s}/ffn/linear_1"), true)?;
        p.layer_norm(&format!("{t}.mlp_ln"), &format!("{s}/ffn/layer_norm"))?;
    }
    p.layer_norm("decoder.ln", "decoder/layer_norm")?;
    Ok(p.out)
}

/// Write failures carry no path until [`WriteError::at`] gives them the output's.
enum WriteError {
    Io(io::Error),
    Convert(ConvertError),
}

impl WriteError {
    fn at(self, path: &Path) -> ConvertError {
        match self {
            WriteError::Io(e) => io_at(path)(e),
            WriteError::Convert(e) => e,
        }
    }
}

impl From<io::Error> for WriteError {
    fn from(e: io::Error) -> Self {
        WriteError::Io(e)
    }
}

impl From<ConvertError> for WriteError {
    fn from(e: ConvertError) -> Self {
        WriteError::Convert(e)
    }
}

/// Counts bytes going through a writer.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

const GGML_MAGIC: i32 = 0x6767_6d6c;
/// Elements converted per read, to bound memory while streaming a tensor.
const CHUNK_ELEMENTS: usize = 1 << 16;

fn write_i32(w: &mut impl Write, v: i32) -> io::Result<()> {
    w.write_all(&v.to_le_bytes())
}

fn write_ggml(
    model: &mut Ct2Model,
    hp: &Hparams,
    filters: &[f32],
    tokens: &[Vec<u8>],
    plan: &[OutTensor],
    out: &mut impl Write,
) -> Result<u64, WriteError> {
    let mut w = Counting {
        inner: out,
        bytes: 0,
    };
    write_i32(&mut w, GGML_MAGIC)?;
    for v in hp.as_array() {
        write_i32(&mut w, v)?;
    }
    write_i32(&mut w, hp.n_mels)?;
    write_i32(&mut w, N_FREQS as i32)?;
    for f in filters {
        w.write_all(&f.to_le_bytes())?;
    }
    write_i32(&mut w, len_i32(tokens.len())?)?;
    for t in tokens {
        write_i32(&mut w, len_i32(t.len())?)?;
        w.write_all(t)?;
    }
    let mut raw_values = Vec::with_capacity(CHUNK_ELEMENTS);
    let mut bytes = Vec::with_capacity(CHUNK_ELEMENTS * 4);
    for tensor in plan {
        let ftype = tensor.ftype;
        let name = tensor.name.as_bytes();
        write_i32(&mut w, len_i32(tensor.shape.len())?)?;
        write_i32(&mut w, len_i32(name.len())?)?;
        write_i32(&mut w, ftype as i32)?;
        for &d in tensor.shape.iter().rev() {
            write_i32(&mut w, len_i32(d)?)?;
        }
        w.write_all(name)?;

        let var = model.var(&tensor.source.variable)?.clone();
        let row = var.row_len();
        let scale = dequantization_scale(model, &tensor.source.variable, &var)?;
        let elements = tensor.source.rows.start * row..tensor.source.rows.end * row;
        let mut at = elements.start;
        while at < elements.end {
            let end = (at + CHUNK_ELEMENTS).min(elements.end);
            let raw = model.read_raw(&var, at..end)?;
            // Same type in and out: the bytes are the values (numpy's f16 -> f32 -> f16 round
            // trip is the identity, NaN payloads included).
            let same = matches!(
                (var.dtype, ftype),
                (DType::F16, Ftype::F16) | (DType::F32, Ftype::F32)
            );
            if same && scale.is_none() {
                w.write_all(&raw)?;
                at = end;
                continue;
            }
            var.dtype.decode(&raw, &mut raw_values);
            if let Some(scale) = &scale {
                for (k, v) in raw_values.iter_mut().enumerate() {
                    let r = (at + k) / row.max(1);
                    // CTranslate2 quantizes as round(w * scale); one scale per output row, or
                    // one for the whole matrix.
                    *v /= scale.get(r).or(scale.first()).copied().unwrap_or(1.0);
                }
            }
            bytes.clear();
            match ftype {
                Ftype::F32 => {
                    for v in &raw_values {
                        bytes.extend_from_slice(&v.to_le_bytes());
                    }
                }
                Ftype::F16 => {
                    for v in &raw_values {
                        bytes.extend_from_slice(&half::f16::from_f32(*v).to_le_bytes());
                    }
                }
                // Quantized from the values whisper.cpp's quantizer would read: the f16 ones.
                // Chunks start on a row and hold whole blocks (checked before writing).
                Ftype::Q8_0 | Ftype::Q5_1 => {
                    for v in raw_values.iter_mut() {
                        *v = half::f16::from_f32(*v).to_f32();
                    }
                    for block in raw_values.chunks_exact(QUANT_BLOCK) {
                        let block: &[f32; QUANT_BLOCK] =
                            block.try_into().expect("chunks_exact gives whole blocks");
                        if ftype == Ftype::Q8_0 {
                            quantize_q8_0(block, &mut bytes);
                        } else {
                            quantize_q5_1(block, &mut bytes);
                        }
                    }
                }
            }
            w.write_all(&bytes)?;
            at = end;
        }
    }
    w.flush()?;
    Ok(w.bytes)
}

/// Appends one `q8_0` block: the scale `d = max|x| / 127` as f16, then each value as the nearest
/// integer to `x / d` (halves away from zero), as ggml's reference quantizer does.
fn quantize_q8_0(block: &[f32; QUANT_BLOCK], out: &mut Vec<u8>) {
    let amax = block.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
    // The quotient lies in [-127, 127]: the cast cannot saturate.
    out.extend(block.iter().map(|v| (v * id).round() as i8 as u8));
}

/// Appends one `q5_1` block: the step `d = (max - min) / 31` and `min` as f16, the 32 high bits
/// of the five-bit steps as a little-endian u32 (value `j` at bit `j`), then the low four bits,
/// value `j` and value `j + 16` sharing byte `j` (low and high nibble), as ggml's reference
/// quantizer lays them out.
fn quantize_q5_1(block: &[f32; QUANT_BLOCK], out: &mut Vec<u8>) {
    let (min, max) = block.iter().fold((f32::MAX, -f32::MAX), |(lo, hi), &v| {
        (if v < lo { v } else { lo }, if v > hi { v } else { hi })
    });
    let d = (max - min) / 31.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    // Rounded by adding a half and truncating, as ggml does; the step lies in [0, 31.5].
    let step = |v: f32| ((v - min) * id + 0.5) as u8;
    let mid = QUANT_BLOCK / 2;
    let mut high = 0u32;
    let mut low = [0u8; QUANT_BLOCK / 2];
    for j in 0..mid {
        let (a, b) = (step(block[j]), step(block[j + mid]));
        low[j] = (a & 0x0F) | ((b & 0x0F) << 4);
        high |= u32::from((a & 0x10) >> 4) << j;
        high |= u32::from((b & 0x10) >> 4) << (j + mid);
    }
    out.extend_from_slice(&half::f16::from_f32(d).to_le_bytes());
    out.extend_from_slice(&half::f16::from_f32(min).to_le_bytes());
    out.extend_from_slice(&high.to_le_bytes());
    out.extend_from_slice(&low);
}

/// For integer weights, the per-row (or single) scale CTranslate2 stores beside them.
fn dequantization_scale(
    model: &mut Ct2Model,
    name: &str,
    var: &Variable,
) -> Result<Option<Vec<f32>>, ConvertError> {
    if var.dtype.is_float() {
        return Ok(None);
    }
    let scale_name = format!("{name}_scale");
    if model.resolve(&scale_name).is_err() {
        return Err(model.format_error(format!(
            "variable `{name}` is {:?} without a `{scale_name}`; integer weights need their scale",
            var.dtype
        )));
    }
    let scale = model.read_f32(&scale_name)?;
    if !(scale.len() == 1 || scale.len() == var.rows()) || scale.contains(&0.0) {
        return Err(model.format_error(format!(
            "`{scale_name}` has {} values for {} rows",
            scale.len(),
            var.rows()
        )));
    }
    Ok(Some(scale))
}

fn len_i32(n: usize) -> Result<i32, WriteError> {
    i32::try_from(n).map_err(|_| WriteError::Io(io::Error::other(format!("{n} exceeds i32"))))
}

// ---------------------------------------------------------------------------------------------
// Vocabulary

/// GPT-2's table from bytes to the printable characters its BPE vocabulary is written in.
fn bytes_to_unicode() -> [char; 256] {
    let printable = |b: u32| {
        (0x21..=0x7E).contains(&b) || (0xA1..=0xAC).contains(&b) || (0xAE..=0xFF).contains(&b)
    };
    let mut table = ['\0'; 256];
    let mut next = 256u32;
    for b in 0..256u32 {
        let c = if printable(b) {
            b
        } else {
            let c = next;
            next += 1;
            c
        };
        // Every value is below 0x200, so always a valid char.
        table[b as usize] = char::from_u32(c).unwrap_or('\u{FFFD}');
    }
    table
}

/// The regular BPE tokens (everything before `<|endoftext|>`), as raw bytes.
fn read_vocabulary(path: &Path) -> Result<Vec<Vec<u8>>, ConvertError> {
    let bad = |reason: String| ConvertError::Vocabulary {
        path: path.to_path_buf(),
        reason,
    };
    let text = std::fs::read(path).map_err(io_at(path))?;
    let text = String::from_utf8(text).map_err(|e| bad(format!("not UTF-8: {e}")))?;
    // Read like a text file (universal newlines): byte-level BPE tokens never contain a raw CR.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = text.split('\n').collect();
    let eot = lines
        .iter()
        .position(|l| *l == "<|endoftext|>")
        .ok_or_else(|| bad("no <|endoftext|> token".into()))?;
    let decoder: HashMap<char, u8> = bytes_to_unicode()
        .iter()
        .enumerate()
        .map(|(b, c)| (*c, b as u8))
        .collect();
    lines[..eot]
        .iter()
        .enumerate()
        .map(|(i, token)| {
            token
                .chars()
                .map(|c| decoder.get(&c).copied())
                .collect::<Option<Vec<u8>>>()
                .ok_or_else(|| bad(format!("token {i} ({token:?}) is not byte-level BPE")))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Mel filters

const SAMPLE_RATE: f64 = 16_000.0;
const N_FFT: usize = 400;
const N_FREQS: usize = 1 + N_FFT / 2;

/// `numpy.linspace(start, stop, num)`, computed the same way so results match to the bit.
fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut v: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    if let Some(last) = v.last_mut() {
        *last = stop;
    }
    v
}

const F_SP: f64 = 200.0 / 3.0;
const MIN_LOG_HZ: f64 = 1000.0;

fn logstep() -> f64 {
    6.4f64.ln() / 27.0
}

/// Hz to mel on the Slaney scale (linear below 1 kHz, logarithmic above).
fn hz_to_mel(f: f64) -> f64 {
    let min_log_mel = MIN_LOG_HZ / F_SP;
    if f >= MIN_LOG_HZ {
        min_log_mel + (f.max(1e-10) / MIN_LOG_HZ).ln() / logstep()
    } else {
        f / F_SP
    }
}

fn mel_to_hz(m: f64) -> f64 {
    let min_log_mel = MIN_LOG_HZ / F_SP;
    if m >= min_log_mel {
        MIN_LOG_HZ * (logstep() * (m - min_log_mel)).exp()
    } else {
        F_SP * m
    }
}

/// Whisper's mel filterbank (librosa's `filters.mel(sr=16000, n_fft=400, n_mels)` with the
/// Slaney scale and area normalisation), row-major `n_mels x 201`.
pub fn mel_filters(n_mels: usize) -> Vec<f32> {
    let fft_freqs = linspace(0.0, SAMPLE_RATE / 2.0, N_FREQS);
    let mel_f: Vec<f64> = linspace(hz_to_mel(0.0), hz_to_mel(SAMPLE_RATE / 2.0), n_mels + 2)
        .into_iter()
        .map(mel_to_hz)
        .collect();
    let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();
    let mut weights = Vec::with_capacity(n_mels * N_FREQS);
    for i in 0..n_mels {
        let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
        for &freq in &fft_freqs {
            let lower = -(mel_f[i] - freq) / fdiff[i];
            let upper = (mel_f[i + 2] - freq) / fdiff[i + 1];
            let w = max_like_numpy(0.0, lower.min(upper));
            weights.push((w * enorm) as f32);
        }
    }
    weights
}

/// `numpy.maximum(a, b)` for non-NaN inputs as numpy's vectorised loop computes it: like x86
/// `maxpd`, ties go to the second operand, so `maximum(0.0, -0.0)` is `-0.0`. The first filter's
/// DC weight is exactly that case, and the published ggml files carry the `-0.0`.
fn max_like_numpy(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn mel_filters_match_librosa_slaney() {
        // Values from librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) (whisper's
        // mel_filters.npz), spot-checked.
        let f = mel_filters(80);
        assert_eq!(f.len(), 80 * 201);
        let at = |m: usize, k: usize| f[m * N_FREQS + k];
        // The first filter peaks at the second FFT bin (40 Hz) and is zero at DC.
        assert_eq!(at(0, 0), 0.0);
        assert!(at(0, 0).is_sign_negative(), "numpy leaves -0.0 there");
        assert!((at(0, 1) - 0.024_862_594).abs() < 1e-8, "{}", at(0, 1));
        // Every filter has a peak, the area normalisation makes high filters lower.
        for m in 0..80 {
            let row = &f[m * N_FREQS..(m + 1) * N_FREQS];
            assert!(row.iter().any(|v| *v > 0.0), "filter {m} is empty");
            assert!(row.iter().all(|v| *v >= 0.0));
        }
        let peak = |m: usize| {
            f[m * N_FREQS..(m + 1) * N_FREQS]
                .iter()
                .cloned()
                .fold(0f32, f32::max)
        };
        assert!(peak(79) < peak(10));
        assert_eq!(mel_filters(128).len(), 128 * 201);
    }

    #[test]
    fn slaney_scale_round_trips() {
        for hz in [0.0, 100.0, 999.0, 1000.0, 2500.0, 8000.0] {
            assert!((mel_to_hz(hz_to_mel(hz)) - hz).abs() < 1e-9, "{hz}");
        }
        assert_eq!(hz_to_mel(1000.0), MIN_LOG_HZ / F_SP);
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert_eq!(linspace(0.0, 8000.0, 201)[1], 40.0);
        assert_eq!(*linspace(0.0, 1.1, 7).last().unwrap(), 1.1);
    }

    #[test]
    fn gpt2_byte_table_is_a_bijection() {
        let table = bytes_to_unicode();
        let distinct: BTreeSet<char> = table.iter().copied().collect();
        assert_eq!(distinct.len(), 256);
        assert_eq!(table[b'A' as usize], 'A');
        assert_eq!(table[b' ' as usize], 'Ġ');
        assert_eq!(table[b'\n' as usize], 'Ċ');
        // The soft hyphen is the 68th unprintable byte: 256 + 67.
        assert_eq!(table[0xAD], 'Ń');
    }

    /// A CTranslate2 Whisper model in miniature, written the way CTranslate2 writes them.
    struct Ct2Writer {
        vars: Vec<(String, Vec<u32>, u8, Vec<u8>)>,
        aliases: Vec<(String, String)>,
    }

    fn f16_bytes(values: &[f32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect()
    }

    fn f32_bytes(values: &[f32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn bf16_bytes(values: &[f32]) -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect()
    }

    impl Ct2Writer {
        fn add(&mut self, name: &str, dims: &[u32], dtype: u8, data: Vec<u8>) {
            self.vars
                .push((name.to_string(), dims.to_vec(), dtype, data));
        }

        /// A float tensor whose values encode their position, so tests can tell pieces apart.
        fn tensor(&mut self, name: &str, dims: &[u32], dtype: u8, seed: f32) {
            let n: u32 = dims.iter().product();
            // Quarter steps below 32 are exact in f16, bf16 and f32.
            let values: Vec<f32> = (0..n).map(|i| seed + (i % 61) as f32 / 4.0).collect();
            let data = match dtype {
                0 => f32_bytes(&values),
                4 => f16_bytes(&values),
                5 => bf16_bytes(&values),
                _ => unreachable!(),
            };
            self.add(name, dims, dtype, data);
        }

        fn bytes(&self, version: u32) -> Vec<u8> {
            let mut out = Vec::new();
            let string = |out: &mut Vec<u8>, s: &str| {
                out.extend_from_slice(&((s.len() + 1) as u16).to_le_bytes());
                out.extend_from_slice(s.as_bytes());
                out.push(0);
            };
            out.extend_from_slice(&version.to_le_bytes());
            string(&mut out, "WhisperSpec");
            out.extend_from_slice(&3u32.to_le_bytes());
            out.extend_from_slice(&(self.vars.len() as u32).to_le_bytes());
            for (name, dims, dtype, data) in &self.vars {
                string(&mut out, name);
                out.push(dims.len() as u8);
                for d in dims {
                    out.extend_from_slice(&d.to_le_bytes());
                }
                out.push(*dtype);
                out.extend_from_slice(&(data.len() as u32).to_le_bytes());
                out.extend_from_slice(data);
            }
            out.extend_from_slice(&(self.aliases.len() as u32).to_le_bytes());
            for (a, b) in &self.aliases {
                string(&mut out, a);
                string(&mut out, b);
            }
            out
        }
    }

    const VOCAB: u32 = 6;

    /// One encoder and one decoder layer, width 8, 4 mels. `weights` is the dtype of the
    /// matrices; the first decoder self-attention is stored int8 with a per-row scale.
    fn tiny_model(weights: u8, key_bias: f32) -> Ct2Writer {
        model_of_width(8, weights, key_bias)
    }

    /// [`tiny_model`] with layers `width` wide.
    fn model_of_width(width: u32, weights: u8, key_bias: f32) -> Ct2Writer {
        let mut m = Ct2Writer {
            vars: Vec::new(),
            aliases: vec![(
                "decoder/projection/weight".into(),
                "decoder/embeddings/weight".into(),
            )],
        };
        m.add("decoder/activation", &[], 1, vec![3]);
        m.add("encoder/num_heads", &[], 2, 2i16.to_le_bytes().to_vec());
        m.add("decoder/num_heads", &[], 2, 2i16.to_le_bytes().to_vec());
        m.tensor("decoder/embeddings/weight", &[VOCAB, width], weights, 0.5);
        m.tensor("encoder/conv1/weight", &[width, 4, 3], weights, 1.0);
        m.tensor("encoder/conv1/bias", &[width], 0, 1.5);
        m.tensor("encoder/conv2/weight", &[width, width, 3], weights, 2.0);
        m.tensor("encoder/conv2/bias", &[width], 0, 2.5);
        m.tensor("encoder/position_encodings/encodings", &[10, width], 0, 3.0);
        m.tensor("decoder/position_encodings/encodings", &[7, width], 0, 3.5);
        let ln = |m: &mut Ct2Writer, p: &str| {
            m.tensor(&format!("{p}/gamma"), &[width], 0, 1.0);
            m.tensor(&format!("{p}/beta"), &[width], 0, 0.0);
        };
        let lin = |m: &mut Ct2Writer, p: &str, out: u32, seed: f32| {
            m.tensor(&format!("{p}/weight"), &[out, width], weights, seed);
            m.tensor(&format!("{p}/bias"), &[out], 0, seed);
        };
        let fused_bias = |parts: u32, key: usize| -> Vec<u8> {
            let mut b: Vec<f32> = (0..parts * width).map(|i| 0.25 + i as f32).collect();
            for v in &mut b[key * width as usize..(key + 1) * width as usize] {
                *v = key_bias;
            }
            f32_bytes(&b)
        };
        let e = "encoder/layer_0";
        m.tensor(
            &format!("{e}/self_attention/linear_0/weight"),
            &[3 * width, width],
            weights,
            4.0,
        );
        m.add(
            &format!("{e}/self_attention/linear_0/bias"),
            &[3 * width],
            0,
            fused_bias(3, 1),
        );
        lin(&mut m, &format!("{e}/self_attention/linear_1"), width, 5.0);
        ln(&mut m, &format!("{e}/self_attention/layer_norm"));
        lin(&mut m, &format!("{e}/ffn/linear_0"), 4 * width, 6.0);
        m.tensor(
            &format!("{e}/ffn/linear_1/weight"),
            &[width, 4 * width],
            weights,
            7.0,
        );
        m.tensor(&format!("{e}/ffn/linear_1/bias"), &[width], 0, 7.0);
        ln(&mut m, &format!("{e}/ffn/layer_norm"));
        ln(&mut m, "encoder/layer_norm");

        let d = "decoder/layer_0";
        // int8 weights with a per-row scale: value = q / scale.
        let q: Vec<u8> = (0..3 * width * width)
            .map(|i| ((i % 200) as i32 - 100) as i8 as u8)
            .collect();
        let scale: Vec<f32> = (0..3 * width).map(|r| 2.0 + r as f32).collect();
        m.add(
            &format!("{d}/self_attention/linear_0/weight"),
            &[3 * width, width],
            1,
            q,
        );
        m.add(
            &format!("{d}/self_attention/linear_0/weight_scale"),
            &[3 * width],
            0,
            f32_bytes(&scale),
        );
        m.add(
            &format!("{d}/self_attention/linear_0/bias"),
            &[3 * width],
            0,
            fused_bias(3, 1),
        );
        lin(&mut m, &format!("{d}/self_attention/linear_1"), width, 8.0);
        ln(&mut m, &format!("{d}/self_attention/layer_norm"));
        lin(&mut m, &format!("{d}/attention/linear_0"), width, 9.0);
        m.tensor(
            &format!("{d}/attention/linear_1/weight"),
            &[2 * width, width],
            weights,
            10.0,
        );
        m.add(
            &format!("{d}/attention/linear_1/bias"),
            &[2 * width],
            0,
            fused_bias(2, 0),
        );
        lin(&mut m, &format!("{d}/attention/linear_2"), width, 11.0);
        ln(&mut m, &format!("{d}/attention/layer_norm"));
        lin(&mut m, &format!("{d}/ffn/linear_0"), 4 * width, 12.0);
        m.tensor(
            &format!("{d}/ffn/linear_1/weight"),
            &[width, 4 * width],
            weights,
            13.0,
        );
        m.tensor(&format!("{d}/ffn/linear_1/bias"), &[width], 0, 13.0);
        ln(&mut m, &format!("{d}/ffn/layer_norm"));
        ln(&mut m, "decoder/layer_norm");
        m
    }

    const VOCABULARY: &str = "!\nĠthe\nhello\nĊ\n<|endoftext|>\n<|startoftranscript|>";

    fn write_model(dir: &Path, model: &Ct2Writer, version: u32) {
        std::fs::write(dir.join("model.bin"), model.bytes(version)).unwrap();
        std::fs::write(dir.join("vocabulary.txt"), VOCABULARY).unwrap();
    }

    /// A ggml file read back: header, filters, tokens, tensors by name.
    struct Ggml {
        hparams: Vec<i32>,
        filters: (i32, i32, Vec<f32>),
        tokens: Vec<Vec<u8>>,
        tensors: Vec<(String, Vec<i32>, i32, Vec<f32>)>,
    }

    fn read_ggml(bytes: &[u8]) -> Ggml {
        let mut at = 0usize;
        let read_i32 = |at: &mut usize| {
            let v = i32::from_le_bytes(bytes[*at..*at + 4].try_into().unwrap());
            *at += 4;
            v
        };
        assert_eq!(read_i32(&mut at), GGML_MAGIC);
        let hparams: Vec<i32> = (0..11).map(|_| read_i32(&mut at)).collect();
        let (rows, cols) = (read_i32(&mut at), read_i32(&mut at));
        let mut filters = Vec::new();
        for _ in 0..rows * cols {
            filters.push(f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
            at += 4;
        }
        let n_tokens = read_i32(&mut at);
        let mut tokens = Vec::new();
        for _ in 0..n_tokens {
            let len = read_i32(&mut at) as usize;
            tokens.push(bytes[at..at + len].to_vec());
            at += len;
        }
        let mut tensors = Vec::new();
        while at < bytes.len() {
            let n_dims = read_i32(&mut at);
            let name_len = read_i32(&mut at) as usize;
            let ftype = read_i32(&mut at);
            let dims: Vec<i32> = (0..n_dims).map(|_| read_i32(&mut at)).collect();
            let name = String::from_utf8(bytes[at..at + name_len].to_vec()).unwrap();
            at += name_len;
            let n: i32 = dims.iter().product();
            let mut values = Vec::new();
            if let Some(block) = match ftype {
                8 => Some(34),
                7 => Some(24),
                _ => None,
            } {
                // Quantized: the raw blocks, one byte a value, for the caller to compare.
                let len = n as usize / QUANT_BLOCK * block;
                values.extend(bytes[at..at + len].iter().map(|&b| f32::from(b)));
                at += len;
                tensors.push((name, dims, ftype, values));
                continue;
            }
            for _ in 0..n {
                if ftype == 0 {
                    values.push(f32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()));
                    at += 4;
                } else {
                    values.push(half::f16::from_le_bytes([bytes[at], bytes[at + 1]]).to_f32());
                    at += 2;
                }
            }
            tensors.push((name, dims, ftype, values));
        }
        Ggml {
            hparams,
            filters: (rows, cols, filters),
            tokens,
            tensors,
        }
    }

    #[test]
    fn converts_a_synthetic_model_like_the_reference() {
        let tmp = tempfile::tempdir().unwrap();
        write_model(tmp.path(), &tiny_model(4, 0.0), 6);
        let out = tmp.path().join("ggml-tiny.bin");
        let summary = convert_dir(tmp.path(), &out, WeightType::F16).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(summary.bytes, bytes.len() as u64);
        let g = read_ggml(&bytes);
        assert_eq!(g.hparams, vec![6, 10, 8, 2, 1, 7, 8, 2, 1, 4, 1]);
        assert_eq!(g.filters.0, 4);
        assert_eq!(g.filters.1, 201);
        assert_eq!(g.filters.2, mel_filters(4));
        assert_eq!(
            g.tokens,
            vec![
                b"!".to_vec(),
                b" the".to_vec(),
                b"hello".to_vec(),
                b"\n".to_vec()
            ]
        );
        assert_eq!(summary.tokens, 4);

        let names: Vec<&str> = g.tensors.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(names.len(), summary.tensors);
        let expected_start = [
            "encoder.positional_embedding",
            "encoder.conv1.weight",
            "encoder.conv1.bias",
            "encoder.conv2.weight",
            "encoder.conv2.bias",
            "encoder.blocks.0.attn.query.weight",
            "encoder.blocks.0.attn.query.bias",
            "encoder.blocks.0.attn.key.weight",
            "encoder.blocks.0.attn.value.weight",
            "encoder.blocks.0.attn.value.bias",
            "encoder.blocks.0.attn.out.weight",
        ];
        assert_eq!(&names[..expected_start.len()], expected_start);
        let expected_end = [
            "decoder.blocks.0.cross_attn.query.weight",
            "decoder.blocks.0.cross_attn.query.bias",
            "decoder.blocks.0.cross_attn.key.weight",
            "decoder.blocks.0.cross_attn.value.weight",
            "decoder.blocks.0.cross_attn.value.bias",
            "decoder.blocks.0.cross_attn.out.weight",
            "decoder.blocks.0.cross_attn.out.bias",
            "decoder.blocks.0.cross_attn_ln.weight",
            "decoder.blocks.0.cross_attn_ln.bias",
            "decoder.blocks.0.mlp.0.weight",
            "decoder.blocks.0.mlp.0.bias",
            "decoder.blocks.0.mlp.2.weight",
            "decoder.blocks.0.mlp.2.bias",
            "decoder.blocks.0.mlp_ln.weight",
            "decoder.blocks.0.mlp_ln.bias",
            "decoder.ln.weight",
            "decoder.ln.bias",
        ];
        assert_eq!(&names[names.len() - expected_end.len()..], expected_end);
        assert_eq!(names.len(), 5 + 15 + 2 + 2 + 24 + 2);

        let get = |name: &str| g.tensors.iter().find(|t| t.0 == name).unwrap();
        // Shapes are written fastest axis first; 2-D weights are f16, vectors and the listed
        // tensors f32, conv biases become columns.
        let conv1 = get("encoder.conv1.weight");
        assert_eq!((conv1.1.clone(), conv1.2), (vec![3, 4, 8], 1));
        let bias = get("encoder.conv1.bias");
        assert_eq!((bias.1.clone(), bias.2), (vec![1, 8], 0));
        assert_eq!(bias.3[3], 1.5 + 3.0 / 4.0);
        let pos = get("decoder.positional_embedding");
        assert_eq!((pos.1.clone(), pos.2), (vec![8, 7], 0));
        assert_eq!(get("encoder.ln_post.weight").2, 0);

        // The fused projection is split by rows: key = rows 8..16 of the source.
        let key = get("encoder.blocks.0.attn.key.weight");
        assert_eq!(key.1, vec![8, 8]);
        assert_eq!(key.3[0], 4.0 + (64 % 61) as f32 / 4.0);
        let value_bias = get("encoder.blocks.0.attn.value.bias");
        assert_eq!(value_bias.3[0], 0.25 + 16.0);
        assert_eq!(
            get("decoder.blocks.0.cross_attn.value.weight").3[0],
            10.0 + (64 % 61) as f32 / 4.0
        );

        // int8 weights are dequantized with their row's scale.
        let q = get("decoder.blocks.0.attn.value.weight");
        let (row, col) = (16usize, 3usize);
        let raw = (((row * 8 + col) % 200) as i32 - 100) as f32;
        let want = half::f16::from_f32(raw / (2.0 + row as f32)).to_f32();
        assert_eq!(q.3[(row - 16) * 8 + col], want);
    }

    #[test]
    fn float_types_give_identical_output_when_values_are_exact() {
        // The test values are exact in f16, bf16 and f32, so the ggml bytes must not depend on
        // how the CTranslate2 file stored them.
        let tmp = tempfile::tempdir().unwrap();
        let mut hashes = Vec::new();
        for (dtype, version) in [(4u8, 6u32), (0, 5), (5, 6)] {
            let dir = tmp.path().join(format!("m{dtype}"));
            std::fs::create_dir(&dir).unwrap();
            write_model(&dir, &tiny_model(dtype, 0.0), version);
            let out = dir.join("out.bin");
            convert_dir(&dir, &out, WeightType::F16).unwrap();
            hashes.push(hex::encode(Sha256::digest(std::fs::read(&out).unwrap())));
        }
        assert_eq!(hashes[0], hashes[1]);
        assert_eq!(hashes[0], hashes[2]);
    }

    #[test]
    fn refuses_what_it_cannot_convert_faithfully() {
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("out.bin");

        write_model(tmp.path(), &tiny_model(4, 0.5), 6);
        match convert_dir(tmp.path(), &out, WeightType::F16) {
            Err(ConvertError::KeyBias { variable }) => {
                assert!(variable.contains("self_attention/linear_0"), "{variable}")
            }
            other => panic!("expected a key bias error, got {other:?}"),
        }
        assert!(!out.exists());
        let leftovers = std::fs::read_dir(tmp.path()).unwrap().count();
        assert_eq!(leftovers, 2, "nothing but the inputs remains");

        let model = tiny_model(4, 0.0);
        let full = model.bytes(6);
        let path = tmp.path().join("model.bin");
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("truncated", full[..full.len() / 2].to_vec()),
            ("header only", full[..10].to_vec()),
            ("empty", Vec::new()),
            ("version 4", model.bytes(4)),
            ("not ct2", b"GGUF\x03\0\0\0 whatever".to_vec()),
        ];
        for (what, bytes) in cases {
            std::fs::write(&path, &bytes).unwrap();
            match convert_dir(tmp.path(), &out, WeightType::F16) {
                Err(ConvertError::Format { reason, .. }) => {
                    assert!(!reason.is_empty(), "{what}")
                }
                other => panic!("{what}: expected a format error, got {other:?}"),
            }
        }

        let mut missing = tiny_model(4, 0.0);
        missing
            .vars
            .retain(|v| v.0 != "decoder/layer_0/ffn/linear_1/bias");
        write_model(tmp.path(), &missing, 6);
        match convert_dir(tmp.path(), &out, WeightType::F16) {
            Err(ConvertError::Format { reason, .. }) => {
                assert!(
                    reason.contains("decoder/layer_0/ffn/linear_1/bias"),
                    "{reason}"
                )
            }
            other => panic!("expected a missing variable error, got {other:?}"),
        }

        write_model(tmp.path(), &tiny_model(4, 0.0), 6);
        std::fs::write(tmp.path().join("vocabulary.txt"), "a\nb\n").unwrap();
        assert!(matches!(
            convert_dir(tmp.path(), &out, WeightType::F16),
            Err(ConvertError::Vocabulary { .. })
        ));
        std::fs::write(tmp.path().join("vocabulary.txt"), "a\nb c\n<|endoftext|>\n").unwrap();
        match convert_dir(tmp.path(), &out, WeightType::F16) {
            Err(ConvertError::Vocabulary { reason, .. }) => {
                assert!(reason.contains("token 1"), "{reason}")
            }
            other => panic!("expected a vocabulary error, got {other:?}"),
        }
        assert!(!out.exists());
    }

    /// ggml's reference quantizer, from the whisper.cpp build that loads our files, on `values`
    /// as one row.
    fn ggml_quantize(weights: WeightType, values: &[f32]) -> Vec<u8> {
        let (ty, block) = match weights {
            WeightType::Q8_0 => (whisper_rs_sys::ggml_type_GGML_TYPE_Q8_0, 34),
            WeightType::Q5_1 => (whisper_rs_sys::ggml_type_GGML_TYPE_Q5_1, 24),
            WeightType::F16 => unreachable!("f16 is not quantized"),
        };
        assert_eq!(values.len() % QUANT_BLOCK, 0);
        let mut out = vec![0u8; values.len() / QUANT_BLOCK * block];
        // SAFETY: ggml reads one row of `values.len()` floats from `values` and writes that
        // row's blocks, `out.len()` bytes, into `out`; these types take no importance matrix.
        let written = unsafe {
            whisper_rs_sys::ggml_quantize_chunk(
                ty,
                values.as_ptr(),
                out.as_mut_ptr().cast(),
                0,
                1,
                values.len() as i64,
                std::ptr::null(),
            )
        };
        assert_eq!(written, out.len());
        out
    }

    fn ours(weights: WeightType, values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for block in values.chunks_exact(QUANT_BLOCK) {
            let block = block.try_into().unwrap();
            match weights {
                WeightType::Q8_0 => quantize_q8_0(block, &mut out),
                WeightType::Q5_1 => quantize_q5_1(block, &mut out),
                WeightType::F16 => unreachable!(),
            }
        }
        out
    }

    #[test]
    fn quantized_blocks_match_ggml_byte_for_byte() {
        let f16 = |v: f32| half::f16::from_f32(v).to_f32();
        let mut x = 0x9E37_79B9u32;
        let mut noise = || {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as f32 / u32::MAX as f32 * 2.0 - 1.0
        };
        let mut row: Vec<f32> = Vec::new();
        // Weights of a trained layer: small, centred, a few large.
        row.extend((0..256).map(|i| f16(noise() * if i % 37 == 0 { 0.9 } else { 0.05 })));
        // All zeros, one constant (a zero step), all negative, all positive.
        row.extend([0.0; 32]);
        row.extend([f16(0.3); 32]);
        row.extend((0..32).map(|_| f16(-0.01 - noise().abs())));
        row.extend((0..32).map(|_| f16(2.0 + noise())));
        // Steps landing on exact halves: 127 * k / 2 over a maximum of 127.
        row.extend((0..32).map(|k| if k == 0 { 127.0 } else { k as f32 + 0.5 }));
        // One outlier among tiny values, and the largest f16 magnitudes.
        row.extend((0..32).map(|k| if k == 7 { 30.0 } else { f16(noise() * 1e-3) }));
        row.extend((0..32).map(|k| if k % 2 == 0 { 65504.0 } else { -65504.0 }));
        for weights in [WeightType::Q8_0, WeightType::Q5_1] {
            assert_eq!(
                ours(weights, &row),
                ggml_quantize(weights, &row),
                "{weights:?}"
            );
        }
    }

    #[test]
    fn quantized_files_hold_ggml_blocks_of_the_f16_weights() {
        let tmp = tempfile::tempdir().unwrap();
        write_model(tmp.path(), &model_of_width(32, 4, 0.0), 6);
        let read = |weights: WeightType| {
            let out = tmp.path().join(format!("{weights:?}.bin"));
            let summary = convert_dir(tmp.path(), &out, weights).unwrap();
            let bytes = std::fs::read(&out).unwrap();
            assert_eq!(summary.bytes, bytes.len() as u64);
            (summary, read_ggml(&bytes))
        };
        let (f16_summary, f16) = read(WeightType::F16);
        assert_eq!(f16.hparams[10], 1);
        for (weights, ftype, tensor_type) in
            [(WeightType::Q8_0, 2007, 8), (WeightType::Q5_1, 2009, 7)]
        {
            let (summary, q) = read(weights);
            assert!(summary.bytes < f16_summary.bytes, "{weights:?}");
            assert_eq!(q.hparams[..10], f16.hparams[..10]);
            assert_eq!(q.hparams[10], ftype);
            assert_eq!((&q.filters, &q.tokens), (&f16.filters, &f16.tokens));
            assert_eq!(q.tensors.len(), f16.tensors.len());
            let mut quantized = 0;
            for (a, b) in q.tensors.iter().zip(&f16.tensors) {
                assert_eq!((&a.0, &a.1), (&b.0, &b.1));
                let matrix = a.1.len() == 2 && !F32_TENSORS.contains(&a.0.as_str());
                if matrix {
                    // Every matrix, the token embedding included, in ggml's blocks of the
                    // f16 file's values.
                    assert_eq!(a.2, tensor_type, "{}", a.0);
                    let blocks: Vec<u8> = a.3.iter().map(|&v| v as u8).collect();
                    assert_eq!(blocks, ggml_quantize(weights, &b.3), "{}", a.0);
                    quantized += 1;
                } else {
                    // Vectors, biases, positional embeddings and convolutions unchanged.
                    assert_eq!((a.2, &a.3), (b.2, &b.3), "{}", a.0);
                }
            }
            assert_eq!(quantized, 6 + 1 + 10, "{weights:?}");
        }
    }

    #[test]
    fn refuses_to_quantize_rows_that_are_not_whole_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        write_model(tmp.path(), &tiny_model(4, 0.0), 6);
        let out = tmp.path().join("out.bin");
        match convert_dir(tmp.path(), &out, WeightType::Q5_1) {
            Err(e @ ConvertError::Unquantizable { row: 8, .. }) => {
                assert!(e.to_string().contains("blocks of 32"), "{e}")
            }
            other => panic!("expected an unquantizable tensor, got {other:?}"),
        }
        assert!(!out.exists());
    }
}
