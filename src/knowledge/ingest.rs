//! Ingestion: files and uploads become documents and embedded chunks in the SQL store (the
//! source of truth), then points in the vector index (derived data, rebuilt by [`Knowledge::reindex`]).
//!
//! A content hash per document makes re-ingesting unchanged files a no-op; changed files
//! replace their chunks; files gone from an ingested directory are removed. A file that cannot
//! be read is reported by name and skipped; the rest still ingests.

use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use super::chunker::{self, ChunkerConfig};
use super::loaders::{self, Format};
use super::{text, Knowledge, KnowledgeError};
use crate::crypto::sha256_hex;
use crate::domain::{validate_name, ChunkId, DocumentId};
use crate::store::{NewChunk, NewDocument};
use crate::vectors::VectorPoint;

/// What happened to one document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum IngestOutcome {
    /// New document.
    Added {
        /// Its id.
        document_id: DocumentId,
        /// Chunks stored.
        chunks: usize,
        /// What was read differently from the file's letter, or left out (see
        /// [`loaders::LoadedDocument::notes`]).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// Changed document; its chunks were replaced.
    Updated {
        /// Its id.
        document_id: DocumentId,
        /// Chunks stored.
        chunks: usize,
        /// As for [`IngestOutcome::Added`].
        #[serde(skip_serializing_if = "Vec::is_empty")]
        notes: Vec<String>,
    },
    /// Same content as stored; nothing done.
    Unchanged {
        /// Its id.
        document_id: DocumentId,
    },
    /// Its file is gone; the document was removed.
    Removed {
        /// Its id.
        document_id: DocumentId,
    },
    /// The file could not be ingested.
    Skipped {
        /// Why.
        reason: String,
    },
}

/// One file's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FileResult {
    /// The document's source name.
    pub source: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: IngestOutcome,
}

/// Notes on a file, one per line below it.
fn noted(notes: &[String]) -> String {
    notes.iter().map(|n| format!("\n      note: {n}")).collect()
}

/// The result of ingesting paths.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct IngestReport {
    /// Collection ingested into.
    pub collection: String,
    /// Every file seen or removed, in order.
    pub files: Vec<FileResult>,
}

impl IngestReport {
    fn count(&self, f: impl Fn(&IngestOutcome) -> bool) -> usize {
        self.files.iter().filter(|r| f(&r.outcome)).count()
    }

    /// True when nothing was added, updated or removed.
    pub fn nothing_changed(&self) -> bool {
        self.count(|o| {
            matches!(
                o,
                IngestOutcome::Added { .. }
                    | IngestOutcome::Updated { .. }
                    | IngestOutcome::Removed { .. }
            )
        }) == 0
    }

    /// Files that were skipped.
    pub fn skipped(&self) -> usize {
        self.count(|o| matches!(o, IngestOutcome::Skipped { .. }))
    }
}

impl fmt::Display for IngestReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for r in &self.files {
            let what = match &r.outcome {
                IngestOutcome::Added { chunks, notes, .. } => {
                    format!("added ({chunks} chunks){}", noted(notes))
                }
                IngestOutcome::Updated { chunks, notes, .. } => {
                    format!("updated ({chunks} chunks){}", noted(notes))
                }
                IngestOutcome::Unchanged { .. } => "unchanged".to_string(),
                IngestOutcome::Removed { .. } => "removed".to_string(),
                IngestOutcome::Skipped { reason } => format!("skipped: {reason}"),
            };
            writeln!(f, "  {:<40} {what}", r.source)?;
        }
        let added = self.count(|o| matches!(o, IngestOutcome::Added { .. }));
        let updated = self.count(|o| matches!(o, IngestOutcome::Updated { .. }));
        let unchanged = self.count(|o| matches!(o, IngestOutcome::Unchanged { .. }));
        let removed = self.count(|o| matches!(o, IngestOutcome::Removed { .. }));
        write!(
            f,
            "collection `{}`: {added} added, {updated} updated, {unchanged} unchanged, {removed} removed, {} skipped",
            self.collection,
            self.skipped()
        )?;
        if self.nothing_changed() {
            write!(f, " (nothing changed)")?;
        }
        Ok(())
    }
}

/// The result of rebuilding the vector index.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct ReindexReport {
    /// Collections rebuilt, with their point counts.
    pub rebuilt: Vec<(String, u64)>,
    /// Documents re-embedded because the embedder changed.
    pub reembedded_documents: usize,
    /// Collections found consistent and left alone.
    pub up_to_date: Vec<String>,
}

impl fmt::Display for ReindexReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, points) in &self.rebuilt {
            writeln!(f, "  {name:<30} rebuilt ({points} points)")?;
        }
        for name in &self.up_to_date {
            writeln!(f, "  {name:<30} up to date")?;
        }
        write!(
            f,
            "{} collection(s) rebuilt, {} up to date, {} document(s) re-embedded",
            self.rebuilt.len(),
            self.up_to_date.len(),
            self.reembedded_documents
        )
    }
}

/// Longest time spent reading one file.
const PARSE_TIMEOUT: Duration = Duration::from_secs(60);

/// The text a chunk is embedded as: its heading gives the passage its context.
pub fn embedding_input(heading: Option<&str>, text: &str) -> String {
    match heading {
        Some(h) if !h.is_empty() => format!("{h}: {text}"),
        _ => text.to_string(),
    }
}

/// A file found under an ingested path.
struct Found {
    path: PathBuf,
    source: String,
}

/// Walks `root` (a file or a directory) in a stable order, skipping hidden entries.
fn walk(root: &Path, prefix: &str, out: &mut Vec<Found>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(root)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with('.') {
            continue;
        }
        let kind = entry.file_type()?;
        let source = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if kind.is_dir() {
            walk(&entry.path(), &source, out)?;
        } else if kind.is_file() || (kind.is_symlink() && entry.path().is_file()) {
            out.push(Found {
                path: entry.path(),
                source,
            });
        }
    }
    Ok(())
}

impl Knowledge {
    /// Ingests files and directories (recursively) into `collection`. Documents previously
    /// ingested from one of these directories whose file is gone are removed.
    pub async fn ingest_paths(
        &self,
        collection: &str,
        paths: &[PathBuf],
    ) -> Result<IngestReport, KnowledgeError> {
        check_collection(collection)?;
        let mut report = IngestReport {
            collection: collection.to_string(),
            files: Vec::new(),
        };
        let mut changed = false;
        for root in paths {
            let meta = std::fs::metadata(root).map_err(|source| KnowledgeError::Io {
                name: root.display().to_string(),
                source,
            })?;
            let mut found = Vec::new();
            let dir_prefix = if meta.is_dir() {
                let prefix = root
                    .canonicalize()
                    .ok()
                    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().to_string()))
                    .unwrap_or_default();
                walk(root, &prefix, &mut found).map_err(|source| KnowledgeError::Io {
                    name: root.display().to_string(),
                    source,
                })?;
                Some(prefix)
            } else {
                let source = root
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| root.display().to_string());
                found.push(Found {
                    path: root.clone(),
                    source,
                });
                None
            };
            let mut seen = HashSet::new();
            for file in found {
                seen.insert(file.source.clone());
                let outcome = match self.ingest_file(collection, &file).await {
                    Ok(outcome) => outcome,
                    Err(
                        e @ (KnowledgeError::Load(_)
                        | KnowledgeError::TooLarge { .. }
                        | KnowledgeError::Io { .. }),
                    ) => {
                        tracing::warn!(source = %file.source, error = %e, "skipped");
                        IngestOutcome::Skipped {
                            reason: e.to_string(),
                        }
                    }
                    Err(e) => return Err(e),
                };
                changed |= matches!(
                    outcome,
                    IngestOutcome::Added { .. } | IngestOutcome::Updated { .. }
                );
                report.files.push(FileResult {
                    source: file.source,
                    outcome,
                });
            }
            if let Some(prefix) = dir_prefix {
                let scope = if prefix.is_empty() {
                    String::new()
                } else {
                    format!("{prefix}/")
                };
                for doc in self.store.list_documents(collection).await? {
                    if doc.source.starts_with(&scope) && !seen.contains(&doc.source) {
                        self.delete_document(doc.id).await?;
                        changed = true;
                        report.files.push(FileResult {
                            source: doc.source,
                            outcome: IngestOutcome::Removed {
                                document_id: doc.id,
                            },
                        });
                    }
                }
            }
        }
        if changed {
            self.vectors.optimize(collection).await?;
        }
        Ok(report)
    }

    async fn ingest_file(
        &self,
        collection: &str,
        file: &Found,
    ) -> Result<IngestOutcome, KnowledgeError> {
        let io = |source| KnowledgeError::Io {
            name: file.source.clone(),
            source,
        };
        let format = Format::from_path(&file.path).ok_or_else(|| {
            loaders::LoadError::Unsupported(format!("{}: unsupported file type", file.source))
        })?;
        let size = tokio::fs::metadata(&file.path).await.map_err(io)?.len();
        if size > self.settings.max_file_bytes {
            return Err(KnowledgeError::TooLarge {
                name: file.source.clone(),
                bytes: size,
                limit: self.settings.max_file_bytes,
            });
        }
        let bytes = tokio::fs::read(&file.path).await.map_err(io)?;
        self.ingest_bytes(collection, &file.source, bytes, format)
            .await
    }

    /// Ingests one document's bytes under `source` (replacing an earlier version).
    #[tracing::instrument(skip(self, bytes), fields(bytes = bytes.len()))]
    pub async fn ingest_bytes(
        &self,
        collection: &str,
        source: &str,
        bytes: Vec<u8>,
        format: Format,
    ) -> Result<IngestOutcome, KnowledgeError> {
        check_collection(collection)?;
        if bytes.len() as u64 > self.settings.max_file_bytes {
            return Err(KnowledgeError::TooLarge {
                name: source.to_string(),
                bytes: bytes.len() as u64,
                limit: self.settings.max_file_bytes,
            });
        }
        let hash = sha256_hex(&bytes);
        let model = self.embedder.model_id().to_string();
        let existing = self.store.document_by_source(collection, source).await?;
        if let Some(doc) = &existing {
            if doc.content_hash == hash && doc.embedding_model == model {
                return Ok(IngestOutcome::Unchanged {
                    document_id: doc.id,
                });
            }
        }
        let size = bytes.len() as i64;
        let name = source.to_string();
        let config = ChunkerConfig {
            chunk_tokens: self.settings.chunk_tokens,
            overlap: self.settings.chunk_overlap,
        };
        // Parsing (PDF above all) and token counting are CPU work: keep them off the async
        // threads, and give up on a file that takes unreasonably long (a hostile PDF).
        let parse = tokio::task::spawn_blocking(move || {
            let loaded = loaders::load(&name, &bytes, format)?;
            let chunks = chunker::chunk(&loaded, &config);
            Ok::<_, loaders::LoadError>((loaded, chunks))
        });
        let (loaded, chunks) = tokio::time::timeout(PARSE_TIMEOUT, parse)
            .await
            .map_err(|_| {
                loaders::LoadError::Unreadable(format!(
                    "{source}: took over {} s to read",
                    PARSE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| {
                loaders::LoadError::Unreadable(format!("{source}: parser failed: {e}"))
            })??;
        if chunks.is_empty() {
            return Err(loaders::LoadError::Empty(source.to_string()).into());
        }
        // Passages without a heading (PDF pages, plain text) take the document title as context.
        let context =
            |heading: &Option<String>| heading.clone().unwrap_or_else(|| loaded.title.clone());
        let inputs: Vec<String> = chunks
            .iter()
            .map(|c| embedding_input(Some(&context(&c.heading)), &c.text))
            .collect();
        let vectors = self.embedder.embed(&inputs).await?;
        let new_chunks: Vec<NewChunk> = chunks
            .into_iter()
            .zip(vectors)
            .enumerate()
            .map(|(i, (c, embedding))| NewChunk {
                id: ChunkId::new(),
                position: i as i64,
                search_text: text::search_text(&embedding_input(
                    Some(&context(&c.heading)),
                    &c.text,
                )),
                heading: c.heading,
                text: c.text,
                token_count: c.token_count as i64,
                embedding,
            })
            .collect();
        let count = new_chunks.len();
        let doc = NewDocument {
            collection: collection.to_string(),
            source: source.to_string(),
            title: loaded.title,
            format: format.as_str().to_string(),
            content_hash: hash,
            bytes: size,
            embedding_model: model,
        };
        let document_id = self.store_document(doc, new_chunks).await?;
        tracing::info!(%collection, %source, chunks = count, "ingested");
        let notes = loaded.notes;
        Ok(match existing {
            Some(_) => IngestOutcome::Updated {
                document_id,
                chunks: count,
                notes,
            },
            None => IngestOutcome::Added {
                document_id,
                chunks: count,
                notes,
            },
        })
    }

    /// Stores a copy of a document kept elsewhere (another store: the one an eval run starts
    /// from) in `collection`, with its passages as they were cut. Their vectors are copied
    /// when they come from this knowledge base's embedder, and made again otherwise.
    pub async fn import_document(
        &self,
        collection: &str,
        doc: &crate::domain::Document,
        chunks: Vec<crate::domain::Chunk>,
    ) -> Result<(), KnowledgeError> {
        check_collection(collection)?;
        if chunks.is_empty() {
            return Ok(());
        }
        let model = self.embedder.model_id().to_string();
        let inputs: Vec<String> = chunks
            .iter()
            .map(|c| embedding_input(Some(c.heading.as_deref().unwrap_or(&doc.title)), &c.text))
            .collect();
        let vectors = if doc.embedding_model == model
            && chunks
                .iter()
                .all(|c| c.embedding.len() == self.embedder.dimensions())
        {
            chunks.iter().map(|c| c.embedding.clone()).collect()
        } else {
            self.embedder.embed(&inputs).await?
        };
        let new_chunks: Vec<NewChunk> = chunks
            .into_iter()
            .zip(vectors)
            .zip(&inputs)
            .map(|((c, embedding), input)| NewChunk {
                id: ChunkId::new(),
                position: c.position,
                search_text: text::search_text(input),
                heading: c.heading,
                text: c.text,
                token_count: c.token_count,
                embedding,
            })
            .collect();
        let new = NewDocument {
            collection: collection.to_string(),
            source: doc.source.clone(),
            title: doc.title.clone(),
            format: doc.format.clone(),
            content_hash: doc.content_hash.clone(),
            bytes: doc.bytes,
            embedding_model: model,
        };
        self.store_document(new, new_chunks).await?;
        Ok(())
    }

    /// Writes a document and its passages to the store and their vectors to the index (the
    /// earlier version's passages leave both), one writer per collection at a time.
    async fn store_document(
        &self,
        doc: NewDocument,
        chunks: Vec<NewChunk>,
    ) -> Result<DocumentId, KnowledgeError> {
        let collection = doc.collection.clone();
        let points: Vec<VectorPoint> = chunks
            .iter()
            .map(|c| VectorPoint {
                id: c.id.0,
                vector: c.embedding.clone(),
            })
            .collect();
        let writer = self.writer(&collection).await;
        let _guard = writer.lock().await;
        let replaced = self.store.replace_document(doc, chunks).await?;
        self.vectors
            .ensure_collection(&collection, self.embedder.dimensions())
            .await?;
        let removed: Vec<uuid::Uuid> = replaced.removed_chunks.iter().map(|c| c.0).collect();
        self.vectors.delete(&collection, &removed).await?;
        self.vectors.upsert(&collection, points).await?;
        self.store
            .mark_collection_indexed(&collection, replaced.version)
            .await?;
        self.hold(&collection, replaced.version, Some(replaced.version - 1));
        Ok(replaced.document.id)
    }

    /// Deletes a document from the store and the index; false if it did not exist.
    pub async fn delete_document(&self, id: DocumentId) -> Result<bool, KnowledgeError> {
        let Some(doc) = self.store.document(id).await? else {
            return Ok(false);
        };
        let writer = self.writer(&doc.collection).await;
        let _guard = writer.lock().await;
        let Some(deleted) = self.store.delete_document(id).await? else {
            return Ok(false);
        };
        let removed: Vec<uuid::Uuid> = deleted.removed_chunks.iter().map(|c| c.0).collect();
        match self.vectors.delete(&doc.collection, &removed).await {
            Ok(()) | Err(crate::vectors::VectorError::MissingCollection(_)) => {}
            Err(e) => return Err(e.into()),
        }
        self.store
            .mark_collection_indexed(&doc.collection, deleted.version)
            .await?;
        self.hold(&doc.collection, deleted.version, Some(deleted.version - 1));
        Ok(true)
    }

    /// Rebuilds the vector index from the store: every collection (or one), or with
    /// `only_stale`, just those whose index is behind the store or holds a different number of
    /// points. Documents embedded by another model are re-embedded first.
    pub async fn reindex(
        &self,
        only: Option<&str>,
        only_stale: bool,
    ) -> Result<ReindexReport, KnowledgeError> {
        let mut report = ReindexReport::default();
        for state in self.store.collections().await? {
            if only.is_some_and(|o| o != state.name) {
                continue;
            }
            let writer = self.writer(&state.name).await;
            let _guard = writer.lock().await;
            let model = self.embedder.model_id().to_string();
            let stale_docs: Vec<_> = self
                .store
                .list_documents(&state.name)
                .await?
                .into_iter()
                .filter(|d| d.embedding_model != model)
                .collect();
            let points = self.vectors.count(&state.name).await?;
            // This process's own index holds what it recorded; before it recorded anything (at
            // start), the store's marker and the point count are the evidence.
            let indexed = self.held(&state.name).unwrap_or(state.indexed_version);
            let consistent = indexed == state.version && points == state.chunks as u64;
            if only_stale && consistent && stale_docs.is_empty() {
                self.hold(&state.name, state.version, None);
                report.up_to_date.push(state.name.clone());
                continue;
            }
            if !stale_docs.is_empty() {
                tracing::info!(
                    collection = %state.name,
                    documents = stale_docs.len(),
                    model = %model,
                    "re-embedding documents embedded by another model"
                );
            }
            let started = std::time::Instant::now();
            for (i, doc) in stale_docs.iter().enumerate() {
                let passages = self.store.passages_in_range(doc.id, 0, i64::MAX).await?;
                let inputs: Vec<String> = passages
                    .iter()
                    .map(|p| {
                        embedding_input(Some(p.heading.as_deref().unwrap_or(&p.title)), &p.text)
                    })
                    .collect();
                let vectors = self.embedder.embed(&inputs).await?;
                let pairs: Vec<(ChunkId, Vec<f32>)> =
                    passages.iter().map(|p| p.chunk_id).zip(vectors).collect();
                self.store.update_embeddings(doc.id, &model, &pairs).await?;
                report.reembedded_documents += 1;
                // Progress: a large knowledge base takes minutes on a laptop.
                tracing::info!(
                    collection = %state.name,
                    document = %doc.source,
                    passages = pairs.len(),
                    done = i + 1,
                    of = stale_docs.len(),
                    elapsed_s = started.elapsed().as_secs(),
                    "re-embedded {} of {} documents",
                    i + 1,
                    stale_docs.len()
                );
            }
            // Read the version after re-embedding: everything up to it is copied below.
            let version = self
                .store
                .collections()
                .await?
                .into_iter()
                .find(|c| c.name == state.name)
                .map(|c| c.version)
                .unwrap_or(state.version);
            self.vectors.drop_collection(&state.name).await?;
            self.vectors
                .ensure_collection(&state.name, self.embedder.dimensions())
                .await?;
            let mut after = None;
            let mut copied = 0u64;
            loop {
                let page = self.store.chunk_page(&state.name, after, 1000).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                copied += page.len() as u64;
                let points = page
                    .into_iter()
                    .map(|c| VectorPoint {
                        id: c.id.0,
                        vector: c.embedding,
                    })
                    .collect();
                self.vectors.upsert(&state.name, points).await?;
            }
            self.vectors.optimize(&state.name).await?;
            self.store
                .mark_collection_indexed(&state.name, version)
                .await?;
            self.hold(&state.name, version, None);
            tracing::info!(collection = %state.name, points = copied, "vector index rebuilt");
            report.rebuilt.push((state.name.clone(), copied));
        }
        Ok(report)
    }
}

/// A collection key: a valid name, qualified by a workspace id but in the default workspace
/// (see [`crate::domain::collection_key`]).
fn check_collection(collection: &str) -> Result<(), KnowledgeError> {
    let (qualifier, name) = match collection.split_once('.') {
        Some((q, name)) => (Some(q), name),
        None => (None, collection),
    };
    let qualifier_ok = qualifier.is_none_or(|q| {
        q.len() == 32
            && q.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    });
    match (qualifier_ok, validate_name("collection", name)) {
        (true, None) => Ok(()),
        _ => Err(KnowledgeError::InvalidCollection(collection.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collection_keys_are_names_or_workspace_qualified_names() {
        let ws = crate::domain::WorkspaceId::new();
        let qualified = crate::domain::collection_key(ws, "faq");
        let cases = [
            ("faq", true),
            (qualified.as_str(), true),
            ("0123456789abcdef0123456789abcdef.faq", true),
            ("0123456789ABCDEF0123456789abcdef.faq", false),
            ("0123.faq", false),
            ("0123456789abcdef0123456789abcdef.", false),
            ("0123456789abcdef0123456789abcdef.a.b", false),
            ("../faq", false),
            ("", false),
        ];
        for (key, ok) in cases {
            assert_eq!(check_collection(key).is_ok(), ok, "{key:?}");
        }
    }

    #[test]
    fn heading_prefixes_the_embedded_text() {
        assert_eq!(
            embedding_input(Some("Delivery > Costs"), "Free over 30 EUR."),
            "Delivery > Costs: Free over 30 EUR."
        );
        assert_eq!(embedding_input(None, "Hi"), "Hi");
        assert_eq!(embedding_input(Some(""), "Hi"), "Hi");
    }

    #[test]
    fn walk_is_sorted_recursive_and_skips_hidden() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        std::fs::create_dir_all(dir.path().join(".git")).unwrap();
        for f in ["b.md", "a.txt", "sub/c.csv", ".hidden.md", ".git/x.md"] {
            std::fs::write(dir.path().join(f), "x").unwrap();
        }
        let mut out = Vec::new();
        walk(dir.path(), "kb", &mut out).unwrap();
        let sources: Vec<_> = out.iter().map(|f| f.source.as_str()).collect();
        assert_eq!(sources, ["kb/a.txt", "kb/b.md", "kb/sub/c.csv"]);
    }

    /// Two processes on one database, each with an index of its own (replicas with embedded
    /// indexes): what one writes, the other's index holds by its next search.
    #[tokio::test]
    async fn a_process_index_follows_what_another_process_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::knowledge::testing::store(dir.path()).await;
        let process = || crate::knowledge::testing::knowledge(store.clone());
        let (a, b) = (process(), process());
        let search = |k: &'static str| crate::knowledge::Query {
            collection: "shop",
            text: k,
            top_k: 3,
            min_score: 0.0,
        };
        let held_ids = |k: &Knowledge| {
            let vectors = k.vectors.clone();
            async move {
                let hits = vectors
                    .search("shop", &[1.0; 256], 100)
                    .await
                    .unwrap_or_default();
                let mut ids: Vec<uuid::Uuid> = hits.into_iter().map(|h| h.id).collect();
                ids.sort();
                ids
            }
        };
        let stored_ids = || async {
            let mut ids: Vec<uuid::Uuid> = store
                .chunk_page("shop", None, 1000)
                .await
                .unwrap()
                .into_iter()
                .map(|c| c.id.0)
                .collect();
            ids.sort();
            ids
        };

        // B searched before anything existed, then A writes.
        b.retrieve(&search("opening hours")).await.unwrap();
        a.ingest_bytes(
            "shop",
            "hours.md",
            b"# Hours\n\nOpen from 9 to 18.\n\n# Payment\n\nCards and cash.".to_vec(),
            crate::knowledge::loaders::Format::Markdown,
        )
        .await
        .unwrap();
        assert!(held_ids(&b).await.is_empty(), "B has not searched since");
        b.retrieve(&search("opening hours")).await.unwrap();
        assert_eq!(held_ids(&b).await, stored_ids().await);
        assert!(!held_ids(&b).await.is_empty());

        // A replaces the document with one of as many passages: B's index changes too.
        a.ingest_bytes(
            "shop",
            "hours.md",
            b"# Hours\n\nOpen from 10 to 19.\n\n# Payment\n\nCards only.".to_vec(),
            crate::knowledge::loaders::Format::Markdown,
        )
        .await
        .unwrap();
        b.retrieve(&search("payment")).await.unwrap();
        assert_eq!(held_ids(&b).await, stored_ids().await);

        // A's own writes need no catching up; B's write is caught up by A.
        b.ingest_bytes(
            "shop",
            "returns.md",
            b"# Returns\n\nWithin 30 days.".to_vec(),
            crate::knowledge::loaders::Format::Markdown,
        )
        .await
        .unwrap();
        a.retrieve(&search("returns")).await.unwrap();
        assert_eq!(held_ids(&a).await, stored_ids().await);
        assert_eq!(held_ids(&b).await, stored_ids().await);

        // A deletion by A leaves B's index by B's next search.
        let documents = store.list_documents("shop").await.unwrap();
        let hours = documents
            .iter()
            .find(|d| d.source == "hours.md")
            .unwrap()
            .id;
        assert!(a.delete_document(hours).await.unwrap());
        b.retrieve(&search("returns")).await.unwrap();
        assert_eq!(held_ids(&b).await, stored_ids().await);
        assert_eq!(stored_ids().await.len(), 1);
    }
}
