//! Knowledge: turning a business's documents into searchable passages. Loaders read Markdown,
//! plain text, CSV, HTML and PDF into titled sections; the chunker packs sections into
//! token-bounded passages; `text` holds the normalisation shared by indexing and querying.

pub mod chunker;
pub mod loaders;
pub mod text;
