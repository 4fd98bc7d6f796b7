//! Integration tests, one binary: store suites on SQLite and Postgres, the HTTP API on a real
//! loopback socket, ingestion and retrieval over the sample knowledge base.

mod support;

mod accounts;
mod api;
mod assignment;
mod browser;
mod changes;
mod client;
mod console;
mod contacts;
mod crash;
mod delivery;
mod draft;
mod engine;
mod eval;
mod events;
mod gaps;
mod graph_versions;
mod handoff;
mod hooks;
mod inbox;
mod notes;
mod openapi;
mod operations;
mod outbound;
mod replicas;
mod reports;
mod store;
mod team;
mod teams;
mod templates;
mod voice;
mod webhooks;
