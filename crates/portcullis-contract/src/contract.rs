//! A compiled contract: the route table (path template, method, operation) and, per operation,
//! the precompiled validators for parameters, request bodies and responses.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use http::Method;
use jsonschema::Validator;
use serde_json::{Map, Value};

use crate::body::{MediaKind, MediaRange, best_match, essence, kind_of};
use crate::load::{Bundler, Direction, Docs, SpecError, escape_token};
use crate::params::{In, Shape, Style, shape_of};
use crate::{Mode, Violation};

/// How a contract is compiled.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct CompileOptions {
    /// Undeclared query parameters and object properties are refused (`additionalProperties`
    /// is false unless the schema says otherwise). Default true.
    pub strict: bool,
    /// Prepended to every path of the documents (e.g. `/api/v1` when the spec's paths are
    /// relative to a server URL with that path). Default empty.
    pub base_path: String,
}

impl Default for CompileOptions {
    fn default() -> Self {
        Self { strict: true, base_path: String::new() }
    }
}

/// One piece of a path template segment.
#[derive(Debug, Clone)]
enum Piece {
    Lit(String),
    Param(String),
}

#[derive(Debug, Clone)]
struct Template {
    source: Arc<str>,
    /// Per segment: its pieces (one `Lit` for a literal segment).
    segs: Vec<Vec<Piece>>,
    literal_segments: usize,
}

impl Template {
    fn parse(path: &str) -> Result<Self, String> {
        if !path.starts_with('/') {
            return Err("a path must start with /".into());
        }
        let mut segs = Vec::new();
        let mut literal_segments = 0;
        for seg in path[1..].split('/') {
            let mut pieces = Vec::new();
            let mut rest = seg;
            while let Some(open) = rest.find('{') {
                if open > 0 {
                    pieces.push(Piece::Lit(rest[..open].to_owned()));
                }
                let close = rest[open..].find('}').ok_or_else(|| format!("unclosed {{ in path {path:?}"))? + open;
                let name = &rest[open + 1..close];
                if name.is_empty() {
                    return Err(format!("empty parameter name in path {path:?}"));
                }
                if matches!(pieces.last(), Some(Piece::Param(_))) {
                    return Err(format!("two parameters without a literal between them in {path:?}"));
                }
                pieces.push(Piece::Param(name.to_owned()));
                rest = &rest[close + 1..];
            }
            if !rest.is_empty() || pieces.is_empty() {
                pieces.push(Piece::Lit(rest.to_owned()));
            }
            if pieces.len() == 1 && matches!(pieces[0], Piece::Lit(_)) {
                literal_segments += 1;
            }
            segs.push(pieces);
        }
        Ok(Self { source: Arc::from(path), segs, literal_segments })
    }

    /// The path parameters (raw, still percent-encoded) and the segment index of each, if the
    /// path matches.
    fn matches<'p>(&self, segments: &[&'p str]) -> Option<Vec<(&str, &'p str, usize)>> {
        if segments.len() != self.segs.len() {
            return None;
        }
        let mut out = Vec::new();
        for (i, (pieces, seg)) in self.segs.iter().zip(segments).enumerate() {
            let mut rest: &'p str = seg;
            for (j, p) in pieces.iter().enumerate() {
                match p {
                    Piece::Lit(l) => rest = rest.strip_prefix(l.as_str())?,
                    Piece::Param(name) => {
                        let end = match pieces.get(j + 1) {
                            Some(Piece::Lit(next)) => rest.find(next.as_str())?,
                            _ => rest.len(),
                        };
                        if end == 0 {
                            return None;
                        }
                        out.push((name.as_str(), &rest[..end], i));
                        rest = &rest[end..];
                    }
                }
            }
            if !rest.is_empty() {
                return None;
            }
        }
        Some(out)
    }
}

/// One declared parameter.
#[derive(Debug)]
struct Param {
    name: String,
    loc: In,
    style: Style,
    explode: bool,
    shape: Shape,
    /// `content: application/json` instead of `schema`: the value is JSON text.
    json: bool,
}

/// A security scheme's type, mapped onto portcullis' authentication methods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemeKind {
    /// `apiKey`: satisfied by a portcullis API key or an HMAC-signed request.
    ApiKey,
    /// `http` with `scheme: basic`.
    Basic,
    /// `http` with `scheme: bearer` (or another scheme): a JWT, an introspected token or an API key.
    Bearer,
    /// `oauth2` and `openIdConnect`: a JWT or an introspected token; the strings are scopes.
    OAuth,
    /// `mutualTLS`: a client certificate.
    MutualTls,
}

impl SchemeKind {
    /// Whether a caller authenticated with `method` satisfies this scheme.
    pub fn accepts(self, method: portcullis_core::AuthMethodUsed) -> bool {
        use portcullis_core::AuthMethodUsed as M;
        match self {
            SchemeKind::ApiKey => matches!(method, M::ApiKey | M::Hmac),
            SchemeKind::Basic => method == M::Basic,
            SchemeKind::Bearer => matches!(method, M::Jwt | M::Introspection | M::ApiKey),
            SchemeKind::OAuth => matches!(method, M::Jwt | M::Introspection),
            SchemeKind::MutualTls => method == M::Mtls,
            #[allow(unreachable_patterns)]
            _ => false,
        }
    }
}

/// One alternative of an operation's `security`: every scheme in it must be satisfied.
#[derive(Debug, Clone)]
pub struct SecurityAlternative {
    /// (scheme name, kind, scopes for OAuth kinds or roles for the others).
    pub schemes: Vec<(String, SchemeKind, Vec<String>)>,
}

/// A response declared for a status.
#[derive(Debug)]
struct ResponseSpec {
    media: Vec<(MediaRange, Option<Compiled>)>,
}

/// A compiled schema: the validator and the bundled schema (used to remove undeclared
/// properties from responses).
struct Compiled {
    validator: Validator,
    schema: Value,
}

impl std::fmt::Debug for Compiled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Compiled")
    }
}

#[derive(Debug)]
struct BodyMedia {
    range: MediaRange,
    kind: MediaKind,
    compiled: Option<Compiled>,
    shape: Shape,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StatusKey {
    Exact(u16),
    Range(u16),
    Default,
}

/// One operation of the contract.
#[derive(Debug)]
pub struct Operation {
    idx: usize,
    id: Arc<str>,
    method: Method,
    template: Arc<str>,
    params: Vec<Param>,
    params_validator: Option<Compiled>,
    /// Whether any query name is acceptable (a free-form exploded object parameter).
    query_open: bool,
    body_required: bool,
    body: Vec<BodyMedia>,
    responses: Vec<(StatusKey, ResponseSpec)>,
    security: Option<Vec<SecurityAlternative>>,
    public: bool,
    extra_scopes: Vec<String>,
    mode: Option<Mode>,
    constrained: Vec<String>,
    uri_fields: Vec<String>,
    /// Pointers (`/query/next`, `/header/x-callback/*`) of parameters with `format: uri` (or
    /// `x-portcullis-ssrf: true`), into the document [`Operation::check_head_value`] returns.
    uri_params: Vec<String>,
    /// Gateway policy carried next to the operation (`x-portcullis-rate-limit`,
    /// `x-portcullis-owner`, `x-portcullis-exposure`), raw, for the config to compile.
    policy_extensions: Vec<(&'static str, Value)>,
    /// `file#/json/pointer` of the operation, for errors about its extensions.
    source: String,
}

/// Vendor extensions an operation may carry: the contract reads the first three itself; the
/// config compiles the others into the stages' per-operation policies. Any other
/// `x-portcullis-*` key is an error, so a typo fails `check` instead of silently doing nothing.
pub const OPERATION_EXTENSIONS: [&str; 6] = [
    "x-portcullis-public",
    "x-portcullis-scopes",
    "x-portcullis-mode",
    "x-portcullis-rate-limit",
    "x-portcullis-owner",
    "x-portcullis-exposure",
];

/// What the route table says about a request.
#[derive(Debug)]
#[non_exhaustive]
pub enum Lookup<'a> {
    /// The operation and its path parameters (raw values, percent-encoded as received).
    Found(&'a Operation, Vec<(&'a str, String)>),
    /// No declared path matches.
    NotFound,
    /// A declared path matches but not with this method; the declared methods.
    MethodNotAllowed(Vec<Method>),
}

#[derive(Debug)]
struct PathEntry {
    template: Template,
    ops: Vec<(Method, usize)>,
}

/// A compiled contract (one or more documents).
#[derive(Debug, Default)]
pub struct Contract {
    paths: Vec<PathEntry>,
    operations: Vec<Operation>,
}

/// The result of loading: the contract and the operations with no security requirement that
/// are not marked public (for `check` to flag).
#[derive(Debug)]
#[non_exhaustive]
pub struct Loaded {
    /// The compiled contract.
    pub contract: Contract,
    /// Operation ids (or `METHOD path`) with no security requirement and no public mark.
    pub unsecured: Vec<String>,
}

const METHODS: &[(&str, Method)] = &[
    ("get", Method::GET),
    ("put", Method::PUT),
    ("post", Method::POST),
    ("delete", Method::DELETE),
    ("options", Method::OPTIONS),
    ("head", Method::HEAD),
    ("patch", Method::PATCH),
    ("trace", Method::TRACE),
];

/// Responses come from the upstream, bounded by the buffering cap: only the parser's structural
/// limits apply (duplicate keys are still refused: which one would the client read?).
const RESPONSE_JSON_LIMITS: crate::json::JsonLimits = crate::json::JsonLimits {
    max_bytes: usize::MAX,
    max_depth: crate::json::MAX_DEPTH_CAP,
    max_string_bytes: usize::MAX,
    max_array_len: usize::MAX,
    max_object_members: usize::MAX,
};

/// Most violations reported for one request or response.
pub(crate) const MAX_VIOLATIONS: usize = 32;

/// The schema keyword the loader adds next to `format: int32`/`int64`.
pub(crate) const EXACT_INTEGER_KEYWORD: &str = "x-portcullis-exact-integer";

/// `format: int32`/`int64` numbers must lie inside the 64-bit range before rounding. serde_json
/// turns an integer literal past 64 bits into the nearest double, which the `minimum`/`maximum`
/// bounds then compare after rounding (`-9223372036854775809` rounds to -2^63 = i64::MIN and
/// would pass). Exact integers are judged by the bounds; a double must be strictly inside ±2^63,
/// so a value that rounded onto the boundary is refused.
struct ExactInteger;

/// 2^63 as a double (exact).
const TWO_POW_63: f64 = 9_223_372_036_854_775_808.0;

impl<'i> jsonschema::Keyword<'i> for ExactInteger {
    fn validate(&self, instance: &'i Value) -> Result<(), jsonschema::ValidationError<'i>> {
        if self.is_valid(instance) {
            Ok(())
        } else {
            Err(jsonschema::ValidationError::custom("not an integer within the format's 64-bit range"))
        }
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        match instance {
            Value::Number(n) if n.is_i64() || n.is_u64() => true,
            // A literal written with a fraction or an exponent (`1277.0`, `1e3`) is an integer
            // when integral (JSON Schema's `type: integer` judges it); what matters here is that
            // it is strictly inside ±2^63, where a double still tells in-range from out-of-range.
            Value::Number(n) => n.as_f64().is_some_and(|f| f.is_finite() && f.abs() < TWO_POW_63),
            _ => true,
        }
    }
}

fn compile_schema(schema: Value, file: &str, pointer: &str) -> Result<Compiled, SpecError> {
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .with_keyword(EXACT_INTEGER_KEYWORD, |_, _, _| Ok(Box::new(ExactInteger)))
        .build(&schema)
        .map_err(|e| SpecError {
            file: file.to_owned(),
            pointer: pointer.to_owned(),
            message: format!("invalid schema: {}", e.masked()),
        })?;
    Ok(Compiled { validator, schema })
}

impl Contract {
    /// Loads and compiles the documents at `paths` (relative paths are relative to `base_dir`).
    /// Every problem found is returned, each with its file and JSON pointer.
    pub fn load(paths: &[&Path], base_dir: &Path, opts: &CompileOptions) -> Result<Loaded, Vec<SpecError>> {
        let mut all = Vec::new();
        for p in paths {
            let full = base_dir.join(p);
            let name = p.display().to_string();
            match Docs::load(&full, &name) {
                Ok(d) => all.push(d),
                Err(e) => return Err(vec![e]),
            }
        }
        Self::compile(all, opts)
    }

    /// Compiles one document given as text (YAML or JSON); `$ref`s to other files are resolved
    /// relative to `dir`.
    pub fn from_text(text: &str, dir: &Path, opts: &CompileOptions) -> Result<Loaded, Vec<SpecError>> {
        let value = crate::load::parse_document(text)
            .map_err(|m| vec![SpecError { file: "<text>".into(), pointer: String::new(), message: m }])?;
        let d = Docs::from_value(value, &dir.join("openapi"), "<text>").map_err(|e| vec![e])?;
        Self::compile(vec![d], opts)
    }

    fn compile(docs: Vec<Docs>, opts: &CompileOptions) -> Result<Loaded, Vec<SpecError>> {
        let mut c = Contract::default();
        let mut errors = Vec::new();
        let mut unsecured = Vec::new();
        let mut seen_ids: HashMap<String, String> = HashMap::new();
        for mut d in docs {
            c.add_document(&mut d, opts, &mut errors, &mut unsecured, &mut seen_ids);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        // Literal segments first: `/users/me` wins over `/users/{id}`.
        c.paths.sort_by_key(|p| std::cmp::Reverse(p.template.literal_segments));
        Ok(Loaded { contract: c, unsecured })
    }

    fn add_document(
        &mut self,
        d: &mut Docs,
        opts: &CompileOptions,
        errors: &mut Vec<SpecError>,
        unsecured: &mut Vec<String>,
        seen_ids: &mut HashMap<String, String>,
    ) {
        let name = d.docs[0].name.clone();
        let err = |p: String, m: String| SpecError { file: name.clone(), pointer: p, message: m };
        let root_security = d.get(0, "/security").cloned();
        let path_keys: Vec<String> =
            d.get(0, "/paths").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
        for path in path_keys {
            let item_ptr = format!("/paths/{}", escape_token(&path));
            if path.starts_with("x-") {
                continue;
            }
            let full_path = format!("{}{}", opts.base_path.trim_end_matches('/'), path);
            let template = match Template::parse(&full_path) {
                Ok(t) => t,
                Err(m) => {
                    errors.push(err(item_ptr, m));
                    continue;
                }
            };
            let (idoc, iptr) = match d.deref(0, item_ptr.clone()) {
                Ok(x) => x,
                Err(m) => {
                    errors.push(err(item_ptr, m));
                    continue;
                }
            };
            if let Some(existing) = self.paths.iter().find(|p| *p.template.source == *template.source) {
                let _ = existing;
                errors.push(err(item_ptr, format!("path {full_path:?} is declared by two documents")));
                continue;
            }
            let mut entry = PathEntry { template, ops: Vec::new() };
            for (mname, method) in METHODS {
                let op_ptr = format!("{iptr}/{mname}");
                if d.get(idoc, &op_ptr).is_none() {
                    continue;
                }
                let display = format!("{} {full_path}", method.as_str());
                match compile_operation(
                    d,
                    idoc,
                    &iptr,
                    &op_ptr,
                    method.clone(),
                    &entry.template,
                    opts,
                    root_security.as_ref(),
                ) {
                    Ok(mut op) => {
                        op.idx = self.operations.len();
                        if let Some(prev) = seen_ids.insert(op.id.to_string(), display.clone()) {
                            errors.push(err(
                                format!("{op_ptr}/operationId"),
                                format!("operationId {:?} is also used by {prev}", op.id),
                            ));
                        }
                        if op.security.is_none() && !op.public {
                            unsecured.push(op.id.to_string());
                        }
                        entry.ops.push((method.clone(), self.operations.len()));
                        self.operations.push(op);
                    }
                    Err(mut e) => errors.append(&mut e),
                }
            }
            self.paths.push(entry);
        }
    }

    /// Finds the operation for a request path (canonical, without the query) and method.
    pub fn find(&self, method: &Method, path: &str) -> Lookup<'_> {
        let segments: Vec<&str> = path.strip_prefix('/').unwrap_or(path).split('/').collect();
        let mut allowed: Option<Vec<Method>> = None;
        for p in &self.paths {
            let Some(params) = p.template.matches(&segments) else { continue };
            let m = if *method == Method::HEAD && !p.ops.iter().any(|(m, _)| *m == Method::HEAD) {
                Method::GET
            } else {
                method.clone()
            };
            if let Some((_, i)) = p.ops.iter().find(|(om, _)| *om == m) {
                let op = &self.operations[*i];
                let params = params.into_iter().map(|(n, v, _)| (n, v.to_owned())).collect();
                return Lookup::Found(op, params);
            }
            if allowed.is_none() {
                allowed = Some(p.ops.iter().map(|(m, _)| m.clone()).collect());
            }
        }
        match allowed {
            Some(a) => Lookup::MethodNotAllowed(a),
            None => Lookup::NotFound,
        }
    }

    /// Every operation, in document order.
    pub fn operations(&self) -> &[Operation] {
        &self.operations
    }
}

#[expect(clippy::too_many_arguments, reason = "the pieces of one operation's context")]
fn compile_operation(
    d: &mut Docs,
    doc: usize,
    item_ptr: &str,
    op_ptr: &str,
    method: Method,
    template: &Template,
    opts: &CompileOptions,
    root_security: Option<&Value>,
) -> Result<Operation, Vec<SpecError>> {
    let name = d.docs[doc].name.clone();
    let err = |p: &str, m: String| SpecError { file: name.clone(), pointer: p.to_owned(), message: m };
    let mut errors = Vec::new();
    let op = d.get(doc, op_ptr).cloned().unwrap_or(Value::Null);
    let id = op
        .get("operationId")
        .and_then(Value::as_str)
        .map_or_else(|| format!("{} {}", method.as_str(), template.source), str::to_owned);

    // Parameters: path-item level, overridden by operation level (same name and location).
    let mut param_ptrs: Vec<(String, String, In, usize, String)> = Vec::new();
    for base in [item_ptr.to_owned(), op_ptr.to_owned()] {
        let list = d.get(doc, &format!("{base}/parameters")).and_then(Value::as_array).map(Vec::len).unwrap_or(0);
        for i in 0..list {
            let ptr = format!("{base}/parameters/{i}");
            let (pdoc, pptr) = match d.deref(doc, ptr.clone()) {
                Ok(x) => x,
                Err(m) => {
                    errors.push(err(&ptr, m));
                    continue;
                }
            };
            let p = d.get(pdoc, &pptr).cloned().unwrap_or(Value::Null);
            let (Some(pname), Some(loc)) = (p.get("name").and_then(Value::as_str), p.get("in").and_then(Value::as_str))
            else {
                errors.push(err(&ptr, "a parameter needs `name` and `in`".into()));
                continue;
            };
            let Some(loc) = In::parse(loc) else {
                errors.push(err(&format!("{ptr}/in"), format!("unknown parameter location {loc:?}")));
                continue;
            };
            let pname = if loc == In::Header { pname.to_ascii_lowercase() } else { pname.to_owned() };
            param_ptrs.retain(|(n, _, l, _, _)| !(*n == pname && *l == loc));
            param_ptrs.push((pname, ptr, loc, pdoc, pptr));
        }
    }
    let path_names: Vec<&str> = template
        .segs
        .iter()
        .flatten()
        .filter_map(|p| match p {
            Piece::Param(n) => Some(n.as_str()),
            Piece::Lit(_) => None,
        })
        .collect();
    let mut b = Bundler::new(d, Direction::Request, opts.strict);
    let mut locs: Map<String, Value> = Map::new();
    let mut raw_params = Vec::new();
    for (pname, ptr, loc, pdoc, pptr) in &param_ptrs {
        // Headers the HTTP layer owns are ignored, as OpenAPI says.
        if *loc == In::Header && matches!(pname.as_str(), "accept" | "content-type" | "authorization") {
            continue;
        }
        let p = b_get(&mut b, *pdoc, pptr);
        let required = p.get("required").and_then(Value::as_bool).unwrap_or(false);
        if *loc == In::Path {
            if !required {
                b_error(&mut b, *pdoc, &format!("{pptr}/required"), "a path parameter must be required: true");
            }
            if !path_names.contains(&pname.as_str()) {
                b_error(&mut b, *pdoc, pptr, &format!("path parameter {pname:?} is not in the path template"));
            }
        }
        let style = match p.get("style").and_then(Value::as_str) {
            None => Style::default_for(*loc),
            Some(s) => Style::parse(s).unwrap_or_else(|| {
                b_error(&mut b, *pdoc, &format!("{pptr}/style"), &format!("unknown style {s:?}"));
                Style::default_for(*loc)
            }),
        };
        let explode = p.get("explode").and_then(Value::as_bool).unwrap_or(style == Style::Form);
        let (schema, json) = if p.get("schema").is_some() {
            (b.schema_at(*pdoc, &format!("{pptr}/schema")), false)
        } else if let Some(m) = p.get("content").and_then(Value::as_object).and_then(|m| m.iter().next()) {
            let mptr = format!("{pptr}/content/{}/schema", escape_token(m.0));
            let s = if m.1.get("schema").is_some() { b.schema_at(*pdoc, &mptr) } else { Value::Bool(true) };
            (s, kind_of(&essence(m.0)) == MediaKind::Json)
        } else {
            let _ = ptr;
            (Value::Bool(true), false)
        };
        let section = locs
            .entry(loc.as_str().to_owned())
            .or_insert_with(|| serde_json::json!({"type": "object", "properties": {}, "required": []}));
        if let Some(props) = section.get_mut("properties").and_then(Value::as_object_mut) {
            props.insert(pname.clone(), schema);
        }
        if required && let Some(r) = section.get_mut("required").and_then(Value::as_array_mut) {
            r.push(Value::String(pname.clone()));
        }
        raw_params.push((pname.clone(), *loc, style, explode, json));
    }
    let params_root = serde_json::json!({"type": "object", "properties": Value::Object(locs)});
    let (params_root, mut perrs) = b.finish(params_root);
    errors.append(&mut perrs);
    let mut params = Vec::new();
    let mut query_open = false;
    for (pname, loc, style, explode, json) in raw_params {
        let s = &params_root["properties"][loc.as_str()]["properties"][&pname];
        let shape = shape_of(&params_root, s);
        if loc == In::Query && explode && matches!(style, Style::Form) && matches!(shape, Shape::Object(_, true)) {
            query_open = true;
        }
        params.push(Param { name: pname, loc, style, explode, shape, json });
    }
    let constrained_params = constrained_param_targets(&params_root, &params, template);
    let uri_params = uri_param_pointers(&params_root, &params);
    let params_validator = if params.is_empty() {
        None
    } else {
        match compile_schema(params_root, &name, &format!("{op_ptr}/parameters")) {
            Ok(c) => Some(c),
            Err(e) => {
                errors.push(e);
                None
            }
        }
    };

    // Request body.
    let mut body = Vec::new();
    let mut body_required = false;
    let mut constrained = constrained_params;
    let mut uri_fields = Vec::new();
    if op.get("requestBody").is_some() {
        match d.deref(doc, format!("{op_ptr}/requestBody")) {
            Ok((rdoc, rptr)) => {
                let rb = d.get(rdoc, &rptr).cloned().unwrap_or(Value::Null);
                body_required = rb.get("required").and_then(Value::as_bool).unwrap_or(false);
                let content = rb.get("content").and_then(Value::as_object).cloned().unwrap_or_default();
                for (mt, m) in &content {
                    let range = MediaRange { range: essence(mt) };
                    let kind = kind_of(&range.range);
                    let mut shape = Shape::Scalar(0);
                    let compiled = if m.get("schema").is_some() && kind != MediaKind::Opaque {
                        let sptr = format!("{rptr}/content/{}/schema", escape_token(mt));
                        let mut b = Bundler::new(d, Direction::Request, opts.strict);
                        let s = b.schema_at(rdoc, &sptr);
                        let (root, mut e) = b.finish(s);
                        errors.append(&mut e);
                        shape = shape_of(&root, &root);
                        if kind == MediaKind::Json {
                            walk_constrained(&root, &root, "", 0, &mut constrained, &mut uri_fields);
                        }
                        match compile_schema(root, &name, &sptr) {
                            Ok(c) => Some(c),
                            Err(e) => {
                                errors.push(e);
                                None
                            }
                        }
                    } else {
                        None
                    };
                    body.push(BodyMedia { range, kind, compiled, shape });
                }
            }
            Err(m) => errors.push(err(&format!("{op_ptr}/requestBody"), m)),
        }
    }

    // Responses.
    let mut responses = Vec::new();
    let codes: Vec<String> =
        op.get("responses").and_then(Value::as_object).map(|m| m.keys().cloned().collect()).unwrap_or_default();
    for code in codes {
        let rptr0 = format!("{op_ptr}/responses/{}", escape_token(&code));
        let key = match code.as_str() {
            "default" => StatusKey::Default,
            c if c.len() == 3 && c.ends_with("XX") || c.ends_with("xx") => match c[..1].parse::<u16>() {
                Ok(n @ 1..=5) => StatusKey::Range(n),
                _ => {
                    errors.push(err(&rptr0, format!("invalid status {c:?}")));
                    continue;
                }
            },
            c => match c.parse::<u16>() {
                Ok(n @ 100..=599) => StatusKey::Exact(n),
                _ => {
                    if !c.starts_with("x-") {
                        errors.push(err(&rptr0, format!("invalid status {c:?}")));
                    }
                    continue;
                }
            },
        };
        let (rdoc, rptr) = match d.deref(doc, rptr0.clone()) {
            Ok(x) => x,
            Err(m) => {
                errors.push(err(&rptr0, m));
                continue;
            }
        };
        let r = d.get(rdoc, &rptr).cloned().unwrap_or(Value::Null);
        let mut media = Vec::new();
        for (mt, m) in r.get("content").and_then(Value::as_object).cloned().unwrap_or_default() {
            let range = MediaRange { range: essence(&mt) };
            let compiled = if m.get("schema").is_some() && kind_of(&range.range) == MediaKind::Json {
                let sptr = format!("{rptr}/content/{}/schema", escape_token(&mt));
                let mut b = Bundler::new(d, Direction::Response, opts.strict);
                let s = b.schema_at(rdoc, &sptr);
                let (root, mut e) = b.finish(s);
                errors.append(&mut e);
                match compile_schema(root, &name, &sptr) {
                    Ok(c) => Some(c),
                    Err(e) => {
                        errors.push(e);
                        None
                    }
                }
            } else {
                None
            };
            media.push((range, compiled));
        }
        responses.push((key, ResponseSpec { media }));
    }

    // Security: the operation's, else the document's.
    let sec = op.get("security").or(root_security);
    let public_ext = op.get("x-portcullis-public").and_then(Value::as_bool).unwrap_or(false);
    let mut security = None;
    if let Some(Value::Array(alts)) = sec {
        let mut parsed = Vec::new();
        let mut anonymous = alts.is_empty();
        for (i, alt) in alts.iter().enumerate() {
            let Some(m) = alt.as_object() else { continue };
            if m.is_empty() {
                anonymous = true;
                continue;
            }
            let mut schemes = Vec::new();
            for (scheme, scopes) in m {
                let sptr = format!("/components/securitySchemes/{}", escape_token(scheme));
                let kind = match d.deref(0, sptr.clone()) {
                    Ok((sd, sp)) if d.get(sd, &sp).is_some() => scheme_kind(d.get(sd, &sp).unwrap_or(&Value::Null)),
                    _ => None,
                };
                let Some(kind) = kind else {
                    errors.push(err(
                        &format!("{op_ptr}/security/{i}/{}", escape_token(scheme)),
                        format!("unknown or unsupported security scheme {scheme:?}"),
                    ));
                    continue;
                };
                let scopes =
                    scopes.as_array().into_iter().flatten().filter_map(Value::as_str).map(str::to_owned).collect();
                schemes.push((scheme.clone(), kind, scopes));
            }
            parsed.push(SecurityAlternative { schemes });
        }
        // `x-portcullis-public: true` says the operation is meant to be reachable without a
        // credential, whatever the document-level default.
        if !anonymous && !public_ext {
            security = Some(parsed);
        }
    }
    let extra_scopes: Vec<String> = op
        .get("x-portcullis-scopes")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect();
    let mode = match op.get("x-portcullis-mode").and_then(Value::as_str) {
        None => None,
        Some("enforce") => Some(Mode::Enforce),
        Some("monitor") => Some(Mode::Monitor),
        Some(other) => {
            errors.push(err(
                &format!("{op_ptr}/x-portcullis-mode"),
                format!("unknown mode {other:?}: use enforce or monitor"),
            ));
            None
        }
    };
    let mut policy_extensions = Vec::new();
    for (k, v) in op.as_object().into_iter().flatten() {
        if !k.starts_with("x-portcullis-") {
            continue;
        }
        match OPERATION_EXTENSIONS.iter().position(|e| e == k) {
            None => errors.push(err(
                &format!("{op_ptr}/{}", escape_token(k)),
                format!("unknown extension {k:?}: use one of {}", OPERATION_EXTENSIONS.join(", ")),
            )),
            Some(i) if i >= 3 => policy_extensions.push((OPERATION_EXTENSIONS[i], v.clone())),
            Some(_) => {}
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Operation {
        idx: 0,
        id: Arc::from(id),
        method,
        template: template.source.clone(),
        params,
        params_validator,
        query_open,
        body_required,
        body,
        responses,
        security,
        public: public_ext,
        extra_scopes,
        mode,
        constrained,
        uri_fields,
        uri_params,
        policy_extensions,
        source: format!("{name}#{op_ptr}"),
    })
}

fn b_get(b: &mut Bundler<'_>, doc: usize, ptr: &str) -> Value {
    b.peek_value(doc, ptr)
}

fn b_error(b: &mut Bundler<'_>, doc: usize, ptr: &str, msg: &str) {
    b.push_error(doc, ptr, msg);
}

fn scheme_kind(s: &Value) -> Option<SchemeKind> {
    Some(match s.get("type")?.as_str()? {
        "apiKey" => SchemeKind::ApiKey,
        "http" => match s.get("scheme").and_then(Value::as_str).map(str::to_ascii_lowercase).as_deref() {
            Some("basic") => SchemeKind::Basic,
            _ => SchemeKind::Bearer,
        },
        "oauth2" | "openIdConnect" => SchemeKind::OAuth,
        "mutualTLS" => SchemeKind::MutualTls,
        _ => return None,
    })
}

/// Whether a schema admits only values that cannot carry an attack payload (numbers, booleans,
/// enums, and strings with a strict format).
fn is_constrained(root: &Value, s: &Value) -> bool {
    let s = crate::params::follow(root, s);
    if s.get("enum").is_some() || s.get("const").is_some() {
        return true;
    }
    if matches!(s.get("format").and_then(Value::as_str), Some("uuid" | "date" | "date-time" | "ipv4" | "ipv6")) {
        return true;
    }
    match s.get("type") {
        Some(Value::String(t)) => matches!(t.as_str(), "integer" | "number" | "boolean"),
        Some(Value::Array(a)) => {
            !a.is_empty() && a.iter().all(|t| matches!(t.as_str(), Some("integer" | "number" | "boolean" | "null")))
        }
        _ => false,
    }
}

fn constrained_param_targets(root: &Value, params: &[Param], template: &Template) -> Vec<String> {
    let mut out = Vec::new();
    for p in params {
        let s = &root["properties"][p.loc.as_str()]["properties"][&p.name];
        if !is_constrained(root, s) {
            continue;
        }
        match p.loc {
            In::Path => {
                for (i, seg) in template.segs.iter().enumerate() {
                    if seg.len() == 1 && matches!(&seg[0], Piece::Param(n) if *n == p.name) {
                        out.push(format!("path:{i}"));
                    }
                }
            }
            loc => out.push(format!("{}:{}", loc.as_str(), p.name)),
        }
    }
    out
}

/// Whether a schema is a URL the SSRF guard checks.
fn is_uri_schema(s: &Value) -> bool {
    matches!(s.get("format").and_then(Value::as_str), Some("uri" | "url" | "uri-reference"))
        || s.get("x-portcullis-ssrf").and_then(Value::as_bool) == Some(true)
}

fn uri_param_pointers(root: &Value, params: &[Param]) -> Vec<String> {
    let mut out = Vec::new();
    for p in params {
        let s = crate::params::follow(root, &root["properties"][p.loc.as_str()]["properties"][&p.name]);
        let at = format!("/{}/{}", p.loc.as_str(), escape_token(&p.name));
        if is_uri_schema(s) {
            out.push(at);
        } else if s.get("items").is_some_and(|i| is_uri_schema(crate::params::follow(root, i))) {
            out.push(format!("{at}/*"));
        }
    }
    out
}

fn walk_constrained(root: &Value, s: &Value, at: &str, depth: usize, out: &mut Vec<String>, uris: &mut Vec<String>) {
    if depth > 6 || out.len() > 256 {
        return;
    }
    let s = crate::params::follow(root, s);
    if !at.is_empty() && is_constrained(root, s) {
        out.push(format!("body:{at}"));
        return;
    }
    if is_uri_schema(s) {
        uris.push(at.to_owned());
    }
    if let Some(props) = s.get("properties").and_then(Value::as_object) {
        for (k, v) in props {
            walk_constrained(root, v, &format!("{at}/{}", escape_token(k)), depth + 1, out, uris);
        }
    }
    if let Some(items) = s.get("items") {
        walk_constrained(root, items, &format!("{at}/*"), depth + 1, out, uris);
    }
    for k in ["allOf", "anyOf", "oneOf"] {
        for m in s.get(k).and_then(Value::as_array).into_iter().flatten() {
            walk_constrained(root, m, at, depth + 1, out, uris);
        }
    }
}

/// Turns schema errors into violations: value-free reasons, one violation per undeclared
/// property, `prefix` in front of each instance pointer.
fn collect(compiled: &Compiled, instance: &Value, prefix: &str, direction: Direction, out: &mut Vec<Violation>) {
    for e in compiled.validator.iter_errors(instance) {
        if out.len() >= MAX_VIOLATIONS {
            return;
        }
        let at = format!("{prefix}{}", e.instance_path());
        match e.kind() {
            jsonschema::error::ValidationErrorKind::UnevaluatedProperties { unexpected }
            | jsonschema::error::ValidationErrorKind::AdditionalProperties { unexpected } => {
                for name in unexpected.iter().take(MAX_VIOLATIONS - out.len()) {
                    out.push(Violation::new(format!("{at}/{}", escape_token(name)), "undeclared property"));
                }
            }
            jsonschema::error::ValidationErrorKind::FalseSchema => {
                let reason = match direction {
                    Direction::Request => "read-only property: not accepted in a request",
                    Direction::Response => "write-only property: not returned in a response",
                };
                out.push(Violation::new(at, reason));
            }
            _ => out.push(Violation::new(at, e.masked().to_string())),
        }
    }
}

/// What a request looks like to [`Operation::check_head`].
#[derive(Debug)]
#[non_exhaustive]
pub struct RequestHead<'a> {
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    /// The request headers.
    pub headers: &'a http::HeaderMap,
    /// The raw path parameters from [`Lookup::Found`].
    pub path_params: &'a [(&'a str, String)],
}

impl<'a> RequestHead<'a> {
    /// A request head.
    pub fn new(query: Option<&'a str>, headers: &'a http::HeaderMap, path_params: &'a [(&'a str, String)]) -> Self {
        Self { query, headers, path_params }
    }
}

/// Which declared body media type a request uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyChoice(usize);

/// What a response check found.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ResponseCheck {
    /// Violations of the declared response (after the removals, when removing).
    pub violations: Vec<Violation>,
    /// Pointers of the undeclared properties removed (enforce mode).
    pub removed: Vec<String>,
    /// The body rewritten without the removed properties, if any were removed.
    pub rewritten: Option<Vec<u8>>,
}

impl Operation {
    pub(crate) fn index(&self) -> usize {
        self.idx
    }

    /// The operation id (or `METHOD /path` when the document gives none).
    pub fn id(&self) -> &Arc<str> {
        &self.id
    }

    /// The HTTP method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path template, base path included.
    pub fn path_template(&self) -> &Arc<str> {
        &self.template
    }

    /// The security alternatives (any one must be satisfied); `None` when the operation needs no
    /// credential.
    pub fn security(&self) -> Option<&[SecurityAlternative]> {
        self.security.as_deref()
    }

    /// Scopes the `x-portcullis-scopes` extension adds (all required).
    pub fn extra_scopes(&self) -> &[String] {
        &self.extra_scopes
    }

    /// Marked `x-portcullis-public: true`.
    pub fn is_public(&self) -> bool {
        self.public
    }

    /// The mode the document sets with `x-portcullis-mode`, if any.
    pub fn mode(&self) -> Option<Mode> {
        self.mode
    }

    /// Whether the operation declares a request body.
    pub fn declares_body(&self) -> bool {
        !self.body.is_empty()
    }

    /// Whether the request body is required.
    pub fn body_required(&self) -> bool {
        self.body_required
    }

    /// Locations whose schema admits no free text (integers, numbers, booleans, enums, uuid and
    /// date formats), in the inspection stage's target syntax (`query:limit`, `path:1`,
    /// `body:/items/*/qty`): attack detection may skip them once the contract has validated
    /// the request. See docs/contract.md.
    pub fn constrained_fields(&self) -> &[String] {
        &self.constrained
    }

    /// Whether `choice` is a JSON body (the only kind whose [`constrained_fields`]
    /// (Self::constrained_fields) `body:` pointers the inspection stage reads as JSON pointers).
    pub fn body_is_json(&self, choice: BodyChoice) -> bool {
        self.body.get(choice.0).is_some_and(|m| m.kind == MediaKind::Json)
    }

    /// JSON pointers (`*` for any array index) of request-body fields with `format: uri` (or
    /// `x-portcullis-ssrf: true`): the SSRF guard's inputs.
    pub fn uri_fields(&self) -> &[String] {
        &self.uri_fields
    }

    /// The gateway-policy extension `name` (`x-portcullis-rate-limit`, `x-portcullis-owner` or
    /// `x-portcullis-exposure`), raw, if the operation carries it.
    pub fn policy_extension(&self, name: &str) -> Option<&Value> {
        self.policy_extensions.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }

    /// Whether the operation carries any gateway-policy extension.
    pub fn has_policy_extensions(&self) -> bool {
        !self.policy_extensions.is_empty()
    }

    /// Where the operation is written: `file#/json/pointer`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Parameters with `format: uri` (or `x-portcullis-ssrf: true`), as pointers into the
    /// document [`check_head_value`](Self::check_head_value) returns (`*` for any array index):
    /// the SSRF guard's inputs on the request head.
    pub fn uri_params(&self) -> &[String] {
        &self.uri_params
    }

    /// Validates path, query, header and cookie parameters.
    pub fn check_head(&self, req: &RequestHead<'_>, strict: bool) -> Vec<Violation> {
        self.check_head_value(req, strict).0
    }

    /// Validates path, query, header and cookie parameters, and returns them typed as
    /// `{path, query, header, cookie}` when the operation has [`uri_params`](Self::uri_params).
    pub fn check_head_value(&self, req: &RequestHead<'_>, strict: bool) -> (Vec<Violation>, Option<Value>) {
        let mut out = Vec::new();
        let mut sections: [Map<String, Value>; 4] = Default::default();
        let slot = |loc: In| match loc {
            In::Path => 0,
            In::Query => 1,
            In::Header => 2,
            In::Cookie => 3,
        };
        let query: Vec<(String, String)> = req.query.map(crate::params::form_pairs).unwrap_or_default();
        let mut used = vec![false; query.len()];
        let cookies = if self.params.iter().any(|p| p.loc == In::Cookie) {
            crate::params::cookie_pairs(req.headers)
        } else {
            Vec::new()
        };
        for p in &self.params {
            let value = match p.loc {
                In::Path => req.path_params.iter().find(|(n, _)| *n == p.name).map(|(_, raw)| {
                    let raw = crate::load::percent_decode(raw);
                    let s = match p.style {
                        Style::Label => raw.strip_prefix('.').unwrap_or(&raw).to_owned(),
                        Style::Matrix => {
                            let pre = format!(";{}=", p.name);
                            raw.strip_prefix(&pre).unwrap_or(&raw).to_owned()
                        }
                        _ => raw,
                    };
                    let sep = if p.style == Style::Label && p.explode { '.' } else { ',' };
                    read_text(p, &s, sep)
                }),
                In::Header => {
                    let vals: Vec<&str> =
                        req.headers.get_all(p.name.as_str()).iter().filter_map(|v| v.to_str().ok()).collect();
                    (!vals.is_empty()).then(|| read_text(p, &vals.join(","), ','))
                }
                In::Cookie => {
                    let vals: Vec<&String> = cookies.iter().filter(|(n, _)| *n == p.name).map(|(_, v)| v).collect();
                    if vals.len() > 1 {
                        out.push(Violation::new(
                            format!("/cookie/{}", escape_token(&p.name)),
                            "cookie given more than once",
                        ));
                    }
                    vals.first().map(|v| read_text(p, v, ','))
                }
                In::Query => query_value(p, &query, &mut used, &mut out),
            };
            if let Some(v) = value {
                sections[slot(p.loc)].insert(p.name.clone(), v);
            }
        }
        if strict && !self.query_open {
            for (i, (name, _)) in query.iter().enumerate() {
                if !used[i] && out.len() < MAX_VIOLATIONS {
                    out.push(Violation::new(format!("/query/{}", escape_token(name)), "undeclared query parameter"));
                }
            }
        }
        let Some(c) = &self.params_validator else { return (out, None) };
        let mut doc = Map::new();
        for (loc, m) in [In::Path, In::Query, In::Header, In::Cookie].into_iter().zip(sections) {
            doc.insert(loc.as_str().to_owned(), Value::Object(m));
        }
        let doc = Value::Object(doc);
        collect(c, &doc, "", Direction::Request, &mut out);
        (out, (!self.uri_params.is_empty()).then_some(doc))
    }

    /// Picks the declared media type for a request's `Content-Type`.
    ///
    /// # Errors
    ///
    /// A violation when the operation declares no body or not this media type.
    pub fn body_media(&self, content_type: Option<&str>) -> Result<BodyChoice, Violation> {
        if self.body.is_empty() {
            return Err(Violation::new("/body", "this operation declares no request body"));
        }
        let Some(ct) = content_type else {
            return Err(Violation::new("/header/content-type", "a Content-Type is required"));
        };
        let e = essence(ct);
        best_match(self.body.iter().map(|b| &b.range).zip(0..), &e)
            .map(BodyChoice)
            .ok_or_else(|| Violation::new("/header/content-type", "this media type is not declared for the operation"))
    }

    /// Validates a request body of the chosen media type (JSON parsed with default limits).
    pub fn check_body(&self, choice: BodyChoice, content_type: &str, body: &[u8]) -> Vec<Violation> {
        self.check_body_value(choice, content_type, body, &crate::json::JsonLimits::default()).0
    }

    /// Validates a request body; also returns the parsed value when it could be read (for the
    /// SSRF guard on [`uri_fields`](Self::uri_fields)).
    pub fn check_body_value(
        &self,
        choice: BodyChoice,
        content_type: &str,
        body: &[u8],
        limits: &crate::json::JsonLimits,
    ) -> (Vec<Violation>, Option<Value>) {
        let Some(m) = self.body.get(choice.0) else { return (Vec::new(), None) };
        let value = match m.kind {
            MediaKind::Json => crate::body::parse_json(body, limits),
            // A form body is flat text: no JSON limits apply beyond the body cap.
            MediaKind::Form => crate::body::form_object(body, &m.shape),
            MediaKind::Multipart => crate::body::multipart_object(body, content_type, &m.shape, limits),
            MediaKind::Opaque => return (Vec::new(), None),
        };
        let value = match value {
            Ok(v) => v,
            Err(v) => return (vec![v], None),
        };
        let mut out = Vec::new();
        if let Some(c) = &m.compiled {
            collect(c, &value, "/body", Direction::Request, &mut out);
        }
        (out, Some(value))
    }

    fn response_spec(&self, status: u16) -> Option<&ResponseSpec> {
        let exact = self.responses.iter().find(|(k, _)| *k == StatusKey::Exact(status));
        let range = || self.responses.iter().find(|(k, _)| *k == StatusKey::Range(status / 100));
        let default = || self.responses.iter().find(|(k, _)| *k == StatusKey::Default);
        exact.or_else(range).or_else(default).map(|(_, r)| r)
    }

    /// Validates a response. With `remove`, undeclared (and write-only) properties are taken out
    /// of a JSON body first, and the violations are those left after the removal.
    pub fn check_response(&self, status: u16, content_type: Option<&str>, body: &[u8], remove: bool) -> ResponseCheck {
        let mut out = ResponseCheck::default();
        let Some(spec) = self.response_spec(status) else {
            out.violations.push(Violation::new("/status", "this status is not declared for the operation"));
            return out;
        };
        if spec.media.is_empty() {
            if !body.is_empty() {
                out.violations.push(Violation::new("/body", "this response declares no body"));
            }
            return out;
        }
        if body.is_empty() {
            return out;
        }
        let Some(ct) = content_type else {
            out.violations.push(Violation::new("/header/content-type", "a response body without a Content-Type"));
            return out;
        };
        let e = essence(ct);
        let Some(i) = best_match(spec.media.iter().map(|(r, _)| r).zip(0..), &e) else {
            out.violations
                .push(Violation::new("/header/content-type", "this media type is not declared for the response"));
            return out;
        };
        let Some(c) = &spec.media[i].1 else { return out };
        let mut value = match crate::body::parse_json(body, &RESPONSE_JSON_LIMITS) {
            Ok(v) => v,
            Err(v) => {
                out.violations.push(v);
                return out;
            }
        };
        if remove {
            let mut removed = Vec::new();
            crate::prune::prune(&c.schema, &c.schema, &mut value, String::new(), 0, &mut removed);
            if !removed.is_empty() {
                out.rewritten = Some(serde_json::to_vec(&value).unwrap_or_default());
                out.removed = removed;
            }
        }
        collect(c, &value, "/body", Direction::Response, &mut out.violations);
        out
    }
}

fn read_text(p: &Param, s: &str, sep: char) -> Value {
    if p.json {
        return serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.to_owned()));
    }
    crate::params::split_value(s, sep, &p.shape, p.explode)
}

fn query_value(p: &Param, query: &[(String, String)], used: &mut [bool], out: &mut Vec<Violation>) -> Option<Value> {
    let here = || format!("/query/{}", escape_token(&p.name));
    match (&p.shape, p.style, p.explode) {
        (Shape::Object(props, open), Style::Form, true) => {
            let mut m = Map::new();
            for (i, (k, v)) in query.iter().enumerate() {
                if !used[i] && (props.iter().any(|(n, _)| n == k) || (*open && props.is_empty())) {
                    used[i] = true;
                    m.insert(k.clone(), crate::params::coerce(v, crate::params::prop_kinds(props, k)));
                }
            }
            (!m.is_empty()).then_some(Value::Object(m))
        }
        (Shape::Object(props, _), Style::DeepObject, _) => {
            let prefix = format!("{}[", p.name);
            let mut m = Map::new();
            for (i, (k, v)) in query.iter().enumerate() {
                if let Some(inner) = k.strip_prefix(&prefix).and_then(|r| r.strip_suffix(']')) {
                    used[i] = true;
                    m.insert(inner.to_owned(), crate::params::coerce(v, crate::params::prop_kinds(props, inner)));
                }
            }
            (!m.is_empty()).then_some(Value::Object(m))
        }
        (Shape::Array(kinds), Style::Form, true) => {
            let mut items = Vec::new();
            for (i, (k, v)) in query.iter().enumerate() {
                if *k == p.name {
                    used[i] = true;
                    items.push(crate::params::coerce(v, *kinds));
                }
            }
            (!items.is_empty()).then_some(Value::Array(items))
        }
        _ => {
            let mut found = None;
            for (i, (k, v)) in query.iter().enumerate() {
                if *k == p.name {
                    used[i] = true;
                    if found.is_some() {
                        // HTTP parameter pollution: which copy would the upstream read?
                        out.push(Violation::new(here(), "parameter given more than once"));
                        break;
                    }
                    found = Some(v.as_str());
                }
            }
            let sep = match p.style {
                Style::SpaceDelimited => ' ',
                Style::PipeDelimited => '|',
                _ => ',',
            };
            found.map(|v| read_text(p, v, sep))
        }
    }
}
