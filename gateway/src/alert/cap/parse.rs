//! From bytes to a [`CapAlert`], collecting every fault on the way.

use chrono::{DateTime, FixedOffset};
use roxmltree::{Document, Node, ParsingOptions};

use super::{
    Area, CapAlert, CapError, CapVersion, Category, Certainty, Fault, Info, MAX_DOCUMENT_BYTES,
    MsgType, NamedValue, Reference, Resource, ResponseType, Scope, Severity, Status, Urgency,
    parse_cap_time,
};

/// roxmltree's node budget: far more than any real alert needs (an alert with 26
/// geocodes has a few hundred nodes), far fewer than exhausts memory.
const NODES_LIMIT: u32 = 200_000;

/// Parses and checks a CAP 1.1 or 1.2 document; see the [module](super) contract.
pub fn parse(bytes: &[u8]) -> Result<CapAlert, CapError> {
    if bytes.len() > MAX_DOCUMENT_BYTES {
        return Err(CapError::TooLarge {
            size: bytes.len(),
            limit: MAX_DOCUMENT_BYTES,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| CapError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    declared_encoding_is_utf8(text)?;

    let options = ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_LIMIT,
        // No resolver: even if a DTD got through, no external entity is fetched.
        entity_resolver: None,
    };
    let document = Document::parse_with_options(text, options).map_err(|e| match e {
        roxmltree::Error::DtdDetected => CapError::Doctype,
        other => CapError::Xml(other.to_string()),
    })?;

    let root = document.root_element();
    let Some(version) = root
        .tag_name()
        .namespace()
        .and_then(CapVersion::from_namespace)
    else {
        return Err(CapError::Invalid(vec![Fault {
            path: root.tag_name().name().to_string(),
            line: 1,
            message: format!(
                "not a CAP alert: the root element must be `alert` in namespace {} or {}",
                CapVersion::NAMESPACE_1_2,
                CapVersion::NAMESPACE_1_1
            ),
        }]));
    };
    let mut walker = Walker {
        document: &document,
        version,
        namespace: root.tag_name().namespace().unwrap_or(""),
        faults: Vec::new(),
    };
    if root.tag_name().name() != "alert" {
        walker.fault(root, "alert", "the root element must be `alert`");
    }
    let alert = walker.alert(root);
    match alert {
        Some(alert) if walker.faults.is_empty() => Ok(alert),
        _ => Err(CapError::Invalid(walker.faults)),
    }
}

/// An XML declaration naming an encoding other than UTF-8 is refused rather than
/// misread: the bytes were already checked to be UTF-8.
fn declared_encoding_is_utf8(text: &str) -> Result<(), CapError> {
    let Some(rest) = text.trim_start_matches('\u{feff}').strip_prefix("<?xml") else {
        return Ok(());
    };
    let declaration = rest.split("?>").next().unwrap_or("");
    let Some(at) = declaration.find("encoding") else {
        return Ok(());
    };
    let value: String = declaration[at + "encoding".len()..]
        .trim_start()
        .trim_start_matches('=')
        .trim_start()
        .chars()
        .skip(1)
        .take_while(|c| *c != '"' && *c != '\'')
        .collect();
    if value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8") {
        Ok(())
    } else {
        Err(CapError::Xml(format!(
            "encoding \"{value}\" is declared; CAP requires UTF-8"
        )))
    }
}

/// Walks the tree once, building the alert and collecting faults. Each builder
/// returns `None` when a required part is missing, after recording why.
struct Walker<'a, 'input> {
    document: &'a Document<'input>,
    version: CapVersion,
    namespace: &'a str,
    faults: Vec<Fault>,
}

/// The CAP children of one element, with the element's path for fault messages.
struct Children<'a, 'input> {
    path: String,
    parent: Node<'a, 'input>,
    elements: Vec<Node<'a, 'input>>,
}

impl<'a, 'input> Walker<'a, 'input> {
    fn line(&self, node: Node) -> u32 {
        self.document.text_pos_at(node.range().start).row
    }

    fn fault(&mut self, node: Node, path: &str, message: impl Into<String>) {
        self.faults.push(Fault {
            path: path.to_string(),
            line: self.line(node),
            message: message.into(),
        });
    }

    /// The children of `node` in the CAP namespace; those of other namespaces are
    /// skipped (the schema's `any`), unknown CAP names are faults.
    fn children(
        &mut self,
        node: Node<'a, 'input>,
        path: String,
        known: &[&str],
    ) -> Children<'a, 'input> {
        let mut elements = Vec::new();
        for child in node.children().filter(Node::is_element) {
            if child.tag_name().namespace() != Some(self.namespace) {
                continue;
            }
            let name = child.tag_name().name();
            if known.contains(&name) {
                elements.push(child);
            } else {
                self.fault(
                    child,
                    &format!("{path}/{name}"),
                    format!("`{name}` is not a CAP {} element here", self.version),
                );
            }
        }
        Children {
            path,
            parent: node,
            elements,
        }
    }

    fn alert(&mut self, root: Node<'a, 'input>) -> Option<CapAlert> {
        let c = self.children(
            root,
            "alert".into(),
            &[
                "identifier",
                "sender",
                "sent",
                "status",
                "msgType",
                "source",
                "scope",
                "restriction",
                "addresses",
                "code",
                "note",
                "references",
                "incidents",
                "info",
            ],
        );
        let identifier = self
            .required(&c, "identifier")
            .and_then(|(n, v)| self.no_space_or_comma(n, &c.path, "identifier", v));
        let sender = self
            .required(&c, "sender")
            .and_then(|(n, v)| self.no_space_or_comma(n, &c.path, "sender", v));
        let sent = self
            .required(&c, "sent")
            .and_then(|(n, v)| self.time(n, &format!("{}/sent", c.path), &v));
        let status = self.required_enum(
            &c,
            "status",
            Status::parse,
            Status::ALL.iter().map(|v| v.as_str()),
        );
        let msg_type = self.required_enum(
            &c,
            "msgType",
            MsgType::parse,
            MsgType::ALL.iter().map(|v| v.as_str()),
        );
        let scope = self.required_enum(
            &c,
            "scope",
            Scope::parse,
            Scope::ALL.iter().map(|v| v.as_str()),
        );
        let source = self.optional(&c, "source");
        let restriction = self.optional(&c, "restriction");
        let addresses = self.optional(&c, "addresses");
        let codes = self.texts(&c, "code").into_iter().map(|(_, v)| v);
        let codes = codes.filter(|v| !v.is_empty()).collect();
        let note = self.optional(&c, "note");
        let incidents = self.optional(&c, "incidents");
        let references = self.references(&c);

        if scope == Some(Scope::Restricted) && restriction.is_none() {
            self.fault(
                c.parent,
                &format!("{}/restriction", c.path),
                "required when scope is Restricted",
            );
        }
        if scope == Some(Scope::Private) && addresses.is_none() {
            self.fault(
                c.parent,
                &format!("{}/addresses", c.path),
                "required when scope is Private",
            );
        }

        let mut infos = Vec::new();
        let info_nodes: Vec<_> = c
            .elements
            .iter()
            .copied()
            .filter(|n| n.tag_name().name() == "info")
            .collect();
        for (i, node) in info_nodes.into_iter().enumerate() {
            if let Some(info) = self.info(node, format!("{}/info[{}]", c.path, i + 1)) {
                infos.push(info);
            }
        }

        Some(CapAlert {
            version: self.version,
            identifier: identifier?,
            sender: sender?,
            sent: sent?,
            status: status?,
            msg_type: msg_type?,
            source,
            scope: scope?,
            restriction,
            addresses,
            codes,
            note,
            references,
            incidents,
            infos,
        })
    }

    fn info(&mut self, node: Node<'a, 'input>, path: String) -> Option<Info> {
        let c = self.children(
            node,
            path,
            &[
                "language",
                "category",
                "event",
                "responseType",
                "urgency",
                "severity",
                "certainty",
                "audience",
                "eventCode",
                "effective",
                "onset",
                "expires",
                "senderName",
                "headline",
                "description",
                "instruction",
                "web",
                "contact",
                "parameter",
                "resource",
                "area",
            ],
        );
        let language = self
            .optional(&c, "language")
            .unwrap_or_else(|| "en-US".into());
        let categories = self.enum_list(
            &c,
            "category",
            Category::parse,
            Category::ALL.iter().map(|v| v.as_str()),
        );
        if categories.is_empty() && !self.has(&c, "category") {
            self.fault(
                c.parent,
                &format!("{}/category", c.path),
                "required: at least one category",
            );
        }
        let event = self.required(&c, "event").map(|(_, v)| v);
        let version = self.version;
        let response_types = self.enum_list(
            &c,
            "responseType",
            |t| {
                ResponseType::parse(t).filter(|r| {
                    version == CapVersion::V1_2
                        || !matches!(r, ResponseType::Avoid | ResponseType::AllClear)
                })
            },
            ResponseType::ALL
                .iter()
                .filter(|r| {
                    version == CapVersion::V1_2
                        || !matches!(r, ResponseType::Avoid | ResponseType::AllClear)
                })
                .map(|v| v.as_str()),
        );
        let urgency = self.required_enum(
            &c,
            "urgency",
            Urgency::parse,
            Urgency::ALL.iter().map(|v| v.as_str()),
        );
        let severity = self.required_enum(
            &c,
            "severity",
            Severity::parse,
            Severity::ALL.iter().map(|v| v.as_str()),
        );
        let certainty = self.required_enum(
            &c,
            "certainty",
            |t| {
                Certainty::parse(t)
                    .filter(|c| version == CapVersion::V1_1 || *c != Certainty::VeryLikely)
            },
            Certainty::ALL
                .iter()
                .filter(|c| version == CapVersion::V1_1 || **c != Certainty::VeryLikely)
                .map(|v| v.as_str()),
        );
        let audience = self.optional(&c, "audience");
        let event_codes = self.named_values(&c, "eventCode");
        let effective = self.optional_time(&c, "effective");
        let onset = self.optional_time(&c, "onset");
        let expires = self.optional_time(&c, "expires");
        let sender_name = self.optional(&c, "senderName");
        let headline = self.optional(&c, "headline");
        let description = self.optional(&c, "description");
        let instruction = self.optional(&c, "instruction");
        let web = self.optional(&c, "web");
        let contact = self.optional(&c, "contact");
        let parameters = self.named_values(&c, "parameter");

        let mut resources = Vec::new();
        let mut areas = Vec::new();
        let (mut r, mut a) = (0, 0);
        for child in c.elements.clone() {
            match child.tag_name().name() {
                "resource" => {
                    r += 1;
                    resources.extend(self.resource(child, format!("{}/resource[{r}]", c.path)));
                }
                "area" => {
                    a += 1;
                    areas.extend(self.area(child, format!("{}/area[{a}]", c.path)));
                }
                _ => {}
            }
        }

        Some(Info {
            language,
            categories,
            event: event?,
            response_types,
            urgency: urgency?,
            severity: severity?,
            certainty: certainty?,
            audience,
            event_codes,
            effective,
            onset,
            expires,
            sender_name,
            headline,
            description,
            instruction,
            web,
            contact,
            parameters,
            resources,
            areas,
        })
    }

    fn resource(&mut self, node: Node<'a, 'input>, path: String) -> Option<Resource> {
        let c = self.children(
            node,
            path,
            &[
                "resourceDesc",
                "mimeType",
                "size",
                "uri",
                "derefUri",
                "digest",
            ],
        );
        let resource_desc = self.required(&c, "resourceDesc").map(|(_, v)| v);
        let mime_type = match self.version {
            CapVersion::V1_2 => self.required(&c, "mimeType").map(|(_, v)| Some(v)),
            CapVersion::V1_1 => Some(self.optional(&c, "mimeType")),
        };
        let size = self
            .first(&c, "size")
            .and_then(|(n, v)| match v.parse::<u64>() {
                Ok(size) => Some(size),
                Err(_) => {
                    self.fault(
                        n,
                        &format!("{}/size", c.path),
                        format!("`{v}` is not a size in bytes"),
                    );
                    None
                }
            });
        Some(Resource {
            resource_desc: resource_desc?,
            mime_type: mime_type?,
            size,
            uri: self.optional(&c, "uri"),
            deref_uri: self.optional(&c, "derefUri"),
            digest: self.optional(&c, "digest"),
        })
    }

    fn area(&mut self, node: Node<'a, 'input>, path: String) -> Option<Area> {
        let c = self.children(
            node,
            path,
            &[
                "areaDesc", "polygon", "circle", "geocode", "altitude", "ceiling",
            ],
        );
        let area_desc = self.required(&c, "areaDesc").map(|(_, v)| v);
        let polygons = self.shapes(&c, "polygon", check_polygon);
        let circles = self.shapes(&c, "circle", check_circle);
        let geocodes = self.named_values(&c, "geocode");
        let altitude = self.number(&c, "altitude");
        let ceiling = self.number(&c, "ceiling");
        if ceiling.is_some() && altitude.is_none() {
            self.fault(
                c.parent,
                &format!("{}/altitude", c.path),
                "required when ceiling is given",
            );
        }
        Some(Area {
            area_desc: area_desc?,
            polygons,
            circles,
            geocodes,
            altitude,
            ceiling,
        })
    }

    fn references(&mut self, c: &Children<'a, 'input>) -> Vec<Reference> {
        let mut references = Vec::new();
        for (node, text) in self.texts(c, "references") {
            let path = format!("{}/references", c.path);
            if text.is_empty() {
                self.fault(
                    node,
                    &path,
                    "empty: it must list sender,identifier,sent triples",
                );
                continue;
            }
            for triple in text.split_whitespace() {
                let parts: Vec<&str> = triple.split(',').collect();
                match parts.as_slice() {
                    [sender, identifier, sent] if !sender.is_empty() && !identifier.is_empty() => {
                        if let Err(why) = parse_cap_time(sent) {
                            self.fault(node, &path, format!("`{triple}`: sent time: {why}"));
                        }
                        references.push(Reference {
                            sender: sender.to_string(),
                            identifier: identifier.to_string(),
                            sent: sent.to_string(),
                        });
                    }
                    _ => self.fault(
                        node,
                        &path,
                        format!("`{triple}` is not a sender,identifier,sent triple"),
                    ),
                }
            }
        }
        references
    }

    fn named_values(&mut self, c: &Children<'a, 'input>, name: &str) -> Vec<NamedValue> {
        let nodes: Vec<_> = c
            .elements
            .iter()
            .copied()
            .filter(|n| n.tag_name().name() == name)
            .collect();
        let mut values = Vec::new();
        for (i, node) in nodes.into_iter().enumerate() {
            let inner = self.children(
                node,
                format!("{}/{name}[{}]", c.path, i + 1),
                &["valueName", "value"],
            );
            let value_name = self.required(&inner, "valueName").map(|(_, v)| v);
            // `value` may be empty (publishers send empty parameters) but must be there.
            let value = if self.has(&inner, "value") {
                Some(self.optional(&inner, "value").unwrap_or_default())
            } else {
                let path = format!("{}/value", inner.path);
                self.fault(inner.parent, &path, "required but missing");
                None
            };
            if let (Some(value_name), Some(value)) = (value_name, value) {
                values.push(NamedValue { value_name, value });
            }
        }
        values
    }

    fn has(&self, c: &Children, name: &str) -> bool {
        c.elements.iter().any(|n| n.tag_name().name() == name)
    }

    /// Every `name` child's text, trimmed, with its node.
    fn texts(&mut self, c: &Children<'a, 'input>, name: &str) -> Vec<(Node<'a, 'input>, String)> {
        c.elements
            .iter()
            .filter(|n| n.tag_name().name() == name)
            .map(|n| (*n, element_text(*n)))
            .collect()
    }

    /// Every `polygon` or `circle` of an area, each checked by `check`.
    fn shapes(
        &mut self,
        c: &Children<'a, 'input>,
        name: &str,
        check: fn(&str) -> Result<(), String>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        for (i, (node, text)) in self.texts(c, name).into_iter().enumerate() {
            let path = format!("{}/{name}[{}]", c.path, i + 1);
            match check(&text) {
                Ok(()) => out.push(text),
                Err(_) if text.is_empty() => self.fault(node, &path, "empty"),
                Err(why) => self.fault(node, &path, why),
            }
        }
        out
    }

    /// The first `name` child with its text; a repeated one is a fault. An empty
    /// optional element counts as absent: the schema types free text as `xs:string`.
    fn first(
        &mut self,
        c: &Children<'a, 'input>,
        name: &str,
    ) -> Option<(Node<'a, 'input>, String)> {
        let texts = self.texts(c, name);
        if let Some((extra, _)) = texts.get(1) {
            self.fault(
                *extra,
                &format!("{}/{name}", c.path),
                "may appear only once",
            );
        }
        texts
            .into_iter()
            .next()
            .filter(|(_, text)| !text.is_empty())
    }

    fn optional(&mut self, c: &Children<'a, 'input>, name: &str) -> Option<String> {
        self.first(c, name).map(|(_, v)| v)
    }

    /// A required element: missing and empty are both faults (an empty value of a
    /// required element or enumeration carries nothing the receiver can act on).
    fn required(
        &mut self,
        c: &Children<'a, 'input>,
        name: &str,
    ) -> Option<(Node<'a, 'input>, String)> {
        let path = format!("{}/{name}", c.path);
        let Some(node) = c
            .elements
            .iter()
            .copied()
            .find(|n| n.tag_name().name() == name)
        else {
            self.fault(c.parent, &path, "required but missing");
            return None;
        };
        let found = self.first(c, name);
        if found.is_none() {
            self.fault(node, &path, "empty: a value is required");
        }
        found
    }

    fn required_enum<T>(
        &mut self,
        c: &Children<'a, 'input>,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: impl Iterator<Item = &'static str>,
    ) -> Option<T> {
        let (node, text) = self.required(c, name)?;
        self.enumerated(node, &format!("{}/{name}", c.path), &text, parse, allowed)
    }

    fn enum_list<T>(
        &mut self,
        c: &Children<'a, 'input>,
        name: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: impl Iterator<Item = &'static str> + Clone,
    ) -> Vec<T> {
        let mut out = Vec::new();
        for (i, (node, text)) in self.texts(c, name).into_iter().enumerate() {
            let path = format!("{}/{name}[{}]", c.path, i + 1);
            if text.is_empty() {
                self.fault(
                    node,
                    &path,
                    "empty: a value is required when the element is present",
                );
                continue;
            }
            out.extend(self.enumerated(node, &path, &text, &parse, allowed.clone()));
        }
        out
    }

    fn enumerated<T>(
        &mut self,
        node: Node,
        path: &str,
        text: &str,
        parse: impl Fn(&str) -> Option<T>,
        allowed: impl Iterator<Item = &'static str>,
    ) -> Option<T> {
        let value = parse(text);
        if value.is_none() {
            let allowed: Vec<&str> = allowed.collect();
            self.fault(
                node,
                path,
                format!("`{text}` is not one of {}", allowed.join(", ")),
            );
        }
        value
    }

    fn time(&mut self, node: Node, path: &str, text: &str) -> Option<DateTime<FixedOffset>> {
        let checked = if text.as_bytes().get(10) == Some(&b'T') {
            parse_cap_time(text)
        } else {
            Err("not a date-time of the form 2026-07-21T06:30:00+08:00")
        };
        match checked {
            Ok(time) => Some(time),
            Err(why) => {
                self.fault(node, path, format!("`{text}`: {why}"));
                None
            }
        }
    }

    fn optional_time(
        &mut self,
        c: &Children<'a, 'input>,
        name: &str,
    ) -> Option<DateTime<FixedOffset>> {
        let (node, text) = self.first(c, name)?;
        self.time(node, &format!("{}/{name}", c.path), &text)
    }

    fn number(&mut self, c: &Children<'a, 'input>, name: &str) -> Option<f64> {
        let (node, text) = self.first(c, name)?;
        match text.parse::<f64>() {
            Ok(v) if v.is_finite() => Some(v),
            _ => {
                self.fault(
                    node,
                    &format!("{}/{name}", c.path),
                    format!("`{text}` is not a number"),
                );
                None
            }
        }
    }

    fn no_space_or_comma(
        &mut self,
        node: Node,
        path: &str,
        name: &str,
        value: String,
    ) -> Option<String> {
        if value.contains(|c: char| c.is_whitespace() || c == ',') {
            self.fault(
                node,
                &format!("{path}/{name}"),
                format!("`{value}` must not contain spaces or commas"),
            );
            return None;
        }
        Some(value)
    }
}

/// An element's text content, trimmed: CAP values are simple content, and a value
/// broken over lines by its publisher keeps its inner line breaks.
fn element_text(node: Node) -> String {
    let mut text = String::new();
    for child in node.children() {
        if let Some(t) = child.text() {
            if child.is_text() {
                text.push_str(t);
            }
        }
    }
    text.trim().to_string()
}

/// One WGS 84 `lat,lon` point.
fn point(text: &str) -> Result<(f64, f64), String> {
    let (lat, lon) = text
        .split_once(',')
        .ok_or_else(|| format!("`{text}` is not a lat,lon pair"))?;
    let lat: f64 = lat
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: latitude is not a number"))?;
    let lon: f64 = lon
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: longitude is not a number"))?;
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(format!("`{text}` is outside latitude ±90, longitude ±180"));
    }
    Ok((lat, lon))
}

/// §3.2.4: at least four points, the first and last the same.
fn check_polygon(text: &str) -> Result<(), String> {
    let points = text
        .split_whitespace()
        .map(point)
        .collect::<Result<Vec<_>, _>>()?;
    if points.len() < 4 {
        return Err(format!(
            "a polygon needs at least 4 points, this has {}",
            points.len()
        ));
    }
    if points.first() != points.last() {
        return Err("a polygon must end on its first point".into());
    }
    Ok(())
}

/// §3.2.4: `lat,lon radius`, the radius in kilometres.
fn check_circle(text: &str) -> Result<(), String> {
    let mut parts = text.split_whitespace();
    let (Some(centre), Some(radius), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err(format!("`{text}` is not `lat,lon radius`"));
    };
    point(centre)?;
    match radius.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(()),
        _ => Err(format!("`{radius}` is not a radius in kilometres")),
    }
}
