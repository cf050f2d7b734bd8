//! A YAML file as the editor sees it: nodes that remember the bytes they came from, their
//! quoting, their anchors, and the comments beside them. Nothing is resolved or typed; the
//! editor only reads strings and writes bytes back.

use std::collections::HashSet;
use std::ops::Range;

use granit_parser::{Event, Parser, ScalarStyle, Span, StructureStyle};

/// Deepest nesting read: far beyond real config files, short of a stack overflow.
const MAX_DEPTH: usize = 128;

#[derive(Debug)]
pub(super) enum Node {
    Scalar(Scalar),
    Map(Map),
    Seq(Seq),
    /// `*name`: the edit never follows one.
    Alias {
        range: Range<usize>,
    },
}

#[derive(Debug)]
pub(super) struct Scalar {
    pub value: String,
    pub style: ScalarStyle,
    /// Non-zero when the scalar defines an anchor.
    pub anchor: usize,
    pub range: Range<usize>,
}

#[derive(Debug)]
pub(super) struct Map {
    pub entries: Vec<(Node, Node)>,
    pub anchor: usize,
    pub flow: bool,
}

#[derive(Debug)]
pub(super) struct Seq {
    pub items: Vec<Node>,
    pub anchor: usize,
}

/// A comment and where it is.
#[derive(Debug)]
pub(super) struct Comment {
    pub text: String,
    pub start: usize,
}

/// Every document of a file, its comments, and the anchors some alias refers to.
#[derive(Debug)]
pub(super) struct Parsed {
    pub documents: Vec<Node>,
    pub comments: Vec<Comment>,
    pub aliased: HashSet<usize>,
}

/// Where the file stopped parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ParseFailure {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match self {
            Node::Map(map) => map.get(key),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Node::Scalar(scalar) => Some(&scalar.value),
            _ => None,
        }
    }

    pub fn anchor(&self) -> usize {
        match self {
            Node::Scalar(scalar) => scalar.anchor,
            Node::Map(map) => map.anchor,
            Node::Seq(seq) => seq.anchor,
            Node::Alias { .. } => 0,
        }
    }

    /// The plain-data view used to check that an edit changed only what it meant to.
    pub fn to_value(&self) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Node::Scalar(scalar) => Value::String(scalar.value.clone()),
            Node::Seq(seq) => Value::Array(seq.items.iter().map(Node::to_value).collect()),
            Node::Map(map) => Value::Object(
                map.entries
                    .iter()
                    .map(|(key, value)| (key_text(key), value.to_value()))
                    .collect(),
            ),
            Node::Alias { .. } => Value::String("*alias".into()),
        }
    }
}

impl Map {
    pub fn get(&self, key: &str) -> Option<&Node> {
        self.entries
            .iter()
            .find(|(k, _)| k.as_str() == Some(key))
            .map(|(_, value)| value)
    }
}

/// How a mapping key reads in the plain-data view; keys that are not scalars (rare, and
/// never what the editor looks for) keep a stable placeholder.
fn key_text(key: &Node) -> String {
    match key {
        Node::Scalar(scalar) => scalar.value.clone(),
        other => format!("{:?}", other.to_value()),
    }
}

/// Reads every document of `text`.
pub(super) fn parse(text: &str) -> Result<Parsed, ParseFailure> {
    let mut reader = Reader {
        events: Parser::new_from_str(text),
        comments: Vec::new(),
        aliased: HashSet::new(),
    };
    let mut documents = Vec::new();
    loop {
        match reader.next()? {
            None | Some((Event::StreamEnd, _)) => break,
            Some((Event::DocumentStart(..), _)) => {
                let (event, span) = reader.expect_next()?;
                if matches!(event, Event::DocumentEnd) {
                    continue;
                }
                documents.push(reader.node(event, span, 0)?);
                let (event, span) = reader.expect_next()?;
                if !matches!(event, Event::DocumentEnd) {
                    return Err(failure(span, "a document holds more than one node"));
                }
            }
            Some(_) => {}
        }
    }
    Ok(Parsed {
        documents,
        comments: reader.comments,
        aliased: reader.aliased,
    })
}

struct Reader<'a> {
    events: Parser<'a, granit_parser::StrInput<'a>>,
    comments: Vec<Comment>,
    aliased: HashSet<usize>,
}

impl<'a> Reader<'a> {
    /// The next event that is not a comment; comments are kept aside.
    fn next(&mut self) -> Result<Option<(Event<'a>, Span)>, ParseFailure> {
        loop {
            match self.events.next() {
                None => return Ok(None),
                Some(Err(err)) => {
                    let marker = err.marker();
                    return Err(ParseFailure {
                        line: marker.line(),
                        column: marker.col() + 1,
                        message: err.info(),
                    });
                }
                Some(Ok((Event::Comment(text, _), span))) => {
                    self.comments.push(Comment {
                        text: text.into_owned(),
                        start: start(span),
                    });
                }
                Some(Ok(event)) => return Ok(Some(event)),
            }
        }
    }

    fn expect_next(&mut self) -> Result<(Event<'a>, Span), ParseFailure> {
        self.next()?.ok_or_else(|| ParseFailure {
            line: 0,
            column: 0,
            message: "the file ends inside a document".into(),
        })
    }

    fn node(&mut self, event: Event<'a>, span: Span, depth: usize) -> Result<Node, ParseFailure> {
        if depth > MAX_DEPTH {
            return Err(failure(span, "nested deeper than Gantry edits"));
        }
        match event {
            Event::Scalar(value, style, anchor, _) => Ok(Node::Scalar(Scalar {
                value: value.into_owned(),
                style,
                anchor,
                range: range(span),
            })),
            Event::Alias(anchor) => {
                self.aliased.insert(anchor);
                Ok(Node::Alias { range: range(span) })
            }
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.expect_next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span, depth + 1)?);
                }
                Ok(Node::Seq(Seq { items, anchor }))
            }
            Event::MappingStart(style, anchor, _) => {
                let mut entries = Vec::new();
                loop {
                    let (event, span) = self.expect_next()?;
                    if matches!(event, Event::MappingEnd) {
                        break;
                    }
                    let key = self.node(event, span, depth + 1)?;
                    let (event, span) = self.expect_next()?;
                    let value = self.node(event, span, depth + 1)?;
                    entries.push((key, value));
                }
                Ok(Node::Map(Map {
                    entries,
                    anchor,
                    flow: style == StructureStyle::Flow,
                }))
            }
            other => Err(failure(span, &format!("unexpected {other:?}"))),
        }
    }
}

fn start(span: Span) -> usize {
    span.start.byte_offset().unwrap_or_default()
}

fn range(span: Span) -> Range<usize> {
    span.byte_range().unwrap_or(0..0)
}

fn failure(span: Span, message: &str) -> ParseFailure {
    ParseFailure {
        line: span.start.line(),
        column: span.start.col() + 1,
        message: message.to_owned(),
    }
}
