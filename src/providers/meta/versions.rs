//! The Graph API versions Meta publishes, each with the date it was released and, once Meta has
//! announced it, the date it stops answering (the "available until" column of Meta's changelog,
//! <https://developers.facebook.com/docs/graph-api/changelog/versions>). Meta moves WhatsApp
//! numbers between versions separately, so each Meta channel calls the version it chose: a
//! version missing from this table is refused, a retired one cannot be chosen, and a channel
//! still calling one that is retired, or soon will be, is told so on its state.
//!
//! The table is updated by hand when Meta publishes a version or announces a date; a date Meta
//! has not announced stays `None` rather than guessed.

use chrono::{Days, NaiveDate};

/// The version a Meta channel calls unless it, or the installation's Graph URL, names another.
pub const DEFAULT_GRAPH_VERSION: &str = "v23.0";

/// How long before a version's retirement the channels calling it are warned.
const WARN_DAYS_BEFORE_RETIREMENT: u64 = 90;

/// One published version of the Graph API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GraphVersion {
    /// As it appears in request paths: `v23.0`.
    pub name: &'static str,
    /// When Meta released it.
    pub released: NaiveDate,
    /// The first day it no longer answers, once Meta has announced it.
    pub retired: Option<NaiveDate>,
}

const fn day(year: i32, month: u32, day: u32) -> NaiveDate {
    match NaiveDate::from_ymd_opt(year, month, day) {
        Some(date) => date,
        None => panic!("not a date"),
    }
}

const fn version(
    name: &'static str,
    released: NaiveDate,
    retired: Option<NaiveDate>,
) -> GraphVersion {
    GraphVersion {
        name,
        released,
        retired,
    }
}

/// Every version Meta lists among its Graph API versions since the WhatsApp Cloud API opened,
/// newest first, as Meta's changelog gives them.
pub const GRAPH_VERSIONS: &[GraphVersion] = &[
    version("v26.0", day(2026, 7, 29), None),
    version("v25.0", day(2026, 2, 18), Some(day(2028, 7, 29))),
    version("v24.0", day(2025, 10, 8), Some(day(2028, 2, 18))),
    version("v23.0", day(2025, 5, 29), Some(day(2027, 10, 8))),
    version("v22.0", day(2025, 1, 21), Some(day(2027, 5, 20))),
    version("v21.0", day(2024, 10, 2), Some(day(2027, 1, 21))),
    version("v20.0", day(2024, 5, 21), Some(day(2026, 9, 24))),
    version("v19.0", day(2024, 1, 23), Some(day(2026, 5, 21))),
    version("v18.0", day(2023, 9, 12), Some(day(2026, 1, 26))),
    version("v17.0", day(2023, 5, 23), Some(day(2025, 9, 12))),
    version("v16.0", day(2023, 2, 2), Some(day(2025, 5, 14))),
    version("v15.0", day(2022, 9, 15), Some(day(2024, 11, 20))),
    version("v14.0", day(2022, 5, 25), Some(day(2024, 9, 17))),
    version("v13.0", day(2022, 2, 8), Some(day(2024, 5, 28))),
];

impl GraphVersion {
    /// Whether Meta has retired it by `today`.
    pub fn is_retired(&self, today: NaiveDate) -> bool {
        self.retired.is_some_and(|retired| retired <= today)
    }
}

/// The published version named `name`, if there is one.
pub fn published(name: &str) -> Option<&'static GraphVersion> {
    GRAPH_VERSIONS.iter().find(|v| v.name == name)
}

/// Whether `text` is written the way Meta writes a version: `v`, digits, a dot, digits.
pub fn is_version_shaped(text: &str) -> bool {
    let Some((major, minor)) = text.strip_prefix('v').and_then(|t| t.split_once('.')) else {
        return false;
    };
    let digits = |s: &str| (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    digits(major) && digits(minor)
}

/// The versions a channel may choose on `today` (published and not retired), oldest first.
pub fn choosable(today: NaiveDate) -> Vec<&'static str> {
    GRAPH_VERSIONS
        .iter()
        .rev()
        .filter(|v| !v.is_retired(today))
        .map(|v| v.name)
        .collect()
}

/// The choosable versions in words: `v21.0 to v26.0`.
fn choosable_words(today: NaiveDate) -> String {
    match choosable(today).as_slice() {
        [] => "none".to_string(),
        [only] => (*only).to_string(),
        [first, .., last] => format!("{first} to {last}"),
    }
}

/// `given` as a channel stores it, or why a channel cannot choose it on `today`: it must be a
/// version Meta publishes, written as Meta writes it, and not retired.
pub fn accept(given: &str, today: NaiveDate) -> Result<&'static str, String> {
    let given = given.trim();
    if !is_version_shaped(given) {
        return Err(format!(
            "must be a Graph API version written as Meta writes it, like {DEFAULT_GRAPH_VERSION} (one of {})",
            choosable_words(today)
        ));
    }
    let Some(version) = published(given) else {
        return Err(format!(
            "{given} is not a Graph API version Meta publishes: choose one of {}",
            choosable_words(today)
        ));
    };
    if let Some(retired) = version.retired.filter(|_| version.is_retired(today)) {
        return Err(format!(
            "{given} was retired by Meta on {retired}: choose one of {}",
            choosable_words(today)
        ));
    }
    Ok(version.name)
}

/// What the owner of a channel calling `name` should hear on `today`: that Meta retired it,
/// will soon, or never published it. `None` while it is good for a while yet.
pub fn warning(name: &str, today: NaiveDate) -> Option<String> {
    let Some(version) = published(name) else {
        return Some(format!(
            "Graph API {name} is not a version Meta publishes: choose one of {} for this channel",
            choosable_words(today)
        ));
    };
    let retired = version.retired?;
    if version.is_retired(today) {
        return Some(format!(
            "Graph API {name} was retired by Meta on {retired}: Meta may refuse this channel's \
             calls; choose one of {} for it",
            choosable_words(today)
        ));
    }
    let warned_from = retired.checked_sub_days(Days::new(WARN_DAYS_BEFORE_RETIREMENT))?;
    (today >= warned_from).then(|| {
        format!(
            "Graph API {name} will be retired by Meta on {retired}: choose a newer version for \
             this channel before then"
        )
    })
}

/// A configured Graph URL split into the address calls go to and the version it ends with, if
/// it ends with one. Earlier releases took the version as part of the URL
/// (`https://graph.facebook.com/v23.0`): such a version is now the default of channels that
/// choose none.
pub fn split_graph_url(url: &str) -> (String, Option<String>) {
    let url = url.trim().trim_end_matches('/');
    match url.rsplit_once('/') {
        Some((base, last)) if is_version_shaped(last) && base.contains("://") => (
            base.trim_end_matches('/').to_string(),
            Some(last.to_string()),
        ),
        _ => (url.to_string(), None),
    }
}

/// Checks a configured Graph URL: a version it ends with must be one Meta publishes (a retired
/// one is let through, and reported on the channels that call it).
pub fn check_graph_url(url: &str) -> Result<(), String> {
    match split_graph_url(url) {
        (_, Some(version)) if published(&version).is_none() => Err(format!(
            "ends with {version}, which is not a Graph API version Meta publishes: leave the \
             version off (each channel chooses its own, {DEFAULT_GRAPH_VERSION} by default) or \
             name a published one"
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_newest_first_and_each_version_retires_after_its_release() {
        for pair in GRAPH_VERSIONS.windows(2) {
            assert!(pair[0].released > pair[1].released, "{pair:?}");
        }
        for v in GRAPH_VERSIONS {
            assert!(is_version_shaped(v.name), "{v:?}");
            assert!(v.retired.is_none_or(|r| r > v.released), "{v:?}");
        }
        let default = published(DEFAULT_GRAPH_VERSION).expect("the default is published");
        assert_eq!(default.released, day(2025, 5, 29));
    }

    #[test]
    fn versions_are_accepted_only_as_meta_publishes_them_and_while_they_answer() {
        let today = day(2026, 11, 25);
        // (given, accepted as, or the start of the error)
        let cases: &[(&str, Result<&str, &str>)] = &[
            ("v23.0", Ok("v23.0")),
            (" v26.0 ", Ok("v26.0")),
            ("v21.0", Ok("v21.0")),
            (
                "v99.0",
                Err("v99.0 is not a Graph API version Meta publishes"),
            ),
            (
                "v23.1",
                Err("v23.1 is not a Graph API version Meta publishes"),
            ),
            (
                "23",
                Err("must be a Graph API version written as Meta writes it"),
            ),
            (
                "23.0",
                Err("must be a Graph API version written as Meta writes it"),
            ),
            (
                "V23.0",
                Err("must be a Graph API version written as Meta writes it"),
            ),
            (
                "v23",
                Err("must be a Graph API version written as Meta writes it"),
            ),
            (
                "v23.0/../x",
                Err("must be a Graph API version written as Meta writes it"),
            ),
            (
                "v23.0/",
                Err("must be a Graph API version written as Meta writes it"),
            ),
            (
                "",
                Err("must be a Graph API version written as Meta writes it"),
            ),
            ("v20.0", Err("v20.0 was retired by Meta on 2026-09-24")),
            ("v13.0", Err("v13.0 was retired by Meta on 2024-05-28")),
        ];
        for (given, expected) in cases {
            match (accept(given, today), expected) {
                (Ok(got), Ok(want)) => assert_eq!(got, *want, "{given}"),
                (Err(got), Err(want)) => {
                    assert!(got.starts_with(want), "{given}: {got}");
                    assert!(got.contains("v21.0 to v26.0"), "{given}: {got}");
                }
                (got, want) => panic!("{given}: got {got:?}, expected {want:?}"),
            }
        }
        // The day a version retires it can no longer be chosen; the day before it can.
        assert!(accept("v20.0", day(2026, 9, 23)).is_ok());
        assert!(accept("v20.0", day(2026, 9, 24)).is_err());
    }

    #[test]
    fn channels_hear_of_a_retirement_ahead_of_time_and_after_it() {
        let today = day(2026, 11, 25);
        // Retired two months ago.
        let retired = warning("v20.0", today).unwrap();
        assert!(
            retired.starts_with("Graph API v20.0 was retired by Meta on 2026-09-24"),
            "{retired}"
        );
        // Retiring in 57 days.
        let soon = warning("v21.0", today).unwrap();
        assert!(
            soon.starts_with("Graph API v21.0 will be retired by Meta on 2027-01-21"),
            "{soon}"
        );
        // Good for a while, or with no date announced.
        assert_eq!(warning("v23.0", today), None);
        assert_eq!(warning("v26.0", today), None);
        // Not a published version at all (a hand-edited database or an old setting).
        assert!(warning("v99.0", today)
            .unwrap()
            .contains("not a version Meta publishes"));
        // The same version, years earlier, was fine.
        assert_eq!(warning("v20.0", day(2025, 1, 1)), None);
    }

    #[test]
    fn choosable_versions_leave_out_the_retired() {
        assert_eq!(
            choosable(day(2026, 11, 25)),
            vec!["v21.0", "v22.0", "v23.0", "v24.0", "v25.0", "v26.0"]
        );
        assert_eq!(choosable(day(2026, 1, 25)).first(), Some(&"v18.0"));
    }

    #[test]
    fn a_configured_url_gives_up_its_version_to_the_channels() {
        let cases = [
            (
                "https://graph.facebook.com",
                ("https://graph.facebook.com", None),
            ),
            (
                "https://graph.facebook.com/",
                ("https://graph.facebook.com", None),
            ),
            (
                "https://graph.facebook.com/v23.0",
                ("https://graph.facebook.com", Some("v23.0")),
            ),
            (
                "https://graph.facebook.com/v21.0/",
                ("https://graph.facebook.com", Some("v21.0")),
            ),
            (
                "http://127.0.0.1:9000/proxy/graph/v22.0",
                ("http://127.0.0.1:9000/proxy/graph", Some("v22.0")),
            ),
            (
                "http://127.0.0.1:9000/proxy",
                ("http://127.0.0.1:9000/proxy", None),
            ),
        ];
        for (url, (base, version)) in cases {
            assert_eq!(
                split_graph_url(url),
                (base.to_string(), version.map(str::to_string)),
                "{url}"
            );
        }
        assert!(check_graph_url("https://graph.facebook.com").is_ok());
        assert!(check_graph_url("https://graph.facebook.com/v19.0").is_ok());
        let refused = check_graph_url("https://graph.facebook.com/v99.0").unwrap_err();
        assert!(refused.contains("v99.0"), "{refused}");
    }
}
