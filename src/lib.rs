//! Palaver: a self-hosted engine that answers a business's WhatsApp messages from its own
//! documents, and hands conversations to people when it should.

pub mod bench;
pub mod config;
pub mod crypto;
pub mod domain;
pub mod embed;
pub mod knowledge;
pub mod llm;
pub mod models;
pub mod providers;
pub mod store;
pub mod vectors;

pub use config::Settings;
