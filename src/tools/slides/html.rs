//! Reading the deck's HTML: one slide per `<section>`, its first heading as the title, its list
//! items (or paragraphs) as bullets and its `<img>` sources, with entities decoded.

use super::SlideSpec;

/// Byte ranges of each `<tag …>…</tag>` in `html` (case-insensitive, not nested).
fn elements<'a>(html: &'a str, tag: &str) -> Vec<(&'a str, &'a str)> {
    let lower = html.to_ascii_lowercase();
    let open = format!("<{tag}");
    let close = format!("</{tag}");
    let mut found = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find(&open).map(|i| i + at) {
        let after_name = start + open.len();
        let boundary = lower[after_name..].chars().next();
        if !matches!(boundary, Some('>' | ' ' | '\t' | '\n' | '\r' | '/')) {
            at = after_name;
            continue;
        }
        let Some(tag_end) = lower[start..].find('>').map(|i| i + start + 1) else {
            break;
        };
        let attributes = &html[after_name..tag_end - 1];
        let (inner_end, next) = match lower[tag_end..].find(&close) {
            Some(i) => (tag_end + i, tag_end + i + close.len()),
            None => (html.len(), html.len()),
        };
        found.push((attributes, &html[tag_end..inner_end]));
        at = next;
    }
    found
}

/// Text without tags, entities decoded, whitespace collapsed.
fn text_of(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    let decoded = decode_entities(&out);
    decoded.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Named entities of everyday text and numeric ones (`&#8217;`, `&#x2014;`).
fn decode_entities(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        // An entity is short: look for its `;` among the next few characters only.
        let Some(end) = rest
            .char_indices()
            .take(12)
            .find(|(_, c)| *c == ';')
            .map(|(i, _)| i)
        else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            "nbsp" => Some(' '),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|n| n.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

fn attribute(attributes: &str, name: &str) -> Option<String> {
    let lower = attributes.to_ascii_lowercase();
    let mut at = 0;
    while let Some(i) = lower[at..].find(name).map(|i| i + at) {
        let before_ok = i == 0 || lower.as_bytes()[i - 1].is_ascii_whitespace();
        let rest = lower[i + name.len()..].trim_start();
        if before_ok && rest.starts_with('=') {
            let value_start = attributes.len() - rest.len() + 1;
            let value = attributes[value_start..].trim_start();
            return Some(match value.chars().next() {
                Some(quote @ ('"' | '\'')) => {
                    value[1..].split(quote).next().unwrap_or("").to_string()
                }
                _ => value.split_whitespace().next().unwrap_or("").to_string(),
            });
        }
        at = i + name.len();
    }
    None
}

pub(super) fn parse_deck(html: &str) -> Vec<SlideSpec> {
    elements(html, "section")
        .into_iter()
        .map(|(_, body)| {
            let title = ["h1", "h2", "h3"]
                .iter()
                .find_map(|h| elements(body, h).first().map(|(_, t)| text_of(t)))
                .unwrap_or_default();
            let items: Vec<String> = elements(body, "li")
                .iter()
                .map(|(_, t)| text_of(t))
                .collect();
            let bullets = if items.is_empty() {
                elements(body, "p")
                    .iter()
                    .map(|(_, t)| text_of(t))
                    .collect()
            } else {
                items
            };
            let images = img_sources(body);
            SlideSpec {
                title,
                bullets: bullets.into_iter().filter(|b| !b.is_empty()).collect(),
                images,
            }
        })
        .collect()
}

/// `src` of every `<img>` (void elements: no closing tag to look for).
fn img_sources(html: &str) -> Vec<String> {
    let lower = html.to_ascii_lowercase();
    let mut sources = Vec::new();
    let mut at = 0;
    while let Some(start) = lower[at..].find("<img").map(|i| i + at) {
        let end = lower[start..].find('>').map_or(html.len(), |i| start + i);
        if let Some(src) = attribute(&html[start + 4..end], "src") {
            sources.push(src);
        }
        at = end;
    }
    sources
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_become_titled_slides_with_bullets_and_pictures() {
        let html = r#"<style>section{}</style>
            <SECTION class="cover"><h1>Fruit &amp; Co</h1><p>Quarterly <b>report</b></p></SECTION>
            <section><h2>Numbers</h2><ul><li>Apples up 10%</li><li>Pears <em>flat</em></li></ul>
              <p>ignored when a list exists</p><img src='chart.png' alt="c"><img alt=x src="/mnt/okcomputer/b.gif"></section>
            <sectionx>not a slide</sectionx>"#;
        let deck = parse_deck(html);
        assert_eq!(deck.len(), 2);
        assert_eq!(deck[0].title, "Fruit & Co");
        assert_eq!(
            text_of("It&#8217;s &#x2014; &amp;amp; &bogus; &"),
            "It\u{2019}s \u{2014} &amp; &bogus; &"
        );
        assert_eq!(
            text_of("&€€€€€€€€€€;x &#x110000; &#99999999999;"),
            "&€€€€€€€€€€;x &#x110000; &#99999999999;"
        );
        assert_eq!(deck[0].bullets, ["Quarterly report"]);
        assert_eq!(deck[1].bullets, ["Apples up 10%", "Pears flat"]);
        assert_eq!(deck[1].images, ["chart.png", "/mnt/okcomputer/b.gif"]);
    }
}
