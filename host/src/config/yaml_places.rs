//! Where each node of a YAML document is, by its path (`[3].url_path`,
//! `[0].metadata_fields[1]`): serde reads the values, this says where a problem
//! found in them is, to the line and column.

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// A node's place: its key's (for a mapping's value) and its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Place {
    /// Line and column (1-based) of its key, if it is a mapping's value.
    pub key: Option<(usize, usize)>,
    /// Line and column (1-based) of the node itself.
    pub value: (usize, usize),
    /// Whether it is a quoted scalar (its text starts one column further).
    pub quoted: bool,
}

/// The places of a document's nodes.
#[derive(Debug, Default)]
pub(crate) struct Places(HashMap<String, Place>);

impl Places {
    /// Reads `text`; a document that does not scan has no places.
    pub(crate) fn of(text: &str) -> Self {
        let mut walk = Walk::default();
        let _ = Parser::new_from_str(text).load(&mut walk, false);
        walk.places
    }

    /// Where the node at `path` is, if the document has it.
    pub(crate) fn get(&self, path: &str) -> Option<Place> {
        self.0.get(path).copied()
    }

    /// The nearest place for `path`: its own, else its closest ancestor's.
    pub(crate) fn nearest(&self, path: &str) -> Option<Place> {
        let mut path = path;
        loop {
            if let Some(place) = self.get(path) {
                return Some(place);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

enum Frame {
    Sequence { path: String, next: usize },
    Mapping { path: String, key: Option<(String, (usize, usize))>, keys: usize },
}

#[derive(Default)]
struct Walk {
    stack: Vec<Frame>,
    places: Places,
}

fn at(mark: Marker) -> (usize, usize) {
    (mark.line(), mark.col() + 1)
}

impl Walk {
    /// The path and key place of the node starting now, advancing its parent.
    fn next_node(&mut self) -> (String, Option<(usize, usize)>) {
        match self.stack.last_mut() {
            None => (String::new(), None),
            Some(Frame::Sequence { path, next }) => {
                let node = format!("{path}[{next}]");
                *next += 1;
                (node, None)
            }
            Some(Frame::Mapping { path, key, .. }) => {
                let (name, key_at) = key.take().unwrap_or_default();
                let node = if path.is_empty() { name } else { format!("{path}.{name}") };
                (node, Some(key_at))
            }
        }
    }

    fn awaiting_key(&self) -> bool {
        matches!(self.stack.last(), Some(Frame::Mapping { key: None, .. }))
    }
}

impl MarkedEventReceiver for Walk {
    fn on_event(&mut self, event: Event, mark: Marker) {
        match event {
            Event::Scalar(text, ..) if self.awaiting_key() => {
                if let Some(Frame::Mapping { path, key, keys }) = self.stack.last_mut() {
                    // A block mapping's own mark is at its first key's `:`; its first
                    // key is where it starts.
                    if *keys == 0 {
                        if let Some(place) = self.places.0.get_mut(path.as_str()) {
                            place.value = at(mark);
                        }
                    }
                    *keys += 1;
                    *key = Some((text, at(mark)));
                }
            }
            Event::Scalar(_, style, ..) => {
                let (path, key) = self.next_node();
                let quoted = matches!(style, TScalarStyle::SingleQuoted | TScalarStyle::DoubleQuoted);
                self.places.0.insert(path, Place { key, value: at(mark), quoted });
            }
            Event::Alias(_) => {
                let (path, key) = self.next_node();
                self.places.0.insert(path, Place { key, value: at(mark), quoted: false });
            }
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                let (path, key) = self.next_node();
                self.places.0.insert(path.clone(), Place { key, value: at(mark), quoted: false });
                self.stack.push(match event {
                    Event::SequenceStart(..) => Frame::Sequence { path, next: 0 },
                    _ => Frame::Mapping { path, key: None, keys: 0 },
                });
            }
            Event::SequenceEnd | Event::MappingEnd => {
                self.stack.pop();
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_are_found_by_path() {
        let text = "- name: a\n  url_path: \"'/v3/' + x\"\n  metadata_fields:\n    - status\n    - 'tags | y'\n- name: b\n  extra_metadata_fields:\n    - value: name\n";
        let places = Places::of(text);
        assert_eq!(places.get("[0].name"), Some(Place { key: Some((1, 3)), value: (1, 9), quoted: false }));
        assert_eq!(places.get("[0].url_path"), Some(Place { key: Some((2, 3)), value: (2, 13), quoted: true }));
        assert_eq!(places.get("[0].metadata_fields[1]").map(|p| p.value), Some((5, 7)));
        assert_eq!(places.get("[1].extra_metadata_fields[0].value").map(|p| p.value), Some((8, 14)));
        assert_eq!(places.nearest("[1].unit").map(|p| p.value), Some((6, 3)));
        assert_eq!(places.get("[1]").map(|p| p.value), Some((6, 3)));
    }
}
