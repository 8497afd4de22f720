//! Turning byte spans into lines and field paths, and field paths into lines.

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a field path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A dotted field path such as `links[3].sizing.ratio`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// The root.
    pub fn root() -> Self {
        Self(Vec::new())
    }

    /// This path and a key.
    pub fn key(&self, key: &str) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Key(key.to_owned()));
        Self(segs)
    }

    /// This path and an index.
    pub fn index(&self, index: usize) -> Self {
        let mut segs = self.0.clone();
        segs.push(Seg::Index(index));
        Self(segs)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Key(key) if i == 0 => write!(f, "{key}")?,
                Seg::Key(key) if key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') => {
                    write!(f, ".{key}")?;
                }
                Seg::Key(key) => write!(f, ".\"{key}\"")?,
                Seg::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A parsed file that can say where things are.
pub(super) struct Located<'a> {
    text: &'a str,
    root: Spanned<DeTable<'a>>,
}

impl<'a> Located<'a> {
    pub(super) fn new(text: &'a str, root: Spanned<DeTable<'a>>) -> Self {
        Self { text, root }
    }

    /// 1-based line and column of a byte offset.
    pub(super) fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    /// The span of the deepest existing value along `path` (the parent's when a key is
    /// missing, so "missing field" errors point at the table that lacks it).
    pub(super) fn span_of(&self, path: &FieldPath) -> Range<usize> {
        let mut span = self.root.span();
        let mut table: Option<&DeTable<'_>> = Some(self.root.get_ref());
        let mut value: Option<&DeValue<'_>> = None;
        for seg in &path.0 {
            let next = match (seg, table, value) {
                (Seg::Key(key), Some(table), _) => find_key(table, key),
                (Seg::Key(key), None, Some(DeValue::Table(inner))) => find_key(inner, key),
                (Seg::Index(index), _, Some(DeValue::Array(array))) => array.get(*index),
                _ => None,
            };
            let Some(next) = next else { break };
            span = next.span();
            table = None;
            value = Some(next.get_ref());
        }
        span
    }

    /// The field path of the deepest key or value whose text contains `offset`.
    pub(super) fn path_at(&self, offset: usize) -> FieldPath {
        search_table(self.root.get_ref(), offset, &FieldPath::root()).unwrap_or_default()
    }
}

fn find_key<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Spanned<DeValue<'i>>> {
    table.iter().find(|(k, _)| k.get_ref().as_ref() == key).map(|(_, v)| v)
}

fn contains(span: &Range<usize>, offset: usize) -> bool {
    span.start <= offset && offset < span.end.max(span.start + 1)
}

// The whole tree is searched, not only the spans that contain the offset: an array-of-tables
// item (`[[links]]`) spans just its header, not the keys under it.
fn search_table(table: &DeTable<'_>, offset: usize, path: &FieldPath) -> Option<FieldPath> {
    for (key, value) in table.iter() {
        let here = path.key(key.get_ref());
        if let Some(found) = search_value(value.get_ref(), offset, &here) {
            return Some(found);
        }
        if contains(&key.span(), offset) || contains(&value.span(), offset) {
            return Some(here);
        }
    }
    None
}

fn search_value(value: &DeValue<'_>, offset: usize, path: &FieldPath) -> Option<FieldPath> {
    match value {
        DeValue::Table(table) => search_table(table, offset, path),
        DeValue::Array(array) => array.iter().enumerate().find_map(|(index, item)| {
            let here = path.index(index);
            search_value(item.get_ref(), offset, &here).or_else(|| contains(&item.span(), offset).then_some(here))
        }),
        _ => None,
    }
}
