//! Charts drawn on the server as SVG, for the Reports page: no script and no chart library,
//! nothing but this origin's page. Each chart is an image with a title and a description that
//! say what it shows (`role="img"`, `aria-labelledby`); every bar carries a `<title>` (a
//! pointer's tooltip) and the page puts a table of the same figures beside each chart. Colours
//! and type come from `console.css` through classes (the policy allows no inline style); the
//! drawing scales to the width it is given, a phone's included.

use std::fmt::Write;

/// One bar of a daily chart, split into its two parts.
#[derive(Debug, Clone)]
pub struct DayBar {
    /// The axis label (`26 Nov`).
    pub label: String,
    /// The full label for titles (`Thu 26 Nov 2026`).
    pub long: String,
    /// The lower part (the bot alone).
    pub lower: i64,
    /// The whole bar (every conversation).
    pub total: i64,
}

/// One bar of a horizontal bar chart.
#[derive(Debug, Clone)]
pub struct Bar {
    /// What it measures.
    pub label: String,
    /// Its value.
    pub value: f64,
    /// The value as shown (`4 min`, `12`).
    pub shown: String,
    /// Its class (colour).
    pub class: &'static str,
}

/// Text made safe for SVG and HTML.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A round step for an axis up to `max`, with about four lines.
fn step(max: f64) -> f64 {
    if max <= 0.0 {
        return 1.0;
    }
    let raw = max / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let steps = [1.0, 2.0, 2.5, 5.0, 10.0];
    let unit = steps
        .iter()
        .map(|s| s * magnitude)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * magnitude);
    unit.max(1.0)
}

fn number(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

/// The opening of a chart: its classes, size, accessible name and description.
fn open(out: &mut String, class: &str, id: &str, size: (u32, u32), title: &str, desc: &str) {
    let (width, height) = size;
    let _ = write!(
        out,
        "<svg class=\"{class}\" viewBox=\"0 0 {width} {height}\" role=\"img\" \
         aria-labelledby=\"{id}-title {id}-desc\" preserveAspectRatio=\"xMidYMid meet\">\
         <title id=\"{id}-title\">{}</title><desc id=\"{id}-desc\">{}</desc>",
        escape(title),
        escape(desc)
    );
}

/// Stacked columns, one a day: the lower part (`lower_name`) over the rest (`upper_name`).
pub fn daily(
    id: &str,
    title: &str,
    desc: &str,
    bars: &[DayBar],
    lower_name: &str,
    upper_name: &str,
) -> String {
    let (width, height) = (640u32, 260u32);
    let (left, right, top, bottom) = (48.0, 8.0, 14.0, 32.0);
    let plot_w = width as f64 - left - right;
    let plot_h = height as f64 - top - bottom;
    let max = bars.iter().map(|b| b.total).max().unwrap_or(0) as f64;
    let unit = step(max);
    let ceiling = ((max / unit).ceil() * unit).max(unit);
    let mut out = String::new();
    open(&mut out, "chart", id, (width, height), title, desc);
    // Grid lines with their values.
    let mut v = 0.0;
    while v <= ceiling + 1e-9 {
        let y = top + plot_h - v / ceiling * plot_h;
        let _ = write!(
            out,
            "<line class=\"grid\" x1=\"{left}\" x2=\"{:.1}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/>\
             <text class=\"axis\" x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            left + plot_w,
            left - 6.0,
            y + 4.0,
            number(v)
        );
        v += unit;
    }
    let n = bars.len().max(1) as f64;
    let slot = plot_w / n;
    let bar_w = (slot * 0.7).max(1.0);
    // A date about every 110 units of width: they never run into each other, even in the
    // larger type a phone is given.
    let every = ((110.0 / slot).ceil() as usize).max(1);
    for (i, b) in bars.iter().enumerate() {
        let x = left + i as f64 * slot + (slot - bar_w) / 2.0;
        let h_total = b.total as f64 / ceiling * plot_h;
        let h_lower = b.lower as f64 / ceiling * plot_h;
        let base = top + plot_h;
        let tip = format!(
            "{}: {} conversations, {} {lower_name}, {} {upper_name}",
            b.long,
            b.total,
            b.lower,
            b.total - b.lower
        );
        let _ = write!(out, "<g class=\"day\"><title>{}</title>", escape(&tip));
        if b.total > b.lower {
            let _ = write!(
                out,
                "<rect class=\"upper\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{:.1}\"/>",
                base - h_total,
                h_total - h_lower
            );
        }
        if b.lower > 0 {
            let _ = write!(
                out,
                "<rect class=\"lower\" x=\"{x:.1}\" y=\"{:.1}\" width=\"{bar_w:.1}\" height=\"{h_lower:.1}\"/>",
                base - h_lower
            );
        }
        // A transparent column over the whole slot: the tooltip answers anywhere above the day.
        let _ = write!(
            out,
            "<rect class=\"hit\" x=\"{:.1}\" y=\"{top}\" width=\"{slot:.1}\" height=\"{plot_h:.1}\"/></g>",
            left + i as f64 * slot
        );
        // Counted back from the last day, so the newest day is always named; it ends at the
        // plot's edge rather than running past it.
        if (bars.len() - 1 - i) % every == 0 {
            let (x, anchor) = if i + 1 == bars.len() {
                (left + plot_w, "end")
            } else {
                (x + bar_w / 2.0, "middle")
            };
            let _ = write!(
                out,
                "<text class=\"axis\" x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"{anchor}\">{}</text>",
                height as f64 - 8.0,
                escape(&b.label)
            );
        }
    }
    let _ = write!(
        out,
        "<line class=\"baseline\" x1=\"{left}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\"/>",
        left + plot_w,
        top + plot_h,
        top + plot_h
    );
    out.push_str("</svg>");
    out
}

/// Horizontal bars, one a line: its name and value above it, so a long name is never cut.
pub fn horizontal(id: &str, title: &str, desc: &str, bars: &[Bar]) -> String {
    let (row, width) = (48.0, 480u32);
    let height = (bars.len().max(1) as f64 * row).ceil() as u32;
    let plot_w = width as f64;
    let max = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    let mut out = String::new();
    open(&mut out, "chart bars", id, (width, height), title, desc);
    for (i, b) in bars.iter().enumerate() {
        let y = i as f64 * row;
        let w = if max > 0.0 {
            (b.value / max * plot_w).max(if b.value > 0.0 { 2.0 } else { 0.0 })
        } else {
            0.0
        };
        let _ = write!(
            out,
            "<g class=\"row\"><title>{}: {}</title>\
             <text class=\"label\" x=\"0\" y=\"{:.1}\">{}</text>\
             <text class=\"value\" x=\"{width}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>\
             <rect class=\"track\" x=\"0\" y=\"{:.1}\" width=\"{plot_w:.1}\" height=\"16\" rx=\"3\"/>\
             <rect class=\"{}\" x=\"0\" y=\"{:.1}\" width=\"{w:.1}\" height=\"16\" rx=\"3\"/></g>",
            escape(&b.label),
            escape(&b.shown),
            y + 18.0,
            escape(&b.label),
            y + 18.0,
            escape(&b.shown),
            y + 24.0,
            b.class,
            y + 24.0,
        );
    }
    out.push_str("</svg>");
    out
}

/// A duration in seconds as people read it: `45 s`, `12 min`, `3 h 5 min`, `2 d 4 h`.
pub fn duration(secs: f64) -> String {
    let s = secs.round() as i64;
    match s {
        s if s < 60 => format!("{s} s"),
        s if s < 3600 => format!("{} min", (s as f64 / 60.0).round() as i64),
        s if s < 86_400 => {
            let (h, m) = (s / 3600, (s % 3600) / 60);
            if m == 0 {
                format!("{h} h")
            } else {
                format!("{h} h {m} min")
            }
        }
        s => {
            let (d, h) = (s / 86_400, (s % 86_400) / 3600);
            if h == 0 {
                format!("{d} d")
            } else {
                format!("{d} d {h} h")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_say_them() {
        for (secs, shown) in [
            (0.0, "0 s"),
            (44.6, "45 s"),
            (60.0, "1 min"),
            (725.0, "12 min"),
            (3600.0, "1 h"),
            (11_100.0, "3 h 5 min"),
            (86_400.0, "1 d"),
            (187_200.0, "2 d 4 h"),
        ] {
            assert_eq!(duration(secs), shown);
        }
    }

    #[test]
    fn axis_steps_are_round() {
        for (max, unit) in [
            (0.0, 1.0),
            (3.0, 1.0),
            (10.0, 2.5),
            (37.0, 10.0),
            (480.0, 200.0),
        ] {
            assert_eq!(step(max), unit, "max {max}");
        }
    }

    #[test]
    fn text_in_a_chart_is_escaped_and_it_is_named() {
        let svg = horizontal(
            "x",
            "Reasons <b>",
            "desc & more",
            &[Bar {
                label: "\"keyword\" <script>".into(),
                value: 3.0,
                shown: "3".into(),
                class: "bar",
            }],
        );
        assert!(!svg.contains("<script>") && !svg.contains("<b>"));
        assert!(svg.contains("&lt;script&gt;") && svg.contains("desc &amp; more"));
        assert!(svg.contains("role=\"img\"") && svg.contains("aria-labelledby=\"x-title x-desc\""));
        let days = daily(
            "d",
            "Conversations",
            "per day",
            &[
                DayBar {
                    label: "1 Nov".into(),
                    long: "Sun 1 Nov 2026".into(),
                    lower: 2,
                    total: 5,
                },
                DayBar {
                    label: "2 Nov".into(),
                    long: "Mon 2 Nov 2026".into(),
                    lower: 0,
                    total: 0,
                },
            ],
            "answered by the bot alone",
            "with a person",
        );
        assert_eq!(days.matches("class=\"lower\"").count(), 1);
        assert_eq!(days.matches("class=\"upper\"").count(), 1);
        assert!(days.contains("Sun 1 Nov 2026: 5 conversations, 2 answered by the bot alone"));
    }
}
