//! What the checks read from a YAML document, with locations. Every document is read as a
//! [`Head`]: the handful of keys every Kubernetes object has, all else skipped unread, so a
//! repo of large CRDs costs little. The few files whose whole shape matters (kustomizations,
//! `Chart.yaml`) are read as a [`Node`] tree instead.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_saphyr::Spanned;

/// The keys of one document that decide what it is and name it.
#[derive(Debug, Default)]
pub(super) struct Head {
    pub is_mapping: bool,
    pub api_version: Option<Spanned<serde_json::Value>>,
    pub kind: Option<Spanned<serde_json::Value>>,
    pub metadata: Option<Spanned<Metadata>>,
    pub has_spec: bool,
}

impl Head {
    /// A mapping with at least two of the keys every Kubernetes object has. Helm values, CI
    /// workflows and tool configs have at most one of them (a values file may well have a
    /// `kind:`) and are only checked as YAML.
    pub fn looks_like_object(&self) -> bool {
        let keys = [
            self.api_version.is_some(),
            self.kind.is_some(),
            self.metadata.is_some(),
            self.has_spec,
        ];
        self.is_mapping && keys.iter().filter(|present| **present).count() >= 2
    }
}

#[derive(Debug, Default)]
pub(super) struct Metadata {
    pub name: Option<Spanned<serde_json::Value>>,
    pub generate_name: Option<Spanned<serde_json::Value>>,
    pub namespace: Option<Spanned<serde_json::Value>>,
}

/// The non-empty string in a located value, if it is one.
pub(super) fn text(value: Option<&Spanned<serde_json::Value>>) -> Option<&str> {
    value
        .and_then(|v| v.value.as_str())
        .filter(|text| !text.is_empty())
}

/// Visits any YAML value; only mappings yield anything, other values are skipped.
macro_rules! skip_non_maps {
    () => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(Default::default())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(Default::default())
        }
    };
}

impl<'de> Deserialize<'de> for Head {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct HeadVisitor;
        impl<'de> Visitor<'de> for HeadVisitor {
            type Value = Head;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML document")
            }
            skip_non_maps!();
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
                let mut head = Head {
                    is_mapping: true,
                    ..Head::default()
                };
                while let Some(key) = map.next_key::<serde_json::Value>()? {
                    match key.as_str().unwrap_or_default() {
                        "apiVersion" => head.api_version = Some(map.next_value()?),
                        "kind" => head.kind = Some(map.next_value()?),
                        "metadata" => head.metadata = Some(map.next_value()?),
                        "spec" => {
                            head.has_spec = true;
                            map.next_value::<IgnoredAny>()?;
                        }
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(head)
            }
        }
        deserializer.deserialize_any(HeadVisitor)
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct MetadataVisitor;
        impl<'de> Visitor<'de> for MetadataVisitor {
            type Value = Metadata;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("metadata")
            }
            skip_non_maps!();
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Metadata, A::Error> {
                let mut metadata = Metadata::default();
                while let Some(key) = map.next_key::<serde_json::Value>()? {
                    match key.as_str().unwrap_or_default() {
                        "name" => metadata.name = Some(map.next_value()?),
                        "generateName" => metadata.generate_name = Some(map.next_value()?),
                        "namespace" => metadata.namespace = Some(map.next_value()?),
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(metadata)
            }
        }
        deserializer.deserialize_any(MetadataVisitor)
    }
}

/// A whole YAML value with the location of each node, for files read in full.
#[derive(Debug)]
pub(super) struct Node {
    pub line: u64,
    pub column: u64,
    pub value: Value,
}

#[derive(Debug, Default)]
pub(super) enum Value {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    Str(String),
    /// Numbers, booleans and nulls: the checks only need to know a value is there.
    #[default]
    Other,
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(text) => Some(text),
            _ => None,
        }
    }

    /// The items of a list; nothing for any other value.
    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn is_mapping(&self) -> bool {
        matches!(self.value, Value::Map(_))
    }
}

impl<'de> Deserialize<'de> for Node {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let spanned = Spanned::<Value>::deserialize(deserializer)?;
        Ok(Node {
            line: spanned.referenced.line(),
            column: spanned.referenced.column(),
            value: spanned.value,
        })
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;
        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = Value;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a YAML value")
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Value, E> {
                Ok(Value::Other)
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value, E> {
                Ok(Value::Other)
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Value, E> {
                Ok(Value::Other)
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
                Ok(Value::Other)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Value, E> {
                Ok(Value::Str(text.to_owned()))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Other)
            }
            fn visit_none<E: de::Error>(self) -> Result<Value, E> {
                Ok(Value::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<Node>()? {
                    items.push(item);
                }
                Ok(Value::Seq(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut entries = Vec::new();
                while let Some(key) = map.next_key::<serde_json::Value>()? {
                    let key = match key {
                        serde_json::Value::String(text) => text,
                        other => other.to_string(),
                    };
                    entries.push((key, map.next_value::<Node>()?));
                }
                Ok(Value::Map(entries))
            }
        }
        deserializer.deserialize_any(ValueVisitor)
    }
}
