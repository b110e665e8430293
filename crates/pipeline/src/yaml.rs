//! YAML with line numbers: a small tree built from yaml-rust2's marked events, so every
//! finding of the checker can say `file:line`. Anchors and aliases are resolved; `<<` merge
//! keys are expanded (Concourse's YAML parser supports both).

use std::collections::HashMap;
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Scalar(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

/// A value and the line (1-based) it starts on.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub value: Value,
    pub line: usize,
    /// A plain (unquoted, untagged) scalar: only these are read as booleans, numbers or null.
    pub plain: bool,
}

/// What a scalar means to Concourse's YAML library (go-yaml v2, YAML 1.1 rules): `yes`, `On`,
/// `TRUE` are booleans, `~` and an empty value are null, `0x1f` is a number; quoted text is
/// always a string.
#[derive(Debug, Clone, PartialEq)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float,
    Str(&'a str),
}

/// Reads a plain scalar the way go-yaml v2's resolver does (its table of YAML 1.1 forms).
pub fn resolve(s: &str) -> Scalar<'_> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Scalar::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Scalar::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Scalar::Bool(false);
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => return Scalar::Float,
        _ => {}
    }
    let plain = s.replace('_', "");
    let (sign, digits) = match plain.strip_prefix('-') {
        Some(rest) => (-1, rest),
        None => (1, plain.strip_prefix('+').unwrap_or(&plain)),
    };
    let int = if let Some(hex) = digits.strip_prefix("0x") {
        i64::from_str_radix(hex, 16).ok()
    } else if let Some(bin) = digits.strip_prefix("0b") {
        i64::from_str_radix(bin, 2).ok()
    } else if digits.len() > 1
        && digits.starts_with('0')
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        i64::from_str_radix(&digits[1..], 8).ok()
    } else if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        digits.parse().ok()
    } else {
        None
    };
    if let Some(n) = int {
        return Scalar::Int(sign * n);
    }
    let float = !digits.is_empty()
        && digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'-' | b'+'))
        && digits.parse::<f64>().is_ok();
    if float {
        return Scalar::Float;
    }
    Scalar::Str(s)
}

impl Node {
    pub fn get(&self, key: &str) -> Option<&Node> {
        match &self.value {
            Value::Map(entries) => entries
                .iter()
                .find(|(k, _)| k.as_str() == Some(key))
                .map(|(_, v)| v),
            _ => None,
        }
    }

    /// The node as JSON the way Concourse sends it to a resource: `true`/`false` booleans,
    /// integers numbers, other scalars strings (`((vars))` stay strings).
    pub fn to_json(&self) -> serde_json::Value {
        use serde_json::Value as Json;
        match &self.value {
            Value::Scalar(s) => match self.scalar() {
                Some(Scalar::Bool(b)) => Json::Bool(b),
                Some(Scalar::Int(n)) => Json::from(n),
                Some(Scalar::Null) if self.plain => Json::Null,
                _ => Json::String(s.clone()),
            },
            Value::Seq(items) => Json::Array(items.iter().map(Node::to_json).collect()),
            Value::Map(entries) => Json::Object(
                entries
                    .iter()
                    .filter_map(|(k, v)| Some((k.as_str()?.to_owned(), v.to_json())))
                    .collect(),
            ),
        }
    }

    /// The scalar as Concourse reads it (`None` for a mapping or a list).
    pub fn scalar(&self) -> Option<Scalar<'_>> {
        match &self.value {
            Value::Scalar(s) if self.plain => Some(resolve(s)),
            Value::Scalar(s) => Some(Scalar::Str(s)),
            _ => None,
        }
    }

    /// What kind of YAML value this is, for messages (`a string`, `a list`, ...).
    pub fn kind(&self) -> &'static str {
        match self.scalar() {
            None if matches!(self.value, Value::Seq(_)) => "a list",
            None => "a mapping",
            Some(Scalar::Null) => "empty",
            Some(Scalar::Bool(_)) => "a boolean",
            Some(Scalar::Int(_) | Scalar::Float) => "a number",
            Some(Scalar::Str(_)) => "a string",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Scalar(s) => Some(s),
            _ => None,
        }
    }

    pub fn items(&self) -> &[Node] {
        match &self.value {
            Value::Seq(items) => items,
            _ => &[],
        }
    }

    pub fn entries(&self) -> &[(Node, Node)] {
        match &self.value {
            Value::Map(entries) => entries,
            _ => &[],
        }
    }

    /// Every node below this one, this one included, depth first.
    pub fn walk<'a>(&'a self, out: &mut Vec<&'a Node>) {
        out.push(self);
        match &self.value {
            Value::Scalar(_) => {}
            Value::Seq(items) => items.iter().for_each(|n| n.walk(out)),
            Value::Map(entries) => entries.iter().for_each(|(k, v)| {
                k.walk(out);
                v.walk(out);
            }),
        }
    }
}

#[derive(Default)]
struct Builder {
    stack: Vec<(Node, usize)>,
    anchors: HashMap<usize, Node>,
    done: Option<Node>,
    /// Keys waiting for their value, per open mapping.
    pending_keys: Vec<Option<Node>>,
    /// Keys written out in each open mapping (not brought in by `<<`): a second one is an
    /// error, as fly's YAML reading makes it.
    explicit_keys: Vec<Vec<String>>,
    /// The first duplicate key met: (line, key).
    duplicate: Option<(usize, String)>,
}

impl Builder {
    fn push_value(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        self.attach(node);
    }

    fn attach(&mut self, node: Node) {
        match self.stack.last_mut() {
            None => self.done = Some(node),
            Some((parent, _)) => match &mut parent.value {
                Value::Seq(items) => items.push(node),
                Value::Map(entries) => {
                    let slot = self
                        .pending_keys
                        .last_mut()
                        .expect("a mapping has a key slot");
                    match slot.take() {
                        None => *slot = Some(node),
                        Some(key) if key.as_str() == Some("<<") => {
                            // Merge keys: the merged map's entries, unless already present.
                            let merged: Vec<(Node, Node)> = match node.value {
                                Value::Map(m) => m,
                                Value::Seq(maps) => maps
                                    .into_iter()
                                    .flat_map(|m| match m.value {
                                        Value::Map(e) => e,
                                        _ => Vec::new(),
                                    })
                                    .collect(),
                                Value::Scalar(_) => Vec::new(),
                            };
                            for (k, v) in merged {
                                if !entries.iter().any(|(x, _)| x.as_str() == k.as_str()) {
                                    entries.push((k, v));
                                }
                            }
                        }
                        // An explicit key wins over one brought in by a merge key.
                        Some(key) => {
                            if let (Some(name), Some(seen)) =
                                (key.as_str(), self.explicit_keys.last_mut())
                            {
                                if seen.iter().any(|k| k == name) {
                                    if self.duplicate.is_none() {
                                        self.duplicate = Some((key.line, name.to_owned()));
                                    }
                                } else {
                                    seen.push(name.to_owned());
                                }
                            }
                            match entries
                                .iter_mut()
                                .find(|(k, _)| k.as_str().is_some() && k.as_str() == key.as_str())
                            {
                                Some(existing) => *existing = (key, node),
                                None => entries.push((key, node)),
                            }
                        }
                    }
                }
                Value::Scalar(_) => {}
            },
        }
    }
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        let line = mark.line();
        match ev {
            Event::Scalar(s, style, anchor, tag) => self.push_value(
                Node {
                    value: Value::Scalar(s),
                    line,
                    plain: style == TScalarStyle::Plain && tag.is_none(),
                },
                anchor,
            ),
            Event::SequenceStart(anchor, _) => self.stack.push((
                Node {
                    value: Value::Seq(Vec::new()),
                    line,
                    plain: false,
                },
                anchor,
            )),
            Event::MappingStart(anchor, _) => {
                self.stack.push((
                    Node {
                        value: Value::Map(Vec::new()),
                        line,
                        plain: false,
                    },
                    anchor,
                ));
                self.pending_keys.push(None);
                self.explicit_keys.push(Vec::new());
            }
            Event::SequenceEnd | Event::MappingEnd => {
                if let Some((node, anchor)) = self.stack.pop() {
                    if matches!(node.value, Value::Map(_)) {
                        self.pending_keys.pop();
                        self.explicit_keys.pop();
                    }
                    self.push_value(node, anchor);
                }
            }
            Event::Alias(id) => {
                let node = self.anchors.get(&id).cloned().unwrap_or(Node {
                    value: Value::Scalar(String::new()),
                    line,
                    plain: true,
                });
                self.attach(node);
            }
            _ => {}
        }
    }
}

/// Parses one YAML document. The error names the line.
pub fn parse(text: &str) -> Result<Node, String> {
    let mut builder = Builder::default();
    let mut parser = Parser::new_from_str(text);
    parser.load(&mut builder, false).map_err(|e| {
        let m = e.marker();
        format!(
            "{}: invalid YAML: {} (column {})",
            m.line(),
            e.info(),
            m.col() + 1
        )
    })?;
    if let Some((line, key)) = builder.duplicate {
        return Err(format!(
            "{line}: invalid YAML: the key \"{key}\" appears twice in one mapping (fly refuses it; keep one)"
        ));
    }
    Ok(builder.done.unwrap_or(Node {
        value: Value::Map(Vec::new()),
        line: 1,
        plain: false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_know_their_lines_and_anchors_and_merges_resolve() {
        let doc = "a: 1\nb:\n  - &x {k: v}\n  - *x\nc:\n  <<: {k: v, m: n}\n  k: own\n";
        let n = parse(doc).unwrap();
        assert_eq!(n.get("a").unwrap().line, 1);
        assert_eq!(
            n.get("b").unwrap().items()[1].get("k").unwrap().as_str(),
            Some("v")
        );
        let c = n.get("c").unwrap();
        assert_eq!(c.get("k").unwrap().as_str(), Some("own"));
        assert_eq!(c.get("m").unwrap().as_str(), Some("n"));
        assert_eq!(n.get("b").unwrap().items()[0].line, 3);
    }

    #[test]
    fn scalars_resolve_as_go_yaml_v2_reads_them() {
        let n =
            parse("a: yes\nb: \"true\"\nc: On\nd: 0x1F\ne: ~\nf: 1.5\ng: 10m\nh: 017\n").unwrap();
        let get = |k: &str| n.get(k).unwrap().scalar().unwrap();
        assert_eq!(get("a"), Scalar::Bool(true));
        assert_eq!(get("b"), Scalar::Str("true"));
        assert_eq!(get("c"), Scalar::Bool(true));
        assert_eq!(get("d"), Scalar::Int(31));
        assert_eq!(get("e"), Scalar::Null);
        assert_eq!(get("f"), Scalar::Float);
        assert_eq!(get("g"), Scalar::Str("10m"));
        assert_eq!(get("h"), Scalar::Int(15));
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let err = parse("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(err.contains("invalid YAML"), "{err}");
    }
}
