//! `palaver ingest`, `search`, `reindex` and `transcribe`: an agent's documents and the local
//! speech model, from the terminal.

use std::path::PathBuf;

use anyhow::{Context, Result};

use super::{find_or_create_agent, workspace};
use palaver::{App, Settings};

/// Ingests `paths` into `agent`'s knowledge, creating the agent when it does not exist.
pub(crate) async fn ingest(
    settings: Settings,
    ws_key: &str,
    paths: &[PathBuf],
    agent: &str,
) -> Result<()> {
    let app = App::build(settings).await?;
    let ws = workspace(app.store.as_ref(), ws_key).await?.id;
    let agent = find_or_create_agent(&app, ws, agent).await?;
    let report = app
        .knowledge
        .ingest_paths(&agent.collection(), paths)
        .await?;
    println!("{report}");
    Ok(())
}

/// Prints the passages `question` finds in `agent`'s knowledge.
pub(crate) async fn search(
    settings: Settings,
    ws_key: &str,
    question: &str,
    agent: &str,
    top_k: Option<u32>,
) -> Result<()> {
    let app = App::build(settings).await?;
    app.check_index().await?;
    let ws = workspace(app.store.as_ref(), ws_key).await?.id;
    let agent = app.store.agent_by_name(ws, agent).await?.with_context(|| {
        format!("no agent named `{agent}` (create it with `palaver ingest PATH --agent {agent}`)")
    })?;
    let results = app
        .knowledge
        .retrieve(&palaver::knowledge::Query {
            collection: &agent.collection(),
            text: question,
            top_k: top_k.unwrap_or(agent.config.top_k) as usize,
            min_score: agent.config.min_score,
        })
        .await?;
    if results.is_empty() {
        println!("no passage found in `{}`", agent.collection_name());
    }
    for (i, r) in results.iter().enumerate() {
        let heading = r
            .heading
            .as_deref()
            .map(|h| format!(" > {h}"))
            .unwrap_or_default();
        println!(
            "{}. [{}{}] #{}  score {:.4}  similarity {:.3}  dense {}  keyword {}",
            i + 1,
            r.source,
            heading,
            r.position,
            r.score,
            r.similarity,
            r.dense_rank.map_or("-".into(), |n| n.to_string()),
            r.keyword_rank.map_or("-".into(), |n| n.to_string()),
        );
        println!("   {}", r.text.replace('\n', "\n   "));
    }
    Ok(())
}

/// Prints the transcript of an audio file with its timings.
pub(crate) async fn transcribe(
    settings: Settings,
    file: &std::path::Path,
    model: Option<&str>,
    language: Option<&str>,
) -> Result<()> {
    let models = palaver::models::ModelStore::from_settings(&settings);
    let result =
        palaver::speech::transcribe_file(&models, &settings.speech, file, model, language).await?;
    println!("{result}");
    Ok(())
}

/// Rebuilds the vector index from the store: one agent's collection or all, or only those
/// behind the store.
pub(crate) async fn reindex(
    settings: Settings,
    ws_key: &str,
    agent: Option<&str>,
    stale_only: bool,
) -> Result<()> {
    let app = App::build(settings).await?;
    let ws = workspace(app.store.as_ref(), ws_key).await?.id;
    let collection = match agent {
        Some(name) => Some(
            app.store
                .agent_by_name(ws, name)
                .await?
                .with_context(|| format!("no agent named `{name}`"))?
                .collection(),
        ),
        None => None,
    };
    let report = app
        .knowledge
        .reindex(collection.as_deref(), stale_only)
        .await?;
    println!("{report}");
    Ok(())
}
