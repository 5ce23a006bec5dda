//! A slide's `<table>` as a PowerPoint table: a graphic frame holding `a:tbl`, one grid
//! column per cell of the widest row (short rows are padded), the first row bold.

use super::escape;

/// The graphic frame of shape `id` at `(x, y, w, h)` (EMU) holding `rows`.
pub(super) fn table_frame(
    id: u32,
    (x, y, w, h): (i64, i64, i64, i64),
    rows: &[Vec<String>],
) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(1).max(1);
    let column_w = w / columns as i64;
    let row_h = (h / rows.len().max(1) as i64).min(457_200);
    let size = if rows.len() > 8 || columns > 5 {
        1100
    } else {
        1400
    };
    let grid: String = (0..columns)
        .map(|_| format!("<a:gridCol w=\"{column_w}\"/>"))
        .collect();
    let mut body = String::new();
    for (r, row) in rows.iter().enumerate() {
        body.push_str(&format!("<a:tr h=\"{row_h}\">"));
        for c in 0..columns {
            let text = row.get(c).map(String::as_str).unwrap_or("");
            let bold = if r == 0 { " b=\"1\"" } else { "" };
            body.push_str(&format!(
                "<a:tc><a:txBody><a:bodyPr/><a:lstStyle/><a:p><a:r><a:rPr lang=\"en-US\" sz=\"{size}\"{bold}/>\
                 <a:t>{}</a:t></a:r></a:p></a:txBody><a:tcPr/></a:tc>",
                escape(text)
            ));
        }
        body.push_str("</a:tr>");
    }
    format!(
        "<p:graphicFrame><p:nvGraphicFramePr><p:cNvPr id=\"{id}\" name=\"Table {id}\"/>\
         <p:cNvGraphicFramePr><a:graphicFrameLocks noGrp=\"1\"/></p:cNvGraphicFramePr><p:nvPr/></p:nvGraphicFramePr>\
         <p:xfrm><a:off x=\"{x}\" y=\"{y}\"/><a:ext cx=\"{}\" cy=\"{}\"/></p:xfrm>\
         <a:graphic><a:graphicData uri=\"http://schemas.openxmlformats.org/drawingml/2006/table\">\
         <a:tbl><a:tblPr firstRow=\"1\" bandRow=\"1\"/><a:tblGrid>{grid}</a:tblGrid>{body}</a:tbl>\
         </a:graphicData></a:graphic></p:graphicFrame>",
        column_w * columns as i64,
        row_h * rows.len().max(1) as i64,
    )
}
