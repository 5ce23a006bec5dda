//! Reading the deck's HTML with a real parser (html5ever, through `scraper`): each element with
//! class `ppt-slide` is a slide (every outermost `<section>` when there is none). In a slide,
//! the first heading is the title, list items the bullets (nested lists one level deeper; the
//! paragraphs when there is no list), each `<table>` a table, `<img>` the pictures and
//! `<aside class="notes">` the speaker notes. The tree is walked without recursion, so no
//! nesting depth can exhaust the stack.

use ego_tree::iter::Edge;
use ego_tree::NodeRef;
use scraper::{ElementRef, Html, Node};

use super::{Bullet, SlideSpec};

/// Elements whose text is never slide text.
const HIDDEN: [&str; 4] = ["script", "style", "template", "noscript"];
/// Elements that separate words when their text is read.
const BLOCKS: [&str; 14] = [
    "p", "div", "br", "li", "td", "th", "tr", "h1", "h2", "h3", "h4", "h5", "h6", "section",
];

/// Elements without content, and elements whose end tag the parser supplies when a sibling
/// starts: neither can make the tree deeper on its own.
const NOT_NESTING: [&str; 33] = [
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "param", "source",
    "track", "wbr", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup", "rb", "rt",
    "rp", "thead", "tbody", "tfoot", "colgroup", "caption", "head", "body",
];
/// The deepest nesting accepted. html5ever's scope checks walk the stack of open elements, so
/// parsing costs grow with the square of the depth; browsers cap the depth similarly.
pub(super) const MAX_DEPTH: usize = 1000;

/// Refuses HTML nested deeper than [`MAX_DEPTH`], before it is parsed. A scan of the tags
/// (comments, `<script>` and `<style>` text skipped) gives an upper bound of the depth the
/// parser would build.
pub(super) fn check_nesting(html: &str) -> Result<(), String> {
    let lower = html.to_ascii_lowercase();
    let bytes = lower.as_bytes();
    let (mut depth, mut at) = (0usize, 0usize);
    while let Some(offset) = lower[at..].find('<') {
        let start = at + offset;
        let rest = &lower[start..];
        if rest.starts_with("<!--") {
            at = rest.find("-->").map_or(lower.len(), |end| start + end + 3);
            continue;
        }
        let closing = rest.starts_with("</");
        let name_start = start + if closing { 2 } else { 1 };
        if name_start >= lower.len() {
            break;
        }
        let name_end = bytes[name_start..]
            .iter()
            .position(|b| !b.is_ascii_alphanumeric())
            .map_or(lower.len(), |n| name_start + n);
        let name = &lower[name_start..name_end];
        let tag_end = lower[name_end..]
            .find('>')
            .map_or(lower.len(), |n| name_end + n);
        at = (tag_end + 1).min(lower.len());
        if name.is_empty() || !bytes[name_start].is_ascii_alphabetic() {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(usize::from(!NOT_NESTING.contains(&name)));
        } else if matches!(name, "script" | "style") {
            let end = format!("</{name}");
            at = lower[at..].find(&end).map_or(lower.len(), |n| at + n);
        } else if !NOT_NESTING.contains(&name) && !lower[..tag_end].ends_with('/') {
            depth += 1;
            if depth > MAX_DEPTH {
                return Err(format!(
                    "the HTML nests elements more than {MAX_DEPTH} deep; close your tags or \
                     flatten the markup"
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn parse_deck(html: &str) -> Vec<SlideSpec> {
    let document = Html::parse_document(html);
    let root = document.root_element();
    let mut slides: Vec<ElementRef> = elements(root)
        .filter(|e| e.value().classes().any(|c| c == "ppt-slide"))
        .collect();
    if slides.is_empty() {
        slides = elements(root).filter(|e| is(e, "section")).collect();
    }
    let outermost: Vec<ElementRef> = slides
        .iter()
        .filter(|slide| {
            !slide
                .ancestors()
                .any(|a| slides.iter().any(|other| other.id() == a.id()))
        })
        .copied()
        .collect();
    outermost.into_iter().map(read_slide).collect()
}

fn read_slide(slide: ElementRef) -> SlideSpec {
    // What the slide shows: not its notes, and not what is inside its tables.
    let shown = |e: &ElementRef| !within(e, slide, |a| is_notes(a) || is(a, "table"));
    let title = elements(slide)
        .filter(|e| matches!(e.value().name(), "h1" | "h2" | "h3") && shown(e))
        .map(|e| text_of(e, false))
        .find(|t| !t.is_empty())
        .unwrap_or_default();
    let mut bullets: Vec<Bullet> = elements(slide)
        .filter(|e| is(e, "li") && shown(e))
        .map(|item| Bullet {
            level: ancestors_within(item, slide)
                .filter(|a| matches!(a.value().name(), "ul" | "ol"))
                .count()
                .saturating_sub(1)
                .min(4) as u8,
            text: text_of(item, true),
        })
        .filter(|b| !b.text.is_empty())
        .collect();
    if bullets.is_empty() {
        bullets = elements(slide)
            .filter(|e| is(e, "p") && shown(e))
            .map(|p| Bullet {
                level: 0,
                text: text_of(p, false),
            })
            .filter(|b| !b.text.is_empty() && b.text != title)
            .collect();
    }
    let tables = elements(slide)
        .filter(|e| is(e, "table") && shown(e))
        .map(read_table)
        .filter(|rows| !rows.is_empty())
        .collect();
    let images = elements(slide)
        .filter(|e| is(e, "img") && !within(e, slide, is_notes))
        .filter_map(|img| img.value().attr("src").map(str::to_string))
        .collect();
    let notes = elements(slide)
        .filter(is_notes)
        .map(|aside| text_of(aside, false))
        .filter(|t| !t.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    SlideSpec {
        title,
        bullets,
        tables,
        images,
        notes,
    }
}

/// The rows of `table` (not of tables inside it), each the text of its cells.
fn read_table(table: ElementRef) -> Vec<Vec<String>> {
    elements(table)
        .filter(|e| is(e, "tr") && nearest_table(*e).is_some_and(|t| t.id() == table.id()))
        .map(|row| {
            row.children()
                .filter_map(ElementRef::wrap)
                .filter(|cell| matches!(cell.value().name(), "td" | "th"))
                .map(|cell| text_of(cell, false))
                .collect::<Vec<_>>()
        })
        .filter(|cells| !cells.is_empty())
        .collect()
}

fn nearest_table(element: ElementRef) -> Option<ElementRef> {
    element
        .ancestors()
        .filter_map(ElementRef::wrap)
        .find(|a| is(a, "table"))
}

fn elements(scope: ElementRef) -> impl Iterator<Item = ElementRef> {
    scope.descendants().skip(1).filter_map(ElementRef::wrap)
}

fn is(element: &ElementRef, name: &str) -> bool {
    element.value().name() == name
}

fn is_notes(element: &ElementRef) -> bool {
    is(element, "aside") && element.value().classes().any(|c| c == "notes")
}

/// The ancestors of `element` below `scope`.
fn ancestors_within<'a>(
    element: ElementRef<'a>,
    scope: ElementRef<'a>,
) -> impl Iterator<Item = ElementRef<'a>> {
    element
        .ancestors()
        .take_while(move |a| a.id() != scope.id())
        .filter_map(ElementRef::wrap)
}

/// Whether an ancestor of `element` below `scope` satisfies `test`.
fn within(element: &ElementRef, scope: ElementRef, test: impl Fn(&ElementRef) -> bool) -> bool {
    ancestors_within(*element, scope).any(|a| test(&a))
}

/// The text of `element`, whitespace collapsed; `skip_lists` leaves nested lists out (a list
/// item's own text).
fn text_of(element: ElementRef, skip_lists: bool) -> String {
    let mut out = String::new();
    // How many skipped elements the walk is inside.
    let mut skipping = 0usize;
    let skipped = |node: NodeRef<Node>| {
        node.value().as_element().is_some_and(|e| {
            HIDDEN.contains(&e.name()) || (skip_lists && matches!(e.name(), "ul" | "ol"))
        })
    };
    for edge in element.traverse() {
        match edge {
            Edge::Open(node) => {
                if skipping > 0 || skipped(node) {
                    skipping += usize::from(node.value().is_element());
                    continue;
                }
                match node.value() {
                    Node::Text(text) => out.push_str(text),
                    Node::Element(e) if BLOCKS.contains(&e.name()) => out.push(' '),
                    _ => {}
                }
            }
            Edge::Close(node) => {
                if skipping > 0 {
                    skipping -= usize::from(node.value().is_element());
                } else if node
                    .value()
                    .as_element()
                    .is_some_and(|e| BLOCKS.contains(&e.name()))
                {
                    out.push(' ');
                }
            }
        }
    }
    out.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(bullets: &[Bullet]) -> Vec<(u8, &str)> {
        bullets.iter().map(|b| (b.level, b.text.as_str())).collect()
    }

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
        assert_eq!(texts(&deck[0].bullets), [(0, "Quarterly report")]);
        assert_eq!(
            texts(&deck[1].bullets),
            [(0, "Apples up 10%"), (0, "Pears flat")]
        );
        assert_eq!(deck[1].images, ["chart.png", "/mnt/okcomputer/b.gif"]);
    }

    #[test]
    fn ppt_slides_carry_nested_bullets_tables_and_notes() {
        let html = r#"<html><body>
          <section class="wrapper">
            <div class="ppt-slide"><h1>It&#8217;s <i>Q3</i></h1>
              <ul><li>Revenue<ul><li>EU &mdash; up</li><li>US flat</li></ul></li><li>Costs</li></ul>
              <table><tr><th>Region</th><th>Sales</th></tr><tr><td>EU</td><td>12</td></tr>
                <tr><td>US<table><tr><td>inner</td></tr></table></td><td>9</td></tr></table>
              <aside class="notes">Say <b>hello</b> first.<ul><li>not a bullet</li></ul><img src="no.png"></aside>
              <script>var x = "<li>no</li>";</script>
            </div>
            <div class="ppt-slide"><h2>Second</h2><p>Only text</p></div>
          </section></body></html>"#;
        let deck = parse_deck(html);
        assert_eq!(deck.len(), 2, "the .ppt-slide elements, not the section");
        let first = &deck[0];
        assert_eq!(first.title, "It\u{2019}s Q3");
        assert_eq!(
            texts(&first.bullets),
            [
                (0, "Revenue"),
                (1, "EU \u{2014} up"),
                (1, "US flat"),
                (0, "Costs")
            ]
        );
        assert_eq!(first.tables.len(), 1);
        assert_eq!(first.tables[0][0], ["Region", "Sales"]);
        assert_eq!(first.tables[0][1], ["EU", "12"]);
        assert_eq!(first.tables[0][2], ["US inner", "9"]);
        assert_eq!(first.notes, "Say hello first. not a bullet");
        assert!(first.images.is_empty());
        assert_eq!(texts(&deck[1].bullets), [(0, "Only text")]);
    }

    #[test]
    fn deep_nesting_is_refused_before_parsing_and_sloppy_html_is_not() {
        let nested = |depth: usize| {
            format!(
                "<section><h1>Deep</h1>{}text{}</section>",
                "<div>".repeat(depth),
                "</div>".repeat(depth)
            )
        };
        assert!(check_nesting(&nested(MAX_DEPTH + 10)).is_err());
        let deep = nested(MAX_DEPTH - 10);
        assert!(check_nesting(&deep).is_ok());
        assert_eq!(
            parse_deck(&deep)[0].title,
            "Deep",
            "no recursion in the walk"
        );
        // Unclosed list items and paragraphs, void and self-closed elements, comments and
        // scripts do not count.
        let sloppy = format!(
            "<section><ul>{}</ul>{}<!-- {} --><script>{}</script><div/></section>",
            "<li>item<br><img src=x.png>".repeat(3000),
            "<p>para".repeat(3000),
            "<div>".repeat(3000),
            "if (a <b) {}".repeat(3000),
        );
        assert!(check_nesting(&sloppy).is_ok());
        for cut in ["<", "</", "<div", "<!--", "<script>", "a < b"] {
            assert!(check_nesting(cut).is_ok(), "{cut}");
        }
    }
}
