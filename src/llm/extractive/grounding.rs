//! Whether a reply's amounts are the price of the thing asked. A wrong price said with
//! confidence is the worst reply after none, so before a price goes out two things must hold:
//!
//! - **It is about what the customer named.** Every line of the reply that states an amount
//!   (with its section's heading) holds one of the question's *specific* words: a word the
//!   documents use in few passages. A word most passages share ("bike" at a bike workshop)
//!   says the business is right, not the price: "how much to fix a flat tyre?" is not
//!   answered by "you pay a theft fee of 150 EUR for a city bike". A question whose words the
//!   documents do not use (another language) gives nothing to check by words, and its answer
//!   stands on the embedder's choice alone.
//! - **It is one thing's price.** When the question's words point at some of the priced lines
//!   and not others, yet at more than one differently named thing ("a avaliação?" against
//!   "Avaliação fisioterapêutica" and "Fisioterapia pélvica (avaliação ou sessão)"), the
//!   customer meant one of them: they are asked which, by name, with no amount. Lines the
//!   question does not tell apart (every zone's rate for "how much is shipping?") answer
//!   together, each under its name; one product's variants (one name, several sizes) are one
//!   thing.
//!
//! A reply of amounts for several things is replaced by their names, asking which one the
//! customer means; a reply of another thing's price is not sent, and the turn goes to a person.

use std::collections::HashSet;

use super::rows::Row;
use super::units::{states_a_price, Asked};
use crate::knowledge::text::sentences;

/// Why a reply's amounts cannot be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ungrounded {
    /// A line states an amount and none of the question's specific words.
    OtherThing,
    /// Lines state amounts for several differently named things: their names, in the reply's
    /// order.
    SeveralThings(Vec<String>),
}

/// Checks `reply` (from the section headed `heading`) against the question read as `asked`,
/// when the question asks a price.
pub(super) fn check(reply: &str, heading: Option<&str>, asked: &Asked) -> Result<(), Ungrounded> {
    let priced: Vec<String> = lines(reply)
        .into_iter()
        .filter(|l| states_a_price(l))
        .collect();
    if priced.is_empty() {
        return Ok(());
    }
    // The question's own words that some of the priced lines hold and others do not: it
    // points at those lines. Lines it does not tell apart (no zone named in "how much is
    // shipping?") answer together, each with its name.
    let held: Vec<HashSet<String>> = priced.iter().map(|l| asked.stems_of(l)).collect();
    let pointing = asked.stems.iter().any(|(stem, _, known, carried)| {
        let holders = held.iter().filter(|h| h.contains(stem)).count();
        *known && !carried && holders > 0 && holders < priced.len()
    });
    if pointing {
        let mut seen = HashSet::new();
        let names: Vec<String> = priced
            .iter()
            .zip(&held)
            .filter(|(_, h)| {
                asked
                    .stems
                    .iter()
                    .any(|(stem, _, known, carried)| *known && !carried && h.contains(stem))
            })
            .filter_map(|(l, _)| Row::parse(l).and_then(|r| r.name))
            .map(|n| n.trim().to_string())
            .filter(|n| seen.insert(n.to_lowercase()))
            .collect();
        if names.len() > 1 {
            return Err(Ungrounded::SeveralThings(names));
        }
    }
    let specific: Vec<&String> = asked
        .stems
        .iter()
        .filter(|(stem, weight, known, carried)| {
            // A carried word (from the question before) counts at half its weight.
            let weight = if *carried { weight * 2.0 } else { *weight };
            *known && weight >= asked.specific && !asked.corrected.contains(stem)
        })
        .map(|(stem, ..)| stem)
        .collect();
    if specific.is_empty() {
        return Ok(());
    }
    let heading = asked.stems_of(heading.unwrap_or_default());
    let about_it = |line: &HashSet<String>| {
        specific
            .iter()
            .any(|s| line.contains(*s) || heading.contains(*s))
    };
    if held.iter().all(about_it) {
        Ok(())
    } else {
        Err(Ungrounded::OtherThing)
    }
}

/// A reply's lines, and the sentences of its prose lines.
fn lines(reply: &str) -> Vec<String> {
    reply
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .flat_map(|l| {
            if Row::parse(l).is_some() {
                vec![l.to_string()]
            } else {
                sentences(l)
            }
        })
        .collect()
}
