//! Palaver: a self-hosted engine that answers a business's WhatsApp messages from its own
//! documents, and hands conversations to people when it should.

pub mod config;
pub mod crypto;
pub mod domain;
pub mod knowledge;
pub mod speech;
pub mod store;

pub use config::Settings;
