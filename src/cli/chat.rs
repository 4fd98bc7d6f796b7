//! `palaver chat`: the sandbox in the terminal.

use super::workspace;
use anyhow::{Context, Result};
use palaver::{App, Settings};

pub(crate) async fn chat(
    settings: Settings,
    ws_key: &str,
    agent: &str,
    session: &str,
    answerer: Option<&str>,
) -> Result<()> {
    use palaver::pipeline::{sandbox, Overrides};
    use std::io::{BufRead, Write};

    let app = App::build(settings).await?;
    app.check_index().await?;
    let ws = workspace(app.store.as_ref(), ws_key).await?.id;
    let agent = app.store.agent_by_name(ws, agent).await?.with_context(|| {
        format!(
            "no agent named `{agent}` (create it with `palaver ingest knowledge/ --agent {agent}`)"
        )
    })?;
    let overrides = Overrides {
        answerer: answerer
            .map(|a| serde_json::from_value(serde_json::Value::String(a.to_string())))
            .transpose()
            .context("--answerer must be extractive, local or openai")?,
        ..Default::default()
    };
    eprintln!(
        "Chatting with `{}` ({} answerer). Commands: /voice FILE, /reset, /prompt, /quit.",
        agent.name,
        overrides.answerer.unwrap_or(agent.config.answerer).as_str()
    );
    let stdin = std::io::stdin();
    let mut last_prompt: Option<String> = None;
    loop {
        eprint!("you> ");
        std::io::stderr().flush().ok();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            break;
        }
        let line = line.trim();
        let voice_file = line
            .strip_prefix("/voice")
            .filter(|rest| rest.is_empty() || rest.starts_with(' '))
            .map(str::trim);
        match line {
            "" => continue,
            "/quit" | "/exit" => break,
            "/reset" => {
                sandbox::reset(&app.pipeline, &agent, session).await?;
                println!("(conversation reset)");
                continue;
            }
            "/prompt" => {
                match &last_prompt {
                    Some(p) => println!("{p}"),
                    None => println!("(no prompt yet: the last turn did not reach the model)"),
                }
                continue;
            }
            _ if line.starts_with('/') && voice_file.is_none() => {
                println!("(unknown command; try /voice FILE, /reset, /prompt or /quit)");
                continue;
            }
            _ => {}
        }
        let said = match voice_file {
            Some(file) => match voice_note(file) {
                Ok(said) => said,
                Err(e) => {
                    println!("({e})");
                    continue;
                }
            },
            None => sandbox::Said::Text(line.to_string()),
        };
        let outcome = sandbox::say(&app.pipeline, &agent, session, said, &overrides).await?;
        if voice_file.is_some() && !outcome.question.is_empty() {
            println!("  heard: {}", outcome.question);
        }
        if let Some(prompt) = outcome.generation.as_ref().and_then(|g| g.prompt.clone()) {
            last_prompt = Some(prompt);
        }
        print!("{}", describe(&outcome));
        std::io::stdout().flush().ok();
    }
    Ok(())
}

/// The voice note at `file`, for the chat's `/voice FILE`.
fn voice_note(file: &str) -> Result<palaver::pipeline::sandbox::Said> {
    anyhow::ensure!(
        !file.is_empty(),
        "usage: /voice FILE (an OGG/Opus, WAV, MP3 or M4A file)"
    );
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {file}"))?;
    let mime = palaver::speech::decode::mime_for_path(std::path::Path::new(file));
    Ok(palaver::pipeline::sandbox::Said::Audio(
        bytes,
        mime.map(str::to_owned),
    ))
}

/// A turn's outcome as the terminal chat shows it.
fn describe(o: &palaver::pipeline::Outcome) -> String {
    use std::fmt::Write;
    let mut out = String::new();
    match (&o.reply, o.silence) {
        (Some(reply), _) => {
            let _ = writeln!(out, "bot> {}", reply.replace('\n', "\n     "));
        }
        (None, Some(silence)) => {
            let _ = writeln!(out, "(no reply: {silence:?})");
        }
        (None, None) => {}
    }
    if let Some(trigger) = &o.escalation {
        let _ = writeln!(
            out,
            "  escalated: {} ({})",
            trigger.reason(),
            trigger.detail()
        );
    }
    if let Some(note) = &o.support_note {
        let _ = writeln!(
            out,
            "  note to the support contact: {}",
            note.replace('\n', " | ")
        );
    }
    for s in &o.sources {
        let heading = s
            .heading
            .as_deref()
            .map(|h| format!(" > {h}"))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "  [{}] {}{}  similarity {:.3}  score {:.4}",
            s.n, s.source, heading, s.similarity, s.score
        );
    }
    if let Some(g) = &o.generation {
        let confidence = g
            .confidence
            .map(|c| format!("  confidence {c:.2}"))
            .unwrap_or_default();
        let _ =
            writeln!(
            out,
            "  {}{}  retrieve {:.1} ms  generate {:.1} ms  total {:.1} ms  tokens {} in / {} out{}",
            g.answerer.as_str(),
            g.model.as_deref().map(|m| format!(" ({m})")).unwrap_or_default(),
            g.retrieve_ms,
            g.generate_ms,
            g.total_ms,
            g.tokens_in,
            g.tokens_out,
            confidence,
        );
        if let Some(note) = &g.note {
            let _ = writeln!(out, "  ({note})");
        }
    }
    out
}
