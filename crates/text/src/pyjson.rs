//! JSON text exactly as Python's `json.dumps` writes it, which is what transformers' `tojson`
//! filter produces inside chat templates.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, Formatter, Serializer};

/// Options of `json.dumps` that chat templates use.
#[derive(Debug, Clone, Default)]
pub struct DumpOptions {
    /// `indent=`: pretty-print with this many spaces per level.
    pub indent: Option<usize>,
    /// `ensure_ascii=`: escape every non-ASCII character as `\uXXXX` (transformers passes False).
    pub ensure_ascii: bool,
    /// `separators=`: item and key separators; Python's defaults when absent.
    pub separators: Option<(String, String)>,
}

/// A serde_json formatter that writes Python's separators and escaping.
struct PyFormatter {
    indent: Option<Vec<u8>>,
    level: usize,
    has_value: bool,
    item_sep: Vec<u8>,
    key_sep: Vec<u8>,
    ensure_ascii: bool,
}

impl PyFormatter {
    fn newline_indent<W: ?Sized + io::Write>(&self, w: &mut W) -> io::Result<()> {
        if let Some(ind) = &self.indent {
            w.write_all(b"\n")?;
            for _ in 0..self.level {
                w.write_all(ind)?;
            }
        }
        Ok(())
    }

    fn begin_item<W: ?Sized + io::Write>(&mut self, w: &mut W, first: bool) -> io::Result<()> {
        if !first {
            w.write_all(&self.item_sep)?;
        }
        self.newline_indent(w)
    }

    fn end_container<W: ?Sized + io::Write>(&mut self, w: &mut W, close: &[u8]) -> io::Result<()> {
        self.level -= 1;
        if self.has_value {
            self.newline_indent(w)?;
        }
        w.write_all(close)
    }
}

impl Formatter for PyFormatter {
    fn begin_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(b"[")
    }
    fn end_array<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.end_container(w, b"]")
    }
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.begin_item(w, first)
    }
    fn end_array_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn begin_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.level += 1;
        self.has_value = false;
        w.write_all(b"{")
    }
    fn end_object<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        self.end_container(w, b"}")
    }
    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        self.begin_item(w, first)
    }
    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(&self.key_sep)
    }
    fn end_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.has_value = true;
        Ok(())
    }
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if !self.ensure_ascii || fragment.is_ascii() {
            return w.write_all(fragment.as_bytes());
        }
        let mut buf = [0u16; 2];
        for c in fragment.chars() {
            if c.is_ascii() {
                w.write_all(&[c as u8])?;
            } else {
                for unit in c.encode_utf16(&mut buf) {
                    write!(w, "\\u{unit:04x}")?;
                }
            }
        }
        Ok(())
    }
    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        escape: CharEscape,
    ) -> io::Result<()> {
        // Python writes control characters as lowercase \u00XX, like serde, except \b and \f
        // which serde also shortens: both agree, so only the casing of hex needs care.
        match escape {
            CharEscape::AsciiControl(b) => write!(w, "\\u{b:04x}"),
            other => serde_json::ser::CompactFormatter.write_char_escape(w, other),
        }
    }
    fn write_f64<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f64) -> io::Result<()> {
        w.write_all(python_float(value).as_bytes())
    }
    fn write_f32<W: ?Sized + io::Write>(&mut self, w: &mut W, value: f32) -> io::Result<()> {
        self.write_f64(w, value.into())
    }
}

/// Python's `repr(float)`: shortest round-trip digits, always with a fraction or exponent.
fn python_float(v: f64) -> String {
    if v.is_nan() {
        return "NaN".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "Infinity".into()
        } else {
            "-Infinity".into()
        };
    }
    let abs = v.abs();
    if abs != 0.0 && !(1e-4..1e16).contains(&abs) {
        // Python switches to exponent form outside [1e-4, 1e16) and writes e+XX / e-XX.
        let s = format!("{v:e}");
        let (mant, exp) = s.split_once('e').unwrap_or((&s, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        let sign = if exp < 0 { '-' } else { '+' };
        return format!("{mant}e{sign}{:02}", exp.abs());
    }
    let s = format!("{v}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// Serializes `value` as `json.dumps(value, **opts)` would.
pub fn dumps<T: Serialize + ?Sized>(
    value: &T,
    opts: &DumpOptions,
) -> Result<String, serde_json::Error> {
    let (item_sep, key_sep) = match &opts.separators {
        Some((i, k)) => (i.clone(), k.clone()),
        // Python drops the space after commas when indenting, to avoid trailing spaces.
        None if opts.indent.is_some() => (",".into(), ": ".into()),
        None => (", ".into(), ": ".into()),
    };
    let fmt = PyFormatter {
        indent: opts.indent.map(|n| vec![b' '; n]),
        level: 0,
        has_value: false,
        item_sep: item_sep.into_bytes(),
        key_sep: key_sep.into_bytes(),
        ensure_ascii: opts.ensure_ascii,
    };
    let mut out = Vec::new();
    let mut ser = Serializer::with_formatter(&mut out, fmt);
    value.serialize(&mut ser)?;
    // Every byte written came from &str fragments or ASCII, so this cannot fail.
    Ok(String::from_utf8_lossy(&out).into_owned())
}
