//! Writing the deck as Office Open XML by hand: one master, one layout, one theme, a slide per
//! slide of the HTML with its title, bullets (indented by level), tables (`table.rs`) and
//! pictures placed on the right, and a notes slide for its speaker notes (`notes.rs`).

use std::io::Write;

use zip::write::SimpleFileOptions;

use super::{Picture, SlideSpec};
use notes::{notes_master, notes_slide};
use table::table_frame;

mod notes;
mod table;

/// Slide size in EMU (13.333 x 7.5 in, 16:9).
const SLIDE_W: i64 = 12_192_000;
const SLIDE_H: i64 = 6_858_000;
const MARGIN: i64 = 457_200;

pub(super) fn escape(text: &str) -> String {
    text.chars()
        .filter(|c| (!c.is_control() || *c == '\t') && !matches!(*c, '\u{FFFE}' | '\u{FFFF}'))
        .collect::<String>()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(super) const NS: &str = r#"xmlns:a="http://schemas.openxmlformats.org/drawingml/2006/main" xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships" xmlns:p="http://schemas.openxmlformats.org/presentationml/2006/main""#;
const REL: &str = "http://schemas.openxmlformats.org/officeDocument/2006/relationships";
pub(super) const HEADER: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n";
pub(super) const EMPTY_TREE: &str = r#"<p:nvGrpSpPr><p:cNvPr id="1" name=""/><p:cNvGrpSpPr/><p:nvPr/></p:nvGrpSpPr><p:grpSpPr><a:xfrm><a:off x="0" y="0"/><a:ext cx="0" cy="0"/><a:chOff x="0" y="0"/><a:chExt cx="0" cy="0"/></a:xfrm></p:grpSpPr>"#;

/// A relationships part from `(id, type, target)` entries.
fn relationships(entries: &[(String, String, String)]) -> String {
    let mut xml = format!(
        "{HEADER}<Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">"
    );
    for (id, kind, target) in entries {
        xml.push_str(&format!(
            "<Relationship Id=\"{id}\" Type=\"{kind}\" Target=\"{target}\"/>"
        ));
    }
    xml.push_str("</Relationships>");
    xml
}

fn content_types(slides: usize, extensions: &[&str], notes: &[usize]) -> String {
    let mut xml = format!(
        "{HEADER}<Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
         <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
         <Default Extension=\"xml\" ContentType=\"application/xml\"/>"
    );
    for extension in extensions {
        let mime = match *extension {
            "jpeg" => "image/jpeg",
            "gif" => "image/gif",
            _ => "image/png",
        };
        xml.push_str(&format!(
            "<Default Extension=\"{extension}\" ContentType=\"{mime}\"/>"
        ));
    }
    let pml = "application/vnd.openxmlformats-officedocument.presentationml";
    xml.push_str(&format!(
        "<Override PartName=\"/ppt/presentation.xml\" ContentType=\"{pml}.presentation.main+xml\"/>\
         <Override PartName=\"/ppt/slideMasters/slideMaster1.xml\" ContentType=\"{pml}.slideMaster+xml\"/>\
         <Override PartName=\"/ppt/slideLayouts/slideLayout1.xml\" ContentType=\"{pml}.slideLayout+xml\"/>\
         <Override PartName=\"/ppt/theme/theme1.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.theme+xml\"/>\
         <Override PartName=\"/docProps/core.xml\" ContentType=\"application/vnd.openxmlformats-package.core-properties+xml\"/>\
         <Override PartName=\"/docProps/app.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.extended-properties+xml\"/>"
    ));
    for n in 1..=slides {
        xml.push_str(&format!(
            "<Override PartName=\"/ppt/slides/slide{n}.xml\" ContentType=\"{pml}.slide+xml\"/>"
        ));
    }
    if !notes.is_empty() {
        xml.push_str(&format!(
            "<Override PartName=\"/ppt/notesMasters/notesMaster1.xml\" ContentType=\"{pml}.notesMaster+xml\"/>\
             <Override PartName=\"/ppt/theme/theme2.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.theme+xml\"/>"
        ));
    }
    for n in notes {
        xml.push_str(&format!(
            "<Override PartName=\"/ppt/notesSlides/notesSlide{n}.xml\" ContentType=\"{pml}.notesSlide+xml\"/>"
        ));
    }
    xml.push_str("</Types>");
    xml
}

/// `notes_master`: the relationship id of the notes master, when there is one.
fn presentation(slides: usize, notes_master: Option<&str>) -> String {
    let ids: String = (1..=slides)
        .map(|n| format!("<p:sldId id=\"{}\" r:id=\"rId{}\"/>", 255 + n, n + 2))
        .collect();
    let notes = notes_master.map_or(String::new(), |rel| {
        format!("<p:notesMasterIdLst><p:notesMasterId r:id=\"{rel}\"/></p:notesMasterIdLst>")
    });
    format!(
        "{HEADER}<p:presentation {NS} saveSubsetFonts=\"1\">\
         <p:sldMasterIdLst><p:sldMasterId id=\"2147483648\" r:id=\"rId1\"/></p:sldMasterIdLst>{notes}\
         <p:sldIdLst>{ids}</p:sldIdLst>\
         <p:sldSz cx=\"{SLIDE_W}\" cy=\"{SLIDE_H}\"/><p:notesSz cx=\"6858000\" cy=\"9144000\"/>\
         <p:defaultTextStyle><a:defPPr><a:defRPr lang=\"en-US\"/></a:defPPr>{}</p:defaultTextStyle>\
         </p:presentation>",
        level_one(1800, "mn")
    )
}

fn master() -> String {
    format!(
        "{HEADER}<p:sldMaster {NS}><p:cSld><p:bg><p:bgRef idx=\"1001\"><a:schemeClr val=\"bg1\"/></p:bgRef></p:bg>\
         <p:spTree>{EMPTY_TREE}</p:spTree></p:cSld>\
         <p:clrMap bg1=\"lt1\" tx1=\"dk1\" bg2=\"lt2\" tx2=\"dk2\" accent1=\"accent1\" accent2=\"accent2\" accent3=\"accent3\" \
         accent4=\"accent4\" accent5=\"accent5\" accent6=\"accent6\" hlink=\"hlink\" folHlink=\"folHlink\"/>\
         <p:sldLayoutIdLst><p:sldLayoutId id=\"2147483649\" r:id=\"rId1\"/></p:sldLayoutIdLst>\
         <p:txStyles><p:titleStyle>{}</p:titleStyle><p:bodyStyle>{}</p:bodyStyle><p:otherStyle>{}</p:otherStyle></p:txStyles></p:sldMaster>",
        level_one(3600, "mj"),
        level_one(2000, "mn"),
        level_one(1800, "mn"),
    )
}

/// First-level text defaults of a master text style (`font`: `mj` headings, `mn` body).
fn level_one(size: u32, font: &str) -> String {
    format!(
        "<a:lvl1pPr><a:defRPr sz=\"{size}\"><a:solidFill><a:schemeClr val=\"tx1\"/></a:solidFill>\
         <a:latin typeface=\"+{font}-lt\"/><a:ea typeface=\"+{font}-ea\"/><a:cs typeface=\"+{font}-cs\"/></a:defRPr></a:lvl1pPr>"
    )
}

fn layout() -> String {
    format!(
        "{HEADER}<p:sldLayout {NS} type=\"blank\" preserve=\"1\"><p:cSld name=\"Blank\">\
         <p:spTree>{EMPTY_TREE}</p:spTree></p:cSld><p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sldLayout>"
    )
}

fn theme() -> String {
    let solid = |c: &str| format!("<a:solidFill><a:schemeClr val=\"{c}\"/></a:solidFill>");
    let line = |w: u32| {
        format!("<a:ln w=\"{w}\"><a:solidFill><a:schemeClr val=\"phClr\"/></a:solidFill></a:ln>")
    };
    let fonts = |face: &str| {
        format!("<a:latin typeface=\"{face}\"/><a:ea typeface=\"\"/><a:cs typeface=\"\"/>")
    };
    format!(
        "{HEADER}<a:theme xmlns:a=\"http://schemas.openxmlformats.org/drawingml/2006/main\" name=\"OKCVM\"><a:themeElements>\
         <a:clrScheme name=\"OKCVM\"><a:dk1><a:srgbClr val=\"1F2937\"/></a:dk1><a:lt1><a:srgbClr val=\"FFFFFF\"/></a:lt1>\
         <a:dk2><a:srgbClr val=\"1E3A5F\"/></a:dk2><a:lt2><a:srgbClr val=\"F3F4F6\"/></a:lt2>\
         <a:accent1><a:srgbClr val=\"2563EB\"/></a:accent1><a:accent2><a:srgbClr val=\"16A34A\"/></a:accent2>\
         <a:accent3><a:srgbClr val=\"F59E0B\"/></a:accent3><a:accent4><a:srgbClr val=\"DC2626\"/></a:accent4>\
         <a:accent5><a:srgbClr val=\"7C3AED\"/></a:accent5><a:accent6><a:srgbClr val=\"0891B2\"/></a:accent6>\
         <a:hlink><a:srgbClr val=\"2563EB\"/></a:hlink><a:folHlink><a:srgbClr val=\"7C3AED\"/></a:folHlink></a:clrScheme>\
         <a:fontScheme name=\"OKCVM\"><a:majorFont>{major}</a:majorFont><a:minorFont>{minor}</a:minorFont></a:fontScheme>\
         <a:fmtScheme name=\"OKCVM\"><a:fillStyleLst>{f}{f}{f}</a:fillStyleLst>\
         <a:lnStyleLst>{l1}{l2}{l3}</a:lnStyleLst>\
         <a:effectStyleLst><a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst/></a:effectStyle><a:effectStyle><a:effectLst/></a:effectStyle></a:effectStyleLst>\
         <a:bgFillStyleLst>{f}{f}{f}</a:bgFillStyleLst></a:fmtScheme></a:themeElements>\
         <a:objectDefaults/><a:extraClrSchemeLst/></a:theme>",
        major = fonts("Calibri Light"),
        minor = fonts("Calibri"),
        f = solid("phClr"),
        l1 = line(6350),
        l2 = line(12700),
        l3 = line(19050),
    )
}

fn text_box(id: u32, name: &str, (x, y, w, h): (i64, i64, i64, i64), paragraphs: &str) -> String {
    format!(
        "<p:sp><p:nvSpPr><p:cNvPr id=\"{id}\" name=\"{name}\"/><p:cNvSpPr txBox=\"1\"/><p:nvPr/></p:nvSpPr>\
         <p:spPr><a:xfrm><a:off x=\"{x}\" y=\"{y}\"/><a:ext cx=\"{w}\" cy=\"{h}\"/></a:xfrm><a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom><a:noFill/></p:spPr>\
         <p:txBody><a:bodyPr wrap=\"square\" lIns=\"91440\" tIns=\"45720\" rIns=\"91440\" bIns=\"45720\" anchor=\"t\"><a:normAutofit/></a:bodyPr><a:lstStyle/>{paragraphs}</p:txBody></p:sp>"
    )
}

fn slide_xml(spec: &SlideSpec, pictures: &[(String, &Picture)]) -> String {
    let with_pictures = !pictures.is_empty();
    let width = SLIDE_W - 2 * MARGIN;
    let text_width = if with_pictures {
        width / 2 - MARGIN / 2
    } else {
        width
    };
    let title_size = if spec.title.chars().count() > 60 {
        2800
    } else {
        3600
    };
    let title = format!(
        "<a:p><a:r><a:rPr lang=\"en-US\" sz=\"{title_size}\" b=\"1\"><a:solidFill><a:schemeClr val=\"tx2\"/></a:solidFill></a:rPr><a:t>{}</a:t></a:r></a:p>",
        escape(&spec.title)
    );
    let mut shapes = text_box(2, "Title", (MARGIN, 342_900, width, 1_028_700), &title);
    // The body area: bullets on top, tables below them (sharing what is left).
    let (body_top, body_h) = (1_485_900, 4_914_900);
    let bullets_h = match (spec.bullets.is_empty(), spec.tables.is_empty()) {
        (true, _) => 0,
        (false, true) => body_h,
        (false, false) => body_h * 2 / 5,
    };
    if !spec.bullets.is_empty() {
        let size = match spec.bullets.len() {
            0..=5 => 2200,
            6..=8 => 1800,
            _ => 1500,
        };
        let paragraphs: String = spec
            .bullets
            .iter()
            .map(|bullet| {
                let level = i64::from(bullet.level);
                let (size, mark) = if level == 0 { (size, "&#8226;") } else { (size - 200, "&#8211;") };
                format!(
                    "<a:p><a:pPr marL=\"{}\" lvl=\"{level}\" indent=\"-342900\"><a:spcBef><a:spcPts val=\"600\"/></a:spcBef><a:buFont typeface=\"Arial\"/><a:buChar char=\"{mark}\"/></a:pPr>\
                     <a:r><a:rPr lang=\"en-US\" sz=\"{size}\"><a:solidFill><a:schemeClr val=\"tx1\"/></a:solidFill></a:rPr><a:t>{}</a:t></a:r></a:p>",
                    342_900 * (level + 1),
                    escape(&bullet.text)
                )
            })
            .collect();
        shapes.push_str(&text_box(
            3,
            "Body",
            (MARGIN, body_top, text_width, bullets_h),
            &paragraphs,
        ));
    }
    if !spec.tables.is_empty() {
        let top = body_top + bullets_h;
        let slot_h = (body_h - bullets_h) / spec.tables.len() as i64;
        for (i, rows) in spec.tables.iter().enumerate() {
            let y = top + slot_h * i as i64;
            shapes.push_str(&table_frame(
                30 + i as u32,
                (MARGIN, y, text_width, slot_h - 91_440),
                rows,
            ));
        }
    }
    if with_pictures {
        let area_x = MARGIN + text_width + MARGIN;
        let area_w = SLIDE_W - MARGIN - area_x;
        let area_top = 1_485_900;
        let slot_h = 4_914_900 / pictures.len() as i64;
        for (i, (rel, picture)) in pictures.iter().enumerate() {
            let scale = f64::min(
                area_w as f64 / picture.width.max(1) as f64,
                (slot_h - 91_440) as f64 / picture.height.max(1) as f64,
            );
            let (w, h) = (
                (picture.width as f64 * scale) as i64,
                (picture.height as f64 * scale) as i64,
            );
            let x = area_x + (area_w - w) / 2;
            let y = area_top + slot_h * i as i64 + (slot_h - h) / 2;
            let id = 10 + i;
            shapes.push_str(&format!(
                "<p:pic><p:nvPicPr><p:cNvPr id=\"{id}\" name=\"Picture {id}\"/><p:cNvPicPr><a:picLocks noChangeAspect=\"1\"/></p:cNvPicPr><p:nvPr/></p:nvPicPr>\
                 <p:blipFill><a:blip r:embed=\"{rel}\"/><a:stretch><a:fillRect/></a:stretch></p:blipFill>\
                 <p:spPr><a:xfrm><a:off x=\"{x}\" y=\"{y}\"/><a:ext cx=\"{w}\" cy=\"{h}\"/></a:xfrm><a:prstGeom prst=\"rect\"><a:avLst/></a:prstGeom></p:spPr></p:pic>"
            ));
        }
    }
    format!(
        "{HEADER}<p:sld {NS}><p:cSld><p:spTree>{EMPTY_TREE}{shapes}</p:spTree></p:cSld>\
         <p:clrMapOvr><a:masterClrMapping/></p:clrMapOvr></p:sld>"
    )
}

/// The whole .pptx file.
pub(super) fn build_pptx(
    slides: &[SlideSpec],
    pictures: &[Vec<Picture>],
    title: &str,
) -> zip::result::ZipResult<Vec<u8>> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let mut put = |name: &str, data: &[u8]| -> zip::result::ZipResult<()> {
        zip.start_file(name, options)?;
        zip.write_all(data)?;
        Ok(())
    };
    let mut extensions: Vec<&str> = pictures.iter().flatten().map(|p| p.extension).collect();
    extensions.sort_unstable();
    extensions.dedup();
    let with_notes: Vec<usize> = (1..=slides.len())
        .filter(|n| !slides[n - 1].notes.is_empty())
        .collect();
    put(
        "[Content_Types].xml",
        content_types(slides.len(), &extensions, &with_notes).as_bytes(),
    )?;
    put(
        "_rels/.rels",
        relationships(&[
            ("rId1".into(), format!("{REL}/officeDocument"), "ppt/presentation.xml".into()),
            (
                "rId2".into(),
                "http://schemas.openxmlformats.org/package/2006/relationships/metadata/core-properties".into(),
                "docProps/core.xml".into(),
            ),
            ("rId3".into(), format!("{REL}/extended-properties"), "docProps/app.xml".into()),
        ])
        .as_bytes(),
    )?;
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
    put(
        "docProps/core.xml",
        format!(
            "{HEADER}<cp:coreProperties xmlns:cp=\"http://schemas.openxmlformats.org/package/2006/metadata/core-properties\" \
             xmlns:dc=\"http://purl.org/dc/elements/1.1/\" xmlns:dcterms=\"http://purl.org/dc/terms/\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"><dc:title>{}</dc:title><dc:creator>OKCVM</dc:creator>\
             <dcterms:created xsi:type=\"dcterms:W3CDTF\">{now}</dcterms:created><dcterms:modified xsi:type=\"dcterms:W3CDTF\">{now}</dcterms:modified></cp:coreProperties>",
            escape(title)
        )
        .as_bytes(),
    )?;
    put(
        "docProps/app.xml",
        format!(
            "{HEADER}<Properties xmlns=\"http://schemas.openxmlformats.org/officeDocument/2006/extended-properties\">\
             <Application>OKCVM</Application><Slides>{}</Slides></Properties>",
            slides.len()
        )
        .as_bytes(),
    )?;
    let notes_master_rel = format!("rId{}", slides.len() + 3);
    put(
        "ppt/presentation.xml",
        presentation(
            slides.len(),
            (!with_notes.is_empty()).then_some(notes_master_rel.as_str()),
        )
        .as_bytes(),
    )?;
    let mut presentation_rels = vec![
        (
            "rId1".to_string(),
            format!("{REL}/slideMaster"),
            "slideMasters/slideMaster1.xml".to_string(),
        ),
        (
            "rId2".to_string(),
            format!("{REL}/theme"),
            "theme/theme1.xml".to_string(),
        ),
    ];
    for n in 1..=slides.len() {
        presentation_rels.push((
            format!("rId{}", n + 2),
            format!("{REL}/slide"),
            format!("slides/slide{n}.xml"),
        ));
    }
    if !with_notes.is_empty() {
        presentation_rels.push((
            notes_master_rel.clone(),
            format!("{REL}/notesMaster"),
            "notesMasters/notesMaster1.xml".to_string(),
        ));
        put(
            "ppt/notesMasters/notesMaster1.xml",
            notes_master().as_bytes(),
        )?;
        put(
            "ppt/notesMasters/_rels/notesMaster1.xml.rels",
            relationships(&[(
                "rId1".into(),
                format!("{REL}/theme"),
                "../theme/theme2.xml".into(),
            )])
            .as_bytes(),
        )?;
        put("ppt/theme/theme2.xml", theme().as_bytes())?;
    }
    put(
        "ppt/_rels/presentation.xml.rels",
        relationships(&presentation_rels).as_bytes(),
    )?;
    put("ppt/slideMasters/slideMaster1.xml", master().as_bytes())?;
    put(
        "ppt/slideMasters/_rels/slideMaster1.xml.rels",
        relationships(&[
            (
                "rId1".into(),
                format!("{REL}/slideLayout"),
                "../slideLayouts/slideLayout1.xml".into(),
            ),
            (
                "rId2".into(),
                format!("{REL}/theme"),
                "../theme/theme1.xml".into(),
            ),
        ])
        .as_bytes(),
    )?;
    put("ppt/slideLayouts/slideLayout1.xml", layout().as_bytes())?;
    put(
        "ppt/slideLayouts/_rels/slideLayout1.xml.rels",
        relationships(&[(
            "rId1".into(),
            format!("{REL}/slideMaster"),
            "../slideMasters/slideMaster1.xml".into(),
        )])
        .as_bytes(),
    )?;
    put("ppt/theme/theme1.xml", theme().as_bytes())?;
    let mut media_number = 0;
    for (n, (spec, slide_pictures)) in slides.iter().zip(pictures).enumerate() {
        let n = n + 1;
        let mut rels = vec![(
            "rId1".to_string(),
            format!("{REL}/slideLayout"),
            "../slideLayouts/slideLayout1.xml".to_string(),
        )];
        let mut placed = Vec::new();
        for picture in slide_pictures {
            media_number += 1;
            let name = format!("image{media_number}.{}", picture.extension);
            put(&format!("ppt/media/{name}"), &picture.data)?;
            let rel = format!("rId{}", rels.len() + 1);
            rels.push((
                rel.clone(),
                format!("{REL}/image"),
                format!("../media/{name}"),
            ));
            placed.push((rel, picture));
        }
        if !spec.notes.is_empty() {
            rels.push((
                format!("rId{}", rels.len() + 1),
                format!("{REL}/notesSlide"),
                format!("../notesSlides/notesSlide{n}.xml"),
            ));
            put(
                &format!("ppt/notesSlides/notesSlide{n}.xml"),
                notes_slide(&spec.notes).as_bytes(),
            )?;
            put(
                &format!("ppt/notesSlides/_rels/notesSlide{n}.xml.rels"),
                relationships(&[
                    (
                        "rId1".into(),
                        format!("{REL}/notesMaster"),
                        "../notesMasters/notesMaster1.xml".into(),
                    ),
                    (
                        "rId2".into(),
                        format!("{REL}/slide"),
                        format!("../slides/slide{n}.xml"),
                    ),
                ])
                .as_bytes(),
            )?;
        }
        put(
            &format!("ppt/slides/slide{n}.xml"),
            slide_xml(spec, &placed).as_bytes(),
        )?;
        put(
            &format!("ppt/slides/_rels/slide{n}.xml.rels"),
            relationships(&rels).as_bytes(),
        )?;
    }
    Ok(zip.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_package_holds_every_part_it_names() {
        let specs = vec![
            SlideSpec {
                title: "A <b>".into(),
                bullets: vec![super::super::Bullet {
                    text: "x & y".into(),
                    level: 1,
                }],
                tables: vec![vec![vec!["h".into(), "i".into()], vec!["1".into()]]],
                notes: "say <this>".into(),
                ..SlideSpec::default()
            },
            SlideSpec {
                title: "B".into(),
                ..SlideSpec::default()
            },
        ];
        let picture = Picture {
            data: vec![0x89, b'P', b'N', b'G'],
            extension: "png",
            width: 10,
            height: 5,
        };
        let bytes = build_pptx(&specs, &[vec![], vec![picture]], "Deck").unwrap();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        let names: Vec<String> = archive
            .file_names()
            .map(|name| name.unwrap().into_owned())
            .collect();
        for part in [
            "[Content_Types].xml",
            "ppt/presentation.xml",
            "ppt/slides/slide2.xml",
            "ppt/slides/_rels/slide2.xml.rels",
            "ppt/media/image1.png",
            "ppt/theme/theme1.xml",
            "ppt/notesSlides/notesSlide1.xml",
            "ppt/notesMasters/notesMaster1.xml",
        ] {
            assert!(
                names.iter().any(|n| n == part),
                "{part} missing from {names:?}"
            );
        }
        let mut slide = String::new();
        std::io::Read::read_to_string(
            &mut archive.by_name("ppt/slides/slide1.xml").unwrap(),
            &mut slide,
        )
        .unwrap();
        assert!(
            slide.contains("<a:t>A &lt;b&gt;</a:t>") && slide.contains("<a:t>x &amp; y</a:t>"),
            "{slide}"
        );
        assert!(
            slide.contains("lvl=\"1\"") && slide.contains("<a:tbl>"),
            "{slide}"
        );
        // The short second row is padded to the two columns of the grid.
        assert_eq!(slide.matches("<a:tc>").count(), 4, "{slide}");
        assert!(!names.iter().any(|n| n.contains("notesSlide2")));
    }
}
