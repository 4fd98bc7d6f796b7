//! The source a reply names at its end: "(Source: FAQ)" from the extractive answerer, "(source
//! 2)" from a model told to cite. An agent that does not cite its sources (the default: a
//! customer on WhatsApp has no use for "(Source: FAQ > Payments)") sends the reply without it;
//! the sources stay on the recorded message, for the inbox and the sandbox.

/// `reply` without the source mention that ends it, if one does; a reply that is nothing but a
/// mention is left as it is.
pub(crate) fn without_citation(reply: &str) -> &str {
    let reply = reply.trim_end();
    let Some(open) = trailing_parenthesis(reply) else {
        return reply;
    };
    let inner = &reply[open + 1..reply.len() - 1];
    if !names_a_source(inner) {
        return reply;
    }
    let rest = reply[..open].trim_end();
    if rest.is_empty() {
        reply
    } else {
        rest
    }
}

/// Where the parenthesis that closes `text` opens, nested ones included.
fn trailing_parenthesis(text: &str) -> Option<usize> {
    if !text.ends_with(')') {
        return None;
    }
    let mut depth = 0usize;
    for (i, c) in text.char_indices().rev() {
        match c {
            ')' => depth += 1,
            '(' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// "Source: FAQ", "source 2", "sources 1 and 3", "Sources: 1, 2".
fn names_a_source(inner: &str) -> bool {
    let inner = inner.trim();
    let lower = inner.to_lowercase();
    let Some(rest) = lower
        .strip_prefix("sources")
        .or_else(|| lower.strip_prefix("source"))
    else {
        return false;
    };
    if let Some(named) = rest.strip_prefix(':') {
        return !named.trim().is_empty();
    }
    // Numbered: digits joined by commas, "and" or "&".
    let numbers = rest.replace(" and ", ",").replace('&', ",");
    let mut any = false;
    for n in numbers.split(',').map(str::trim) {
        if n.is_empty() || !n.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
        any = true;
    }
    any && rest.starts_with(' ')
}

#[cfg(test)]
mod tests {
    use super::without_citation;

    #[test]
    fn a_trailing_source_mention_goes() {
        for (reply, sent) in [
            (
                "We open at 08:00.\n\n(Source: Opening hours)",
                "We open at 08:00.",
            ),
            (
                "Cards and MB WAY.\n\n(Source: FAQ > Payments (cards))",
                "Cards and MB WAY.",
            ),
            ("We open at 8. (source 2)", "We open at 8."),
            ("We open at 8 (Source 2)", "We open at 8"),
            ("Yes, on a lead. (sources 1 and 3)", "Yes, on a lead."),
            ("Yes. (Sources: 1, 2)  \n", "Yes."),
            ("Yes. (sources 1, 2 & 4)", "Yes."),
            ("It costs 4 EUR (source: price list)", "It costs 4 EUR"),
        ] {
            assert_eq!(without_citation(reply), sent, "{reply:?}");
        }
    }

    #[test]
    fn other_endings_stay() {
        for reply in [
            "We open at 08:00.",
            "Call us (we answer at 9)",
            "Sizes run small (see the source of the table)",
            "We open at 8 (sourced locally)",
            "Prices (source 2 is old) vary.",
            "Open on Sundays (sources)",
            "(Source: FAQ)",
        ] {
            assert_eq!(without_citation(reply), reply, "{reply:?}");
        }
    }
}
